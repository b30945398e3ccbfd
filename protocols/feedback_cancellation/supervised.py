"""Stage ``supervised``: inputs and targets as TimedArrays, one pattern every ``pattern_ms``, the
output nudged toward the target potential, all rules on. After each epoch the test set is read
with nudging and plasticity off — simulated, or as the circuit's settled state solved by the
torch twin (``evaluation``); accuracy (argmax of the output rates at the end of each pattern) or
MSE (‖φ(u_N) − r_target‖² per pattern). A shallow learner (the same compiled circuit with the
hidden forward weights frozen) and a backprop baseline (torch, same architecture) run on the same
split, or come from :mod:`neurosim.result_cache` when a run with the same inputs trained them.
The forward learning rates decay by ``eta_decay`` per epoch: per-pattern SGD noise sets the
accuracy floor at a constant rate; the lateral rules keep their rates. Batch mode
(``circuit.batch`` = B): B examples side by side, their filtered weight changes summed every
step (each rate applies to each copy's change); an epoch trains on the first ⌊n/B⌋·B examples
of its permutation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurosim import diagnostics, result_cache
from neurosim.config import RunConfig
from neurosim.protocol import ProtocolResult
from neurosim.recording import SegmentRecord, SignalRecord
from neurosim.records.microcircuit import SupervisedRecord
from neurosim.seeding import run_seed
from protocols.feedback_cancellation.evaluation import (
    angle_deg,
    backprop_baseline_cached,
    evaluate,
    metric_key,
    settled_ends,
)
from protocols.feedback_cancellation.simulation import (
    TrainingCircuit,
    frozen_etas,
    learning_values,
    run_pass,
)
from protocols.feedback_cancellation.spikes import Firing, OnResult, SpikeSampler, chained
from protocols.feedback_cancellation.task import initial_weights
from protocols.references import references_for


@dataclass
class Learners:
    """The circuit (and the shallow learner) being trained: run values and forward rates."""

    values: dict[str, dict[str, Any]]
    forward: dict[str, list[float]]
    history: dict[str, list[float]] = field(default_factory=dict)


def start_learners(tc: TrainingCircuit, w0: dict[str, np.ndarray]) -> Learners:
    """The circuit with every rule on and, with ``shallow``, the same circuit learning only the
    output weights."""
    cfg, N = tc.task.cfg, tc.task.n_layers
    forward = {"circuit": list(cfg.eta_forward)}
    if cfg.shallow:
        forward["shallow"] = [0.0] * (N - 1) + [cfg.eta_forward[-1]]
    values = {
        name: learning_values(tc.task, w0, tc.readout, forward=f, ip=cfg.eta_ip, pi=cfg.eta_pi)
        for name, f in forward.items()
    }
    return Learners(values, forward, {name: [] for name in forward})


def test_pass(
    tc: TrainingCircuit, values: dict[str, Any], seed: int, on_result: OnResult | None = None
) -> tuple[dict, dict]:
    """The test set with nudging and plasticity off: the metrics and the pattern ends."""
    task = tc.task
    data = task.data
    ends = evaluation_ends(tc, values, data.x_test, data.u_test, seed, on_result)
    return evaluate(task, ends["out"], data.y_test, data.labels_test), ends


def evaluation_ends(
    tc: TrainingCircuit, values: dict[str, Any], x: np.ndarray, u: np.ndarray, seed: int,
    on_result: OnResult | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The pattern ends of ``x`` with nudging and plasticity off: simulated, or solved as the
    circuit's fixed point (``task.evaluation``; no run, so ``on_result`` sees none)."""
    task = tc.task
    if task.evaluation == "fixed-point":
        w = task.circuit.named_weights_from_state(values, task.sizes, task.cfg.top_down)
        return settled_ends(task, w, x)
    v = {**values, **frozen_etas(task)}
    return run_pass(tc, v, x, u, nudge=0.0, learn=False, seed=seed, on_result=on_result)[1]


class ShallowCache:
    """The shallow learner's test history, read from :mod:`neurosim.result_cache` when a run
    with the same inputs trained it before (it never depends on the circuit's own learning)."""

    def __init__(
        self, run: RunConfig, tc: TrainingCircuit, learners: Learners, perms: list[np.ndarray]
    ) -> None:
        self.run, self.tc, self.learners, self.perms = run, tc, learners, perms
        self.start = dict(learners.values.get("shallow", {}))
        self.key: dict[str, Any] | None = None
        self.history: list[float] | None = None
        self.checked = False

    def hit(self) -> bool:
        """True when the cache holds this shallow learner (looked up once the build exists)."""
        if not self.checked:
            self.checked = True
            build = self.tc.sim.build_dir
            if build is not None:  # the runtime device compiles nothing to key on
                self.key = self._inputs(build.name)
                found = result_cache.load(KIND, self.key, SHALLOW_CODE)
                self.history = None if found is None else list(found["history"])
        return self.history is not None

    def finish(self) -> list[str]:
        """Put the cached history in place, or store the one just trained; ``["shallow"]`` when
        it came from the cache."""
        if self.history is not None:
            self.learners.history["shallow"] = list(self.history)
            return ["shallow"]
        if self.key is not None:
            history = {"history": self.learners.history["shallow"]}
            result_cache.save(KIND, self.key, history, SHALLOW_CODE)
        return []

    def _inputs(self, build: str) -> dict[str, Any]:
        task = self.tc.task
        d = task.data
        cfg = task.cfg.model_dump(exclude=NOT_SHALLOW_INPUTS)
        return {
            "build": build, "values": self.start, "forward": self.learners.forward["shallow"],
            "perms": self.perms, "seed": self.run.seed, "config": cfg,
            "params": dataclasses.asdict(task.params), "evaluation": task.evaluation, "P": task.P,
            "data": [d.x_train, d.u_train, d.x_test, d.u_test, d.y_test, d.labels_test],
        }  # fmt: skip


KIND = "shallow-learner"
#: settings the shallow learner's result does not depend on
NOT_SHALLOW_INPUTS = {
    "backprop_epochs",
    "backprop_lr",
    "train_eval",
    "window",
    "shallow",
    "references",
    # what the recording samples (spike monitors are not read by any learner)
    "spike_cells",
    "spike_train_examples",
    "spike_test_examples",
}
#: the code between the shallow learner's inputs and its history
SHALLOW_CODE = (
    "protocols.feedback_cancellation.supervised", "protocols.feedback_cancellation.simulation",
    "protocols.feedback_cancellation.task", "protocols.feedback_cancellation.evaluation",
    "circuits.microcircuit", "neurosim.engine", "neurosim.blocks",
    "models.dendritic_microcircuit.dynamics", "models.dendritic_microcircuit.network",
)  # fmt: skip


def topdown_angles(tc: TrainingCircuit, w: dict[str, np.ndarray]) -> list[float]:
    """∠(W_{k+1}, B_kᵀ) in degrees per hidden layer (0 when B is tied to W)."""
    N = tc.task.n_layers
    if tc.task.cfg.top_down == "tied":
        return [0.0] * (N - 1)
    return [angle_deg(w[f"W{k + 1}"].T, w[f"B{k}"]) for k in range(1, N)]


def train_supervised(
    run: RunConfig, tc: TrainingCircuit, rng: np.random.Generator, progress: Callable, epochs: int
) -> ProtocolResult:
    """Train the circuit (and the shallow learner) for ``epochs`` epochs, test after each, then
    the training set and the backprop baseline."""
    task = tc.task
    cfg, N, data = task.cfg, task.n_layers, task.data
    w0 = initial_weights(task, rng, cfg.lateral_init)
    learners = start_learners(tc, w0)
    key = metric_key(task)
    spikes = (
        SpikeSampler(cfg, task.sizes, cfg.pattern_ms, task.P) if tc.spike_cells else None
    )  # the spiking read-out's recorded sample
    # spiking: the spikes of the circuit's last test pass and of its last training epoch
    firing = (
        {
            name: Firing(task.circuit, task.sizes, task.batch, task.presentations)
            for name in ("test", "train_last_epoch")
        }
        if tc.readout == "spiking"
        else {}
    )

    def recorded_test(epoch: int) -> OnResult | None:
        if spikes is None:
            return None
        stage = "untrained" if epoch == 0 else f"after epoch {epoch}"
        notes = {"kind": "test", "epoch": epoch, "nudge": 0.0, "learning": False}
        return spikes.callback(
            f"test patterns, {stage}", cfg.spike_test_examples, data.labels_test, notes
        )

    progress(0, "testing the untrained circuit")
    # the learners differ only in their learning rates, which a test pass sets to 0: one pass
    untrained = test_pass(
        tc, learners.values["circuit"], run_seed(run.seed, 9, 0), recorded_test(0)
    )[0][key]
    for name in learners.values:
        learners.history[name].append(untrained)
    angles, apical = [topdown_angles(tc, w0)], []
    train_wall, seen = 0.0, 0
    last_eval: dict[str, float] = {}
    last_ends: dict[str, np.ndarray] = {}
    perms = [rng.permutation(len(data.x_train)) for _ in range(epochs)]
    shallow = ShallowCache(run, tc, learners, perms)
    for epoch in range(1, epochs + 1):
        perm = perms[epoch - 1]
        if task.batch > 1:  # whole mini-batches: the few left over sit this epoch out
            perm = perm[: len(perm) // task.batch * task.batch]
        for idx, name in enumerate(list(learners.values)):
            if name == "shallow" and shallow.hit():
                continue
            for k, eta in enumerate(learners.forward[name], start=1):
                learners.values[name][f"W{k}.eta"] = eta * cfg.eta_decay ** (epoch - 1)
            trace = {"angle": lambda w: topdown_angles(tc, w)} if name == "circuit" else None
            recorded = None
            if spikes is not None and name == "circuit":
                labels = None if data.labels_train is None else data.labels_train[perm]
                recorded = spikes.callback(
                    f"epoch {epoch}: training patterns", cfg.spike_train_examples, labels,
                    {"kind": "training", "epoch": epoch, "nudge": cfg.nudge, "learning": True,
                     "train_indices": [int(i) for i in perm[: cfg.spike_train_examples]]},
                )  # fmt: skip
            last = name == "circuit" and epoch == epochs
            if last and firing:
                recorded = chained(recorded, firing["train_last_epoch"].add)
            values, ends, wall, traced = run_pass(
                tc, learners.values[name], data.x_train[perm], data.u_train[perm],
                nudge=cfg.nudge, learn=True, seed=run_seed(run.seed, epoch, idx), trace=trace,
                on_result=recorded,
            )  # fmt: skip
            learners.values[name] = values
            if name == "circuit":
                train_wall += wall
                seen += len(perm)
                angles.extend(traced["angle"])
                apical += [float(np.sqrt(np.mean(ends[f"vA{k}"] ** 2))) for k in range(1, N)]
            on_test = None
            if last:
                on_test = chained(recorded_test(epoch), firing["test"].add if firing else None)
            ev, ends_t = test_pass(tc, values, run_seed(run.seed, 9, epoch), on_test)
            learners.history[name].append(ev[key])
            if name == "circuit":
                last_eval, last_ends = ev, ends_t
            progress(1, f"epoch {epoch}/{epochs} {name}: {key} {ev[key]:.4g}")
    from_cache = shallow.finish() if cfg.shallow else []
    metrics = _train_set_metrics(run, tc, learners, key)
    progress(1, "test")
    bp, bp_cached = backprop_baseline_cached(task, run.seed)
    from_cache += ["backprop"] if bp_cached else []
    refs = (
        references_for(run.dataset, run.seed, cfg.n_train, cfg.n_test) if cfg.references else None
    )
    if refs is not None:  # MNIST-1D: logistic regression and the MLP on the raw data
        metrics["references"] = refs
    metrics.update(
        {
            f"test_{key}": last_eval[key],
            "test_mse": last_eval["mse"],
            "history": dict(learners.history),
            "backprop_baseline": bp,
            "shallow_baseline": learners.history["shallow"][-1] if cfg.shallow else None,
            "baselines_from_cache": from_cache,
            "apical_rms_start": apical[0] if apical else None,
            "apical_rms_end": apical[-1] if apical else None,
            "topdown_angle_deg_start": angles[0],
            "topdown_angle_deg_end": angles[-1],
            "epochs": epochs,
            "evaluation": task.evaluation,
            "eta_forward": list(cfg.eta_forward),
            "eta_decay": cfg.eta_decay,
            "eta_ip": cfg.eta_ip,
            "eta_pi": cfg.eta_pi,
            "samples_per_second": seen / train_wall if train_wall > 0 else None,
            "wall_seconds_training": train_wall,
            "simulated_seconds": tc.sim.duration_ms / 1000.0 * tc.runs,
        }
    )
    if task.batch > 1:  # mini-batch learning (batch 1 reports nothing, as before)
        metrics["batch"] = task.batch
    if firing:  # rates in Hz (issue 15), each pass's mean and most active cell, per group
        metrics["firing"] = {
            "max_rate_hz": task.params.max_rate_hz,
            "population": task.population,
            **{name: f.rates() for name, f in firing.items() if f.runs},
        }
    if cfg.shallow and data.task == "regression":
        metrics["mse_ratio_circuit_to_shallow"] = last_eval["mse"] / learners.history["shallow"][-1]
    w_end = task.circuit.named_weights_from_state(
        learners.values["circuit"], task.sizes, cfg.top_down
    )
    weights = {f"initial_{k}": v for k, v in w0.items()}
    weights.update(w_end)
    record = SupervisedRecord(
        pattern_ms=cfg.pattern_ms,
        metric=key,
        history=dict(learners.history),
        backprop_history=bp.get("history"),
        angles=np.asarray(angles, dtype=float),
        apical_rms=np.asarray(apical, dtype=float),
    )
    segments = [_segment(task.params.phi_numpy(last_ends["out"]), cfg.pattern_ms, epochs)]
    segments += spikes.segments if spikes is not None else []
    return ProtocolResult(metrics=metrics, segments=segments, weights=weights, data=record)


def _train_set_metrics(
    run: RunConfig, tc: TrainingCircuit, learners: Learners, key: str
) -> dict[str, Any]:
    """The training set with plasticity and nudging off (``train_eval``)."""
    task = tc.task
    if not task.cfg.train_eval:
        return {}
    data = task.data
    ends = evaluation_ends(
        tc, learners.values["circuit"], data.x_train, data.u_train, run_seed(run.seed, 8)
    )
    out: dict[str, Any] = {
        f"train_{key}": evaluate(task, ends["out"], data.y_train, data.labels_train)[key]
    }
    N = task.n_layers
    low, high = task.params.sensitive_range()
    potentials = {f"layer{k}": ends[f"u{k}"] for k in range(1, N)} | {f"layer{N}": ends["out"]}
    out.update(
        diagnostics.dead_units_per_layer(
            potentials, low, high,
            f"{low:.3g} < u < {high:.3g} (somatic potential where phi' = {task.phi}' is at least "
            "1 % of its maximum)",
            "training set, end of each pattern, trained weights, nudging and plasticity off",
        )
    )  # fmt: skip
    return out


def _segment(out_rates: np.ndarray, pattern_ms: float, epochs: int) -> SegmentRecord:
    signal = SignalRecord(
        "output_rates", out_rates, pattern_ms / 1000, pattern_ms / 1000, "dimensionless",
        {"description": "output rates at each test pattern end"},
    )  # fmt: skip
    return SegmentRecord("test", [], [signal], {"stage": "supervised", "epoch": epochs})

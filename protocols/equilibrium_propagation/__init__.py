"""Equilibrium Propagation on the layered Hopfield circuit (Scellier & Bengio 2017; DESIGN.md §4.3,
issue 4): ``neurosim run equilibrium-propagation``.

Two stages on a registered :class:`circuits.hopfield.HopfieldCircuit` (``hopfield`` or a
subclass with its own neuron model), time in ms, τ = 1 ms, so ``dt_ms`` is the step ε:

* ``train``: online learning, one example after another inside one run (or B side by side,
  learning mini-batches: ``circuit.batch``, two-phase and symmetric variants), in one of
  four variants — ``two-phase`` (free, then +β; ΔW = η/β (ρ^β ρ^βᵀ − ρ⁰ρ⁰ᵀ) at the start of the
  next example), ``symmetric`` (free, −β, +β; difference over 2β, Laborieux et al. 2021),
  ``continual`` (the error in ds/dt during the nudged phase, every step, Ernoult et al. 2020) and
  ``stochastic`` (Langevin noise; the difference of time averages over the last
  ``average_steps`` states of ±β, made by the centred continual rule with a ramped gain) — with
  the rate or the spiking read-out (:mod:`.training`). One build of P examples is compiled once
  and re-run for every chunk; after every epoch the test set runs through the same build at
  β = 0. A backprop network of the same sizes and initial weights is the baseline
  (:mod:`.baseline`); at the end, the gradient check on the trained weights and one test example
  recorded step by step (:mod:`.gradient_check`).
* ``gradient-check``: no learning; the circuit's EP update against −∇L of the twin for every β,
  one-sided and symmetric, and the continual rule against the end-point update for every step.

Settings: the ``[protocol]`` table (:mod:`.config`) and the presets in ``presets/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from models import equilibrium_propagation as ep
from neurosim import datasets as ds
from neurosim import diagnostics, registry
from neurosim.circuit import check_fits, params_from_table
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.protocol import Protocol, ProtocolResult, RunContext
from neurosim.recording import SegmentRecord, SignalRecord
from neurosim.records.equilibrium_propagation import EPRecord
from neurosim.registry import register_protocol
from neurosim.seeding import run_seed
from protocols.equilibrium_propagation import gradient_check as gc
from protocols.equilibrium_propagation.baseline import backprop_baseline
from protocols.equilibrium_propagation.config import (
    RULE_OF,
    STAGES,
    VARIANTS,
    EquilibriumPropagationConfig,
    Task,
)
from protocols.equilibrium_propagation.layout import Plan, timed_layout
from protocols.equilibrium_propagation.simulation import (
    Firing,
    Session,
    plan_of,
    rule_values,
    simulation,
    static_values,
)
from protocols.equilibrium_propagation.spikes import SpikeSampler
from protocols.equilibrium_propagation.training import run_chunks, train
from protocols.references import references_for

__all__ = [
    "RULE_OF",
    "STAGES",
    "VARIANTS",
    "EquilibriumPropagation",
    "EquilibriumPropagationConfig",
    "Plan",
    "Task",
]

#: the circuit every accepted circuit is an instance of (its class, or a subclass)
BASE_CIRCUIT = "hopfield"


def hopfield_circuits() -> tuple[str, ...]:
    """The registered circuits the protocol runs: ``hopfield`` and every circuit whose class
    derives from its class (a user's neuron model), ``hopfield`` first."""
    base = type(registry.circuit(BASE_CIRCUIT))
    others = sorted(
        name
        for name, entry in registry.CIRCUITS.items()
        if name != BASE_CIRCUIT and isinstance(entry.target, base)
    )
    return (BASE_CIRCUIT, *others)


class EquilibriumPropagation(Protocol):
    """Scellier & Bengio 2017: EP on a layered continuous-time Hopfield circuit in Brian2."""

    name = "equilibrium-propagation"
    summary = "EP on a layered Hopfield circuit: two-phase, symmetric, continual, stochastic"
    datasets = ("digits", "mnist1d", "npz")
    readouts = ("rate", "spiking")
    default_epochs = 10
    protocol_config = EquilibriumPropagationConfig

    @property
    def circuits(self) -> tuple[str, ...]:  # type: ignore[override]
        return hopfield_circuits()

    def default_preset(self, run: RunConfig) -> str | None:
        return self.preset_for(run, {})

    def preset_for(self, run: RunConfig, raw: Mapping[str, Any]) -> str | None:
        """By data set, read-out, stage and variant: ``<dataset>[-spiking][-continual|
        -stochastic]``, ``<dataset>-gradient-check`` (``npz`` for ``npz:PATH``)."""
        table = raw.get("protocol", {}) if isinstance(raw, Mapping) else {}
        dataset = ds.kind(run.dataset) or "digits"
        if dataset not in self.datasets:  # refused with the data sets it takes (pipeline)
            return None
        if table.get("stage") == "gradient-check":
            return f"{dataset}-gradient-check"
        name = dataset + ("-spiking" if run.readout == "spiking" else "")
        variant = table.get("variant", "two-phase")
        if variant in ("continual", "stochastic"):
            name += f"-{variant}"
        return name

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        assert isinstance(protocol, EquilibriumPropagationConfig)
        if run.readout != "spiking" and protocol.p_fail > 0:
            raise ConfigError("protocol.p_fail > 0 needs the spiking read-out (--readout spiking).")
        if protocol.plasticity == "spike-traces" and run.readout != "spiking":
            raise ConfigError(
                "protocol.plasticity = 'spike-traces' reads spike traces: it needs --readout "
                "spiking (the rate read-out fires no spikes; learn from rates with it)."
            )
        if protocol.stage == "gradient-check" and run.readout == "spiking":
            raise ConfigError(
                "stage gradient-check compares settled fixed points; it needs --readout rate."
            )
        if run.readout == "spiking" and circuit.max_rate_hz * protocol.dt_ms * 1e-3 > 1.0:
            raise ConfigError(
                f"the spiking read-out fires at most once per step: max_rate_hz·dt = "
                f"{circuit.max_rate_hz * protocol.dt_ms * 1e-3:g} > 1; lower protocol.dt_ms."
            )
        task = Task(run, protocol, circuit)  # sizes against the data set, per-layer lists
        hopfield = registry.circuit(run.circuit or BASE_CIRCUIT)
        plan = plan_of(task)
        example_ms = plan.example_steps * plan.dt_ms
        check_fits(  # the training build, the largest of a run
            hopfield,
            hopfield.Structure(
                sizes=plan.sizes, readout=plan.readout, plasticity=plan.compiled,
                example_ms=example_ms, record=_train_record(task, plan),
                record_dt_ms=plan.unit_steps * plan.dt_ms, examples=plan.P, batch=plan.batch,
                population=plan.population, learn_from=plan.learn_from,
            ),
        )  # fmt: skip

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        assert isinstance(protocol, EquilibriumPropagationConfig)
        if protocol.stage == "gradient-check":
            return 2 * len(protocol.grad_betas) + len(protocol.continual_dts)
        epochs = int(run.epochs or self.default_epochs)
        return epochs + 1 + (1 if protocol.grad_check else 0)

    def execute(self, ctx: RunContext) -> ProtocolResult:
        run, protocol = ctx.run, ctx.protocol
        circuit = registry.circuit(run.circuit or BASE_CIRCUIT)
        task = Task(run, protocol, ctx.circuit)
        params = params_from_table(circuit, ctx.circuit)
        ses = Session(run, task, circuit, params, plan_of(task))
        ctx.progress(0, "building")
        inputs = diagnostics.input_diagnostics(
            task.data.x_train, f"{task.data.name} (input code {task.data.input_code})"
        )
        if protocol.stage == "gradient-check":
            out = gc.gradient_check_stage(ses, ctx.progress)
        else:
            out = _train_stage(ses, ctx.rng, ctx.progress, int(run.epochs or self.default_epochs))
        out.metrics.update(
            {
                "stage": protocol.stage,
                "variant": task.variant,
                "dataset": task.data.name,
                "input_code": task.data.input_code,
                "sizes": task.sizes,
                "readout": task.readout,
                "plasticity": protocol.plasticity,
                "dt_ms": protocol.dt_ms,
                "beta": protocol.beta,
                **inputs,
                **ses.builds.metrics(),
            }
        )
        return out


def _train_record(task: Task, plan: Plan) -> dict[str, tuple[str, ...]]:
    """Recorded at the phase boundaries: every layer (the read-out, the dead-unit count and the
    gradient check)."""
    del task
    return {f"layer{k}": ("s",) for k in range(1, plan.n_layers + 1)}


def _label(ses: Session) -> str:
    return f"{ses.circuit.name}-{ses.task.variant}-{ses.task.readout}"


def _train_stage(
    ses: Session, rng: np.random.Generator, progress: Any, epochs: int
) -> ProtocolResult:
    """Train, test after every epoch, the baseline, the gradient check and the trace."""
    task, cfg, plan, run = ses.task, ses.task.cfg, ses.plan, ses.run
    data = task.data
    spikes = SpikeSampler(ses) if task.readout == "spiking" else None
    sim = ses.builds.add(
        simulation(
            ses.circuit, plan, ses.params, run.device, n_examples=plan.P,
            record=_train_record(task, plan), record_steps=plan.unit_steps, label=_label(ses),
            p_fail=cfg.p_fail, cuda_seed=run_seed(run.seed, 0),
            spike_cells=spikes.cells if spikes else None,
        )
    )  # fmt: skip
    w0 = {
        name: v.numpy().copy()
        for name, v in ep.init_weights(
            task.sizes, seed=run.seed, scale=task.w_scale, bias_scale=cfg.bias_scale
        ).items()
    }
    values: dict[str, Any] = {
        **ses.weight_values(w0, plan.batch),
        **static_values(ses.circuit, plan, cfg.p_fail),
    }
    # spiking: the spikes of the last test pass and of the last training epoch
    spiking = plan.readout == "spiking"
    firing = {"test": Firing(ses.circuit, plan), "train_last_epoch": Firing(ses.circuit, plan)}

    def counted(name: str) -> Any:
        def on_result(chunk: int, result: Any) -> None:
            ses.builds.count()
            if spiking:
                firing[name].add(chunk, result)

        return on_result

    metric = task.metric  # accuracy (classification) or mse (regression)

    def score(outputs: np.ndarray, part: str, rows: np.ndarray | None = None) -> float:
        # regression: the mean squared error of the output rates ρ(s_N)
        return task.score(ses.rates_of(outputs) if task.regression else outputs, part, rows)

    def test(vals: Mapping[str, Any], seed: int, recorded_epoch: int | None = None) -> float:
        on_result = counted("test")
        if spikes is not None and recorded_epoch is not None:  # spike trains of a few examples
            on_result = spikes.test_callback(recorded_epoch, on_result)
        done = run_chunks(
            sim, ses.circuit, plan, vals, data.x_test, task.d_test, learn=False, seed=seed,
            on_result=on_result,
        )  # fmt: skip
        return score(done.outputs, "test")

    progress(0, "testing the untrained circuit")
    history: dict[str, list] = {
        f"test_{metric}": [test(values, run_seed(run.seed, 9, 0), 0)],
        f"train_{metric}_online": [],
        "lr_scale": [],
        "wall_seconds": [],
    }
    seen = [0]
    last_states: dict[str, np.ndarray] = {}

    def after_epoch(epoch: int, done: Any, perm: np.ndarray) -> None:
        last_states.clear()
        last_states.update(done.free_states)
        if spikes is not None:
            spikes.end_epoch(epoch, perm)
        last = epoch + 1 == epochs
        acc = test(done.values, run_seed(run.seed, 9, epoch + 1), epoch + 1 if last else None)
        seen[0] += len(perm)
        history[f"test_{metric}"].append(acc)
        history[f"train_{metric}_online"].append(score(done.outputs, "train", perm))
        history["lr_scale"].append(cfg.lr_decay**epoch)
        history["wall_seconds"].append(done.wall_seconds)
        progress(1, f"epoch {epoch + 1}/{epochs}: test {metric} {acc:.4f}")

    values = train(
        sim, ses.circuit, plan, values, data.x_train, task.d_train, epochs=epochs, rng=rng,
        lr_decay=cfg.lr_decay, epoch_seed=lambda e: run_seed(run.seed, e + 1),
        on_epoch=after_epoch,
        on_result=(
            spikes.training_callback(counted("train_last_epoch"))
            if spikes
            else counted("train_last_epoch")
        ),
    )  # fmt: skip
    train_wall = float(sum(history["wall_seconds"]))
    metrics: dict[str, Any] = {}
    if spiking:  # rates in Hz (issue 15), each pass's mean and most active cell, per layer
        metrics["firing"] = {
            "max_rate_hz": ses.params.max_rate_hz,
            "population": plan.population,
            **{name: f.rates() for name, f in firing.items() if f.runs},
        }
    if cfg.train_eval:
        done = run_chunks(
            sim, ses.circuit, plan, values, data.x_train, task.d_train, learn=False,
            seed=run_seed(run.seed, 8), on_result=ses.builds.count,
        )  # fmt: skip
        metrics[f"train_{metric}"] = score(done.outputs, "train")
        states, over = done.free_states, "training set, end of the free phase, trained weights"
    else:
        metrics[f"train_{metric}"] = history[f"train_{metric}_online"][-1]
        states, over = last_states, "training set, end of the free phase, last epoch (online)"
    low, high = ses.circuit.neuron_for(ses.params).sensitive
    metrics.update(
        diagnostics.dead_units_per_layer(
            states, low, high, f"{low:g} < s < {high:g} (the neuron's rho' is not negligible)",
            over,
        )
    )  # fmt: skip
    w_end = ses.circuit.weights_from_state(ses.circuit.Structure(sizes=plan.sizes), values)
    progress(1, "backprop baseline")
    bp = backprop_baseline(task, w0, epochs, run.seed)
    split = (cfg.n_train or None, cfg.n_test or None)
    refs = references_for(run.dataset, run.seed, *split) if cfg.references else None
    if refs is not None:  # MNIST-1D: logistic regression and the MLP on the raw data
        metrics["references"] = refs
    grad, curve = _gradient_check(ses, sim, w_end, w0, progress)
    trace = _trace(ses, w_end) if cfg.traces else None
    metrics.update(_training_metrics(ses, history, bp, grad, epochs, seen[0], train_wall))
    weights = {f"initial_{k}": v for k, v in w0.items()}
    weights.update(w_end)
    record = EPRecord(
        stage="train", variant=task.variant, history=history,
        backprop_history=bp.get("history"), grad_curve=curve, trace=trace,
    )  # fmt: skip
    segments = _segments(ses, history, trace) + (spikes.segments if spikes else [])
    return ProtocolResult(metrics=metrics, segments=segments, weights=weights, data=record)


def _training_metrics(
    ses: Session,
    history: Mapping[str, list],
    bp: Mapping[str, Any],
    grad: Mapping[str, Any],
    epochs: int,
    seen: int,
    train_wall: float,
) -> dict[str, Any]:
    """The training stage's metrics: accuracies, baseline, gradient check and settings."""
    task, cfg, plan = ses.task, ses.task.cfg, ses.plan
    traces = {}
    if plan.learn_from == "spike-traces":  # the rule's trace time constant and its windows
        window = plan.window_steps
        traces = {"spike_traces": {"tau_nu_ms": plan.trace_tau_ms, "window_steps": window}}
    curve = history[f"test_{task.metric}"]
    return {
        **traces,
        f"test_{task.metric}": curve[-1],
        f"best_test_{task.metric}": min(curve) if task.regression else max(curve),
        "history": history,
        "backprop_baseline": bp,
        **grad,
        "epochs": epochs,
        "free_steps": task.free_steps,
        "nudged_steps": task.nudged_steps,
        "average_steps": task.average_steps if task.variant == "stochastic" else None,
        "sigma": task.sigma,
        "centred": task.centred if task.rule == "continual" else None,
        "lr": task.rates,
        "lr_decay": cfg.lr_decay,
        "w_scale": task.w_scale,
        "continual_gain": task.continual_gain if task.rule == "continual" else None,
        "examples_per_run": task.P,
        "n_train": len(task.data.x_train),
        "n_test": len(task.data.x_test),
        "samples_per_second": seen / train_wall if train_wall > 0 else None,
        "wall_seconds_training": train_wall,
        "simulated_seconds_training": seen * plan.example_steps * plan.dt_ms / 1000.0,
    }


def _gradient_check(
    ses: Session, sim: Any, w_end: Mapping[str, np.ndarray], w0: Mapping[str, np.ndarray],
    progress: Any,
) -> tuple[dict[str, Any], dict[str, Any] | None]:  # fmt: skip
    """The training stage's gradient check, unless it is off or the circuit's neuron is not the
    twin's (the twin's gradient is then no reference)."""
    if not ses.task.cfg.grad_check:
        return {}, None
    if ses.circuit.neuron != type(registry.circuit(BASE_CIRCUIT)).neuron:
        return {"grad_check_skipped": "the circuit's neuron model is not the torch twin's"}, None
    return gc.check_trained(ses, sim, w_end, w0, progress)


def _trace(ses: Session, w: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """One test example through the variant's phases with the trained weights held fixed
    (learning rates 0, β as in training): states s and their rate of change ρ'ṡ (``rdot``) of
    every layer at every step (a one-example build of the same layout)."""
    task, plan, run = ses.task, ses.plan, ses.run
    N, one = plan.n_layers, replace(plan, P=1, batch=1)
    sim = ses.builds.add(
        simulation(
            ses.circuit, one, ses.params, run.device, n_examples=1,
            record={f"layer{k}": ("s", "rdot") for k in range(1, N + 1)}, record_steps=1,
            label=f"{_label(ses)}-trace", p_fail=task.cfg.p_fail, cuda_seed=run_seed(run.seed, 0),
        )
    )  # fmt: skip
    x, d = task.data.x_test[:1], task.d_test[:1]
    tv, _, example_ms = timed_layout(ses.circuit, one, x, d, np.array([plan.beta]))
    values = {
        **ses.weight_values(w),
        **static_values(ses.circuit, one, task.cfg.p_fail),
        **rule_values(ses.circuit, one, 0.0),
    }
    result = sim.run(values=values, timed=tv, seed=run_seed(run.seed, 4))
    ses.builds.count()
    e = round(example_ms / plan.dt_ms)
    out: dict[str, Any] = {
        "dt_ms": plan.dt_ms,
        "beta": np.repeat(tv["beta"][:-1], e // (len(tv["beta"]) - 1)),
        "x": x[0],
        "free_steps": plan.free_steps,
        "nudged_steps": plan.nudged_steps,
        "label": None if task.regression else int(task.data.labels_test[0]),
    }
    for k in range(1, N + 1):
        out[f"s{k}"] = result.monitors[f"layer{k}"]["s"][: e + 1]
        out[f"rdot{k}"] = result.monitors[f"layer{k}"]["rdot"][: e + 1]
    return out


def _segments(
    ses: Session, history: Mapping[str, list], trace: Mapping[str, Any] | None
) -> list[SegmentRecord]:
    """The learning curve, and the traced example's states every step."""
    variant, dt, metric = ses.task.variant, ses.plan.dt_ms, ses.task.metric
    period = ses.plan.example_steps * dt / 1000.0
    what = "mean squared error of the output rates" if ses.task.regression else "accuracy"
    segments = [
        SegmentRecord(
            "learning", [],
            [
                SignalRecord(
                    f"test_{metric}", np.asarray(history[f"test_{metric}"])[:, None], period,
                    0.0, "dimensionless", {"description": f"test {what} after each epoch"},
                )
            ],
            {"variant": variant, "epochs": len(history[f"test_{metric}"]) - 1},
        )
    ]  # fmt: skip
    if trace is not None:
        segments.append(
            SegmentRecord(
                "one-example", [],
                [
                    SignalRecord(
                        f"s{k}", trace[f"s{k}"], dt / 1000, 0.0, "dimensionless",
                        {"description": f"states of layer {k}, one example, every step"},
                    )
                    for k in range(1, ses.plan.n_layers + 1)
                ],
                {"variant": variant},
            )
        )  # fmt: skip
    return segments


register_protocol(
    EquilibriumPropagation.name, EquilibriumPropagation.summary, EquilibriumPropagation
)

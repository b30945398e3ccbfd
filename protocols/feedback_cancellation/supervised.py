"""Stage ``supervised``: inputs and targets as TimedArrays, one pattern every ``pattern_ms``, the
output nudged toward the target potential, all rules on. After each epoch the test set runs with
nudging and plasticity off; accuracy (argmax of the output rates at the end of each pattern) or
MSE (‖φ(u_N) − r_target‖² per pattern). A shallow learner (the same compiled circuit with the
hidden forward weights frozen) and a backprop baseline (torch, same architecture) run on the same
split. The forward learning rates decay by ``eta_decay`` per epoch: per-pattern SGD noise sets
the accuracy floor at a constant rate; the lateral rules keep their rates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurosim import diagnostics
from neurosim.config import RunConfig
from neurosim.protocol import ProtocolResult
from neurosim.recording import SegmentRecord, SignalRecord
from neurosim.records.microcircuit import SupervisedRecord
from neurosim.seeding import run_seed
from protocols.feedback_cancellation.evaluation import (
    angle_deg,
    backprop_baseline,
    evaluate,
    metric_key,
)
from protocols.feedback_cancellation.simulation import (
    TrainingCircuit,
    frozen_etas,
    learning_values,
    run_pass,
)
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


def test_pass(tc: TrainingCircuit, values: dict[str, Any], seed: int) -> tuple[dict, dict]:
    """The test set with nudging and plasticity off: the metrics and the pattern ends."""
    task = tc.task
    data = task.data
    v = {**values, **frozen_etas(task)}
    _, ends, _, _ = run_pass(tc, v, data.x_test, data.u_test, nudge=0.0, learn=False, seed=seed)
    return evaluate(task, ends["out"], data.y_test, data.labels_test), ends


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
    progress(0, "testing the untrained circuit")
    # the learners differ only in their learning rates, which a test pass sets to 0: one pass
    untrained = test_pass(tc, learners.values["circuit"], run_seed(run.seed, 9, 0))[0][key]
    for name in learners.values:
        learners.history[name].append(untrained)
    angles, apical = [topdown_angles(tc, w0)], []
    train_wall, seen = 0.0, 0
    last_eval: dict[str, float] = {}
    last_ends: dict[str, np.ndarray] = {}
    for epoch in range(1, epochs + 1):
        perm = rng.permutation(len(data.x_train))
        for idx, name in enumerate(list(learners.values)):
            for k, eta in enumerate(learners.forward[name], start=1):
                learners.values[name][f"W{k}.eta"] = eta * cfg.eta_decay ** (epoch - 1)
            trace = {"angle": lambda w: topdown_angles(tc, w)} if name == "circuit" else None
            values, ends, wall, traced = run_pass(
                tc, learners.values[name], data.x_train[perm], data.u_train[perm],
                nudge=cfg.nudge, learn=True, seed=run_seed(run.seed, epoch, idx), trace=trace,
            )  # fmt: skip
            learners.values[name] = values
            if name == "circuit":
                train_wall += wall
                seen += len(perm)
                angles.extend(traced["angle"])
                apical += [float(np.sqrt(np.mean(ends[f"vA{k}"] ** 2))) for k in range(1, N)]
            ev, ends_t = test_pass(tc, values, run_seed(run.seed, 9, epoch))
            learners.history[name].append(ev[key])
            if name == "circuit":
                last_eval, last_ends = ev, ends_t
            progress(1, f"epoch {epoch}/{epochs} {name}: {key} {ev[key]:.4g}")
    metrics = _train_set_metrics(run, tc, learners, key)
    progress(1, "test")
    bp = backprop_baseline(task, run.seed)
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
            "apical_rms_start": apical[0] if apical else None,
            "apical_rms_end": apical[-1] if apical else None,
            "topdown_angle_deg_start": angles[0],
            "topdown_angle_deg_end": angles[-1],
            "epochs": epochs,
            "eta_forward": list(cfg.eta_forward),
            "eta_decay": cfg.eta_decay,
            "eta_ip": cfg.eta_ip,
            "eta_pi": cfg.eta_pi,
            "samples_per_second": seen / train_wall if train_wall > 0 else None,
            "wall_seconds_training": train_wall,
            "simulated_seconds": tc.sim.duration_ms / 1000.0 * tc.runs,
        }
    )
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
    return ProtocolResult(metrics=metrics, segments=segments, weights=weights, data=record)


def _train_set_metrics(
    run: RunConfig, tc: TrainingCircuit, learners: Learners, key: str
) -> dict[str, Any]:
    """The training set with plasticity and nudging off (``train_eval``)."""
    task = tc.task
    if not task.cfg.train_eval:
        return {}
    data = task.data
    v = {**learners.values["circuit"], **frozen_etas(task)}
    _, ends, _, _ = run_pass(
        tc, v, data.x_train, data.u_train, nudge=0.0, learn=False, seed=run_seed(run.seed, 8)
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

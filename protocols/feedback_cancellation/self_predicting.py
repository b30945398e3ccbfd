"""Stage ``self-predicting``: from random lateral weights and without a target (nudging 0), only
the two lateral rules learn (W^IP, W^PI) until the interneurons cancel the top-down input and the
apical potentials fall silent. Reported: the apical RMS at the start and end, the correlation of
the interneurons' rates with the next layer's pyramidal rates, and the cosine of the learned
lateral weights with the closed form (W^PI = −B, W^IP = c W_{k+1})."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from neurosim.config import RunConfig
from neurosim.protocol import ProtocolResult
from neurosim.recording import SegmentRecord, SignalRecord
from neurosim.records.microcircuit import SelfPredictingRecord
from neurosim.seeding import run_seed
from protocols.feedback_cancellation.evaluation import cosine, pearson
from protocols.feedback_cancellation.simulation import (
    TrainingCircuit,
    etas,
    frozen_etas,
    run_pass,
    start_values,
)
from protocols.feedback_cancellation.task import initial_weights


def presentation_order(rng: np.random.Generator, n_items: int, n: int) -> np.ndarray:
    """``n`` indices into ``n_items`` examples: whole random permutations, one after another."""
    return np.concatenate([rng.permutation(n_items) for _ in range(n // n_items + 1)])[:n]


def closed_form_cosines(tc: TrainingCircuit, w: dict[str, np.ndarray]) -> dict[str, float]:
    """Cosine of every lateral weight with its closed form for the current W and B."""
    task = tc.task
    closed = task.circuit.self_predicting_weights(w, task.params, task.sizes)
    return {name: cosine(w[name], closed[name]) for name in closed}


def train_self_predicting(
    run: RunConfig, tc: TrainingCircuit, rng: np.random.Generator, progress: Callable
) -> ProtocolResult:
    """Learn the self-predicting state from random lateral weights; probe held-out inputs with
    plasticity off before and after."""
    task = tc.task
    cfg, N = task.cfg, task.n_layers
    w0 = initial_weights(task, rng, "random")
    eta_ip, eta_pi = cfg.self_predicting_eta_ip, cfg.self_predicting_eta_pi
    values = start_values(task, w0, tc.readout)
    values.update(etas(task, forward=[0.0] * N, ip=eta_ip, pi=eta_pi))
    n = cfg.self_predicting_patterns
    x = task.data.x_train[presentation_order(rng, len(task.data.x_train), n)]
    x_probe = task.data.x_test[: task.P]

    def probe(vals: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
        """Held-out test inputs with plasticity off: the state the weights produce."""
        frozen = {**vals, **frozen_etas(task)}
        return run_pass(tc, frozen, x_probe, None, nudge=0.0, learn=False, seed=seed)[1]

    progress(0, "probing the initial state")
    before = probe(values, run_seed(run.seed, 2))
    values, ends, wall, traced = run_pass(
        tc, values, x, None, nudge=0.0, learn=True, seed=run_seed(run.seed, 1),
        trace={"cos": lambda w: closed_form_cosines(tc, w)},
    )  # fmt: skip
    after = probe(values, run_seed(run.seed, 3))
    progress(1, "self-predicting")
    w_end = task.circuit.named_weights_from_state(values, task.sizes, cfg.top_down)
    rms_series = np.stack(
        [np.sqrt(np.mean(ends[f"vA{k}"] ** 2, axis=1)) for k in range(1, N)], axis=1
    )
    metrics = _apical_metrics(tc, before, after, rms_series, n, len(x_probe))
    metrics.update(_lateral_metrics(tc, before, after, w0, w_end))
    sim_s = n * cfg.pattern_ms / 1000.0
    metrics.update(
        {
            "patterns": n,
            "eta_ip": eta_ip,
            "eta_pi": eta_pi,
            "simulated_seconds": math.ceil(n / task.P) * task.P * cfg.pattern_ms / 1000.0,
            "wall_seconds_simulation": wall,
            "samples_per_second": n / wall if wall > 0 else None,
            "simulated_seconds_per_wall_second": sim_s / wall if wall > 0 else None,
        }
    )
    phi = task.params.phi_numpy
    cos_end = closed_form_cosines(tc, w_end)
    record = SelfPredictingRecord(
        pattern_ms=cfg.pattern_ms,
        apical_rms=rms_series,
        interneuron_rates={k: phi(after[f"uI{k}"]) for k in range(1, N)},
        next_layer_rates={k: phi(after[f"u{k + 1}"]) for k in range(1, N)},
        interneuron_rates_start={k: phi(before[f"uI{k}"]) for k in range(1, N)},
        next_layer_rates_start={k: phi(before[f"u{k + 1}"]) for k in range(1, N)},
        lateral_cosine_trace={name: np.array([c[name] for c in traced["cos"]]) for name in cos_end},
    )
    weights = {f"initial_{k}": v for k, v in w0.items()}
    weights.update(w_end)
    segments = [_segment(rms_series, cfg.pattern_ms)]
    return ProtocolResult(metrics=metrics, segments=segments, weights=weights, data=record)


def _apical_metrics(
    tc: TrainingCircuit, before: dict, after: dict, rms_series: np.ndarray, n: int, n_probe: int
) -> dict[str, Any]:
    """Apical RMS on the probe inputs before and after, and over the first and last patterns."""
    N = tc.task.n_layers
    m = min(tc.task.cfg.window, max(1, n // 4))

    def rms(e: dict[str, np.ndarray]) -> float:
        return float(np.sqrt(np.mean([np.mean(e[f"vA{k}"] ** 2) for k in range(1, N)])))

    metrics: dict[str, Any] = {
        "apical_rms_start": rms(before),
        "apical_rms_end": rms(after),
        "apical_rms_learning_first": float(np.mean(rms_series[:m])),
        "apical_rms_learning_last": float(np.mean(rms_series[-m:])),
        "probe_patterns": n_probe,
    }
    metrics["apical_rms_ratio"] = metrics["apical_rms_start"] / max(
        metrics["apical_rms_end"], 1e-300
    )
    return metrics


def _lateral_metrics(
    tc: TrainingCircuit, before: dict, after: dict, w0: dict, w_end: dict
) -> dict[str, Any]:
    """Interneuron correlations with the next layer and lateral cosines with the closed form."""
    task = tc.task
    N, phi, gain_i = task.n_layers, task.params.phi_numpy, task.params.inter_dendrite_gain
    cos_start, cos_end = closed_form_cosines(tc, w0), closed_form_cosines(tc, w_end)

    def prediction(e: dict[str, np.ndarray], w: dict[str, np.ndarray], k: int) -> np.ndarray:
        """The interneurons' dendritic prediction φ(v̂_I) = φ(g_D/(g_lk + g_D) W^IP r_k)."""
        return phi(gain_i * phi(e[f"u{k}"]) @ w[f"WIP{k}"].T)

    metrics: dict[str, Any] = {}
    for k in range(1, N):
        rI0, rn0 = phi(before[f"uI{k}"]), phi(before[f"u{k + 1}"])
        rI, rn = phi(after[f"uI{k}"]), phi(after[f"u{k + 1}"])
        metrics[f"interneuron_correlation_start_{k}"] = pearson(rI0, rn0)
        metrics[f"interneuron_correlation_end_{k}"] = pearson(rI, rn)
        # the somatic rate is nudged by u_{k+1} and correlates from the start; what the
        # lateral rule learns is the dendritic prediction of it
        metrics[f"interneuron_prediction_correlation_start_{k}"] = pearson(
            prediction(before, w0, k), rn0
        )
        metrics[f"interneuron_prediction_correlation_end_{k}"] = pearson(
            prediction(after, w_end, k), rn
        )
        for kind in ("WPI", "WIP"):
            metrics[f"cosine_{kind}{k}_closed_form_start"] = cos_start[f"{kind}{k}"]
            metrics[f"cosine_{kind}{k}_closed_form_end"] = cos_end[f"{kind}{k}"]
        metrics.update(_on_data_cosines(tc, k, before, after, w0, w_end))
    metrics["interneuron_correlation_end"] = min(
        metrics[f"interneuron_correlation_end_{k}"] for k in range(1, N)
    )
    metrics["interneuron_prediction_correlation_end"] = min(
        metrics[f"interneuron_prediction_correlation_end_{k}"] for k in range(1, N)
    )
    metrics["lateral_cosine_end"] = min(cos_end.values())
    return metrics


def _on_data_cosines(
    tc: TrainingCircuit, k: int, before: dict, after: dict, w0: dict, w_end: dict
) -> dict[str, float]:
    """The closed-form comparison on the rates the circuit sees: directions of W^IP that no
    presented r_k excites are never changed by the rule (digits: rank-deficient rates)."""
    task, phi = tc.task, tc.task.params.phi_numpy
    out = {}
    for when, e, w in (("start", before, w0), ("end", after, w_end)):
        closed = task.circuit.self_predicting_weights(w, task.params, task.sizes)
        r_k, r_i = phi(e[f"u{k}"]), phi(e[f"uI{k}"])
        out[f"cosine_WIP{k}_closed_form_on_data_{when}"] = cosine(
            r_k @ w[f"WIP{k}"].T, r_k @ closed[f"WIP{k}"].T
        )
        out[f"cosine_WPI{k}_closed_form_on_data_{when}"] = cosine(
            r_i @ w[f"WPI{k}"].T, r_i @ closed[f"WPI{k}"].T
        )
    return out


def _segment(rms_series: np.ndarray, pattern_ms: float) -> SegmentRecord:
    signal = SignalRecord(
        "apical_rms", rms_series, pattern_ms / 1000, pattern_ms / 1000, "dimensionless",
        {"description": "RMS of the hidden apical potentials at each pattern end"},
    )  # fmt: skip
    return SegmentRecord("self-predicting", [], [signal], {"stage": "self-predicting"})

"""From the runs to what a run writes: metrics, the typed record for ``analysis/``, the neo
segments and the weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from neurosim.engine import RunResult
from neurosim.neurons import sigmoid_rate
from neurosim.protocol import ProtocolResult
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord
from neurosim.records.dendritic_prediction import DendriticPredictionRecord, RateFunction
from protocols.dendritic_prediction.config import DendriticPredictionConfig
from protocols.dendritic_prediction.training import Training


def prediction(
    result: RunResult, params: Any, cfg: DendriticPredictionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """φ(V*_w) at each sample of a run, and the sample's step within the pattern."""
    soma = result.monitors["soma"]
    v_star = params.g_D / (params.g_L + params.g_D) * soma["V_w"][:, 0]
    rate = sigmoid_rate(v_star, params.phi_max, params.k, params.beta, params.theta)
    step = np.round(soma["t"] * 1000.0 / cfg.dt_ms).astype(np.int64) % cfg.pattern_steps
    return rate, step


def result(
    training: Training,
    params: Any,
    cfg: DendriticPredictionConfig,
    timed: dict[str, np.ndarray],
    w0: np.ndarray,
    readout: str,
) -> ProtocolResult:
    """Everything the run produced, put together."""
    runs = training.runs
    duration_ms = cfg.repetitions_per_epoch * cfg.pattern_ms
    pred_parts, step_parts = zip(*(prediction(r, params, cfg) for r in runs), strict=True)
    test_pred, test_step = prediction(training.test, params, cfg)
    weights_t = np.concatenate(
        [r.monitors["weights"]["t"] + k * duration_ms / 1000 for k, r in enumerate(runs)]
    )
    weights_w = np.concatenate([r.monitors["weights"]["w"] for r in runs], axis=0)
    record = DendriticPredictionRecord(
        prediction=np.concatenate(pred_parts),
        pattern_step=np.concatenate(step_parts),
        test_prediction=test_pred,
        test_pattern_step=test_step,
        teacher_gE=timed["teacher_gE"],
        teacher_gI=timed["teacher_gI"],
        reversal=(params.E_E, params.E_I),
        rate_function=RateFunction(params.phi_max, params.k, params.beta, params.theta),
        samples_per_repetition=cfg.samples_per_repetition,
        correlation_repetitions=cfg.correlation_repetitions,
        weights_t=weights_t,
        weights=weights_w,
        pattern_t_ms=np.arange(cfg.samples_per_repetition) * cfg.record_dt_ms,
    )
    return ProtocolResult(
        metrics=metrics(training, cfg, readout),
        segments=segments(training, cfg, weights_t, weights_w),
        weights={
            "dendritic_w": training.final_w,
            "initial_dendritic_w": w0,
            "dendritic_w_trajectory": weights_w,
            "trajectory_t_s": weights_t,
        },
        data=record,
    )


def metrics(training: Training, cfg: DendriticPredictionConfig, readout: str) -> dict[str, Any]:
    """The run's own numbers (the analysis adds the correlations)."""
    runs = training.runs
    epochs = len(runs)
    duration_ms = cfg.repetitions_per_epoch * cfg.pattern_ms
    wall = training.wall_seconds
    n_spikes = sum(len(r.monitors.get("output_spikes", {"t": []})["t"]) for r in runs)
    simulated = (epochs + 1) * duration_ms / 1000.0
    return {
        "readout": readout,
        "epochs": epochs,
        "repetitions": epochs * cfg.repetitions_per_epoch,
        "wall_seconds_simulation": wall,
        "compile_seconds": training.compile_seconds,
        "compilations": training.compilations,
        "simulated_seconds": simulated,
        "simulated_seconds_per_wall_second": simulated / wall if wall > 0 else None,
        "build_dir": str(training.build_dir) if training.build_dir else None,
        "learning_rate_eta": cfg.eta,
        "final_mean_weight": float(np.mean(training.final_w)),
        "output_rate_hz_learning": n_spikes / (epochs * duration_ms / 1000.0),
    }


def segments(
    training: Training,
    cfg: DendriticPredictionConfig,
    weights_t: np.ndarray,
    weights_w: np.ndarray,
) -> list[SegmentRecord]:
    """One neo segment per epoch, one for the test run (with every input's spikes) and the
    weight trajectory of the whole learning phase as one signal (neo's NixIO stores every
    channel as its own data array, so one signal instead of one per epoch)."""
    epochs = len(training.runs)
    duration_ms = cfg.repetitions_per_epoch * cfg.pattern_ms
    n_inputs = weights_w.shape[1]
    out = [
        run_segment(f"epoch {k + 1}", r, k * duration_ms / 1000, duration_ms, cfg)
        for k, r in enumerate(training.runs)
    ]
    out.append(
        run_segment("test", training.test, epochs * duration_ms / 1000, duration_ms, cfg, n_inputs)
    )
    out.append(
        SegmentRecord(
            "weights",
            [],
            [
                SignalRecord(
                    "w",
                    weights_w,
                    cfg.pattern_ms / 1000,
                    float(weights_t[0]),
                    "dimensionless",
                    {"description": "dendritic weights during learning, one channel each"},
                )
            ],
            {"description": "weights sampled once per pattern repetition"},
        )
    )
    return out


def run_segment(
    name: str,
    result: RunResult,
    t0_s: float,
    duration_ms: float,
    cfg: DendriticPredictionConfig,
    n_inputs: int = 0,
) -> SegmentRecord:
    """One neo segment: output spikes, somatic/dendritic potentials (and every input's spikes)."""
    t_stop = t0_s + duration_ms / 1000.0
    spikes = []
    if "output_spikes" in result.monitors:
        spikes.append(
            SpikeRecord(
                "output",
                result.monitors["output_spikes"]["t"] + t0_s,
                t0_s,
                t_stop,
                {"population": "output", "neuron": 0},
            )
        )
    if n_inputs:  # every input's train, including inputs silent in the pattern
        mon = result.monitors["input_spikes"]
        for i in range(n_inputs):
            spikes.append(
                SpikeRecord(
                    f"input {i}",
                    mon["t"][mon["i"] == i] + t0_s,
                    t0_s,
                    t_stop,
                    {"population": "inputs", "neuron": i},
                )
            )
    soma = result.monitors["soma"]
    signals = [
        SignalRecord(
            variable,
            soma[variable],
            cfg.record_dt_ms / 1000,
            t0_s + soma["t"][0],
            "dimensionless",
            {"description": description},
        )
        for variable, description in (("U", "somatic potential"), ("V_w", "dendritic potential"))
    ]
    return SegmentRecord(name, spikes, signals, {"duration_ms": duration_ms})

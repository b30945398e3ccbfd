"""Figures of the feedback-cancellation protocol (Sacramento et al. 2018, DESIGN.md §4.2), drawn
from plain arrays: the apical potentials falling silent while the self-predicting state is
learned, interneuron against next-layer rates, the apical potentials and weight updates against
backprop's error and gradient (error transport), learning curves of the circuit, the shallow
learner and backprop, and the angle between forward and top-down weights over training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.figures import save_figure
from neurosim.records.microcircuit import (
    ErrorTransportRecord,
    FeedbackCancellationRecord,
    SelfPredictingRecord,
)


def plot_apical_rms(rms: np.ndarray, pattern_ms: float, path: str | Path) -> Path:
    """RMS of the hidden apical potentials at each pattern's end, one line per hidden layer."""
    rms = np.atleast_2d(np.asarray(rms, dtype=float))
    if rms.shape[0] == 1 and rms.ndim == 2 and rms.shape[1] > 1:
        rms = rms.T
    t = np.arange(1, rms.shape[0] + 1) * pattern_ms / 1000.0
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    window = max(1, min(100, rms.shape[0] // 20))
    for k in range(rms.shape[1]):
        raw = np.maximum(rms[:, k], 1e-12)
        (line,) = ax.semilogy(t, raw, lw=0.5, alpha=0.3)
        if window > 1:  # the per-pattern RMS scatters: a running mean shows the trend
            smooth = np.convolve(raw, np.ones(window) / window, mode="valid")
            ax.semilogy(
                t[window - 1 :],
                smooth,
                lw=1.8,
                color=line.get_color(),
                label=f"hidden layer {k + 1} (mean of {window} patterns)",
            )
        else:
            line.set_label(f"hidden layer {k + 1}")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("apical potential RMS")
    ax.set_title("Interneurons learn to cancel the top-down input")
    ax.legend(loc="upper right")
    return save_figure(fig, path)


def plot_interneuron_rates(
    inter: np.ndarray,
    nxt: np.ndarray,
    path: str | Path,
    inter_start: np.ndarray | None = None,
    nxt_start: np.ndarray | None = None,
) -> Path:
    """Scatter of interneuron rates against the next layer's pyramidal rates (same pattern end)."""
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if inter_start is not None and nxt_start is not None:
        ax.plot(np.ravel(nxt_start), np.ravel(inter_start), ".", ms=2, alpha=0.4, label="start")
    ax.plot(np.ravel(nxt), np.ravel(inter), ".", ms=2, alpha=0.6, label="end")
    lo = float(min(np.min(nxt), np.min(inter)))
    hi = float(max(np.max(nxt), np.max(inter)))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("next-layer pyramidal rate φ(u_{k+1})")
    ax.set_ylabel("interneuron rate φ(u^I_k)")
    ax.legend(loc="upper left")
    return save_figure(fig, path)


def plot_learning_curves(
    curves: Mapping[str, Sequence[float]],
    metric: str,
    path: str | Path,
    backprop: Sequence[float] | None = None,
) -> Path:
    """Test accuracy or MSE after each epoch (epoch 0: before training)."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for name, values in curves.items():
        ax.plot(np.arange(len(values)), values, "o-", ms=3, label=name)
    if backprop:
        ax.plot(np.arange(1, len(backprop) + 1), backprop, "-", lw=1, label="backprop (torch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test {metric}")
    if metric == "mse":
        ax.set_yscale("log")
    ax.legend()
    return save_figure(fig, path)


def plot_angles(angles: np.ndarray, path: str | Path) -> Path:
    """Angle between W_{k+1} and B_kᵀ (degrees) at the start and after every training run."""
    a = np.asarray(angles, dtype=float)
    a = a.reshape(len(a), -1)
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for k in range(a.shape[1]):
        ax.plot(np.arange(len(a)), a[:, k], "o-", ms=3, label=f"∠(W{k + 2}, B{k + 1}ᵀ)")
    ax.axhline(90, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("training run")
    ax.set_ylabel("angle (degrees)")
    ax.set_ylim(0, 100)
    ax.legend()
    return save_figure(fig, path)


def plot_error_transport(nudges: np.ndarray, curves: Mapping, path: str | Path) -> Path:
    """Cosine of the apical potentials with the backprop error and of the forward-weight updates
    with minus the gradient, against the nudging strength (mean over the test inputs)."""
    nudges = np.asarray(nudges, dtype=float)
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for key in sorted(k for k in curves if k.endswith("_mean")):
        kind, k = key.split("_cosine_")[0], key.split("_")[-2]
        label = f"apical v_A,{k} vs e_{k}" if kind == "apical" else f"ΔW_{k} vs −∇W_{k}"
        style = "o-" if kind == "apical" else "s--"
        ax.semilogx(nudges, np.asarray(curves[key]), style, label=label)
    ax.set_xlabel("nudging strength (× g_som)")
    ax.set_ylabel("cosine (mean over inputs)")
    ax.set_title("Error transport: B = Wᵀ, self-predicting lateral weights")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def analyse(
    record: FeedbackCancellationRecord, pattern_ms: float | None, figures_dir: str | Path
) -> dict:
    """All figures for one run's record; returns what analysis adds to the metrics.
    ``pattern_ms``: the record's own unless given."""
    out = Path(figures_dir)
    if isinstance(record, ErrorTransportRecord):
        plot_error_transport(record.nudges, record.curves, out / "error_transport.png")
        return {}
    pattern_ms = record.pattern_ms if pattern_ms is None else pattern_ms
    if isinstance(record, SelfPredictingRecord):
        plot_apical_rms(record.apical_rms, pattern_ms, out / "apical_rms.png")
        plot_interneuron_rates(
            record.interneuron_rates[1],
            record.next_layer_rates[1],
            out / "interneuron_rates.png",
            record.interneuron_rates_start.get(1),
            record.next_layer_rates_start.get(1),
        )
        return {}
    plot_learning_curves(
        record.history, record.metric, out / "learning_curves.png", record.backprop_history
    )
    if np.size(record.angles):
        plot_angles(record.angles, out / "topdown_angle.png")
    return {}

"""Measures and figures of the dendritic-prediction experiment (Urbanczik & Senn 2014, Fig. 1).

The experiment succeeds when the dendritic prediction φ(V*_w) follows the teacher's rate φ(U_M),
U_M = (g_E E_E + g_I E_I)/(g_E + g_I) being the potential at which the teacher's conductances
draw no current. These functions work on plain arrays (samples on a regular grid) and on the
protocol's record (:class:`neurosim.records.dendritic_prediction.DendriticPredictionRecord`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.figures import save_figure
from neurosim.neurons import sigmoid_rate
from neurosim.records.dendritic_prediction import DendriticPredictionRecord, RateFunction


def matching_potential(g_E: np.ndarray, g_I: np.ndarray, E_E: float, E_I: float) -> np.ndarray:
    """U_M = (g_E E_E + g_I E_I)/(g_E + g_I): where the teacher's somatic current vanishes."""
    g_E = np.asarray(g_E, dtype=float)
    g_I = np.asarray(g_I, dtype=float)
    total = g_E + g_I
    if np.any(total <= 0):
        raise ValueError("the teacher's total conductance must be positive at every sample")
    return (g_E * E_E + g_I * E_I) / total


def teacher_rate(
    g_E: np.ndarray,
    g_I: np.ndarray,
    reversal: tuple[float, float],
    rate_function: RateFunction,
) -> np.ndarray:
    """φ(U_M): the rate the teacher's conductances alone would impose on the soma."""
    E_E, E_I = reversal
    rf = rate_function
    return sigmoid_rate(matching_potential(g_E, g_I, E_E, E_I), rf.phi_max, rf.k, rf.beta, rf.theta)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equally long series (NaN when either is constant)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need two equally long series, got {x.shape} and {y.shape}")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc**2).sum() * (yc**2).sum())
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def correlation_per_repetition(
    prediction: np.ndarray, target: np.ndarray, samples_per_repetition: int
) -> np.ndarray:
    """Pearson correlation within each pattern repetition (a learning curve)."""
    n = len(prediction) // samples_per_repetition
    p = np.asarray(prediction[: n * samples_per_repetition]).reshape(n, samples_per_repetition)
    t = np.asarray(target[: n * samples_per_repetition]).reshape(n, samples_per_repetition)
    return np.array([pearson(p[k], t[k]) for k in range(n)])


def plot_learning_curve(
    per_repetition: np.ndarray, path: str | Path, test_correlation: float | None = None
) -> Path:
    """Correlation of φ(V*_w) with φ(U_M) in each repetition of the pattern."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(per_repetition) + 1), per_repetition, "o-", ms=3, label="learning")
    if test_correlation is not None:
        ax.axhline(test_correlation, color="C3", ls="--", label="test (teacher off)")
    ax.set_xlabel("pattern repetition")
    ax.set_ylabel("corr(φ(V*_w), φ(U_M))")
    ax.set_ylim(-1, 1)
    ax.set_title("The dendrite learns to predict the somatic teacher")
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_prediction_traces(
    t_ms: np.ndarray,
    prediction_first: np.ndarray,
    prediction_last: np.ndarray,
    target: np.ndarray,
    path: str | Path,
) -> Path:
    """φ(V*_w) in the first and the last repetition against the teacher's rate φ(U_M)."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(t_ms, 1000 * target, "k", lw=2, label="teacher φ(U_M)")
    ax.plot(t_ms, 1000 * prediction_first, "C0", alpha=0.7, label="φ(V*_w), first repetition")
    ax.plot(t_ms, 1000 * prediction_last, "C3", label="φ(V*_w), last repetition")
    ax.set_xlabel("time within pattern (ms)")
    ax.set_ylabel("rate (Hz)")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def plot_weights(t_s: np.ndarray, weights: np.ndarray, path: str | Path) -> Path:
    """Dendritic weights over learning: a sample of single synapses and the mean."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    shown = weights[:, :: max(1, weights.shape[1] // 20)]
    ax.plot(t_s, shown, lw=0.6, alpha=0.6)
    ax.plot(t_s, weights.mean(axis=1), "k", lw=2, label="mean")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("w")
    ax.legend(loc="upper left")
    return save_figure(fig, path)


def analyse(record: DendriticPredictionRecord, figures_dir: str | Path) -> dict[str, Any]:
    """The experiment's measures and figures from the protocol's record.

    ``rate_correlation_start``/``_end``: Pearson correlation of φ(V*_w) with φ(U_M) over the
    first and the last ``correlation_repetitions`` repetitions; ``rate_correlation_test``: the
    same over the test run (teacher and plasticity off).
    """
    figures_dir = Path(figures_dir)
    rate = teacher_rate(record.teacher_gE, record.teacher_gI, record.reversal, record.rate_function)
    target = rate[record.pattern_step]
    prediction = record.prediction
    s = record.samples_per_repetition
    n = s * record.correlation_repetitions
    per_rep = correlation_per_repetition(prediction, target, s)
    test_corr = pearson(record.test_prediction, rate[record.test_pattern_step])
    plot_learning_curve(per_rep, figures_dir / "learning_curve.png", test_corr)
    plot_prediction_traces(
        record.pattern_t_ms,
        prediction[:s],
        prediction[-s:],
        target[:s],
        figures_dir / "prediction_traces.png",
    )
    plot_weights(record.weights_t, record.weights, figures_dir / "weights.png")
    return {
        "rate_correlation_start": pearson(prediction[:n], target[:n]),
        "rate_correlation_end": pearson(prediction[-n:], target[-n:]),
        "rate_correlation_test": test_corr,
        "rate_correlation_per_repetition": per_rep,
    }

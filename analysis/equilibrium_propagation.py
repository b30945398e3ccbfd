"""Figures of the equilibrium-propagation protocol (Scellier & Bengio 2017; DESIGN.md §4.3), drawn
from plain arrays: learning curves of the EP variants beside the backprop baseline, the per-layer
agreement of the circuit's EP update with minus the loss gradient against β (Ernoult et al. 2019's
gradient check) for one-sided and symmetric nudging, the continual (ds/dt) rule's error against
the time step, and ρ_i ρ_j and ṡ along one example's phases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.figures import save_figure
from neurosim.records.equilibrium_propagation import EPRecord

MEASURES = ("cosine", "relative_error", "sign_agreement")


def plot_learning_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    backprop: Mapping[str, Sequence[float]] | Sequence[float] | None = None,
    metric: str = "accuracy",
) -> Path:
    """Test accuracy (``metric``, or ``mse``: the mean squared error of a regression's output
    rates) after each epoch (epoch 0: before training), one line per variant; the backprop
    baseline (one curve, or one per name) from epoch 1."""
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for name, values in curves.items():
        ax.plot(np.arange(len(values)), values, "o-", ms=3, label=f"EP {name}")
    if backprop is not None:
        bps = backprop if isinstance(backprop, Mapping) else {"backprop (torch)": backprop}
        for name, values in bps.items():
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, "k--", lw=1, label=name)
    ax.set_xlabel("epoch")
    if metric == "accuracy":
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.axhline(0.1, color="grey", lw=0.6, ls=":")
    else:
        ax.set_ylabel("test MSE of the output rates")
        ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right" if metric == "accuracy" else "upper right")
    return save_figure(fig, path)


def plot_gradient_check(curve: Mapping[str, object], path: str | Path) -> Path:
    """Per parameter, cosine with −∇L, relative error and share of agreeing signs against β,
    one-sided (dashed) and symmetric (solid) nudging."""
    betas = np.asarray(curve["betas"], dtype=float)
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, measure in zip(axes, MEASURES, strict=True):
        for mode, style in (("symmetric", "-o"), ("one-sided", "--s")):
            key = f"{mode}/{measure}"
            if key not in curve:
                continue
            for i, (name, values) in enumerate(sorted(curve[key].items())):
                ax.plot(
                    betas, np.asarray(values), style, ms=3, color=f"C{i}",
                    label=f"{name} {mode}",
                )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_title(measure.replace("_", " "))
        if measure == "relative_error":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("Circuit EP update vs −∇L (twin, implicit differentiation), same weights")
    return save_figure(fig, path)


def plot_continual_error(
    dts: Sequence[float],
    error: Mapping[str, Sequence[float]],
    path: str | Path,
    exact: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """Relative error of the continual (ds/dt) rule integrated over the nudged phase against
    the two-phase end-point update of the same phases (solid) and the exact fixed-point update
    (dotted), against the time step, weights held fixed."""
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    dts = np.asarray(dts, dtype=float)
    exact_names = []
    for i, (name, values) in enumerate(sorted(error.items())):
        v = np.asarray(values, dtype=float)
        if np.all(v < 1e-12):  # the input is clamped (W1) and biases telescope: exact
            exact_names.append(name)
            continue
        ax.loglog(dts, v, "o-", color=f"C{i}", label=f"{name}: vs end-point update")
        if exact is not None and name in exact:
            ax.loglog(dts, np.asarray(exact[name]), ":", color=f"C{i}", label=f"{name}: vs exact")
    if exact_names:
        ax.text(
            0.02, 0.02, f"exact (< 1e-12): {', '.join(exact_names)}", transform=ax.transAxes,
            fontsize=8,
        )  # fmt: skip
    ax.set_xticks(dts, [f"{v:g}" for v in dts])
    ax.minorticks_off()
    ax.axhline(1e-3, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("dt (ms; τ = 1 ms)")
    ax.set_ylabel("relative error")
    ax.set_title("continual rule vs two-phase update")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def trace_products(trace: Mapping[str, object], pairs: int = 4) -> dict[str, np.ndarray]:
    """ρ_i ρ_j along the recorded example for the output–(last hidden or input) pairs that change
    most in the nudged phase(s) (the change EP learns from)."""
    top = 1
    while f"s{top + 1}" in trace:
        top += 1
    out_rates = np.clip(np.asarray(trace[f"s{top}"], dtype=float), 0, 1)
    if top > 1:
        below = np.clip(np.asarray(trace[f"s{top - 1}"], dtype=float), 0, 1)
    else:
        below = np.tile(np.asarray(trace["x"], dtype=float)[None, :], (len(out_rates), 1))
    prod = out_rates[:, :, None] * below[:, None, :]
    free_end = min(int(trace.get("free_steps", 0)), len(prod) - 1)
    change = np.abs(prod[-1] - prod[free_end])
    flat = np.argsort(change.ravel(), kind="stable")[::-1][:pairs]
    rows, cols = np.unravel_index(flat, change.shape)
    return {
        f"ρ{top},{i}·ρ{top - 1},{j}": prod[:, i, j]
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
    }


def plot_traces(trace: Mapping[str, object], path: str | Path) -> Path:
    """One example: β(t), ρ_i ρ_j of the pairs that change most, and ṡ (ρ'ṡ, the circuit's
    ``rdot``) of the output units, across the free and nudged phases."""
    dt = float(trace["dt_ms"])
    beta = np.asarray(trace["beta"], dtype=float)
    top = 1
    while f"s{top + 1}" in trace:
        top += 1
    rdot = np.asarray(trace[f"rdot{top}"], dtype=float)
    t = np.arange(len(rdot)) * dt
    fig = Figure(figsize=(7, 6.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].step(np.arange(len(beta)) * dt, beta, where="post", color="k")
    axes[0].set_ylabel("β(t)")
    axes[0].set_title(f"one test example (label {trace.get('label')}), trained weights held fixed")
    for name, values in trace_products(trace).items():
        axes[1].plot(t, values, lw=1.2, label=name)
    axes[1].set_ylabel("ρ_i ρ_j")
    axes[1].legend(fontsize=7, loc="upper left")
    for i in range(rdot.shape[1]):
        axes[2].plot(t[1:], rdot[1:, i], lw=0.9)
    axes[2].set_ylabel(f"ρ'ṡ, layer {top} (1/ms)")
    axes[2].set_xlabel("time in the example (ms)")
    free_end = float(trace["free_steps"]) * dt
    for ax in axes:
        ax.axvline(free_end, color="grey", lw=0.8, ls=":")
    return save_figure(fig, path)


def analyse(record: EPRecord, figures_dir: str | Path) -> dict:
    """All figures for one run's record; returns what analysis adds to the metrics."""
    out = Path(figures_dir)
    if record.stage == "gradient-check":
        plot_gradient_check(record.grad_curve, out / "gradient_check.png")
        plot_continual_error(
            record.dts, record.continual_error, out / "continual_vs_dt.png",
            record.continual_error_exact,
        )  # fmt: skip
        return {}
    metric = "accuracy" if "test_accuracy" in record.history else "mse"
    plot_learning_curves(
        {record.variant or "circuit": record.history[f"test_{metric}"]},
        out / "learning_curves.png",
        record.backprop_history,
        metric,
    )
    if record.grad_curve is not None:
        plot_gradient_check(record.grad_curve, out / "gradient_check.png")
    if record.trace is not None:
        plot_traces(record.trace, out / "traces.png")
    return {}

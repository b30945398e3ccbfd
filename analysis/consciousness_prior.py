"""Figures of the consciousness-prior protocol (Bengio 2017; DESIGN.md §4.5), drawn from plain
arrays: the attention of the bottleneck beside the true parent graph, the learning curves of the
bottleneck model and the baseline (with the parent precision against chance), and the prediction
error of every queried variable in distribution and under a shift of its non-parents.
:func:`analyse` takes the protocol's record
(:class:`neurosim.records.consciousness_prior.ConsciousnessPriorRecord`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.figures import save_figure
from analysis.representations import ridge_probe
from neurosim.records.consciousness_prior import ConsciousnessPriorRecord


def plot_attention(
    parents: np.ndarray, scores: np.ndarray, selected: np.ndarray, path: str | Path
) -> Path:
    """True parent graph (row: variable, column: its parents), attention scores and the k slots
    selected per query (both in variable space, after matching slots to variables); selections
    that are true parents are marked."""
    parents, selected = np.asarray(parents, bool), np.asarray(selected, bool)
    fig = Figure(figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].imshow(parents, cmap="Greys", vmin=0, vmax=1)
    axes[0].set_title("true parents pa(i)")
    im = axes[1].imshow(np.asarray(scores), cmap="viridis")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    axes[1].set_title("attention scores")
    axes[2].imshow(selected, cmap="Greys", vmin=0, vmax=1)
    hit_r, hit_c = np.nonzero(selected & parents)
    miss_r, miss_c = np.nonzero(selected & ~parents)
    axes[2].scatter(hit_c, hit_r, marker="o", s=30, facecolors="none", edgecolors="C2",
                    label="parent")  # fmt: skip
    axes[2].scatter(miss_c, miss_r, marker="x", s=30, color="C3", label="not a parent")
    axes[2].legend(fontsize=7, loc="upper right")
    axes[2].set_title("selected (top-k)")
    for ax in axes:
        ax.set_xlabel("variable read (slot)")
        ax.set_ylabel("variable predicted (query)")
    return save_figure(fig, path)


def plot_learning_curves(
    history: Mapping[str, Mapping[str, list[float]]], chance: float | None, path: str | Path
) -> Path:
    """Prediction loss of both models against steps, and the bottleneck's parent precision with
    the chance level."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_loss, ax_prec = fig.subplots(1, 2)
    for i, (kind, h) in enumerate(history.items()):
        steps = np.asarray(h["step"])
        ax_loss.plot(steps, h["loss_prediction"], "-", color=f"C{i}", label=f"{kind} prediction")
        if "loss_aux" in h:
            ax_loss.plot(steps, h["loss_aux"], ":", color=f"C{i}", label=f"{kind} latent aux")
        if "parent_precision" in h:
            ax_prec.plot(steps, h["parent_precision"], "o-", ms=3, color=f"C{i}", label=kind)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (MSE)")
    ax_loss.legend(fontsize=8)
    if chance is not None:
        ax_prec.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax_prec.set_ylim(0, 1.02)
    ax_prec.set_xlabel("step")
    ax_prec.set_ylabel("parent precision of the selected slots")
    ax_prec.legend(fontsize=8)
    return save_figure(fig, path)


def plot_shift_errors(
    errors_in: Mapping[str, np.ndarray], errors_shift: Mapping[str, np.ndarray], path: str | Path
) -> Path:
    """Normalised error per queried slot, in distribution and with its non-parents shifted,
    for the bottleneck model and the baseline; means in the legend."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    n = len(errors_in["bottleneck"])
    x = np.arange(n)
    width = 0.2
    bars = (
        (errors_in["bottleneck"], "bottleneck, in distribution", "C0", 0.35),
        (errors_shift["bottleneck"], "bottleneck, non-parents shifted", "C0", 1.0),
        (errors_in["baseline"], "baseline, in distribution", "C1", 0.35),
        (errors_shift["baseline"], "baseline, non-parents shifted", "C1", 1.0),
    )
    for j, (errors, label, color, alpha) in enumerate(bars):
        values = np.asarray(errors)
        ax.bar(x + (j - 1.5) * width, values, width, color=color, alpha=alpha,
               label=f"{label} (mean {values.mean():.3f})")  # fmt: skip
    ax.set_xlabel("queried slot")
    ax.set_ylabel("MSE / Var of the next value")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def slot_probes(
    slot_values: Mapping[str, np.ndarray], latent: np.ndarray, seed: int = 0
) -> dict[str, float | list[float]]:
    """Cross-validated ridge probes of every true variable from all of a model's slots (held-out
    samples): ``probe_r2_slots_KIND`` the mean R² over variables, ``..._per_variable`` each."""
    out: dict[str, float | list[float]] = {}
    for kind, values in slot_values.items():
        r2 = ridge_probe(values, latent, seed=seed).r2
        out[f"probe_r2_slots_{kind}"] = float(np.mean(r2))
        out[f"probe_r2_slots_{kind}_per_variable"] = [float(v) for v in r2]
    return out


def analyse(record: ConsciousnessPriorRecord, figures_dir: str | Path) -> dict:
    """All figures for one run's record; returns what analysis adds to the metrics: the probes
    of the true variables from the slots (:func:`slot_probes`)."""
    out = Path(figures_dir)
    plot_attention(record.parents, record.attention_scores, record.selected, out / "attention.png")
    plot_learning_curves(
        record.history, record.parent_precision_chance, out / "learning_curves.png"
    )
    plot_shift_errors(record.errors_in, record.errors_shift, out / "shift_errors.png")
    if record.latent_test is None or not record.slot_values:
        return {}
    return slot_probes(record.slot_values, record.latent_test)

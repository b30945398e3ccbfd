"""Figures of the Independently Controllable Features protocol (DESIGN.md §4.4), drawn from plain
arrays: the selectivity matrix S[k, a], the policy matrix P[k, a] with its matched assignment,
each feature as a heat map over all 11×11 positions of the square, the learning curves, and for
the continuous variant the alignment of each action's cluster of factors φ with the actions'
effects. :func:`analyse` takes the protocol's record (:class:`neurosim.records.icf.ICFRecord`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.figures import save_figure
from neurosim.records.icf import ICFRecord

ACTIONS = ("up", "down", "left", "right")


def plot_matrix(
    matrix: np.ndarray,
    path: str | Path,
    title: str,
    actions: Sequence[str] = ACTIONS,
    matching: Sequence[int] | None = None,
    signed: bool = True,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """A feature × action matrix with its values written in the cells; ``matching`` outlines the
    action matched to each feature; ``row_labels`` replaces the feature names f0, f1, …"""
    m = np.asarray(matrix, dtype=float)
    fig = Figure(figsize=(1.1 * m.shape[1] + 1.8, 0.8 * m.shape[0] + 1.2), layout="constrained")
    ax = fig.add_subplot()
    lim = max(float(np.abs(m).max()), 1e-9)
    im = ax.imshow(m, cmap="RdBu_r" if signed else "viridis",
                   vmin=-lim if signed else 0.0, vmax=lim)  # fmt: skip
    for k in range(m.shape[0]):
        for a in range(m.shape[1]):
            ax.text(a, k, f"{m[k, a]:.2f}", ha="center", va="center", fontsize=8)
        if matching is not None and 0 <= matching[k] < m.shape[1]:
            ax.add_patch(_box(matching[k], k))
    ax.set_xticks(range(m.shape[1]), list(actions)[: m.shape[1]])
    rows = list(row_labels) if row_labels is not None else [f"f{k}" for k in range(m.shape[0])]
    ax.set_yticks(range(m.shape[0]), rows)
    ax.set_xlabel("action")
    ax.set_ylabel("feature" if row_labels is None else "φ cluster")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure(fig, path)


def _box(x: int, y: int):  # noqa: ANN202  (a matplotlib Rectangle)
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=2, ec="k")


def feature_maps(features: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Features laid out on the grid of positions: (n, 11, 11), ``[k, y, x]``."""
    f = np.asarray(features, dtype=float)
    p = np.asarray(positions, dtype=int)
    size = int(p.max()) + 1
    maps = np.full((f.shape[1], size, size), np.nan)
    maps[:, p[:, 1], p[:, 0]] = f.T
    return maps


def plot_feature_maps(
    features: np.ndarray,
    positions: np.ndarray,
    path: str | Path,
    r2: Sequence[float] | None = None,
) -> Path:
    """Each feature f_k as a heat map over the positions (x, y) of the square's corner."""
    maps = feature_maps(features, positions)
    n = maps.shape[0]
    fig = Figure(figsize=(2.6 * n + 0.6, 2.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    for k, ax in enumerate(axes):
        im = ax.imshow(maps[k], cmap="RdBu_r", vmin=-1, vmax=1, origin="upper")
        label = f"f{k}" + (f"  R²={r2[k]:.3f}" if r2 is not None else "")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y" if k == 0 else "")
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return save_figure(fig, path)


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Reconstruction, selectivity term and the heads' losses against the training step."""
    steps = np.asarray(history["step"], dtype=float)
    names = [k for k in ("reconstruction", "selectivity", "transition", "inverse") if k in history]
    fig = Figure(figsize=(3.0 * len(names), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names, strict=True):
        ax.plot(steps, np.asarray(history[name], dtype=float), lw=1.2)
        ax.set_xlabel("step")
        ax.set_title(name, fontsize=9)
        if name in ("reconstruction", "transition", "inverse"):
            ax.set_yscale("log")
    return save_figure(fig, path)


def analyse(record: ICFRecord, figures_dir: str | Path) -> dict:
    """All figures of one run's record; returns the figure paths for the metrics."""
    out = Path(figures_dir)
    actions = record.actions
    paths = {
        "selectivity": plot_matrix(
            record.selectivity_matrix, out / "selectivity_matrix.png",
            "selectivity S[k, a] (mean over states)", actions,
        ),
        "policy": plot_matrix(
            record.policy_matrix, out / "policy_matrix.png",
            "policy P[k, a] = E_s π_k(a|s) (boxes: matched)", actions,
            matching=record.matching, signed=False,
        ),
        "features": plot_feature_maps(
            record.features, record.positions, out / "feature_maps.png", record.feature_r2_best
        ),
        "learning_curves": plot_learning_curves(record.history, out / "learning_curves.png"),
    }  # fmt: skip
    if record.phi_cluster_alignment is not None and record.phi_action_share is not None:
        share = ", ".join(f"{a} {v:.2f}" for a, v in zip(actions, record.phi_action_share,
                                                        strict=True))  # fmt: skip
        paths["factor_alignment"] = plot_matrix(
            record.phi_cluster_alignment, out / "factor_alignment.png",
            f"cos(mean φ preferring row action, effect of column action)\nshare of φ: {share}",
            actions, row_labels=list(actions),
        )  # fmt: skip
    return {"figures": {k: str(v) for k, v in paths.items()}}

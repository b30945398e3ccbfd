"""The summary of a parameter sweep: one metric against one swept parameter, mean ± sd over seeds.

Works on plain values (the rows of ``sweep.csv`` turned into lists by the command line): an x
value, a y value and a series label per run. Runs that share x and series (they differ only in
their seed) are pooled into one point; NaN or missing y values are left out of the pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.figures import save_figure


@dataclass(frozen=True)
class SweepPoint:
    """One pooled point: the runs of one series at one x value."""

    series: str
    x: Any
    mean: float
    sd: float
    n: int


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(float(value))


def summary_statistics(
    x: Sequence[Any], y: Sequence[Any], series: Sequence[str] | None = None
) -> list[SweepPoint]:
    """Mean and sample standard deviation (ddof 1; 0 for one run) of ``y`` per (series, x).

    Points come in the order their (series, x) first appears; runs whose ``y`` is not a finite
    number are left out, and a (series, x) with none left gives no point.
    """
    if len(x) != len(y) or (series is not None and len(series) != len(x)):
        raise ValueError(f"x, y and series must be equally long, got {len(x)}, {len(y)}")
    labels = list(series) if series is not None else [""] * len(x)
    pools: dict[tuple[str, Any], list[float]] = {}
    for label, xv, yv in zip(labels, x, y, strict=True):
        key = (label, xv)
        pools.setdefault(key, [])
        if _finite(yv):
            pools[key].append(float(yv))
    points = []
    for (label, xv), values in pools.items():
        if not values:
            continue
        arr = np.asarray(values)
        sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        points.append(SweepPoint(label, xv, float(arr.mean()), sd, len(arr)))
    return points


def plot_summary(
    points: Sequence[SweepPoint], x_label: str, y_label: str, path: str | Path
) -> Path:
    """Error-bar plot of the pooled points, one line per series; a numeric x is drawn to scale,
    any other x (protocol names, strings) as evenly spaced categories."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    numeric = all(_is_number(p.x) for p in points)
    categories: list[Any] = []
    if not numeric:
        for p in points:
            if p.x not in categories:
                categories.append(p.x)
    series = list(dict.fromkeys(p.series for p in points))
    for k, label in enumerate(series):
        mine = [p for p in points if p.series == label]
        if numeric:
            mine.sort(key=lambda p: float(p.x))
            xs = [float(p.x) for p in mine]
        else:
            xs = [categories.index(p.x) for p in mine]
        ax.errorbar(
            xs,
            [p.mean for p in mine],
            yerr=[p.sd for p in mine],
            fmt="o-",
            capsize=4,
            color=f"C{k % 10}",
            label=label or None,
        )
    if not numeric:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    ns = sorted({p.n for p in points})
    runs = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{y_label}: mean ± sd over seeds ({runs} runs per point)")
    if any(series):
        ax.legend(fontsize=8)
    return save_figure(fig, path)

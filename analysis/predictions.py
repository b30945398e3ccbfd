"""Per-experiment summaries and figures of virtual experiments (``neurosim predict``).

Reads what the experiments declare (:meth:`VirtualExperiment.describe`, plain data) and what each
seed measured (:class:`neurosim.experiment.SeedOutcome`: numbers, curves and
:class:`~neurosim.recording.SegmentRecord` recordings), never a live simulation:

- :func:`summarize_experiment` gives the statistics of one experiment: the effect (mean, sd,
  Cohen's d_z, bootstrap 95 % interval, share of seeds with the predicted sign, seeds needed for
  80 % power, verdict; see :mod:`analysis.effects`), in the lab's units where the experiment
  declares them (percent change from its baseline condition, Hz for rates), each condition's
  mean ± sd with its own interval, the extra measurements and the per-seed values;
- :func:`draw_figures` draws the figure the experiment asks for (``figure`` of its declaration:
  ``conditions``, ``dose-response`` or ``scatter``) beside a panel of the per-seed effects with
  their interval and the zero line, plus a spike raster of one seed per condition where the
  recordings hold spike trains. The axes of a dose-response or scatter figure are named by the
  declaration's ``x_label`` and ``y_label``.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.effects import MIN_SEEDS, bootstrap_band, summarize_effect, summarize_values
from analysis.figures import save_figure
from analysis.spiketrains import plot_raster
from neurosim.experiment import SeedOutcome
from neurosim.recording import SegmentRecord, to_block

__all__ = ["FigureFile", "draw_figures", "summarize_experiment"]

#: points of the common grid when seeds' dose–response curves have different x values
GRID_POINTS = 50
#: seeds drawn with their own colour; more share one grey
SEED_COLOURS = 10


@dataclass(frozen=True)
class FigureFile:
    """A figure written to disk and the sentence that says what it shows."""

    path: Path
    caption: str


def _number(value: Any) -> float | None:
    """A float for a real number (NaN kept: JSON writes it as null), ``None`` for anything else."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _per_seed(outcome: SeedOutcome) -> dict[str, Any]:
    return {
        "seed": int(outcome.seed),
        "effect": _number(outcome.effect),
        "conditions": {k: _number(v) for k, v in outcome.conditions.items()},
        "extra": {k: _number(v) for k, v in outcome.extra.items()},
    }


def _summarize_extra(outcomes: Sequence[SeedOutcome]) -> dict[str, Any]:
    """Each extra measurement over seeds: full statistics where every seed has a finite value."""
    keys: list[str] = []
    for outcome in outcomes:
        keys.extend(k for k in outcome.extra if k not in keys)
    summary: dict[str, Any] = {}
    for key in keys:
        values = [_number(o.extra.get(key)) for o in outcomes]
        present = [v for v in values if v is not None and np.isfinite(v)]
        if len(present) == len(outcomes) and len(present) >= 2:
            summary[key] = summarize_values(present, f"values of {key!r}").as_dict()
        else:
            summary[key] = {"n": len(present), "values": values}
    return summary


def _percent_change(
    declaration: Mapping[str, Any], outcomes: Sequence[SeedOutcome]
) -> dict[str, Any] | None:
    """The effect as percent change from the baseline condition (``change_from``), per seed
    100·(changed − baseline)/|baseline|, with its statistics; ``None`` without a declaration,
    and a note instead of numbers where a seed's baseline is 0."""
    pair = declaration.get("change_from")
    if not pair:
        return None
    baseline, changed = pair
    base = [float(o.conditions[baseline]) for o in outcomes]
    if any(b == 0 or not np.isfinite(b) for b in base):
        return {"baseline": baseline, "changed": changed, "note": "a seed's baseline is 0"}
    values = [
        100.0 * (float(o.conditions[changed]) - b) / abs(b)
        for o, b in zip(outcomes, base, strict=True)
    ]
    stats = summarize_values(values, "percent changes").as_dict()
    return {"baseline": baseline, "changed": changed, "units": "%", **stats}


def _in_hz(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The effect and the condition means in Hz (``hz_per_unit``: rates in model units); the
    statistics scale linearly, so they are the model-unit ones times the factor."""
    factor = summary.get("hz_per_unit")
    if factor is None or summary.get("effect") is None:
        return None
    effect = summary["effect"]
    scaled = {k: effect[k] * factor for k in ("mean", "sd", "ci_low", "ci_high")}
    scaled["values"] = [v * factor for v in effect["values"]]
    conditions = {
        name: {k: value[k] * factor for k in ("mean", "sd", "ci_low", "ci_high")}
        for name, value in (summary.get("conditions_summary") or {}).items()
    }
    return {"factor": float(factor), "effect": scaled, "conditions": conditions}


def summarize_experiment(
    declaration: Mapping[str, Any],
    outcomes: Sequence[SeedOutcome],
    error: str | None = None,
    min_seeds: int = MIN_SEEDS,
) -> dict[str, Any]:
    """The summary of one experiment for ``predictions.json`` and the report.

    ``declaration`` is the experiment's :meth:`describe`; ``outcomes`` the checked outcomes of
    its seeds. With ``error`` (the experiment failed) or fewer than two seeds, the per-seed
    values are kept but no interval or verdict is computed (``effect`` is ``None``); with fewer
    than ``min_seeds`` the verdict is ``too few seeds to judge``.
    """
    ordered = sorted(outcomes, key=lambda o: o.seed)
    summary: dict[str, Any] = dict(declaration)
    summary.update(
        status="failed" if error else "ok",
        error=error,
        seeds=[int(o.seed) for o in ordered],
        n_seeds=len(ordered),
        effect=None,
        conditions_summary=None,
        extra_summary=_summarize_extra(ordered) if ordered else {},
        per_seed=[_per_seed(o) for o in ordered],
        figures=[],
        recordings={},
        percent_change=None,
        effect_hz=None,
    )
    if error is None and len(ordered) < 2:
        summary.update(
            status="failed",
            error=f"only {len(ordered)} seed(s) finished; an interval needs at least 2",
        )
    if summary["status"] == "ok":
        expected = int(declaration["expected_sign"])
        summary["effect"] = summarize_effect(
            [o.effect for o in ordered], expected, min_seeds=min_seeds
        ).as_dict()
        summary["conditions_summary"] = {
            name: summarize_values(
                [o.conditions[name] for o in ordered], f"values of condition {name!r}"
            ).as_dict()
            for name in declaration["conditions"]
        }
        summary["percent_change"] = _percent_change(declaration, ordered)
        summary["effect_hz"] = _in_hz(summary)
    return summary


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _seed_colour(index: int) -> str:
    return f"C{index}" if index < SEED_COLOURS else "0.6"


def _draw_conditions(axes: Axes, summary: Mapping[str, Any], outcomes: Sequence[SeedOutcome]):
    """Bars of the condition means with their bootstrap intervals, seeds as linked points."""
    names = list(summary["conditions"])
    stats = summary["conditions_summary"]
    x = np.arange(len(names))
    means = np.array([stats[n]["mean"] for n in names])
    low = np.array([stats[n]["ci_low"] for n in names])
    high = np.array([stats[n]["ci_high"] for n in names])
    axes.bar(x, means, width=0.6, color="0.85", edgecolor="0.3", label="mean over seeds")
    axes.errorbar(
        x,
        means,
        yerr=[np.maximum(means - low, 0), np.maximum(high - means, 0)],
        fmt="none",
        ecolor="k",
        capsize=6,
        linewidth=1.5,
        label="95% bootstrap interval",
    )
    offsets = np.linspace(-0.15, 0.15, max(len(outcomes), 1))
    for index, outcome in enumerate(outcomes):
        values = [outcome.conditions[n] for n in names]
        axes.plot(
            x + offsets[index],
            values,
            "o-",
            color=_seed_colour(index),
            markersize=4,
            linewidth=0.6,
            alpha=0.8,
            label=f"seed {outcome.seed}" if index < SEED_COLOURS else None,
        )
    axes.set_xticks(x, names, rotation=15 if len(names) > 3 else 0)
    axes.set_ylabel("measured value per condition")
    axes.set_title("Conditions: mean, interval and seeds", fontsize=10)
    axes.legend(fontsize=7, loc="best")


def _common_grid(xs: list[np.ndarray]) -> np.ndarray | None:
    """The seeds' shared x values, or a grid over their overlap, or ``None`` without overlap."""
    first = xs[0]
    if all(x.shape == first.shape and np.allclose(x, first) for x in xs):
        return first
    low = max(float(np.min(x)) for x in xs)
    high = min(float(np.max(x)) for x in xs)
    if not high > low:
        return None
    return np.linspace(low, high, GRID_POINTS)


def _curve_series(outcomes: Sequence[SeedOutcome]) -> list[str]:
    series: list[str] = []
    for outcome in outcomes:
        series.extend(s for s in outcome.curves if s not in series)
    return series


def _label_axes(axes: Axes, summary: Mapping[str, Any]) -> None:
    """Axis labels of a curve figure: the experiment's declared ``x_label`` and ``y_label``."""
    axes.set_xlabel(textwrap.fill(str(summary.get("x_label", "x")), 60), fontsize=9)
    axes.set_ylabel(textwrap.fill(str(summary.get("y_label", "y")), 45), fontsize=9)


def _xy(curve: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(curve["x"], dtype=float).ravel()
    y = np.asarray(curve["y"], dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"A curve has {x.size} x values and {y.size} y values.")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _draw_dose_response(
    axes: Axes, summary: Mapping[str, Any], outcomes: Sequence[SeedOutcome]
) -> None:
    """Per-seed curves (thin) and, per series, the mean with a pointwise bootstrap band."""
    for s_index, series in enumerate(_curve_series(outcomes)):
        colour = f"C{s_index}"
        curves = [(o.seed, *_xy(o.curves[series])) for o in outcomes if series in o.curves]
        curves = [(seed, x, y) for seed, x, y in curves if x.size > 0]
        for seed_index, (_, x, y) in enumerate(curves):
            order = np.argsort(x)
            axes.plot(
                x[order],
                y[order],
                "o-",
                color=colour,
                markersize=3,
                linewidth=0.7,
                alpha=0.4,
                label=f"{series}: each seed" if seed_index == 0 else None,
            )
        if len(curves) < 2:
            continue
        grid = _common_grid([x for _, x, _ in curves])
        if grid is None:
            continue
        stacked = np.array(
            [np.interp(grid, x[np.argsort(x)], y[np.argsort(x)]) for _, x, y in curves]
        )
        order = np.argsort(grid)
        low, high = bootstrap_band(stacked[:, order])
        axes.fill_between(grid[order], low, high, color=colour, alpha=0.25, linewidth=0)
        axes.plot(
            grid[order],
            stacked.mean(axis=0)[order],
            "s-",
            color=colour,
            markersize=5,
            linewidth=2.2,
            label=f"{series}: mean, 95% bootstrap band (n={len(curves)})",
        )
    _label_axes(axes, summary)
    axes.set_title("Dose-response: seeds and mean", fontsize=10)
    axes.legend(fontsize=7, loc="best")


def _draw_scatter(axes: Axes, summary: Mapping[str, Any], outcomes: Sequence[SeedOutcome]) -> None:
    """The x/y points of every series, one colour per seed and one marker per series."""
    markers = "o^sDvP*X"
    for s_index, series in enumerate(_curve_series(outcomes)):
        for seed_index, outcome in enumerate(outcomes):
            if series not in outcome.curves:
                continue
            x, y = _xy(outcome.curves[series])
            axes.scatter(
                x,
                y,
                s=12,
                marker=markers[s_index % len(markers)],
                color=_seed_colour(seed_index),
                alpha=0.7,
                label=f"{series}, seed {outcome.seed}" if seed_index < SEED_COLOURS else None,
            )
    _label_axes(axes, summary)
    axes.set_title("Scatter: every seed's points", fontsize=10)
    axes.legend(fontsize=6, loc="best", ncol=2)


def _draw_effects(axes: Axes, summary: Mapping[str, Any]) -> None:
    """Per-seed effects, their mean with the bootstrap interval, and the zero line."""
    effect = summary["effect"]
    values = np.asarray(effect["values"])
    jitter = np.linspace(-0.08, 0.08, values.size)
    for index, value in enumerate(values):
        axes.plot(jitter[index], value, "o", color=_seed_colour(index), markersize=5)
    axes.errorbar(
        [0.25],
        [effect["mean"]],
        yerr=[
            [max(effect["mean"] - effect["ci_low"], 0.0)],
            [max(effect["ci_high"] - effect["mean"], 0.0)],
        ],
        fmt="s",
        color="k",
        capsize=8,
        linewidth=2,
        label="mean, 95% bootstrap interval",
    )
    axes.axhline(0.0, color="r", linestyle="--", linewidth=1, label="zero (no effect)")
    predicted = "> 0" if summary["expected_sign"] == 1 else "< 0"
    axes.set_xlim(-0.4, 0.6)
    axes.set_xticks([])
    units = summary.get("effect_units") or "dimensionless"
    axes.set_ylabel(textwrap.fill(f"{summary['effect_label']} ({units})", 40), fontsize=9)
    axes.set_title(f"Effect (predicted {predicted}): {effect['verdict']}", fontsize=10)
    axes.legend(fontsize=7, loc="best")


def _has_curves(outcomes: Sequence[SeedOutcome]) -> bool:
    return any(o.curves for o in outcomes)


def _raster_records(
    outcomes: Sequence[SeedOutcome], conditions: Sequence[str]
) -> list[SegmentRecord]:
    """One segment per condition with spike trains: the first such segment of the first seed
    that recorded one, renamed after its condition and seed."""
    records: list[SegmentRecord] = []
    for condition in conditions:
        for outcome in outcomes:
            segment = next(
                (s for s in outcome.recordings.get(condition, []) if s.spikes),
                None,
            )
            if segment is not None:
                label = f"{condition}: {segment.name}"
                records.append(dataclasses.replace(segment, name=label, signals=[]))
                break
    return records


def draw_figures(
    summary: Mapping[str, Any],
    outcomes: Sequence[SeedOutcome],
    out_dir: str | Path,
    stem: str,
) -> list[FigureFile]:
    """Draw the experiment's figures as PNGs under ``out_dir`` (names start with ``stem``).

    Needs a successful summary (``summary["effect"]`` set). Returns the files with captions:
    the main figure (the declared kind beside the per-seed effects) and, where the recordings
    hold spike trains, a raster of one seed per condition.
    """
    if summary.get("effect") is None:
        return []
    out = Path(out_dir)
    ordered = sorted(outcomes, key=lambda o: o.seed)
    kind = summary["figure"]
    figure = Figure(figsize=(10, 4.2))
    main_axes, effect_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    if kind == "dose-response" and _has_curves(ordered):
        _draw_dose_response(main_axes, summary, ordered)
        shown = "per-seed curves with the mean and its pointwise 95% bootstrap band"
    elif kind == "scatter" and _has_curves(ordered):
        _draw_scatter(main_axes, summary, ordered)
        shown = "the x/y points of every seed"
    else:
        _draw_conditions(main_axes, summary, ordered)
        shown = "condition means with 95% bootstrap intervals and each seed's values"
        if kind != "conditions":
            shown += f" (the {kind} figure needs curves, and the seeds returned none)"
    _draw_effects(effect_axes, summary)
    figure.suptitle(summary["title"], fontsize=11)
    figure.tight_layout()
    files = [
        FigureFile(
            save_figure(figure, out / f"{stem}.png"),
            f"Left: {shown}. Right: the effect of each seed, its mean with the 95% bootstrap "
            "interval, and the zero line.",
        )
    ]
    records = _raster_records(ordered, summary["conditions"])
    if records:
        block = to_block(records, name=f"{summary['name']} rasters")
        path = plot_raster(block, out / f"{stem}-raster.png")
        files.append(
            FigureFile(
                path,
                "Spike raster of one recorded segment per condition, from the first seed that "
                "recorded spikes in it (one row per spike train).",
            )
        )
    return files

"""Diagnostics every classification run reports in its metrics (issue 16): how much of the input
is a constant offset, and how many units never leave the flat part of their rate function.

* **Input offset share** ‖mean x‖² / mean ‖x‖² over the training inputs: the share of the input
  energy that is the same for every example (mean ‖x‖² = ‖mean x‖² + the trace of the
  covariance). A warning is given above :data:`OFFSET_WARN_SHARE` = 0.8, where the offset's
  energy is 4× the input-dependent part. Why there: a random first-layer unit (weights i.i.d.,
  variance σ²) receives from the offset a constant drive of variance σ²‖mean x‖² across units,
  and from the data a drive whose spread across examples has variance σ²·tr(Cov), so the offset
  is about √(share/(1 − share)) times the spread: 2× at 0.8, 4× at MNIST-1D's old code (0.94,
  where 25 of 100 hidden units started below threshold for every training input), 1.1× on digits
  (0.54). Above 2× a unit's constant drive alone pushes a noticeable share of units (a unit at
  −1.5 standard deviations of the offset drive, about 7 %) outside its sensitive range for most
  inputs. The threshold is an estimate from this argument, not a fitted value.
* **Firing rates** of a spiking run, per layer, in Hz: the mean over its cells and the most
  active cell's, each averaged over a pass, and the spikes per example (issue 15: cortical cells
  sustain up to ~100 Hz), from spike counts per cell.
* **Dead units** per layer: units whose state is never inside the rate function's sensitive range
  (where its derivative is non-zero, or not negligible) for any training example; no gradient
  and no learning signal passes through them. What "sensitive" means is each circuit's neuron's
  own definition and is reported beside the counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

#: warn when the input offset carries more than this share of the input energy (module docstring)
OFFSET_WARN_SHARE = 0.8


def offset_share(x: np.ndarray) -> float:
    """‖mean x‖² / mean ‖x‖² over the rows of ``x`` (n, d); 0 for all-zero inputs."""
    x = np.asarray(x, dtype=float)
    energy = float(np.mean(np.sum(x**2, axis=1)))
    if energy == 0.0:
        return 0.0
    return float(np.sum(np.mean(x, axis=0) ** 2)) / energy


def input_diagnostics(x: np.ndarray, name: str = "the inputs") -> dict[str, Any]:
    """The offset share of ``x`` and, above :data:`OFFSET_WARN_SHARE`, a warning (issued as a
    :class:`UserWarning`, which Brian2 routes into logging, and returned for the metrics; None
    otherwise)."""
    share = offset_share(x)
    warning = None
    if share > OFFSET_WARN_SHARE:
        warning = (
            f"a constant offset carries {share:.0%} of the input energy of {name} (warning above "
            f"{OFFSET_WARN_SHARE:.0%}): most first-layer drive is the same for every example and "
            "units may start dead; an input code without offset (on-off for signed data) helps."
        )
        warnings.warn(warning, UserWarning, stacklevel=2)
    return {
        "input_offset_share": share,
        "input_offset_warn_share": OFFSET_WARN_SHARE,
        "input_offset_warning": warning,
    }


def dead_units(states: np.ndarray, low: float, high: float) -> int:
    """Units (columns of ``states``, examples × units) never strictly inside (low, high)."""
    s = np.asarray(states, dtype=float)
    alive = np.any((s > low) & (s < high), axis=0)
    return int(np.sum(~alive))


def dead_units_per_layer(
    states: Mapping[str, np.ndarray], low: float, high: float, sensitive: str, over: str
) -> dict[str, Any]:
    """Dead units of every layer (name → states, examples × units), what "sensitive" means for
    the circuit's neuron and which states were looked at (``over``)."""
    return {
        "dead_units": {k: dead_units(v, low, high) for k, v in states.items()},
        "dead_units_sensitive_range": sensitive,
        "dead_units_over": over,
    }


def firing_rates(
    counts: Mapping[str, np.ndarray], duration_s: float, examples: int
) -> dict[str, dict[str, float]]:
    """Per layer (name → spike count of every cell over runs lasting ``duration_s`` in all and
    showing ``examples`` examples): ``mean_hz`` over its cells, ``max_hz`` of its most active cell
    (both averaged over the whole duration), ``spikes_per_example`` (all its cells); and
    ``all``: the spikes per example of every layer together."""
    if duration_s <= 0 or examples <= 0:
        raise ValueError(f"need a positive duration and examples, got {duration_s}, {examples}")
    out: dict[str, dict[str, float]] = {}
    total = 0.0
    for name, c in counts.items():
        c = np.asarray(c, dtype=float)
        total += float(c.sum())
        out[name] = {
            "mean_hz": float(c.mean() / duration_s) if c.size else 0.0,
            "max_hz": float(c.max() / duration_s) if c.size else 0.0,
            "spikes_per_example": float(c.sum() / examples),
        }
    out["all"] = {"spikes_per_example": total / examples}
    return out

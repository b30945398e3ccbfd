"""Effect sizes over seeds with percentile-bootstrap intervals, and the verdict on a prediction.

A virtual experiment measures one signed effect per seed (``SeedOutcome.effect``); the theory
predicts its sign. Over the seeds this module reports:

- the mean and the sample standard deviation (``ddof=1``) of the per-seed effects;
- the standardized effect size **Cohen's d_z** = mean / sd of the per-seed effects (the
  paired-design d: each seed is its own control, so the effect is already a within-seed
  difference; Cohen 1988, *Statistical Power Analysis*, §2.3; Lakens 2013, Front Psychol 4:863);
  undefined (``None``) when every seed gave the same effect;
- a **percentile bootstrap** 95 % interval of the mean (Efron & Tibshirani 1993, *An
  Introduction to the Bootstrap*, ch. 13): the seeds are resampled with replacement
  ``n_resamples`` times (10,000 by default), the mean of each resample is taken, and the interval
  is the 2.5th and 97.5th percentiles of those means; the generator is seeded, so the interval is
  reproducible;
- the share of seeds whose effect has the predicted sign;
- a verdict: ``supported`` when the interval excludes 0 on the predicted side, ``not supported``
  when it includes 0, ``opposite`` when it excludes 0 on the wrong side.

With few seeds (5 by default) the interval is coarse: 5 values allow only 126 distinct resamples,
and the percentile bootstrap tends to be too narrow for small samples (it under-covers), so a
"supported" verdict on 5 seeds is evidence, not proof; more seeds (``--seeds``) tighten it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neurosim.errors import NeurosimError

__all__ = [
    "CONFIDENCE",
    "INTERVAL_METHOD",
    "N_RESAMPLES",
    "VERDICTS",
    "EffectSummary",
    "ValueSummary",
    "bootstrap_interval",
    "bootstrap_band",
    "cohens_dz",
    "interval_method",
    "small_sample_note",
    "summarize_effect",
    "summarize_values",
    "verdict",
]

#: resamples of the percentile bootstrap (the issue asks for at least 10,000)
N_RESAMPLES = 10_000
#: coverage of the interval
CONFIDENCE = 0.95
#: the seed of the bootstrap's random generator (fixed: the same effects give the same interval)
BOOTSTRAP_SEED = 0


def interval_method(n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> str:
    """How the interval is computed, in words (written into predictions.json and the report)."""
    return (
        "percentile bootstrap of the mean over seeds (Efron & Tibshirani 1993): seeds resampled "
        f"with replacement {n_resamples:,} times, interval = 2.5th to 97.5th percentile of the "
        f"resampled means, random generator seeded with {seed}"
    )


INTERVAL_METHOD = interval_method()
#: Cohen's d_z in words
DZ_DEFINITION = (
    "Cohen's d_z = mean / standard deviation (ddof=1) of the per-seed effects "
    "(paired design: each seed is its own control)"
)
#: verdict codes and the sentence the report shows for each
VERDICTS = {
    "supported": "supported: the 95% interval excludes 0 on the predicted side",
    "not supported": "not supported: the 95% interval includes zero",
    "opposite": "opposite: the 95% interval excludes 0 on the wrong side",
}


def _as_values(values: Sequence[float] | np.ndarray, what: str = "effects") -> np.ndarray:
    """A 1-D float array of at least two finite values, or one clear error."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise NeurosimError(f"The {what} must be one value per seed, got shape {array.shape}.")
    if array.size < 2:
        raise NeurosimError(
            f"An interval over seeds needs at least 2 {what}, got {array.size}; use --seeds 2 "
            "or more."
        )
    if not np.all(np.isfinite(array)):
        raise NeurosimError(f"The {what} contain non-finite values: {array.tolist()}.")
    return array


def _resampled_means(
    values: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:  # shape (n_resamples, *values.shape[1:])
    rng = np.random.default_rng(seed)
    index = rng.integers(0, values.shape[0], size=(n_resamples, values.shape[0]))
    return values[index].mean(axis=1)


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (one value per seed).

    Resamples the values with replacement ``n_resamples`` times with a generator seeded by
    ``seed`` and returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles
    of the resampled means (numpy's default linear interpolation between order statistics).
    """
    array = _as_values(values)
    if not 0 < confidence < 1:
        raise NeurosimError(f"The confidence must be between 0 and 1, got {confidence}.")
    if n_resamples < 1:
        raise NeurosimError(f"The bootstrap needs at least one resample, got {n_resamples}.")
    means = _resampled_means(array, n_resamples, seed)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_band(
    curves: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile-bootstrap band of the mean curve; ``curves`` is (seed, point).

    The seeds (rows) are resampled together, so each resample is a mean of whole curves.
    """
    array = np.asarray(curves, dtype=float)
    if array.ndim != 2 or array.shape[0] < 2:
        raise NeurosimError(
            f"A bootstrap band needs curves shaped (seed, point) with at least 2 seeds, "
            f"got shape {array.shape}."
        )
    means = _resampled_means(array, n_resamples, seed)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


def cohens_dz(values: Sequence[float] | np.ndarray) -> float | None:
    """Cohen's d_z: mean / sample standard deviation (ddof=1) of per-seed effects.

    ``None`` when the standard deviation is 0 (all seeds agree exactly: d_z is undefined).
    """
    array = _as_values(values)
    sd = float(np.std(array, ddof=1))
    if sd == 0.0:
        return None
    return float(np.mean(array)) / sd


def verdict(low: float, high: float, expected_sign: int) -> str:
    """``supported``, ``not supported`` or ``opposite`` for an interval and a predicted sign.

    An interval that touches 0 (an end exactly 0) includes zero.
    """
    if expected_sign not in (1, -1):
        raise NeurosimError(f"The expected sign must be +1 or -1, got {expected_sign}.")
    if low > high:
        raise NeurosimError(f"The interval [{low}, {high}] has its ends swapped.")
    if low <= 0.0 <= high:
        return "not supported"
    positive = low > 0.0
    return "supported" if positive == (expected_sign == 1) else "opposite"


def small_sample_note(n: int) -> str | None:
    """A sentence saying the interval is coarse with few seeds, or ``None`` from 20 seeds on."""
    if n >= 20:
        return None
    distinct = math.comb(2 * n - 1, n)
    return (
        f"With {n} seeds the interval is coarse: the bootstrap can only draw {distinct} distinct "
        "resamples, and percentile intervals on so few values tend to be too narrow; run more "
        "seeds (--seeds) for a firmer answer."
    )


@dataclass(frozen=True)
class ValueSummary:
    """Mean, standard deviation and bootstrap interval of one quantity over seeds."""

    n: int
    values: list[float]
    mean: float
    sd: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def summarize_values(
    values: Sequence[float] | np.ndarray,
    what: str = "values",
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> ValueSummary:
    """Mean, sd (ddof=1) and percentile-bootstrap 95 % interval of per-seed ``values``."""
    array = _as_values(values, what)
    low, high = bootstrap_interval(array, n_resamples=n_resamples, seed=seed)
    return ValueSummary(
        n=int(array.size),
        values=[float(v) for v in array],
        mean=float(np.mean(array)),
        sd=float(np.std(array, ddof=1)),
        ci_low=low,
        ci_high=high,
    )


@dataclass(frozen=True)
class EffectSummary:
    """The statistics of one prediction's per-seed effects and its verdict."""

    n: int
    values: list[float]
    mean: float
    sd: float
    d_z: float | None
    ci_low: float
    ci_high: float
    confidence: float
    n_resamples: int
    expected_sign: int
    share_predicted_sign: float
    verdict: str
    verdict_text: str
    method: str
    d_z_definition: str
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def summarize_effect(
    values: Sequence[float] | np.ndarray,
    expected_sign: int,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> EffectSummary:
    """Summarize per-seed effects: mean, sd, d_z, bootstrap 95 % interval, share, verdict."""
    if expected_sign not in (1, -1):
        raise NeurosimError(f"The expected sign must be +1 or -1, got {expected_sign}.")
    stats = summarize_values(values, "effects", n_resamples=n_resamples, seed=seed)
    array = np.asarray(stats.values)
    code = verdict(stats.ci_low, stats.ci_high, expected_sign)
    return EffectSummary(
        n=stats.n,
        values=stats.values,
        mean=stats.mean,
        sd=stats.sd,
        d_z=cohens_dz(array),
        ci_low=stats.ci_low,
        ci_high=stats.ci_high,
        confidence=CONFIDENCE,
        n_resamples=n_resamples,
        expected_sign=int(expected_sign),
        share_predicted_sign=float(np.mean(np.sign(array) == expected_sign)),
        verdict=code,
        verdict_text=VERDICTS[code],
        method=interval_method(n_resamples, seed),
        d_z_definition=DZ_DEFINITION,
        note=small_sample_note(stats.n),
    )

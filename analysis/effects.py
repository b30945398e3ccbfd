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
- the **seeds needed** (animals, in the lab) to detect an effect of the measured d_z with a
  two-sided paired t test at 80 % power and α = 0.05 (:func:`seeds_for_power`: the exact power of
  the test from the noncentral t distribution, smallest n that reaches it; Cohen 1988, ch. 2;
  the numbers standard power tables give, e.g. G*Power's t test for matched pairs);
- a verdict: ``supported`` when the interval excludes 0 on the predicted side, ``not supported``
  when it includes 0, ``opposite`` when it excludes 0 on the wrong side; with fewer seeds than a
  minimum (:data:`MIN_SEEDS`, 5 by default) ``too few seeds to judge``, whatever the interval says
  (a percentile bootstrap over 2 seeds is just their range).

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
from scipy import stats

from neurosim.errors import NeurosimError

__all__ = [
    "CONFIDENCE",
    "INTERVAL_METHOD",
    "N_RESAMPLES",
    "VERDICTS",
    "MIN_SEEDS",
    "POWER",
    "POWER_ALPHA",
    "SEEDS_FOR_POWER_METHOD",
    "EffectSummary",
    "ValueSummary",
    "TOO_FEW",
    "bootstrap_interval",
    "bootstrap_band",
    "check_min_seeds",
    "cohens_dz",
    "interval_method",
    "paired_t_power",
    "seeds_for_power",
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
#: the fewest seeds on which a verdict is given (``neurosim predict --min-seeds``)
MIN_SEEDS = 5
#: the verdict below :data:`MIN_SEEDS` seeds
TOO_FEW = "too few seeds to judge"
#: verdict codes and the sentence the report shows for each
VERDICTS = {
    "supported": "supported: the 95% interval excludes 0 on the predicted side",
    "not supported": "not supported: the 95% interval includes zero",
    "opposite": "opposite: the 95% interval excludes 0 on the wrong side",
    TOO_FEW: "too few seeds to judge: fewer seeds than the minimum for a verdict",
}
#: power and two-sided significance level of :func:`seeds_for_power`
POWER = 0.8
POWER_ALPHA = 0.05
#: the largest number of seeds :func:`seeds_for_power` searches (beyond: ``None``)
MAX_SEEDS_SEARCHED = 10_000_000
SEEDS_FOR_POWER_METHOD = (
    "seeds (animals) needed to detect an effect of the measured d_z with a two-sided paired t "
    f"test at {POWER:.0%} power and alpha = {POWER_ALPHA}: the smallest n whose exact power, "
    "P(|T| > t_crit(n - 1)) with T noncentral t (df = n - 1, noncentrality d_z * sqrt(n)), "
    "reaches it (not the normal approximation, which gives too few at small n); d_z measured on "
    "few seeds is itself uncertain, so this is the size of a study that would detect an effect "
    "as large as the one measured"
)


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


def paired_t_power(d_z: float, n: int, alpha: float = POWER_ALPHA) -> float:
    """Power of the two-sided one-sample (paired) t test of level ``alpha`` on ``n`` pairs when
    the true standardized effect is ``d_z``: P(|T| > t_{1-α/2, n-1}), T ~ noncentral t with
    n − 1 degrees of freedom and noncentrality d_z·√n (Cohen 1988, ch. 2)."""
    if n < 2:
        raise NeurosimError(f"A paired t test needs at least 2 pairs, got {n}.")
    if not 0 < alpha < 1:
        raise NeurosimError(f"alpha must be between 0 and 1, got {alpha}.")
    df, nc = n - 1, abs(float(d_z)) * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    near = float(stats.nct.sf(crit, df, nc))
    # the far tail is below Φ(−nc); scipy returns NaN for it when it underflows
    far = float(np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0))
    return near + far


def seeds_for_power(
    d_z: float | None, power: float = POWER, alpha: float = POWER_ALPHA
) -> int | None:
    """The smallest number of seeds (pairs) whose two-sided paired t test of level ``alpha``
    detects a true effect ``d_z`` with at least ``power`` (:func:`paired_t_power`; the power
    rises with n, so a doubling then bisection search finds it). ``None`` when ``d_z`` is
    undefined or 0, or more than :data:`MAX_SEEDS_SEARCHED` seeds would be needed.

    Known values (those of standard power tables, e.g. G*Power's matched-pairs t test):
    d_z = 0.5 needs 34 pairs, 0.8 needs 15, 0.2 needs 199.
    """
    if not 0 < power < 1:
        raise NeurosimError(f"The power must be between 0 and 1, got {power}.")
    if d_z is None or not math.isfinite(d_z) or d_z == 0:
        return None
    if paired_t_power(d_z, 2, alpha) >= power:
        return 2
    low, high = 2, 4  # power(low) < target
    while paired_t_power(d_z, high, alpha) < power:
        low, high = high, high * 2
        if high > MAX_SEEDS_SEARCHED:
            return None
    while high - low > 1:  # power(low) < target <= power(high)
        mid = (low + high) // 2
        if paired_t_power(d_z, mid, alpha) >= power:
            high = mid
        else:
            low = mid
    return high


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
    #: what the interval alone says (the verdict unless there are too few seeds)
    interval_verdict: str
    min_seeds: int
    #: seeds needed for 80 % power at α = 0.05 (two-sided paired t) for the measured d_z
    seeds_for_power: int | None
    seeds_for_power_method: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def check_min_seeds(min_seeds: Any) -> int:
    """``min_seeds`` as an int of at least 2, or one clear error."""
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int | np.integer):
        raise NeurosimError(
            f"The minimum number of seeds must be a whole number, got {min_seeds!r}."
        )
    if min_seeds < 2:
        raise NeurosimError(
            f"The minimum number of seeds for a verdict must be at least 2 (an interval over "
            f"seeds needs two), got {min_seeds}."
        )
    return int(min_seeds)


def summarize_effect(
    values: Sequence[float] | np.ndarray,
    expected_sign: int,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    min_seeds: int = MIN_SEEDS,
) -> EffectSummary:
    """Summarize per-seed effects: mean, sd, d_z, bootstrap 95 % interval, share, the seeds
    needed for 80 % power, and the verdict (``too few seeds to judge`` below ``min_seeds``)."""
    if expected_sign not in (1, -1):
        raise NeurosimError(f"The expected sign must be +1 or -1, got {expected_sign}.")
    min_seeds = check_min_seeds(min_seeds)
    summary = summarize_values(values, "effects", n_resamples=n_resamples, seed=seed)
    array = np.asarray(summary.values)
    by_interval = verdict(summary.ci_low, summary.ci_high, expected_sign)
    code = by_interval if summary.n >= min_seeds else TOO_FEW
    text = VERDICTS[code]
    if code == TOO_FEW:
        text = (
            f"too few seeds to judge: {summary.n} seeds, fewer than the {min_seeds} a verdict "
            f"needs (the interval alone would say: {by_interval})"
        )
    d_z = cohens_dz(array)
    return EffectSummary(
        n=summary.n,
        values=summary.values,
        mean=summary.mean,
        sd=summary.sd,
        d_z=d_z,
        ci_low=summary.ci_low,
        ci_high=summary.ci_high,
        confidence=CONFIDENCE,
        n_resamples=n_resamples,
        expected_sign=int(expected_sign),
        share_predicted_sign=float(np.mean(np.sign(array) == expected_sign)),
        verdict=code,
        verdict_text=text,
        method=interval_method(n_resamples, seed),
        d_z_definition=DZ_DEFINITION,
        note=small_sample_note(summary.n),
        interval_verdict=by_interval,
        min_seeds=min_seeds,
        seeds_for_power=seeds_for_power(d_z),
        seeds_for_power_method=SEEDS_FOR_POWER_METHOD,
    )

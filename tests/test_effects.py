"""Effect sizes, bootstrap intervals and verdicts (``analysis/effects.py``) on known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis.effects import (
    MIN_SEEDS,
    N_RESAMPLES,
    TOO_FEW,
    bootstrap_band,
    bootstrap_interval,
    cohens_dz,
    paired_t_power,
    seeds_for_power,
    small_sample_note,
    summarize_effect,
    summarize_values,
    verdict,
)
from neurosim.errors import NeurosimError


def test_two_seeds_interval_is_their_range() -> None:
    # resampled means of (a, b) are a (1/4), (a+b)/2 (1/2) and b (1/4): the 2.5th and 97.5th
    # percentiles are exactly a and b
    assert bootstrap_interval([2.0, 5.0]) == (2.0, 5.0)
    assert bootstrap_interval([5.0, 2.0]) == (2.0, 5.0)


def test_three_seeds_interval_is_their_range() -> None:
    # the minimum alone is drawn with probability 1/27 = 3.7 % > 2.5 %
    assert bootstrap_interval([1.0, -4.0, 3.0]) == (-4.0, 3.0)


def test_interval_matches_the_exact_bootstrap_distribution() -> None:
    values = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    # every one of the 5**5 resamples, equally likely: the exact bootstrap distribution
    exact = np.array([values[list(t)].mean() for t in itertools.product(range(5), repeat=5)])
    low, high = bootstrap_interval(values)
    # Monte Carlo error of a 2.5 % quantile with 10,000 resamples is ~0.16 %: 0.5 % is 3 sigma
    assert np.quantile(exact, 0.020) <= low <= np.quantile(exact, 0.030)
    assert np.quantile(exact, 0.970) <= high <= np.quantile(exact, 0.980)


def test_interval_agrees_with_scipy_percentile_bootstrap() -> None:
    from scipy import stats

    rng = np.random.default_rng(7)
    values = rng.normal(1.0, 2.0, size=12)
    ours = bootstrap_interval(values)
    theirs = stats.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=N_RESAMPLES, random_state=1
    ).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours[0] - theirs.low) < 0.05 * width
    assert abs(ours[1] - theirs.high) < 0.05 * width


def test_interval_is_reproducible_and_seeded() -> None:
    values = [0.3, -0.2, 1.4, 0.9, 2.2, 0.1, -0.7]
    assert bootstrap_interval(values) == bootstrap_interval(values)
    others = {bootstrap_interval(values, seed=s) for s in range(1, 6)}
    assert len(others) > 1  # the seed matters, so it is really used


def test_interval_coverage_on_normal_data() -> None:
    # 20 values from N(0.5, 1): the true mean lies in the interval most of the time
    rng = np.random.default_rng(3)
    hits = sum(
        low <= 0.5 <= high
        for low, high in (
            bootstrap_interval(rng.normal(0.5, 1.0, 20), n_resamples=2000) for _ in range(200)
        )
    )
    assert 0.85 <= hits / 200 <= 0.99


def test_cohens_dz() -> None:
    assert cohens_dz([1, 2, 3, 4, 5]) == pytest.approx(3 / np.sqrt(2.5))
    assert cohens_dz([-1, -2, -3]) == pytest.approx(-2.0)
    assert cohens_dz([3.0, 3.0, 3.0]) is None  # sd 0: undefined


@pytest.mark.parametrize(
    ("low", "high", "sign", "expected"),
    [
        (0.1, 0.5, 1, "supported"),
        (-0.5, -0.1, -1, "supported"),
        (-0.1, 0.5, 1, "not supported"),
        (-0.1, 0.5, -1, "not supported"),
        (0.0, 0.5, 1, "not supported"),  # touching zero includes it
        (-0.5, 0.0, -1, "not supported"),
        (-0.5, -0.1, 1, "opposite"),
        (0.1, 0.5, -1, "opposite"),
    ],
)
def test_verdict(low: float, high: float, sign: int, expected: str) -> None:
    assert verdict(low, high, sign) == expected


def test_summarize_effect_known_values() -> None:
    summary = summarize_effect([1.0, -1.0, 2.0, 0.0], expected_sign=1, min_seeds=4)
    assert summary.n == 4
    assert summary.mean == pytest.approx(0.5)
    assert summary.sd == pytest.approx(np.std([1, -1, 2, 0], ddof=1))
    assert summary.d_z == pytest.approx(0.5 / summary.sd)
    assert summary.share_predicted_sign == pytest.approx(0.5)  # 0 is not the predicted sign
    assert summary.ci_low < 0 < summary.ci_high
    assert summary.verdict == "not supported"
    assert "includes zero" in summary.verdict_text
    assert "percentile bootstrap" in summary.method and "10,000" in summary.method
    assert "126" not in (summary.note or "") and "4 seeds" in (summary.note or "")

    negative = summarize_effect([-1.0, -1.2, -0.8, -1.1, -0.9], expected_sign=-1)
    assert negative.verdict == "supported"
    assert negative.share_predicted_sign == 1.0
    assert negative.ci_high < 0
    assert "126 distinct" in (negative.note or "")  # C(9, 5) resamples of 5 seeds

    wrong = summarize_effect([-1.0, -1.2, -0.8], expected_sign=1, min_seeds=3)
    assert wrong.verdict == "opposite"
    assert wrong.share_predicted_sign == 0.0


def test_summarize_values() -> None:
    stats = summarize_values([1.0, 3.0])
    assert (stats.mean, stats.ci_low, stats.ci_high) == (2.0, 1.0, 3.0)
    assert stats.sd == pytest.approx(np.sqrt(2.0))


def test_small_sample_note_only_for_few_seeds() -> None:
    assert "coarse" in small_sample_note(5)
    assert small_sample_note(50) is None


def test_bootstrap_band_known_answers() -> None:
    row = np.array([0.0, 1.0, 4.0])
    low, high = bootstrap_band(np.vstack([row, row, row]))
    np.testing.assert_allclose(low, row)
    np.testing.assert_allclose(high, row)
    a, b = np.array([0.0, 2.0, 1.0]), np.array([1.0, 0.0, 3.0])
    low, high = bootstrap_band(np.vstack([a, b]))  # two curves: pointwise min and max
    np.testing.assert_allclose(low, np.minimum(a, b))
    np.testing.assert_allclose(high, np.maximum(a, b))


@pytest.mark.parametrize(
    "values", [[1.0], [], [1.0, float("nan")], [1.0, float("inf"), 2.0], [[1.0, 2.0]]]
)
def test_bad_effects_raise_one_clear_error(values: list) -> None:
    with pytest.raises(NeurosimError):
        summarize_effect(values, expected_sign=1)


def test_bad_sign_raises() -> None:
    with pytest.raises(NeurosimError, match="expected sign"):
        summarize_effect([1.0, 2.0], expected_sign=0)


@pytest.mark.parametrize(("d_z", "pairs"), [(0.5, 34), (0.8, 15), (0.2, 199), (-0.5, 34)])
def test_seeds_for_power_known_values(d_z: float, pairs: int) -> None:
    # standard power tables (G*Power, matched-pairs t test, two-sided, alpha 0.05, power 0.8)
    assert seeds_for_power(d_z) == pairs
    # the smallest such n: one pair fewer falls short of 80 %
    assert paired_t_power(d_z, pairs) >= 0.8 > paired_t_power(d_z, pairs - 1)


def test_paired_t_power_exact_value_and_normal_approximation() -> None:
    # G*Power's "actual power" for d_z = 0.5 on 34 pairs
    assert paired_t_power(0.5, 34) == pytest.approx(0.8078, abs=5e-4)
    # the normal approximation ((z_.975 + z_.8) / d)² = 31.4 -> 32 pairs is too few for a t test
    assert paired_t_power(0.5, 32) < 0.8


def test_paired_t_power_against_simulated_t_tests() -> None:
    # 20,000 simulated paired studies of 10 pairs with a true d_z of 1: share rejected at 0.05
    from scipy import stats as st

    rng = np.random.default_rng(0)
    diffs = rng.normal(1.0, 1.0, size=(20_000, 10))
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / np.sqrt(10))
    rejected = np.mean(np.abs(t) > st.t.ppf(0.975, 9))
    assert paired_t_power(1.0, 10) == pytest.approx(rejected, abs=0.01)  # sd of the share 0.003


def test_seeds_for_power_edges() -> None:
    assert seeds_for_power(None) is None and seeds_for_power(0.0) is None
    assert seeds_for_power(float("nan")) is None
    assert seeds_for_power(20.0) == 2  # huge effects: the far tail underflows, power is finite
    assert seeds_for_power(1e-4) is None  # beyond the search limit (about 785 million pairs)
    with pytest.raises(NeurosimError, match="power must be between"):
        seeds_for_power(0.5, power=1.0)


def test_too_few_seeds_to_judge() -> None:
    effects = [0.8, 1.1, 0.9, 1.3]  # clearly positive
    four = summarize_effect(effects, expected_sign=1)  # default minimum: 5 seeds
    assert MIN_SEEDS == 5
    assert four.verdict == TOO_FEW == "too few seeds to judge"
    assert four.interval_verdict == "supported"
    assert "4 seeds, fewer than the 5" in four.verdict_text
    assert four.seeds_for_power == seeds_for_power(four.d_z)
    five = summarize_effect([*effects, 1.0], expected_sign=1)
    assert five.verdict == "supported" and five.min_seeds == 5
    assert summarize_effect(effects, expected_sign=1, min_seeds=4).verdict == "supported"
    two = summarize_effect([0.8, 1.1], expected_sign=1)  # a bootstrap over 2 seeds: their range
    assert two.verdict == TOO_FEW
    for bad in (1, 0, 2.5, True):
        with pytest.raises(NeurosimError, match="minimum number of seeds"):
            summarize_effect(effects, expected_sign=1, min_seeds=bad)

"""Known answers for the LV, the STTC, cross-correlation histograms and the choice of pairs."""

from __future__ import annotations

import neo
import numpy as np
import pytest
import quantities as pq

from analysis.correlations import (
    cross_correlogram,
    pairwise_statistics,
    select_pairs,
    spike_time_tiling,
)
from analysis.spiketrains import rate_map, spike_train_statistics


def _train(
    times: np.ndarray, t_stop: float, t_start: float = 0.0, name: str = ""
) -> neo.SpikeTrain:
    return neo.SpikeTrain(
        np.sort(times), units="s", t_start=t_start * pq.s, t_stop=t_stop * pq.s, name=name
    )


def _poisson(seed: int, rate_hz: float, duration_s: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(0.0, duration_s, rng.poisson(rate_hz * duration_s)))


def _block(*trains: neo.SpikeTrain) -> neo.Block:
    block = neo.Block(name="b")
    segment = neo.Segment(name="s")
    segment.spiketrains.extend(trains)
    block.segments.append(segment)
    return block


def test_lv_of_poisson_gamma_and_regular_trains() -> None:
    rng = np.random.default_rng(11)
    duration = 500.0
    # gamma process of shape 4 at 10 Hz: LV = 3 / (2k + 1) = 1/3, while CV = 1 / sqrt(k) = 1/2
    gamma = np.cumsum(rng.gamma(4.0, 1.0 / 40.0, 6000))
    gamma = gamma[gamma < duration]
    trains = [
        _train(_poisson(1, 20.0, duration), duration, name="poisson"),
        _train(gamma, duration, name="gamma"),
        _train(np.arange(0.01, duration, 0.1), duration, name="regular"),
        _train(np.array([1.0, 2.0]), duration, name="two spikes"),
    ]
    statistics = spike_train_statistics(_block(*trains), max_pairs=0)  # no pairs: faster
    stats = {t["name"]: t for t in statistics["spike_trains"]}
    assert stats["poisson"]["lv"] == pytest.approx(1.0, abs=0.05)
    assert stats["gamma"]["lv"] == pytest.approx(1.0 / 3.0, abs=0.03)
    assert stats["gamma"]["cv_isi"] == pytest.approx(0.5, abs=0.03)
    assert stats["regular"]["lv"] == pytest.approx(0.0, abs=1e-9)
    assert stats["two spikes"]["lv"] is None


def test_sttc_known_values() -> None:
    a = _train(_poisson(2, 10.0, 100.0), 100.0)
    b = _train(_poisson(3, 10.0, 100.0), 100.0)
    assert spike_time_tiling(a, a, dt_s=0.005) == pytest.approx(1.0, abs=1e-12)
    assert abs(spike_time_tiling(a, b, dt_s=0.005)) < 0.05  # independent trains
    # a copy shifted by 3 ms lies inside the 5 ms window but not inside a 1 ms one
    shifted = _train(a.magnitude[a.magnitude < 99.99] + 0.003, 100.0)
    assert spike_time_tiling(a, shifted, dt_s=0.005) > 0.95
    assert abs(spike_time_tiling(a, shifted, dt_s=0.001)) < 0.05
    assert spike_time_tiling(a, _train(np.array([]), 100.0)) is None
    assert spike_time_tiling(a, _train(np.array([150.0]), 200.0, t_start=100.0)) is None


def test_cch_peaks_at_the_imposed_lag() -> None:
    a = _train(_poisson(4, 20.0, 50.0), 50.0)
    lagged = a.magnitude[a.magnitude < 49.9] + 0.0072  # 7.2 ms, with bins of 1 ms
    b = _train(lagged, 50.0)
    lags, counts = cross_correlogram(a, b, bin_s=0.001, max_lag_s=0.02)
    assert lags[0] == pytest.approx(-0.02) and lags[-1] == pytest.approx(0.02)
    assert lags[np.argmax(counts)] == pytest.approx(0.007)
    # each spike of b is 7 bins after its source in a (when the source lies in the first 80 % of
    # its bin) or 8 bins after; chance pairs add ~20 per bin at these rates
    at_7, at_8 = counts[np.argmin(np.abs(lags - 0.007))], counts[np.argmin(np.abs(lags - 0.008))]
    assert len(lagged) <= at_7 + at_8 <= len(lagged) + 100
    assert at_7 / (at_7 + at_8) == pytest.approx(0.8, abs=0.05)
    lags, counts = cross_correlogram(b, a, bin_s=0.001, max_lag_s=0.02)
    assert lags[np.argmax(counts)] == pytest.approx(-0.007)


def test_cch_counts_equal_a_brute_force_count() -> None:
    bin_s, max_lag = 0.002, 10
    a = _train(_poisson(5, 30.0, 4.0), 4.0)
    b = _train(_poisson(6, 30.0, 4.0), 4.0)
    lags, counts = cross_correlogram(a, b, bin_s=bin_s, max_lag_s=max_lag * bin_s)
    bins_a = np.floor(a.magnitude / bin_s + 1e-9).astype(int)
    bins_b = np.floor(b.magnitude / bin_s + 1e-9).astype(int)
    differences = (bins_b[np.newaxis, :] - bins_a[:, np.newaxis]).ravel()
    expected = [np.sum(differences == k) for k in range(-max_lag, max_lag + 1)]
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(lags, np.arange(-max_lag, max_lag + 1) * bin_s)


def test_pairs_are_capped_to_the_most_active_trains() -> None:
    counts = [3, 0, 9, 5, 7, 1, 9, 2]
    trains = [_train(np.linspace(0.1, 0.9, n), 1.0) for n in counts]
    assert select_pairs(trains, max_pairs=10) == [
        (2, 6),
        (2, 4),
        (2, 3),
        (0, 2),
        (4, 6),
        (3, 6),
        (0, 6),
        (3, 4),
        (0, 4),
        (0, 3),
    ]  # the 5 most active (2 and 6 tie, the earlier first): 5 * 4 / 2 = 10 pairs
    assert len(select_pairs(trains, max_pairs=9)) == 6  # 4 trains
    assert select_pairs(trains, max_pairs=100) == [
        pair for pair in select_pairs(trains, max_pairs=100) if 1 not in pair
    ]
    assert len(select_pairs(trains, max_pairs=100)) == 21  # the silent train is never paired
    assert select_pairs(trains, max_pairs=0) == []
    summary = pairwise_statistics(trains, max_pairs=3)
    assert summary["n_pairs_possible"] == 28 and summary["n_pairs"] == 3


def test_rate_map_of_a_constant_rate_and_its_shape() -> None:
    # a regular 100 Hz train: away from the edges the Gaussian-kernel rate is 100 Hz
    trains = [_train(np.arange(0.005, 2.0, 0.01), 2.0), _train(np.array([]), 2.0)]
    times, rates, method = rate_map(trains, kernel_sigma_s=0.05)
    assert rates.shape == (2, times.size) and "Gaussian" in method
    middle = (times > 0.5) & (times < 1.5)
    np.testing.assert_allclose(rates[0, middle], 100.0, rtol=1e-3)
    np.testing.assert_allclose(rates[1], 0.0, atol=1e-9)

"""Pairwise spike-train measures with elephant: cross-correlation histograms and the STTC.

For pairs of spike trains of one segment (neo objects in any time unit; every computation in
seconds), each measure computed with the named elephant function:

- **cross-correlation histogram (CCH)**: both trains are cut to the window they share
  ([later t_start, earlier t_stop]), binned with :class:`elephant.conversion.BinnedSpikeTrain`
  (bins of ``bin_s``, spike counts, not clipped to 0/1) and passed to
  :func:`elephant.spike_train_correlation.cross_correlation_histogram` (no border correction,
  no smoothing) for lags of -``max_lag_s`` .. +``max_lag_s``. ``CCH[k]`` counts the pairs of
  spikes with (time in train b) - (time in train a) in bin ``k`` of lag: a peak at a positive
  lag means b fires after a (Perkel, Gerstein & Moore 1967, Biophys J 7:419);
- **spike time tiling coefficient (STTC)**, Cutts & Eglen 2014 (J Neurosci 34:14288):
  :func:`elephant.spike_train_correlation.spike_time_tiling_coefficient` with a coincidence
  window ``dt_s``, on the shared window; 1 for identical trains, about 0 for independent ones,
  independent of the firing rates; ``None`` where it is undefined (a train without spikes).

Large populations: the number of pairs grows as n²/2, so :func:`select_pairs` keeps only the
``k`` most active trains (most spikes first, ties by position in the segment; trains without
spikes never), ``k`` the largest with k(k-1)/2 <= ``max_pairs``, and returns all their pairs.
The choice is deterministic, so two files holding the same trains give the same pairs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import elephant.spike_train_correlation as esc
import elephant.utils
import neo
import numpy as np
import quantities as pq
from elephant.conversion import BinnedSpikeTrain
from matplotlib.figure import Figure

from analysis.figures import save_figure

__all__ = [
    "MAX_PAIRS",
    "cross_correlogram",
    "pairwise_statistics",
    "plot_cross_correlograms",
    "select_pairs",
    "spike_time_tiling",
]

#: Pairs analysed per segment by default: all pairs of the 8 most active trains.
MAX_PAIRS = 28
#: Segments and pairs per segment drawn in :func:`plot_cross_correlograms`.
MAX_CCH_SEGMENTS = 4
MAX_CCH_PAIRS = 4


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence elephant 1.2.1's warnings on quantities 0.16 and its binning log messages.

    ``BinnedSpikeTrain`` logs (at WARNING) each time it moves a spike lying a rounding error
    below a bin edge into the next bin; that correction is wanted, the message is noise here.
    """
    logger = getattr(elephant.utils, "logger", None) or logging.getLogger("elephant.utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of seconds, got {value}.")
    return value


def _seconds(quantity: pq.Quantity) -> float:
    return float(quantity.rescale(pq.s).magnitude)


def _shared(
    train_a: neo.SpikeTrain, train_b: neo.SpikeTrain
) -> tuple[neo.SpikeTrain, neo.SpikeTrain, float, float] | None:
    """Both trains in seconds on the window they share, or ``None`` when they share none."""
    t_start = max(_seconds(train_a.t_start), _seconds(train_b.t_start))
    t_stop = min(_seconds(train_a.t_stop), _seconds(train_b.t_stop))
    if not t_stop > t_start:
        return None

    def cut(train: neo.SpikeTrain) -> neo.SpikeTrain:
        times = np.sort(np.asarray(train.times.rescale(pq.s).magnitude, dtype=float))
        times = times[(times >= t_start) & (times <= t_stop)]
        return neo.SpikeTrain(times, units=pq.s, t_start=t_start * pq.s, t_stop=t_stop * pq.s)

    return cut(train_a), cut(train_b), t_start, t_stop


def cross_correlogram(
    train_a: neo.SpikeTrain,
    train_b: neo.SpikeTrain,
    bin_s: float = 0.001,
    max_lag_s: float = 0.05,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Cross-correlation histogram of two trains: (lags in s, spike-pair counts per lag).

    Computed with :func:`elephant.spike_train_correlation.cross_correlation_histogram` on the
    trains binned in ``bin_s`` on their shared window (see the module docstring); positive lags
    mean ``train_b`` fires after ``train_a``. The lags run over whole bins up to ``max_lag_s``
    (fewer if the shared window is shorter). ``None`` when the trains share less than two bins.
    """
    bin_s = _check_positive("bin_s", bin_s)
    max_lag_s = _check_positive("max_lag_s", max_lag_s)
    shared = _shared(train_a, train_b)
    if shared is None:
        return None
    a, b, t_start, t_stop = shared
    n_bins = math.floor((t_stop - t_start) / bin_s + 1e-9)
    if n_bins < 2:
        return None
    t_stop = t_start + n_bins * bin_s
    max_lag_bins = min(round(max_lag_s / bin_s), n_bins - 1)
    with _quiet():
        binned = [
            BinnedSpikeTrain(
                neo.SpikeTrain(
                    train.magnitude[train.magnitude < t_stop],
                    units=pq.s,
                    t_start=t_start * pq.s,
                    t_stop=t_stop * pq.s,
                ),
                bin_size=bin_s * pq.s,
                t_start=t_start * pq.s,
                t_stop=t_stop * pq.s,
            )
            for train in (a, b)
        ]
        cch, lags = esc.cross_correlation_histogram(
            binned[0],
            binned[1],
            window=[-max_lag_bins, max_lag_bins],
            border_correction=False,
            binary=False,
            kernel=None,
        )
    counts = np.asarray(cch.magnitude, dtype=float).ravel()
    return np.asarray(lags, dtype=float) * bin_s, counts


def spike_time_tiling(
    train_a: neo.SpikeTrain, train_b: neo.SpikeTrain, dt_s: float = 0.005
) -> float | None:
    """Spike time tiling coefficient of two trains on their shared window (Cutts & Eglen 2014).

    :func:`elephant.spike_train_correlation.spike_time_tiling_coefficient` with coincidence
    window ``dt_s``; ``None`` where it is undefined (no shared window, a train without spikes).
    """
    dt_s = _check_positive("dt_s", dt_s)
    shared = _shared(train_a, train_b)
    if shared is None:
        return None
    a, b, _, _ = shared
    if len(a) == 0 or len(b) == 0:
        return None
    with _quiet():
        value = float(esc.spike_time_tiling_coefficient(a, b, dt=dt_s * pq.s))
    return value if math.isfinite(value) else None


def select_pairs(trains: Sequence[neo.SpikeTrain], max_pairs: int = MAX_PAIRS) -> list[tuple]:
    """Pairs ``(i, j)`` of train indices to analyse, at most ``max_pairs`` of them.

    All pairs of the ``k`` most active trains (most spikes first, ties by index; trains without
    spikes left out), ``k`` the largest with k(k-1)/2 <= ``max_pairs``; each pair is ordered
    ``i < j`` and the list runs from the most active pair down.
    """
    if max_pairs < 0:
        raise ValueError(f"max_pairs must be at least 0, got {max_pairs}.")
    active = [index for index, train in enumerate(trains) if len(train) > 0]
    active.sort(key=lambda index: (-len(trains[index]), index))
    k = 0
    while (k + 1) * k // 2 <= max_pairs and k < len(active):
        k += 1
    chosen = active[:k]
    return [
        (min(chosen[p], chosen[q]), max(chosen[p], chosen[q]))
        for p in range(len(chosen))
        for q in range(p + 1, len(chosen))
    ]


def _peak(lags: np.ndarray, counts: np.ndarray) -> tuple[float | None, float | None]:
    """Lag (s) and count of the CCH maximum; ties go to the lag nearest 0, then the earlier."""
    if counts.size == 0 or not counts.max() > 0:
        return None, None
    best = np.flatnonzero(counts == counts.max())
    index = best[np.argmin(np.abs(lags[best]))]
    return float(lags[index]), float(counts[index])


def pairwise_statistics(
    trains: Sequence[neo.SpikeTrain],
    bin_s: float = 0.001,
    max_lag_s: float = 0.05,
    sttc_dt_s: float = 0.005,
    max_pairs: int = MAX_PAIRS,
) -> dict[str, Any]:
    """STTC and CCH summary of the pairs :func:`select_pairs` picks from one segment's trains.

    Returns ``{"n_trains", "n_pairs_possible", "n_pairs", "selection", "bin_s", "max_lag_s",
    "sttc_dt_s", "pairs": [...]}``; each pair gives the two indices and names, its STTC
    (:func:`spike_time_tiling`), the shared window, and the lag and count of its CCH peak and
    the CCH's total count (:func:`cross_correlogram`); ``None`` where a value is undefined.
    """
    pairs = select_pairs(trains, max_pairs)
    results = []
    for i, j in pairs:
        shared = _shared(trains[i], trains[j])
        cch = cross_correlogram(trains[i], trains[j], bin_s, max_lag_s)
        lag, count = _peak(*cch) if cch is not None else (None, None)
        results.append(
            {
                "i": i,
                "j": j,
                "name_i": trains[i].name,
                "name_j": trains[j].name,
                "shared_window_s": [shared[2], shared[3]] if shared is not None else None,
                "sttc": spike_time_tiling(trains[i], trains[j], sttc_dt_s),
                "cch_peak_lag_s": lag,
                "cch_peak_count": count,
                "cch_total_count": float(cch[1].sum()) if cch is not None else None,
            }
        )
    n = len(trains)
    return {
        "n_trains": n,
        "n_pairs_possible": n * (n - 1) // 2,
        "n_pairs": len(results),
        "selection": f"all pairs of the most active trains with spikes, at most {max_pairs}",
        "bin_s": float(bin_s),
        "max_lag_s": float(max_lag_s),
        "sttc_dt_s": float(sttc_dt_s),
        "pairs": results,
    }


def plot_cross_correlograms(
    block: neo.Block,
    path: str | Path,
    bin_s: float = 0.001,
    max_lag_s: float = 0.05,
    max_pairs: int = MAX_PAIRS,
) -> Path:
    """Draw CCHs (spike pairs per bin against lag in ms), a row per segment, a panel per pair.

    Shows the first :data:`MAX_CCH_PAIRS` pairs that :func:`select_pairs` picks in each of the
    first :data:`MAX_CCH_SEGMENTS` segments that have a pair; a block without pairs gives a
    figure that says so. The PNG is written atomically; returns its path.
    """
    rows = []
    for index, segment in enumerate(block.segments):
        trains = list(segment.spiketrains)
        panels = []
        for i, j in select_pairs(trains, max_pairs)[:MAX_CCH_PAIRS]:
            cch = cross_correlogram(trains[i], trains[j], bin_s, max_lag_s)
            if cch is not None:
                panels.append((trains[i].name or f"train {i}", trains[j].name or f"train {j}", cch))
        if panels:
            rows.append((index, segment, panels))
    if not rows:
        figure = Figure(figsize=(6, 3))
        axes = figure.add_subplot()
        axes.text(0.5, 0.5, "no pairs of spike trains", ha="center", va="center", fontsize=14)
        axes.set_axis_off()
        axes.set_title("Cross-correlation histograms")
        return save_figure(figure, path)
    omitted = len(rows) - MAX_CCH_SEGMENTS
    rows = rows[:MAX_CCH_SEGMENTS]
    n_cols = max(len(panels) for _, _, panels in rows)
    figure = Figure(figsize=(max(6.0, 3.2 * n_cols), 1.2 + 2.4 * len(rows)))
    grid = figure.subplots(len(rows), n_cols, squeeze=False)
    for row, (index, segment, panels) in enumerate(rows):
        for col in range(n_cols):
            axes = grid[row, col]
            if col >= len(panels):
                axes.set_axis_off()
                continue
            name_a, name_b, (lags, counts) = panels[col]
            axes.bar(lags * 1e3, counts, width=bin_s * 1e3, color="C0")
            axes.axvline(0.0, color="0.6", linewidth=0.5)
            segment_label = f"seg {index}" + (f" {segment.name}" if segment.name else "")
            axes.set_title(f"{segment_label}: {name_a} → {name_b}", fontsize=8)
            if col == 0:
                axes.set_ylabel("spike pairs")
            if row == len(rows) - 1:
                axes.set_xlabel("lag (ms)")
    suffix = f" ({omitted} more segments not shown)" if omitted > 0 else ""
    figure.suptitle(f"Cross-correlation histograms ({bin_s * 1e3:g} ms bins){suffix}", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)

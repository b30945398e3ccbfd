"""Spike-train statistics and figures on neo objects, with elephant.

Works on any :class:`neo.Block` (from a neurosim run or from a lab's own NIX or NWB file, read
with :func:`neurosim.recording.read_recording`): spike trains may be in any time unit and
segments may hold analog signals, which are listed but not analysed. Like
:mod:`elephant.statistics`, every function takes neo objects and returns plain values; no
function here touches a live simulation.

Statistics, per spike train (each computed with the named elephant function):

- mean firing rate, spikes / (t_stop - t_start) in Hz:
  :func:`elephant.statistics.mean_firing_rate`;
- coefficient of variation of the inter-spike intervals, CV = std(ISI) / mean(ISI) (population
  standard deviation, ``ddof=0``), 0 for a regular train and 1 for a Poisson process
  (Softky & Koch 1993, J Neurosci 13:334): :func:`elephant.statistics.isi` then
  :func:`elephant.statistics.cv`; ``None`` with fewer than 3 spikes;
- local variation of the inter-spike intervals, LV = 3/(n-1) sum_i ((I_i - I_{i+1}) /
  (I_i + I_{i+1}))^2 over consecutive intervals, 0 for a regular train and 1 for a Poisson
  process but, unlike the CV, insensitive to slow changes of the rate (Shinomoto, Shima &
  Tanji 2003, Neural Comput 15:2823): :func:`elephant.statistics.lv`; ``None`` with fewer than
  3 spikes;
- Fano factor of the spike counts in consecutive, non-overlapping windows of ``bin_size_s``
  covering [t_start, t_stop) (an incomplete last window is dropped), FF = var(count) /
  mean(count), 1 for a Poisson process (Fano 1947; Eden & Kramer 2010, J Neurosci Methods
  190:149): :func:`elephant.statistics.fanofactor` on the list of windows; ``None`` with fewer
  than 2 windows or no spikes.

Per segment, the population: the number of trains and spikes, the mean and standard deviation
of the trains' rates, the mean CV and mean LV over the trains where they are defined, the
population rate (all spikes / summed observation time of the trains), and the across-train Fano
factor of the spike counts (:func:`elephant.statistics.fanofactor` on the segment's trains, when
they all have the same duration). The instantaneous rates of the segment's trains
(:func:`elephant.statistics.instantaneous_rate`, Gaussian kernel of standard deviation
``kernel_sigma_s``, see :func:`rate_map`) give the peak of the population rate and the rate
map figure; pairs of trains get their spike time tiling coefficient and cross-correlation
histogram (:mod:`analysis.correlations`, which says how pairs are chosen in large populations).

Figures (:func:`analyze_file`): spike rasters, the population rate, rate maps (trains x time,
instantaneous rate as colour) and cross-correlation histograms.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import elephant.statistics as es
import neo
import numpy as np
import quantities as pq
from elephant.kernels import GaussianKernel
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.correlations import MAX_PAIRS, pairwise_statistics, plot_cross_correlograms
from analysis.figures import save_figure
from neurosim.errors import NeurosimError
from neurosim.recording import read_recording
from neurosim.results import write_json

__all__ = [
    "analyze_file",
    "plot_instantaneous_rate",
    "plot_raster",
    "plot_rate_map",
    "rate_map",
    "spike_train_statistics",
]

#: Segments drawn in one figure; later ones are left out (and the figure says so).
MAX_SEGMENTS_PLOTTED = 12
#: Rate samples per train in :func:`plot_instantaneous_rate`, at most.
MAX_RATE_SAMPLES = 20_000
#: Values (trains x samples) of one segment's rate map, at most: longer maps are sampled coarser.
MAX_RATE_MAP_VALUES = 4_000_000
#: Trains drawn in one rate-map panel; the most active are kept.
MAX_RATE_MAP_TRAINS = 200
#: Rate-map panels with at most this many trains label each row with the train's name.
MAX_NAMED_ROWS = 20


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation and runtime warnings elephant 1.2.1 emits on quantities 0.16."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _finite_or_none(value: Any) -> float | None:
    """A Python float, or ``None`` for NaN, infinity or a missing value."""
    if value is None:
        return None
    if isinstance(value, pq.Quantity):
        value = value.magnitude
    value = float(np.asarray(value).item())
    return value if math.isfinite(value) else None


def _json_value(value: Any) -> Any:
    """``value`` made JSON-serialisable (no numpy types, no NaN), or ``None`` if it cannot be."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _finite_or_none(value)
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, pq.Quantity):
        return str(value) if value.ndim == 0 else _json_value(value.magnitude)
    if isinstance(value, np.ndarray):
        return _json_value(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _json_annotations(annotations: Mapping[str, Any]) -> dict[str, Any]:
    """The annotations of a neo object as JSON values, without NixIO's ``nix_name`` bookkeeping."""
    return {
        str(key): _json_value(value)
        for key, value in annotations.items()
        if key != "nix_name" and value is not None
    }


def _seconds(quantity: pq.Quantity) -> float:
    return float(quantity.rescale(pq.s).magnitude)


def _window_fano_factor(train: neo.SpikeTrain, bin_size_s: float) -> float | None:
    """Fano factor of the spike counts of ``train`` in consecutive windows of ``bin_size_s``.

    The windows (as arrays of the spike times they hold, all of the same duration) are passed to
    :func:`elephant.statistics.fanofactor`, which returns var(count) / mean(count).
    """
    t_start = _seconds(train.t_start)
    duration = _seconds(train.t_stop) - t_start
    n_windows = math.floor(duration / bin_size_s + 1e-9) if bin_size_s > 0 else 0
    if n_windows < 2 or len(train) == 0:
        return None
    times = np.sort(np.asarray(train.times.rescale(pq.s).magnitude, dtype=float))
    edges = t_start + bin_size_s * np.arange(n_windows + 1)
    bounds = np.searchsorted(times, edges, side="left")
    windows = [times[bounds[k] : bounds[k + 1]] for k in range(n_windows)]
    if sum(len(window) for window in windows) == 0:
        return None
    with _quiet():
        return _finite_or_none(es.fanofactor(windows))


def _train_statistics(train: neo.SpikeTrain, bin_size_s: float) -> dict[str, Any]:
    t_start = _seconds(train.t_start)
    t_stop = _seconds(train.t_stop)
    duration = t_stop - t_start
    n_spikes = len(train)
    with _quiet():
        rate = _finite_or_none(es.mean_firing_rate(train).rescale(pq.Hz)) if duration > 0 else None
        cv = None
        lv = None
        if n_spikes >= 3:
            intervals = np.asarray(
                es.isi(np.sort(train.times.rescale(pq.s).magnitude)), dtype=float
            )
            cv = _finite_or_none(es.cv(intervals))
            lv = _finite_or_none(es.lv(intervals, with_nan=True))
    return {
        "name": train.name,
        "annotations": _json_annotations(train.annotations),
        "n_spikes": int(n_spikes),
        "t_start_s": _finite_or_none(t_start),
        "t_stop_s": _finite_or_none(t_stop),
        "duration_s": _finite_or_none(duration),
        "mean_rate_hz": rate,
        "cv_isi": cv,
        "lv": lv,
        "fano_factor": _window_fano_factor(train, bin_size_s),
    }


def _population_statistics(
    trains: list[neo.SpikeTrain], per_train: list[dict[str, Any]]
) -> dict[str, Any]:
    rates = [s["mean_rate_hz"] for s in per_train if s["mean_rate_hz"] is not None]
    cvs = [s["cv_isi"] for s in per_train if s["cv_isi"] is not None]
    lvs = [s["lv"] for s in per_train if s["lv"] is not None]
    durations = [s["duration_s"] for s in per_train if s["duration_s"] is not None]
    n_spikes = sum(s["n_spikes"] for s in per_train)
    exposure = sum(durations)
    fano_across = None
    if len(trains) >= 2 and n_spikes > 0 and np.ptp(durations) <= 1e-9 * max(durations):
        with _quiet():
            fano_across = _finite_or_none(es.fanofactor([train.rescale(pq.s) for train in trains]))
    return {
        "n_spike_trains": len(trains),
        "n_spikes": int(n_spikes),
        "mean_rate_hz": _finite_or_none(np.mean(rates)) if rates else None,
        "std_rate_hz": _finite_or_none(np.std(rates)) if rates else None,
        "population_rate_hz": _finite_or_none(n_spikes / exposure) if exposure > 0 else None,
        "mean_cv_isi": _finite_or_none(np.mean(cvs)) if cvs else None,
        "mean_lv": _finite_or_none(np.mean(lvs)) if lvs else None,
        "fano_factor_across_trains": fano_across,
    }


def _signal_summary(signal: neo.AnalogSignal) -> dict[str, Any]:
    return {
        "name": signal.name,
        "shape": [int(n) for n in signal.shape],
        "units": signal.units.dimensionality.string,
        "sampling_period_s": _finite_or_none(_seconds(signal.sampling_period)),
        "t_start_s": _finite_or_none(_seconds(signal.t_start)),
    }


def spike_train_statistics(
    block: neo.Block,
    bin_size_s: float = 0.05,
    kernel_sigma_s: float = 0.05,
    cch_bin_s: float = 0.001,
    cch_max_lag_s: float = 0.05,
    sttc_dt_s: float = 0.005,
    max_pairs: int = MAX_PAIRS,
) -> dict:
    """Per-train, per-segment and pairwise spike-train statistics of ``block``, as a JSON dict.

    Every spike train of every segment gets its rate (:func:`elephant.statistics.mean_firing_rate`,
    Hz), ISI CV (:func:`elephant.statistics.isi` and :func:`elephant.statistics.cv`) and LV
    (:func:`elephant.statistics.lv`), both ``None`` under 3 spikes, and the Fano factor of its
    spike counts in consecutive windows of ``bin_size_s`` seconds
    (:func:`elephant.statistics.fanofactor`). Every segment gets its population statistics, a
    summary of its instantaneous rates (:func:`rate_map`, Gaussian kernel of
    ``kernel_sigma_s``) and the STTC (coincidence window ``sttc_dt_s``) and CCH (bins of
    ``cch_bin_s``, lags up to ``cch_max_lag_s``) of at most ``max_pairs`` pairs
    (:func:`analysis.correlations.pairwise_statistics`). See the module docstrings for the
    definitions and papers. Returns ``{"block_name", "bin_size_s", "definitions",
    "segments": [...], "spike_trains": [...]}``; ``spike_trains`` is the flat list of all
    trains, each naming its segment. Values are Python types only, with ``None`` for NaN.
    """
    for name, value in (
        ("bin_size_s", bin_size_s),
        ("kernel_sigma_s", kernel_sigma_s),
        ("cch_bin_s", cch_bin_s),
        ("cch_max_lag_s", cch_max_lag_s),
        ("sttc_dt_s", sttc_dt_s),
    ):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number of seconds, got {value}.")
    segments: list[dict[str, Any]] = []
    all_trains: list[dict[str, Any]] = []
    for segment_index, segment in enumerate(block.segments):
        trains = list(segment.spiketrains)
        per_train = []
        for train_index, train in enumerate(trains):
            stats = {
                "segment_index": segment_index,
                "segment_name": segment.name,
                "index": train_index,
                **_train_statistics(train, bin_size_s),
            }
            per_train.append(stats)
        all_trains.extend(per_train)
        segments.append(
            {
                "index": segment_index,
                "name": segment.name,
                "annotations": _json_annotations(segment.annotations),
                "spike_trains": per_train,
                "analog_signals": [_signal_summary(s) for s in segment.analogsignals],
                "population": _population_statistics(trains, per_train),
                "instantaneous_rate": _rate_summary(trains, kernel_sigma_s),
                "pairs": _json_value(
                    pairwise_statistics(trains, cch_bin_s, cch_max_lag_s, sttc_dt_s, max_pairs)
                ),
            }
        )
    return {
        "block_name": block.name,
        "annotations": _json_annotations(block.annotations),
        "bin_size_s": float(bin_size_s),
        "kernel_sigma_s": float(kernel_sigma_s),
        "cch_bin_s": float(cch_bin_s),
        "cch_max_lag_s": float(cch_max_lag_s),
        "sttc_dt_s": float(sttc_dt_s),
        "max_pairs": int(max_pairs),
        "definitions": {
            "mean_rate_hz": "elephant.statistics.mean_firing_rate: n_spikes / (t_stop - t_start)",
            "cv_isi": "elephant.statistics.cv of elephant.statistics.isi: std(ISI) / mean(ISI)"
            " (ddof=0), None under 3 spikes",
            "lv": "elephant.statistics.lv of the ISIs: 3/(n-1) sum ((I_i - I_i+1) / (I_i +"
            " I_i+1))^2 (Shinomoto et al. 2003), None under 3 spikes",
            "fano_factor": "elephant.statistics.fanofactor of the spike counts in consecutive"
            " windows of bin_size_s: var(count) / mean(count)",
            "fano_factor_across_trains": "elephant.statistics.fanofactor of the spike counts"
            " of the segment's trains (equal durations only)",
            "population_rate_hz": "all spikes / summed (t_stop - t_start) of the trains",
            "instantaneous_rate": "elephant.statistics.instantaneous_rate, Gaussian kernel of"
            " standard deviation kernel_sigma_s, trains on their common window; population ="
            " mean over the segment's trains",
            "sttc": "elephant.spike_train_correlation.spike_time_tiling_coefficient on the"
            " pair's shared window, coincidence window sttc_dt_s (Cutts & Eglen 2014)",
            "cch": "elephant.spike_train_correlation.cross_correlation_histogram of the pair"
            " binned in cch_bin_s on its shared window; lag > 0: train j fires after train i",
            "pair_selection": "all pairs of the most active trains (most spikes first, trains"
            " without spikes left out), at most max_pairs pairs per segment",
        },
        "segments": segments,
        "spike_trains": all_trains,
    }


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _segments_with_trains(block: neo.Block) -> list[tuple[int, neo.Segment]]:
    return [(i, seg) for i, seg in enumerate(block.segments) if len(seg.spiketrains) > 0]


def _empty_figure(path: str | Path, title: str) -> Path:
    figure = Figure(figsize=(6, 3))
    axes = figure.add_subplot()
    axes.text(0.5, 0.5, "no spike trains", ha="center", va="center", fontsize=14)
    axes.set_axis_off()
    axes.set_title(title)
    return save_figure(figure, path)


def _segment_title(index: int, segment: neo.Segment) -> str:
    return f"segment {index}" + (f": {segment.name}" if segment.name else "")


def _axes_grid(n_panels: int, omitted: int, title: str) -> tuple[Figure, list]:
    figure = Figure(figsize=(8, 1.0 + 2.2 * n_panels))
    axes = figure.subplots(n_panels, 1, squeeze=False)[:, 0].tolist()
    suffix = f" ({omitted} more segments not shown)" if omitted else ""
    figure.suptitle(title + suffix)
    return figure, axes


def plot_raster(block: neo.Block, path: str | Path) -> Path:
    """Draw a spike raster, one panel per segment (time in s, one row per spike train).

    At most :data:`MAX_SEGMENTS_PLOTTED` segments are drawn; a block without spike trains gives
    a figure that says so. The PNG is written atomically; returns its path.
    """
    segments = _segments_with_trains(block)
    if not segments:
        return _empty_figure(path, "Spike raster")
    shown = segments[:MAX_SEGMENTS_PLOTTED]
    figure, axes_list = _axes_grid(len(shown), len(segments) - len(shown), "Spike raster")
    for axes, (index, segment) in zip(axes_list, shown, strict=True):
        trains = segment.spiketrains
        positions = [np.asarray(t.times.rescale(pq.s).magnitude, dtype=float) for t in trains]
        axes.eventplot(
            positions,
            lineoffsets=np.arange(len(trains)),
            linelengths=0.8,
            linewidths=0.5,
            colors="k",
        )
        t_start = min(_seconds(t.t_start) for t in trains)
        t_stop = max(_seconds(t.t_stop) for t in trains)
        if t_stop > t_start:
            axes.set_xlim(t_start, t_stop)
        axes.set_ylim(-0.5, len(trains) - 0.5)
        axes.set_ylabel("train")
        axes.set_title(_segment_title(index, segment), fontsize=9)
    axes_list[-1].set_xlabel("time (s)")
    figure.tight_layout()
    return save_figure(figure, path)


def rate_map(
    trains: list[neo.SpikeTrain],
    kernel_sigma_s: float = 0.05,
    sampling_period_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Instantaneous rates of ``trains``: (times in s, rates in Hz shaped (train, time), method).

    The trains are put on their common window [min t_start, max t_stop] (in seconds) and passed
    together to :func:`elephant.statistics.instantaneous_rate` with a
    :class:`elephant.kernels.GaussianKernel` of standard deviation ``kernel_sigma_s``, sampled
    every ``sampling_period_s`` (default: sigma / 5, made coarser so that one train has at most
    :data:`MAX_RATE_SAMPLES` samples and the map at most :data:`MAX_RATE_MAP_VALUES` values).
    If elephant raises ValueError/TypeError (e.g. for a window shorter than the kernel),
    :func:`elephant.statistics.time_histogram` with ``output="rate"`` is used instead, per
    train, with bins of ``kernel_sigma_s``. ``method`` says which one was used.
    """
    if not (kernel_sigma_s > 0 and math.isfinite(kernel_sigma_s)):
        raise ValueError(f"kernel_sigma_s must be positive, got {kernel_sigma_s}.")
    if not trains:
        return np.zeros(0), np.zeros((0, 0)), "no spike trains"
    t_start = min(_seconds(t.t_start) for t in trains)
    t_stop = max(_seconds(t.t_stop) for t in trains)
    duration = t_stop - t_start
    if not duration > 0:
        return np.array([t_start]), np.full((len(trains), 1), np.nan), "empty window"
    aligned = [
        neo.SpikeTrain(
            np.sort(t.times.rescale(pq.s).magnitude),
            units=pq.s,
            t_start=t_start * pq.s,
            t_stop=t_stop * pq.s,
        )
        for t in trains
    ]
    if sampling_period_s is None:
        sampling_period_s = max(
            kernel_sigma_s / 5.0,
            duration / MAX_RATE_SAMPLES,
            duration * len(trains) / MAX_RATE_MAP_VALUES,
        )
    with _quiet():
        try:
            rate = es.instantaneous_rate(
                aligned,
                sampling_period=sampling_period_s * pq.s,
                kernel=GaussianKernel(kernel_sigma_s * pq.s),
            )
            values = np.asarray(rate.rescale(pq.Hz).magnitude, dtype=float)
            times = np.asarray(rate.times.rescale(pq.s).magnitude, dtype=float)
            method = f"Gaussian kernel, sigma = {kernel_sigma_s * 1e3:g} ms"
        except (ValueError, TypeError, ArithmeticError):
            bin_size = min(kernel_sigma_s, duration)
            columns = []
            for train in aligned:
                histogram = es.time_histogram([train], bin_size * pq.s, output="rate")
                columns.append(np.asarray(histogram.rescale(pq.Hz).magnitude, dtype=float))
                times = np.asarray(histogram.times.rescale(pq.s).magnitude, dtype=float)
            values = np.concatenate(columns, axis=1)
            method = f"histogram, bins of {bin_size * 1e3:g} ms"
    values = values.reshape(len(times), len(trains))
    return times, values.T, method


def _population_rate(
    trains: list[neo.SpikeTrain], kernel_sigma_s: float
) -> tuple[np.ndarray, np.ndarray, str]:
    """Times (s), mean rate per train (Hz) and method of ``trains`` (see :func:`rate_map`)."""
    times, rates, method = rate_map(trains, kernel_sigma_s)
    return times, rates.mean(axis=0), method


def _rate_summary(trains: list[neo.SpikeTrain], kernel_sigma_s: float) -> dict[str, Any]:
    """Peak and trough of a segment's population rate from :func:`rate_map`."""
    times, rates, method = rate_map(trains, kernel_sigma_s)
    population = rates.mean(axis=0) if rates.size else np.zeros(0)
    finite = np.isfinite(population)
    if not finite.any():
        return {"method": method, "kernel_sigma_s": float(kernel_sigma_s)}
    peak = int(np.nanargmax(np.where(finite, population, -np.inf)))
    return {
        "method": method,
        "kernel_sigma_s": float(kernel_sigma_s),
        "sampling_period_s": _finite_or_none(times[1] - times[0]) if times.size > 1 else None,
        "population_peak_hz": _finite_or_none(population[peak]),
        "population_peak_time_s": _finite_or_none(times[peak]),
        "population_min_hz": _finite_or_none(np.nanmin(population)),
        "max_train_peak_hz": _finite_or_none(np.nanmax(rates)),
    }


def plot_instantaneous_rate(
    block: neo.Block, path: str | Path, kernel_sigma_s: float = 0.05
) -> Path:
    """Draw each segment's population rate (mean over its trains, Hz) against time (s).

    Uses :func:`elephant.statistics.instantaneous_rate` with a
    :class:`elephant.kernels.GaussianKernel` of ``kernel_sigma_s``, falling back to
    :func:`elephant.statistics.time_histogram` where the kernel estimate fails. A block without
    spike trains gives a figure that says so. The PNG is written atomically; returns its path.
    """
    if not (kernel_sigma_s > 0 and math.isfinite(kernel_sigma_s)):
        raise ValueError(f"kernel_sigma_s must be positive, got {kernel_sigma_s}.")
    segments = _segments_with_trains(block)
    if not segments:
        return _empty_figure(path, "Population rate")
    shown = segments[:MAX_SEGMENTS_PLOTTED]
    figure, axes_list = _axes_grid(len(shown), len(segments) - len(shown), "Population rate")
    for axes, (index, segment) in zip(axes_list, shown, strict=True):
        times, rate, method = _population_rate(list(segment.spiketrains), kernel_sigma_s)
        axes.plot(times, rate, color="C0")
        axes.set_ylabel("rate (Hz)")
        axes.set_title(f"{_segment_title(index, segment)} ({method})", fontsize=9)
    axes_list[-1].set_xlabel("time (s)")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_rate_map(block: neo.Block, path: str | Path, kernel_sigma_s: float = 0.05) -> Path:
    """Draw rate maps: per segment, a heat map of trains x time coloured by instantaneous rate.

    Rates come from :func:`rate_map` (:func:`elephant.statistics.instantaneous_rate`, Gaussian
    kernel of ``kernel_sigma_s``); rows are the segment's trains in their order (at most
    :data:`MAX_RATE_MAP_TRAINS`, the most active kept; named when there are few), one colour
    bar per panel in Hz. At most
    :data:`MAX_SEGMENTS_PLOTTED` segments are drawn; a block without spike trains gives a figure
    that says so. The PNG is written atomically; returns its path.
    """
    if not (kernel_sigma_s > 0 and math.isfinite(kernel_sigma_s)):
        raise ValueError(f"kernel_sigma_s must be positive, got {kernel_sigma_s}.")
    segments = _segments_with_trains(block)
    if not segments:
        return _empty_figure(path, "Rate map")
    shown = segments[:MAX_SEGMENTS_PLOTTED]
    figure, axes_list = _axes_grid(len(shown), len(segments) - len(shown), "Rate map")
    for axes, (index, segment) in zip(axes_list, shown, strict=True):
        trains = list(segment.spiketrains)
        rows = list(range(len(trains)))
        if len(rows) > MAX_RATE_MAP_TRAINS:
            rows = sorted(sorted(rows, key=lambda i: -len(trains[i]))[:MAX_RATE_MAP_TRAINS])
        times, rates, method = rate_map([trains[i] for i in rows], kernel_sigma_s)
        if times.size > 1:
            step = times[1] - times[0]
            extent = (times[0] - step / 2, times[-1] + step / 2, len(rows) - 0.5, -0.5)
        else:
            extent = (times[0] - 0.5, times[0] + 0.5, len(rows) - 0.5, -0.5)
        image = axes.imshow(
            np.nan_to_num(rates),
            aspect="auto",
            interpolation="nearest",
            cmap="viridis",
            extent=extent,
        )
        colorbar = figure.colorbar(image, ax=axes, pad=0.01)
        colorbar.set_label("rate (Hz)", fontsize=8)
        if len(rows) <= MAX_NAMED_ROWS:
            axes.set_yticks(range(len(rows)))
            axes.set_yticklabels([trains[i].name or str(i) for i in rows], fontsize=7)
        else:
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("train")
        shown_rows = f", {len(rows)} of {len(trains)} trains" if len(rows) < len(trains) else ""
        axes.set_title(f"{_segment_title(index, segment)} ({method}{shown_rows})", fontsize=9)
    axes_list[-1].set_xlabel("time (s)")
    figure.tight_layout()
    return save_figure(figure, path)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def analyze_file(
    path: str | Path,
    out_dir: str | Path,
    bin_size_s: float = 0.05,
    kernel_sigma_s: float = 0.05,
    cch_bin_s: float = 0.001,
    cch_max_lag_s: float = 0.05,
    sttc_dt_s: float = 0.005,
    max_pairs: int = MAX_PAIRS,
) -> dict:
    """Analyse the spike trains of the NIX or NWB file ``path``; write the results to ``out_dir``.

    Reads the first block with :func:`neurosim.recording.read_recording` (``.nix`` or ``.nwb``,
    written by neurosim or by anyone else), computes :func:`spike_train_statistics` and writes,
    each atomically, ``out_dir/analysis.json`` and under ``out_dir/figures/``: ``raster.png``,
    ``instantaneous_rate.png`` (population rate), ``rate_map.png`` (trains x time) and
    ``cross_correlograms.png``. Returns the statistics (with ``"source"``, the file read, and
    ``"figures"``, the figure names, added). An unreadable input or an output folder that cannot
    be written raises :class:`NeurosimError`.
    """
    path = Path(path)
    out_dir = Path(out_dir)
    block = read_recording(path)
    stats = spike_train_statistics(
        block,
        bin_size_s=bin_size_s,
        kernel_sigma_s=kernel_sigma_s,
        cch_bin_s=cch_bin_s,
        cch_max_lag_s=cch_max_lag_s,
        sttc_dt_s=sttc_dt_s,
        max_pairs=max_pairs,
    )
    figures = out_dir / "figures"
    names = ["raster.png", "instantaneous_rate.png", "rate_map.png", "cross_correlograms.png"]
    stats = {"source": str(path), "figures": [f"figures/{name}" for name in names], **stats}
    try:
        figures.mkdir(parents=True, exist_ok=True)
        plot_raster(block, figures / names[0])
        plot_instantaneous_rate(block, figures / names[1], kernel_sigma_s=kernel_sigma_s)
        plot_rate_map(block, figures / names[2], kernel_sigma_s=kernel_sigma_s)
        plot_cross_correlograms(
            block,
            figures / names[3],
            bin_s=cch_bin_s,
            max_lag_s=cch_max_lag_s,
            max_pairs=max_pairs,
        )
        write_json(out_dir / "analysis.json", stats)
    except OSError as exc:
        raise NeurosimError(
            f"Cannot write the analysis of {path} to {out_dir} (is it a writable folder?): {exc}"
        ) from exc
    return stats

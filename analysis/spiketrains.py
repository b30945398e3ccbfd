"""Spike-train statistics and figures on neo objects, with elephant.

Works on any :class:`neo.Block` (from a neurosim run or from a lab's own NIX file): spike trains
may be in any time unit and segments may hold analog signals, which are listed but not analysed.
Like :mod:`elephant.statistics`, every function takes neo objects and returns plain values; no
function here touches a live simulation.

Statistics, per spike train (each computed with the named elephant function):

- mean firing rate, spikes / (t_stop - t_start) in Hz:
  :func:`elephant.statistics.mean_firing_rate`;
- coefficient of variation of the inter-spike intervals, CV = std(ISI) / mean(ISI) (population
  standard deviation, ``ddof=0``), 0 for a regular train and 1 for a Poisson process
  (Softky & Koch 1993, J Neurosci 13:334): :func:`elephant.statistics.isi` then
  :func:`elephant.statistics.cv`; ``None`` with fewer than 3 spikes;
- Fano factor of the spike counts in consecutive, non-overlapping windows of ``bin_size_s``
  covering [t_start, t_stop) (an incomplete last window is dropped), FF = var(count) /
  mean(count), 1 for a Poisson process (Fano 1947; Eden & Kramer 2010, J Neurosci Methods
  190:149): :func:`elephant.statistics.fanofactor` on the list of windows; ``None`` with fewer
  than 2 windows or no spikes.

Per segment, the population: the number of trains and spikes, the mean and standard deviation
of the trains' rates, the mean CV over the trains where it is defined, the population rate
(all spikes / summed observation time of the trains), and the across-train Fano factor of the spike
counts (:func:`elephant.statistics.fanofactor` on the segment's trains, when they all have the
same duration).
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

from analysis.figures import save_figure
from neurosim.errors import NeurosimError
from neurosim.recording import read_nix
from neurosim.results import write_json

__all__ = [
    "analyze_file",
    "plot_instantaneous_rate",
    "plot_raster",
    "spike_train_statistics",
]

#: Segments drawn in one figure; later ones are left out (and the figure says so).
MAX_SEGMENTS_PLOTTED = 12
#: Rate samples per train in :func:`plot_instantaneous_rate`, at most.
MAX_RATE_SAMPLES = 20_000


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
        if n_spikes >= 3:
            intervals = es.isi(np.sort(train.times.rescale(pq.s).magnitude))
            cv = _finite_or_none(es.cv(np.asarray(intervals, dtype=float)))
    return {
        "name": train.name,
        "annotations": _json_annotations(train.annotations),
        "n_spikes": int(n_spikes),
        "t_start_s": _finite_or_none(t_start),
        "t_stop_s": _finite_or_none(t_stop),
        "duration_s": _finite_or_none(duration),
        "mean_rate_hz": rate,
        "cv_isi": cv,
        "fano_factor": _window_fano_factor(train, bin_size_s),
    }


def _population_statistics(
    trains: list[neo.SpikeTrain], per_train: list[dict[str, Any]]
) -> dict[str, Any]:
    rates = [s["mean_rate_hz"] for s in per_train if s["mean_rate_hz"] is not None]
    cvs = [s["cv_isi"] for s in per_train if s["cv_isi"] is not None]
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


def spike_train_statistics(block: neo.Block, bin_size_s: float = 0.05) -> dict:
    """Per-train and per-segment spike-train statistics of ``block``, as a JSON-ready dict.

    Every spike train of every segment gets its rate (:func:`elephant.statistics.mean_firing_rate`,
    Hz), ISI CV (:func:`elephant.statistics.isi` and :func:`elephant.statistics.cv`, ``None``
    under 3 spikes) and the Fano factor of its spike counts in consecutive windows of
    ``bin_size_s`` seconds (:func:`elephant.statistics.fanofactor`); see the module docstring
    for the definitions and papers. Returns ``{"block_name", "bin_size_s", "definitions",
    "segments": [...], "spike_trains": [...]}``; ``spike_trains`` is the flat list of all
    trains, each naming its segment. Values are Python types only, with ``None`` for NaN.
    """
    if not (bin_size_s > 0 and math.isfinite(bin_size_s)):
        raise ValueError(f"bin_size_s must be a positive number of seconds, got {bin_size_s}.")
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
            }
        )
    return {
        "block_name": block.name,
        "annotations": _json_annotations(block.annotations),
        "bin_size_s": float(bin_size_s),
        "definitions": {
            "mean_rate_hz": "elephant.statistics.mean_firing_rate: n_spikes / (t_stop - t_start)",
            "cv_isi": "elephant.statistics.cv of elephant.statistics.isi: std(ISI) / mean(ISI)"
            " (ddof=0), None under 3 spikes",
            "fano_factor": "elephant.statistics.fanofactor of the spike counts in consecutive"
            " windows of bin_size_s: var(count) / mean(count)",
            "fano_factor_across_trains": "elephant.statistics.fanofactor of the spike counts"
            " of the segment's trains (equal durations only)",
            "population_rate_hz": "all spikes / summed (t_stop - t_start) of the trains",
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


def _population_rate(
    trains: list[neo.SpikeTrain], kernel_sigma_s: float
) -> tuple[np.ndarray, np.ndarray, str]:
    """Times (s) and mean rate per train (Hz) of ``trains``, and the method used.

    The trains are put on their common window [min t_start, max t_stop] (in seconds), then
    :func:`elephant.statistics.instantaneous_rate` with a Gaussian kernel of ``kernel_sigma_s``
    is averaged over trains; if elephant raises ValueError/TypeError (e.g. for a degenerate
    window), :func:`elephant.statistics.time_histogram` with ``output="rate"`` and bins of
    ``kernel_sigma_s`` is used instead.
    """
    t_start = min(_seconds(t.t_start) for t in trains)
    t_stop = max(_seconds(t.t_stop) for t in trains)
    duration = t_stop - t_start
    if not duration > 0:
        return np.array([t_start]), np.array([np.nan]), "empty window"
    aligned = [
        neo.SpikeTrain(
            np.sort(t.times.rescale(pq.s).magnitude),
            units=pq.s,
            t_start=t_start * pq.s,
            t_stop=t_stop * pq.s,
        )
        for t in trains
    ]
    sampling_period = max(kernel_sigma_s / 5.0, duration / MAX_RATE_SAMPLES)
    with _quiet():
        try:
            rate = es.instantaneous_rate(
                aligned,
                sampling_period=sampling_period * pq.s,
                kernel=GaussianKernel(kernel_sigma_s * pq.s),
            )
            values = np.asarray(rate.rescale(pq.Hz).magnitude, dtype=float)
            times = np.asarray(rate.times.rescale(pq.s).magnitude, dtype=float)
            method = f"Gaussian kernel, sigma = {kernel_sigma_s * 1e3:g} ms"
        except (ValueError, TypeError, ArithmeticError):
            bin_size = min(kernel_sigma_s, duration) if duration > 0 else kernel_sigma_s
            histogram = es.time_histogram(aligned, bin_size * pq.s, output="rate")
            values = np.asarray(histogram.rescale(pq.Hz).magnitude, dtype=float)
            times = np.asarray(histogram.times.rescale(pq.s).magnitude, dtype=float)
            method = f"histogram, bins of {bin_size * 1e3:g} ms"
    population = values.mean(axis=1) if values.ndim == 2 else values
    return times, population, method


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


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def analyze_file(path: str | Path, out_dir: str | Path, bin_size_s: float = 0.05) -> dict:
    """Analyse the spike trains of the NIX file ``path`` and write the results to ``out_dir``.

    Reads the first block with :func:`neurosim.recording.read_nix` (any NIX file written by neo,
    not only neurosim's), computes :func:`spike_train_statistics`, and writes
    ``out_dir/analysis.json``, ``out_dir/figures/raster.png`` and
    ``out_dir/figures/instantaneous_rate.png``, each atomically. Returns the statistics (with
    ``"source"``, the file read, added). An output folder that cannot be written raises
    :class:`NeurosimError`.
    """
    path = Path(path)
    out_dir = Path(out_dir)
    block = read_nix(path)
    stats = spike_train_statistics(block, bin_size_s=bin_size_s)
    stats = {"source": str(path), **stats}
    figures = out_dir / "figures"
    try:
        figures.mkdir(parents=True, exist_ok=True)
        plot_raster(block, figures / "raster.png")
        plot_instantaneous_rate(block, figures / "instantaneous_rate.png")
        write_json(out_dir / "analysis.json", stats)
    except OSError as exc:
        raise NeurosimError(
            f"Cannot write the analysis of {path} to {out_dir} (is it a writable folder?): {exc}"
        ) from exc
    return stats

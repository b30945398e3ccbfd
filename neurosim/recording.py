"""Recorded arrays to neo objects, and neo blocks to and from NIX and NWB files.

This module knows nothing of Brian2: the engine turns its monitors into plain numpy arrays in SI
units (spike times in seconds) and hands them over as :class:`SpikeRecord` and
:class:`SignalRecord` objects grouped into :class:`SegmentRecord` objects (one per phase or
epoch). :func:`to_block` builds one :class:`neo.Block` from them (one :class:`neo.Segment` per
record, spike trains in seconds with their ``t_start``/``t_stop``, analog signals shaped
``(time, channel)``), :func:`write_nix` writes it atomically with :class:`neo.io.NixIO`, and
:func:`read_nix` reads it back, turning every unreadable file into a :class:`NeurosimError`.

:func:`write_nwb` and :func:`read_nwb` do the same for Neurodata Without Borders files, written
with pynwb directly (layout in :func:`write_nwb`): neo 0.14.6's ``NWBIO`` does write and read
with pynwb 4.2, but it renames every analog signal in the block it is given, drops all
annotations and segments without data, and cannot keep segment order or tell apart two segments
of the same name. The layout stays readable by ``neo.io.NWBIO`` (same ``_name``/``segment``/
``block`` columns, same JSON ``comments``), and :func:`read_nwb` also reads files written by
neo's writer and plain pynwb files with a units table. :func:`read_recording` picks the reader
from the suffix.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import numbers
import os
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo
import numpy as np
import quantities as pq
from neo.io import NixIO

from neurosim.errors import NeurosimError

__all__ = [
    "SegmentRecord",
    "SignalRecord",
    "SpikeRecord",
    "nix_annotations",
    "read_nix",
    "read_nwb",
    "read_recording",
    "to_block",
    "write_nix",
    "write_nwb",
]


@dataclass
class SpikeRecord:
    """One spike train: spike times in seconds and the recording window that contains them."""

    name: str
    times_s: np.ndarray
    t_start_s: float
    t_stop_s: float
    annotations: dict = field(default_factory=dict)


@dataclass
class SignalRecord:
    """One analog signal sampled at a fixed period, ``values`` shaped ``(time, channel)``.

    ``units`` is any unit string :mod:`quantities` understands (``"mV"``, ``"ms"``, ``"Hz"``) or
    ``"dimensionless"`` (the rate models' potentials, synaptic weights over time).
    """

    name: str
    values: np.ndarray
    sampling_period_s: float
    t_start_s: float
    units: str = "dimensionless"
    annotations: dict = field(default_factory=dict)


@dataclass
class SegmentRecord:
    """One phase or epoch of a run: its spike trains and analog signals."""

    name: str
    spikes: list[SpikeRecord] = field(default_factory=list)
    signals: list[SignalRecord] = field(default_factory=list)
    annotations: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Annotations
# ---------------------------------------------------------------------------------------------

_DROP = object()


def _scalar(value: Any) -> Any:
    """A NIX-storable Python scalar for ``value``, or ``_DROP``/``None`` when it is not one."""
    if value is None:
        return _DROP
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (str, np.str_)):
        return str(value)
    return None


def _nix_value(value: Any) -> Any:
    """Convert one annotation value to something NixIO stores and reads back unchanged.

    Python and numpy scalars become Python scalars; scalar quantities are kept (NixIO stores
    their units); 1-D lists, tuples and arrays of numbers, of strings or of booleans become
    homogeneous lists (integers mixed with floats become floats, which NIX requires); ``None``
    is dropped; dictionaries, nested or mixed sequences and anything else become a JSON string
    (or ``str(value)``), since NixIO silently drops or mangles them.
    """
    if isinstance(value, pq.Quantity):
        if value.ndim == 0:
            return value
        value = value.magnitude
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _nix_value(value.item())
    if isinstance(value, (list, tuple, np.ndarray)):
        items = value.tolist() if isinstance(value, np.ndarray) else list(value)
        converted = [_scalar(item) for item in items]
        if all(isinstance(item, bool) for item in converted):
            return converted
        if all(isinstance(item, int) and not isinstance(item, bool) for item in converted):
            return converted
        if all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in converted):
            return [float(item) for item in converted]
        if all(isinstance(item, str) for item in converted):
            return converted
        return json.dumps(_json_ready(items), allow_nan=True)
    if isinstance(value, Mapping):
        return json.dumps(_json_ready(value), allow_nan=True)
    return str(value)


def _json_ready(value: Any) -> Any:
    """Make nested containers of numpy values acceptable to :func:`json.dumps`."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, pq.Quantity):
        return str(value)
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if value is None:
        return None
    scalar = _scalar(value)
    if scalar is not None and scalar is not _DROP:
        return scalar
    return str(value)


def nix_annotations(annotations: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a copy of ``annotations`` that :class:`neo.io.NixIO` can store.

    Keys become strings; see :func:`_nix_value` for how values are converted. ``None`` values
    are dropped (NIX cannot store an empty value).
    """
    if not annotations:
        return {}
    result: dict[str, Any] = {}
    for key, value in annotations.items():
        converted = _nix_value(value)
        if converted is _DROP:
            continue
        result[str(key)] = converted
    return result


# ---------------------------------------------------------------------------------------------
# Records to neo
# ---------------------------------------------------------------------------------------------


def _spike_train(record: SpikeRecord) -> neo.SpikeTrain:
    times = np.asarray(record.times_s, dtype=float)
    if times.ndim != 1:
        raise ValueError(
            f"Spike train {record.name!r} must have 1-D spike times, got shape {times.shape}."
        )
    t_start = float(record.t_start_s)
    t_stop = float(record.t_stop_s)
    if not (math.isfinite(t_start) and math.isfinite(t_stop)) or t_stop < t_start:
        raise ValueError(
            f"Spike train {record.name!r} has an invalid window "
            f"t_start={t_start} s, t_stop={t_stop} s."
        )
    if not np.all(np.isfinite(times)):
        raise ValueError(f"Spike train {record.name!r} has non-finite spike times.")
    if times.size and (times.min() < t_start or times.max() > t_stop):
        raise ValueError(
            f"Spike train {record.name!r} has spikes between {times.min()} s and "
            f"{times.max()} s, outside its window [{t_start}, {t_stop}] s."
        )
    train = neo.SpikeTrain(
        np.sort(times),
        units=pq.s,
        t_start=t_start * pq.s,
        t_stop=t_stop * pq.s,
        name=record.name,
    )
    train.annotate(**nix_annotations(record.annotations))
    return train


def _analog_signal(record: SignalRecord) -> neo.AnalogSignal:
    values = np.asarray(record.values)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    if values.ndim != 2:
        raise ValueError(
            f"Signal {record.name!r} must be shaped (time, channel), got shape {values.shape}."
        )
    period = float(record.sampling_period_s)
    if not (math.isfinite(period) and period > 0):
        raise ValueError(f"Signal {record.name!r} needs a positive sampling period, got {period}.")
    try:
        units = pq.Quantity(1.0, record.units).units
    except (LookupError, ValueError, TypeError) as exc:
        raise ValueError(f"Signal {record.name!r} has unknown units {record.units!r}.") from exc
    signal = neo.AnalogSignal(
        values,
        units=units,
        sampling_period=period * pq.s,
        t_start=float(record.t_start_s) * pq.s,
        name=record.name,
    )
    signal.annotate(**nix_annotations(record.annotations))
    return signal


def to_block(
    segments: list[SegmentRecord], name: str, annotations: dict | None = None
) -> neo.Block:
    """Build one :class:`neo.Block` with one :class:`neo.Segment` per :class:`SegmentRecord`.

    Spike trains are in seconds with the record's ``t_start``/``t_stop`` (spike times are sorted;
    a spike outside the window raises :class:`ValueError`); analog signals are shaped
    ``(time, channel)`` (a 1-D array is one channel). Annotations are converted with
    :func:`nix_annotations` so that the block can be written to NIX.
    """
    block = neo.Block(name=name)
    block.annotate(**nix_annotations(annotations))
    for record in segments:
        segment = neo.Segment(name=record.name)
        segment.annotate(**nix_annotations(record.annotations))
        for spike_record in record.spikes:
            train = _spike_train(spike_record)
            train.segment = segment
            segment.spiketrains.append(train)
        for signal_record in record.signals:
            signal = _analog_signal(signal_record)
            signal.segment = segment
            segment.analogsignals.append(signal)
        segment.block = block
        block.segments.append(segment)
    return block


# ---------------------------------------------------------------------------------------------
# NIX files
# ---------------------------------------------------------------------------------------------


def _temporary_path(path: Path) -> Path:
    """A hidden sibling of ``path`` for writing before the atomic rename."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_nix(block: neo.Block, path: str | Path) -> Path:
    """Write ``block`` to the NIX file ``path`` atomically and return the path.

    The block is written with :class:`neo.io.NixIO` (mode ``"ow"``) to a hidden temporary file
    in the same folder, which is then renamed to ``path`` with :func:`os.replace`, so no
    half-written file ever carries the final name. On failure the temporary file is removed and
    a :class:`NeurosimError` is raised.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise NeurosimError(
            f"Cannot write {path}: the output folder {folder} does not exist or is not a folder."
        )
    temporary = _temporary_path(path)
    try:
        io = NixIO(str(temporary), mode="ow")
        try:
            io.write_block(block)
        finally:
            io.close()
        os.replace(temporary, path)
    except Exception as exc:
        _remove_quietly(temporary)
        raise NeurosimError(
            f"Cannot write the NIX file {path} (is the folder {folder} writable?): {exc}"
        ) from exc
    return path


def read_nix(path: str | Path) -> neo.Block:
    """Read the first :class:`neo.Block` of the NIX file ``path`` (fully loaded, not lazy).

    A missing file, a file that is not a valid NIX/HDF5 file (random bytes, truncated) or a file
    without blocks raises :class:`NeurosimError`; the file is always closed.
    """
    path = Path(path)
    if not path.is_file():
        raise NeurosimError(f"The NIX file {path} does not exist.")
    try:
        io = NixIO(str(path), mode="ro")
    except Exception as exc:
        raise NeurosimError(
            f"{path} is not a valid NIX file (it may be truncated or corrupt): {exc}"
        ) from exc
    try:
        block = io.read_block(lazy=False)
    except Exception as exc:
        raise NeurosimError(
            f"{path} could not be read as a NIX file (it may be truncated or corrupt): {exc}"
        ) from exc
    finally:
        # Closing a broken file must not hide the error that matters.
        with contextlib.suppress(Exception):
            io.close()
    if block is None:
        raise NeurosimError(f"The NIX file {path} contains no block.")
    return block


# ---------------------------------------------------------------------------------------------
# NWB files
# ---------------------------------------------------------------------------------------------

#: Version of the layout :func:`write_nwb` writes, stored in the file's ``notes`` (JSON).
NWB_LAYOUT_VERSION = 1
_LAYOUT_KEY = "neurosim_nwb_layout"
#: NixIO's own bookkeeping annotation, which must not travel into other formats.
_NIX_BOOKKEEPING = "nix_name"


def _annotations_json(annotations: Mapping[str, Any] | None) -> str:
    """The annotations of a neo object as a JSON object string (``None`` values dropped)."""
    kept = {
        str(key): value
        for key, value in (annotations or {}).items()
        if key != _NIX_BOOKKEEPING and value is not None
    }
    return json.dumps(_json_ready(kept), allow_nan=True)


def _annotations_from_json(text: Any) -> dict[str, Any]:
    """Inverse of :func:`_annotations_json`; anything that is not a JSON object gives ``{}``."""
    try:
        value = json.loads(_text(text))
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A Python string from an HDF5 string (``bytes`` from older writers, ``str`` from newer)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _nwb_object_name(segment_index: int, signal_index: int, name: str | None) -> str:
    """A unique, NWB-legal name (no ``/`` or ``:``) for one analog signal of one segment."""
    label = "".join("_" if ch in "/:" else ch for ch in (name or "signal"))
    return f"segment{segment_index:03d} signal{signal_index:03d} {label}"


def _segment_extent(segment: neo.Segment) -> tuple[float, float] | None:
    """[earliest t_start, latest t_stop] in seconds over a segment's trains and signals."""
    starts = [float(obj.t_start.rescale(pq.s)) for obj in segment.spiketrains]
    stops = [float(obj.t_stop.rescale(pq.s)) for obj in segment.spiketrains]
    starts += [float(sig.t_start.rescale(pq.s)) for sig in segment.analogsignals]
    stops += [float(sig.t_stop.rescale(pq.s)) for sig in segment.analogsignals]
    if not starts:
        return None
    return min(starts), max(stops)


def _session_start_time(block: neo.Block) -> datetime.datetime:
    """The block's ``rec_datetime`` (naive times taken as UTC), or now for a simulation."""
    value = block.rec_datetime
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
    return datetime.datetime.now(datetime.UTC)


def _check_nwb_writable(block: neo.Block) -> None:
    """Refuse blocks holding objects :func:`write_nwb` does not store, instead of losing them."""
    for index, segment in enumerate(block.segments):
        for kind in ("irregularlysampledsignals", "events", "epochs", "imagesequences"):
            objects = getattr(segment, kind, [])
            if len(objects):
                raise NeurosimError(
                    f"Segment {index} ({segment.name!r}) holds {len(objects)} {kind}, which the "
                    "NWB writer does not store (only spike trains and analog signals)."
                )


def _build_nwbfile(block: neo.Block) -> Any:
    """The :class:`pynwb.NWBFile` of ``block`` in the layout described in :func:`write_nwb`."""
    from pynwb import NWBFile, TimeSeries

    block_name = block.name or ""
    notes = {
        _LAYOUT_KEY: NWB_LAYOUT_VERSION,
        "block_name": block_name,
        "block_annotations": json.loads(_annotations_json(block.annotations)),
        "n_segments": len(block.segments),
    }
    nwbfile = NWBFile(
        session_description=block.description or f"neurosim recording {block_name}".strip(),
        identifier=str(uuid.uuid4()),
        session_start_time=_session_start_time(block),
        notes=json.dumps(notes, allow_nan=True),
        source_script="neurosim.recording.write_nwb",
        source_script_file_name="neurosim/recording.py",
    )
    for column, description in (
        ("_name", "name of the neo Segment this interval is"),
        ("segment", "name of the neo Segment (as neo.io.NWBIO writes it)"),
        ("block", "name of the neo Block"),
        ("segment_index", "position of the Segment in the Block"),
        ("annotations", "annotations of the Segment, as a JSON object"),
    ):
        nwbfile.add_epoch_column(column, description)
    has_trains = any(len(segment.spiketrains) for segment in block.segments)
    if has_trains:
        for column, description in (
            ("_name", "name of the neo SpikeTrain"),
            ("segment", "name of the neo Segment the SpikeTrain belongs to"),
            ("block", "name of the neo Block"),
            ("segment_index", "position of that Segment in the Block (the epochs table row)"),
            ("annotations", "annotations of the SpikeTrain, as a JSON object"),
        ):
            nwbfile.add_unit_column(column, description)
    previous_stop = 0.0
    for segment_index, segment in enumerate(block.segments):
        segment_name = segment.name or ""
        extent = _segment_extent(segment) or (previous_stop, previous_stop)
        previous_stop = extent[1]
        nwbfile.add_epoch(
            start_time=extent[0],
            stop_time=extent[1],
            tags=[segment_name] if segment_name else [],
            _name=segment_name,
            segment=segment_name,
            block=block_name,
            segment_index=segment_index,
            annotations=_annotations_json(segment.annotations),
        )
        for train in segment.spiketrains:
            nwbfile.add_unit(
                spike_times=np.asarray(train.times.rescale(pq.s).magnitude, dtype=np.float64),
                obs_intervals=[
                    [float(train.t_start.rescale(pq.s)), float(train.t_stop.rescale(pq.s))]
                ],
                _name=train.name or "",
                segment=segment_name,
                block=block_name,
                segment_index=segment_index,
                annotations=_annotations_json(train.annotations),
            )
        for signal_index, signal in enumerate(segment.analogsignals):
            period_s = float(signal.sampling_period.rescale(pq.s))
            t_start_s = float(signal.t_start.rescale(pq.s))
            hierarchy = {
                "block": block_name,
                "segment": segment_name,
                "segment_index": segment_index,
                "signal_index": signal_index,
                "name": signal.name,
                # exact values: 1 / rate need not give the period back bit for bit
                "sampling_period_s": period_s,
                "t_start_s": t_start_s,
                "annotations": json.loads(_annotations_json(signal.annotations)),
            }
            nwbfile.add_acquisition(
                TimeSeries(
                    name=_nwb_object_name(segment_index, signal_index, signal.name),
                    data=np.asarray(signal.magnitude),
                    unit=signal.units.dimensionality.string,
                    rate=1.0 / period_s,
                    starting_time=t_start_s,
                    description=f"neo AnalogSignal {signal.name or ''}".strip(),
                    comments=json.dumps(hierarchy, allow_nan=True),
                )
            )
    return nwbfile


def write_nwb(block: neo.Block, path: str | Path) -> Path:
    """Write ``block`` to the NWB file ``path`` atomically (with pynwb) and return the path.

    Layout (every time in seconds, relative to ``session_start_time``, which is the block's
    ``rec_datetime`` or the time of writing):

    - **epochs table**: one row per segment, in order, start/stop = the earliest ``t_start`` and
      latest ``t_stop`` of its trains and signals (an empty segment gets a zero-length interval),
      tags = [segment name], columns ``_name``/``segment`` (segment name), ``block``,
      ``segment_index`` and ``annotations`` (JSON);
    - **units table**: one row per spike train of every segment (a neuron recorded in three
      segments has three rows), ``spike_times``, ``obs_intervals`` = [[t_start, t_stop]], columns
      ``_name`` (train name), ``segment``, ``block``, ``segment_index`` and ``annotations``;
    - **acquisition**: one ``TimeSeries`` per analog signal, data shaped (time, channel), ``rate``
      and ``starting_time``, the unit string, and in ``comments`` a JSON object with block,
      segment, segment_index, signal_index, the signal's name, its exact sampling period and
      t_start, and its annotations;
    - ``notes``: JSON with the layout version, the block's name and annotations.

    The ``_name``/``segment``/``block`` columns and the JSON ``comments`` are the ones
    ``neo.io.NWBIO`` writes, so neo can read these files too. Blocks holding events, epochs or
    irregularly sampled signals are refused with :class:`NeurosimError` rather than written
    without them. The file is written under a hidden temporary name and renamed when complete.
    """
    from pynwb import NWBHDF5IO

    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise NeurosimError(
            f"Cannot write {path}: the output folder {folder} does not exist or is not a folder."
        )
    _check_nwb_writable(block)
    temporary = _temporary_path(path)
    try:
        nwbfile = _build_nwbfile(block)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with NWBHDF5IO(str(temporary), mode="w") as io:
                io.write(nwbfile)
        os.replace(temporary, path)
    except Exception as exc:
        _remove_quietly(temporary)
        raise NeurosimError(
            f"Cannot write the NWB file {path} (is the folder {folder} writable?): {exc}"
        ) from exc
    return path


def _column(table: Any, name: str) -> list[Any] | None:
    """All values of column ``name`` of an hdmf table, or ``None`` when it has no such column."""
    if table is None or name not in table.colnames:
        return None
    return list(table[name][:])


def _units_windows(units: Any, row: int) -> tuple[float, float] | None:
    """[first start, last stop] of a unit's ``obs_intervals``, or ``None`` when it has none."""
    if "obs_intervals" not in units.colnames:
        return None
    intervals = np.asarray(units.get_unit_obs_intervals(row), dtype=float).reshape(-1, 2)
    if intervals.size == 0:
        return None
    return float(intervals[:, 0].min()), float(intervals[:, 1].max())


def _session_window(nwbfile: Any, spike_times: list[np.ndarray]) -> tuple[float, float]:
    """The window assumed for units without ``obs_intervals`` (see :func:`read_nwb`)."""
    times = [t for t in spike_times if t.size]
    earliest = min((float(t.min()) for t in times), default=0.0)
    stops = [float(t.max()) for t in times]
    if nwbfile.units is not None and "obs_intervals" in nwbfile.units.colnames:
        for row in range(len(nwbfile.units)):
            window = _units_windows(nwbfile.units, row)
            if window is not None:
                stops.append(window[1])
    for table in (nwbfile.epochs, nwbfile.trials):
        if table is not None and len(table):
            stops.append(float(np.max(table["stop_time"][:])))
    t_start = min(0.0, earliest)
    return t_start, max([t_start, *stops])


def _unit_annotations(units: Any, row: int, skip: set[str]) -> dict[str, Any]:
    """Scalar columns of one row of a foreign units table, as neo annotations."""
    annotations: dict[str, Any] = {"nwb_unit_id": int(units.id[row])}
    for column in units.colnames:
        if column in skip:
            continue
        try:
            value = units[column][row]
        except Exception:  # a column pynwb cannot index row by row: leave it out
            continue
        if isinstance(value, bytes):
            value = _text(value)
        scalar = _scalar(value.item() if isinstance(value, np.generic) else value)
        if scalar is not None and scalar is not _DROP:
            annotations[column] = scalar
    return annotations


def _signal_from_timeseries(series: Any, hierarchy: Mapping[str, Any]) -> neo.AnalogSignal | None:
    """An :class:`neo.AnalogSignal` from a regularly sampled TimeSeries, else ``None``."""
    if not series.rate:
        return None
    data = np.asarray(series.data[:])
    if data.ndim == 1:
        data = data[:, np.newaxis]
    period = hierarchy.get("sampling_period_s")
    t_start = hierarchy.get("t_start_s", series.starting_time or 0.0)
    try:
        units = pq.Quantity(1.0, series.unit or "dimensionless").units
    except (LookupError, ValueError, TypeError):
        units = pq.dimensionless
    conversion = float(series.conversion) if series.conversion else 1.0
    if conversion != 1.0:
        data = data * conversion
    signal = neo.AnalogSignal(
        data,
        units=units,
        sampling_period=(float(period) if period else 1.0 / float(series.rate)) * pq.s,
        t_start=float(t_start) * pq.s,
        name=hierarchy.get("name", series.name),
    )
    annotations = hierarchy.get("annotations")
    if isinstance(annotations, dict):
        signal.annotate(**annotations)
    return signal


def _block_from_nwbfile(nwbfile: Any, path: Path) -> neo.Block:
    """Rebuild a :class:`neo.Block` from an open NWB file (see :func:`read_nwb`)."""
    notes = _annotations_from_json(nwbfile.notes) if nwbfile.notes else {}
    ours = notes.get(_LAYOUT_KEY) is not None
    units = nwbfile.units
    n_units = len(units) if units is not None else 0
    names = _column(units, "_name")
    segment_names = _column(units, "segment")
    block_names = _column(units, "block")
    segment_indices = _column(units, "segment_index")
    train_annotations = _column(units, "annotations")
    spike_times = [
        np.asarray(units.get_unit_spike_times(row), dtype=np.float64) for row in range(n_units)
    ]

    block = neo.Block(
        name=(notes.get("block_name") or None) if ours else (nwbfile.session_id or path.stem),
        description=nwbfile.session_description,
        file_origin=str(path),
        rec_datetime=nwbfile.session_start_time,
    )
    segments: list[neo.Segment] = []
    segment_of_row: list[int] = [0] * n_units
    if ours:
        block.annotate(**dict(notes.get("block_annotations") or {}))
        epochs = nwbfile.epochs
        n_segments = int(notes.get("n_segments", 0))
        seg_names = [""] * n_segments
        seg_annotations: list[dict[str, Any]] = [{} for _ in range(n_segments)]
        if epochs is not None and n_segments:
            for idx, name, ann in zip(
                epochs["segment_index"][:],
                epochs["_name"][:],
                epochs["annotations"][:],
                strict=True,
            ):
                seg_names[int(idx)] = _text(name)
                seg_annotations[int(idx)] = _annotations_from_json(ann)
        for name, ann in zip(seg_names, seg_annotations, strict=True):
            segment = neo.Segment(name=name or None)
            segment.annotate(**ann)
            segments.append(segment)
        segment_of_row = [int(i) for i in segment_indices or []]
    elif segment_names is not None:
        # neo.io.NWBIO's layout: segments named in the units table, in order of first appearance;
        # only the first block's rows are read (as read_nix reads the first block).
        first_block = _text(block_names[0]) if block_names else None
        block.name = first_block or block.name
        order: dict[str, int] = {}
        for row in range(n_units):
            if block_names is not None and _text(block_names[row]) != first_block:
                segment_of_row[row] = -1
                continue
            name = _text(segment_names[row])
            segment_of_row[row] = order.setdefault(name, len(order))
        segments = [neo.Segment(name=name) for name in order]
    else:
        segments = [neo.Segment(name="units")]

    window = None
    for row in range(n_units):
        index = segment_of_row[row]
        if index < 0:
            continue
        times = spike_times[row]
        interval = _units_windows(units, row)
        if interval is None:
            window = window or _session_window(nwbfile, spike_times)
            interval = window
        t_start = min(interval[0], float(times.min())) if times.size else interval[0]
        t_stop = max(interval[1], float(times.max())) if times.size else interval[1]
        name = _text(names[row]) if names is not None else f"unit {int(units.id[row])}"
        train = neo.SpikeTrain(
            np.sort(times),
            units=pq.s,
            t_start=t_start * pq.s,
            t_stop=t_stop * pq.s,
            name=name or None,
        )
        if ours:
            train.annotate(**_annotations_from_json(train_annotations[row]))
        elif segment_names is None:
            train.annotate(**_unit_annotations(units, row, _FOREIGN_SKIPPED_COLUMNS))
        train.segment = segments[index]
        segments[index].spiketrains.append(train)

    if ours or segment_names is not None:
        by_name = {segment.name: segment for segment in segments}
        found: list[tuple[tuple[int, int, str], neo.Segment, neo.AnalogSignal]] = []
        for series in nwbfile.acquisition.values():
            hierarchy = _annotations_from_json(getattr(series, "comments", None))
            if ours and "segment_index" in hierarchy:
                index = int(hierarchy["segment_index"])
                if not 0 <= index < len(segments):
                    continue
                segment = segments[index]
                key = (index, int(hierarchy.get("signal_index", 0)), series.name)
            elif not ours and hierarchy.get("block") == block.name:
                name = hierarchy.get("segment")
                if name not in by_name:
                    by_name[name] = neo.Segment(name=name)
                    segments.append(by_name[name])
                segment = by_name[name]
                key = (segments.index(segment), 0, series.name)
            else:
                continue
            signal = _signal_from_timeseries(series, hierarchy)
            if signal is not None:
                found.append((key, segment, signal))
        for _, segment, signal in sorted(found, key=lambda item: item[0]):
            signal.segment = segment
            segment.analogsignals.append(signal)

    for segment in segments:
        segment.block = block
        block.segments.append(segment)
    return block


#: Units-table columns that are not per-unit scalars (or that neo already has as attributes).
_FOREIGN_SKIPPED_COLUMNS = {
    "spike_times",
    "spike_times_index",
    "obs_intervals",
    "obs_intervals_index",
    "electrodes",
    "electrodes_index",
    "electrode_group",
    "waveform_mean",
    "waveform_sd",
    "waveforms",
    "waveforms_index",
    "waveforms_index_index",
    "_name",
}


def read_nwb(path: str | Path) -> neo.Block:
    """Read the NWB file ``path`` into one fully loaded :class:`neo.Block` (spike times in s).

    Three layouts are recognised:

    - **neurosim's** (:func:`write_nwb`): segments, their order, names and annotations, trains
      with their windows and annotations, and analog signals come back as they were written;
    - **neo.io.NWBIO's**: segments are the ``segment`` column of the units table (in order of
      first appearance; rows of the first ``block`` only), train windows are their
      ``obs_intervals``, names the ``_name`` column; regularly sampled acquisition TimeSeries
      whose JSON ``comments`` name that block are added to their segment;
    - **any other** (e.g. written with pynwb by an acquisition or spike-sorting tool): all units
      go into one segment named ``"units"``, each train named by the unit's id, with the
      table's scalar columns as annotations. A unit's window is its ``obs_intervals`` (first
      start to last stop; gaps between intervals are not excluded) and, for units without them,
      the **session span**, assumed to run from the session start (time 0, or the earliest
      spike if that is negative) to the latest time the file states: the last spike of any
      unit, the end of any ``obs_intervals`` and the stop of any epoch or trial. Acquisition
      data of such files are not read (raw series can be many gigabytes; the analysis is of
      spike trains).

    A missing file, a file that is not HDF5 (random bytes, truncated) or an HDF5 file that is
    not NWB raises :class:`NeurosimError`; the file is always closed.
    """
    path = Path(path)
    if not path.is_file():
        raise NeurosimError(f"The NWB file {path} does not exist.")
    from pynwb import NWBHDF5IO

    io = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            io = NWBHDF5IO(str(path), mode="r", load_namespaces=True)
            nwbfile = io.read()
    except Exception as exc:
        if io is not None:
            with contextlib.suppress(Exception):
                io.close()
        raise NeurosimError(
            f"{path} is not a valid NWB file (it may be truncated or corrupt): {exc}"
        ) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _block_from_nwbfile(nwbfile, path)
    except NeurosimError:
        raise
    except Exception as exc:
        raise NeurosimError(
            f"{path} could not be read as an NWB file (it may be truncated or corrupt): {exc}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            io.close()


#: File suffixes :func:`read_recording` reads.
RECORDING_SUFFIXES = (".nix", ".nwb")


def read_recording(path: str | Path) -> neo.Block:
    """Read a recording as a :class:`neo.Block`, choosing the reader from the file's suffix.

    ``.nix`` files go to :func:`read_nix` and ``.nwb`` files to :func:`read_nwb` (the suffix is
    case-insensitive); any other suffix, a missing file and a corrupt file each raise one
    :class:`NeurosimError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in RECORDING_SUFFIXES:
        return read_nix(path) if suffix == ".nix" else read_nwb(path)
    raise NeurosimError(
        f"Cannot read {path}: a recording must be a NIX (.nix) or NWB (.nwb) file, "
        f"not {repr(suffix) if suffix else 'a file without a suffix'}."
    )

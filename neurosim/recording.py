"""Recorded arrays to neo objects, and neo blocks to and from NIX files.

This module knows nothing of Brian2: the engine turns its monitors into plain numpy arrays in SI
units (spike times in seconds) and hands them over as :class:`SpikeRecord` and
:class:`SignalRecord` objects grouped into :class:`SegmentRecord` objects (one per phase or
epoch). :func:`to_block` builds one :class:`neo.Block` from them (one :class:`neo.Segment` per
record, spike trains in seconds with their ``t_start``/``t_stop``, analog signals shaped
``(time, channel)``), :func:`write_nix` writes it atomically with :class:`neo.io.NixIO`, and
:func:`read_nix` reads it back, turning every unreadable file into a :class:`NeurosimError`.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
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
    "to_block",
    "write_nix",
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

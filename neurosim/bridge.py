"""The bridge's neutral exchange format between Brian2 circuits and their torch twins.

Circuits (``circuits/``) and torch models (``models/``) never import each other (DESIGN.md §2);
they meet here, in a format that belongs to neither:

* **named weight matrices**: ``{"W1": array (n_post, n_pre), ...}``, float64 numpy arrays, always
  in (post, pre) order, so that ``v_post = W @ r_pre``;
* **named activities**: ``{"u1": array (n,), "uI1": ..., ...}`` (or with a leading batch axis),
  float64 numpy arrays.

What the bridge does is generic: convert named arrays to and from torch tensors
(:func:`to_torch`, :func:`from_torch`), validate them against expected shapes
(:func:`check_named`), rename keys (:func:`rename`), drop a batch axis of one
(:func:`squeeze_batch`), and save and load them as one ``.npz`` written atomically
(:func:`save_npz`, :func:`load_npz`, :class:`Exchange`). What is circuit-specific — how a
projection's synaptic vector maps to its matrix, what a Brian2 state variable is called — stays
with the circuit (e.g. ``circuits.microcircuit.weight_values`` / ``weights_from_state``); what is
model-specific stays with the model. Protocols use both sides and the bridge in between.

File layout of an exchange ``.npz``: ``weights/<name>`` and ``activities/<name>`` arrays, and
``__metadata__``, a JSON string (circuit name, layer sizes, rate function, ...).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurosim.errors import NeurosimError
from neurosim.results import write_npz

#: named float64 arrays: weight matrices (post, pre) or activities
Named = dict[str, np.ndarray]

WEIGHTS_PREFIX = "weights/"
ACTIVITIES_PREFIX = "activities/"
METADATA_KEY = "__metadata__"


# ------------------------------------------------------------------------------ conversions
def _as_array(key: str, value: Any) -> np.ndarray:
    """One value as a float64 numpy array (a copy; torch tensors are detached and moved to CPU)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise NeurosimError(f"{key!r} cannot be read as an array of numbers ({exc}).") from exc
    return arr


def as_named(named: Mapping[str, Any]) -> Named:
    """Named arrays (numpy, torch or nested lists) as float64 numpy copies, keys as ``str``."""
    if not isinstance(named, Mapping):
        raise NeurosimError(
            f"Named arrays must be a mapping from names to arrays, got {type(named).__name__}."
        )
    out: Named = {}
    for key, value in named.items():
        if not isinstance(key, str) or not key:
            raise NeurosimError(f"Array names must be non-empty strings, got {key!r}.")
        out[key] = _as_array(key, value)
    return out


def to_torch(
    named: Mapping[str, Any],
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Named arrays as torch tensors of ``dtype`` (float64 by default: exact), new memory."""
    return {
        key: torch.tensor(arr, dtype=dtype, device=device) for key, arr in as_named(named).items()
    }


def from_torch(named: Mapping[str, Any]) -> Named:
    """Named torch tensors (any dtype or device, gradients or not) as float64 numpy arrays."""
    return as_named(named)


def rename(named: Mapping[str, Any], mapping: Mapping[str, str]) -> Named:
    """``{new: named[old] for old, new in mapping.items()}`` as float64 arrays.

    The way to move between naming conventions (e.g. a circuit's ``"layer1.u"`` and a model's
    ``"u1"``); the mapping itself belongs to whoever knows both names. A missing source is refused.
    """
    missing = [old for old in mapping if old not in named]
    if missing:
        raise NeurosimError(
            f"Cannot rename {', '.join(map(repr, missing))}: not among the given arrays "
            f"({', '.join(sorted(map(str, named))) or 'none'})."
        )
    targets = list(mapping.values())
    duplicates = sorted({t for t in targets if targets.count(t) > 1})
    if duplicates:
        raise NeurosimError(f"The renaming maps several arrays onto {', '.join(duplicates)}.")
    return {new: _as_array(old, named[old]) for old, new in mapping.items()}


def squeeze_batch(named: Mapping[str, Any]) -> Named:
    """Drop a leading batch axis of length one from every array (a torch twin's ``(1, n)``
    activities → the circuit's ``(n,)``); any other leading axis is refused."""
    out: Named = {}
    for key, arr in as_named(named).items():
        if arr.ndim < 1 or arr.shape[0] != 1:
            raise NeurosimError(
                f"{key!r} has shape {arr.shape}: no leading batch axis of length 1 to drop."
            )
        out[key] = arr[0]
    return out


def check_named(
    named: Mapping[str, Any],
    expected_shapes: Mapping[str, tuple[int, ...]],
    *,
    what: str = "arrays",
    partial: bool = False,
) -> Named:
    """The arrays as float64 numpy copies, after checking names, shapes and finiteness.

    Every key must be in ``expected_shapes`` with exactly that shape and finite values; unless
    ``partial``, every expected name must be present. ``what`` names the arrays in messages
    (``"weights"``, ``"activities"``). Raises :class:`NeurosimError` naming the key and shapes.
    """
    arrays = as_named(named)
    expected = {str(k): tuple(int(n) for n in s) for k, s in expected_shapes.items()}
    unknown = sorted(set(arrays) - set(expected))
    if unknown:
        raise NeurosimError(
            f"Unknown {what} {', '.join(map(repr, unknown))}; expected "
            f"{', '.join(sorted(expected)) or 'none'}."
        )
    if not partial:
        missing = sorted(set(expected) - set(arrays))
        if missing:
            listed = ", ".join(f"{k!r} (shape {expected[k]})" for k in missing)
            raise NeurosimError(f"Missing {what} {listed}.")
    for key, arr in arrays.items():
        if arr.shape != expected[key]:
            raise NeurosimError(
                f"{what.capitalize()} {key!r} has shape {arr.shape}, expected {expected[key]}."
            )
        if not np.all(np.isfinite(arr)):
            raise NeurosimError(f"{what.capitalize()} {key!r} contains NaN or infinite values.")
    return arrays


def shapes_of(named: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of every named array."""
    return {key: tuple(arr.shape) for key, arr in as_named(named).items()}


def max_abs_difference(
    a: Mapping[str, Any], b: Mapping[str, Any], keys: list[str] | None = None
) -> dict[str, float]:
    """max |a[k] − b[k]| for every common key (or ``keys``), the shapes having to agree."""
    a_arr, b_arr = as_named(a), as_named(b)
    names = sorted(set(a_arr) & set(b_arr)) if keys is None else list(keys)
    out: dict[str, float] = {}
    for key in names:
        if key not in a_arr or key not in b_arr:
            raise NeurosimError(f"{key!r} is not in both sets of arrays.")
        if a_arr[key].shape != b_arr[key].shape:
            raise NeurosimError(
                f"{key!r} has shape {a_arr[key].shape} on one side and {b_arr[key].shape} "
                "on the other."
            )
        out[key] = float(np.max(np.abs(a_arr[key] - b_arr[key]), initial=0.0))
    return out


# ------------------------------------------------------------------------------ files
def _metadata_json(metadata: Mapping[str, Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (np.ndarray, tuple)):
            return list(value)
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    try:
        return json.dumps(dict(metadata), default=default, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NeurosimError(f"The exchange metadata cannot be written as JSON ({exc}).") from exc


def save_npz(
    path: str | Path,
    weights: Mapping[str, Any],
    activities: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write weights, activities and metadata as one ``.npz``, atomically (a failed write leaves
    no file under ``path``). Returns the path written."""
    arrays: dict[str, np.ndarray] = {}
    for prefix, named in ((WEIGHTS_PREFIX, weights), (ACTIVITIES_PREFIX, activities or {})):
        for key, arr in as_named(named).items():
            arrays[prefix + key] = arr
    arrays[METADATA_KEY] = np.array(_metadata_json(metadata or {}))
    target = Path(path)
    if target.suffix != ".npz":
        raise NeurosimError(f"An exchange file must end in .npz, got {str(target)!r}.")
    try:
        return write_npz(target, arrays)
    except OSError as exc:
        raise NeurosimError(
            f"The exchange file {str(target)!r} cannot be written ({exc.strerror or exc})."
        ) from exc


def load_npz(path: str | Path) -> Exchange:
    """Read an exchange ``.npz`` written by :func:`save_npz`; a missing, unreadable or corrupt
    file, or one that is not an exchange file, raises :class:`NeurosimError`."""
    source = Path(path)
    if not source.is_file():
        raise NeurosimError(f"The exchange file {str(source)!r} does not exist.")
    weights: Named = {}
    activities: Named = {}
    try:
        with np.load(source, allow_pickle=False) as data:
            if METADATA_KEY not in data.files:
                raise NeurosimError(
                    f"{str(source)!r} is not an exchange file (it has no {METADATA_KEY!r})."
                )
            metadata = json.loads(str(data[METADATA_KEY]))
            for name in data.files:
                if name.startswith(WEIGHTS_PREFIX):
                    weights[name[len(WEIGHTS_PREFIX) :]] = np.array(data[name], dtype=np.float64)
                elif name.startswith(ACTIVITIES_PREFIX):
                    activities[name[len(ACTIVITIES_PREFIX) :]] = np.array(
                        data[name], dtype=np.float64
                    )
                elif name != METADATA_KEY:
                    raise NeurosimError(
                        f"{str(source)!r} holds an unexpected array {name!r}; it is not an "
                        "exchange file."
                    )
    except NeurosimError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise NeurosimError(
            f"The exchange file {str(source)!r} is corrupt or unreadable ({exc})."
        ) from exc
    if not isinstance(metadata, dict):
        raise NeurosimError(f"The metadata of {str(source)!r} is not a JSON object.")
    return Exchange(weights, activities, metadata)


# ------------------------------------------------------------------------------ the record
@dataclass
class Exchange:
    """Weights and activities of one circuit or twin, in the neutral format, with metadata
    (free-form JSON values: e.g. ``circuit``, ``sizes``, ``phi``, ``topdown``)."""

    weights: Named = field(default_factory=dict)
    activities: Named = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weights = as_named(self.weights)
        self.activities = as_named(self.activities)
        self.metadata = dict(self.metadata)

    @classmethod
    def from_torch(
        cls,
        weights: Mapping[str, Any],
        activities: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Exchange:
        """An exchange from named tensors (detached and copied to float64 numpy)."""
        return cls(from_torch(weights), from_torch(activities or {}), dict(metadata or {}))

    def to_torch(
        self, dtype: torch.dtype = torch.float64, device: str | torch.device | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(weights, activities)`` as named tensors."""
        return to_torch(self.weights, dtype, device), to_torch(self.activities, dtype, device)

    def check(
        self,
        weight_shapes: Mapping[str, tuple[int, ...]] | None = None,
        activity_shapes: Mapping[str, tuple[int, ...]] | None = None,
        *,
        partial: bool = False,
    ) -> Exchange:
        """Validate the weights and/or activities (see :func:`check_named`); returns ``self``."""
        if weight_shapes is not None:
            check_named(self.weights, weight_shapes, what="weights", partial=partial)
        if activity_shapes is not None:
            check_named(self.activities, activity_shapes, what="activities", partial=partial)
        return self

    def save(self, path: str | Path) -> Path:
        """Write this exchange with :func:`save_npz`."""
        return save_npz(path, self.weights, self.activities, self.metadata)

    @classmethod
    def load(cls, path: str | Path) -> Exchange:
        """Read an exchange with :func:`load_npz`."""
        return load_npz(path)


__all__ = [
    "ACTIVITIES_PREFIX",
    "METADATA_KEY",
    "WEIGHTS_PREFIX",
    "Exchange",
    "Named",
    "as_named",
    "check_named",
    "from_torch",
    "load_npz",
    "max_abs_difference",
    "rename",
    "save_npz",
    "shapes_of",
    "squeeze_batch",
    "to_torch",
]

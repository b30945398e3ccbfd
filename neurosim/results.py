"""The results folder: every file written under a temporary name and renamed when complete.

Layout of ``DIR`` after ``neurosim run``: ``metrics.json``, ``config.toml`` (the resolved
configuration with versions and seed), ``recording.nix`` (neo), ``weights.npz`` and
``figures/*.png``. A run that fails leaves no half-written file under any of these names.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from neurosim.errors import NeurosimError


def prepare_output_dir(path: str | Path) -> Path:
    """Create ``path`` (and ``figures/``) and check it is writable before any work is done."""
    out = Path(path)
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise NeurosimError(
            f"The output folder {str(out)!r} cannot be written ({exc.strerror or exc})."
        ) from exc
    return out


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename ``tmp_path`` to ``path``; clean up on any failure."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        writer(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return final


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if np.isfinite(f) else None
    return value


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write JSON atomically (numpy scalars converted, NaN written as null)."""
    text = json.dumps(_jsonable(data), indent=2, allow_nan=False)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def _tomlable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _tomlable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_tomlable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_toml(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write TOML atomically (``None`` values are left out: TOML has no null)."""
    text = tomli_w.dumps(_tomlable(data))
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write named arrays atomically as one ``.npz``."""

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})

    return atomic_write(path, writer)


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    out: dict[str, str] = {}
    for name in ("neurosim", "brian2", "brian2cuda", "numpy", "scipy", "neo", "elephant", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out

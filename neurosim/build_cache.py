"""The build cache: one compiled standalone project per circuit structure.

A standalone build is keyed by everything that is compiled into it -- sizes, connectivity,
equations and generated abstract code, namespace constants, TimedArray shapes, dt, the run's
duration, the device and the versions of Brian2 (and brian2cuda) -- and never by values that are
passed at run time (weights, state, TimedArray contents, the seed). The cache lives in a user-level
folder (``$NEUROSIM_CACHE`` or ``~/.cache/neurosim``) so that another process, another day, reuses
the same binary.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

COMPLETE_MARKER = ".neurosim-complete.json"


def cache_root() -> Path:
    """Compiled builds live in ``$NEUROSIM_CACHE/builds``, else ``~/.cache/neurosim/builds``."""
    base = os.environ.get("NEUROSIM_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "neurosim"
    return root / "builds"


def host_signature() -> str:
    """The CPU a build is compiled for: Brian2 compiles with ``-march=native``, so a binary built
    on one CPU model may not run on another that shares the same home folder."""
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()} {model or platform.processor()}"


def _digest_value(value: Any, h: Any) -> None:
    """Feed a value into a hash in a stable, type-aware way."""
    if isinstance(value, np.ndarray):
        h.update(f"ndarray{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _digest_value(value[k], h)
        h.update(b"}")
    elif isinstance(value, (set, frozenset)):
        _digest_value(sorted(value, key=repr), h)
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for item in value:
            _digest_value(item, h)
        h.update(b"]")
    else:
        h.update(repr(value).encode())


def structure_key(description: dict[str, Any]) -> str:
    """A short hex key for a structure description (nested dicts, lists, arrays, scalars)."""
    h = hashlib.sha256()
    _digest_value(description, h)
    return h.hexdigest()[:24]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive file lock, so that two processes never build the same key at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_complete(build_dir: Path) -> bool:
    """True when ``build_dir`` holds a finished build (its completion marker was written last)."""
    return (build_dir / COMPLETE_MARKER).is_file()


def mark_complete(build_dir: Path, info: dict[str, Any]) -> None:
    """Write the completion marker (atomically) once the build has compiled."""
    tmp = build_dir / (COMPLETE_MARKER + ".tmp")
    tmp.write_text(json.dumps({**info, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))
    os.replace(tmp, build_dir / COMPLETE_MARKER)


def discard(build_dir: Path) -> None:
    """Remove a half-finished build folder."""
    shutil.rmtree(build_dir, ignore_errors=True)

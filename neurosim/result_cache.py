"""Results of baselines that do not change between runs, kept on disk by everything they depend on.

A run's baselines (the shallow learner, the backprop network of the same architecture) depend only
on their inputs: data, initial weights, settings, seeds and the code that computes them. Kept in
``$NEUROSIM_CACHE/results`` (else ``~/.cache/neurosim/results``) under a hash of those inputs —
including a hash of the source files that compute them and the host, so that editing that code or
moving to another CPU computes them again — a second run with the same baseline inputs reads the
result instead of training it again. Written to a temporary name, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from neurosim import build_cache

#: set to "0" to compute every baseline again (e.g. to time it)
ENV_SWITCH = "NEUROSIM_RESULT_CACHE"


def cache_dir() -> Path:
    """The folder of cached results, beside the compiled builds."""
    return build_cache.cache_root().parent / "results"


def enabled() -> bool:
    """False when ``$NEUROSIM_RESULT_CACHE`` is ``0``."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def code_fingerprint(modules: Iterable[ModuleType | str]) -> str:
    """A hash of the source files of ``modules`` (modules or dotted names)."""
    h = hashlib.sha256()
    for mod in modules:
        module = sys.modules[mod] if isinstance(mod, str) else mod
        path = Path(module.__file__ or "")
        h.update(module.__name__.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:24]


def result_key(kind: str, inputs: Mapping[str, Any], modules: Iterable[ModuleType | str]) -> str:
    """The key of a result of ``kind``: its inputs (nested dicts, lists, arrays, scalars), the
    source of ``modules`` and the host."""
    return f"{kind}-" + build_cache.structure_key(
        {
            "inputs": dict(inputs),
            "code": code_fingerprint(modules),
            "host": build_cache.host_signature(),
        }
    )


def load(key: str) -> dict[str, Any] | None:
    """The result stored under ``key``, or None (absent, unreadable, or the cache switched off)."""
    if not enabled():
        return None
    path = cache_dir() / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def save(key: str, result: Mapping[str, Any]) -> Path | None:
    """Store a JSON-serialisable ``result`` under ``key`` (temporary file, then rename)."""
    if not enabled():
        return None
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w") as handle:
        json.dump(result, handle)
    path = folder / f"{key}.json"
    os.replace(tmp, path)
    return path


def cached(
    kind: str,
    inputs: Mapping[str, Any],
    modules: Iterable[ModuleType | str],
    compute: Callable[[], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """``compute()``'s result for these inputs, from the cache when it holds it; returns the
    result and whether it came from the cache."""
    key = result_key(kind, inputs, modules)
    hit = load(key)
    if hit is not None:
        return hit, True
    result = compute()
    save(key, result)
    return result, False

"""Results of deterministic computations kept on disk under a key of all their inputs, so that a
result that depends only on its data, settings and code (a run's baselines, the conventional
references of a data set) is computed once and read back by every later run, in any process.

Entries are JSON files under ``$NEUROSIM_CACHE/results/<kind>/`` (``~/.cache/neurosim`` when the
variable is unset), named by the digest (:func:`neurosim.build_cache.structure_key`: nested dicts,
lists, arrays by dtype, shape and bytes, scalars) of the inputs, of the source files of the code
that computes them (``code``, so that editing that code computes them again) and of the host.
Written to a temporary name and renamed, under a file lock so that two processes never compute
the same entry at once. ``NEUROSIM_RESULT_CACHE=0`` computes everything again.
"""

from __future__ import annotations

import importlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from neurosim.build_cache import cache_root, host_signature, locked, structure_key

#: set to "0" to compute every cached result again (e.g. to time it)
ENV_SWITCH = "NEUROSIM_RESULT_CACHE"

Code = Iterable[ModuleType | str]


def results_root() -> Path:
    """The folder of cached results: beside the compiled builds (:func:`cache_root`)."""
    return cache_root().parent / "results"


def enabled() -> bool:
    """False when ``$NEUROSIM_RESULT_CACHE`` is ``0``."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def code_fingerprint(modules: Code) -> str:
    """A hash of the source files of ``modules`` (modules or dotted names)."""
    import hashlib

    h = hashlib.sha256()
    for mod in modules:  # a name need not be imported yet (a run that never used it)
        module = importlib.import_module(mod) if isinstance(mod, str) else mod
        h.update(module.__name__.encode())
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()[:24]


def entry_path(kind: str, key: Mapping[str, Any], code: Code = ()) -> Path:
    """Where the result of ``kind`` with inputs ``key`` computed by ``code`` is (or will be)."""
    digest = structure_key(
        {"inputs": dict(key), "code": code_fingerprint(code), "host": host_signature()}
    )
    return results_root() / kind / f"{digest}.json"


def load(kind: str, key: Mapping[str, Any], code: Code = ()) -> dict[str, Any] | None:
    """The stored result, or None (absent, damaged, or the cache switched off)."""
    if not enabled():
        return None
    try:
        return json.loads(entry_path(kind, key, code).read_text())["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(
    kind: str, key: Mapping[str, Any], result: Mapping[str, Any], code: Code = ()
) -> Path | None:
    """Store a JSON-serialisable ``result`` (temporary file, then rename); None when off."""
    if not enabled():
        return None
    path = entry_path(kind, key, code)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key_digest": path.stem, "result": dict(result)}, indent=1))
    os.replace(tmp, path)
    return path


def cached(
    kind: str, key: Mapping[str, Any], compute: Callable[[], dict[str, Any]], code: Code = ()
) -> tuple[dict[str, Any], bool]:
    """``compute()``'s result for inputs ``key``, read from the cache when it holds it (then
    ``compute`` is not called), else computed and stored; and whether it came from the cache.
    ``compute`` must return a JSON-serialisable dict."""
    if not enabled():
        return compute(), False
    path = entry_path(kind, key, code)
    with locked(path.with_suffix(".lock")):
        hit = load(kind, key, code)
        if hit is not None:
            return hit, True
        result = compute()
        save(kind, key, result, code)
    return result, False


def cached_arrays(
    kind: str,
    key: Mapping[str, Any],
    compute: Callable[[], dict[str, np.ndarray]],
    code: Code = (),
) -> tuple[dict[str, np.ndarray], bool]:
    """As :func:`cached`, for a result that is a dict of arrays (an ``.npz`` file beside the JSON
    entries): a data set that takes seconds to generate or to import the library that holds it,
    read back in milliseconds."""
    if not enabled():
        return compute(), False
    path = entry_path(kind, key, code).with_suffix(".npz")
    with locked(path.with_suffix(".lock")):
        try:
            with np.load(path) as stored:
                return {name: stored[name] for name in stored.files}, True
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # absent or damaged: compute it again
        arrays = compute()
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    return arrays, False

"""Results of deterministic computations cached on disk by a key of all their inputs, so that a
result that depends only on its data and settings (the conventional references of a data set)
is computed once and then read back by every later run, in any process.

Entries are JSON files under ``$NEUROSIM_CACHE/results/<kind>/`` (``~/.cache/neurosim`` when
the variable is unset), named by the digest of the key (:func:`neurosim.build_cache.structure_key`
over nested dicts, lists, arrays and scalars, arrays by dtype, shape and bytes), written
atomically under a file lock so that two processes never compute the same entry at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neurosim.build_cache import cache_root, locked, structure_key


def results_root() -> Path:
    """The folder of cached results: beside the compiled builds (:func:`cache_root`)."""
    return cache_root().parent / "results"


def entry_path(kind: str, key: dict[str, Any]) -> Path:
    """Where the result of ``kind`` with inputs ``key`` is (or will be) stored."""
    return results_root() / kind / f"{structure_key(key)}.json"


def cached(
    kind: str, key: dict[str, Any], compute: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The result of ``compute()`` for inputs ``key``, read from the cache if present (then
    ``compute`` is not called), else computed and stored. Returns the result and whether it came
    from the cache. ``compute`` must return a JSON-serialisable dict."""
    path = entry_path(kind, key)
    with locked(path.with_suffix(".lock")):
        if path.is_file():
            try:
                return json.loads(path.read_text())["result"], True
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry: compute it again
        result = compute()
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"key_digest": path.stem, "result": result}, indent=1))
        os.replace(tmp, path)
    return result, False

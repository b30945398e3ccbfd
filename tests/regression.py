"""Pinned results of fixed-seed runs, so that a restructuring that changes a number is caught.

Each case is one command of the ``neurosim`` CLI. Its numbers — every numeric leaf of the
metrics (or the predictions), and a fingerprint of every saved weight array — are compared with
the values written by ``python tests/regression.py --write`` on the code before a change, to
1e-9 relative. Timings, compile counts and paths are not results and are left out.

Write the values again only when a result is meant to change, and say why in the commit.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VALUES = Path(__file__).with_name("regression_values.json")
RTOL = 1e-9
#: keys that hold bookkeeping, not results (timings, builds, paths, versions)
SKIP = re.compile(
    r"(seconds|per_second|compil|build_dir|wall|_path|figure|versions|host|speed|per_wall|^path$|command)"
)


@dataclass(frozen=True)
class Case:
    """A command and the result file whose numbers it pins."""

    name: str
    argv: tuple[str, ...]
    result: str  # file in the output folder whose numbers are compared
    slow: bool = False


CASES = (
    Case("dendritic-prediction", ("run", "dendritic-prediction"), "metrics.json"),
    Case(
        "ep-two-phase-2-epochs",
        ("run", "equilibrium-propagation", "--dataset", "digits", "--epochs", "2"),
        "metrics.json",
        slow=True,
    ),
    Case(
        "feedback-cancellation-digits-1-epoch",
        ("run", "feedback-cancellation", "--dataset", "digits", "--epochs", "1"),
        "metrics.json",
        slow=True,
    ),
    Case(
        "predict-interneuron-silencing",
        ("predict", "--quick", "--only", "interneuron-silencing", "--seeds", "2"),
        "predictions.json",
        slow=True,
    ),
)


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Every numeric leaf of a JSON value as (dotted path, number), bookkeeping keys left out."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not SKIP.search(str(key)):
                yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from leaves(item, f"{path}[{k}]")
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int | float):
        yield path, float(value)


def weight_fingerprints(path: Path) -> dict[str, list[float]]:
    """Sum, sum of squares and a dot product with a fixed random vector of every weight array."""
    if not path.is_file():
        return {}
    out: dict[str, list[float]] = {}
    with np.load(path) as arrays:
        for name in sorted(arrays.files):
            a = np.asarray(arrays[name], dtype=float).ravel()
            probe = np.random.default_rng(12345).standard_normal(a.size)
            out[name] = [float(a.sum()), float(a @ a), float(a @ probe)]
    return out


def run_case(case: Case, out: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one case in a fresh process; returns its pinned numbers."""
    cmd = [sys.executable, "-m", "neurosim", *case.argv, "--out", str(out)]
    if case.argv[0] == "run":
        cmd.append("--no-progress")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    data = json.loads((out / case.result).read_text())
    return {"numbers": dict(leaves(data)), "weights": weight_fingerprints(out / "weights.npz")}


def differences(expected: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """What differs by more than RTOL (relative), or is missing on either side."""
    problems: list[str] = []
    for kind in ("numbers", "weights"):
        exp, new = expected.get(kind, {}), got.get(kind, {})
        for key in sorted(set(exp) | set(new)):
            if key not in new or key not in exp:
                problems.append(f"{kind} {key}: only in {'pinned' if key in exp else 'new'}")
                continue
            a, b = np.atleast_1d(exp[key]), np.atleast_1d(new[key])
            for x, y in zip(a, b, strict=True):
                same_nan = math.isnan(x) and math.isnan(y)
                if not same_nan and not abs(x - y) <= RTOL * max(abs(x), abs(y)) + 1e-300:
                    problems.append(f"{kind} {key}: pinned {float(x)!r}, now {float(y)!r}")
    return problems


def main() -> int:
    """``--write``: run every case on the current code and store its numbers."""
    import tempfile

    if sys.argv[1:] != ["--write"]:
        print("usage: python tests/regression.py --write")
        return 2
    values: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            print(f"running {case.name} ...", flush=True)
            values[case.name] = run_case(case, Path(tmp) / case.name)
    VALUES.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    print(f"wrote {VALUES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

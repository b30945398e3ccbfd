"""Every script in examples/ runs as a user would run it (in a fresh process, from an empty
folder) and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
#: a line each example must print (its headline result)
PROMISES = {
    "analyze_nwb.py": "spike trains in 2 segments",
    "custom_neuron_circuit.py": "builds: 1 for 2 epochs",
    "ep_digits.py": "builds: 1 for 2 epochs",
}


def test_every_example_is_listed() -> None:
    assert SCRIPTS, "examples/ holds no script"
    assert {p.name for p in SCRIPTS} == set(PROMISES)


#: examples that run in the slow tier only (the default tier keeps its time budget; the user-neuron
#: hook itself is tested in the default tier by tests/test_hopfield_circuit.py)
SLOW = {"ep_digits.py", "custom_neuron_circuit.py"}


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])
        for p in SCRIPTS
    ],
)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PROMISES[script.name] in proc.stdout, proc.stdout

"""Fixed-seed runs give the numbers pinned before the restructuring (issue 13), to 1e-9 relative
(tests/regression.py). The long cases run in the slow tier."""

from __future__ import annotations

import json
import os

import pytest

from tests import regression as reg

PINNED = json.loads(reg.VALUES.read_text())


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in reg.CASES],
)
def test_results_are_unchanged(case: reg.Case, tmp_path) -> None:
    got = reg.run_case(case, tmp_path / case.name, env=dict(os.environ))
    assert got["numbers"], "the run produced no numbers to compare"
    assert reg.differences(PINNED[case.name], got) == []


def test_the_comparison_catches_a_change() -> None:
    pinned = {"numbers": {"a": 1.0, "b": 2.0}, "weights": {"W1": [1.0, 2.0, 3.0]}}
    assert reg.differences(pinned, pinned) == []
    moved = {"numbers": {"a": 1.0 + 1e-6, "b": 2.0}, "weights": {"W1": [1.0, 2.0, 3.0]}}
    assert reg.differences(pinned, moved) == ["numbers a: pinned 1.0, now 1.000001"]
    missing = {"numbers": {"a": 1.0}, "weights": {}}
    assert len(reg.differences(pinned, missing)) == 2

"""Run diagnostics (issue 16): the input offset's share of the input energy, its warning, and
dead units, on constructed inputs whose answers are known."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neurosim import datasets as ds
from neurosim import diagnostics as dg


def test_offset_share_of_constructed_inputs() -> None:
    # rows ±1 around a constant c: ‖mean‖² = d·c², mean ‖x‖² = d·(c² + 1)
    d, c = 5, 2.0
    x = np.vstack([np.full(d, c + 1.0), np.full(d, c - 1.0)])
    assert dg.offset_share(x) == pytest.approx(c**2 / (c**2 + 1))
    assert dg.offset_share(x - x.mean(axis=0)) == pytest.approx(0.0)  # no offset
    assert dg.offset_share(np.ones((3, 4))) == pytest.approx(1.0)  # all offset
    assert dg.offset_share(np.zeros((3, 4))) == 0.0


def test_the_warning_is_given_when_the_offset_dominates() -> None:
    dominated = np.vstack([np.full(4, 3.0), np.full(4, 2.0)])  # share 6.25/6.5 = 0.96
    with pytest.warns(UserWarning, match="96% of the input energy"):
        out = dg.input_diagnostics(dominated, "constructed")
    assert out["input_offset_warning"] and out["input_offset_share"] > dg.OFFSET_WARN_SHARE
    balanced = np.vstack([np.full(4, 1.0), np.full(4, -0.5)])  # share 0.0625/0.625 = 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = dg.input_diagnostics(balanced, "constructed")
    assert out["input_offset_warning"] is None
    assert out["input_offset_share"] == pytest.approx(0.1)


def test_mnist1d_offset_share_falls_with_the_on_off_code() -> None:
    """The issue's measurement: 94 % of the old code's energy is offset; on/off removes most."""
    raw = ds.mnist1d().x_train
    old = dg.offset_share(ds.encode(raw, "offset"))
    new = dg.offset_share(ds.encode(raw, "on-off"))
    assert old == pytest.approx(0.94, abs=0.01) and old > dg.OFFSET_WARN_SHARE
    assert new < 0.5


def test_dead_units_of_constructed_states() -> None:
    states = np.array(
        [
            [0.0, 1.0, 0.5, 0.0, 1.0],
            [0.0, 1.0, 0.0, 1.0, 0.999],
            [0.0, 1.0, 1.0, 0.0, 1.0],
        ]
    )
    # unit 0 always at 0, unit 1 always at 1, unit 3 jumps 0 ↔ 1: dead; 2 and 4 visit (0, 1)
    assert dg.dead_units(states, 0.0, 1.0) == 3
    out = dg.dead_units_per_layer(
        {"layer1": states, "layer2": states[:, [2, 4]]}, 0.0, 1.0, "0 < s < 1", "constructed"
    )
    assert out["dead_units"] == {"layer1": 3, "layer2": 0}
    assert out["dead_units_sensitive_range"] == "0 < s < 1"

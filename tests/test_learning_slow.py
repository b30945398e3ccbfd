"""The flagship experiment learns (slow tier): DESIGN.md §4.1 with the README's learning rate.

Seeds 1, 2, 3 on cpp_standalone and on the runtime device: the dendritic prediction φ(V*_w)
must follow the teacher's rate φ(U_M) with a correlation ≥ 0.9 on average and ≥ 0.85 for each
seed over the last 10 repetitions, clearly above the first 10.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim.cli import pipeline

pytestmark = pytest.mark.slow


def _run(device: str, seed: int, tmp_path) -> dict:
    raw = pipeline.build_raw(
        None, {"protocol": "dendritic-prediction", "device": device, "seed": seed}, {}
    )
    return pipeline.run_experiment(pipeline.resolve(raw), tmp_path / f"{device}-{seed}")


@pytest.mark.parametrize("device", ["cpp_standalone", "runtime"])
def test_dendritic_prediction_learns(device: str, tmp_path) -> None:
    metrics = [_run(device, seed, tmp_path) for seed in (1, 2, 3)]
    end = np.array([m["rate_correlation_end"] for m in metrics])
    start = np.array([m["rate_correlation_start"] for m in metrics])
    print(f"{device}: start {start.round(3)}, end {end.round(3)}, mean end {end.mean():.3f}")
    assert all(m["repetitions"] >= 100 for m in metrics)
    assert end.mean() >= 0.9
    assert np.all(end >= 0.85)
    assert np.all(end - start >= 0.2)
    # with the teacher off, the dendrite alone still predicts the teacher's rate
    assert np.all(np.array([m["rate_correlation_test"] for m in metrics]) >= 0.85)
    if device == "cpp_standalone":
        assert sum(m["compilations"] for m in metrics) <= 1  # three seeds, one build

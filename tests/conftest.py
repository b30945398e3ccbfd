"""Shared test set-up: a build cache private to the test session, and small fast configurations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compile into a cache of this test session, never the user's ``~/.cache/neurosim``."""
    if os.environ.get("NEUROSIM_TEST_CACHE"):
        root = Path(os.environ["NEUROSIM_TEST_CACHE"])
    else:
        root = tmp_path_factory.mktemp("neurosim-cache")
    old = os.environ.get("NEUROSIM_CACHE")
    os.environ["NEUROSIM_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("NEUROSIM_CACHE", None)
    else:
        os.environ["NEUROSIM_CACHE"] = old


#: a dendritic-prediction run small enough for the default test tier (a few seconds compiled)
SMALL_RUN = [
    "--set",
    "circuit.n_inputs=20",
    "--set",
    "protocol.repetitions_per_epoch=2",
    "--set",
    "protocol.pattern_ms=50",
    "--set",
    "protocol.correlation_repetitions=1",
    "--set",
    "protocol.input_rate_hz=40",
]

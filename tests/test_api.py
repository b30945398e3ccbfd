"""The Python API (neurosim.api, exposed as neurosim.run and friends): result objects, saving,
settings as keyword arguments, clear errors, and a light ``import neurosim``."""

from __future__ import annotations

import json
import subprocess
import sys

import neo
import numpy as np
import pytest

import neurosim
from neurosim.errors import ConfigError, NeurosimError

#: the small dendritic-prediction run of the default tier (tests/conftest.py SMALL_RUN)
SMALL = {
    "circuit.n_inputs": 20,
    "protocol.repetitions_per_epoch": 2,
    "protocol.pattern_ms": 50,
    "protocol.correlation_repetitions": 1,
    "protocol.input_rate_hz": 40,
}


def test_import_neurosim_is_light() -> None:
    code = (
        "import sys, neurosim; "
        "print(sorted(m for m in ('brian2', 'torch', 'neo') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert callable(neurosim.run) and callable(neurosim.predict)


def test_run_returns_a_result_and_saves_it(tmp_path) -> None:
    result = neurosim.run("dendritic-prediction", seed=3, overrides=SMALL, progress=False)
    assert result.out is None
    assert result.metrics["seed"] == 3 and result.metrics["protocol"] == "dendritic-prediction"
    assert np.isfinite(result.metrics["rate_correlation_end"])
    assert isinstance(result.block, neo.Block) and result.block.segments
    assert result.weights and all(isinstance(w, np.ndarray) for w in result.weights.values())
    assert result.figures and all(p.is_file() for p in result.figures.values())
    workdir = result.workdir
    assert workdir is not None and workdir.is_dir()
    assert result.config["circuit"]["n_inputs"] == 20
    out = result.save(tmp_path / "saved")
    for name in ("metrics.json", "weights.npz", "recording.nix", "config.toml"):
        assert (out / name).is_file(), name
    assert {p.name for p in (out / "figures").iterdir()} >= {
        p.name for p in result.figures.values()
    }
    assert not workdir.exists(), "the temporary folder outlived save()"
    assert all(p.parent == out / "figures" and p.is_file() for p in result.figures.values())
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["rate_correlation_end"] == result.metrics["rate_correlation_end"]


@pytest.mark.slow  # two more runs; the command line's own tests cover `neurosim run`
def test_run_with_out_writes_the_folder_and_matches_the_command_line(tmp_path) -> None:
    from neurosim.cli import main

    api = neurosim.run(
        "dendritic-prediction", overrides=SMALL, out=tmp_path / "api", progress=False
    )
    assert api.out == tmp_path / "api" and (api.out / "metrics.json").is_file()
    argv = ["run", "dendritic-prediction", "--out", str(tmp_path / "cli"), "--no-progress"]
    for key, value in SMALL.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert cli["rate_correlation_end"] == api.metrics["rate_correlation_end"]


def test_settings_are_checked_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="circuit.no_such_key"):
        neurosim.run("dendritic-prediction", overrides={"circuit.no_such_key": 1})
    with pytest.raises(NeurosimError, match="Unknown protocol"):
        neurosim.run("no-such-protocol")
    with pytest.raises(ConfigError, match="empty part"):
        neurosim.run("dendritic-prediction", overrides={"protocol.": 1})
    with pytest.raises(ConfigError, match="preset"):
        neurosim.run("dendritic-prediction", preset="no-such-preset")

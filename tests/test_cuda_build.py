"""``--device cuda_standalone`` without a GPU: the CUDA code is generated and compiled, then the
run stops with one clear sentence (DESIGN.md §3, "Without a GPU"). One compile: minutes on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurosim.cuda import gpu_present
from tests.conftest import SMALL_RUN

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_gpu_detection_is_quick_and_boolean() -> None:
    start = time.perf_counter()
    present = gpu_present()
    assert isinstance(present, bool)
    assert time.perf_counter() - start < 15


@pytest.mark.slow
@pytest.mark.cuda_build
def test_cuda_standalone_compiles_the_circuit_and_stops_without_gpu(tmp_path: Path) -> None:
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("nvcc is not installed: brian2cuda cannot compile")
    if gpu_present():
        pytest.skip("a GPU is present: this test checks the no-GPU path")
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    env = {**os.environ, "NEUROSIM_CACHE": str(cache)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "neurosim",
            "run",
            "dendritic-prediction",
            "--device",
            "cuda_standalone",
            "--epochs",
            "2",
            "--no-progress",
            "--out",
            str(out),
            *SMALL_RUN,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("neurosim: error:")]
    assert len(lines) == 1 and "no GPU is present" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    builds = [p for p in (cache / "builds").glob("urbanczik-senn-cuda_standalone-*") if p.is_dir()]
    assert len(builds) == 1
    binary = builds[0] / "main"
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert (builds[0] / ".neurosim-complete.json").is_file()
    assert not (out / "metrics.json").exists()  # nothing half-written


MICROCIRCUIT_SCRIPT = """
import sys
import numpy as np
from circuits import microcircuit as mc
from neurosim.engine import Simulation
from neurosim.errors import NoGPUError

sizes = [64, 100, 10]
params = mc.MicrocircuitParams(phi="logistic")
steps = 1000  # one 100 ms pattern at dt 0.1 ms
timed = mc.timed_values(np.zeros((steps, sizes[0])), sizes[-1])
sim = Simulation(
    lambda tv: mc.build(params, sizes, tv, dt_ms=0.1, record={}),
    device="cuda_standalone", duration_ms=100.0, dt_ms=0.1, initial_timed=timed,
    label="microcircuit",
)
print("compilations", sim.compilations, sim.build_dir)
try:
    sim.run(timed=timed)
except NoGPUError as exc:
    print("NOGPU", exc)
    sys.exit(0)
sys.exit(1)
"""


@pytest.mark.slow
@pytest.mark.cuda_build
def test_cuda_standalone_compiles_the_microcircuit(tmp_path: Path) -> None:
    """The 64-100-10 dendritic microcircuit (issue 3) compiles for brian2cuda without a GPU."""
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("nvcc is not installed: brian2cuda cannot compile")
    if gpu_present():
        pytest.skip("a GPU is present: this test checks the no-GPU path")
    env = {**os.environ, "NEUROSIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", MICROCIRCUIT_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compilations 1" in proc.stdout and "NOGPU" in proc.stdout, proc.stdout
    builds = [p for p in (tmp_path / "cache" / "builds").iterdir() if p.is_dir()]
    assert len(builds) == 1 and os.access(builds[0] / "main", os.X_OK)


HOPFIELD_SCRIPT = """
import sys
import numpy as np
from circuits import hopfield as hp
from neurosim.engine import Simulation
from neurosim.errors import NoGPUError

sizes, dt = [64, 100, 10], 0.5
rules = ("two-phase", "continual")
x, d = np.zeros((20, sizes[0])), np.zeros((20, sizes[-1]))
timed, timed_dt, example_ms = hp.example_timed(
    x, d, 0.5, free_ms=10.0, nudged_ms=2.0, dt_ms=dt, names=hp.timed_names(rules, 12.0)
)
sim = Simulation(
    lambda tv: hp.build(
        hp.HopfieldParams(), sizes, tv, dt_ms=dt, plasticity=rules, example_ms=example_ms,
        timed_dt_ms=timed_dt,
    ),
    device="cuda_standalone", duration_ms=hp.duration_ms(20, example_ms, dt), dt_ms=dt,
    initial_timed=timed, label="hopfield",
)
print("compilations", sim.compilations, sim.build_dir)
try:
    sim.run(timed=timed)
except NoGPUError as exc:
    print("NOGPU", exc)
    sys.exit(0)
sys.exit(1)
"""


@pytest.mark.slow
@pytest.mark.cuda_build
def test_cuda_standalone_compiles_the_hopfield_circuit(tmp_path: Path) -> None:
    """The 64-100-10 Hopfield circuit of Equilibrium Propagation (issue 4) with both learning rules
    compiles for brian2cuda without a GPU."""
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("nvcc is not installed: brian2cuda cannot compile")
    if gpu_present():
        pytest.skip("a GPU is present: this test checks the no-GPU path")
    env = {**os.environ, "NEUROSIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", HOPFIELD_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compilations 1" in proc.stdout and "NOGPU" in proc.stdout, proc.stdout
    builds = [p for p in (tmp_path / "cache" / "builds").iterdir() if p.is_dir()]
    assert len(builds) == 1 and os.access(builds[0] / "main", os.X_OK)

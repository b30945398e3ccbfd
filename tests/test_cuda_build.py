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

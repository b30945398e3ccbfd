"""``--device cuda_standalone`` without a GPU: for each circuit family, the protocol's CUDA code is
generated and compiled, then the run stops with one clear sentence (DESIGN.md §3, "Without a
GPU"). The generated ``main.cu`` must apply each run's seed after the build (per-run seeds).
One compile per family: minutes each on 2 cores. The two layered circuits compile in batch mode
(issue 14; B copies side by side with their weights tied): a batch build holds the groups and
synapses of a batch-1 build, B times larger, plus the ties, so one compile checks both and CI's
slow tier keeps within its time (a batch-1 and a batch-B compile each would add about ten
minutes).
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
from neurosim.engine import RNG_GROUP, cuda_reseed_code
from tests.conftest import SMALL_RUN

REPO_ROOT = Path(__file__).resolve().parents[1]

#: (circuit family, protocol, options): small spiking runs (spiking: the build draws random numbers)
FAMILIES = {
    "urbanczik-senn": ("dendritic-prediction", ["--readout", "spiking", *SMALL_RUN]),
    "microcircuit": (
        "feedback-cancellation",
        [
            "--readout", "spiking", "--dataset", "teacher",
            "--set", "circuit.sizes=[30, 6, 10]",
            "--set", "protocol.n_train=6",
            "--set", "protocol.n_test=4",
            "--set", "protocol.patterns_per_run=4",
            "--set", "protocol.pattern_ms=20.0",
            "--set", "protocol.learning_lag_ms=5.0",
            "--set", "protocol.backprop_epochs=0",
            "--set", "protocol.shallow=false",
        ],
    ),
    "hopfield": (
        "equilibrium-propagation",
        [
            "--readout", "spiking", "--dataset", "digits",
            "--set", "circuit.sizes=[64, 30, 10]",
            "--set", "protocol.n_train=40",
            "--set", "protocol.n_test=20",
            "--set", "protocol.examples_per_run=20",
            "--set", "protocol.backprop_epochs=0",
        ],
    ),
}  # fmt: skip

#: batch mode (issue 14): the layered circuits' runs with B copies side by side (their ties: sums
#: every step for the microcircuit, once per example for the two-phase Hopfield circuit)
BATCH = {"microcircuit": 2, "hopfield": 4}


def test_gpu_detection_is_quick_and_boolean() -> None:
    start = time.perf_counter()
    present = gpu_present()
    assert isinstance(present, bool)
    assert time.perf_counter() - start < 15


def test_reseed_code_reads_the_seed_argument() -> None:
    """The inserted host code parses this engine's seed argument and re-seeds brian2cuda."""
    code = cuda_reseed_code()
    assert f'"{RNG_GROUP}.run_seed="' in code
    assert "random_number_buffer.set_seed(" in code and "std::stoull" in code


def check_per_run_seed_code(main_cu: str) -> None:
    """The run seed is applied in ``main``, after the compiled seed, before the network runs."""
    reseed = main_cu.find(f'"{RNG_GROUP}.run_seed="')
    assert reseed >= 0, "the per-run seed code is missing from main.cu"
    compiled_seed = main_cu.find("random_number_buffer.set_seed(0ULL)")
    assert 0 <= compiled_seed < reseed, "the run seed must be applied after brian2.seed's seed"
    command_line = main_cu.find("set_from_command_line(args);", reseed)
    network_run = main_cu.find(".run(", reseed)
    assert reseed < command_line < network_run, "the run seed must be applied before the run"
    assert main_cu.count(f'"{RNG_GROUP}.run_seed="') == 1  # one network run per build


#: generate (not compile) a small spiking build's CUDA code through the engine, print its folder
GENERATE_SCRIPT = """
import brian2cuda.device as bd
from benchmarks import gpu_cases as gc

build = bd.CUDAStandaloneDevice.build
bd.CUDAStandaloneDevice.build = lambda self, **kw: build(self, **{**kw, "compile": False})
case = gc.small_case("urbanczik-senn", device="cuda_standalone", readout="spiking")
print(case.sim.build_dir)
"""


def test_generated_main_applies_the_run_seed(tmp_path: Path) -> None:
    """The engine's CUDA code (generated only: seconds, no nvcc run) re-seeds from the run seed."""
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("nvcc is not installed: brian2cuda cannot be configured")
    env = {**os.environ, "NEUROSIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", GENERATE_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    build_dir = Path(proc.stdout.strip().splitlines()[-1])
    check_per_run_seed_code((build_dir / "main.cu").read_text())
    assert f'if (name == "{RNG_GROUP}.run_seed")' in (build_dir / "objects.cu").read_text()
    # flush-to-zero on both sides: nvcc's -use_fast_math implies --ftz=true for device code, and
    # the host compiler that nvcc links with gets -ffast-math (crtfastmath.o)
    flags = dict(
        line.split(" = ", 1)
        for line in (build_dir / "makefile").read_text().splitlines()
        if line.startswith(("NVCCFLAGS", "LFLAGS"))
    )
    assert "-use_fast_math" in flags["NVCCFLAGS"].split()
    assert "-Xcompiler=-ffast-math" in flags["LFLAGS"].split()


@pytest.mark.slow
@pytest.mark.cuda_build
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_cuda_standalone_compiles_and_stops_without_gpu(tmp_path: Path, family: str) -> None:
    """The layered circuits in batch mode: B copies, their shared weights tied by summed
    variables and ``run_regularly`` code on ``Synapses`` that target ``Synapses``."""
    batch = ["--set", f"circuit.batch={BATCH[family]}"] if family in BATCH else []
    _compile_and_stop(tmp_path, family, batch)


def _compile_and_stop(tmp_path: Path, family: str, extra: list[str]) -> None:
    """Run the family's small protocol run on cuda_standalone: it compiles, then stops with one
    sentence (no GPU), leaving one complete build in the cache."""
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("nvcc is not installed: brian2cuda cannot compile")
    if gpu_present():
        pytest.skip("a GPU is present: this test checks the no-GPU path (tests/test_gpu.py runs)")
    protocol, options = FAMILIES[family]
    options = [*options, *extra]
    cache, out = tmp_path / "cache", tmp_path / "out"
    env = {**os.environ, "NEUROSIM_CACHE": str(cache)}
    command = [sys.executable, "-m", "neurosim", "run", protocol, "--circuit", family]
    command += ["--device", "cuda_standalone", "--epochs", "2", "--no-progress"]
    command += ["--out", str(out), *options]
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("neurosim: error:")]
    assert len(lines) == 1 and "no GPU is present" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    builds = [p for p in (cache / "builds").glob(f"{family}*-cuda_standalone-*") if p.is_dir()]
    assert len(builds) == 1, builds
    binary = builds[0] / "main"
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert (builds[0] / ".neurosim-complete.json").is_file()
    check_per_run_seed_code((builds[0] / "main.cu").read_text())
    assert not (out / "metrics.json").exists()  # nothing half-written

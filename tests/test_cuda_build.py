"""brian2cuda generates and compiles a network without a GPU (DESIGN.md §3, "Without a GPU").

One compile only: it takes minutes on two cores.
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

REPO_ROOT = Path(__file__).resolve().parents[1]

# A small network of the kind the circuits use: dimensionless potentials, time in ms,
# (shared, constant) parameters, a Poisson threshold, a 2-D TimedArray input, a plastic
# clock-driven weight, a summed variable and monitors.
BUILD_SCRIPT = """
import sys
import numpy as np
from brian2 import (NeuronGroup, Synapses, StateMonitor, SpikeMonitor, TimedArray, ms,
                    second, run, set_device, device, defaultclock, seed)
from neurosim.cuda import configure_cuda_prefs

configure_cuda_prefs(compute_capability=9.0)
set_device("cuda_standalone", build_on_run=False)
defaultclock.dt = 0.1 * ms
seed(1)
n_in, n_out = 200, 4
rng = np.random.default_rng(0)
stim = TimedArray((rng.random((2000, n_in)) < 0.001).astype(float), dt=0.1 * ms)
ns = {"stim": stim}
inp = NeuronGroup(n_in, "", threshold="stim(t % (200*ms), i) > 0.5", reset="",
                  namespace=ns, name="inp")
out = NeuronGroup(n_out, '''
du/dt = (-g_L*u + g_D*(v - u))/ms : 1
v : 1
phi = phi_max/(1 + k*exp(beta*(theta - u)))/ms : Hz
g_L : 1 (shared, constant)
g_D : 1 (shared, constant)
phi_max : 1 (shared, constant)
k : 1 (shared, constant)
beta : 1 (shared, constant)
theta : 1 (shared, constant)
''', threshold="rand() < phi*dt", refractory=3 * ms, method="euler", namespace=ns,
    name="out")
out.g_L = 0.1
out.g_D = 2.0
out.phi_max = 0.15
out.k = 0.5
out.beta = 5.0
out.theta = 1.0
syn = Synapses(inp, out, '''
dpsp/dt = -psp/(10*ms) : 1 (clock-driven)
ddelta/dt = (psp - delta)/(100*ms) : 1 (clock-driven)
dw/dt = eta*delta/ms : 1 (clock-driven)
eta : 1 (shared, constant)
v_post = w*psp : 1 (summed)
''', on_pre="psp += 1", method="euler", namespace=ns, name="syn")
ii, jj = np.meshgrid(np.arange(n_in), np.arange(n_out), indexing="ij")
syn.connect(i=ii.ravel(), j=jj.ravel())
syn.w = 0.1
syn.eta = 1e-3
# Keep references: brian2cuda fails on monitors that were garbage collected before build.
state = StateMonitor(out, ["u", "v"], record=True, name="state")
spikes = SpikeMonitor(out, name="spikes")
run(1 * second)
device.build(directory=sys.argv[1], compile=True, run=False)
"""


@pytest.mark.slow
@pytest.mark.cuda_build
def test_cuda_standalone_compiles_without_gpu(tmp_path: Path) -> None:
    """The cuda_standalone code of a small network compiles to a binary named ``main``."""
    start = time.perf_counter()
    present = gpu_present()
    assert isinstance(present, bool)
    assert time.perf_counter() - start < 15.0

    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file():
        pytest.skip("nvcc (the CUDA toolkit) is not installed")
    pytest.importorskip("brian2cuda")

    build_dir = tmp_path / "cuda_build"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("NEUROSIM_CACHE", str(tmp_path / "cache"))
    # A fresh process, so that the Brian2 device state of the test process stays clean.
    proc = subprocess.run(
        [sys.executable, "-c", BUILD_SCRIPT, str(build_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    binary = build_dir / "main"
    assert binary.is_file()
    assert os.access(binary, os.X_OK)

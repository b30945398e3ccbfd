"""Every circuit family and protocol on ``cuda_standalone``, where a GPU is present (issue 7).

brian2cuda has no test of its own for re-running one build with ``run_args``: these check that
several epochs re-run ONE compiled build (the state of one run handed to the next), that the
weights learn, that the rate read-out gives cpp_standalone's numbers (float64, tight tolerance),
and that spiking runs follow their seed (the same seed reproduces the spikes, another seed changes
them) without recompiling. Each case runs in its own process (Brian2 holds one global device).
Skipped without a GPU; the CUDA compile checks that run everywhere are in test_cuda_build.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurosim.cuda import gpu_present

REPO_ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("urbanczik-senn", "microcircuit", "hopfield")

pytestmark = pytest.mark.skipif(
    not gpu_present(), reason="no NVIDIA GPU on this machine (nvidia-smi lists none)"
)

#: one process: build the small case of a family, run it, save states, spikes and counts
CASE_SCRIPT = """
import json, sys
import numpy as np
from benchmarks import gpu_cases as gc

cfg = json.loads(sys.argv[1])
case = gc.small_case(cfg["family"], device=cfg["device"], readout=cfg["readout"])
out = {}
def save(tag, result):
    for key, value in result.state.items():
        out[f"{tag}/state/{key}"] = value
    for name in case.spike_monitors:
        out[f"{tag}/spikes/{name}/t"] = result.monitors[name]["t"]
        out[f"{tag}/spikes/{name}/i"] = result.monitors[name]["i"]
if cfg["mode"] == "epochs":  # chained epochs, seeds 1, 2, ...
    for k, result in enumerate(gc.train(case, cfg["epochs"])):
        save(f"epoch{k}", result)
else:  # from the same start: seed 5, seed 5 again, seed 6; then one chained epoch
    runs = {}
    for tag, seed in (("a", 5), ("b", 5), ("c", 6)):
        runs[tag] = case.sim.run(values=case.values, timed=case.timed, seed=seed, read=case.read)
        save(tag, runs[tag])
    values = {**case.values, **runs["a"].state}
    save("d", case.sim.run(values=values, timed=case.timed, seed=7, read=case.read))
np.savez(cfg["out"], **out)
print(json.dumps({"compilations": case.sim.compilations, "weights": list(case.weight_keys),
                  "spike_monitors": list(case.spike_monitors)}))
"""


def _run_case(tmp_path: Path, **cfg: object) -> tuple[dict, dict[str, np.ndarray]]:
    out = tmp_path / f"{cfg['family']}-{cfg['device']}-{cfg['readout']}-{cfg['mode']}.npz"
    env = {**os.environ, "NEUROSIM_CACHE": str(tmp_path / "cache")}  # a fresh build: compiles
    proc = subprocess.run(
        [sys.executable, "-c", CASE_SCRIPT, json.dumps({**cfg, "out": str(out)})],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as data:
        return info, {key: data[key] for key in data.files}


def _spikes(data: dict[str, np.ndarray], tag: str, monitors: list[str]) -> list[np.ndarray]:
    """Spikes of each monitor as sorted (t, i) rows: the GPU may record a step's spikes in any
    order."""
    out = []
    for name in monitors:
        t, i = data[f"{tag}/spikes/{name}/t"], data[f"{tag}/spikes/{name}/i"]
        order = np.lexsort((i, t))
        out.append(np.column_stack([t[order], i[order]]))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_rate_epochs_rerun_one_build_and_match_cpp(tmp_path: Path, family: str) -> None:
    """Three epochs re-run one CUDA build; the weights learn; every number equals cpp's."""
    cuda, gpu = _run_case(
        tmp_path, family=family, device="cuda_standalone", readout="rate", mode="epochs", epochs=3
    )
    assert cuda["compilations"] == 1  # three runs, one compilation
    _, cpu = _run_case(
        tmp_path, family=family, device="cpp_standalone", readout="rate", mode="epochs", epochs=3
    )
    for key in cuda["weights"]:
        w = [gpu[f"epoch{k}/state/{key}"] for k in range(3)]
        assert np.max(np.abs(w[1] - w[0])) > 1e-6 and np.max(np.abs(w[2] - w[1])) > 1e-6, key
    assert set(gpu) == set(cpu)
    for key in sorted(gpu):
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-7, atol=1e-10, err_msg=key)


@pytest.mark.parametrize("family", FAMILIES)
def test_spiking_runs_follow_their_seed(tmp_path: Path, family: str) -> None:
    """On one build: the same seed gives the same spikes, another seed other spikes."""
    info, data = _run_case(
        tmp_path, family=family, device="cuda_standalone", readout="spiking", mode="seeds"
    )
    assert info["compilations"] == 1  # four runs, three seeds, one compilation
    monitors = info["spike_monitors"]
    a, b, c = (_spikes(data, tag, monitors) for tag in "abc")
    assert sum(len(s) for s in a) > 0, "no spikes: the seed test would be empty"
    for name, sa, sb in zip(monitors, a, b, strict=True):
        assert sa.shape == sb.shape, name
        np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-12, err_msg=name)
    changed = [
        sa.shape != sc.shape or not np.array_equal(sa, sc) for sa, sc in zip(a, c, strict=True)
    ]
    assert any(changed), "another seed gave the same spikes"
    for key in info["weights"]:  # the same seed also reproduces the learning
        np.testing.assert_allclose(data[f"a/state/{key}"], data[f"b/state/{key}"], rtol=1e-9)
        assert np.max(np.abs(data[f"d/state/{key}"] - data[f"a/state/{key}"])) > 0, key


#: small runs of every protocol (2 epochs each), rate read-out: cuda must give cpp's weights
PROTOCOL_RUNS = {
    "dendritic-prediction": [
        "--readout", "rate",
        "--set", "circuit.n_inputs=20",
        "--set", "protocol.repetitions_per_epoch=2",
        "--set", "protocol.pattern_ms=50",
        "--set", "protocol.correlation_repetitions=1",
        "--set", "protocol.input_rate_hz=40",
    ],
    "feedback-cancellation": [
        "--dataset", "teacher",
        "--set", "circuit.sizes=[30, 6, 10]",
        "--set", "protocol.n_train=6",
        "--set", "protocol.n_test=4",
        "--set", "protocol.patterns_per_run=4",
        "--set", "protocol.pattern_ms=20.0",
        "--set", "protocol.learning_lag_ms=5.0",
        "--set", "protocol.backprop_epochs=0",
        "--set", "protocol.shallow=false",
    ],
    "equilibrium-propagation": [
        "--dataset", "digits",
        "--set", "circuit.sizes=[64, 30, 10]",
        "--set", "protocol.n_train=40",
        "--set", "protocol.n_test=20",
        "--set", "protocol.examples_per_run=20",
        "--set", "protocol.backprop_epochs=0",
        "--set", "protocol.grad_check=false",
        "--set", "protocol.traces=false",
    ],
}  # fmt: skip


def _cli(tmp_path: Path, protocol: str, device: str) -> tuple[dict, dict[str, np.ndarray]]:
    out = tmp_path / device
    cmd = [sys.executable, "-m", "neurosim", "run", protocol, "--device", device]
    cmd += ["--epochs", "2", "--seed", "3", "--no-progress", "--out", str(out)]
    env = {**os.environ, "NEUROSIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [*cmd, *PROTOCOL_RUNS[protocol]],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    with np.load(out / "weights.npz") as data:
        return metrics, {key: data[key] for key in data.files}


@pytest.mark.slow
@pytest.mark.parametrize("protocol", sorted(PROTOCOL_RUNS))
def test_protocol_runs_on_cuda_like_cpp(tmp_path: Path, protocol: str) -> None:
    """The protocol's two epochs run on cuda_standalone, each build compiled once, with the
    weights cpp_standalone ends with (rate read-out)."""
    m_gpu, w_gpu = _cli(tmp_path, protocol, "cuda_standalone")
    _, w_cpu = _cli(tmp_path, protocol, "cpp_standalone")
    for build in m_gpu.get("builds", {"one": m_gpu}).values():
        assert build["compilations"] <= 1
    assert w_gpu and set(w_gpu) == set(w_cpu)
    for key in sorted(w_gpu):
        np.testing.assert_allclose(w_gpu[key], w_cpu[key], rtol=1e-6, atol=1e-9, err_msg=key)

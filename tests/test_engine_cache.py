"""Compile once, run many; device choice; one seed for numpy and torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neurosim import devices
from neurosim.build_cache import structure_key
from neurosim.cli import main
from neurosim.errors import NeurosimError
from neurosim.seeding import run_seed, seed_everything
from tests.conftest import SMALL_RUN


def test_three_epochs_compile_once_and_a_rerun_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "empty-cache"))
    args = ["run", "dendritic-prediction", "--no-progress", *SMALL_RUN]
    assert main([*args, "--epochs", "3", "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert first["compilations"] == 1 and first["compile_seconds"] > 0
    assert first["epochs"] == 3
    assert main([*args, "--epochs", "3", "--seed", "9", "--out", str(tmp_path / "b")]) == 0
    second = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert second["compilations"] == 0 and second["compile_seconds"] == 0
    assert second["build_dir"] == first["build_dir"]
    builds = list((tmp_path / "empty-cache" / "builds").iterdir())
    assert len([b for b in builds if b.is_dir()]) == 1
    # run inputs are cleaned up after each run: the cache does not grow with every epoch
    static = Path(first["build_dir"]) / "static_arrays"
    assert not [p for p in static.iterdir() if p.name.startswith("init_")]
    assert not (Path(first["build_dir"]) / "results").exists() or not list(
        (Path(first["build_dir"]) / "results").iterdir()
    )


def test_structure_key_is_stable_and_sensitive() -> None:
    base = {"eq": "dv/dt = -v/tau : 1", "i": np.arange(4), "N": 10, "vars": {"t", "i"}}
    assert structure_key(base) == structure_key(dict(base))
    assert structure_key(base) != structure_key({**base, "N": 11})
    assert structure_key(base) != structure_key({**base, "i": np.arange(1, 5)})
    assert structure_key(base) != structure_key({**base, "i": np.arange(4, dtype=np.int32)})


def test_default_device_falls_back_to_runtime_without_compiler(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(devices, "has_cxx_compiler", lambda: False)
    assert devices.resolve_device(None) == "runtime"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no C++ compiler" in err[0]
    with pytest.raises(NeurosimError, match="needs a C\\+\\+ compiler"):
        devices.resolve_device("cpp_standalone")


def test_device_names() -> None:
    assert devices.resolve_device("runtime") == "runtime"
    with pytest.raises(NeurosimError, match="Unknown device 'gpu'"):
        devices.resolve_device("gpu")


def test_one_seed_fixes_numpy_and_torch() -> None:
    torch = pytest.importorskip("torch")
    seed_everything(4)
    a = (np.random.rand(3), torch.rand(3))
    rng_a = seed_everything(4).random(3)
    seed_everything(4)
    b = (np.random.rand(3), torch.rand(3))
    rng_b = seed_everything(4).random(3)
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    np.testing.assert_array_equal(rng_a, rng_b)
    assert run_seed(4, 1) == run_seed(4, 1) != run_seed(4, 2)
    assert 0 <= run_seed(4, 1) < 2**31


def _leaky_builder(n: int):
    """A tiny circuit of ``n`` leaky units driven by a TimedArray (one structure per ``n``)."""
    from brian2 import NeuronGroup, TimedArray, ms

    from neurosim.engine import CircuitBuild

    def builder(timed):
        drive = TimedArray(np.asarray(timed["drive"], dtype=float), dt=1 * ms, name="drive")
        g = NeuronGroup(
            n, "dv/dt = (drive(t, i) - v)/(2*ms) : 1", method="euler", name="cells",
            namespace={"drive": drive},
        )  # fmt: skip
        return CircuitBuild(objects=[g], timed_arrays={"drive": drive})

    return builder


@pytest.mark.slow  # two structures; the one-structure cases stay in the default tier
def test_two_simulations_in_one_process_both_keep_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Brian2's standalone device is one per process: preparing a second Simulation resets it.
    The first must still run, correctly, without compiling again."""
    from neurosim.engine import Simulation

    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    sims, expected = {}, {}
    for n in (3, 5):
        drive = np.tile(np.arange(1.0, n + 1.0), (4, 1))
        sims[n] = Simulation(
            _leaky_builder(n), device="cpp_standalone", duration_ms=4.0, dt_ms=0.1,
            initial_timed={"drive": drive}, label=f"leaky{n}",
        )  # fmt: skip
        # exact Euler solution of dv/dt = (d − v)/2ms from v = 1 after 40 steps of 0.1 ms
        expected[n] = drive[0] + (1.0 - drive[0]) * (1 - 0.05) ** 40
    for n in (3, 5, 3, 5):
        r = sims[n].run(values={"cells.v": np.ones(n)}, read=("cells.v",))
        np.testing.assert_allclose(r.state["cells.v"], expected[n], rtol=1e-12)
    assert sims[3].compilations == 1 and sims[5].compilations == 1


def _leaky_pair(timed: dict[str, np.ndarray]) -> Any:
    """Two leaky units driven by a TimedArray through one synapse, and a subexpression held
    constant over a time step, whose updater Brian2 names automatically (as the microcircuit's
    interneurons have one)."""
    from brian2 import NeuronGroup, SpikeMonitor, Synapses, TimedArray, ms

    from neurosim.engine import CircuitBuild

    drive = TimedArray(timed["drive"], dt=1 * ms, name="drive")
    pre = NeuronGroup(
        2, "dv/dt = (drive(t, i) - v) / (5*ms) : 1", threshold="v > 0.5", reset="v = 0",
        name="pre", namespace={"drive": drive}, method="euler",
    )  # fmt: skip
    # a '(constant over dt)' subexpression gets an updater named '<group>_subexpression_update*'
    post = NeuronGroup(2, "x : 1\nI_syn : 1\ns = 2 * I_syn : 1 (constant over dt)", name="post")
    post.run_regularly("x = s", dt=1 * ms, name="post_copy")
    syn = Synapses(pre, post, "w : 1\nI_syn_post = w * v_pre : 1 (summed)", name="syn")
    syn.connect(i=[0, 1], j=[0, 1])
    spikes = SpikeMonitor(pre, name="pre_spikes")
    return CircuitBuild(
        [pre, post, syn, spikes],
        namespace={"drive": drive},
        timed_arrays={"drive": drive},
        connectivity={"syn": (np.array([0, 1]), np.array([0, 1]))},
        monitors={"pre_spikes": spikes},
    )


def test_a_second_simulation_of_one_structure_in_one_process_reuses_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Brian2 numbers automatic object names after the objects alive in the process, and the
    names are compiled in: a first Simulation kept alive (a trained circuit kept for the next
    seed) must not make the second one's names, key and build differ."""
    from neurosim.engine import Simulation

    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    timed = {"drive": np.full((20, 2), 1.2)}
    first = Simulation(
        _leaky_pair, device="cpp_standalone", duration_ms=20.0, dt_ms=0.1, initial_timed=timed
    )
    first_result = first.run(values={"syn.w": [1.0, 2.0]}, read=("post.x",))
    second = Simulation(
        _leaky_pair, device="cpp_standalone", duration_ms=20.0, dt_ms=0.1, initial_timed=timed
    )
    assert first.compilations == 1 and second.compilations == 0
    assert second.build_dir == first.build_dir
    second_result = second.run(values={"syn.w": [1.0, 2.0]}, read=("post.x",))
    # the first one, which lost the device, rebuilds its objects and still runs from the cache
    again = first.run(values={"syn.w": [1.0, 2.0]}, read=("post.x",))
    assert first.compilations == 1
    for result in (second_result, again):
        np.testing.assert_array_equal(
            result.monitors["pre_spikes"]["t"], first_result.monitors["pre_spikes"]["t"]
        )
        np.testing.assert_array_equal(result.state["post.x"], first_result.state["post.x"])
    builds = [p for p in (tmp_path / "cache" / "builds").iterdir() if p.is_dir()]
    assert len(builds) == 1


@pytest.mark.slow  # two structures; the one-structure cases stay in the default tier
def test_alternating_simulations_of_two_structures_compile_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two structures taking turns on the one device (a training build and a frozen-pass build,
    or a microcircuit and an EP experiment) compile once each, however often they alternate:
    the generated code objects' names (numbered after those still alive) stay the same."""
    from neurosim.engine import Simulation

    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    timed = {"drive": np.full((30, 2), 1.2)}
    sims = [
        Simulation(
            _leaky_pair, device="cpp_standalone", duration_ms=ms, dt_ms=0.1, initial_timed=timed
        )
        for ms in (20.0, 30.0)
    ]
    for _ in range(3):
        for sim in sims:
            sim.run(values={"syn.w": [1.0, 2.0]})
    assert [sim.compilations for sim in sims] == [1, 1]
    builds = [p for p in (tmp_path / "cache" / "builds").iterdir() if p.is_dir()]
    assert len(builds) == 2

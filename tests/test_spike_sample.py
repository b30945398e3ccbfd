"""The recorded spike sample of spiking runs (``neurosim/spike_sample.py``, issue 15 item 3):
windows cut on known spike times, the settings' validation, the monitors the builder wrapper
leaves, and (slow tier: two compilations) that the sampled monitor records exactly the spikes the
whole-group monitor records for the same cells and seed. The end-to-end checks (a short spiking
run's recording.nix analysed by ``neurosim analyze``) sit in the protocols' spiking tests:
tests/test_equilibrium_propagation.py and tests/test_feedback_cancellation.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, SpikeMonitor

from neurosim.config import validate_table
from neurosim.engine import CircuitBuild, Simulation, _describe
from neurosim.errors import ConfigError
from neurosim.recording import read_nix, to_block, write_nix
from neurosim.spike_sample import (
    SpikeSampling,
    sampled_cells,
    sampled_spike_monitors,
    window_segment,
)


def test_window_segment_cuts_examples_and_shifts_times() -> None:
    # examples of 10 ms; a window of examples 2..3 is [20, 40) ms of the run
    monitors = {
        "spikes_layer1": {
            "t": np.array([0.005, 0.020, 0.0251, 0.039, 0.040, 0.041]),
            "i": np.array([0, 0, 1, 1, 0, 2]),
        },
        "spikes_layer2": {"t": np.array([0.030]), "i": np.array([0])},
    }
    seg = window_segment(
        monitors, {"layer1": 3, "layer2": 1}, name="w", example_ms=10.0, first=2, count=2,
        annotations={"labels": [4, 7]},
    )  # fmt: skip
    trains = {s.name: s for s in seg.spikes}
    assert list(trains) == ["layer1_0", "layer1_1", "layer1_2", "layer2_0"]
    # a spike at the window's start belongs to it, one at its end to the next example
    np.testing.assert_allclose(trains["layer1_0"].times_s, [0.0])
    np.testing.assert_allclose(trains["layer1_1"].times_s, [0.0051, 0.019])
    assert trains["layer1_2"].times_s.size == 0  # a silent cell still has its (empty) train
    np.testing.assert_allclose(trains["layer2_0"].times_s, [0.010])
    assert all(s.t_start_s == 0.0 and s.t_stop_s == pytest.approx(0.020) for s in seg.spikes)
    assert trains["layer1_1"].annotations == {"group": "layer1", "cell": 1}
    assert seg.annotations["example_onsets_s"] == pytest.approx([0.0, 0.01])
    assert seg.annotations["labels"] == [4, 7] and seg.annotations["first_example_in_run"] == 2
    with pytest.raises(ValueError, match="at least one example"):
        window_segment(monitors, {"layer1": 1}, name="w", example_ms=10.0, first=0, count=0)


def test_window_segment_round_trips_through_nix(tmp_path: Path) -> None:
    monitors = {"spikes_layer1": {"t": np.array([0.001, 0.012]), "i": np.array([0, 0])}}
    seg = window_segment(monitors, {"layer1": 2}, name="w", example_ms=10.0, first=0, count=2)
    block = read_nix(write_nix(to_block([seg], "b"), tmp_path / "r.nix"))
    trains = block.segments[0].spiketrains
    assert [len(t) for t in trains] == [2, 0]
    assert float(trains[0].t_stop.rescale("s")) == pytest.approx(0.02)
    assert float(trains[0].t_start.rescale("s")) == 0.0


def test_settings_validate_with_clear_errors() -> None:
    default = validate_table(SpikeSampling, {}, "protocol")
    assert (default.spike_cells, default.spike_train_examples, default.spike_test_examples) == (
        10,
        3,
        5,
    )
    for key, bad in (("spike_cells", -1), ("spike_test_examples", 1001), ("spike_cells", 2.5)):
        with pytest.raises(ConfigError, match=f"protocol.{key}"):
            validate_table(SpikeSampling, {key: bad}, "protocol")
    # at most: a smaller group records all its cells, 0 none
    cells = sampled_cells(SpikeSampling(spike_cells=8), {"layer0": 64, "layer2": 3})
    assert cells == {"layer0": 8, "layer2": 3}
    assert sampled_cells(SpikeSampling(spike_cells=0), {"layer0": 64}) == {"layer0": 0}


def _poisson_builder(n: int):
    """``n`` Poisson cells at 300 Hz with a spike monitor of the whole group, as circuits name
    it (``spikes_<group>``)."""
    from brian2 import Hz

    def builder(timed):
        g = NeuronGroup(
            n, "rate : Hz", threshold="rand() < rate*dt", name="cells",
            namespace={}, method="euler",
        )  # fmt: skip
        g.rate = 300 * Hz
        mon = SpikeMonitor(g, name="spikes_cells")
        return CircuitBuild(objects=[g, mon], monitors={"spikes_cells": mon})

    return builder


def test_wrapper_switches_whole_group_monitors_off_and_keys_the_build() -> None:
    plain = _poisson_builder(6)({})
    sampled = sampled_spike_monitors(_poisson_builder(6), {"cells": 2})({})
    mon = sampled.monitors["spikes_cells"]
    assert mon.name == "sample_spikes_cells" and len(mon.source) == 2
    whole = [o for o in sampled.objects if getattr(o, "name", "") == "spikes_cells"]
    assert len(whole) == 1 and whole[0].active is False  # kept (the device holds its arrays)
    assert mon in sampled.objects
    # every cell's count stays, without spike times (the run's rates in Hz)
    counts = sampled.monitors["counts_cells"]
    assert len(counts.source) == 6 and counts.record is False and counts in sampled.objects
    none = sampled_spike_monitors(_poisson_builder(6), {})({})
    assert "spikes_cells" not in none.monitors and "counts_cells" in none.monitors
    # an inactive object is compiled out of the run loop: it is part of the build key
    key = [_describe(Network(*b.objects), b, {}) for b in (plain, sampled, none)]
    assert key[0] != key[2] and key[1] != key[2]
    assert "active" not in str(key[0])  # the keys of existing builds are unchanged


@pytest.mark.slow
def test_sampled_monitor_records_the_whole_group_monitors_spikes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same cells, same seed: the sample monitor's spikes are the whole-group monitor's spikes
    of its cells (two tiny cpp_standalone builds)."""
    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    results = {}
    for name, builder in (
        ("plain", _poisson_builder(6)),
        ("sampled", sampled_spike_monitors(_poisson_builder(6), {"cells": 3})),
    ):
        sim = Simulation(
            builder, device="cpp_standalone", duration_ms=50.0, dt_ms=0.1, initial_timed={},
            label=f"poisson-{name}",
        )  # fmt: skip
        results[name] = sim.run(seed=7).monitors
    plain, sampled = results["plain"]["spikes_cells"], results["sampled"]["spikes_cells"]
    np.testing.assert_array_equal(  # the counts of every cell, sampled or not
        results["sampled"]["counts_cells"]["count"], np.bincount(plain["i"], minlength=6)
    )
    keep = plain["i"] < 3
    assert keep.sum() > 20 and (~keep).sum() > 20  # both parts spiked
    np.testing.assert_array_equal(sampled["i"], plain["i"][keep])
    np.testing.assert_allclose(sampled["t"], plain["t"][keep])


def check_spike_recording(
    path: Path, windows: dict[str, float], trains: int, out: Path
) -> dict[str, dict]:
    """Check a spiking run's ``recording.nix``: exactly the segments ``windows`` (name → length
    in s) hold spike trains, ``trains`` each, every train on [0, length) with spikes inside; then
    ``neurosim analyze`` (the API it is a thin layer over) on the file: each train's rate is its
    spike count over its length, and its CV that of its inter-spike intervals. Returns the
    analysis's segments by name."""
    import neurosim

    block = read_nix(path)
    spiking = {s.name: s for s in block.segments if s.spiketrains}
    assert set(spiking) == set(windows)
    for name, segment in spiking.items():
        assert len(segment.spiketrains) == trains, name
        for train in segment.spiketrains:
            assert float(train.t_start.rescale("s")) == 0.0
            assert float(train.t_stop.rescale("s")) == pytest.approx(windows[name])
            times = train.times.rescale("s").magnitude
            assert np.all((times >= 0) & (times < windows[name])), name
        assert sum(len(t) for t in segment.spiketrains) > 0, name
    analysis = neurosim.analyze(path, out=out)
    by_name = {s["name"]: s for s in analysis.statistics["segments"]}
    checked_cv = 0
    for name, segment in spiking.items():
        stats = by_name[name]["spike_trains"]
        assert len(stats) == trains
        for train, stat in zip(segment.spiketrains, stats, strict=True):
            times = np.sort(train.times.rescale("s").magnitude)
            assert stat["mean_rate_hz"] == pytest.approx(len(times) / windows[name])
            if len(times) >= 3:
                isi = np.diff(times)
                assert stat["cv_isi"] == pytest.approx(np.std(isi) / np.mean(isi))
                checked_cv += 1
    assert checked_cv > 0
    return by_name


def test_ep_sampler_windows_across_runs_and_batch_copies() -> None:
    """EP's sampler on synthetic runs: runs of P = 2 presentations of B = 4 examples each, 3
    training and 5 test examples wanted: windows over the runs that hold them, copy 0's
    examples (every 4th of the pass), labels from the epoch's order."""
    from types import SimpleNamespace

    from neurosim.engine import RunResult
    from protocols.equilibrium_propagation.layout import Plan
    from protocols.equilibrium_propagation.spikes import SpikeSampler

    plan = Plan(sizes=(4, 3, 2), variant="two-phase", free_steps=4, nudged_steps=2, dt_ms=0.5,
                beta=0.5, rates=(0.1, 0.1), readout="spiking", P=2, batch=4)  # fmt: skip
    data = SimpleNamespace(
        labels_train=np.arange(40) % 10, labels_test=np.arange(18) % 10, x_test=np.zeros((18, 4))
    )
    cfg = SpikeSampling(spike_cells=2, spike_train_examples=3, spike_test_examples=5)
    sampler = SpikeSampler(SimpleNamespace(task=SimpleNamespace(cfg=cfg, data=data), plan=plan))
    assert sampler.cells == {"layer0": 2, "layer1": 2, "layer2": 2}
    example_s = 6 * 0.5e-3

    def run(chunk: int) -> RunResult:  # cell 1 of every group fires once per presentation
        t = (np.arange(2) + 0.5) * example_s  # times within this run
        spikes = {"t": t, "i": np.ones(2, dtype=int)}
        return RunResult({}, {f"spikes_layer{k}": spikes for k in range(3)}, 0.0, 0.0)

    seen: list[int] = []
    on_train = sampler.training_callback(lambda c, r: seen.append(c))
    for chunk in range(5):
        on_train(chunk, run(chunk))
    perm = np.arange(40)[::-1]
    sampler.end_epoch(0, perm)
    assert seen == [0, 1, 2, 3, 4]  # every run still reaches the next callback
    train = sampler.segments
    assert [s.name for s in train] == [
        "epoch 1: training examples",
        "epoch 1: training examples (run 2 of the pass)",
    ]
    assert train[0].annotations["examples"] == [39, 35]  # perm[0], perm[4]: copy 0's
    assert train[0].annotations["labels"] == [9, 5]
    assert train[1].annotations["examples"] == [31]
    assert train[1].spikes[0].t_stop_s == pytest.approx(example_s)
    assert [len(s.times_s) for s in train[0].spikes] == [0, 2] * 3

    on_test = sampler.test_callback(0, lambda c, r: None)
    for chunk in range(3):
        on_test(chunk, run(chunk))
    test = sampler.segments[2:]
    assert [s.annotations["examples"] for s in test] == [[0, 4], [8, 12], [16]]
    assert test[2].name == "test examples, untrained (run 3 of the pass)"

"""Populations of spiking cells per unit in the microcircuit (issue 15 items 1-2; the one
:class:`neurosim.blocks.Population` of tests/test_populations.py): every group's units become n
cells read through one trace per unit, the weights stay between units (cost linear in n), release
failure acts in the pools, the maximum rate is ``circuit.max_rate_hz`` (the old name refused, the
default unchanged), and feedback cancellation reports firing rates in Hz.

Object counts and the checks of settings build no code; the compiled circuit and a short protocol
run with populations compile once each (slow tier)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from brian2 import NeuronGroup, Synapses

from circuits import microcircuit as mc
from neurosim.diagnostics import firing_rates
from neurosim.engine import CircuitBuild, RunResult, Simulation
from neurosim.errors import ConfigError
from protocols.feedback_cancellation.spikes import Firing, chained
from tests.test_feedback_cancellation import TINY, _resolve, _run

DT = 0.5  # ms
MAX_RATE = 100.0  # Hz
LOGISTIC = mc.MicrocircuitParams(phi="logistic", max_rate_hz=MAX_RATE)


def _build(sizes, population: int, batch: int = 1, readout: str = "spiking", **kw) -> CircuitBuild:  # noqa: ANN001
    """A microcircuit build with the runtime device's objects (not run)."""
    import brian2

    brian2.set_device("runtime")
    structure = mc.MicrocircuitStructure(
        sizes, readout=readout, population=population, batch=batch, **kw
    )
    tv = mc.timed_values(np.zeros((1, sizes[0] * batch)), sizes[-1] * batch)
    return mc.CIRCUIT.build(structure, LOGISTIC, tv, dt_ms=DT)


def _counts(sizes, population: int, batch: int = 1, **kw) -> dict[str, int]:  # noqa: ANN001
    structure = mc.MicrocircuitStructure(
        sizes, readout="spiking", population=population, batch=batch, **kw
    )
    build = _build(sizes, population, batch, **kw)
    counts = {o.name: len(o) for o in build.objects if isinstance(o, Synapses | NeuronGroup)}
    counts["synapses"] = sum(len(o) for o in build.objects if isinstance(o, Synapses))
    counts["cost_synapses"] = mc.CIRCUIT.cost(structure).synapses
    counts["cost_neurons"] = mc.CIRCUIT.cost(structure).neurons
    return counts


def test_cost_is_linear_in_n_with_weights_between_units() -> None:
    sizes = (6, 5, 3)  # groups layer0 (6), layer1 (5), layer2 (3), inter1 (3)
    units = 6 + 5 + 3 + 3
    one = _counts(sizes, 1)
    weights = 5 * 6 + 3 * 5 + 5 * 3 + 5 * 3 + 3 * 5  # W1, W2, B1, WPI1, WIP1
    assert one["synapses"] == weights + 3  # and copy1, one-to-one
    assert not any(name.endswith("_cells") for name in one)
    for n in (2, 8, 32):
        c = _counts(sizes, n)
        assert (c["W1"], c["W2"], c["B1"], c["WPI1"], c["WIP1"]) == (30, 15, 15, 15, 15)
        for group, size in (("layer0", 6), ("layer1", 5), ("layer2", 3), ("inter1", 3)):
            assert c[f"{group}_cells"] == n * size
            assert c[f"{group}_pool"] == n * size  # one synapse per cell, none per pair
        assert c["synapses"] == weights + 3 + n * units == c["cost_synapses"]
        assert c["cost_neurons"] == units + n * units
    batched = _counts(sizes, 4, batch=3)
    assert batched["inter1_cells"] == 3 * 4 * 3 and batched["inter1_pool"] == 3 * 4 * 3
    assert batched["W1"] == 3 * 30  # B diagonal blocks, as without populations


def test_projections_read_the_units_traces_and_one_cell_keeps_its_own() -> None:
    sizes = (4, 3, 2)
    one = {o.name: o for o in _build(sizes, 1, topdown="tied").objects}
    pooled = {o.name: o for o in _build(sizes, 4, topdown="tied").objects}
    assert "x" in one["W1"].variables and "xb" in one["W2"].variables
    assert "p_fail" in one["W1"].variables and "spike" in one["layer1"].events

    def sums(syn: Synapses) -> list[str]:
        return [str(u.expression) for u in syn.summed_updaters.values()]

    for name in ("W1", "W2", "WPI1", "WIP1"):
        syn = pooled[name]
        assert not {"x", "xb", "p_fail"} & set(syn.variables), name
        assert sums(syn)[0] == "w*X_pre", name  # the presynaptic unit's trace
    assert sums(pooled["W2"]) == ["w*X_pre", "w*X_post"]  # the tied backward path
    assert sums(one["W2"]) == ["w*x", "w*xb"]
    for group in ("layer0", "layer1", "layer2", "inter1"):
        assert "X" in pooled[group].variables and "spike" not in pooled[group].events
        assert "p_fail" in pooled[f"{group}_pool"].variables


def test_run_values_follow_the_population() -> None:
    sizes = [4, 3, 2]
    assert mc.p_fail_values(sizes, 0.3) == {
        f"{w}.p_fail": 0.3 for w in ("W1", "W2", "B1", "WPI1", "WIP1")
    }
    assert mc.p_fail_values(sizes, 0.3, population=4) == {
        f"{g}_pool.p_fail": 0.3 for g in ("layer0", "layer1", "layer2", "inter1")
    }
    one = mc.state_keys(sizes, readout="spiking")
    pooled = mc.state_keys(sizes, readout="spiking", population=4)
    assert "W1.x" in one and "layer0.X" not in one
    assert "W1.x" not in pooled
    assert {"layer0.X", "layer1.X", "layer2.X", "inter1.X"} <= set(pooled)
    assert mc.state_keys(sizes) == mc.state_keys(sizes, population=1)


def test_bad_populations_and_rates_are_refused() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="population must be a whole number"):
            mc.MicrocircuitStructure([4, 3, 2], readout="spiking", population=bad)
    with pytest.raises(ValueError, match="needs the spiking read-out"):
        mc.MicrocircuitStructure([4, 3, 2], population=4)
    with pytest.raises(ConfigError, match="circuit.population"):
        _resolve("circuit.population=0", "run.readout=spiking")
    with pytest.raises(ConfigError, match="needs --readout spiking"):
        _resolve("circuit.population=4")
    assert _resolve("circuit.population=16", "run.readout=spiking").circuit.population == 16
    # the maximum rate: in Hz under its new name, the old one refused by name, default unchanged
    assert mc.MicrocircuitParams(max_rate_hz=100.0).rate_scale_hz == 100.0  # read-only alias
    with pytest.raises(ConfigError, match="renamed circuit.max_rate_hz"):
        _resolve("circuit.rate_scale_hz=100.0", "run.readout=spiking")
    with pytest.raises(ConfigError, match="at most once per step"):
        _resolve("circuit.max_rate_hz=20000.0", "run.readout=spiking")
    assert _resolve("run.readout=spiking").circuit.max_rate_hz == 1000.0
    spiking = _resolve("run.readout=spiking", dataset="digits")
    assert spiking.circuit.max_rate_hz == 1000.0 and spiking.circuit.population == 1
    with pytest.raises(ValueError, match="at most once per step"):  # 100 Hz × 20 ms = 2
        mc.CIRCUIT.build(
            mc.MicrocircuitStructure([4, 3, 2], readout="spiking"), LOGISTIC,
            mc.timed_values(np.zeros((1, 4)), 2), dt_ms=20.0,
        )  # fmt: skip


def _result(monitors: Mapping[str, Mapping[str, np.ndarray]], seconds: float) -> RunResult:
    return RunResult(state={}, monitors=dict(monitors), wall_seconds=0.0, simulated_seconds=seconds)


def test_firing_counts_spikes_per_group_in_hz_over_a_pass() -> None:
    sizes = [2, 3, 1]  # layer0 (2), layer1 (3), layer2 (1), inter1 (1)
    one_cell = {  # one cell per unit: spike trains
        "spikes_layer0": {"i": np.array([0, 0, 1]), "t": np.zeros(3)},
        "spikes_layer1": {"i": np.array([2]), "t": np.zeros(1)},
        "spikes_layer2": {"i": np.array([], dtype=int), "t": np.zeros(0)},
        "spikes_inter1": {"i": np.array([0, 0]), "t": np.zeros(2)},
    }
    counts = mc.spike_counts(one_cell, sizes)
    assert [list(counts[g]) for g in ("layer0", "layer1", "layer2", "inter1")] == [
        [2, 1], [0, 0, 1], [0], [2],
    ]  # fmt: skip
    pooled = {f"counts_{g}": {"count": np.full(2 * len(c), 3)} for g, c in counts.items()}
    assert mc.spike_counts(pooled, sizes)["layer1"].tolist() == [3] * 6  # every cell's count
    firing = Firing(mc.CIRCUIT, sizes, batch=1, per_run=4)  # 4 patterns per run
    firing.add(0, _result(one_cell, 0.5))
    firing.add(0, _result(one_cell, 0.5))  # a new pass starts again
    firing.add(1, _result(one_cell, 0.5))
    rates = firing.rates()
    assert firing.runs == 2
    assert rates["layer0"] == {"mean_hz": 3.0, "max_hz": 4.0, "spikes_per_example": 0.75}
    assert rates["inter1"] == {"mean_hz": 4.0, "max_hz": 4.0, "spikes_per_example": 0.5}
    assert rates["all"]["spikes_per_example"] == 12 / 8
    assert rates == firing_rates({g: 2 * c for g, c in counts.items()}, 1.0, 8)
    seen: list[int] = []
    both = chained(None, lambda c, r: seen.append(c), lambda c, r: seen.append(10 + c))
    assert both is not None and chained(None, None) is None
    both(3, _result(one_cell, 0.5))
    assert seen == [3, 13]


# ------------------------------------------------------------------------------ compiled
@pytest.mark.slow
def test_populations_drive_the_compiled_microcircuit_in_batch_mode() -> None:
    """A 10-8-4 circuit of 8 cells per unit at 100 Hz, two copies side by side: every input cell
    fires at its unit's rate (per copy), the count monitor agrees with the first cells' spike
    trains and gives the rates in Hz, the basal sums are the weights times the units' traces,
    and release failure 1 in the pools silences every dendrite."""
    sizes, n, B, duration = [10, 8, 4], 8, 2, 400.0
    x = np.stack([np.linspace(0.1, 0.9, sizes[0]), np.linspace(0.9, 0.1, sizes[0])])
    one_row = {name: duration for name in mc.TIMED_INPUTS}

    def builder(tv: Mapping[str, np.ndarray]) -> CircuitBuild:
        structure = mc.MicrocircuitStructure(
            sizes, readout="spiking", population=n, batch=B, timed_dt_ms=one_row,
            record={"layer1": ("vB", "vA"), "inter1": ("vI",)},
        )  # fmt: skip
        return mc.CIRCUIT.build(structure, LOGISTIC, tv, dt_ms=DT)

    timed = mc.timed_values(x.reshape(1, -1), sizes[-1] * B)  # copy-major columns
    sim = Simulation(
        builder, device="cpp_standalone", duration_ms=duration, dt_ms=DT, initial_timed=timed,
        label="test-microcircuit-population",
    )  # fmt: skip
    w = mc.random_weights(sizes, np.random.default_rng(5), scale=1.0)
    w["W1"] = np.ones((sizes[1], sizes[0]))
    structure = mc.MicrocircuitStructure(sizes, batch=B)
    values = mc.CIRCUIT.weight_values(structure, w)
    keys = mc.state_keys(sizes, readout="spiking", population=n)
    result = sim.run(values=values, timed=timed, seed=3, read=keys)
    counts = mc.spike_counts(result.monitors, sizes, B)
    units0 = sizes[0] * B
    assert counts["layer0"].shape == (n * units0,)
    per_unit = counts["layer0"].reshape(n, units0).sum(axis=0)  # cell m of unit u: m·20 + u
    expected = n * x.reshape(-1) * MAX_RATE * (duration - LOGISTIC.tau_in) / 1000
    assert np.all(np.abs(per_unit - expected) < 5 * np.sqrt(expected)), (per_unit, expected)
    for group in ("layer0", "layer1", "layer2", "inter1"):  # the count monitor's first cells
        first = np.bincount(result.monitors[f"spikes_{group}"]["i"], minlength=len(counts[group]))
        units = len(counts[group]) // n
        assert first[units:].sum() == 0  # the spike trains are one cell per unit
        np.testing.assert_array_equal(first[:units], counts[group][:units])
        assert counts[group].sum() > 0, group
    rates = firing_rates(counts, duration / 1000, examples=B)
    mean_hz = float(np.mean(x)) * MAX_RATE * (duration - LOGISTIC.tau_in) / duration
    assert rates["layer0"]["mean_hz"] == pytest.approx(mean_hz, rel=0.05)
    assert rates["layer0"]["max_hz"] <= 1.6 * MAX_RATE
    # vB of copy b's hidden cells is Σ_i X_i of copy b's inputs (unit weights), X of mean x
    vb = result.monitors["layer1"]["vB"][round(50 / 1.0) :]  # recorded every 1 ms
    for b in range(B):
        copy_vb = vb[:, b * sizes[1] : (b + 1) * sizes[1]]
        assert np.mean(copy_vb) / x[b].sum() == pytest.approx(1.0, abs=0.05)
    x_end = result.state["layer0.X"]
    assert x_end.shape == (units0,) and np.all(x_end >= 0)
    silent = sim.run(
        values={**values, **mc.p_fail_values(sizes, 1.0, population=n)}, timed=timed, seed=4
    )
    assert sum(c.sum() for c in mc.spike_counts(silent.monitors, sizes, B).values()) > 1000
    for group, var in (("layer1", "vB"), ("layer1", "vA"), ("inter1", "vI")):
        assert np.all(silent.monitors[group][var] == 0.0), (group, var)
    assert sim.compilations == 1


@pytest.mark.slow
def test_feedback_cancellation_with_populations_reports_rates_in_hz(tmp_path: Path) -> None:
    m = _run(
        tmp_path, "pop", *TINY, "--readout", "spiking", "--set", "circuit.population=4",
        "--set", "circuit.max_rate_hz=100.0", "--set", "circuit.batch=2",
    )  # fmt: skip
    assert m["compilations"] <= 1 and m["batch"] == 2
    assert m["history"]["circuit"][1] != m["history"]["circuit"][0]  # it learned something
    firing = m["firing"]
    assert firing["max_rate_hz"] == 100.0 and firing["population"] == 4
    for phase in ("test", "train_last_epoch"):
        for group in ("layer0", "layer1", "layer2", "inter1"):
            rate = firing[phase][group]
            assert 0 <= rate["mean_hz"] <= rate["max_hz"] < 200.0, (phase, group)
        assert 0 < firing[phase]["layer0"]["mean_hz"] <= MAX_RATE
        assert firing[phase]["all"]["spikes_per_example"] > 0

"""Populations of spiking cells per unit (issue 15, DESIGN.md §4.8; :class:`neurosim.blocks.
Population`) and the maximum rate in Hz: a unit's trace has the mean of its rate and a variance
that falls as 1/n, release failure acts per spike, the synapses grow linearly in n, bad sizes and
the old parameter name are refused, and the Hopfield circuit reads the populations' traces.

The block's statistics run on Brian2's runtime device (no compilation); the Hopfield build with
populations compiles once (slow tier), as does a short protocol run."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from brian2 import NeuronGroup, StateMonitor, Synapses

from circuits import hopfield as hp
from neurosim.blocks import Population, SpikingReadout
from neurosim.diagnostics import firing_rates
from neurosim.engine import CircuitBuild, Simulation
from neurosim.errors import ConfigError
from neurosim.schedule import set_slot
from tests.test_equilibrium_propagation import _resolve, _run

DT = 0.5  # ms
MAX_RATE = 100.0  # Hz
TAU_S = 3.0  # ms
RATE = 0.6  # every unit's dimensionless rate r
UNITS = 400
DURATION = 300.0  # ms
BURN_IN = 60.0  # ms: 20 τ_s, the traces have forgotten their start at 0


def _trace_build(n: int) -> CircuitBuild:
    """``UNITS`` units at rate ``RATE``, each a population of ``n`` cells, and their traces."""
    pop = Population(n, SpikingReadout(MAX_RATE, TAU_S))
    units = NeuronGroup(
        UNITS, f"r : 1\n{pop.unit_trace}", method="euler", name="units",
        namespace=pop.namespace(),
    )  # fmt: skip
    units.r = RATE
    parts = pop.build(units)
    mon = StateMonitor(units, "X", record=True, name="mon_units")
    set_slot(mon, ("start", -60))
    return CircuitBuild(
        objects=[units, parts.cells, parts.pool, mon], monitors={"units": mon},
        connectivity={"units_pool": (np.asarray(parts.pool.i[:]), np.asarray(parts.pool.j[:]))},
    )  # fmt: skip


def _traces(n: int, p_fail: float = 0.0, seed: int = 1) -> np.ndarray:
    """The units' traces X every step after the burn-in (steps × units)."""
    sim = Simulation(
        lambda _timed: _trace_build(n), device="runtime", duration_ms=DURATION, dt_ms=DT,
        initial_timed={}, label=f"population-{n}",
    )  # fmt: skip
    result = sim.run(values={"units_pool.p_fail": p_fail}, seed=seed)
    return result.monitors["units"]["X"][round(BURN_IN / DT) :]


def _expected_variance(n: int) -> float:
    """Stationary variance of X: each step adds x_jump/n per spike of n Bernoulli(p) cells and
    X decays by a = dt/τ_s (Euler), so var = n·p(1 − p)·(x_jump/n)² / (1 − (1 − a)²)."""
    p = RATE * MAX_RATE * DT * 1e-3
    jump = 1.0 / (MAX_RATE * TAU_S * 1e-3)
    a = DT / TAU_S
    return p * (1 - p) * jump**2 / n / (1 - (1 - a) ** 2)


@pytest.mark.parametrize("n", [4, 16])
def test_a_population_trace_has_the_rate_as_mean_and_a_variance_falling_as_one_over_n(
    n: int,
) -> None:
    x = _traces(n)
    # 400 units × 480 steps, correlated over ~6 steps: the mean's standard error is ~0.003 (n=4)
    assert np.mean(x) == pytest.approx(RATE, abs=0.02)
    assert np.var(x) == pytest.approx(_expected_variance(n), rel=0.1)


def test_release_failure_acts_per_spike_and_halves_the_mean_at_one_half() -> None:
    full, half = _traces(4, seed=2), _traces(4, p_fail=0.5, seed=2)
    assert np.mean(full) == pytest.approx(RATE, abs=0.02)
    assert np.mean(half) == pytest.approx(RATE / 2, abs=0.02)
    # each spike is kept or lost alone: the kept spikes are a Poisson thinning, so the variance
    # is that of cells firing at (1 − p_fail) times the rate
    p = 0.5 * RATE * MAX_RATE * DT * 1e-3
    jump, a = 1.0 / (MAX_RATE * TAU_S * 1e-3), DT / TAU_S
    assert np.var(half) == pytest.approx(p * (1 - p) * jump**2 / 4 / (1 - (1 - a) ** 2), rel=0.1)


# ------------------------------------------------------------------------------ the circuit
def _objects(population: int, batch: int = 1, sizes=(6, 5, 3)) -> dict[str, int]:  # noqa: ANN001
    """Synapses and cells of a two-phase spiking Hopfield build (runtime objects, not run)."""
    import brian2

    brian2.set_device("runtime")
    structure = hp.HopfieldStructure(
        sizes=sizes, readout="spiking", population=population, plasticity=("two-phase",),
        example_ms=10.0, batch=batch,
    )  # fmt: skip
    timed = hp.example_timed(
        np.zeros((1, batch * sizes[0])), np.zeros((1, batch * sizes[-1])), np.zeros(1), free_ms=8.0,
        nudged_ms=2.0, dt_ms=DT, names=hp.CIRCUIT.timed_names(structure),
    )[0]  # fmt: skip
    build = hp.CIRCUIT.build(structure, hp.HopfieldParams(max_rate_hz=MAX_RATE), timed, dt_ms=DT)
    counts = {o.name: len(o) for o in build.objects if isinstance(o, Synapses | NeuronGroup)}
    counts["synapses"] = sum(len(o) for o in build.objects if isinstance(o, Synapses))
    counts["cost_synapses"] = hp.CIRCUIT.cost(structure).synapses
    counts["cost_neurons"] = hp.CIRCUIT.cost(structure).neurons
    return counts


def test_cost_is_linear_in_n_with_weights_between_units() -> None:
    sizes = (6, 5, 3)
    units = sum(sizes)
    one = _objects(1)
    assert (one["W1"], one["W2"], one["synapses"]) == (30, 15, 45)
    assert "layer0_cells" not in one
    for n in (2, 8, 32):
        c = _objects(n)
        assert (c["W1"], c["W2"]) == (30, 15)  # the weights stay between units
        for k, size in enumerate(sizes):
            assert c[f"layer{k}_cells"] == n * size
            assert c[f"layer{k}_pool"] == n * size  # one synapse per cell, none per pair
        assert c["synapses"] == 45 + n * units == c["cost_synapses"]
        assert c["cost_neurons"] == units + n * units
    batched = _objects(4, batch=3)
    assert batched["layer1_pool"] == 3 * 4 * 5 and batched["layer1_cells"] == 3 * 4 * 5
    assert batched["W1"] == 3 * 30  # B diagonal blocks, as without populations


def test_bad_population_sizes_are_refused() -> None:
    params = hp.HopfieldParams()
    for bad in (0, -3, 2.5, True):
        structure = hp.HopfieldStructure(sizes=(4, 3), readout="spiking", population=bad)
        with pytest.raises(ValueError, match="population must be a whole number"):
            structure.check(params, DT)
    with pytest.raises(ValueError, match="needs the spiking read-out"):
        hp.HopfieldStructure(sizes=(4, 3), population=4).check(params, DT)
    with pytest.raises(ValueError, match="population must be a whole number"):
        Population(0, SpikingReadout(MAX_RATE, TAU_S))
    with pytest.raises(ConfigError, match="circuit.population"):
        _resolve("circuit.population=0", readout="spiking")
    with pytest.raises(ConfigError, match="circuit.population"):
        _resolve("circuit.population=2.5", readout="spiking")
    with pytest.raises(ConfigError, match="needs --readout spiking"):
        _resolve("circuit.population=4")
    assert _resolve("circuit.population=16", readout="spiking").circuit.population == 16


def test_the_maximum_rate_is_in_hz_and_the_old_name_is_refused_by_name() -> None:
    assert hp.HopfieldParams(max_rate_hz=100.0).rate_scale_hz == 100.0  # read-only alias
    with pytest.raises(ConfigError, match="renamed circuit.max_rate_hz"):
        _resolve("circuit.rate_scale_hz=100.0", readout="spiking")
    with pytest.raises(ConfigError, match="at most once per step"):
        _resolve("circuit.max_rate_hz=4000.0", readout="spiking")
    assert _resolve(readout="spiking").circuit.max_rate_hz == 1000.0  # the default, unchanged


def test_firing_rates_in_hz_from_counts() -> None:
    counts: Mapping[str, np.ndarray] = {"layer0": np.array([10, 30]), "layer1": np.array([0, 4])}
    rates = firing_rates(counts, duration_s=2.0, examples=4)
    assert rates["layer0"] == {"mean_hz": 10.0, "max_hz": 15.0, "spikes_per_example": 10.0}
    assert rates["layer1"] == {"mean_hz": 1.0, "max_hz": 2.0, "spikes_per_example": 1.0}
    assert rates["all"] == {"spikes_per_example": 11.0}
    with pytest.raises(ValueError, match="positive"):
        firing_rates(counts, duration_s=0.0, examples=4)


# ------------------------------------------------------------------------------ compiled
@pytest.mark.slow
def test_populations_drive_the_compiled_circuit() -> None:
    """A 10-8-4 circuit of 8 cells per unit at 100 Hz: every cell fires at ρ·max rate, the
    spike trains are one cell per unit, and the summed inputs are the weights times the traces
    (mean Σ ρ(x) with unit weights); release failure 1 silences every trace."""
    sizes, n, duration = [10, 8, 4], 8, 400.0
    x = np.linspace(0.1, 0.9, sizes[0])

    def builder(tv: Mapping[str, np.ndarray]) -> CircuitBuild:
        structure = hp.HopfieldStructure(
            sizes=sizes, readout="spiking", population=n,
            record={"layer1": ("up", "down"), "layer2": ("up",)},
        )  # fmt: skip
        return hp.CIRCUIT.build(structure, hp.HopfieldParams(max_rate_hz=MAX_RATE), tv, dt_ms=DT)

    sim = Simulation(
        builder, device="cpp_standalone", duration_ms=duration, dt_ms=DT,
        initial_timed=hp.timed_values(x[None, :], sizes[-1]), label="test-hopfield-population",
    )  # fmt: skip
    w = {f"W{k}": np.ones((sizes[k], sizes[k - 1])) for k in (1, 2)}
    w |= {f"b{k}": np.full(sizes[k], 0.5) for k in (1, 2)}
    timed = hp.timed_values(x[None, :], sizes[-1])
    result = sim.run(values=hp.weight_values(w, sizes), timed=timed, seed=3)
    counts = hp.spike_counts(result.monitors, sizes)
    assert counts["layer0"].shape == (n * sizes[0],)
    per_unit = counts["layer0"].reshape(n, sizes[0]).sum(axis=0)  # cell m of unit u: m·10 + u
    expected = n * x * MAX_RATE * duration / 1000
    assert np.all(np.abs(per_unit - expected) < 5 * np.sqrt(expected)), (per_unit, expected)
    assert result.monitors["spikes_layer0"]["i"].max() < sizes[0]  # one cell per unit
    up = result.monitors["layer1"]["up"][round(50 / DT) :]
    assert np.mean(up) / x.sum() == pytest.approx(1.0, abs=0.05)
    assert np.any(result.monitors["layer1"]["down"] != 0)
    silent = sim.run(
        values={**hp.weight_values(w, sizes), **hp.p_fail_values(sizes, 1.0, n)},
        timed=timed, seed=4,
    )  # fmt: skip
    assert sum(c.sum() for c in hp.spike_counts(silent.monitors, sizes).values()) > 1000
    assert np.all(silent.monitors["layer1"]["up"] == 0.0)
    assert np.all(silent.monitors["layer2"]["up"] == 0.0)
    assert sim.compilations == 1


@pytest.mark.slow
def test_equilibrium_propagation_with_populations_reports_rates_in_hz(tmp_path) -> None:  # noqa: ANN001
    m = _run(
        tmp_path, "pop", "--dataset", "digits", "--readout", "spiking", "--epochs", "1",
        "--set", "circuit.population=4", "--set", "circuit.max_rate_hz=100.0",
        "--set", "protocol.n_train=60", "--set", "protocol.n_test=30",
        "--set", "protocol.examples_per_run=30", "--set", "protocol.backprop_epochs=0",
        "--set", "protocol.grad_check=false", "--set", "protocol.traces=false",
    )  # fmt: skip
    firing = m["firing"]
    assert firing["max_rate_hz"] == 100.0 and firing["population"] == 4
    for phase in ("test", "train_last_epoch"):
        for k in range(3):
            layer = firing[phase][f"layer{k}"]
            assert 0 < layer["mean_hz"] <= layer["max_hz"] < 150.0  # pass averages, ≤ 100 Hz
        assert firing[phase]["all"]["spikes_per_example"] > 0

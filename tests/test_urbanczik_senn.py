"""The Urbanczik-Senn circuit on the engine: dynamics against scipy, seeds, size checks; its
interface (derived ``[circuit]`` table, schedule, weights) and the protocol's default preset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from circuits import urbanczik_senn as us
from neurosim.engine import Simulation
from neurosim.errors import NeurosimError, SimulationError
from neurosim.parameters.urbanczik_senn import UrbanczikSennParams

DT = 0.1
N_IN = 20
PATTERN_STEPS = 1000  # 100 ms, replayed twice per run
DURATION = 200.0


def _inputs(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    stim = (rng.random((PATTERN_STEPS, N_IN)) < 40e-3 * DT).astype(float)
    t = np.arange(PATTERN_STEPS) * DT
    return {
        "stimulus": stim,
        "teacher_gE": 0.54 + 0.48 * np.sin(2 * np.pi * t / 100.0),
        "teacher_gI": np.full(PATTERN_STEPS, 1.8),
    }


def _structure(readout: str = "spiking") -> us.UrbanczikSennStructure:
    return us.UrbanczikSennStructure(
        n_inputs=N_IN, readout=readout, record_dt_ms=1.0, weight_record_dt_ms=100.0
    )


def _simulation(params: UrbanczikSennParams | None = None, readout: str = "spiking") -> Simulation:
    params = params or UrbanczikSennParams()
    timed = _inputs()
    return Simulation(
        us.CIRCUIT.builder(_structure(readout), params, DT),
        device="cpp_standalone",
        duration_ms=DURATION,
        dt_ms=DT,
        initial_timed=timed,
        label="test-us",
    )


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return _simulation()


def _frozen(weights: np.ndarray) -> dict[str, object]:
    return {
        "dendritic_synapses.w": weights,
        "dendritic_synapses.eta": 0.0,
        "dendritic_synapses.plastic": 0.0,
        "neuron.teacher_on": 1.0,
    }


def _reference_dendrite(stim: np.ndarray, w: np.ndarray, t_eval_ms: np.ndarray) -> np.ndarray:
    """V_w = Σ w_i (x_L − x_s)/(τ_L − τ_s) from the trace ODEs, integrated by scipy.

    Spikes of the pattern (replayed every period) enter the traces one step after the step in
    which they are emitted (the circuit's documented schedule).
    """
    p = UrbanczikSennParams()
    period = stim.shape[0] * DT
    steps, cells = np.nonzero(stim)
    arrivals: dict[float, np.ndarray] = {}
    for rep in range(int(np.ceil(DURATION / period)) + 1):
        for s, c in zip(steps, cells, strict=True):
            t_arr = round(rep * period + (s + 1) * DT, 9)
            arrivals.setdefault(t_arr, np.zeros(N_IN))[c] += 1.0
    rates = np.concatenate([np.full(N_IN, 1 / p.tau_L), np.full(N_IN, 1 / p.tau_s)])

    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        return -rates * x

    x = np.zeros(2 * N_IN)
    t_now = 0.0
    out = np.empty(len(t_eval_ms))
    events = sorted(a for a in arrivals if a <= t_eval_ms[-1])
    k = 0
    for n, t_target in enumerate(t_eval_ms):
        while k < len(events) and events[k] <= t_target + 1e-9:
            if events[k] > t_now:
                x = solve_ivp(rhs, (t_now, events[k]), x, rtol=1e-11, atol=1e-13).y[:, -1]
                t_now = events[k]
            jump = arrivals[events[k]]
            x[:N_IN] += jump
            x[N_IN:] += jump
            k += 1
        if t_target > t_now:
            x = solve_ivp(rhs, (t_now, t_target), x, rtol=1e-11, atol=1e-13).y[:, -1]
            t_now = t_target
        out[n] = np.dot(w, (x[:N_IN] - x[N_IN:]) / (p.tau_L - p.tau_s))
    return out


def test_dendritic_potential_matches_scipy_solution(sim: Simulation) -> None:
    w = np.random.default_rng(0).normal(0.5, 0.3, N_IN)
    result = sim.run(values=_frozen(w), timed=_inputs(), seed=1)
    soma = result.monitors["soma"]
    t_ms = soma["t"] * 1000.0
    assert len(t_ms) == int(DURATION)  # one sample per ms over the whole run
    reference = _reference_dendrite(_inputs()["stimulus"], w, t_ms)
    assert np.max(np.abs(reference)) > 0.1  # the inputs do drive the dendrite
    rel = np.max(np.abs(soma["V_w"][:, 0] - reference)) / np.max(np.abs(reference))
    assert rel < 1e-3
    # learning was off: the weights did not move
    np.testing.assert_array_equal(result.monitors["weights"]["w"][-1], w)


def test_same_seed_same_spikes_new_seed_new_spikes(sim: Simulation) -> None:
    values = {**_frozen(np.full(N_IN, 2.0)), "neuron.teacher_on": 0.0}
    a = sim.run(values=values, timed=_inputs(), seed=11)
    b = sim.run(values=values, timed=_inputs(), seed=11)
    c = sim.run(values=values, timed=_inputs(), seed=12)
    ta, tb, tc = (r.monitors["output_spikes"]["t"] for r in (a, b, c))
    assert len(ta) > 10
    np.testing.assert_array_equal(ta, tb)
    assert len(ta) != len(tc) or not np.array_equal(ta, tc)
    assert sim.compilations <= 1  # all runs reused one build


def test_plasticity_moves_weights_only_when_on(sim: Simulation) -> None:
    w = np.full(N_IN, 0.3)
    on = sim.run(
        values={**_frozen(w), "dendritic_synapses.eta": 0.5, "dendritic_synapses.plastic": 1.0},
        timed=_inputs(),
        seed=2,
        read=us.STATE,
    )
    assert np.max(np.abs(on.state["dendritic_synapses.w"] - w)) > 1e-3
    off = sim.run(values=_frozen(w), timed=_inputs(), seed=2, read=us.STATE)
    np.testing.assert_array_equal(off.state["dendritic_synapses.w"], w)


def test_wrong_sizes_and_bad_values_are_refused_before_running(sim: Simulation) -> None:
    with pytest.raises(NeurosimError, match="needs 20 values"):
        sim.run(values={"dendritic_synapses.w": np.zeros(19)}, timed=_inputs())
    with pytest.raises(NeurosimError, match="NaN"):
        sim.run(values={"dendritic_synapses.w": np.full(N_IN, np.nan)}, timed=_inputs())
    with pytest.raises(NeurosimError, match="no variable"):
        sim.run(values={"neuron.nonexistent": 1.0}, timed=_inputs())
    with pytest.raises(NeurosimError, match="single shared value"):
        sim.run(values={"dendritic_synapses.eta": np.ones(3)}, timed=_inputs())
    bad = _inputs()
    bad["stimulus"] = bad["stimulus"][:-1]
    with pytest.raises(NeurosimError, match="shape"):
        sim.run(timed=bad)


def test_diverging_dynamics_raise_a_clear_error(sim: Simulation) -> None:
    with pytest.raises(SimulationError, match="NaN or infinite"):
        sim.run(values=_frozen(np.full(N_IN, 1e308)), timed=_inputs(), seed=1, read=us.STATE)


def test_structure_key_follows_compiled_constants_not_run_values(sim: Simulation) -> None:
    again = _simulation()
    assert again.build_dir == sim.build_dir and again.compilations == 0
    other = _simulation(UrbanczikSennParams(g_D=1.5))
    assert other.build_dir != sim.build_dir and other.compilations == 1


def test_rate_readout_is_deterministic_and_spikeless() -> None:
    rate = _simulation(readout="rate")
    w = np.full(N_IN, 0.4)
    values = {**_frozen(w), "dendritic_synapses.eta": 0.5, "dendritic_synapses.plastic": 1.0}
    a = rate.run(values=values, timed=_inputs(), seed=1, read=us.STATE)
    b = rate.run(values=values, timed=_inputs(), seed=99, read=us.STATE)
    assert "output_spikes" not in a.monitors
    np.testing.assert_array_equal(a.state["dendritic_synapses.w"], b.state["dendritic_synapses.w"])
    assert np.max(np.abs(a.state["dendritic_synapses.w"] - w)) > 1e-4


KEY_SCRIPT = """
import numpy as np
from circuits import urbanczik_senn as us
from neurosim.engine import Simulation
from neurosim.parameters.urbanczik_senn import UrbanczikSennParams
from tests.test_urbanczik_senn import DT, DURATION, _inputs, _structure
sim = Simulation(
    us.CIRCUIT.builder(_structure(), UrbanczikSennParams(), DT),
    device="cpp_standalone", duration_ms=DURATION, dt_ms=DT, initial_timed=_inputs(),
    label="test-us",
)
print(sim.compilations, sim.build_dir)
"""


def test_cache_key_is_stable_across_processes() -> None:
    """A new process finds the build whatever its hash seed (set order must not enter the key).
    The processes are compared with each other, not with this one: in a full default-tier run
    (2026-12-05) this process's key, made after the other test files, differed from a fresh
    process's (an in-process state that enters the key; not yet found), which costs a
    compilation, not a result."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    first: str | None = None
    for hash_seed in ("0", "1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        compilations, build_dir = proc.stdout.split()[-2:]
        if first is None:  # the first process finds the build or compiles it
            first = build_dir
            continue
        assert (compilations, build_dir) == ("0", first)


# ---------------------------------------------------------------------------------------------
# the circuit interface: registry, schedule as data, weights, cost
# ---------------------------------------------------------------------------------------------


def test_circuit_is_registered_by_name_and_checked() -> None:
    from neurosim.circuit import check_circuit
    from neurosim.registry import circuit

    assert circuit(us.NAME) is us.CIRCUIT
    check_circuit(us.CIRCUIT)
    assert us.CIRCUIT.Params is UrbanczikSennParams
    assert us.CIRCUIT.timed_names(_structure()) == us.TIMED_INPUTS


def test_schedule_slots_are_the_ones_compiled() -> None:
    """Dendritic sum at the start of the step, then the synapses, then the neurons."""
    from neurosim.schedule import execution_order

    built = _simulation()._build  # the cached build's objects
    assert built is not None
    rows = execution_order(built.objects)
    kinds = [(kind, name.split("_")[0]) for kind, name, _, _ in rows]
    first = kinds.index(("summed", "dendritic"))
    synapses = kinds.index(("synapse_update", "dendritic"))
    neuron = kinds.index(("neuron_update", "neuron"))
    assert first < synapses < neuron
    slots = {(kind, name): (when, order) for kind, name, when, order in rows}
    assert (
        slots[("summed", "dendritic_synapses_summed_variable_V_w_post")]
        == (us.CIRCUIT.schedule["dendritic_sum"])
    )
    assert ("monitor", "soma_monitor") in slots
    assert slots[("monitor", "soma_monitor")] == us.CIRCUIT.schedule["recording"]


def test_weights_map_to_run_values_and_back() -> None:
    structure = _structure()
    w = np.linspace(-1.0, 1.0, N_IN)
    values = us.CIRCUIT.weight_values(structure, {"dendritic_synapses": w})
    assert list(values) == ["dendritic_synapses.w"]
    np.testing.assert_array_equal(values["dendritic_synapses.w"], w)
    back = us.CIRCUIT.weights_from_state(structure, values)
    np.testing.assert_array_equal(back["dendritic_synapses"], w)
    with pytest.raises(NeurosimError, match="shape"):
        us.CIRCUIT.weight_values(structure, {"dendritic_synapses": np.zeros(N_IN + 1)})
    with pytest.raises(NeurosimError, match="no weight 'w'"):
        us.CIRCUIT.weight_values(structure, {"w": w})


def test_cost_and_structure_checks() -> None:
    cost = us.CIRCUIT.cost(us.UrbanczikSennStructure(n_inputs=500))
    assert (cost.neurons, cost.synapses) == (501, 500)
    with pytest.raises(ValueError, match="readout"):
        us.UrbanczikSennStructure(readout="voltage")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the [circuit] table, derived from the parameter record
# ---------------------------------------------------------------------------------------------


def _table() -> type:
    from neurosim.circuit import config_model

    return config_model(us.CIRCUIT)


def test_circuit_table_is_derived_from_the_parameter_record() -> None:
    import dataclasses

    table = _table()
    assert table is _table()  # one model per circuit: tables of one circuit compare equal
    fields = [f.name for f in dataclasses.fields(UrbanczikSennParams)]
    assert list(table.model_fields) == [*fields, "n_inputs"]
    defaults = table()
    for name in fields:
        assert getattr(defaults, name) == getattr(UrbanczikSennParams(), name)
    assert defaults.n_inputs == us.UrbanczikSennStructure().n_inputs == 200


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"g_LL": 0.1}, "Unknown configuration key 'circuit.g_LL'; allowed keys in [circuit]:"),
        ({"g_L": -0.1}, "Invalid value -0.1 for 'circuit.g_L': input should be greater than 0"),
        ({"refractory": -1.0}, "Invalid value -1.0 for 'circuit.refractory'"),
        ({"n_inputs": 0}, "Invalid value 0 for 'circuit.n_inputs'"),
        ({"n_inputs": 200001}, "Invalid value 200001 for 'circuit.n_inputs'"),
        ({"n_inputs": True}, "Invalid value True for 'circuit.n_inputs'"),
        ({"tau_s": "3"}, "Invalid value '3' for 'circuit.tau_s'"),
        ({"tau_L": 3.0}, "Invalid configuration in [circuit]: tau_L and tau_s must differ"),
    ],
)
def test_bad_circuit_key_or_value_is_one_clear_error(table: dict, message: str) -> None:
    from neurosim.cli import pipeline
    from neurosim.errors import ConfigError

    raw = {"run": {"protocol": "dendritic-prediction"}, "circuit": table}
    with pytest.raises(ConfigError) as info:
        pipeline.resolve(raw)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_parameter_record_checks_itself() -> None:
    with pytest.raises(ValueError, match="tau_L and tau_s must differ"):
        UrbanczikSennParams(tau_L=3.0, tau_s=3.0)


# ---------------------------------------------------------------------------------------------
# the protocol's default preset
# ---------------------------------------------------------------------------------------------


def test_default_preset_is_complete_and_equals_the_records() -> None:
    from neurosim import presets
    from neurosim.config import RunConfig
    from protocols.dendritic_prediction import DendriticPrediction, DendriticPredictionConfig

    proto = DendriticPrediction()
    assert "default" in presets.available(proto)
    assert proto.default_preset(RunConfig(readout="rate")) == "default"
    tables = presets.load(proto, "default")
    assert set(tables["protocol"]) == set(DendriticPredictionConfig.model_fields)
    assert set(tables["circuit"]) == set(_table().model_fields)
    # the preset says explicitly what the records' defaults are: neither can drift alone
    assert DendriticPredictionConfig(**tables["protocol"]) == DendriticPredictionConfig()
    assert _table()(**tables["circuit"]) == _table()()
    assert tables["run"] == {
        "protocol": "dendritic-prediction",
        "epochs": DendriticPrediction.default_epochs,
    }


def test_preset_is_resolved_under_the_users_settings() -> None:
    from neurosim.cli import pipeline
    from neurosim.errors import ConfigError

    resolved = pipeline.resolve(
        pipeline.build_raw(
            None,
            {"protocol": "dendritic-prediction", "readout": "rate", "epochs": 2},
            {"protocol": {"eta": 0.05}, "circuit": {"n_inputs": 40}},
        )
    )
    assert resolved.run.preset == "default"
    assert (resolved.run.readout, resolved.run.epochs) == ("rate", 2)
    assert resolved.protocol.eta == 0.05 and resolved.protocol.repetitions_per_epoch == 26
    assert resolved.circuit.n_inputs == 40 and resolved.circuit.g_D == 2.0
    written = resolved.as_dict()  # what config.toml holds
    assert written["run"]["preset"] == "default"
    assert written["circuit"]["tau_delta"] == 100.0
    with pytest.raises(ConfigError, match="has no preset 'fast'; its presets: default"):
        pipeline.resolve({"run": {"protocol": "dendritic-prediction", "preset": "fast"}})


# ---------------------------------------------------------------------------------------------
# the protocol's record, as the analysis reads it
# ---------------------------------------------------------------------------------------------


def test_analysis_reads_the_record(tmp_path) -> None:
    from analysis import dendritic_prediction as adp
    from neurosim.records.dendritic_prediction import DendriticPredictionRecord, RateFunction

    steps, reps = 50, 4
    t = np.arange(steps)
    g_E = 0.54 + 0.48 * np.sin(2 * np.pi * t / steps)
    g_I = np.full(steps, 1.8)
    rf = RateFunction(phi_max=0.15, k=0.5, beta=5.0, theta=1.0)
    target = adp.teacher_rate(g_E, g_I, (14 / 3, -1 / 3), rf)
    pattern_step = np.tile(t, reps)
    noise = np.random.default_rng(0).normal(0, 1, steps * reps) * np.repeat([1, 1, 0, 0], steps)
    record = DendriticPredictionRecord(
        prediction=target[pattern_step] + noise,  # noisy in the first half, exact at the end
        pattern_step=pattern_step,
        test_prediction=target,
        test_pattern_step=t,
        teacher_gE=g_E,
        teacher_gI=g_I,
        reversal=(14 / 3, -1 / 3),
        rate_function=rf,
        samples_per_repetition=steps,
        correlation_repetitions=2,
        weights_t=np.arange(reps) * 0.2,
        weights=np.ones((reps, 3)),
        pattern_t_ms=t * 1.0,
    )
    measures = adp.analyse(record, tmp_path)
    assert measures["rate_correlation_end"] == pytest.approx(1.0)
    assert measures["rate_correlation_test"] == pytest.approx(1.0)
    assert measures["rate_correlation_start"] < 0.5
    assert len(measures["rate_correlation_per_repetition"]) == reps
    assert (tmp_path / "learning_curve.png").is_file()

"""The Urbanczik-Senn circuit on the engine: dynamics against scipy, seeds, size checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from circuits import urbanczik_senn as us
from neurosim.engine import Simulation
from neurosim.errors import NeurosimError, SimulationError

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


def _simulation(
    params: us.UrbanczikSennParams | None = None, readout: str = "spiking"
) -> Simulation:
    params = params or us.UrbanczikSennParams(n_inputs=N_IN)
    timed = _inputs()
    return Simulation(
        lambda tv: us.build(
            params, tv, dt_ms=DT, readout=readout, record_dt_ms=1.0, weight_record_dt_ms=100.0
        ),
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
    p = us.UrbanczikSennParams()
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
    other = _simulation(us.UrbanczikSennParams(n_inputs=N_IN, g_D=1.5))
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
from tests.test_urbanczik_senn import DT, DURATION, N_IN, _inputs
sim = Simulation(
    lambda tv: us.build(us.UrbanczikSennParams(n_inputs=N_IN), tv, dt_ms=DT, record_dt_ms=1.0,
                        weight_record_dt_ms=100.0),
    device="cpp_standalone", duration_ms=DURATION, dt_ms=DT, initial_timed=_inputs(),
    label="test-us",
)
print(sim.compilations, sim.build_dir)
"""


def test_cache_key_is_stable_across_processes(sim: Simulation) -> None:
    """A new process finds the build whatever its hash seed (set order must not enter the key)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
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
        assert (compilations, build_dir) == ("0", str(sim.build_dir))

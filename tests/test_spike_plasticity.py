"""EP's two-phase rule from spike traces (issue 15 item 4, DESIGN.md §4.8;
``HopfieldStructure.learn_from = "spike-traces"``, ``protocol.plasticity``).

Every unit keeps a trace ν of its own spikes (dν/dt = −ν/τ_ν, + 1/(n·max_rate·τ_ν) per spike of
one of its n cells) and every synapse accumulates dH/dt = g(t)·ν_pre·ν_post/ms, the gate g being
−1/(β·T) over the last T of the free phase and +1/(β·T) over the last T of the nudged phase; at
the end of the example ΔW = η·H. The tests:

* deterministic spikes (rates 0 or 1 at max_rate·dt = 1: a cell at ρ = 1 fires every step, one
  at 0 never), one cell and two cells per unit, and batch mode: the weights and biases after one
  example equal the update computed by hand from the known spike trains, number for number;
* Poisson spikes at intermediate rates fixed by the biases (weights 0, so the rates do not
  depend on the spikes): over long windows the update equals its expectation — the same
  recursion driven by the rates ρ(t) in place of the spikes, which is the rate rule
  (ρ_i^β ρ_j^β − ρ_i^0 ρ_j^0)/β once the traces have settled — within 5 standard deviations
  derived from the expected spike counts;
* the option is refused, with a clear message, for the rate read-out and the continual rule.

The builds run on Brian2's runtime device (no compilation) or compile once (the statistical
test); both are in the slow tier."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pytest
from brian2 import ms, prefs

from circuits import hopfield as hp
from neurosim.engine import Simulation
from tests.test_equilibrium_propagation import _resolve

MAX_RATE = 1000.0  # Hz: with dt = 1 ms a cell at ρ = 1 fires every step (max_rate·dt = 1)
DT = 1.0  # ms, = τ: one projected-Euler step moves s to clip(drive, 0, 1)
TAU_NU = 2.0  # ms


@pytest.fixture
def numpy_target() -> Iterator[None]:
    """Brian2's runtime device with numpy code: a tiny build runs at once, nothing compiled."""
    old = prefs.codegen.target
    prefs.codegen.target = "numpy"
    yield
    prefs.codegen.target = old


def _simulation(
    sizes: tuple[int, ...],
    n: int,
    free: int,
    nudged: int,
    window: int,
    device: str,
    dt: float,
    max_rate: float = MAX_RATE,
    batch: int = 1,
) -> tuple[Simulation, hp.HopfieldStructure, float]:
    """A one-example two-phase build that learns from spike traces (``n`` cells per unit,
    ``batch`` copies side by side)."""
    example_ms = (free + nudged) * dt
    names = hp.timed_names(("two-phase",), 1.0, "spike-traces")
    timed, timed_dt, _ = hp.example_timed(
        np.zeros((1, batch * sizes[0])), np.zeros((1, batch * sizes[-1])), 0.0, free_ms=free * dt,
        nudged_ms=nudged * dt, dt_ms=dt, window_ms=window * dt, names=names,
    )  # fmt: skip
    structure = hp.HopfieldStructure(
        sizes=sizes, readout="spiking", plasticity=("two-phase",), example_ms=example_ms,
        population=n, learn_from="spike-traces", record={}, timed_dt_ms=timed_dt, batch=batch,
    )  # fmt: skip
    params = hp.HopfieldParams(max_rate_hz=max_rate)
    sim = Simulation(
        hp.CIRCUIT.builder(structure, params, dt), device=device,
        duration_ms=hp.duration_ms(1, example_ms, dt), dt_ms=dt, initial_timed=timed,
        label=f"test-spike-plasticity-{n}",
    )  # fmt: skip
    return sim, structure, example_ms


def _timed(
    x: np.ndarray, d: np.ndarray, beta: float, free: int, nudged: int, window: int, dt: float
) -> dict[str, np.ndarray]:
    names = hp.timed_names(("two-phase",), 1.0, "spike-traces")
    return hp.example_timed(
        x, d, beta, free_ms=free * dt, nudged_ms=nudged * dt, dt_ms=dt, window_ms=window * dt,
        names=names,
    )[0]  # fmt: skip


def _learn(
    sim: Simulation,
    structure: hp.HopfieldStructure,
    x: np.ndarray,
    d: np.ndarray,
    b: Mapping[str, np.ndarray],
    beta: float,
    window: tuple[int, int, int],
    tau_nu_ms: float,
    seed: int = 1,
) -> dict[str, np.ndarray]:
    """One example at zero weights and learning rates 1: the weights and biases it learned (in
    batch mode every copy sees the same example; the first copy's weights)."""
    sizes, batch = structure.sizes, structure.batch
    w = {f"W{k}": np.zeros((sizes[k], sizes[k - 1])) for k in range(1, len(sizes))}
    w |= {f"b{k}": np.asarray(b[f"b{k}"], dtype=float) for k in range(1, len(sizes))}
    values = {
        **hp.weight_values(w, sizes, batch=batch),
        **hp.eta_values(sizes, two_phase=1.0),
        **{f"layer{k}.tau_nu": tau_nu_ms * ms for k in range(len(sizes))},
    }
    free, nudged, win = window
    timed = _timed(
        np.tile(x, batch)[None, :], np.tile(d, batch)[None, :], beta, free, nudged, win, sim.dt_ms
    )
    result = sim.run(values=values, timed=timed, seed=seed, read=hp.CIRCUIT.state_keys(structure))
    learned = hp.weights_from_state(result.state, sizes)
    for k in range(1, len(sizes)):
        learned[f"b{k}"] = learned[f"b{k}"] - w[f"b{k}"]
    return learned


def _hand_update(
    drive: Mapping[str, np.ndarray], gate: np.ndarray, jump: float, decay: float, dt: float
) -> dict[str, np.ndarray]:
    """H of every synapse and every unit from per-step inputs ``drive[layer]`` (steps × units:
    the spikes, or their expectation ρ·max_rate·dt), by the circuit's schedule: in step t the
    products read ν(t), then ν(t+1) = ν(t)·(1 − dt/τ_ν) + jump·drive(t)."""
    steps = len(gate)
    nu = {name: np.zeros((steps, a.shape[1])) for name, a in drive.items()}
    for name, a in drive.items():
        for t in range(1, steps):
            nu[name][t] = nu[name][t - 1] * (1 - decay) + jump * a[t - 1]
    layers = sorted(drive)
    out = {}
    for k in range(1, len(layers)):
        pre, post = nu[f"layer{k - 1}"], nu[f"layer{k}"]
        out[f"W{k}"] = dt * np.einsum("t,ti,tj->ij", gate, post, pre)
        out[f"b{k}"] = dt * np.einsum("t,ti->i", gate, post)
    return out


# ------------------------------------------------------------------------------ no build
def test_the_gate_weighs_each_window_by_one_over_beta_and_its_length() -> None:
    betas, sym = np.array([0.5, 0.0, 0.5]), np.array([False, False, True])
    g = hp.hebb_gate_rows(
        betas, sym, free_steps=6, nudged_steps=4, window_steps=2, phases=3, dt_ms=0.5
    ).reshape(3, 14)
    # two-phase: −1/(β·T) on the free phase's last 2 steps, +1/(β·T) on the example's last 2
    assert np.all(g[0, 4:6] == -1 / (0.5 * 1.0)) and np.all(g[0, 12:] == 1 / (0.5 * 1.0))
    assert np.count_nonzero(g[0]) == 4
    assert not g[1].any()  # β = 0: padding or testing, nothing learned
    # symmetric: the −β phase's last 2 steps and the +β phase's, over 2β
    assert np.all(g[2, 8:10] == -1 / (1.0 * 1.0)) and np.all(g[2, 12:] == 1 / (1.0 * 1.0))
    assert np.count_nonzero(g[2]) == 4
    for row in g:  # a constant ν_pre ν_post is no change
        assert abs(row.sum()) < 1e-12
    with pytest.raises(ValueError, match="must not exceed"):
        _timed(np.zeros((1, 2)), np.zeros((1, 1)), 0.5, 6, 4, 5, 0.5)


def test_spike_traces_are_refused_for_the_rate_read_out_and_the_continual_rule() -> None:
    params = hp.HopfieldParams()
    rate = hp.HopfieldStructure(
        sizes=(4, 3), plasticity=("two-phase",), example_ms=5.0, learn_from="spike-traces"
    )
    with pytest.raises(ValueError, match="rate read-out fires no spikes"):
        rate.check(params, 0.5)
    continual = hp.HopfieldStructure(
        sizes=(4, 3), readout="spiking", plasticity=("continual",), learn_from="spike-traces"
    )
    with pytest.raises(ValueError, match="two-phase rule on spike traces"):
        continual.check(params, 0.5)
    with pytest.raises(ValueError, match="learn_from must be one of"):
        hp.HopfieldStructure(sizes=(4, 3), readout="spiking", learn_from="spikes").check(
            params, 0.5
        )
    with pytest.raises(Exception, match="plasticity = 'spike-traces' reads spike traces"):
        _resolve("protocol.plasticity=spike-traces")
    with pytest.raises(Exception, match="two-phase rule"):
        _resolve(
            "protocol.plasticity=spike-traces", "protocol.variant=continual", readout="spiking"
        )
    resolved = _resolve("protocol.plasticity=spike-traces", readout="spiking")
    assert resolved.protocol.plasticity == "spike-traces"
    assert _resolve(readout="spiking").protocol.plasticity == "rates"  # the default


# ------------------------------------------------------------------------------ built
@pytest.mark.slow
@pytest.mark.parametrize(("n", "batch"), [(1, 1), (2, 1), (1, 2)])
def test_deterministic_spikes_give_the_update_computed_by_hand(
    n: int, batch: int, numpy_target: None
) -> None:
    """Rates 0 or 1 only: inputs 1, 0, 1; hidden biases ±5 (ρ = 1 from the second step, or 0);
    output biases −1, targets 2 and 0 at β = 2 (free: ρ = 0; nudged: output 0 at ρ = 1 from the
    second nudged step, output 1 at 0). Every cell at ρ = 1 fires every step, so the spike
    trains, the traces, H and the learned ΔW = H, Δb = H_b are known exactly; in batch mode B
    copies of the same example learn B·H (the copies' changes are summed)."""
    sizes, free, nudged, window, beta = (3, 2, 2), 6, 4, 2, 2.0
    sim, structure, _ = _simulation(sizes, n, free, nudged, window, "runtime", DT, batch=batch)
    x, d = np.array([1.0, 0.0, 1.0]), np.array([2.0, 0.0])
    b = {"b1": np.array([5.0, -5.0]), "b2": np.array([-1.0, -1.0])}
    learned = _learn(sim, structure, x, d, b, beta, (free, nudged, window), TAU_NU)
    steps = free + nudged
    t = np.arange(steps)[:, None]
    spikes = {
        "layer0": np.broadcast_to(x, (steps, 3)).astype(float),
        "layer1": ((t >= 1) & (b["b1"] > 0)).astype(float),
        "layer2": ((t >= free + 1) & (d > 1)).astype(float),
    }
    gate = np.zeros(steps)
    gate[free - window : free] = -1 / (beta * window * DT)
    gate[steps - window :] = 1 / (beta * window * DT)
    expected = _hand_update(spikes, gate, 1 / (MAX_RATE * TAU_NU * 1e-3), DT / TAU_NU, DT)
    assert np.abs(expected["W2"]).max() > 0.1  # the nudged output learns
    for name, value in expected.items():
        np.testing.assert_allclose(
            learned[name], batch * value, rtol=1e-12, atol=1e-12, err_msg=name
        )


@pytest.mark.slow
def test_the_spike_trace_update_equals_its_expectation_the_rate_update() -> None:
    """Poisson spikes at fixed rates (weights 0): inputs ρ_0 = x; hidden ρ_1 = b_1 (s settles on
    its bias in one step at dt = τ); output free ρ = b_2, nudged (b_2 + βd)/(1 + β). Over windows
    of T = 2 s at 200 Hz (hundreds of spikes per cell) the update equals the recursion driven by
    the rates (the expectation: the cells' spikes are independent given the rates, so E[ν_iν_j]
    = E[ν_i]E[ν_j]) within 5 standard deviations, each derived from the expected spike counts:
    the mean of a trace over T has variance ρ/(max_rate·T) (a count of Poisson spikes), and a
    product's by the delta method. That expectation is the rate rule (the traces settled long
    before the windows)."""
    sizes, n, beta, dt, rate = (4, 3, 2), 2, 0.5, 1.0, 500.0
    free, nudged, window = 10200, 10200, 10000
    sim, structure, _ = _simulation(
        sizes, n, free, nudged, window, "cpp_standalone", dt, max_rate=rate
    )
    x = np.array([0.2, 0.5, 0.8, 1.0])
    d = np.array([1.0, 0.0])
    b = {"b1": np.array([0.3, 0.6, 0.9]), "b2": np.array([0.4, 0.5])}
    learned = _learn(sim, structure, x, d, b, beta, (free, nudged, window), TAU_NU, seed=7)
    steps = free + nudged
    t = np.arange(steps)[:, None]
    p_free, p_nudged = b["b2"], (b["b2"] + beta * d) / (1 + beta)
    rho = {
        "layer0": np.broadcast_to(x, (steps, 4)),
        "layer1": np.where(t >= 1, b["b1"], 0.0),
        # s_{t+1} = clip(b + β(d − s_t)) at dt = τ: from the free point, (−β)^m converges
        "layer2": _output_rates(b["b2"], d, beta, free, nudged),
    }
    gate = np.zeros(steps)
    gate[free - window : free] = -1 / (beta * window * dt)
    gate[steps - window :] = 1 / (beta * window * dt)
    per_step = {k: v * rate * dt * 1e-3 for k, v in rho.items()}  # expected spikes per step
    expected = _hand_update(per_step, gate, 1 / (rate * TAU_NU * 1e-3), dt / TAU_NU, dt)
    rate_rule = {
        "W1": np.outer(b["b1"], x) * 0.0,  # the hidden rates do not change with β
        "W2": (np.outer(p_nudged, b["b1"]) - np.outer(p_free, b["b1"])) / beta,
        "b1": np.zeros(3),
        "b2": (p_nudged - p_free) / beta,
    }
    for name in expected:  # the settled expectation is the rate rule
        np.testing.assert_allclose(expected[name], rate_rule[name], atol=1e-9, err_msg=name)
    # n·max_rate·T: the expected spikes of a unit at ρ = 1 in a window
    big_t = n * window * dt * 1e-3 * rate
    # variance of a window mean of ν: ρ/(n·max_rate·T), a Poisson count's (Bernoulli steps vary
    # less: a bound); of a product ρ_iρ_j by the delta method: ρ_i²v_j + ρ_j²v_i
    var = {}
    for k, (pre, post_free, post_nudged) in enumerate(
        [(x, b["b1"], b["b1"]), (b["b1"], p_free, p_nudged)], start=1
    ):
        v_pre = pre / big_t
        v_free = np.outer(post_free**2, v_pre) + np.outer(post_free / big_t, pre**2)
        v_nudged = np.outer(post_nudged**2, v_pre) + np.outer(post_nudged / big_t, pre**2)
        var[f"W{k}"] = (v_free + v_nudged) / beta**2
        var[f"b{k}"] = (post_free / big_t + post_nudged / big_t) / beta**2
    for name, value in expected.items():
        z = (learned[name] - value) / np.sqrt(var[name])
        assert np.all(np.abs(z) < 5), (name, z)
    # and it can fail: the update is far from 0 in units of its standard deviation
    assert np.abs(expected["W2"] / np.sqrt(var["W2"])).min() > 10


def _output_rates(b: np.ndarray, d: np.ndarray, beta: float, free: int, nudged: int) -> np.ndarray:
    """ρ(t) of the output at dt = τ: 0 at the restart, b in the free phase, then projected Euler
    s ← clip(b + β(d − s), 0, 1) in the nudged phase."""
    rho = np.zeros((free + nudged, len(b)))
    s = np.zeros(len(b))
    for t in range(free + nudged):
        rho[t] = s
        nudge = beta * (d - s) if t >= free else 0.0
        s = np.clip(b + nudge, 0.0, 1.0)
    return rho

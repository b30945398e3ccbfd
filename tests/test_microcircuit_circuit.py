"""The dendritic microcircuit on the engine: fixed points against numpy, the self-predicting
state (closed form and learned), the schedule, size checks, spiking read-out and release failure.

Three small structures compile once each (cpp_standalone): a logistic rate circuit with two hidden
layers and learned top-down weights, a soft-ReLU rate circuit with tied top-down weights and
background noise, and a spiking circuit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from scipy.optimize import root

from circuits import microcircuit as mc
from neurosim.engine import CircuitBuild, Simulation
from neurosim.errors import NeurosimError
from neurosim.schedule import execution_order

DT = 0.1
PATTERN_MS = 100.0
GATE_MS = 10.0
TIMED_DT = {"inputs": PATTERN_MS, "targets": PATTERN_MS, "nudge": PATTERN_MS, "plastic": GATE_MS}

# the main structure: logistic φ, two hidden layers, learned top-down weights
SIZES = [6, 5, 4, 3]
PARAMS = mc.MicrocircuitParams(phi="logistic")
PRO_PARAMS = mc.MicrocircuitParams(phi="logistic", neuron="prospective")
DURATION = 1000.0
ROWS = int(DURATION / PATTERN_MS)
# the second: soft-ReLU φ, one hidden layer, tied top-down weights, background noise
TIED_SIZES = [3, 4, 2]
TIED_PARAMS = mc.MicrocircuitParams()
TIED_DURATION = 300.0
# the third: spiking read-out
SPIKE_SIZES = [3, 4, 2]
SPIKE_DURATION = 300.0


# ------------------------------------------------------------------------------ helpers
def _build(
    params: mc.MicrocircuitParams, sizes: list[int], tv: Mapping[str, np.ndarray], *,
    dt_ms: float, **structure: object,
) -> CircuitBuild:  # fmt: skip
    """The registered circuit's build of ``sizes`` with the structure fields ``structure``."""
    return mc.CIRCUIT.build(mc.MicrocircuitStructure(sizes, **structure), params, tv, dt_ms=dt_ms)


def _timed(
    x: np.ndarray,
    n_out: int,
    duration: float,
    *,
    targets: np.ndarray | None = None,
    nudge: float = 0.0,
    plastic: np.ndarray | float = 1.0,
) -> dict[str, np.ndarray]:
    """TimedArray values: ``x`` (one input row, or one per pattern), gate every GATE_MS."""
    rows = int(duration / PATTERN_MS)
    x = np.atleast_2d(np.asarray(x, dtype=float))
    x = np.repeat(x, rows, axis=0) if x.shape[0] == 1 else x
    t = None if targets is None else np.repeat(np.atleast_2d(targets), rows, axis=0)
    tv = mc.timed_values(x, n_out, targets=t, nudge=nudge)
    tv["plastic"] = np.broadcast_to(plastic, (int(duration / GATE_MS),)).astype(float).copy()
    return tv


def _simulation(
    params: mc.MicrocircuitParams, sizes: list[int], duration: float, label: str, **kwargs
) -> tuple[Simulation, dict[str, CircuitBuild]]:
    captured: dict[str, CircuitBuild] = {}

    def builder(tv: Mapping[str, np.ndarray]) -> CircuitBuild:
        captured["build"] = _build(params, sizes, tv, dt_ms=DT, timed_dt_ms=TIMED_DT, **kwargs)
        return captured["build"]

    x = np.zeros((1, sizes[0]))
    sim = Simulation(
        builder,
        device="cpp_standalone",
        duration_ms=duration,
        dt_ms=DT,
        initial_timed=_timed(x, sizes[-1], duration),
        label=label,
    )
    return sim, captured


@pytest.fixture(scope="module")
def rate_sim() -> tuple[Simulation, dict[str, CircuitBuild]]:
    return _simulation(PARAMS, SIZES, DURATION, "test-mc-rate", topdown="learned")


@pytest.fixture(scope="module")
def prospective_sim() -> Simulation:
    return _simulation(PRO_PARAMS, SIZES, DURATION, "test-mc-prospective", topdown="learned")[0]


@pytest.fixture(scope="module")
def tied_sim() -> Simulation:
    return _simulation(
        TIED_PARAMS, TIED_SIZES, TIED_DURATION, "test-mc-tied", topdown="tied", noise=True
    )[0]


@pytest.fixture(scope="module")
def spike_sim() -> Simulation:
    return _simulation(
        TIED_PARAMS, SPIKE_SIZES, SPIKE_DURATION, "test-mc-spike", readout="spiking"
    )[0]


def _weights(sizes: list[int], seed: int, topdown: str = "learned") -> dict[str, np.ndarray]:
    return mc.random_weights(sizes, np.random.default_rng(seed), topdown=topdown, scale=1.0)


# ------------------------------------------------------------------------------ numpy reference
def _fixed_point(
    p: mc.MicrocircuitParams,
    sizes: list[int],
    weights: Mapping[str, np.ndarray],
    x: np.ndarray,
    *,
    nudge: float = 0.0,
    u_target: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Solve the steady state of the circuit's equations (DESIGN.md §4.2) with scipy.

    Unknowns: the somatic potentials u_1..u_N and uI_1..uI_{N−1}; everything else follows.
    Top-down weights are B_k, or W_{k+1}ᵀ where there is no B_k (tied).
    """
    n = len(sizes) - 1
    u_target = np.zeros(sizes[-1]) if u_target is None else u_target
    splits = np.cumsum([*sizes[1:], *sizes[2:]])[:-1]
    top_down = {
        k: weights[f"B{k}"] if f"B{k}" in weights else weights[f"W{k + 1}"].T for k in range(1, n)
    }

    def unpack(z: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        parts = np.split(z, splits)
        return [x, *parts[:n]], [np.empty(0), *parts[n:]]

    def residual(z: np.ndarray) -> np.ndarray:
        u, ui = unpack(z)
        r = [x] + [p.phi_numpy(v) for v in u[1:]]
        ri = [np.empty(0)] + [p.phi_numpy(v) for v in ui[1:]]
        out = []
        for k in range(1, n + 1):
            vb = weights[f"W{k}"] @ r[k - 1]
            if k < n:
                va = top_down[k] @ r[k + 1] + weights[f"WPI{k}"] @ ri[k]
                out.append(-p.g_lk * u[k] + p.g_B * (vb - u[k]) + p.g_A * (va - u[k]))
            else:
                out.append(
                    -p.g_lk * u[k] + p.g_B * (vb - u[k]) + p.g_som * nudge * (u_target - u[k])
                )
        for k in range(1, n):
            vi = weights[f"WIP{k}"] @ r[k]
            out.append(-p.g_lk * ui[k] + p.g_D * (vi - ui[k]) + p.g_som * (u[k + 1] - ui[k]))
        return np.concatenate(out)

    sol = root(residual, np.zeros(sum(sizes[1:]) + sum(sizes[2:])), method="hybr", tol=1e-13)
    # hybr may report "no further improvement" at machine precision: judge by the residual
    assert np.max(np.abs(residual(sol.x))) < 1e-10, sol.message
    u, ui = unpack(sol.x)
    r = [x] + [p.phi_numpy(v) for v in u[1:]]
    ri = [np.empty(0)] + [p.phi_numpy(v) for v in ui[1:]]
    out = {}
    for k in range(1, n + 1):
        out[f"layer{k}.u"] = u[k]
        out[f"layer{k}.vB"] = weights[f"W{k}"] @ r[k - 1]
    for k in range(1, n):
        out[f"layer{k}.vA_td"] = top_down[k] @ r[k + 1]
        out[f"layer{k}.vA_int"] = weights[f"WPI{k}"] @ ri[k]
        out[f"inter{k}.uI"] = ui[k]
        out[f"inter{k}.vI"] = weights[f"WIP{k}"] @ r[k]
    return out


def _euler_twin(
    p: mc.MicrocircuitParams,
    sizes: list[int],
    weights: Mapping[str, np.ndarray],
    eta: Mapping[str, float],
    tv: Mapping[str, np.ndarray],
    steps: int,
) -> dict[str, np.ndarray]:
    """Forward Euler of the plastic circuit (learned top-down) with the documented schedule:
    rates, then dendritic sums, then plasticity factors, then synapses, then neurons — every
    term of step t evaluated at time t. Prospective neurons (``p.neuron``): rates of
    ŭ = u_old + (u − u_old)/(g_total dt), the input's r0_old + (r0 − r0_old) τ_in/dt, and the
    interneurons nudged by ŭ of the next layer."""
    n = len(sizes) - 1
    phi = p.phi_numpy
    pro = p.neuron == "prospective"
    g_tot = [None] + [p.prospective_conductance("hidden")] * (n - 1)
    g_tot.append(p.prospective_conductance("output"))
    g_int = p.prospective_conductance("inter")
    w = {k: np.array(v, dtype=float) for k, v in weights.items()}
    delta = {k: np.zeros_like(v) for k, v in w.items()}
    r0 = np.zeros(sizes[0])
    u = [None] + [np.zeros(m) for m in sizes[1:]]
    ui = [None] + [np.zeros(m) for m in sizes[2:]]
    u_old, ui_old, r0_old = [v.copy() if v is not None else None for v in u], list(ui), r0.copy()
    per_input, per_gate = round(PATTERN_MS / DT), round(GATE_MS / DT)
    g_hid, g_out, g_in = p.hidden_basal_gain, p.output_basal_gain, p.inter_dendrite_gain
    for step in range(steps):
        x = tv["inputs"][min(step // per_input, len(tv["inputs"]) - 1)]
        gate = tv["plastic"][min(step // per_gate, len(tv["plastic"]) - 1)]
        nudge = tv["nudge"][min(step // per_input, len(tv["nudge"]) - 1)]
        if pro:
            ub = [None] + [u_old[k] + (u[k] - u_old[k]) / (g_tot[k] * DT) for k in range(1, n + 1)]
            ubi = [None] + [ui_old[k] + (ui[k] - ui_old[k]) / (g_int * DT) for k in range(1, n)]
            r = [r0_old + (r0 - r0_old) * p.tau_in / DT] + [phi(v) for v in ub[1:]]
            u_next = ub
        else:
            ubi, u_next = ui, u
            r = [r0] + [phi(v) for v in u[1:]]
        ri = [None] + [phi(v) for v in ubi[1:]]
        vb = [None] + [w[f"W{k}"] @ r[k - 1] for k in range(1, n + 1)]
        vtd = [None] + [w[f"B{k}"] @ r[k + 1] for k in range(1, n)]
        vint = [None] + [w[f"WPI{k}"] @ ri[k] for k in range(1, n)]
        vi = [None] + [w[f"WIP{k}"] @ r[k] for k in range(1, n)]
        induction = {}
        for k in range(1, n + 1):
            gain = g_out if k == n else g_hid
            induction[f"W{k}"] = np.outer(r[k] - phi(gain * vb[k]), r[k - 1])
        for k in range(1, n):
            induction[f"B{k}"] = np.outer(r[k] - phi(vtd[k]), r[k + 1])
            induction[f"WPI{k}"] = np.outer(-(vtd[k] + vint[k]), ri[k])
            induction[f"WIP{k}"] = np.outer(ri[k] - phi(g_in * vi[k]), r[k])
        for name in w:
            old = delta[name]
            delta[name] = old + DT * (induction[name] - old) / p.tau_w
            w[name] = w[name] + DT * eta[name] * gate * old
        new_u = [None]
        target = tv["targets"][min(step // per_input, len(tv["targets"]) - 1)]
        for k in range(1, n + 1):
            du = -p.g_lk * u[k] + p.g_B * (vb[k] - u[k])
            if k < n:
                du = du + p.g_A * (vtd[k] + vint[k] - u[k])
            else:
                du = du + p.g_som * nudge * (target - u[k])
            new_u.append(u[k] + DT * du)
        u_old, ui_old, r0_old = u, ui, r0
        g_tot[n] = p.g_lk + p.g_B + p.g_som * nudge
        ui = [None] + [
            ui[k]
            + DT * (-p.g_lk * ui[k] + p.g_D * (vi[k] - ui[k]) + p.g_som * (u_next[k + 1] - ui[k]))
            for k in range(1, n)
        ]
        u = new_u
        r0 = r0 + DT * (x - r0) / p.tau_in
    out = {"layer0.r0": r0, "layer0.r0_old": r0_old, f"layer{n}.g_old": np.full(sizes[n], g_tot[n])}
    out.update({f"layer{k}.u": u[k] for k in range(1, n + 1)})
    out.update({f"inter{k}.uI": ui[k] for k in range(1, n)})
    out.update({f"layer{k}.u_old": u_old[k] for k in range(1, n + 1)})
    out.update({f"inter{k}.uI_old": ui_old[k] for k in range(1, n)})
    for name in w:
        out[f"{name}.w"] = mc.matrix_to_w(w[name])
        out[f"{name}.Delta"] = mc.matrix_to_w(delta[name])
    return out


def _settled_rms(result, layers: range) -> float:
    """RMS of the apical potentials over the second half of every pattern."""
    values = []
    for k in layers:
        rec = result.monitors[f"layer{k}"]
        settled = np.round(rec["t"] * 1000.0) % PATTERN_MS >= PATTERN_MS / 2
        values.append(rec["vA"][settled].ravel())
    return float(np.sqrt(np.mean(np.concatenate(values) ** 2)))


# ------------------------------------------------------------------------------ layout and checks
def test_weight_layout_helpers_round_trip() -> None:
    i, j = mc.dense_connectivity(3, 2)
    np.testing.assert_array_equal(i, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(j, [0, 0, 0, 1, 1, 1])
    m = np.arange(6.0).reshape(2, 3)  # (post, pre)
    w = mc.matrix_to_w(m)
    np.testing.assert_array_equal(w[(j * 3 + i)], m[j, i])
    np.testing.assert_array_equal(mc.w_to_matrix(w, 2, 3), m)
    shapes = mc.weight_shapes([6, 5, 4, 3])
    assert shapes == {
        "W1": (5, 6),
        "W2": (4, 5),
        "W3": (3, 4),
        "B1": (5, 4),
        "WPI1": (5, 4),
        "WIP1": (4, 5),
        "B2": (4, 3),
        "WPI2": (4, 3),
        "WIP2": (3, 4),
    }
    assert "B1" not in mc.weight_shapes([6, 5, 4, 3], "tied")
    assert mc.MicrocircuitParams().self_predicting_factor(False) == pytest.approx(0.5789, abs=1e-4)


def test_invalid_arguments_are_refused() -> None:
    tv = _timed(np.zeros(3), 2, 100.0)
    with pytest.raises(ValueError, match="readout"):
        _build(TIED_PARAMS, [3, 4, 2], tv, dt_ms=DT, readout="bursts")
    with pytest.raises(ValueError, match="topdown"):
        _build(TIED_PARAMS, [3, 4, 2], tv, dt_ms=DT, topdown="random")
    with pytest.raises(ValueError, match="spiking"):
        _build(TIED_PARAMS, [3, 4, 2], tv, dt_ms=DT, p_fail=0.5)
    with pytest.raises(ValueError, match="sizes"):
        _build(TIED_PARAMS, [3], tv, dt_ms=DT)
    with pytest.raises(ValueError, match="inputs"):
        _build(TIED_PARAMS, [4, 4, 2], tv, dt_ms=DT)


# ------------------------------------------------------------------------------ rate circuit
def test_settled_potentials_match_numpy_fixed_point(rate_sim) -> None:
    sim, _ = rate_sim
    rng = np.random.default_rng(5)
    weights = _weights(SIZES, 1)
    x = rng.uniform(-1, 1, SIZES[0])
    target = rng.uniform(-1, 1, SIZES[-1])
    keys = [*mc.state_keys(SIZES, topdown="learned")]
    keys += ["layer1.vB", "layer1.vA_td", "layer1.vA_int", "inter1.vI", "layer3.vB"]
    result = sim.run(
        values=mc.weight_values(weights),
        timed=_timed(x, SIZES[-1], DURATION, targets=target, nudge=1.0),
        read=tuple(keys),
    )
    reference = _fixed_point(PARAMS, SIZES, weights, x, nudge=1.0, u_target=target)
    for key in (
        "layer1.u",
        "layer2.u",
        "layer3.u",
        "inter1.uI",
        "inter2.uI",
        "layer1.vB",
        "layer1.vA_td",
        "layer1.vA_int",
        "inter1.vI",
        "layer3.vB",
    ):
        np.testing.assert_allclose(
            result.state[key], reference[key], rtol=0, atol=1e-4, err_msg=key
        )
    assert np.max(np.abs(reference["layer1.vA_td"])) > 0.05  # a non-trivial state
    np.testing.assert_allclose(result.state["layer0.r0"], x, atol=1e-12)
    # learning rates default to 0: no weight moved
    for name, m in weights.items():
        np.testing.assert_array_equal(result.state[f"{name}.w"], mc.matrix_to_w(m))
    # monitors sample u(t) with the sums of the same step: the settled samples agree as well
    rec = result.monitors["layer2"]
    assert rec["u"].shape == (int(DURATION), SIZES[2])
    np.testing.assert_allclose(rec["u"][-1], reference["layer2.u"], atol=1e-4)
    np.testing.assert_allclose(
        rec["vA"][-1], reference["layer2.vA_td"] + reference["layer2.vA_int"], atol=1e-4
    )


def test_closed_form_lateral_weights_silence_the_apical_dendrites(rate_sim) -> None:
    sim, _ = rate_sim
    x = np.random.default_rng(6).uniform(-1, 1, SIZES[0])
    weights = _weights(SIZES, 2)
    read = ("layer1.vA_td", "layer2.vA_td", "layer1.u", "layer2.u")
    tv = _timed(x, SIZES[-1], DURATION)
    random_lateral = sim.run(values=mc.weight_values(weights), timed=tv, read=read)
    weights.update(mc.self_predicting_weights(weights, PARAMS, SIZES))
    closed = sim.run(values=mc.weight_values(weights), timed=tv, read=read)
    for k in (1, 2):
        va = closed.monitors[f"layer{k}"]["vA"][-1]
        td = np.max(np.abs(closed.state[f"layer{k}.vA_td"]))
        assert td > 0.05
        assert np.max(np.abs(va)) < 1e-6 * td
        assert np.max(np.abs(random_lateral.monitors[f"layer{k}"]["vA"][-1])) > 1e-2 * td
    # interneurons mirror the next layer
    np.testing.assert_allclose(
        closed.monitors["inter1"]["uI"][-1], closed.state["layer2.u"], atol=1e-9
    )


def test_lateral_plasticity_learns_the_self_predicting_state(rate_sim) -> None:
    """From random lateral weights, patterns every 100 ms, only W^IP and W^PI learn
    (η = 0.01/ms, 40 s): the settled apical RMS on held-out patterns falls ≥ 10-fold."""
    sim, _ = rate_sim
    rng = np.random.default_rng(11)
    weights = _weights(SIZES, 3)
    held_out = _timed(rng.uniform(-1, 1, (ROWS, SIZES[0])), SIZES[-1], DURATION)
    before = _settled_rms(sim.run(values=mc.weight_values(weights), timed=held_out), range(1, 3))
    keys = mc.state_keys(SIZES, topdown="learned")
    values = {
        **mc.weight_values(weights),
        **mc.eta_values(SIZES, topdown="learned", IP=0.01, PI=0.01),
    }
    for epoch in range(40):
        tv = _timed(rng.uniform(-1, 1, (ROWS, SIZES[0])), SIZES[-1], DURATION)
        values.update(sim.run(values=values, timed=tv, read=keys, seed=epoch).state)
    learned = mc.weights_from_state(values, SIZES, "learned")
    for name in ("W1", "W2", "W3", "B1", "B2"):  # η = 0: fixed
        np.testing.assert_array_equal(learned[name], weights[name])
    after = _settled_rms(sim.run(values=mc.weight_values(learned), timed=held_out), range(1, 3))
    assert after < before / 10, (before, after)


def test_schedule_sums_then_factors_then_synapses_then_neurons(rate_sim) -> None:
    _, captured = rate_sim
    table = execution_order(captured["build"].objects)
    position: dict[str, list[int]] = {}
    for index, (kind, _name, _when, _order) in enumerate(table):
        position.setdefault(kind, []).append(index)
    order = ["rate", "summed", "factors", "monitor", "synapse_update", "neuron_update"]
    for first, second in zip(order, order[1:], strict=False):
        assert max(position[first]) < min(position[second]), (first, second, table)
    n_syn = sum(1 for o in captured["build"].objects if type(o).__name__ == "Synapses")
    assert len(position["summed"]) == n_syn  # one summed target per Synapses (rate, untied)


def test_plastic_run_matches_an_euler_twin_with_the_same_schedule(rate_sim) -> None:
    """Every rule on (incl. learned top-down and the plasticity gate): the final state after
    10,000 steps equals a numpy forward-Euler twin of the documented schedule. A rule reading
    potentials one step late, or sums from the previous step, would fail this."""
    sim, _ = rate_sim
    rng = np.random.default_rng(21)
    weights = _weights(SIZES, 4)
    eta = {name: 0.02 for name in weights}
    gate = (np.arange(int(DURATION / GATE_MS)) % 10 >= 2).astype(float)  # 20 ms learning lag
    tv = _timed(rng.uniform(-1, 1, (ROWS, SIZES[0])), SIZES[-1], DURATION, plastic=gate)
    keys = mc.state_keys(SIZES, topdown="learned")
    values = {**mc.weight_values(weights), **{f"{k}.eta": v for k, v in eta.items()}}
    result = sim.run(values=values, timed=tv, read=keys)
    twin = _euler_twin(PARAMS, SIZES, weights, eta, tv, round(DURATION / DT))
    for key in keys:
        np.testing.assert_allclose(result.state[key], twin[key], rtol=1e-9, atol=1e-12, err_msg=key)
    moved = np.max(np.abs(result.state["WPI1.w"] - mc.matrix_to_w(weights["WPI1"])))
    assert moved > 1e-3


def test_wrong_sizes_are_refused_before_running(rate_sim) -> None:
    sim, _ = rate_sim
    tv = _timed(np.zeros(SIZES[0]), SIZES[-1], DURATION)
    with pytest.raises(NeurosimError, match="needs 30 values"):
        sim.run(values={"W1.w": np.zeros(29)}, timed=tv)
    with pytest.raises(NeurosimError, match="needs 4 values"):
        sim.run(values={"inter1.uI": np.zeros(5)}, timed=tv)
    with pytest.raises(NeurosimError, match="single shared value"):
        sim.run(values={"WIP1.eta": np.ones(2)}, timed=tv)
    bad = dict(tv)
    bad["inputs"] = tv["inputs"][:, :-1]
    with pytest.raises(NeurosimError, match="shape"):
        sim.run(timed=bad)
    assert sim.compilations <= 1


# ------------------------------------------------------------------------------ prospective
def test_prospective_plastic_run_matches_the_euler_twin(prospective_sim) -> None:
    """Prospective neurons, every rule on (learned top-down, gate with a learning lag) and
    nudging on in every other pattern (the output's τ changes with it): after 10,000 steps the
    state equals the numpy twin's to 1e-9, and the prospective rates moved the weights."""
    sim = prospective_sim
    rng = np.random.default_rng(22)
    weights = _weights(SIZES, 5)
    eta = {name: 0.02 for name in weights}
    gate = (np.arange(int(DURATION / GATE_MS)) % 10 >= 1).astype(float)  # 10 ms learning lag
    tv = _timed(rng.uniform(-1, 1, (ROWS, SIZES[0])), SIZES[-1], DURATION, plastic=gate)
    tv["targets"] = rng.uniform(-1, 1, (ROWS, SIZES[-1]))
    tv["nudge"] = (np.arange(ROWS) % 2).astype(float)
    keys = mc.state_keys(SIZES, topdown="learned", neuron="prospective")
    values = {**mc.weight_values(weights), **{f"{k}.eta": v for k, v in eta.items()}}
    result = sim.run(values=values, timed=tv, read=keys)
    twin = _euler_twin(PRO_PARAMS, SIZES, weights, eta, tv, round(DURATION / DT))
    for key in keys:
        np.testing.assert_allclose(result.state[key], twin[key], rtol=1e-9, atol=1e-12, err_msg=key)
    instantaneous = _euler_twin(PARAMS, SIZES, weights, eta, tv, round(DURATION / DT))
    for name in ("W1", "B1", "WPI1", "WIP1"):  # every rule moved, differently from φ(u)'s
        moved = result.state[f"{name}.w"] - mc.matrix_to_w(weights[name])
        assert np.max(np.abs(moved)) > 1e-3, name
        other = instantaneous[f"{name}.w"] - mc.matrix_to_w(weights[name])
        assert np.max(np.abs(moved - other)) > 1e-3 * np.max(np.abs(moved)), name


# ------------------------------------------------------------------------------ tied, soft-ReLU
def test_tied_topdown_softrelu_fixed_point_and_noise(tied_sim) -> None:
    rng = np.random.default_rng(8)
    weights = mc.random_weights(TIED_SIZES, rng, topdown="tied", scale=2.0)
    x = rng.uniform(0, 2, TIED_SIZES[0])
    tv = _timed(x, TIED_SIZES[-1], TIED_DURATION)
    keys = ("layer1.u", "layer2.u", "inter1.uI", "layer1.vA_td", "layer1.vA_int", "layer1.vB")
    result = tied_sim.run(
        values={**mc.weight_values(weights), "layer1.sigma": 0.0}, timed=tv, read=keys
    )
    reference = _fixed_point(TIED_PARAMS, TIED_SIZES, weights, x)
    for key in keys:
        np.testing.assert_allclose(result.state[key], reference[key], atol=1e-4, err_msg=key)
    np.testing.assert_allclose(  # vA_td = W2ᵀ φ(u2): the forward weights carried backwards
        result.state["layer1.vA_td"],
        weights["W2"].T @ TIED_PARAMS.phi_numpy(result.state["layer2.u"]),
        atol=1e-9,
    )
    weights.update(mc.self_predicting_weights(weights, TIED_PARAMS, TIED_SIZES))
    closed = tied_sim.run(
        values={**mc.weight_values(weights), "layer1.sigma": 0.0}, timed=tv, read=keys
    )
    va = closed.state["layer1.vA_td"] + closed.state["layer1.vA_int"]
    assert np.max(np.abs(va)) < 1e-6 * np.max(np.abs(closed.state["layer1.vA_td"]))
    noisy = tied_sim.run(values={**mc.weight_values(weights), "layer1.sigma": 0.3}, timed=tv)
    u = noisy.monitors["layer1"]["u"][100:]
    # Ornstein-Uhlenbeck: std ≈ σ/sqrt(2 g) with g ≈ g_lk + g_B + g_A (loosely: feedback is weak)
    expected = 0.3 / np.sqrt(2 * 1.9)
    assert 0.5 * expected < np.mean(np.std(u, axis=0)) < 1.5 * expected


# ------------------------------------------------------------------------------ spiking read-out
def test_spiking_readout_fires_and_traces_carry_the_rates(spike_sim) -> None:
    x = np.array([0.4, 0.6, 0.8])
    weights = mc.random_weights(SPIKE_SIZES, np.random.default_rng(9), scale=1.0)
    weights["W1"] = np.ones((SPIKE_SIZES[1], SPIKE_SIZES[0]))
    tv = _timed(x, SPIKE_SIZES[-1], SPIKE_DURATION)
    result = spike_sim.run(values=mc.weight_values(weights), timed=tv, seed=3)
    for group in ("layer0", "layer1", "layer2", "inter1"):
        assert len(result.monitors[f"spikes_{group}"]["t"]) > 0, group
    # input spike counts: Poisson with rate r0 · max_rate_hz (r0 settles within a few τ_in)
    counts = np.bincount(result.monitors["spikes_layer0"]["i"], minlength=3)
    expected = x * TIED_PARAMS.max_rate_hz * (SPIKE_DURATION - TIED_PARAMS.tau_in) / 1000
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    # the traces are normalised: vB1 = Σ_i x_i has the mean Σ_i r0_i
    vb = result.monitors["layer1"]["vB"][30:]
    assert abs(np.mean(vb) - x.sum()) < 0.15 * x.sum()
    again = spike_sim.run(values=mc.weight_values(weights), timed=tv, seed=3)
    np.testing.assert_array_equal(
        again.monitors["spikes_layer1"]["t"], result.monitors["spikes_layer1"]["t"]
    )


def test_release_failure_one_silences_transmission(spike_sim) -> None:
    x = np.array([0.4, 0.6, 0.8])
    weights = mc.random_weights(SPIKE_SIZES, np.random.default_rng(9), scale=1.0)
    values = {**mc.weight_values(weights), **mc.p_fail_values(SPIKE_SIZES, 1.0)}
    result = spike_sim.run(values=values, timed=_timed(x, SPIKE_SIZES[-1], SPIKE_DURATION), seed=4)
    assert len(result.monitors["spikes_layer0"]["t"]) > 100  # the inputs do fire
    assert np.all(result.monitors["layer1"]["vB"] == 0.0)
    assert np.all(result.monitors["layer1"]["vA"] == 0.0)
    assert np.all(result.monitors["layer2"]["vB"] == 0.0)


def test_spiking_readout_with_prospective_neurons() -> None:
    """Prospective neurons under the spiking read-out: the inputs fire at r = inputs(t − dt)
    from the first step on (no 3 ms filter), the traces carry those rates, every population
    fires, and the hidden cells' prospective potentials stay finite and follow their drive."""
    params = mc.MicrocircuitParams(neuron="prospective")
    sim, _ = _simulation(
        params, SPIKE_SIZES, SPIKE_DURATION, "test-mc-spike-prospective", readout="spiking",
        record={"layer1": ("u", "ub", "vB"), "inter1": ("uI",), "layer2": ("u",)},
    )  # fmt: skip
    x = np.array([0.4, 0.6, 0.8])
    weights = mc.random_weights(SPIKE_SIZES, np.random.default_rng(9), scale=1.0)
    weights["W1"] = np.ones((SPIKE_SIZES[1], SPIKE_SIZES[0]))
    tv = _timed(x, SPIKE_SIZES[-1], SPIKE_DURATION)
    result = sim.run(values=mc.weight_values(weights), timed=tv, seed=3)
    for group in ("layer0", "layer1", "layer2", "inter1"):
        assert len(result.monitors[f"spikes_{group}"]["t"]) > 0, group
    counts = np.bincount(result.monitors["spikes_layer0"]["i"], minlength=3)
    expected = x * params.max_rate_hz * (SPIKE_DURATION - DT) / 1000
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    rec = result.monitors["layer1"]
    assert abs(np.mean(rec["vB"][30:]) - x.sum()) < 0.15 * x.sum()
    assert np.all(np.isfinite(rec["ub"]))
    # ŭ is the drive of the previous step: its mean is that of u (which low-passes it)
    ub, u = rec["ub"][30:], rec["u"][30:]
    print(f"\n[spiking prospective] mean ŭ {np.mean(ub):.4f}, mean u {np.mean(u):.4f}, "
          f"std ŭ {np.std(ub):.4f}, std u {np.std(u):.4f}")  # fmt: skip
    assert np.all(np.abs(np.mean(ub, 0) - np.mean(u, 0)) < 5 * np.std(ub, 0) / np.sqrt(len(ub)))
    assert np.all(np.std(ub, 0) > np.std(u, 0))  # ŭ follows the spikes u low-passes

"""The layered Hopfield circuit (Equilibrium Propagation) on the engine, number for number against
its torch twin :mod:`models.equilibrium_propagation`: fixed points, single steps, the continual
(ds/dt) rule against the twin's continual and two-phase updates, the in-run two-phase latch
against the twin's ``ep_update``, the schedule, size checks, Langevin noise, and the spiking
read-out with release failure.

Two structures compile once each (cpp_standalone): a 10-8-4 rate circuit with both rules, the
continual accumulators, Langevin noise and per-example events (three examples per run, each
40 ms free and two 20 ms nudged phases), and the same sizes with the spiking read-out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch

from circuits import hopfield as hp
from models import equilibrium_propagation as ep
from neurosim.engine import CircuitBuild, Simulation
from neurosim.errors import NeurosimError
from neurosim.schedule import execution_order

SIZES = [10, 8, 4]
DT = 0.2  # ms; τ = 1 ms, so the twin's dt is 0.2 too
FREE, NUDGED = 40.0, 20.0
N_FREE, N_NUDGED = round(FREE / DT), round(NUDGED / DT)
P = 3  # examples per run
RULES = ("two-phase", "continual")
TWIN = ep.EPParameters(tuple(SIZES), dt=DT)
SPIKE_DURATION = 200.0


# ------------------------------------------------------------------------------ helpers


def _build(params, sizes, timed, *, dt_ms, **structure):  # noqa: ANN001, ANN003, ANN202
    """One build of the registered circuit with the structure's fields as keywords."""
    return hp.CIRCUIT.build(
        hp.HopfieldStructure(sizes=sizes, **structure), params, timed, dt_ms=dt_ms
    )


def _examples(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (P, SIZES[0])), rng.uniform(0, 1, (P, SIZES[-1]))


def _layout(x, d, beta, **kwargs) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    return hp.example_timed(
        x, d, beta, free_ms=FREE, nudged_ms=NUDGED, dt_ms=DT, phases=3, **kwargs
    )


EXAMPLE_MS = _layout(*_examples(0), 0.5)[2]
STEPS = round(EXAMPLE_MS / DT)  # per example: N_FREE free, then 2·N_NUDGED nudged


def _weights(seed: int = 2) -> dict[str, torch.Tensor]:
    """Twin weights (Glorot × 0.5, biases U(−0.3, 0.3)); seed 2 settles to < 1e-7 in a phase."""
    return ep.init_weights(SIZES, seed=seed, scale=0.5, bias_scale=0.3)


def _np(weights: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in weights.items()}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def _state(s1: np.ndarray, s2: np.ndarray) -> ep.HopfieldState:
    return ep.HopfieldState((torch.tensor(np.atleast_2d(s1)), torch.tensor(np.atleast_2d(s2))))


def _correlations(x: np.ndarray, state: ep.HopfieldState) -> dict[str, np.ndarray]:
    r = [np.clip(x, 0, 1)] + [np.clip(s.numpy()[0], 0, 1) for s in state.s]
    out = {f"W{k}": np.outer(r[k], r[k - 1]) for k in range(1, len(r))}
    out.update({f"b{k}": r[k] for k in range(1, len(r))})
    return out


def _circuit_update(state: Mapping[str, np.ndarray], prefix: tuple[str, str]) -> dict:
    """``W{k}`` from the synaptic variable prefix[0], ``b{k}`` from the layer variable prefix[1]."""
    out = {}
    for name, shape in hp.weight_shapes(SIZES).items():
        if name.startswith("W"):
            out[name] = hp.w_to_matrix(state[f"{name}.{prefix[0]}"], *shape)
        else:
            out[name] = state[f"layer{name[1:]}.{prefix[1]}"]
    return out


def _accumulator_keys() -> tuple[str, ...]:
    return tuple(f"W{k}.dW" for k in (1, 2)) + tuple(f"layer{k}.db" for k in (1, 2))


@pytest.fixture(scope="module")
def sim() -> tuple[Simulation, dict[str, CircuitBuild]]:
    captured: dict[str, CircuitBuild] = {}
    timed, timed_dt, example_ms = _layout(*_examples(0), 0.5)

    def builder(tv: Mapping[str, np.ndarray]) -> CircuitBuild:
        captured["build"] = _build(
            hp.HopfieldParams(),
            SIZES,
            tv,
            dt_ms=DT,
            plasticity=RULES,
            example_ms=example_ms,
            measure=True,
            noise=True,
            record={"layer1": ("s", "b"), "layer2": ("s", "b")},
            weight_record_dt_ms=example_ms,
            timed_dt_ms=timed_dt,
        )
        return captured["build"]

    simulation = Simulation(
        builder,
        device="cpp_standalone",
        duration_ms=hp.duration_ms(P, example_ms, DT),
        dt_ms=DT,
        initial_timed=timed,
        label="test-hopfield-rate",
    )
    return simulation, captured


@pytest.fixture(scope="module")
def spike_sim() -> tuple[Simulation, dict[str, CircuitBuild]]:
    captured: dict[str, CircuitBuild] = {}
    x = np.full((1, SIZES[0]), 0.5)

    def builder(tv: Mapping[str, np.ndarray]) -> CircuitBuild:
        captured["build"] = _build(
            hp.HopfieldParams(),
            SIZES,
            tv,
            dt_ms=DT,
            readout="spiking",
            record={"layer1": ("up", "down"), "layer2": ("up",)},
        )
        return captured["build"]

    simulation = Simulation(
        builder,
        device="cpp_standalone",
        duration_ms=SPIKE_DURATION,
        dt_ms=DT,
        initial_timed=hp.timed_values(x, SIZES[-1]),
        label="test-hopfield-spike",
    )
    return simulation, captured


# ------------------------------------------------------------------------------ layout and checks
def test_layout_helpers() -> None:
    assert hp.weight_shapes(SIZES) == ep.expected_shapes(SIZES)
    w = _np(_weights())
    values = hp.weight_values(w, SIZES)
    assert set(values) == {"W1.w", "W2.w", "layer1.b", "layer2.b"}
    np.testing.assert_array_equal(values["W1.w"][3 * 10 + 7], w["W1"][3, 7])  # post 3, pre 7
    back = hp.weights_from_state(values, SIZES)
    for name in w:
        np.testing.assert_array_equal(back[name], w[name])
    with pytest.raises(ValueError, match=r"W2 has shape \(8, 4\), expected \(4, 8\)"):
        hp.weight_values({**w, "W2": w["W2"].T}, SIZES)
    assert hp.eta_values(SIZES, two_phase=[0.1, 0.2]) == {
        "W1.eta": 0.1,
        "layer1.eta_b": 0.1,
        "W2.eta": 0.2,
        "layer2.eta_b": 0.2,
    }
    assert set(hp.eta_values(SIZES, continual=0.1)) == {
        "W1.eta_c",
        "layer1.eta_bc",
        "W2.eta_c",
        "layer2.eta_bc",
    }
    assert hp.timed_names() == ("inputs", "targets", "beta")
    assert hp.timed_names(RULES, 80.0) == (
        "inputs",
        "targets",
        "beta",
        "plastic",
        "latch",
        "restart",
    )
    timed, timed_dt, example_ms = hp.example_timed(
        np.zeros((2, 10)),
        np.zeros((2, 4)),
        [0.5, 0.25],
        free_ms=4.0,
        nudged_ms=2.0,
        dt_ms=1.0,
        symmetric=[False, True],
    )
    assert example_ms == 8.0 and timed_dt["beta"] == 2.0 and timed_dt["inputs"] == 8.0
    # the last row is the neutral one for the step after the last example
    np.testing.assert_array_equal(timed["beta"], [0, 0, 0.5, 0.5, 0, 0, -0.25, 0.25, 0])
    np.testing.assert_array_equal(timed["latch"], [1, 1, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(timed["plastic"], [0, 0, 1, 1, 0, 0, 0, 0.5, 0])


def test_invalid_arguments_are_refused() -> None:
    tv = hp.timed_values(np.zeros((1, 10)), 4)
    params = hp.HopfieldParams()
    with pytest.raises(ValueError, match="readout"):
        _build(params, SIZES, tv, dt_ms=DT, readout="bursts")
    with pytest.raises(ValueError, match="spiking"):
        _build(params, SIZES, tv, dt_ms=DT, p_fail=0.5)
    with pytest.raises(ValueError, match="example_ms"):
        _build(params, SIZES, {**tv, "latch": np.zeros(1)}, dt_ms=DT, plasticity=["two-phase"])
    with pytest.raises(ValueError, match="plasticity rules"):
        _build(params, SIZES, tv, dt_ms=DT, plasticity=["hebb"])
    with pytest.raises(ValueError, match="continual"):
        _build(params, SIZES, tv, dt_ms=DT, measure=True)
    with pytest.raises(ValueError, match="missing the TimedArray input 'plastic'"):
        _build(params, SIZES, tv, dt_ms=DT, plasticity=["continual"])
    with pytest.raises(ValueError, match="unknown TimedArray"):
        _build(params, SIZES, {**tv, "plastic": np.zeros(1)}, dt_ms=DT)
    with pytest.raises(ValueError, match="inputs"):
        _build(params, [9, 8, 4], tv, dt_ms=DT)
    with pytest.raises(ValueError, match="multiple of dt"):
        _build(params, SIZES, {**tv, "restart": np.zeros(1)}, dt_ms=DT, example_ms=1.1)
    with pytest.raises(ValueError, match="sizes"):
        _build(params, [10], tv, dt_ms=DT)


# ------------------------------------------------------------------------------ settling
@pytest.fixture(scope="module")
def settled(sim):
    """Three examples, no learning, β = +0.5, −0.5, +1; the first starts from a state partly
    outside [0, 1] (no restart), the others from 0."""
    simulation, _ = sim
    x, d = _examples(1)
    betas = [0.5, -0.5, 1.0]
    timed, timed_dt, _ = _layout(x, d, betas, restart=[0.0, 1.0, 1.0])
    start = np.random.default_rng(3).uniform(-0.5, 1.5, sum(SIZES[1:]))
    values = {
        **hp.weight_values(_np(_weights()), SIZES),
        "layer1.s": start[: SIZES[1]],
        "layer2.s": start[SIZES[1] :],
    }
    keys = (*hp.state_keys(SIZES), "layer1.rl", "layer2.rl")
    result = simulation.run(values=values, timed=timed, read=keys)
    return result, x, d, betas, start, timed, timed_dt


def test_fixed_points_match_the_twin(settled) -> None:
    """Free and nudged (β > 0 and β < 0) states at the end of each phase equal the twin's exact
    fixed points within 1e-4 (measured: ~1e-8)."""
    result, x, d, betas, start, _, _ = settled
    w = _weights()
    s1, s2 = result.monitors["layer1"]["s"], result.monitors["layer2"]["s"]
    worst = 0.0
    for k, beta in enumerate(betas):
        init = _state(start[: SIZES[1]], start[SIZES[1] :]) if k == 0 else None
        free = ep.fixed_point(TWIN, w, x[k : k + 1], state=init).state
        nudged = ep.fixed_point(TWIN, w, x[k : k + 1], d[k : k + 1], beta, state=free).state
        m_free, m_end = k * STEPS + N_FREE, (k + 1) * STEPS
        for m, ref in ((m_free, free), (m_end, nudged)):
            got = _state(s1[m], s2[m])
            worst = max(worst, ep.state_distance(got, ref))
        assert ep.state_distance(free, nudged) > 0.05  # the nudge moves the state
        z = torch.cat(free.s, 1)
        assert bool(((z > 0) & (z < 1)).any()) and bool(((z == 0) | (z == 1)).any())
    assert worst < 1e-4, worst
    # the latch kept the last free state; no rate was given, so no weight moved
    np.testing.assert_array_equal(result.state["layer1.rl"], s1[(P - 1) * STEPS + N_FREE])
    np.testing.assert_array_equal(result.state["W1.w"], hp.weight_values(_np(w))["W1.w"])


def test_every_step_is_the_twins_projected_euler_step(settled) -> None:
    """s(t + dt) = twin.step(s(t)) for every recorded step (inputs, β(t), targets of that step),
    including the first step from a state outside the box; where an example restarts, the step
    starts from 0."""
    result, x, d, _, _, timed, timed_dt = settled
    w = _weights()
    s1, s2 = result.monitors["layer1"]["s"], result.monitors["layer2"]["s"]
    beta_per_step = np.repeat(timed["beta"], round(timed_dt["beta"] / DT))
    assert len(beta_per_step) == P * STEPS + round(timed_dt["beta"] / DT)
    worst = 0.0
    for m in range(P * STEPS):
        k = m // STEPS
        before = _state(s1[m], s2[m])
        if m % STEPS == 0 and timed["restart"][k]:
            before = ep.zero_state(SIZES)
        nxt = ep.step(TWIN, w, before, x[k : k + 1], d[k : k + 1], beta_per_step[m])
        worst = max(worst, ep.state_distance(nxt, _state(s1[m + 1], s2[m + 1])))
    assert worst < 1e-12, worst
    assert np.any(s1[0] < 0) and np.all((s1[1:] >= 0) & (s1[1:] <= 1))


# ------------------------------------------------------------------------------ schedule
def test_schedule_orders_events_rates_sums_dynamics_synapses_neurons(sim) -> None:
    _, captured = sim
    table = execution_order(captured["build"].objects)
    position: dict[str, list[int]] = {}
    for index, (kind, _name, _when, _order) in enumerate(table):
        position.setdefault(kind, []).append(index)
    order = [
        "monitor",
        "apply",
        "restart",
        "rate",
        "summed",
        "dynamics",
        "synapse_update",
        "update",
    ]
    for first, second in zip(order, order[1:], strict=False):
        assert max(position[first]) < min(position[second]), (first, second, table)
    assert len(position["summed"]) == 3  # up (W1, W2), down (W2)
    assert len(position["apply"]) == 4  # W1, W2, layer1, layer2
    runners = {o.name: o for g in captured["build"].objects for o in g.contained_objects}
    for name in ("W1_apply", "layer2_apply", "layer1_restart"):
        assert float(runners[name].clock.dt) == pytest.approx(EXAMPLE_MS * 1e-3)
    assert float(runners["layer1_dynamics"].clock.dt) == pytest.approx(DT * 1e-3)


# ------------------------------------------------------------------------------ continual rule
def _continual_run(simulation, centred: float, eta_c: float = 0.0):
    x, d = _examples(4)
    betas = [0.5, -0.5, 1.0]
    timed, _, _ = _layout(x, d, betas)
    values = {
        **hp.weight_values(_np(_weights()), SIZES),
        **hp.eta_values(SIZES, continual=eta_c),
        "W1.centred": centred,
        "W2.centred": centred,
    }
    keys = (*hp.state_keys(SIZES), *_accumulator_keys())
    return simulation.run(values=values, timed=timed, read=keys), x, d, betas


def test_continual_rule_integrates_the_twins_continual_and_two_phase_updates(sim) -> None:
    """Weights held fixed (eta_c = 0), the accumulated ∫ plastic/β · d(ρ_i ρ_j) over the three
    nudged phases equals the twin: explicit Euler (centred = 0) = ``continual_update``'s product
    rule, centred = ``telescoped`` = ``ep_update`` of the same phases (1e-9), and the exact
    two-phase update within 1e-3 (settled phases). Reading ρ'ṡ one step late, or ρ after the
    step, breaks the first equality; a wrong 1/β sign breaks all of them."""
    simulation, _ = sim
    w = _weights()
    euler, x, d, betas = _continual_run(simulation, 0.0)
    centred, _, _, _ = _continual_run(simulation, 1.0)
    twin_steps = 2 * N_NUDGED
    product, telescoped, two_phase, exact = {}, {}, {}, {}
    phases = ep.EPParameters(tuple(SIZES), dt=DT, free_steps=N_FREE, nudged_steps=twin_steps)
    for k, beta in enumerate(betas):
        xk, dk = x[k : k + 1], d[k : k + 1]
        free = ep.relax(TWIN, w, xk, steps=N_FREE).state
        cu = ep.continual_update(TWIN, w, xk, dk, beta=beta, steps=twin_steps, free=free)
        fixed = ep.ep_update(TWIN, w, xk, dk, beta=beta).update
        run = ep.ep_update(phases, w, xk, dk, beta=beta, exact=False).update
        for acc, src in ((product, cu.product_rule), (telescoped, cu.telescoped)):
            for name, v in src.items():
                acc[name] = acc.get(name, 0) + v.numpy()
        for acc, src in ((two_phase, run), (exact, fixed)):
            for name, v in src.items():
                acc[name] = acc.get(name, 0) + v.numpy()
    got_euler = _circuit_update(euler.state, ("dW", "db"))
    got_centred = _circuit_update(centred.state, ("dW", "db"))
    for name in product:
        assert _rel(got_euler[name], product[name]) < 1e-9, name
        assert _rel(got_centred[name], telescoped[name]) < 1e-9, name
        assert _rel(got_centred[name], two_phase[name]) < 1e-9, name
        assert _rel(got_centred[name], exact[name]) < 1e-3, name
    # where both ends move (W2; the input is clamped), explicit Euler misses Σ Δρ_i Δρ_j / β:
    # O(β dt), visible but small here
    assert 1e-6 < _rel(got_euler["W2"], telescoped["W2"]) < 0.1
    np.testing.assert_array_equal(euler.state["W2.w"], hp.weight_values(_np(w))["W2.w"])


def test_continual_rule_moves_the_weights_by_eta_times_its_update(sim) -> None:
    simulation, _ = sim
    w0 = hp.weight_values(_np(_weights()), SIZES)
    eta_c = 1e-3
    result, _, _, _ = _continual_run(simulation, 0.0, eta_c=eta_c)
    measured = _circuit_update(result.state, ("dW", "db"))
    moved = {
        name: (hp.weights_from_state(result.state, SIZES)[name] - before)
        for name, before in hp.weights_from_state(w0, SIZES).items()
    }
    for name in measured:
        # the weights change during the phases, so the two differ at O(eta_c)
        assert _rel(moved[name], eta_c * measured[name]) < 1e-2, name


# ------------------------------------------------------------------------------ two-phase latch
def test_in_run_two_phase_latch_makes_the_twins_ep_updates(sim) -> None:
    """Three examples in one run with learning rates (0.2, 0.1): two-phase at β = 0.5, symmetric
    at β = 0.5 (latch in the −β phase, difference over 2β), two-phase at β = −0.4. Each in-run
    update (read from the weight and bias monitors) equals lr · the twin's update of the same
    phases computed on the circuit's weights of that example (1e-9), and the symmetric one the
    twin's exact symmetric ``ep_update`` within 1e-3."""
    simulation, _ = sim
    x, d = _examples(5)
    betas = [0.5, 0.5, -0.4]
    lr = [0.2, 0.1]
    timed, _, _ = _layout(x, d, betas, symmetric=[False, True, False])
    values = {**hp.weight_values(_np(_weights()), SIZES), **hp.eta_values(SIZES, two_phase=lr)}
    result = simulation.run(values=values, timed=timed, read=hp.state_keys(SIZES))
    mon = result.monitors

    def weights_at(sample: int) -> dict[str, np.ndarray]:  # before the apply of that example
        state = {f"W{k}.w": mon[f"W{k}"]["w"][sample] for k in (1, 2)}
        state.update({f"layer{k}.b": mon[f"layer{k}"]["b"][sample * STEPS] for k in (1, 2)})
        return hp.weights_from_state(state, SIZES)

    sequence = [weights_at(k + 1) for k in range(P)] + [hp.weights_from_state(result.state, SIZES)]
    two_phase = ep.EPParameters(tuple(SIZES), dt=DT, free_steps=N_FREE, nudged_steps=2 * N_NUDGED)
    for k, beta in enumerate(betas):
        w = {name: torch.tensor(v) for name, v in sequence[k].items()}
        xk, dk = x[k : k + 1], d[k : k + 1]
        if k == 1:  # symmetric: the twin's phases step by step, then its exact update
            s0 = ep.relax(TWIN, w, xk, steps=N_FREE).state
            minus = ep.relax(TWIN, w, xk, dk, -beta, state=s0, steps=N_NUDGED).state
            plus = ep.relax(TWIN, w, xk, dk, beta, state=minus, steps=N_NUDGED).state
            hi, lo = _correlations(xk[0], plus), _correlations(xk[0], minus)
            reference = {name: (hi[name] - lo[name]) / (2 * beta) for name in hi}
            exact = ep.ep_update(TWIN, w, xk, dk, beta=beta, variant="symmetric").update
        else:
            reference = {
                name: v.numpy()
                for name, v in ep.ep_update(
                    two_phase, w, xk, dk, beta=beta, exact=False
                ).update.items()
            }
            exact = None
        for name, ref in reference.items():
            rate = lr[int(name[1:]) - 1]
            change = sequence[k + 1][name] - sequence[k][name]
            assert _rel(change, rate * ref) < 1e-9, (k, name)
            if exact is not None:
                assert _rel(change, rate * exact[name].numpy()) < 1e-3, (k, name)
        assert np.linalg.norm(sequence[k + 1]["W2"] - sequence[k]["W2"]) > 1e-3


def test_input_drive_summed_once_per_example_changes_nothing() -> None:
    """A two-phase-only rate build with the input sampled once per example sums W1 ρ(x) once per
    example (its own clock); the same build with the input sampled every step sums it every step.
    Both give the same weights, biases and states after three examples of in-run learning
    (1e-12), so the saving (most of a step's synaptic work) changes no number."""
    x, d = _examples(7)
    timed, timed_dt, example_ms = _layout(x, d, [0.5, 0.5, -0.4])
    names = hp.timed_names(("two-phase",), example_ms)
    timed = {name: timed[name] for name in names}
    timed_dt = {name: timed_dt[name] for name in names}
    per_step = {**timed, "inputs": np.repeat(timed["inputs"], STEPS, axis=0)}
    values = {
        **hp.weight_values(_np(_weights()), SIZES),
        **hp.eta_values(SIZES, two_phase=[0.2, 0.1]),
    }
    out = {}
    for label, tv, inputs_dt in (
        ("per-example", timed, example_ms),
        ("per-step", per_step, DT),
    ):
        captured: dict[str, CircuitBuild] = {}

        def builder(
            tvs: Mapping[str, np.ndarray], inputs_dt: float = inputs_dt, captured: dict = captured
        ) -> CircuitBuild:
            captured["build"] = _build(
                hp.HopfieldParams(), SIZES, tvs, dt_ms=DT, plasticity=("two-phase",),
                example_ms=example_ms, record={"layer1": ("s",), "layer2": ("s",)},
                timed_dt_ms={**timed_dt, "inputs": inputs_dt},
            )  # fmt: skip
            return captured["build"]

        simulation = Simulation(
            builder, device="cpp_standalone", duration_ms=hp.duration_ms(P, example_ms, DT),
            dt_ms=DT, initial_timed=tv, label=f"test-hopfield-drive-{label}",
        )  # fmt: skip
        result = simulation.run(values=values, timed=tv, read=hp.state_keys(SIZES))
        w1 = next(o for o in captured["build"].objects if getattr(o, "name", "") == "W1")
        clock_dt = float(next(iter(w1.summed_updaters.values())).clock.dt / 1e-3)  # ms
        out[label] = (result, clock_dt)
    (a, dt_a), (b, dt_b) = out["per-example"], out["per-step"]
    assert dt_a == pytest.approx(example_ms) and dt_b == pytest.approx(DT)
    for key in hp.state_keys(SIZES):
        np.testing.assert_allclose(a.state[key], b.state[key], rtol=0, atol=1e-12, err_msg=key)
    for group in ("layer1", "layer2"):
        np.testing.assert_allclose(a.monitors[group]["s"], b.monitors[group]["s"], atol=1e-12)
    w0 = hp.weight_values(_np(_weights()), SIZES)["W1.w"]
    assert np.linalg.norm(a.state["W1.w"] - w0) > 1e-3  # it learned


# ------------------------------------------------------------------------------ size checks
def test_wrong_sizes_are_refused_before_running(sim) -> None:
    simulation, _ = sim
    timed, _, _ = _layout(*_examples(0), 0.5)
    with pytest.raises(NeurosimError, match="needs 80 values"):
        simulation.run(values={"W1.w": np.zeros(79)}, timed=timed)
    with pytest.raises(NeurosimError, match="needs 8 values"):
        simulation.run(values={"layer1.b": np.zeros(4)}, timed=timed)
    with pytest.raises(NeurosimError, match="single shared value"):
        simulation.run(values={"W2.eta": np.ones(2)}, timed=timed)
    bad = dict(timed)
    bad["targets"] = timed["targets"][:, :-1]
    with pytest.raises(NeurosimError, match="shape"):
        simulation.run(timed=bad)
    assert simulation.compilations <= 1


# ------------------------------------------------------------------------------ noise
def test_langevin_noise_gives_the_discrete_ornstein_uhlenbeck_spread(sim) -> None:
    """W = 0, b = 0.5, β = 0: every unit is s ← s + dt(0.5 − s) + σ√dt ξ (clipping far away), of
    stationary std σ/√(2 − dt); the same seed repeats the run, another does not. The state moves
    every step here, so the latch must hold exactly the state at the end of its window."""
    simulation, _ = sim
    x, d = _examples(6)
    timed, _, _ = _layout(x, d, 0.0)
    sigma = 0.1
    values = {
        "layer1.b": np.full(SIZES[1], 0.5),
        "layer2.b": np.full(SIZES[2], 0.5),
        "layer1.sigma": sigma,
        "layer2.sigma": sigma,
    }
    first = simulation.run(values=values, timed=timed, seed=1, read=("layer1.rl", "layer2.rl"))
    s = np.concatenate([first.monitors[f"layer{k}"]["s"] for k in (1, 2)], axis=1)
    latched = np.concatenate([first.state["layer1.rl"], first.state["layer2.rl"]])
    np.testing.assert_array_equal(latched, s[(P - 1) * STEPS + N_FREE])
    settled = np.concatenate([s[k * STEPS + 50 : (k + 1) * STEPS] for k in range(P)])
    expected = sigma / np.sqrt(2 - DT)
    assert abs(np.std(settled) / expected - 1) < 0.1, np.std(settled)
    assert abs(np.mean(settled) - 0.5) < 0.01
    again = simulation.run(values=values, timed=timed, seed=1)
    other = simulation.run(values=values, timed=timed, seed=2)
    np.testing.assert_array_equal(again.monitors["layer1"]["s"], first.monitors["layer1"]["s"])
    assert not np.array_equal(other.monitors["layer1"]["s"], first.monitors["layer1"]["s"])


# ------------------------------------------------------------------------------ spiking read-out
def test_spiking_readout_fires_at_rho_times_the_rate_scale(spike_sim) -> None:
    simulation, captured = spike_sim
    assert "sigma" not in captured["build"].group("layer1").variables  # noise only when asked
    x = np.linspace(0.1, 0.9, SIZES[0])
    w = _np(_weights())
    w["W1"] = np.ones((SIZES[1], SIZES[0]))
    result = simulation.run(
        values=hp.weight_values(w, SIZES), timed=hp.timed_values(x[None, :], SIZES[-1]), seed=3
    )
    counts = np.bincount(result.monitors["spikes_layer0"]["i"], minlength=SIZES[0])
    expected = x * hp.HopfieldParams().max_rate_hz * SPIKE_DURATION / 1000
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (counts, expected)
    for group in ("layer1", "layer2"):
        assert len(result.monitors[f"spikes_{group}"]["t"]) > 0, group
    # normalised traces: up1 = Σ_i x_i has the mean Σ_i ρ(x_i) once the traces have risen
    up = result.monitors["layer1"]["up"][round(20 / DT) :]
    assert abs(np.mean(up) / x.sum() - 1) < 0.1
    assert np.any(result.monitors["layer1"]["down"] != 0)  # the symmetric weight carries back


def test_release_failure_one_silences_transmission(spike_sim) -> None:
    simulation, _ = spike_sim
    x = np.linspace(0.1, 0.9, SIZES[0])
    w = _np(_weights())
    w["b1"], w["b2"] = np.full(SIZES[1], 0.5), np.full(SIZES[2], 0.5)  # every layer fires
    values = {**hp.weight_values(w, SIZES), **hp.p_fail_values(SIZES, 1.0)}
    result = simulation.run(values=values, timed=hp.timed_values(x[None, :], SIZES[-1]), seed=4)
    for group in ("layer0", "layer1", "layer2"):
        assert len(result.monitors[f"spikes_{group}"]["t"]) > 100, group
    assert np.all(result.monitors["layer1"]["up"] == 0.0)
    assert np.all(result.monitors["layer1"]["down"] == 0.0)
    assert np.all(result.monitors["layer2"]["up"] == 0.0)


# ------------------------------------------------------------------------------ the interface
def test_registry_hands_out_the_circuit_and_refuses_a_bad_one() -> None:
    """The registered ``hopfield`` is the module's circuit object; a circuit that breaks the
    interface (a mutable parameter record, a missing builder) is refused in one sentence."""
    from dataclasses import dataclass

    from neurosim import registry
    from neurosim.circuit import Circuit
    from neurosim.registry import register_circuit

    assert registry.circuit("hopfield") is hp.CIRCUIT
    assert hp.CIRCUIT.slot("summed") == ("start", -10)

    @dataclass
    class Loose:
        tau: float = 1.0

    class MutableParams(hp.HopfieldCircuit):
        name = "test-mutable-params"
        Params = Loose

    with pytest.raises(NeurosimError, match="Params must be a frozen dataclass"):
        register_circuit(MutableParams())

    class NoBuild(Circuit):
        name = "test-no-build"
        summary = "no builder"
        Params = hp.HopfieldParams
        Structure = hp.HopfieldStructure

    with pytest.raises(NeurosimError, match="does not implement build"):
        register_circuit(NoBuild())
    assert "test-mutable-params" not in registry.CIRCUITS


def test_cost_grows_with_the_structure_and_counts_recordings() -> None:
    small = hp.CIRCUIT.cost(hp.HopfieldStructure(sizes=(64, 100, 10)))
    assert (small.neurons, small.synapses) == (174, 64 * 100 + 100 * 10)
    wide = hp.HopfieldStructure(sizes=(64, 1_000_000, 10), record={"layer1": ("s",)})
    recorded = hp.CIRCUIT.cost(
        hp.HopfieldStructure(
            sizes=(64, 1_000_000, 10), record={"layer1": ("s",)}, example_ms=12.0,
            record_dt_ms=2.0, examples=360,
        )
    )  # fmt: skip
    assert hp.CIRCUIT.cost(wide).synapses == 74_000_000
    assert recorded.recorded == 6 * 360 * 1_000_000  # 6 rows per example, every hidden cell
    assert recorded.bytes > 20 * 2**30 > hp.CIRCUIT.cost(wide).bytes > 2**30 > small.bytes


# ------------------------------------------------------------------------------ neuron hook
def _tiny_sim(circuit: hp.HopfieldCircuit, label: str) -> Simulation:
    sizes, dt = (6, 5, 3), 0.5
    x = np.random.default_rng(0).uniform(0, 1, (2, 6))
    d = np.eye(3)[[0, 2]]
    timed, timed_dt, example_ms = hp.example_timed(
        x, d, 0.5, free_ms=10.0, nudged_ms=2.0, dt_ms=dt, phases=2,
        names=hp.timed_names(("two-phase",), 1.0),
    )  # fmt: skip
    structure = hp.HopfieldStructure(
        sizes=sizes, plasticity=("two-phase",), example_ms=example_ms, timed_dt_ms=timed_dt,
        record={"layer1": ("s",), "layer2": ("s", "rdot")}, examples=2,
    )  # fmt: skip
    return Simulation(
        circuit.builder(structure, hp.HopfieldParams(), dt), device="cpp_standalone",
        duration_ms=hp.duration_ms(2, example_ms, dt), dt_ms=dt, initial_timed=timed,
        label=label,
    )  # fmt: skip


def test_a_user_neuron_with_the_default_rate_and_step_is_the_circuit() -> None:
    """A subclass that writes the default neuron out itself generates the same code (its build
    is the base circuit's: no second compilation) and runs to the same numbers; a sigmoid
    neuron builds its own equations."""

    class Written(hp.HopfieldCircuit):
        name = "test-written-neuron"
        neuron = hp.Neuron(
            rate="clip({s}, 0, 1)",
            settled="{s}",
            step="clip(s + (dt/tau)*(-s + {drive}){noise}, 0, 1)",
        )

    w = _np(ep.init_weights((6, 5, 3), seed=1))
    values = {
        **hp.weight_values(w, (6, 5, 3)),
        **hp.eta_values((6, 5, 3), two_phase=0.1),
    }
    base = _tiny_sim(hp.CIRCUIT, "test-neuron-hook")
    expected = base.run(values=values, seed=1, read=hp.state_keys((6, 5, 3)))
    written = _tiny_sim(Written(), "test-neuron-hook")
    assert written.compilations == 0 and written.build_dir == base.build_dir
    got = written.run(values=values, seed=1, read=hp.state_keys((6, 5, 3)))
    for key, value in expected.state.items():
        np.testing.assert_array_equal(got.state[key], value)

    class Sigmoid(hp.HopfieldCircuit):
        name = "test-sigmoid-neuron"
        neuron = hp.Neuron(
            rate="1/(1 + exp(-4*({s} - 0.5)))",
            settled="1/(1 + exp(-4*({s} - 0.5)))",
            step="s + (dt/tau)*(-s + 4*r*(1 - r)*({drive})){noise}",
        )

    x = np.zeros((1, 6))
    timed = hp.timed_values(x, 3)
    build = Sigmoid().build(hp.HopfieldStructure(sizes=(6, 5, 3)), hp.HopfieldParams(), timed,
                            dt_ms=0.5)  # fmt: skip
    runners = {o.name: o for g in build.objects for o in getattr(g, "contained_objects", [])}
    assert runners["layer1_rate"].abstract_code.strip() == "r = 1/(1 + exp(-4*(s - 0.5)))"
    assert "4*r*(1 - r)" in runners["layer2_dynamics"].abstract_code


# ------------------------------------------------------------------------------ smooth sigmoid
def test_smooth_sigmoid_circuit_is_the_twin_step_for_step_and_update_for_update() -> None:
    """``HopfieldParams(activation="smooth_sigmoid")`` against the twin with the same activation
    (one compile): every recorded state of three examples (free, then two nudged phases) equals
    the twin's plain-Euler relaxation, and each in-run update — two-phase at β = 0.5, symmetric
    at 0.5 (latch at −β, difference over 2β), two-phase at −0.4 — equals lr · the twin's update
    of the same phases (1e-9). A clipped step, or ρ' left out of the nudge, breaks both."""
    sizes, dt, lr = (10, 8, 4), 0.2, [0.2, 0.1]
    twin = ep.EPParameters(sizes, dt=dt, activation="smooth_sigmoid")
    x, d = _examples(5)
    betas, symmetric = [0.5, 0.5, -0.4], [False, True, False]
    timed, timed_dt, example_ms = _layout(x, d, betas, symmetric=symmetric)
    names = hp.timed_names(("two-phase",), example_ms)
    timed = {k: v for k, v in timed.items() if k in names}
    structure = hp.HopfieldStructure(
        sizes=sizes, plasticity=("two-phase",), example_ms=example_ms, timed_dt_ms=timed_dt,
        record={"layer1": ("s", "b"), "layer2": ("s", "b")}, weight_record_dt_ms=example_ms,
        examples=P,
    )  # fmt: skip
    params = hp.HopfieldParams(activation="smooth_sigmoid")
    simulation = Simulation(
        hp.CIRCUIT.builder(structure, params, dt), device="cpp_standalone",
        duration_ms=hp.duration_ms(P, example_ms, dt), dt_ms=dt, initial_timed=timed,
        label="test-hopfield-smooth",
    )  # fmt: skip
    w0 = _weights()
    values = {**hp.weight_values(_np(w0), sizes), **hp.eta_values(sizes, two_phase=lr)}
    result = simulation.run(values=values, timed=timed, read=hp.state_keys(sizes))
    mon = result.monitors

    def weights_at(sample: int) -> dict[str, torch.Tensor]:  # before the apply of that example
        state = {f"W{k}.w": mon[f"W{k}"]["w"][sample] for k in (1, 2)}
        state.update({f"layer{k}.b": mon[f"layer{k}"]["b"][sample * STEPS] for k in (1, 2)})
        return {n: torch.tensor(v) for n, v in hp.weights_from_state(state, sizes).items()}

    sequence = [weights_at(k + 1) for k in range(P)]
    sequence.append(
        {n: torch.tensor(v) for n, v in hp.weights_from_state(result.state, sizes).items()}
    )

    def rates(xk: np.ndarray, state: ep.HopfieldState) -> dict[str, np.ndarray]:
        r = [np.clip(xk, 0, 1)] + [ep.smooth_sigmoid(s).numpy()[0] for s in state.s]
        out = {f"W{k}": np.outer(r[k], r[k - 1]) for k in range(1, len(r))}
        out.update({f"b{k}": r[k] for k in range(1, len(r))})
        return out

    for k, beta in enumerate(betas):
        w, xk, dk = sequence[k], x[k : k + 1], d[k : k + 1]
        s, path = ep.zero_state(sizes), []
        for step in range(STEPS):  # the twin's states at the start of every step, as recorded
            path.append(s)
            if step < N_FREE:
                b = 0.0
            elif symmetric[k] and step < N_FREE + N_NUDGED:
                b = -beta
            else:
                b = beta
            s = ep.step(twin, w, s, xk, dk if b else None, b)
        for layer in (1, 2):
            # row 0 is recorded before the example's restart: the previous example's end
            got = mon[f"layer{layer}"]["s"][k * STEPS + 1 : (k + 1) * STEPS]
            want = np.stack([p.s[layer - 1].numpy()[0] for p in path[1:]])
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=f"{k} s{layer}")
        low = path[N_FREE + N_NUDGED] if symmetric[k] else path[N_FREE]
        hi, lo = rates(xk[0], s), rates(xk[0], low)
        denom = 2 * beta if symmetric[k] else beta
        for name in hi:
            change = (sequence[k + 1][name] - w[name]).numpy()
            ref = lr[int(name[1:]) - 1] * (hi[name] - lo[name]) / denom
            assert _rel(change, ref) < 1e-9, (k, name)
        assert float((sequence[k + 1]["W2"] - w["W2"]).norm()) > 1e-3
    assert np.abs(mon["layer1"]["s"]).max() > 0.1  # the units moved: not a trivial agreement


def test_smooth_sigmoid_is_one_option_of_the_parameter_record() -> None:
    """The twin follows the record's activation; the Brian2 neuron is the smooth one only when
    asked, and a user neuron refuses the option rather than silently dropping it."""
    smooth = hp.HopfieldParams(activation="smooth_sigmoid")
    assert ep.EPParameters.for_circuit(smooth, SIZES, 0.5).activation == "smooth_sigmoid"
    assert ep.EPParameters.for_circuit(hp.HopfieldParams(), SIZES, 0.5).activation == "hard_sigmoid"
    assert hp.CIRCUIT.neuron_for(hp.HopfieldParams()) == hp.Neuron()
    assert hp.CIRCUIT.neuron_for(smooth) == hp.SMOOTH_SIGMOID
    with pytest.raises(ValueError, match="activation"):
        hp.HopfieldParams(activation="tanh")

    class Own(hp.HopfieldCircuit):
        name = "test-own-neuron"
        neuron = hp.Neuron(sensitive=(0.0, 0.5))

    with pytest.raises(ValueError, match="own neuron"):
        Own().neuron_for(smooth)

"""The torch twin of the dendritic cortical microcircuit (models/dendritic_microcircuit/):
fixed point, self-predicting state, error transport against backprop, two-pass approximation,
backprop baseline (DESIGN.md §4.2, issue 3)."""

from __future__ import annotations

import math

import pytest
import torch

from models import backprop
from models import dendritic_microcircuit as dm

SIZES = [6, 8, 7, 4]  # input, two hidden layers, output
NUDGES = [1.0, 0.3, 0.1, 0.01, 1e-3]


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(), b.flatten()
    return float(a @ b / (a.norm() * b.norm()))


def _inputs(n: int, batch: int = 8, seed: int = 2, high: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return high * torch.rand(batch, n, generator=gen, dtype=torch.float64)


def _params(phi: str) -> dm.MicrocircuitParameters:
    return dm.MicrocircuitParameters(phi=phi)


def test_parameters_and_closed_form_constant() -> None:
    p = dm.MicrocircuitParameters()
    assert (p.g_lk, p.g_B, p.g_A, p.g_D, p.g_som) == (0.1, 1.0, 0.8, 1.0, 0.8)
    assert dm.self_predicting_constant(p, next_is_output=False) == pytest.approx(1.1 / 1.9)
    assert round(dm.self_predicting_constant(p, next_is_output=False), 3) == 0.579
    assert dm.self_predicting_constant(p, next_is_output=True) == pytest.approx(1.0)
    u = torch.tensor([-100.0, 0.0, 3.0, 800.0], dtype=torch.float64)
    phi = dm.rate_function(p)(u)
    assert torch.isfinite(phi).all()
    assert float(phi[2]) == pytest.approx(0.1 * math.log(2.0))
    assert float(phi[3]) == pytest.approx(0.1 * 797.0)
    with pytest.raises(ValueError, match="phi"):
        dm.MicrocircuitParameters(phi="tanh")


def test_init_weights_shapes_and_seed() -> None:
    w = dm.init_weights(SIZES, seed=4, scale={"W": 0.5, "B": 2.0})
    assert set(w) == set(dm.expected_shapes(SIZES))
    assert w["W2"].shape == (7, 8) and w["B1"].shape == (8, 7)
    assert w["WPI2"].shape == (7, 4) and w["WIP2"].shape == (4, 7)
    assert all(x.dtype == torch.float64 for x in w.values())
    assert float(w["W1"].abs().max()) <= 0.5 and float(w["B1"].abs().max()) > 1.0
    again = dm.init_weights(SIZES, seed=4, scale={"W": 0.5, "B": 2.0})
    assert all(torch.equal(w[k], again[k]) for k in w)
    assert not torch.equal(w["W1"], dm.init_weights(SIZES, seed=5)["W1"] * 0.5)
    assert dm.layer_sizes(w) == tuple(SIZES)
    bad = dict(w, WIP1=torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="WIP1"):
        dm.check_weights(bad)


@pytest.mark.parametrize("phi", ["soft_relu", "logistic", "relu"])
def test_fixed_point_residual_and_step(phi: str) -> None:
    """Random weights (lateral weights not self-predicting): the fixed point is exact, Euler
    relaxation reaches the same point, and one step there changes nothing."""
    p = _params(phi)
    w = dm.init_weights(SIZES, seed=1, scale=0.5)
    r0 = _inputs(SIZES[0])
    ut = torch.full((8, SIZES[-1]), 0.5, dtype=torch.float64)
    for target, nudge in [(None, 0.0), (ut, 1.0)]:
        fp = dm.fixed_point(p, w, r0, target, nudge)
        assert fp.residual < 1e-10
        assert dm.residual(p, w, fp.state, r0, target, nudge) == pytest.approx(fp.residual)
        nxt = dm.step(p, w, fp.state, r0, target, nudge, dt=0.1)
        assert dm.state_distance(nxt, fp.state) < 1e-11
        rel = dm.relax(p, w, r0, target, nudge, dt=0.1, tol=1e-10)
        assert rel.residual < 1e-10
        assert dm.state_distance(rel.state, fp.state) < 1e-8
    fixed_steps = dm.relax(p, w, r0, dt=0.1, steps=50, tol=0.0)
    assert fixed_steps.steps == 50 and fixed_steps.residual > 1e-10


def test_step_is_pure_euler() -> None:
    p = _params("soft_relu")
    w = dm.init_weights(SIZES, seed=3)
    r0 = _inputs(SIZES[0], batch=2)
    s0 = dm.zero_state(w, batch=2)
    s0 = dm.MicrocircuitState(tuple(x + 0.3 for x in s0.u), tuple(x - 0.2 for x in s0.uI))
    before = [x.clone() for x in s0.u + s0.uI]
    s1 = dm.step(p, w, s0, r0, torch.ones(2, 4, dtype=torch.float64), nudge=1.0, dt=0.1)
    assert all(torch.equal(a, b) for a, b in zip(before, s0.u + s0.uI, strict=True))
    d = dm.derivatives(p, w, s0, r0, torch.ones(2, 4, dtype=torch.float64), nudge=1.0)
    for a, b, da in zip(s1.u + s1.uI, s0.u + s0.uI, d.u + d.uI, strict=True):
        torch.testing.assert_close(a, b + 0.1 * da, rtol=0, atol=1e-15)
    # the output's equation by hand: -g_lk u + g_B (vB - u) + g_som (u_target - u)
    acts = dm.activities(p, w, s0, r0)
    u3 = acts["u3"]
    by_hand = -0.1 * u3 + (acts["vB3"] - u3) + 0.8 * (1.0 - u3)
    torch.testing.assert_close(d.u[2], by_hand, rtol=0, atol=1e-14)
    assert set(dm.MicrocircuitState.from_dict(acts).as_dict()) == set(s0.as_dict())


@pytest.mark.parametrize("phi", ["soft_relu", "logistic"])
def test_self_predicting_closed_form(phi: str) -> None:
    """With W^PI = -B and W^IP = c W, and no target, the fixed point has u^I_k = u_{k+1} and
    v_A,k = 0 exactly (up to rounding); every plasticity induction term vanishes there and the
    two-pass forward sweep is the fixed point."""
    p = _params(phi)
    w = dm.self_predicting_weights(dm.init_weights(SIZES, seed=7), p)
    r0 = _inputs(SIZES[0])
    fp = dm.fixed_point(p, w, r0)
    assert fp.residual < 1e-10
    acts = dm.activities(p, w, fp.state, r0)
    for k in (1, 2):
        assert float(acts[f"vA{k}"].abs().max()) < 1e-8
        assert float((acts[f"uI{k}"] - acts[f"u{k + 1}"]).abs().max()) < 1e-12
        assert float((acts[f"rI{k}"] - acts[f"r{k + 1}"]).abs().max()) < 1e-8
    updates = dm.plasticity(p, w, fp.state, r0, eta={"W": 1.0, "WIP": 1.0, "WPI": 1.0})
    assert len(updates) == 3 + 2 + 2
    assert max(float(d.abs().max()) for d in updates.values()) < 1e-12
    tp = dm.two_pass(p, w, r0)
    assert tp.nudged is None
    assert dm.state_distance(tp.forward, fp.state) < 1e-12


def test_lateral_rules_move_toward_cancellation() -> None:
    """From random lateral weights a small PI step lowers the apical potentials (its sign)."""
    p = _params("logistic")
    w = dm.init_weights(SIZES, seed=11)
    r0 = _inputs(SIZES[0], high=1.0)
    fp = dm.fixed_point(p, w, r0)
    rms = float(dm.activities(p, w, fp.state, r0)["vA1"].pow(2).mean().sqrt())
    dW = dm.pi_update(p, w, fp.state, r0, eta=0.05)
    w2 = dict(w, **{k: w[k] + v for k, v in dW.items()})
    fp2 = dm.fixed_point(p, w2, r0)
    rms2 = float(dm.activities(p, w2, fp2.state, r0)["vA1"].pow(2).mean().sqrt())
    assert rms2 < rms


def test_top_down_rule_by_hand() -> None:
    """The learned top-down rule dB_k = η (φ(u_k) − φ(B_k r_{k+1})) r_{k+1}ᵀ (batch mean), by
    hand from the activities; a small step of it brings φ(B_k r_{k+1}) closer to layer k's
    rates at the same state."""
    p = _params("logistic")
    w = dm.init_weights(SIZES, seed=11)
    r0 = _inputs(SIZES[0], high=1.0)
    fp = dm.fixed_point(p, w, r0)
    acts = dm.activities(p, w, fp.state, r0)
    phi = dm.rate_function(p)
    dB = dm.top_down_update(p, w, fp.state, r0, eta=0.5)
    assert sorted(dB) == ["B1", "B2"]
    for k in (1, 2):
        r_k, r_up, b = acts[f"r{k}"], acts[f"r{k + 1}"], w[f"B{k}"]
        by_hand = torch.zeros_like(b)
        for n in range(r_k.shape[0]):  # one example at a time, then the mean
            err = r_k[n] - phi(b @ r_up[n])
            by_hand += 0.5 * torch.outer(err, r_up[n]) / r_k.shape[0]
        torch.testing.assert_close(dB[f"B{k}"], by_hand, rtol=0, atol=1e-14)
        before = (r_k - phi(r_up @ b.T)).pow(2).sum()
        after = (r_k - phi(r_up @ (b + dB[f"B{k}"]).T)).pow(2).sum()
        assert after < before


def test_backprop_reference_gradients_by_hand() -> None:
    p = _params("soft_relu")
    w = dm.init_weights([5, 6, 3], seed=2)
    r0 = _inputs(5, batch=4)
    ut = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bp = dm.backprop_reference(p, w, r0, ut, loss="circuit")
    g_out = dm.basal_gain(p, True)
    delta = dm.rate_derivative(p)(bp.u[1]) * (ut - bp.u[1])  # -dL/du_N per sample
    torch.testing.assert_close(bp.errors["delta2"], delta)
    torch.testing.assert_close(bp.grads["W2"], -g_out * delta.T @ bp.r[1] / 4)
    torch.testing.assert_close(bp.errors["e1"], g_out * delta @ w["W2"])
    for loss in ("potential", "rate"):
        other = dm.backprop_reference(p, w, r0, ut, loss=loss)
        assert torch.isfinite(other.loss) and other.grads["W1"].shape == (6, 5)


@pytest.mark.parametrize("phi", ["soft_relu", "logistic"])
def test_error_transport_matches_backprop(phi: str) -> None:
    """B = Wᵀ, self-predicting lateral weights, weak nudging: the apical potentials point along
    the backprop error and the forward updates along minus the gradient (DESIGN.md §4.2; issue 3).

    The backprop reference uses the loss the circuit follows exactly as nudging → 0
    (``loss="circuit"``, ∂L/∂û_N = φ'(û_N)(û_N − u_target)); the ½‖r − r_target‖² and
    ½‖u − u_target‖² losses differ from it by per-unit factors φ'(û_N) and are printed beside it.
    """
    p = _params(phi)
    w = dm.self_predicting_weights(dm.tied_feedback(dm.init_weights(SIZES, seed=1)), p)
    r0 = _inputs(SIZES[0])
    free = dm.fixed_point(p, w, r0)
    gen = torch.Generator().manual_seed(5)
    ut = free.state.u[-1] + torch.randn(free.state.u[-1].shape, generator=gen, dtype=torch.float64)
    refs = {loss: dm.backprop_reference(p, w, r0, ut, loss=loss) for loss in dm.LOSSES}
    table = {}
    for nudge in NUDGES:
        fp = dm.fixed_point(p, w, r0, ut, nudge=nudge, state=free.state)
        assert fp.residual < 1e-10
        acts = dm.activities(p, w, fp.state, r0)
        dW = dm.forward_update(p, w, fp.state, r0)
        tp = dm.two_pass(p, w, r0, ut, nudge=nudge)
        row = {"two_pass_distance": dm.state_distance(tp.nudged, fp.state)}
        for loss, bp in refs.items():
            row[loss] = (
                [_cos(acts[f"vA{k}"], bp.errors[f"e{k}"]) for k in (1, 2)],
                [_cos(dW[f"W{k}"], -bp.grads[f"W{k}"]) for k in (1, 2, 3)],
            )
        table[nudge] = row
    print(f"\nerror transport, phi={phi}, sizes={SIZES} (cosines: apical vA1, vA2 | dW1, dW2, dW3)")
    for nudge, row in table.items():
        cells = "  ".join(
            f"{loss}: {' '.join(f'{c:.5f}' for c in row[loss][0])} | "
            f"{' '.join(f'{c:.5f}' for c in row[loss][1])}"
            for loss in dm.LOSSES
        )
        print(f"  nudge={nudge:<6g} {cells}  two-pass dist {row['two_pass_distance']:.2e}")
    weak = table[0.01]["circuit"]
    assert min(weak[0]) >= 0.99
    assert min(weak[1]) >= 0.95
    weakest = table[1e-3]["circuit"]
    assert min(weakest[0] + weakest[1]) >= 0.9999
    assert all(math.isfinite(row["two_pass_distance"]) for row in table.values())


def test_two_pass_distance_with_random_lateral_weights() -> None:
    p = _params("soft_relu")
    w = dm.init_weights(SIZES, seed=9)
    r0 = _inputs(SIZES[0])
    ut = torch.full((8, SIZES[-1]), 1.0, dtype=torch.float64)
    for target, nudge in [(None, 0.0), (ut, 1.0)]:
        tp = dm.two_pass(p, w, r0, target, nudge=nudge if target is not None else 1.0)
        fp = dm.fixed_point(p, w, r0, target, nudge)
        approx = tp.nudged if tp.nudged is not None else tp.forward
        dist = dm.state_distance(approx, fp.state)
        print(f"\ntwo-pass vs fixed point (random lateral weights, nudge={nudge}): {dist:.3e}")
        assert math.isfinite(dist) and dist > 0.0
        assert set(tp.errors) == {"e1", "e2", "e3"}


def _baseline(p: dm.MicrocircuitParameters, weights: dm.Weights) -> backprop.FeedForward:
    """The one backprop baseline with the circuit's self-predicting forward pass as its layer."""
    phi, top = dm.rate_function(p), len(dm.layer_sizes(weights)) - 1
    return backprop.FeedForward(weights, lambda k, u: phi(dm.basal_gain(p, k == top) * u))


def test_backprop_baseline_learns_regression() -> None:
    p = _params("logistic")
    sizes = [4, 16, 2]
    X = _inputs(4, batch=128, seed=0, high=1.0) * 2 - 1
    Y = _baseline(p, dm.init_weights(sizes, seed=100, scale=3.0)).predict(X)
    net = _baseline(p, dm.init_weights(sizes, seed=0))
    with torch.no_grad():
        start = float(net.loss(X, Y))

    def loss(n: backprop.FeedForward, epoch: int) -> dict[str, float]:
        with torch.no_grad():
            return {"loss": float(n.loss(X, Y))}

    history = backprop.train(
        net, X, Y, epochs=150, lr=0.03, batch=16, seed=0, optimiser="adam", evaluate=loss
    )
    print(f"\nbackprop baseline: loss {start:.3e} -> {history[-1]['loss']:.3e}")
    assert history[-1]["loss"] < start / 10
    assert net.predict(X).shape == (128, 2)
    assert set(net.to_weights()) == {"W1", "W2"}
    # the baseline's forward pass is the circuit's self-predicting forward pass
    trained = {k: torch.as_tensor(v) for k, v in net.to_weights().items()}
    w = dm.self_predicting_weights(dict(dm.init_weights(sizes, seed=0), **trained), p)
    fp = dm.fixed_point(p, w, X[:8])
    torch.testing.assert_close(
        dm.rate_function(p)(fp.state.u[-1]), torch.as_tensor(net.predict(X[:8]))
    )


def test_one_parameter_record_for_circuit_twin_and_table() -> None:
    """The Brian2 circuit, the torch twin and the derived [circuit] table read one record."""
    from circuits import microcircuit as mc
    from neurosim.circuit import config_model
    from neurosim.parameters.microcircuit import MicrocircuitParams

    assert dm.MicrocircuitParameters is MicrocircuitParams
    assert mc.MicrocircuitCircuit.Params is MicrocircuitParams
    assert mc.MicrocircuitParams is MicrocircuitParams
    table = config_model(mc.CIRCUIT)
    defaults = MicrocircuitParams()
    for name, info in table.model_fields.items():
        if name not in mc.CIRCUIT.configurable:  # structure fields (sizes, batch) are not Params
            assert info.default == getattr(defaults, name), name
    p = MicrocircuitParams(phi="logistic", g_A=0.5)
    assert dm.self_predicting_constant(p, False) == p.self_predicting_factor(False)


# ------------------------------------------------------------------------------ prospective
def _steps_to_settle(p: dm.MicrocircuitParameters, dt: float, tol: float, steps: int) -> int | None:
    """Euler steps from rest until the output rate stays within ``tol`` (relative to the largest
    rate) of its fixed point's (soft-ReLU: weights strong enough to cross its threshold θ = 3)."""
    w = dm.init_weights(SIZES, seed=1, scale=1.0 if p.phi == "logistic" else 4.0)
    r0 = _inputs(SIZES[0], batch=4)
    target = dm.rate_function(p)(dm.fixed_point(p, w, r0).state.u[-1])
    assert float(target.max() - target.min()) > 0.2 * float(target.max())  # outputs that differ
    tol = tol * float(target.abs().max())
    state, errors = dm.zero_state(w, batch=4), []
    for _ in range(steps):
        state = dm.step(p, w, state, r0, dt=dt)
        u_out = state.prospective()[0][-1] if p.prospective else state.u[-1]
        errors.append(float((dm.rate_function(p)(u_out) - target).abs().max()))
    late = [n for n in range(steps) if max(errors[n:]) < tol]
    return late[0] + 1 if late else None


@pytest.mark.parametrize("phi", ["soft_relu", "logistic"])
def test_prospective_output_settles_within_steps_whatever_dt(phi: str) -> None:
    """Latent equilibrium: with prospective neurons the output rate of a two-hidden-layer circuit
    (random lateral weights, so the apical loops are active) stays within 0.1 % of its fixed
    point after the same few steps at dt = 0.1 and 0.02 ms; instantaneous neurons need many
    membrane time constants, so five times more steps at the five times smaller dt."""
    pro = dm.MicrocircuitParameters(phi=phi, neuron="prospective")
    ins = dm.MicrocircuitParameters(phi=phi)
    n_pro = [_steps_to_settle(pro, dt, 1e-3, 500) for dt in (0.1, 0.02)]
    n_ins = [_steps_to_settle(ins, dt, 1e-3, 500) for dt in (0.1, 0.02)]
    print(f"\n[prospective] {phi}: steps to 1e-3: prospective {n_pro}, instantaneous {n_ins}")
    assert all(n is not None and n <= 10 for n in n_pro), n_pro
    assert n_pro[0] == n_pro[1]  # steps, not time: independent of τ/dt
    assert n_ins[0] is not None and n_ins[0] >= 3 * n_pro[0]
    assert n_ins[1] is None or n_ins[1] >= 4 * n_ins[0]


def test_prospective_state_fixed_point_and_rules() -> None:
    """A state without ŭ is taken at ŭ = u; the fixed point is the instantaneous one; one step
    from it changes nothing; the rules read the prospective rates (φ(ŭ) ≠ φ(u) off it)."""
    p = dm.MicrocircuitParameters(phi="logistic", neuron="prospective")
    ins = dm.MicrocircuitParameters(phi="logistic")
    w = dm.init_weights(SIZES, seed=2, scale=0.5)
    r0 = _inputs(SIZES[0])
    fp = dm.fixed_point(p, w, r0)
    assert dm.state_distance(fp.state, dm.fixed_point(ins, w, r0).state) < 1e-10
    nxt = dm.step(p, w, fp.state, r0, dt=0.1)
    assert len(nxt.ub) == len(nxt.u) and len(nxt.ubI) == len(nxt.uI)
    assert dm.state_distance(nxt, fp.state) < 1e-11
    assert max(float((a - b).abs().max()) for a, b in zip(nxt.ub, fp.state.u, strict=True)) < 1e-10
    # off the fixed point: ŭ = u + (u_new − u)/(g_total dt) and the rules follow φ(ŭ)
    s0 = dm.zero_state(w, batch=8)
    s1 = dm.step(p, w, s0, r0, dt=0.1)
    d = dm.derivatives(p, w, s0, r0)
    g = p.prospective_conductance("hidden")
    torch.testing.assert_close(s1.ub[0], s0.u[0] + 0.1 * d.u[0] / (g * 0.1), rtol=0, atol=1e-12)
    acts = dm.activities(p, w, s1, r0)
    torch.testing.assert_close(acts["r1"], dm.rate_function(p)(s1.ub[0]))
    assert set(dm.MicrocircuitState.from_dict(acts).as_dict()) == set(s1.as_dict())
    eta = {"W": 1.0, "WIP": 1.0, "WPI": 1.0}
    pro_rules = dm.plasticity(p, w, s1, r0, eta)
    ins_rules = dm.plasticity(ins, w, s1, r0, eta)
    for name in ("W1", "W3", "WIP1", "WPI2"):
        assert float((pro_rules[name] - ins_rules[name]).abs().max()) > 1e-6, name


def test_neuron_option_is_validated_and_defaults_to_instantaneous() -> None:
    from circuits import microcircuit as mc
    from neurosim.circuit import config_model

    assert dm.MicrocircuitParameters().neuron == "instantaneous"
    with pytest.raises(ValueError, match="neuron"):
        dm.MicrocircuitParameters(neuron="predictive")
    with pytest.raises(ValueError, match="population"):
        dm.MicrocircuitParameters().prospective_conductance("input")
    table = config_model(mc.CIRCUIT)
    assert table(sizes=[3, 4, 2], neuron="prospective").neuron == "prospective"
    with pytest.raises(Exception, match="neuron"):
        table(sizes=[3, 4, 2], neuron="lagging")
    keys = mc.state_keys([3, 4, 2], neuron="prospective")
    assert {"layer0.r0_old", "layer1.u_old", "layer2.u_old", "layer2.g_old", "inter1.uI_old"} <= (
        set(keys)
    )
    assert not any(k.endswith("_old") for k in mc.state_keys([3, 4, 2]))

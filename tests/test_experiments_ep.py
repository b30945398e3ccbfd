"""The Equilibrium-Propagation virtual experiments (``protocols/experiments``: error-in-dsdt,
reciprocal-symmetry, spiking-dropout) and the untied reciprocal option of
:mod:`circuits.hopfield` they rest on.

One small structure pair (6-5-3, rate read-out, both rules, weights and states recorded) checks
the option: an untied circuit whose backward weights start equal to the forward ones reproduces
the default tied circuit number for number; with independent backward weights both directions
receive exactly the same increment from each rule, and a backward learning rate of 0 freezes
them. The mechanism behind error-in-dsdt is checked on the same build: the weight change the
continual rule makes over a nudged phase is presynaptic rate × change of postsynaptic rate
(integrated), read from the circuit's own monitors. Then every experiment runs one quick seed and
its outcome is checked for form (spiking-dropout, with two builds of its own, in the slow tier).
"""

from __future__ import annotations

import numpy as np
import pytest

from circuits import hopfield as hp
from neurosim.engine import Simulation
from neurosim.experiment import ExperimentSettings, SeedOutcome, lookup_experiment

SIZES = [6, 5, 3]
DT = 0.5
FREE_STEPS, NUDGED_STEPS = 20, 10
P = 3
RULES = ("two-phase", "continual")


def _build(params, sizes, timed, *, dt_ms, **structure):  # noqa: ANN001, ANN003, ANN202
    """One build of the registered circuit with the structure's fields as keywords."""
    return hp.CIRCUIT.build(
        hp.HopfieldStructure(sizes=sizes, **structure), params, timed, dt_ms=dt_ms
    )


def _examples(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (P, SIZES[0])), rng.uniform(0, 1, (P, SIZES[-1]))


def _timed() -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    x, d = _examples()
    return hp.example_timed(
        x, d, 0.5, free_ms=FREE_STEPS * DT, nudged_ms=NUDGED_STEPS * DT, dt_ms=DT, phases=2
    )


def _sim(reciprocal: str | None) -> Simulation:
    timed, timed_dt, example_ms = _timed()
    kwargs = {} if reciprocal is None else {"reciprocal": reciprocal}

    def builder(tv):
        return _build(
            hp.HopfieldParams(), SIZES, tv, dt_ms=DT, plasticity=RULES, example_ms=example_ms,
            record={"layer1": ("s",), "layer2": ("s",)}, weight_record_dt_ms=DT,
            timed_dt_ms=timed_dt, **kwargs,
        )  # fmt: skip

    return Simulation(
        builder, device="cpp_standalone", duration_ms=hp.duration_ms(P, example_ms, DT),
        dt_ms=DT, initial_timed=timed, label=f"test-ep-experiments-{reciprocal or 'default'}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def sims() -> dict[str, Simulation]:
    return {"default": _sim(None), "untied": _sim("untied")}


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-0.5, 0.5, shape) for name, shape in hp.weight_shapes(SIZES).items()}


def _rates(rule: str, eta: float, eta_back: float | None = None) -> dict[str, float]:
    """One rule on at ``eta`` (the other at 0), backward weights at ``eta_back``."""
    two, cont = (eta, 0.0) if rule == "two-phase" else (0.0, eta)
    out = hp.eta_values(SIZES, two_phase=two, continual=cont)
    out.update({f"W{k}.centred": 0.0 for k in (1, 2)})
    return out, hp.back_eta_values(
        SIZES,
        two_phase=eta_back if rule == "two-phase" else 0.0,
        continual=eta_back if rule == "continual" else 0.0,
    )


def test_default_is_tied_and_refuses_unknown_reciprocal_modes() -> None:
    assert hp.weight_shapes(SIZES) == hp.weight_shapes(SIZES, "tied")
    assert "W2_back" not in hp.weight_shapes(SIZES)
    assert hp.weight_shapes(SIZES, "untied")["W2_back"] == (3, 5)
    assert hp.state_keys(SIZES) == hp.state_keys(SIZES, reciprocal="tied")
    assert "W2.wb" in hp.state_keys(SIZES, reciprocal="untied")
    assert hp.back_eta_values(SIZES, two_phase=0.1) == {"W2.eta_back": 0.1}
    timed, timed_dt, _ = _timed()
    with pytest.raises(ValueError, match="reciprocal"):
        _build(hp.HopfieldParams(), SIZES, timed, dt_ms=DT, reciprocal="half")
    with pytest.raises(ValueError, match="shape"):
        hp.weight_values({"W2_back": np.zeros((5, 3))}, SIZES, "untied")


@pytest.mark.parametrize("rule", RULES)
def test_untied_with_equal_backward_weights_is_the_tied_circuit(sims, rule) -> None:
    """Default (tied) build against the untied one with W_back = W and the same rates: equal."""
    w = _weights(1)
    fwd, back = _rates(rule, 0.2, 0.2)
    tied = sims["default"].run(
        values={**hp.weight_values(w, SIZES), **fwd}, seed=3,
        read=hp.state_keys(SIZES),
    )  # fmt: skip
    w_untied = {**w, "W2_back": w["W2"].copy()}
    untied = sims["untied"].run(
        values={**hp.weight_values(w_untied, SIZES, "untied"), **fwd, **back}, seed=3,
        read=hp.state_keys(SIZES, reciprocal="untied"),
    )  # fmt: skip
    assert not np.allclose(tied.state["W2.w"], hp.matrix_to_w(w["W2"]))  # it learned
    for key in hp.state_keys(SIZES):
        np.testing.assert_allclose(untied.state[key], tied.state[key], rtol=0, atol=1e-12)
    np.testing.assert_allclose(untied.state["W2.wb"], tied.state["W2.w"], rtol=0, atol=1e-12)
    for layer in ("layer1", "layer2"):
        np.testing.assert_allclose(
            untied.monitors[layer]["s"], tied.monitors[layer]["s"], rtol=0, atol=1e-12
        )


@pytest.mark.parametrize("rule", RULES)
def test_untied_directions_learn_by_the_same_local_rule(sims, rule) -> None:
    """Independent backward weights: the same increment at both ends; η_back = 0 freezes them."""
    w = {**_weights(2), "W2_back": _weights(3)["W2"]}
    start = hp.weight_values(w, SIZES, "untied")
    keys = hp.state_keys(SIZES, reciprocal="untied")
    fwd, back = _rates(rule, 0.2, 0.2)
    same = sims["untied"].run(values={**start, **fwd, **back}, seed=4, read=keys)
    d_fwd = same.state["W2.w"] - start["W2.w"]
    d_back = same.state["W2.wb"] - start["W2.wb"]
    assert np.max(np.abs(d_fwd)) > 1e-3
    np.testing.assert_allclose(d_back, d_fwd, rtol=0, atol=1e-12)
    fwd, frozen = _rates(rule, 0.2, 0.0)
    fa = sims["untied"].run(values={**start, **fwd, **frozen}, seed=4, read=keys)
    np.testing.assert_array_equal(fa.state["W2.wb"], start["W2.wb"])
    assert np.max(np.abs(fa.state["W2.w"] - start["W2.w"])) > 1e-3


def test_nudged_phase_weight_change_is_pre_times_change_of_post(sims) -> None:
    """Continual rule, rate read-out: over each nudged phase, ΔW (from the weight monitor) of the
    input→hidden synapses is η/β ∫ ρ_pre dρ_post (from the recorded states; the input is
    clamped), and correlates with it over synapses."""
    eta, beta = 0.2, 0.5
    w = _weights(5)
    fwd, _ = _rates("continual", eta)
    res = sims["default"].run(values={**hp.weight_values(w, SIZES), **fwd}, seed=6)
    x, _ = _examples()
    steps = FREE_STEPS + NUDGED_STEPS
    wmon = res.monitors["W1"]["w"]  # one row per step, at the step's start
    s1 = np.clip(res.monitors["layer1"]["s"], 0, 1)
    dws, predictions = [], []
    for e in range(P):
        a, b = e * steps + FREE_STEPS, (e + 1) * steps
        dw = hp.w_to_matrix(wmon[b] - wmon[a], SIZES[1], SIZES[0])
        predicted = np.outer(s1[b] - s1[a], x[e]) * eta / beta
        np.testing.assert_allclose(dw, predicted, rtol=1e-9, atol=1e-12)
        dws.append(dw.ravel())
        predictions.append(predicted.ravel())
        # the free phase (gate closed) changes nothing
        np.testing.assert_array_equal(wmon[a], wmon[e * steps])
    assert np.max(np.abs(dws)) > 1e-3
    assert np.corrcoef(np.ravel(dws), np.ravel(predictions))[0, 1] > 0.999


# ------------------------------------------------------------------------------ the experiments
def _check_outcome(name: str, outcome: SeedOutcome, seed: int) -> None:
    exp = lookup_experiment(name)()
    outcome.check(exp)
    assert outcome.seed == seed
    assert all(np.isfinite(v) for v in outcome.conditions.values())
    assert set(outcome.recordings) == set(exp.conditions)
    for segs in outcome.recordings.values():
        assert segs and all(f"seed{seed}" in seg.name for seg in segs)
        for seg in segs:
            assert seg.spikes or seg.signals
            for sig in seg.signals:
                assert sig.values.ndim == 2 and np.all(np.isfinite(sig.values))
            for sp in seg.spikes:
                assert np.all((sp.times_s >= sp.t_start_s) & (sp.times_s <= sp.t_stop_s))
    for curve in outcome.curves.values():
        assert len(curve["x"]) == len(curve["y"]) > 0
    assert exp.describe()["name"] == name


def _run(name: str, seed: int = 1) -> SeedOutcome:
    import protocols.experiments  # noqa: F401  (registers every experiment)

    exp = lookup_experiment(name)()
    outcome = exp.run_seed(seed, ExperimentSettings(quick=True))
    _check_outcome(name, outcome, seed)
    return outcome


def test_error_in_dsdt_quick_outcome() -> None:
    out = _run("error-in-dsdt")
    assert out.extra["examples"] == 50
    # the circuit's own continual rule against the exact ∫ρ_pre dρ_post of its internal rates:
    # the input is clamped, so for W1 the two are the same quantity up to the spiking noise of
    # the integration (the rule reads ρ, the monitors record the same ρ)
    assert out.extra["corr_internal_rates[W1]"] > 0.99


def test_reciprocal_symmetry_quick_outcome() -> None:
    out = _run("reciprocal-symmetry")
    # the EP arm's backward weights change by exactly the forward change; FA's do not change
    assert out.extra["backward_change_norm[FA]"] == 0.0
    assert out.extra["backward_change_norm[EP]"] == pytest.approx(
        out.extra["forward_change_norm[EP]"], rel=1e-9
    )


@pytest.mark.slow  # two more builds (rate and spiking, 64-50-10) and four trainings: ~2 min
def test_spiking_dropout_quick_outcome() -> None:
    out = _run("spiking-dropout")
    for cond in lookup_experiment("spiking-dropout").conditions:
        assert 0.0 <= out.extra[f"test_accuracy[{cond}]"] <= 1.0
    assert out.recordings["spiking p=0.5"][0].spikes

"""The ``consciousness-prior-hopfield`` pairing of ``neurosim compare`` (issue 17): the
configuration (clear errors, no build), the references and the twin predictor on arrays with
known answers, and (slow) the command end to end on a tiny world, where the twin predictor that
the shift test and the sensitivities use must reproduce the Brian2 circuit's held-out pass."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models import equilibrium_propagation as ep
from neurosim import datasets as ds
from neurosim.cli import PAIRINGS as CLI_PAIRINGS
from neurosim.cli import main, pipeline
from neurosim.config import parse_overrides
from neurosim.errors import ConfigError
from protocols import compare as pc
from protocols import compare_consciousness_hopfield as cch

PAIRING = "consciousness-prior-hopfield"


def test_the_pairing_is_offered_by_the_command() -> None:
    assert PAIRING == cch.PAIRING and PAIRING in pc.PAIRINGS and CLI_PAIRINGS == pc.PAIRINGS
    assert pc.PAIRING_CIRCUITS[PAIRING] == "hopfield"


# ------------------------------------------------------------------------------ configuration
def _resolve(*sets: str, circuit: str | None = None, readout: str | None = None):  # noqa: ANN202
    overrides = parse_overrides([f"protocol.pairing={PAIRING}", *sets])
    cli = {"protocol": "compare", "circuit": circuit, "readout": readout}
    return pipeline.resolve(pipeline.build_raw(None, cli, overrides))


def test_pairing_config() -> None:
    resolved = _resolve()
    assert resolved.run.circuit == "hopfield"  # the pairing's circuit without --circuit
    epc = resolved.protocol.equilibrium_propagation
    assert (epc.free_steps, epc.beta, epc.lr_decay) == (20, 0.5, 0.85)  # the npz preset's
    assert (epc.variant, epc.lr, epc.w_scale) == ("symmetric", [0.04, 0.02], 0.5)  # the pairing's
    assert epc.grad_check is False and epc.traces is False
    cpc = resolved.protocol.consciousness_prior
    assert cch.circuit_sizes(cpc, resolved.circuit) == [2 * cpc.obs_dim, 32, cpc.n_variables]
    # a table given in part starts from the pairing's table, not the protocol's
    given = _resolve("protocol.equilibrium_propagation.beta=0.3").protocol.equilibrium_propagation
    assert given.beta == 0.3 and given.grad_check is False
    with pytest.raises(ConfigError, match="do not fit the world"):
        _resolve("circuit.sizes=[64, 8, 2]")
    with pytest.raises(ConfigError, match="n_train and n_test must stay 0"):
        _resolve("protocol.equilibrium_propagation.n_train=50")
    with pytest.raises(ConfigError, match="hidden_layer"):
        _resolve("protocol.hidden_layer=2")
    with pytest.raises(ConfigError, match="stage must be 'train'"):
        _resolve("protocol.equilibrium_propagation.stage=gradient-check")
    # the EP protocol's own checks, naming the pairing's table
    with pytest.raises(ConfigError, match=r"protocol\.equilibrium_propagation\.lr needs one rate"):
        _resolve("protocol.equilibrium_propagation.lr=[0.1]")
    with pytest.raises(ConfigError, match=r"window_start_ms = 20 must be shorter than one example"):
        _resolve(readout="spiking")  # 20 free and 2 × 4 nudged steps of 0.5 ms: 14 ms
    with pytest.raises(ConfigError, match="runs a Hopfield circuit"):
        _resolve(circuit="microcircuit")
    overrides = parse_overrides(["protocol.pairing=consciousness-prior-microcircuit"])
    with pytest.raises(ConfigError, match="runs the microcircuit, not 'hopfield'"):
        pipeline.resolve(
            pipeline.build_raw(None, {"protocol": "compare", "circuit": "hopfield"}, overrides)
        )


# ------------------------------------------------------------------------------ known answers
def test_reference_errors_known_answers() -> None:
    """A next state exactly linear in the observation: the linear reference's error is 0; the
    mean's is the test variance about the training mean over the test variance."""
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.normal(size=(200, 5)), rng.normal(size=(100, 5))
    a = rng.normal(size=(5, 3))
    y_tr, y_te = x_tr @ a + 1.0, x_te @ a + 1.0
    samples = SimpleNamespace(
        train=SimpleNamespace(x_t=torch.as_tensor(x_tr)), z_next_train=y_tr, x_test=x_te,
        z_next_test=y_te,
    )  # fmt: skip
    refs = cch.reference_errors(samples)  # type: ignore[arg-type]
    assert refs["linear"] == pytest.approx(0.0, abs=1e-20)
    expect = np.mean(np.mean((y_te - y_tr.mean(axis=0)) ** 2, axis=0) / y_te.var(axis=0))
    assert refs["mean"] == pytest.approx(expect)


def test_the_twin_predictor_is_the_free_phase_mapped_back() -> None:
    """With W2 = 0 the output's drive is b2, so after n steps of ½ its state is b2 (1 − ½ⁿ):
    rates 0.1 and 0.8 after 60 steps, which the target mapping sends to lo and hi."""
    twin = ep.EPParameters((8, 5, 2), dt=0.5, free_steps=60)
    w = {k: v.numpy() for k, v in ep.init_weights(twin.sizes, seed=1).items()}
    w["W2"] = np.zeros_like(w["W2"])
    w["b2"] = np.array([ds.NPZ_TARGET_OFF, ds.NPZ_TARGET_OFF + ds.NPZ_TARGET_SPAN])
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
    predict = cch.circuit_predictor(twin, w, lo, hi, scale=1.0)
    x = np.random.default_rng(2).normal(size=(6, 4))
    np.testing.assert_allclose(predict(x), np.tile([-1.0, 2.0], (6, 1)), atol=1e-12)
    # after 2 steps the state is ¾ of b2
    short = cch.circuit_predictor(ep.EPParameters((8, 5, 2), free_steps=2), w, lo, hi, 1.0)
    rates = 0.75 * w["b2"]
    expect = lo + (rates - ds.NPZ_TARGET_OFF) / ds.NPZ_TARGET_SPAN * (hi - lo)
    np.testing.assert_allclose(short(x), np.tile(expect, (6, 1)), atol=1e-12)


# ------------------------------------------------------------------------------ slow
#: a tiny world: 36 observed dimensions (72 on/off inputs), 2 variables (each the other's parent),
#: 2 epochs of 60 transitions, a circuit 72-8-2
TINY = [
    "--pairing", PAIRING,
    "--epochs", "2",
    "--set", "circuit.sizes=[72, 8, 2]",
    "--set", "protocol.consciousness_prior.n_variables=2",
    "--set", "protocol.consciousness_prior.n_parents=1",
    "--set", "protocol.consciousness_prior.k=1",
    "--set", "protocol.consciousness_prior.obs_dim=36",
    "--set", "protocol.consciousness_prior.n_train=60",
    "--set", "protocol.consciousness_prior.n_test=30",
    "--set", "protocol.consciousness_prior.steps=20",
    "--set", "protocol.consciousness_prior.log_every=10",
]  # fmt: skip


@pytest.mark.slow
def test_pairing_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The tiny world through the command: the table, the metrics, the figures, the weights; the
    twin's free phase reproduces the Brian2 circuit's held-out output rates."""
    out = tmp_path / "cmp"
    assert main(["compare", "--no-progress", "--seed", "2", "--out", str(out), *TINY]) == 0
    table = (out / "comparison.md").read_text()
    assert table in capsys.readouterr().out and "| predictor |" in table
    m = json.loads((out / "metrics.json").read_text())
    assert m["pairing"] == PAIRING and m["circuit_sizes"] == [72, 8, 2]
    assert m["circuit_readout"] == "rate" and len(m["circuit_mse_history"]) == 3
    # the twin that the shift test and the sensitivities use is the circuit's free phase
    assert m["circuit_twin_max_rate_difference"] < 1e-6
    assert m["circuit_error_in_twin"] == pytest.approx(m["circuit_error_in_brian2"], rel=1e-6)
    assert m["circuit_compilations"] <= 1  # the held-out pass reuses the training's build
    names = {"slots_bottleneck", "slots_baseline", "circuit_hidden", "circuit_output",
             "observations", "circuit_hidden_untrained", "random",
             "circuit_hidden_shuffled"}  # fmt: skip
    assert set(m["probe_r2"]) == names
    assert m["probe_r2"]["observations"] > 0.9
    for kind in ("circuit", "bottleneck", "baseline"):
        assert 0.0 <= m[f"parent_share_{kind}"] <= 1.0
        assert m[f"shift_error_ratio_{kind}"] == pytest.approx(
            m[f"error_shift_{kind}"] / m[f"error_in_{kind}"]
        )
    assert m["reference_error_in_linear"] >= 0.0 and 0.9 < m["reference_error_in_mean"] < 1.2
    assert m["circuit_dead_units"] == {"layer1": 0, "layer2": 0}  # the pairing's settings learn
    for name in ("sensitivity", "shift_errors", "rdms"):
        assert (out / "figures" / f"{name}.png").is_file()
    weights = np.load(out / "weights.npz")
    assert weights["circuit_W1"].shape == (8, 72)
    assert weights["circuit_initial_W1"].shape == (8, 72)


@pytest.mark.slow
def test_pairing_spiking_end_to_end(tmp_path: Path) -> None:
    """The spiking read-out: the hidden rates of the tables come from the recorded spike trains
    (elephant, from 7 ms into each 14 ms example), not from the states."""
    out = tmp_path / "cmp"
    argv = ["compare", "--no-progress", "--readout", "spiking", "--out", str(out), *TINY]
    assert main([*argv, "--set", "protocol.window_start_ms=7.0"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["circuit_readout"] == "spiking"
    assert m["probe_r2"]["observations"] > 0.9
    assert np.isfinite(m["cka"]["slots_bottleneck"]["circuit_hidden"])
    import neo

    reader = neo.io.NixIO(str(out / "recording.nix"), mode="ro")
    try:
        segment = next(s for s in reader.read_block().segments if s.name == "held-out-observations")
        trains = [t for t in segment.spiketrains if t.name.startswith("layer1_")]
        assert len(trains) == 8 and sum(len(t) for t in trains) > 0
        assert max(float(t.t_stop) for t in trains) == pytest.approx(30 * 0.014)  # 30 examples
    finally:
        reader.close()

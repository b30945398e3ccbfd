"""The ``consciousness-prior-microcircuit`` pairing of ``neurosim compare`` (issue 17): the
measures on arrays with known answers, the data set the circuit learns, the configuration, and
the command end to end on a tiny world (the ICF pairing's tiny build: 144-8-2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis import compare_consciousness as acc
from neurosim import datasets as ds
from neurosim.cli import PAIRINGS as CLI_PAIRINGS
from neurosim.cli import main, pipeline
from neurosim.config import parse_overrides
from neurosim.errors import ConfigError
from protocols import compare as pc
from protocols import compare_consciousness_microcircuit as ccp
from protocols import consciousness_pairing as cpair
from protocols.consciousness_prior import world as cp_world
from protocols.consciousness_prior.config import ConsciousnessPriorConfig

PAIRING = "consciousness-prior-microcircuit"


def test_every_pairing_is_offered_by_the_command() -> None:
    assert CLI_PAIRINGS == pc.PAIRINGS
    assert PAIRING in pc.PAIRINGS


# ------------------------------------------------------------------------------ measures
def _looking_data(n: int = 4) -> dict:
    parents = np.zeros((n, n), dtype=bool)
    for i in range(n):
        parents[i, (i + 1) % n] = parents[i, (i + 2) % n] = True
    match = np.array([2, 0, 3, 1])  # slot i of the bottleneck predicts variable match[i]
    return {
        "parents": parents,
        "sensitivity": {
            "circuit": parents * 2.0,  # reads only the parents
            "bottleneck": parents[match] * 1.0 + 0.0,
            "baseline": np.ones((n, n)),  # reads everything alike
        },
        "matches": {"circuit": np.arange(n), "bottleneck": match, "baseline": np.arange(n)},
        "errors_in": {k: np.full(n, 0.5) for k in ("circuit", "bottleneck", "baseline")},
        "errors_shift": {
            "circuit": np.full(n, 0.5),
            "bottleneck": np.full(n, 0.6),
            "baseline": np.full(n, 1.0),
        },  # fmt: skip
        "attention_selected": parents.copy(),
        # the circuit's weights traced from the variables: hidden unit i reads the on and off
        # channels of observed dimension i, which shows variable i alone; output i reads the
        # hidden units of its parents
        "mixing": np.eye(n),
        "circuit_forward_weights": [np.hstack([np.eye(n), np.eye(n)]), parents * 1.0],
    }


def test_looking_table_known_answers() -> None:
    rows = {r["name"]: r for r in acc.looking_table(_looking_data())}
    assert rows["circuit"]["parent_share"] == pytest.approx(1.0)
    assert rows["circuit"]["parent_share_traced"] == pytest.approx(1.0)
    assert rows["bottleneck"]["parent_share"] == pytest.approx(1.0)  # through the matching
    assert rows["baseline"]["parent_share"] == pytest.approx(0.5)  # 2 parents of 4
    assert rows["baseline"]["parent_share_chance"] == pytest.approx(0.5)
    assert rows["bottleneck"]["attention_precision"] == pytest.approx(1.0)
    assert "attention_precision" not in rows["circuit"]
    assert rows["circuit"]["shift_error_ratio"] == pytest.approx(1.0)
    assert rows["bottleneck"]["shift_error_ratio"] == pytest.approx(1.2)
    assert rows["baseline"]["shift_error_ratio"] == pytest.approx(2.0)


def test_representation_table_known_answers() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 3))
    reps = {
        "slots_bottleneck": z @ rng.normal(size=(3, 3)),  # an invertible mixture of z
        "circuit_hidden": np.tanh(z @ rng.normal(size=(3, 8)) / 3),
        "random": rng.normal(size=(120, 8)),
    }
    rows = {r["name"]: r for r in acc.representation_table(z, reps)}
    assert rows["slots_bottleneck"]["probe_r2"] > 0.99
    assert rows["circuit_hidden"]["probe_r2"] > 0.9
    assert rows["random"]["probe_r2"] < 0.1
    assert rows["circuit_hidden_shuffled"]["probe_r2"] < 0.1
    assert rows["slots_bottleneck"]["cka_slots_bottleneck"] == pytest.approx(1.0)
    assert rows["circuit_hidden"]["rsa_circuit_hidden"] == pytest.approx(1.0)
    table = acc.markdown_tables(list(rows.values()), acc.looking_table(_looking_data()))
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == (1 + 4) + (1 + 3)  # header and rows of each table


# ------------------------------------------------------------------------------ data set
def test_the_circuit_learns_the_next_values_and_decodes_them_back(tmp_path: Path) -> None:
    """The npz data set holds x_t → z_{t+1} of the same transitions; the circuit's output rates
    map back onto the variables exactly."""
    cfg = ConsciousnessPriorConfig(n_variables=4, n_parents=2, obs_dim=10, n_train=50, n_test=20)
    samples = cp_world.sample(cfg, seed=3)
    path = tmp_path / "w.npz"
    lo, hi = cpair.write_dataset(samples, path)
    data, default = ds.npz(f"npz:{path}")
    assert default.code == "on-off" and data.task == "regression"
    np.testing.assert_allclose(data.x_train, samples.train.x_t.numpy(), rtol=1e-6)
    np.testing.assert_allclose(cpair.rates_to_values(data.y_train, lo, hi), samples.z_next_train)
    np.testing.assert_allclose(cpair.rates_to_values(data.y_test, lo, hi), samples.z_next_test)
    # the next states follow the training states through the world's dynamics
    mean_next = np.tanh(samples.train.z_t.numpy() @ samples.world.weights.T + samples.world.bias)
    resid = samples.z_next_train - mean_next
    assert abs(resid.std() - samples.world.latent_noise) < 0.05


def test_linear_reference_recovers_a_linear_map() -> None:
    """z_{t+1} = A x + b exactly: the linear reference predicts it on new observations."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(40, 5))
    predict = cpair.linear_predictor(x, x @ a + b)
    x_new = rng.normal(size=(7, 5))
    np.testing.assert_allclose(predict(x_new), x_new @ a + b, atol=1e-10)


# ------------------------------------------------------------------------------ configuration
def _resolve(*sets: str):  # noqa: ANN202
    overrides = parse_overrides([f"protocol.pairing={PAIRING}", *sets])
    return pipeline.resolve(pipeline.build_raw(None, {"protocol": "compare"}, overrides))


def test_pairing_config() -> None:
    resolved = _resolve()
    cpc, training = resolved.protocol.consciousness_prior, resolved.protocol.training
    assert (cpc.obs_dim, cpc.n_train, cpc.n_test) == (32, 1000, 500)
    assert training.shallow is False and training.eta_ip == 0.002  # the mnist1d preset's
    # the pairing's own, as its figures were measured (not moved by the preset's retune)
    assert training.eta_forward == [0.0125, 0.0025] and training.backprop_lr == 0.001
    assert training.w_scale == ccp.TRAINING_OVERRIDES["w_scale"]
    assert training.backprop_epochs == ccp.TRAINING_OVERRIDES["backprop_epochs"]
    # the ICF pairing keeps its own training table
    assert pc.CompareConfig().training.w_scale is None
    assert (
        _resolve("protocol.consciousness_prior.steps=7").protocol.consciousness_prior.obs_dim == 32
    )
    with pytest.raises(ConfigError, match="do not fit the world"):
        _resolve("circuit.sizes=[64, 8, 2]")
    with pytest.raises(ConfigError, match="n_train and n_test must stay unset"):
        _resolve("protocol.training.n_train=50")
    with pytest.raises(ConfigError, match="hidden_layer"):
        _resolve("protocol.hidden_layer=2")


# ------------------------------------------------------------------------------ end to end
#: a tiny world the ICF pairing's tiny build (144-8-2) fits: 72 observed dimensions (144 on/off
#: inputs), 2 variables (each the other's parent), 1 epoch of 40 transitions
TINY = [
    "--pairing", PAIRING,
    "--epochs", "1",
    "--set", "circuit.sizes=[144, 8, 2]",
    "--set", "protocol.consciousness_prior.n_variables=2",
    "--set", "protocol.consciousness_prior.n_parents=1",
    "--set", "protocol.consciousness_prior.k=1",
    "--set", "protocol.consciousness_prior.obs_dim=72",
    "--set", "protocol.consciousness_prior.n_train=40",
    "--set", "protocol.consciousness_prior.n_test=30",
    "--set", "protocol.consciousness_prior.steps=20",
    "--set", "protocol.consciousness_prior.log_every=10",
    "--set", "protocol.training.pattern_ms=10.0",
    "--set", "protocol.training.learning_lag_ms=2.0",
    "--set", "protocol.window_start_ms=2.0",
]  # fmt: skip


@pytest.mark.slow  # the whole pairing command (its steps run in the default tier)
def test_pairing_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", "--no-progress", "--seed", "2", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    table = (out / "comparison.md").read_text()
    assert table in printed and "| predictor |" in table
    m = json.loads((out / "metrics.json").read_text())
    assert m["pairing"] == PAIRING and m["circuit_sizes"] == [144, 8, 2]
    names = {"slots_bottleneck", "slots_baseline", "circuit_hidden", "circuit_output",
             "backprop_hidden", "observations", "circuit_hidden_untrained", "random",
             "circuit_hidden_shuffled"}  # fmt: skip
    assert set(m["probe_r2"]) == names
    assert m["probe_r2"]["observations"] > 0.9  # x = M z + noise carries z linearly
    assert m["cka"]["circuit_hidden"]["circuit_hidden"] == pytest.approx(1.0)
    for kind in ("circuit", "bottleneck", "baseline", "circuit_backprop", "linear"):
        assert 0.0 <= m[f"parent_share_{kind}"] <= 1.0
        assert m[f"shift_error_ratio_{kind}"] == pytest.approx(
            m[f"error_shift_{kind}"] / m[f"error_in_{kind}"]
        )
    # the bottleneck's errors are the consciousness-prior protocol's own measures
    assert m["error_in_bottleneck"] == pytest.approx(m["cp_error_in_bottleneck"])
    # the backprop reference: the preset's epochs, its held-out MSE after each
    assert len(m["circuit_backprop_mse_history"]) == ccp.TRAINING_OVERRIDES["backprop_epochs"]
    assert "backprop_hidden" in m["probe_r2"]
    for name in ("sensitivity", "shift_errors", "rdms"):
        assert (out / "figures" / f"{name}.png").is_file()
    weights = np.load(out / "weights.npz")
    assert weights["circuit_W1"].shape == (8, 144)
    assert any(k.startswith("cp_bottleneck/") for k in weights.files)


# ------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_pairing_spiking_end_to_end(tmp_path: Path) -> None:
    """The spiking read-out: the circuit's hidden rates come from its recorded spike trains."""
    out = tmp_path / "cmp"
    assert main(["compare", "--no-progress", "--readout", "spiking", "--out", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["circuit_readout"] == "spiking"
    assert m["probe_r2"]["observations"] > 0.9
    assert np.isfinite(m["cka"]["slots_bottleneck"]["circuit_hidden"])


@pytest.mark.slow
def test_pairing_twin_agrees_with_the_brian2_circuit(tmp_path: Path) -> None:
    """The default pairing (seed 1, 1 epoch): the steady-state twin that the shift test and the
    sensitivities use predicts what the Brian2 circuit outputs on the held-out observations."""
    out = tmp_path / "cmp"
    argv = ["compare", "--pairing", PAIRING, "--epochs", "1", "--seed", "1", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["circuit_twin_output_correlation"] > 0.95
    assert m["circuit_error_in_twin"] == pytest.approx(m["circuit_error_in_brian2"], rel=0.1)

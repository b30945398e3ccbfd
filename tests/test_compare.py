"""``neurosim compare`` (issue 5): the ``gridworld`` data set, the comparison analysis on arrays
with known answers, spike trains to rates with elephant, and the command end to end on a tiny
configuration (one compiled build)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis import compare as acmp
from neurosim import datasets as ds
from neurosim import grid_world as gw
from neurosim.cli import main, pipeline
from neurosim.config import parse_overrides
from neurosim.errors import ConfigError


# ------------------------------------------------------------------------------ data set
def test_gridworld_dataset() -> None:
    d = ds.load("gridworld", seed=3)
    n = len(gw.all_positions())
    assert d.x_train.shape == (ds.GRIDWORLD_COPIES * n, 144) and d.x_test.shape == (n, 144)
    assert d.task == "regression" and d.phi == "logistic" and d.n_outputs == 2
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    # test: the clean images in all_positions order, targets their positions
    clean = gw.render(gw.all_positions()).reshape(n, -1)
    np.testing.assert_array_equal(d.x_test, clean)
    np.testing.assert_allclose(ds.gridworld_positions(d.y_test), gw.all_positions(), atol=1e-12)
    assert d.y_test.min() == pytest.approx(0.1) and d.y_test.max() == pytest.approx(0.8)
    np.testing.assert_allclose(1 / (1 + np.exp(-d.u_train)), d.y_train)
    # train: noisy copies of every position, the noise small and zero-mean before clipping
    noise = d.x_train - np.tile(clean, (ds.GRIDWORLD_COPIES, 1))
    assert 0.5 * ds.GRIDWORLD_NOISE < noise.std() < ds.GRIDWORLD_NOISE
    np.testing.assert_array_equal(d.y_train, np.tile(d.y_test, (ds.GRIDWORLD_COPIES, 1)))
    # deterministic by seed
    again, other = ds.load("gridworld", seed=3), ds.load("gridworld", seed=4)
    np.testing.assert_array_equal(d.x_train, again.x_train)
    assert not np.array_equal(d.x_train, other.x_train)


def test_gridworld_is_a_feedback_cancellation_dataset() -> None:
    raw = pipeline.build_raw(
        None, {"protocol": "feedback-cancellation", "dataset": "gridworld"}, {}
    )  # fmt: skip
    resolved = pipeline.resolve(raw)
    from protocols.feedback_cancellation import Task

    task = Task(resolved.run, resolved.protocol, resolved.circuit)
    assert task.sizes == [144, 32, 2] and task.phi == "logistic"


def test_compare_trains_the_circuit_with_the_gridworld_preset() -> None:
    """The comparison's circuit table and [protocol.training] default to feedback cancellation's
    gridworld preset (no copy of its values), without the shallow learner and backprop."""
    from neurosim import presets
    from protocols.feedback_cancellation import FeedbackCancellation

    tables = presets.load(FeedbackCancellation, "gridworld")
    raw = {"run": {"protocol": "compare"}, "protocol": {"training": {"n_train": 50}}}
    resolved = pipeline.resolve(raw)
    training = resolved.protocol.training
    assert training.n_train == 50 and not training.shallow and training.backprop_epochs == 0
    for key in ("eta_forward", "eta_ip", "eta_pi", "eta_decay", "w_gain", "b_scale"):
        assert getattr(training, key) == tables["protocol"][key], key
    assert list(resolved.circuit.sizes) == tables["circuit"]["sizes"]
    assert resolved.circuit.phi == tables["circuit"]["phi"]


# ------------------------------------------------------------------------------ analysis
def _rotation_embedding(positions: np.ndarray, units: int, seed: int) -> np.ndarray:
    """The positions (shifted by 1: no all-zero row, whose correlation distance is undefined)
    through an orthonormal 2 → ``units`` map: linear CKA with the positions is exactly 1 (CKA
    centres and is blind to rotations), a linear probe recovers them exactly."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((units, 2)))
    return (positions + 1.0) @ q.T


def test_comparison_table_known_answers() -> None:
    pos = gw.all_positions().astype(float)
    rot = _rotation_embedding(pos, 8, seed=1)
    reps = {
        "circuit_hidden": rot,
        "icf_hidden": 2.5 * rot,  # a rescaled copy: CKA and RSA exactly 1
        "icf_features": _rotation_embedding(pos, 4, seed=2),
        "random": np.random.default_rng(0).standard_normal((len(pos), 8)),
    }
    rows = {r["name"]: r for r in acmp.comparison_table(pos, reps)}
    for name in ("circuit_hidden", "icf_hidden", "icf_features"):
        assert rows[name]["probe_r2_x"] > 0.999 and rows[name]["probe_r2_y"] > 0.999
        assert rows[name]["cka_positions"] == pytest.approx(1.0, abs=1e-9)
    assert rows["icf_hidden"]["cka_circuit_hidden"] == pytest.approx(1.0, abs=1e-9)
    assert rows["icf_hidden"]["rsa_circuit_hidden"] == pytest.approx(1.0, abs=1e-4)  # fp ties
    # two different rotations of the same plane: CKA 1 (orthogonal invariance)
    assert rows["icf_features"]["cka_circuit_hidden"] == pytest.approx(1.0, abs=1e-9)
    rnd = rows["random"]
    assert rnd["probe_r2_x"] < 0.1 and rnd["probe_r2_y"] < 0.1
    assert abs(rnd["cka_positions"]) < 0.1 and abs(rnd["cka_circuit_hidden"]) < 0.1
    assert abs(rnd["rsa_circuit_hidden"]) < 0.1
    shuffled = rows["circuit_hidden_shuffled"]
    assert shuffled["probe_r2_x"] < 0.1 and shuffled["probe_r2_y"] < 0.1
    table = acmp.markdown_table(list(rows.values()))
    assert table.count("\n") == 2 + len(rows) and "—" in table  # shuffled row: no CKA


def test_spike_rates_with_elephant() -> None:
    # two neurons, three patterns of 100 ms
    times = [
        np.array([0.005, 0.015, 0.150, 0.160, 0.170, 0.299]),
        np.array([0.250]),
    ]
    whole = acmp.spike_rates(times, n_patterns=3, pattern_ms=100.0)
    np.testing.assert_allclose(whole, [[20.0, 0.0], [30.0, 0.0], [10.0, 10.0]])
    # counting from 20 ms after each image change drops the first pattern's two spikes
    late = acmp.spike_rates(times, n_patterns=3, pattern_ms=100.0, window_start_ms=20.0)
    np.testing.assert_allclose(late, [[0.0, 0.0], [3 / 0.08, 0.0], [1 / 0.08, 1 / 0.08]])
    with pytest.raises(ValueError, match="window_start_ms"):
        acmp.spike_rates(times, 3, 100.0, window_start_ms=100.0)


def test_representations_use_spikes_for_the_spiking_readout() -> None:
    pos = gw.all_positions()
    n = len(pos)
    # neuron 0 fires x + 1 spikes in each 100 ms image window, neuron 1 fires y + 1
    times = [
        np.concatenate([p * 0.1 + 0.02 + 0.005 * np.arange(c + 1) for p, c in enumerate(col)])
        for col in (pos[:, 0], pos[:, 1])
    ]
    data = {
        "positions": pos,
        "circuit_hidden": np.zeros((n, 2)),  # replaced by the spike rates
        "hidden_spikes": {"times_s": times, "n_patterns": n, "pattern_ms": 100.0,
                          "window_start_ms": 10.0, "t_stop_s": n * 0.1},
        "seed": 1,
    }  # fmt: skip
    reps = acmp.representations(data)
    np.testing.assert_allclose(reps["circuit_hidden"], (pos + 1) / 0.09)
    assert reps["random"].shape == (n, 2)


def test_analyse_writes_table_and_figures(tmp_path: Path) -> None:
    pos = gw.all_positions()
    rng = np.random.default_rng(3)
    rot = _rotation_embedding(pos.astype(float), 32, seed=4)
    data = {
        "positions": pos,
        "icf_features": np.tanh(_rotation_embedding(pos.astype(float), 4, seed=5) / 5),
        "icf_hidden": np.maximum(rot + 0.1 * rng.standard_normal(rot.shape), 0) + 0.01,
        "circuit_hidden": 1 / (1 + np.exp(-rot / 5)),
        "circuit_output": ds.gridworld_rates(pos),
        "circuit_hidden_untrained": rng.uniform(0.4, 0.6, rot.shape),
        "pixels": gw.render(pos).reshape(len(pos), -1),
        "seed": 1,
    }
    metrics = acmp.analyse(data, tmp_path / "figures")
    table = (tmp_path / "comparison.md").read_text()
    assert table == metrics["comparison_table"]
    for label in ("ICF features", "ICF 32-unit layer", "circuit hidden rates", "control: random"):
        assert label in table
    for name in ("rdms", "probe_predictions", "circuit_hidden_maps", "icf_hidden_maps"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000
    assert metrics["probe_r2_x_circuit_output"] > 0.999  # the rates are a linear code of (x, y)
    assert metrics["probe_r2"]["random"]["x"] < 0.2
    assert metrics["cka_icf_hidden_circuit_hidden"] > 0.5
    assert metrics["cka"]["circuit_hidden"]["random"] < 0.2
    json.dumps(metrics)  # plain data only


# ------------------------------------------------------------------------------ command line
def _resolve(*sets: str):
    return pipeline.resolve(
        pipeline.build_raw(None, {"protocol": "compare"}, parse_overrides(sets))
    )


def test_compare_config() -> None:
    resolved = _resolve()
    assert resolved.run.readout == "rate" and resolved.run.circuit == "microcircuit"
    assert resolved.protocol.training.shallow is False  # the comparison's own defaults ...
    assert _resolve("protocol.training.pattern_ms=50.0").protocol.training.shallow is False
    assert _resolve("protocol.icf.steps=7").protocol.icf.steps == 7  # ... under given tables
    with pytest.raises(ConfigError, match="supervised"):
        _resolve("protocol.training.stage=self-predicting")
    with pytest.raises(ConfigError, match="n_test"):
        _resolve("protocol.training.n_test=50")
    with pytest.raises(ConfigError, match="pairing"):
        _resolve("protocol.pairing=icf-hopfield")
    with pytest.raises(ConfigError, match="do not fit"):
        _resolve("circuit.sizes=[64, 8, 2]")
    with pytest.raises(ConfigError, match="hidden_layer"):
        _resolve("protocol.hidden_layer=2")


#: a comparison small enough for the default tier: 20 ICF steps, 20 training images, 1 epoch
TINY = [
    "--epochs", "1",
    "--set", "circuit.sizes=[144, 8, 2]",
    "--set", "protocol.icf.steps=20",
    "--set", "protocol.icf.log_every=10",
    "--set", "protocol.training.n_train=20",
    "--set", "protocol.training.pattern_ms=10.0",
    "--set", "protocol.training.learning_lag_ms=2.0",
    "--set", "protocol.window_start_ms=2.0",
]  # fmt: skip


@pytest.mark.slow  # the whole ICF pairing command (the pairing steps run in the default tier)
def test_compare_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", "--no-progress", "--seed", "2", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    table = (out / "comparison.md").read_text()
    assert table in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "compare" and metrics["circuit_readout"] == "rate"
    assert metrics["circuit_sizes"] == [144, 8, 2] and metrics["icf_steps"] == 20
    names = {"icf_features", "icf_hidden", "circuit_hidden", "circuit_output", "pixels",
             "circuit_hidden_untrained", "random", "circuit_hidden_shuffled"}  # fmt: skip
    assert set(metrics["probe_r2"]) == names
    assert set(metrics["cka"]["circuit_hidden"]) == names - {"circuit_hidden_shuffled"}
    # images and positions line up: the pixels carry the position linearly
    assert metrics["probe_r2"]["pixels"]["x"] > 0.9 and metrics["probe_r2"]["pixels"]["y"] > 0.9
    assert metrics["cka"]["circuit_hidden"]["circuit_hidden"] == pytest.approx(1.0)
    for name in ("rdms", "probe_predictions", "circuit_hidden_maps", "icf_hidden_maps"):
        assert (out / "figures" / f"{name}.png").is_file()
    weights = np.load(out / "weights.npz")
    assert weights["circuit_W1"].shape == (8, 144)
    assert any(k.startswith("icf_encoder.") for k in weights.files)


def test_compare_command_errors(capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "--set", "protocol.training.stage=error-transport"]) == 2
    assert "supervised" in capsys.readouterr().err
    assert main(["compare", "--epochs", "0"]) == 2


# ------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_compare_spiking_end_to_end(tmp_path: Path) -> None:
    """The spiking read-out: the hidden rates come from the recorded spike trains."""
    out = tmp_path / "cmp"
    assert main(["compare", "--no-progress", "--readout", "spiking", "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["circuit_readout"] == "spiking"
    assert metrics["probe_r2"]["pixels"]["x"] > 0.9
    assert np.isfinite(metrics["cka"]["icf_hidden"]["circuit_hidden"])


@pytest.mark.slow
def test_default_compare_circuit_encodes_position(tmp_path: Path) -> None:
    """The default comparison (seed 1, rate read-out): the trained circuit's hidden rates encode
    the square's position. The bounds leave room for other seeds and machines and stay far above
    the untrained control (measured values: README, comparing models with circuits)."""
    out = tmp_path / "cmp"
    assert main(["compare", "--no-progress", "--seed", "1", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["probe_r2"]["circuit_hidden"]["x"] > 0.8 and m["probe_r2"]["circuit_hidden"]["y"] > 0.8
    untrained = m["probe_r2"]["circuit_hidden_untrained"]
    assert untrained["x"] < 0.5 and untrained["y"] < 0.5
    assert m["probe_r2"]["icf_features"]["x"] > 0.9 and m["probe_r2"]["icf_features"]["y"] > 0.9
    assert m["cka_icf_hidden_circuit_hidden"] > 0.5
    assert m["circuit_test_mse"] < 0.02 < m["circuit_mse_history"][0]

"""The feedback-cancellation protocol end to end through the command line: configuration checks,
a tiny self-predicting run (the apical potentials fall) and a tiny supervised teacher–student run
(test error falls below its start), each compiling one build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurosim.cli import main, pipeline
from neurosim.config import parse_overrides
from neurosim.errors import ConfigError, NeurosimError
from protocols.feedback_cancellation.task import gate_rows
from tests.test_spike_sample import check_spike_recording


def _resolve(*sets: str, dataset: str | None = "teacher"):
    raw = pipeline.build_raw(
        None,
        {"protocol": "feedback-cancellation", "circuit": "microcircuit", "dataset": dataset},
        parse_overrides(sets),
    )
    return pipeline.resolve(raw)


def test_digits_defaults_depend_on_the_readout() -> None:
    """Digits: the rate read-out's forward rates (2.5e-3, × 5 in the hidden layer, × 0.9 per
    epoch, W^PI fixed); the spiking read-out's own (1.25e-3, × 3, constant, η_PI = 5e-3)."""
    rate = _resolve("run.readout=rate", dataset="digits")
    assert rate.run.preset == "digits"
    assert rate.protocol.eta_forward == [2.5e-3 * 5.0, 2.5e-3]
    assert (rate.protocol.eta_pi, rate.protocol.eta_decay) == (0.0, 0.9)
    spiking = _resolve("run.readout=spiking", dataset="digits")
    assert spiking.run.preset == "digits-spiking"
    assert spiking.protocol.eta_forward == [1.25e-3 * 3.0, 1.25e-3]
    assert (spiking.protocol.eta_pi, spiking.protocol.eta_decay) == (5e-3, 1.0)
    teacher = _resolve("run.readout=spiking")
    assert teacher.run.preset == "teacher" and teacher.protocol.eta_forward == [3e-2, 3e-2]
    assert _resolve(dataset=None).run.preset == "digits"
    assert _resolve(dataset="gridworld").run.preset == "gridworld"
    mnist1d = _resolve(dataset="mnist1d")  # issue 16: on/off inputs, 80-100-10
    assert mnist1d.run.preset == "mnist1d" and mnist1d.run.input_code == "on-off"
    assert list(mnist1d.circuit.sizes) == [80, 100, 10] and mnist1d.circuit.phi == "logistic"


def test_presets_are_complete_and_valid() -> None:
    """Every preset resolves on its own and fits its data set; the table's own defaults are the
    digits preset's, so a setting left out of a file means the same as in the default preset."""
    from neurosim import presets
    from protocols.feedback_cancellation import FeedbackCancellation, FeedbackCancellationConfig

    names = presets.available(FeedbackCancellation)
    assert set(names) == {
        "digits",
        "digits-prospective",
        "digits-prospective-batch32",
        "digits-spiking",
        "mnist1d",
        "mnist1d-prospective",
        "teacher",
        "gridworld",
    }
    for name in names:
        assert names[name], name  # a description
        resolved = pipeline.resolve({"run": {"protocol": "feedback-cancellation", "preset": name}})
        tables = presets.load(FeedbackCancellation, name)
        assert resolved.run.dataset == tables["run"]["dataset"]
        for key, value in tables["protocol"].items():
            assert getattr(resolved.protocol, key) == value, (name, key)
        assert list(resolved.circuit.sizes) == tables["circuit"]["sizes"]
    digits = presets.load(FeedbackCancellation, "digits")["protocol"]
    defaults = FeedbackCancellationConfig()
    for key, value in digits.items():
        assert getattr(defaults, key) == value, key
    with pytest.raises(ConfigError, match="made for dataset"):
        _resolve("run.preset=digits", dataset="teacher")


@pytest.mark.parametrize("dataset", ["digits", "mnist1d"])
def test_prospective_preset_is_compressed_fivefold_in_time(dataset: str) -> None:
    """<dataset>-prospective: prospective neurons, and the data set's preset's times (pattern,
    learning lag, plasticity low-pass) ÷ 5 with its learning rates × 5; everything else the same."""
    from neurosim import presets
    from protocols.feedback_cancellation import FeedbackCancellation

    base = presets.load(FeedbackCancellation, dataset)
    pro = presets.load(FeedbackCancellation, f"{dataset}-prospective")
    assert pro["circuit"].pop("neuron") == "prospective" and "neuron" not in base["circuit"]
    scaled = {"pattern_ms": 0.2, "learning_lag_ms": 0.2, "eta_ip": 5.0}
    scaled.update(self_predicting_eta_ip=5.0, self_predicting_eta_pi=5.0)
    for key, value in base["protocol"].items():
        factor = scaled.get(key, 1.0)
        if key == "eta_forward":
            assert pro["protocol"][key] == pytest.approx([5.0 * v for v in value]), key
        elif isinstance(value, float):
            assert pro["protocol"][key] == pytest.approx(factor * value), key
        else:
            assert pro["protocol"][key] == value, key
    for key, value in base["circuit"].items():
        assert pro["circuit"][key] == (value / 5.0 if key == "tau_w" else value), key
    resolved = _resolve(f"run.preset={dataset}-prospective", dataset=dataset)
    assert resolved.circuit.neuron == "prospective" and resolved.protocol.pattern_ms == 20.0


def test_batch32_preset_is_the_prospective_preset_at_batch_32_with_its_rates() -> None:
    """digits-prospective-batch32: the digits-prospective preset with 32 copies and 10 epochs,
    every other setting the same, the learning rates and their per-epoch decay included (each
    rate applies to each copy's change: the linear scaling rule, README batch mode)."""
    from neurosim import presets
    from protocols.feedback_cancellation import FeedbackCancellation

    base = presets.load(FeedbackCancellation, "digits-prospective")
    batch = presets.load(FeedbackCancellation, "digits-prospective-batch32")
    assert batch["circuit"].pop("batch") == 32 and "batch" not in base["circuit"]
    assert batch["run"].pop("epochs") == 10 and "epochs" not in base["run"]
    assert batch == base
    resolved = _resolve("run.preset=digits-prospective-batch32", dataset="digits")
    assert resolved.circuit.batch == 32 and resolved.run.epochs == 10
    assert resolved.protocol.eta_forward == [0.0625, 0.0125] and resolved.protocol.eta_decay == 0.9


def test_a_circuit_too_large_for_memory_is_refused_before_building() -> None:
    """circuit.sizes that cannot fit are refused in one sentence with the estimate."""
    from circuits import microcircuit as mc
    from neurosim.circuit import check_fits

    with pytest.raises(ConfigError, match="will not fit") as info:
        _resolve("circuit.sizes=[30, 100000000, 10]")
    assert str(info.value).count(". ") == 0 and "GiB" in str(info.value)
    small = mc.MicrocircuitStructure([30, 50, 10])
    cost = mc.CIRCUIT.cost(small)
    assert cost.neurons == 30 + 50 + 10 + 10
    assert cost.synapses == 30 * 50 + 4 * 50 * 10 + 10
    spiking = mc.CIRCUIT.cost(mc.MicrocircuitStructure([30, 50, 10], readout="spiking"))
    assert spiking.bytes > cost.bytes
    assert check_fits(mc.CIRCUIT, small, memory_bytes=10**9) == cost
    with pytest.raises(ConfigError, match="will not fit"):
        check_fits(mc.CIRCUIT, small, memory_bytes=1000)


def test_config_defaults_and_validation() -> None:
    resolved = _resolve()
    assert resolved.protocol.stage == "supervised"
    assert resolved.protocol.pattern_ms == 100.0
    with pytest.raises(ConfigError, match="stage"):
        _resolve("protocol.stage=sleeping")
    with pytest.raises(ConfigError, match="Unknown configuration key"):
        _resolve("protocol.etaa=1")
    with pytest.raises(ConfigError, match="learning_lag_ms"):
        _resolve("protocol.learning_lag_ms=100.0")
    with pytest.raises(ConfigError, match="time steps"):
        _resolve("protocol.pattern_ms=100.05")
    with pytest.raises(ConfigError, match="do not fit"):
        _resolve("circuit.sizes=[10, 5, 10]")
    with pytest.raises(ConfigError, match="one value per forward projection"):
        _resolve("protocol.eta_forward=[0.1]")
    with pytest.raises(ConfigError, match="one value per forward projection"):
        _resolve("circuit.sizes=[30, 8, 8, 10]")
    assert _resolve("circuit.sizes=[30, 8, 8, 10]", "protocol.eta_forward=[0.1, 0.1, 0.1]")
    with pytest.raises(ConfigError, match="spiking"):
        _resolve("protocol.p_fail=0.2")
    with pytest.raises(ConfigError, match="phi"):
        _resolve("circuit.phi=logistic")
    with pytest.raises(ConfigError, match="data set"):
        _resolve(dataset="mnist")
    with pytest.raises(ConfigError, match="n_train"):
        _resolve("protocol.n_train=100000")
    assert _resolve().protocol.top_down == "fixed"
    assert _resolve("protocol.stage=error-transport").protocol.top_down == "tied"
    assert _resolve("protocol.topdown=learned").protocol.top_down == "learned"
    with pytest.raises(ConfigError, match="transport_nudges"):
        _resolve("protocol.transport_nudges=[0.01, 0.0]")
    with pytest.raises(ConfigError, match="tied"):
        _resolve("protocol.stage=error-transport", "protocol.topdown=fixed")


def test_learning_lag_gate() -> None:
    gate, dt = gate_rows(3, np.array([1.0, 1.0, 0.0]), 100.0, 20.0, 0.1)
    assert dt == pytest.approx(20.0)
    assert gate.tolist() == [0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    gate, dt = gate_rows(1, np.ones(1), 100.0, 0.0, 0.1)
    assert dt == pytest.approx(100.0) and gate.tolist() == [1.0]


def test_datasets() -> None:
    from neurosim import datasets as ds

    d = ds.load("digits")
    assert d.x_train.shape == (1437, 64) and d.x_test.shape == (360, 64)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert set(np.unique(d.y_train)) == {ds.DIGITS_OFF, ds.DIGITS_ON}
    np.testing.assert_allclose(1 / (1 + np.exp(-d.u_test)), d.y_test)
    assert np.all(np.bincount(d.labels_test) >= 35)
    t1, t2 = ds.load("teacher", seed=3), ds.load("teacher", seed=3)
    np.testing.assert_array_equal(t1.y_test, t2.y_test)
    assert t1.x_train.shape == (ds.TEACHER_N_TRAIN, 30) and t1.y_train.shape[1] == 10
    assert not np.array_equal(ds.load("teacher", seed=4).y_test, t1.y_test)
    np.testing.assert_allclose(ds.soft_relu_inverse(t1.y_test), t1.u_test, atol=1e-6)
    with pytest.raises(NeurosimError, match="Unknown dataset"):
        ds.load("nope")
    with pytest.raises(ConfigError, match="needs a data set"):
        ds.load(None)


def _run(tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / name
    code = main(
        [
            "run", "feedback-cancellation", "--circuit", "microcircuit", "--no-progress",
            "--out", str(out), *args,
        ]
    )  # fmt: skip
    assert code == 0
    for f in ("metrics.json", "config.toml", "weights.npz", "recording.nix"):
        assert (out / f).is_file(), f
    return json.loads((out / "metrics.json").read_text())


def test_self_predicting_stage_cancels_feedback(tmp_path: Path) -> None:
    m = _run(
        tmp_path, "sp", "--dataset", "digits",
        "--set", "circuit.sizes=[64, 12, 10]",
        "--set", "protocol.stage=self-predicting",
        "--set", "protocol.self_predicting_patterns=300",
        "--set", "protocol.patterns_per_run=100",
        "--set", "protocol.window=20",
    )  # fmt: skip
    assert m["compilations"] <= 1
    assert m["apical_rms_end"] < 0.3 * m["apical_rms_start"]
    assert m["interneuron_correlation_end_1"] > m["interneuron_correlation_start_1"]
    # what the lateral rule learns: the interneurons' dendritic prediction of the next layer
    start = m["interneuron_prediction_correlation_start_1"]
    assert m["interneuron_prediction_correlation_end"] > max(0.8, start)
    assert m["cosine_WPI1_closed_form_end"] > m["cosine_WPI1_closed_form_start"]
    assert (tmp_path / "sp" / "figures" / "apical_rms.png").is_file()
    assert (tmp_path / "sp" / "figures" / "interneuron_rates.png").is_file()


def test_supervised_teacher_learns(tmp_path: Path) -> None:
    m = _run(
        tmp_path, "sup", "--dataset", "teacher", "--epochs", "3",
        "--set", "protocol.n_train=200",
        "--set", "protocol.n_test=50",
        "--set", "protocol.patterns_per_run=100",
        "--set", "protocol.backprop_epochs=3",
    )  # fmt: skip
    for key in (
        "test_mse", "train_mse", "history", "backprop_baseline", "shallow_baseline",
        "apical_rms_start", "apical_rms_end", "samples_per_second", "compile_seconds",
        "compilations", "simulated_seconds", "topdown_angle_deg_end",
    ):  # fmt: skip
        assert key in m, key
    assert m["compilations"] <= 1
    hist = m["history"]["circuit"]
    assert len(hist) == 4
    assert m["test_mse"] < 0.9 * hist[0]
    # diagnostics: dead units per layer (soft-ReLU: above θ − 4.6/β, where φ' ≥ 1 % of γβ)
    assert set(m["dead_units"]) == {"layer1", "layer2"}
    assert 0 <= m["dead_units"]["layer1"] <= 20 and 0 <= m["dead_units"]["layer2"] <= 10
    assert m["dead_units_sensitive_range"].startswith("-1.6 < u < inf")
    assert m["input_offset_share"] < 0.05 and m["input_offset_warning"] is None  # U(−1, 1)
    assert (tmp_path / "sup" / "figures" / "learning_curves.png").is_file()
    assert (tmp_path / "sup" / "figures" / "topdown_angle.png").is_file()


def test_error_transport_on_the_circuit(tmp_path: Path) -> None:
    """Issue 3, must show: with B = Wᵀ, the closed-form lateral weights and weak nudging, the Brian2
    circuit's settled apical potentials point along the backprop error (cosine ≥ 0.99) and its own
    forward-weight induction terms along minus the gradient (≥ 0.95), two hidden layers; the
    alignment degrades as the nudging grows (the circuit then no longer follows the small-nudging
    limit; measured values: README, feedback cancellation)."""
    m = _run(
        tmp_path, "et", "--dataset", "digits",
        "--set", "circuit.sizes=[64, 20, 15, 10]",
        "--set", "protocol.stage=error-transport",
        "--set", "protocol.transport_patterns=4",
        "--set", "protocol.transport_nudges=[0.01, 1.0]",
        "--set", "protocol.settle_ms=300.0",
    )  # fmt: skip
    assert m["compilations"] <= 1 and m["topdown"] == "tied"
    weak, strong = m["error_transport"]["0.01"], m["error_transport"]["1"]
    for k in (1, 2):
        assert weak[f"apical_cosine_{k}_min"] >= 0.99
    for k in (1, 2, 3):
        assert weak[f"dW_cosine_{k}_min"] >= 0.95
    assert strong["apical_cosine_min"] < weak["apical_cosine_min"]
    assert m["apical_cosine_min_weakest"] == weak["apical_cosine_min"]
    assert (tmp_path / "et" / "figures" / "error_transport.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_teacher_circuit_beats_shallow_learner(tmp_path: Path, seed: int) -> None:
    """Issue 3, must show: on unseen inputs the full circuit's test error lies below the shallow
    learner's (which trains only the output weights), per seed (measured ratios: README,
    feedback cancellation)."""
    m = _run(
        tmp_path, f"teacher{seed}", "--dataset", "teacher", "--epochs", "3", "--seed", str(seed),
        "--set", "protocol.backprop_epochs=0",
        "--set", "protocol.train_eval=false",
    )  # fmt: skip
    assert m["compilations"] <= 1
    assert m["test_mse"] < m["shallow_baseline"]
    assert m["mse_ratio_circuit_to_shallow"] < 1.0


TINY = [
    "--dataset", "teacher", "--epochs", "1",
    "--set", "circuit.sizes=[30, 6, 10]",
    "--set", "protocol.n_train=6",
    "--set", "protocol.n_test=4",
    "--set", "protocol.patterns_per_run=4",
    "--set", "protocol.pattern_ms=20.0",
    "--set", "protocol.learning_lag_ms=5.0",
    "--set", "protocol.backprop_epochs=0",
    "--set", "protocol.shallow=false",
]  # fmt: skip


@pytest.mark.slow
def test_runtime_device_matches_cpp(tmp_path: Path) -> None:
    """The same tiny supervised run on cpp_standalone and on Brian2's runtime device gives the same
    test errors (rate read-out: deterministic). Slow: the runtime device compiles its Cython code
    objects on first use (about 2-4 minutes on 2 cores)."""
    cpp = _run(tmp_path, "cpp", *TINY, "--device", "cpp_standalone")
    rt = _run(tmp_path, "rt", *TINY, "--device", "runtime")
    assert rt["device"] == "runtime" and cpp["device"] == "cpp_standalone"
    np.testing.assert_allclose(rt["history"]["circuit"], cpp["history"]["circuit"], rtol=1e-9)
    assert rt["history"]["circuit"][1] != rt["history"]["circuit"][0]  # it learned something


def test_spiking_readout_with_release_failures_runs(tmp_path: Path) -> None:
    """The spiking read-out with release failures (spiking dropout) runs through the protocol."""
    spk = _run(tmp_path, "spk", *TINY, "--readout", "spiking", "--set", "protocol.p_fail=0.3")
    assert spk["readout"] == "spiking" and spk["compilations"] <= 1
    assert all(np.isfinite(spk["history"]["circuit"]))
    assert spk["history"]["circuit"][1] != spk["history"]["circuit"][0]
    # firing rates in Hz (issue 15): one cell per unit at the default 1000 Hz, every group
    firing = spk["firing"]
    assert firing["max_rate_hz"] == 1000.0 and firing["population"] == 1
    for phase in ("test", "train_last_epoch"):
        groups = {g: firing[phase][g] for g in ("layer0", "layer1", "layer2", "inter1")}
        assert all(0 <= r["mean_hz"] <= r["max_hz"] for r in groups.values()), groups
        assert 0 < groups["layer0"]["mean_hz"] <= 1000.0
        total = sum(r["spikes_per_example"] for r in groups.values())
        assert firing[phase]["all"]["spikes_per_example"] == pytest.approx(total)
    # its recording holds spike trains (issue 15 item 3): 10 cells at most of layer0 (30), layer1
    # (6), layer2 (10) and inter1 (10); 3 training patterns of 20 ms, all 4 test patterns (the
    # default 5 is at most) before and after training
    windows = {
        "epoch 1: training patterns": 0.06,
        "test patterns, untrained": 0.08,
        "test patterns, after epoch 1": 0.08,
    }
    path = tmp_path / "spk" / "recording.nix"
    analysis = check_spike_recording(path, windows, 10 + 6 + 10 + 10, tmp_path / "an")
    groups = {
        t["annotations"]["group"] for t in analysis["test patterns, untrained"]["spike_trains"]
    }
    assert groups == {"layer0", "layer1", "layer2", "inter1"}

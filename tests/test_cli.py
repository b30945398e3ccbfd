"""Tests of the ``neurosim`` command: bad input, an end-to-end run, compile once, determinism.

Every simulation here uses one circuit structure (``SMALL_RUN``; only epochs and seed vary), so
the session's build cache compiles it at most once and the file stays fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import neo
import numpy as np
import pytest
import quantities as pq

from neurosim.cli import main
from neurosim.recording import read_nix
from tests.conftest import SMALL_RUN

PROTOCOL = "dendritic-prediction"
RESULT_NAMES = ("metrics.json", "recording.nix", "weights.npz", "config.toml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: one epoch of SMALL_RUN: repetitions_per_epoch * pattern_ms = 2 * 50 ms
EPOCH_S = 0.1
N_INPUTS = 20


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("neurosim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "neurosim"]


def _main(argv: list[str]) -> tuple[int, str, str]:
    """Run ``neurosim.cli.main`` in this process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _run(out: Path, seed: int, epochs: int) -> dict:
    argv = ["run", PROTOCOL, *SMALL_RUN, "--epochs", str(epochs), "--seed", str(seed)]
    rc, stdout, stderr = _main([*argv, "--no-progress", "--out", str(out)])
    assert rc == 0, stderr
    assert f"results written to {out.resolve()}" in stdout
    summary = json.loads(stdout[: stdout.rindex("results written")])  # scalars only
    assert summary and not any(isinstance(v, dict | list) for v in summary.values()), summary
    return json.loads((out / "metrics.json").read_text())


def _leftovers(root: Path) -> list[str]:
    """Results files or temporary files anywhere under ``root``."""
    found = []
    for path in root.rglob("*"):
        name = path.name
        if name in RESULT_NAMES or ".tmp-" in name or name.startswith(".write-check-"):
            found.append(str(path.relative_to(root)))
        if path.suffix == ".png" or name == "analysis.json":
            found.append(str(path.relative_to(root)))
    return found


def _assert_one_error_line(stderr: str, *fragments: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("neurosim: error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def _bad_config_file(tmp_path: Path) -> list[str]:
    path = tmp_path / "bad.toml"
    path.write_text("[run]\nseed = 3\n\n[protocol]\netaa = 0.1\n")
    return ["--config", str(path)]


def _malformed_config_file(tmp_path: Path) -> list[str]:
    path = tmp_path / "broken.toml"
    path.write_text("[protocol\neta = 0.1\n")
    return ["--config", str(path)]


BAD_RUNS = {
    "unknown-protocol": (
        lambda tmp: ["run", "nope", *SMALL_RUN],
        ("Unknown protocol 'nope'", "dendritic-prediction"),
    ),
    "unknown-key-set": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--set", "protocol.etaa=0.1"],
        ("'protocol.etaa'", "allowed keys in [protocol]", "eta, input_rate_hz"),
    ),
    "unknown-key-file": (
        lambda tmp: ["run", PROTOCOL, *_bad_config_file(tmp), *SMALL_RUN],
        ("'protocol.etaa'", "allowed keys in [protocol]"),
    ),
    "unknown-section": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--set", "bogus.x=1"],
        ("Unknown configuration section 'bogus'",),
    ),
    "malformed-set": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--set", "foo"],
        ("--set expects KEY=VALUE", "'foo'"),
    ),
    "missing-config-file": (
        lambda tmp: ["run", PROTOCOL, "--config", str(tmp / "missing.toml"), *SMALL_RUN],
        ("missing.toml", "does not exist"),
    ),
    "malformed-config-file": (
        lambda tmp: ["run", PROTOCOL, *_malformed_config_file(tmp), *SMALL_RUN],
        ("broken.toml", "is not valid TOML"),
    ),
    "negative-duration": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--set", "protocol.pattern_ms=-5"],
        ("Invalid value -5 for 'protocol.pattern_ms'", "greater than 0"),
    ),
    "zero-dt": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--set", "protocol.dt_ms=0"],
        ("'protocol.dt_ms'", "greater than 0"),
    ),
    "zero-inputs": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--set", "circuit.n_inputs=0"],
        ("'circuit.n_inputs'", "greater than or equal to 1"),
    ),
    "wrong-type": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--set", "protocol.eta=abc"],
        ("Invalid value 'abc' for 'protocol.eta'", "valid number"),
    ),
    "epochs-zero": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--epochs", "0"],
        ("--epochs must be at least 1, got 0",),
    ),
    "negative-seed": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--seed", "-1"],
        ("'run.seed'",),
    ),
    "unknown-device": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--device", "tpu"],
        ("'run.device'", "cpp_standalone"),
    ),
    "unknown-circuit": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--circuit", "foo"],
        ("Unknown circuit 'foo'",),
    ),
    "dataset-not-taken": (
        lambda tmp: ["run", PROTOCOL, *SMALL_RUN, "--dataset", "mnist"],
        ("does not take data set 'mnist'",),
    ),
    "too-few-repetitions": (
        # valid table values, rejected by the protocol after the output folder is prepared
        lambda tmp: [
            "run",
            PROTOCOL,
            *SMALL_RUN,
            "--epochs",
            "1",
            "--set",
            "protocol.correlation_repetitions=2",
        ],
        ("2 repetitions are too few", "protocol.correlation_repetitions"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_run_input_is_one_error_line_and_no_results(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_argv, fragments = BAD_RUNS[case]
    out = tmp_path / "out"
    rc = main([*make_argv(tmp_path), "--no-progress", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    _assert_one_error_line(captured.err, *fragments)
    assert _leftovers(tmp_path) == []


def test_unwritable_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # we may run as root, so permissions would not stop a write: put the folder under a file
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    out = afile / "out"
    rc = main(["run", PROTOCOL, *SMALL_RUN, "--no-progress", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    _assert_one_error_line(captured.err, f"The output folder {str(out)!r} cannot be written")
    assert afile.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_unwritable_output_folder_with_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the progress bar on, the error is still the last line and the only error line."""
    afile = tmp_path / "afile"
    afile.write_text("")
    rc = main(["run", PROTOCOL, *SMALL_RUN, "--out", str(afile / "out")])
    captured = capsys.readouterr()
    assert rc == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines[-1].startswith("neurosim: error: The output folder")
    assert sum(line.startswith("neurosim: error:") for line in lines) == 1
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_analyze_corrupt_nix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corrupt.nix"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp_path / "analysis"
    rc = main(["analyze", str(path), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    _assert_one_error_line(captured.err, str(path), "is not a valid NIX file")
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_analyze_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing.nix"
    rc = main(["analyze", str(path), "--out", str(tmp_path / "analysis")])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    _assert_one_error_line(captured.err, f"The NIX file {path} does not exist.")
    assert list(tmp_path.iterdir()) == []


def test_console_script_exit_code_on_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [*_console_script(), "run", "nope", "--no-progress", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("neurosim: error:")]
    assert errors == [
        "neurosim: error: Unknown protocol 'nope'; known protocols: compare, consciousness-prior, "
        "dendritic-prediction, equilibrium-propagation, feedback-cancellation, icf."
    ]
    assert lines[-1] == errors[0]
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# An end-to-end run (3 epochs, seed 5)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("e2e") / "results"
    return out, _run(out, seed=5, epochs=3)


def test_run_metrics(e2e: tuple[Path, dict]) -> None:
    out, metrics = e2e
    expected_types = {
        "protocol": str,
        "circuit": str,
        "device": str,
        "seed": int,
        "wall_seconds": float,
        "compile_seconds": float,
        "compilations": int,
        "simulated_seconds": float,
        "rate_correlation_start": float,
        "rate_correlation_end": float,
        "final_mean_weight": float,
    }
    for key, kind in expected_types.items():
        assert key in metrics, key
        assert type(metrics[key]) is kind, (key, metrics[key])
    assert metrics["protocol"] == PROTOCOL
    assert metrics["circuit"] == "urbanczik-senn"
    assert metrics["device"] == "cpp_standalone"
    assert metrics["seed"] == 5
    assert metrics["epochs"] == 3
    assert metrics["repetitions"] == 6
    assert metrics["compilations"] in (0, 1)  # 0 if another test compiled this structure first
    assert metrics["compile_seconds"] >= 0
    assert metrics["wall_seconds"] > 0
    assert metrics["simulated_seconds"] == pytest.approx(4 * EPOCH_S)  # 3 epochs and the test
    for key in ("rate_correlation_start", "rate_correlation_end"):
        assert -1.0 <= metrics[key] <= 1.0
    weights = np.load(out / "weights.npz")
    assert metrics["final_mean_weight"] == pytest.approx(float(np.mean(weights["dendritic_w"])))
    assert Path(metrics["build_dir"]).is_relative_to(Path(os.environ["NEUROSIM_CACHE"]))


def test_run_writes_exactly_the_results_folder(e2e: tuple[Path, dict]) -> None:
    out, _ = e2e
    assert sorted(p.name for p in out.iterdir()) == sorted([*RESULT_NAMES, "figures"])
    figures = sorted(out.glob("figures/*.png"))
    assert [p.name for p in figures] == [
        "learning_curve.png",
        "prediction_traces.png",
        "weights.png",
    ]
    for figure in figures:
        data = figure.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_run_config_toml(e2e: tuple[Path, dict]) -> None:
    out, _ = e2e
    with open(out / "config.toml", "rb") as handle:
        config = tomllib.load(handle)
    assert set(config) == {"run", "protocol", "circuit", "provenance"}
    assert config["run"]["seed"] == 5
    assert config["run"]["epochs"] == 3
    assert config["run"]["protocol"] == PROTOCOL
    assert config["run"]["circuit"] == "urbanczik-senn"
    assert config["run"]["device"] == "cpp_standalone"
    assert config["protocol"]["pattern_ms"] == 50.0
    assert config["protocol"]["repetitions_per_epoch"] == 2
    assert config["circuit"]["n_inputs"] == N_INPUTS
    assert config["provenance"]["seed"] == 5
    versions = config["provenance"]["versions"]
    assert set(versions) >= {"neurosim", "brian2", "numpy", "neo", "elephant"}
    assert all(isinstance(v, str) and v for v in versions.values())


def test_run_weights_npz(e2e: tuple[Path, dict]) -> None:
    out, _ = e2e
    with np.load(out / "weights.npz") as weights:
        assert set(weights.files) >= {"dendritic_w", "initial_dendritic_w"}
        w = weights["dendritic_w"]
        assert w.shape == weights["initial_dendritic_w"].shape == (N_INPUTS,)
        assert np.all(np.isfinite(w))
        assert not np.array_equal(w, weights["initial_dendritic_w"])  # learning moved them


def test_run_recording_reads_back(e2e: tuple[Path, dict]) -> None:
    out, _ = e2e
    block = read_nix(out / "recording.nix")
    assert isinstance(block, neo.Block)
    assert [s.name for s in block.segments] == ["epoch 1", "epoch 2", "epoch 3", "test", "weights"]
    n_test_inputs = 0
    for k, segment in enumerate(block.segments[:4]):
        t0, t1 = k * EPOCH_S, (k + 1) * EPOCH_S
        assert segment.spiketrains, segment.name
        for train in segment.spiketrains:
            assert train.units == pq.s
            assert float(train.t_start.rescale(pq.s)) == pytest.approx(t0, abs=1e-9)
            assert float(train.t_stop.rescale(pq.s)) == pytest.approx(t1, abs=1e-9)
            times = train.times.rescale(pq.s).magnitude
            assert np.all((times >= t0) & (times <= t1))
            assert np.all(np.diff(times) >= 0)
        names = [t.name for t in segment.spiketrains]
        assert names[0] == "output"
        if segment.name == "test":
            n_test_inputs = len(names) - 1
            assert all(n.startswith("input ") for n in names[1:])
        signals = {s.name: s for s in segment.analogsignals}
        assert set(signals) == {"U", "V_w"}
        for name in ("U", "V_w"):
            signal = signals[name]
            assert signal.shape == (100, 1)  # (time, channel): 100 ms at 1 ms, one neuron
            assert float(signal.sampling_period.rescale(pq.s)) == pytest.approx(1e-3)
            assert float(signal.t_start.rescale(pq.s)) == pytest.approx(t0, abs=1e-9)
            assert float(signal.t_stop.rescale(pq.s)) == pytest.approx(t1, abs=1e-9)
            assert np.all(np.isfinite(signal.magnitude))
    assert n_test_inputs == N_INPUTS  # every input, silent ones included
    # the weights of the learning phase: one signal, a sample per pattern, a channel per synapse
    weights_segment = block.segments[4]
    assert not weights_segment.spiketrains
    (w_signal,) = weights_segment.analogsignals
    assert w_signal.name == "w" and w_signal.shape == (6, N_INPUTS)  # 3 epochs x 2 patterns
    assert float(w_signal.t_start.rescale(pq.s)) == pytest.approx(0.0, abs=1e-9)
    assert float(w_signal.sampling_period.rescale(pq.s)) == pytest.approx(0.05)
    with np.load(out / "weights.npz") as weights:
        # the recorded trajectory starts from the initial weights and matches weights.npz
        np.testing.assert_array_equal(w_signal.magnitude[0], weights["initial_dendritic_w"])
        np.testing.assert_array_equal(w_signal.magnitude, weights["dendritic_w_trajectory"])


def test_analyze_recording(
    e2e: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = e2e
    analysis = tmp_path / "analysis"
    rc = main(["analyze", str(out / "recording.nix"), "--out", str(analysis)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    block = read_nix(out / "recording.nix")
    n_trains = sum(len(s.spiketrains) for s in block.segments)
    assert f"analysed {n_trains} spike trains in 5 segments" in captured.out
    stats = json.loads((analysis / "analysis.json").read_text())
    assert [s["name"] for s in stats["segments"]] == [
        "epoch 1",
        "epoch 2",
        "epoch 3",
        "test",
        "weights",
    ]
    assert len(stats["spike_trains"]) == n_trains
    output_trains = [t for t in stats["spike_trains"] if t["name"] == "output"]
    assert [t["n_spikes"] for t in output_trains] == [
        len(s.spiketrains[0]) for s in block.segments[:4]
    ]
    first = output_trains[0]
    assert first["t_start_s"] == pytest.approx(0.0)
    assert first["t_stop_s"] == pytest.approx(EPOCH_S)
    assert first["mean_rate_hz"] == pytest.approx(first["n_spikes"] / EPOCH_S)
    for name in ("raster.png", "instantaneous_rate.png"):
        data = (analysis / "figures" / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    # the recording itself is left untouched
    assert sorted(p.name for p in out.iterdir()) == sorted([*RESULT_NAMES, "figures"])


def test_analyze_truncated_recording(
    e2e: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = e2e
    data = (out / "recording.nix").read_bytes()
    truncated = tmp_path / "truncated.nix"
    truncated.write_bytes(data[: len(data) // 2])
    rc = main(["analyze", str(truncated), "--out", str(tmp_path / "analysis")])
    captured = capsys.readouterr()
    assert rc == 2
    _assert_one_error_line(captured.err, str(truncated))
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Compile once, run many; determinism
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rerun(e2e: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Same structure as ``e2e``, another seed and number of epochs (runs after ``e2e``)."""
    out = tmp_path_factory.mktemp("rerun") / "results"
    return out, _run(out, seed=6, epochs=2)


def test_second_run_of_a_structure_does_not_compile(
    e2e: tuple[Path, dict], rerun: tuple[Path, dict]
) -> None:
    _, first = e2e
    _, second = rerun
    assert second["compilations"] == 0
    assert second["seed"] == 6 and second["epochs"] == 2
    assert second["simulated_seconds"] == pytest.approx(3 * EPOCH_S)
    assert second["build_dir"] == first["build_dir"]
    assert second["compile_seconds"] <= first["compile_seconds"] + 1.0


def _run_in_child(out: Path, seed: int, epochs: int, hash_seed: str) -> dict:
    """Run the console script in a new process sharing this session's build cache."""
    env = dict(os.environ)
    assert env.get("NEUROSIM_CACHE")  # the session's private cache, shared with the child
    env["PYTHONHASHSEED"] = hash_seed
    argv = [*_console_script(), "run", PROTOCOL, *SMALL_RUN, "--epochs", str(epochs)]
    proc = subprocess.run(
        [*argv, "--seed", str(seed), "--no-progress", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"results written to {out.resolve()}" in proc.stdout
    return json.loads((out / "metrics.json").read_text())


def test_run_in_another_process_does_not_compile(rerun: tuple[Path, dict], tmp_path: Path) -> None:
    """Other processes (whatever their string-hash seed) reuse this process's build."""
    rerun_out, in_process = rerun
    # two hash seeds under which Python orders small sets of names differently
    first = _run_in_child(tmp_path / "a", seed=6, epochs=2, hash_seed="1")
    second = _run_in_child(tmp_path / "b", seed=8, epochs=1, hash_seed="2")
    assert first["build_dir"] == second["build_dir"] == in_process["build_dir"]
    assert first["compilations"] == 0
    assert second["compilations"] == 0
    assert second["seed"] == 8 and second["epochs"] == 1
    # same seed, same device, another process: the same results
    assert first["rate_correlation_end"] == in_process["rate_correlation_end"]
    assert first["final_mean_weight"] == in_process["final_mean_weight"]
    with np.load(tmp_path / "a" / "weights.npz") as a, np.load(rerun_out / "weights.npz") as b:
        np.testing.assert_array_equal(a["dendritic_w"], b["dendritic_w"])


def _output_spikes(path: Path) -> list[np.ndarray]:
    block = read_nix(path)
    return [
        np.asarray(train.times.rescale(pq.s).magnitude)
        for segment in block.segments
        for train in segment.spiketrains
    ]


def test_same_seed_gives_identical_results(rerun: tuple[Path, dict], tmp_path: Path) -> None:
    first_out, first = rerun
    out = tmp_path / "again"
    again = _run(out, seed=6, epochs=2)
    assert again["compilations"] == 0
    for key in ("rate_correlation_start", "rate_correlation_end", "final_mean_weight"):
        assert again[key] == first[key], key
    with np.load(out / "weights.npz") as a, np.load(first_out / "weights.npz") as b:
        assert set(a.files) == set(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    spikes_a = _output_spikes(out / "recording.nix")
    spikes_b = _output_spikes(first_out / "recording.nix")
    assert len(spikes_a) == len(spikes_b)
    assert sum(len(s) for s in spikes_a) > 0
    for a, b in zip(spikes_a, spikes_b, strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seed_gives_different_weights(rerun: tuple[Path, dict], tmp_path: Path) -> None:
    first_out, first = rerun
    out = tmp_path / "other-seed"
    other = _run(out, seed=7, epochs=2)
    assert other["compilations"] == 0
    assert other["seed"] == 7
    with np.load(out / "weights.npz") as a, np.load(first_out / "weights.npz") as b:
        assert a["dendritic_w"].shape == b["dendritic_w"].shape == (N_INPUTS,)
        assert not np.allclose(a["dendritic_w"], b["dendritic_w"])
    assert other["final_mean_weight"] != first["final_mean_weight"]


def test_list_names_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    for name in ("dendritic-prediction", "urbanczik-senn", "runtime", "cpp_standalone"):
        assert name in captured.out
    assert "cuda_standalone" in captured.out
    assert captured.err == ""

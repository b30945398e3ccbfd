"""``neurosim predict``: predictions.json, recordings, report, bad input and failures.

Most tests run the command in this process on the test-local fake experiments (known effects,
no simulation, registered only for the test); one, in the slow tier, runs a real virtual
experiment end to end with ``--quick --seeds 2``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

import protocols.experiments  # noqa: F401  (registers the real experiments)
from neurosim.cli import main
from neurosim.experiment import EXPERIMENTS
from neurosim.recording import read_nix, read_nwb
from tests import fake_experiments
from tests.fake_experiments import register_fakes

EFFECT_KEYS = {
    "n",
    "values",
    "mean",
    "sd",
    "d_z",
    "ci_low",
    "ci_high",
    "confidence",
    "n_resamples",
    "share_predicted_sign",
    "verdict",
    "verdict_text",
    "method",
    "interval_verdict",
    "min_seeds",
    "seeds_for_power",
}
#: the real experiment run end to end (a microcircuit one: its quick training is the shortest)
REAL_EXPERIMENT = "interneuron-silencing"


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _predict(
    out: Path, names: list[str], seeds: int, min_seeds: int | None = 2
) -> tuple[int, str, str]:
    """``neurosim predict --quick``; ``min_seeds`` None leaves ``--min-seeds`` out (default 5)."""
    only = [arg for name in names for arg in ("--only", name)]
    argv = ["predict", *only, "--seeds", str(seeds), "--quick", "--no-progress"]
    if min_seeds is not None:
        argv += ["--min-seeds", str(min_seeds)]
    return _main([*argv, "--out", str(out)])


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("neurosim: error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.fixture()
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    register_fakes(monkeypatch)
    fake_experiments.SEEN_SHARED.clear()


def test_predict_writes_predictions_recordings_and_report(fakes: None, tmp_path: Path) -> None:
    out = tmp_path / "predict"
    rc, stdout, stderr = _predict(out, ["fake-silencing", "fake-null", "fake-dose"], seeds=3)
    assert rc == 0, stderr

    data = json.loads((out / "predictions.json").read_text())
    assert data["run"]["seeds"] == [1, 2, 3] and data["run"]["quick"] is True
    assert data["run"]["wall_seconds"] > 0 and "neurosim" in data["run"]["versions"]
    assert data["run"]["failed"] == [] and data["run"]["complete"] is True
    assert list(data["experiments"]) == ["fake-silencing", "fake-null", "fake-dose"]
    for name, summary in data["experiments"].items():
        assert summary["status"] == "ok", name
        assert EFFECT_KEYS <= set(summary["effect"]), name
        for key in ("hypothesis", "record", "contrast", "effect_units", "expected_sign"):
            assert summary[key] is not None
        assert summary["seeds"] == [1, 2, 3]
        assert [row["seed"] for row in summary["per_seed"]] == [1, 2, 3]
        for figure in summary["figures"]:
            assert (out / figure["path"]).is_file()
    silencing = data["experiments"]["fake-silencing"]
    assert silencing["effect"]["values"] == [0.8, 1.1, 0.9]
    assert silencing["effect"]["verdict"] == "supported"
    assert data["experiments"]["fake-null"]["effect"]["verdict"] == "not supported"

    # one file per condition, one segment per seed, NIX and NWB
    assert silencing["recordings"] == {
        c: {
            "nix": f"recordings/fake-silencing/{c}.nix",
            "nwb": f"recordings/fake-silencing/{c}.nwb",
        }
        for c in ("intact", "silenced")
    }
    block = read_nix(out / "recordings/fake-silencing/silenced.nix")
    assert [s.annotations["seed"] for s in block.segments] == [1, 2, 3]
    assert all(s.annotations["condition"] == "silenced" for s in block.segments)
    assert [len(s.spiketrains) for s in block.segments] == [8, 8, 8]
    assert [len(s.analogsignals) for s in block.segments] == [1, 1, 1]
    nwb = read_nwb(out / "recordings/fake-silencing/silenced.nwb")
    assert len(nwb.segments) == 3
    assert sum(len(s.spiketrains) for s in nwb.segments) == 24
    assert data["experiments"]["fake-dose"]["recordings"] == {}  # it records nothing

    report = (out / "report.html").read_text()
    assert report.count("<section ") == 3
    assert "Prediction not supported in simulation" in report
    assert 'href="recordings/fake-silencing/intact.nwb"' in report

    table = stdout.splitlines()
    assert table[0].split()[:2] == ["experiment", "effect"]
    assert any(line.startswith("fake-null") and "not supported" in line for line in table)
    assert f"results written to {out.resolve()}" in stdout
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_one_settings_object_per_invocation(fakes: None, tmp_path: Path) -> None:
    rc, _, stderr = _predict(tmp_path / "p", ["fake-silencing", "fake-opposite"], seeds=2)
    assert rc == 0, stderr
    assert len(fake_experiments.SEEN_SHARED) == 4
    assert len(set(fake_experiments.SEEN_SHARED)) == 1  # trained circuits can be reused


def test_failing_experiment_does_not_lose_the_others(fakes: None, tmp_path: Path) -> None:
    out = tmp_path / "predict"
    rc, stdout, stderr = _predict(out, ["fake-failing", "fake-nan", "fake-silencing"], seeds=2)
    assert rc == 1, stderr
    data = json.loads((out / "predictions.json").read_text())
    assert data["run"]["failed"] == ["fake-failing", "fake-nan"]
    nan = data["experiments"]["fake-nan"]
    assert nan["status"] == "failed" and "the statistics failed" in nan["error"]
    assert [row["conditions"]["intact"] for row in nan["per_seed"]] == [None, None]
    failing = data["experiments"]["fake-failing"]
    assert failing["status"] == "failed" and failing["effect"] is None
    assert "seed 2 failed" in failing["error"] and "diverged on purpose" in failing["error"]
    assert "RuntimeError" in failing["traceback"]
    assert [row["effect"] for row in failing["per_seed"]] == [1.0]  # seed 1 is kept
    assert read_nix(out / "recordings/fake-failing/intact.nix").segments[0].annotations["seed"] == 1
    ok = data["experiments"]["fake-silencing"]
    assert ok["status"] == "ok" and ok["effect"]["verdict"] == "supported"
    report = (out / "report.html").read_text()
    assert "FAILED: the experiment did not finish" in report and "diverged on purpose" in report
    assert "Prediction supported in simulation" in report
    assert "fake-failing: FAILED" in stdout


def test_fewer_seeds_than_the_minimum_give_no_verdict(fakes: None, tmp_path: Path) -> None:
    # `--quick --seeds 2` with the default minimum (5): no "supported" from two seeds
    out = tmp_path / "predict"
    rc, stdout, stderr = _predict(out, ["fake-silencing"], seeds=2, min_seeds=None)
    assert rc == 0, stderr
    data = json.loads((out / "predictions.json").read_text())
    assert data["run"]["min_seeds"] == 5
    effect = data["experiments"]["fake-silencing"]["effect"]
    assert effect["verdict"] == "too few seeds to judge"
    assert effect["interval_verdict"] == "supported"
    line = next(line for line in stdout.splitlines() if line.startswith("fake-silencing"))
    assert line.endswith("too few seeds to judge")
    assert str(effect["seeds_for_power"]) in line.split()
    report = (out / "report.html").read_text()
    assert "Prediction supported" not in report
    assert '<td class="too-few">too few seeds to judge</td>' in report


def test_min_seeds_below_two_is_one_clear_error(fakes: None, tmp_path: Path) -> None:
    rc, _, stderr = _predict(tmp_path / "never", ["fake-silencing"], seeds=3, min_seeds=1)
    assert rc == 2
    assert "--min-seeds" in _one_error_line(stderr) and "at least 2" in stderr
    assert not (tmp_path / "never").exists()


def test_unknown_experiment_is_one_clear_error(fakes: None, tmp_path: Path) -> None:
    out = tmp_path / "never"
    rc, _, stderr = _predict(out, ["fake-silencing", "no-such-experiment"], seeds=2)
    assert rc == 2
    line = _one_error_line(stderr)
    assert "'no-such-experiment'" in line and "fake-silencing" in line and "known:" in line
    assert not out.exists()  # refused before any work


def test_too_few_seeds_is_one_clear_error(fakes: None, tmp_path: Path) -> None:
    rc, _, stderr = _predict(tmp_path / "never", ["fake-silencing"], seeds=1)
    assert rc == 2
    assert "--seeds must be at least 2" in _one_error_line(stderr)
    assert not (tmp_path / "never").exists()


def test_list_shows_the_virtual_experiments(fakes: None) -> None:
    rc, stdout, _ = _main(["list"])
    assert rc == 0
    section = stdout[stdout.index("virtual experiments") : stdout.index("devices:")]
    assert "fake-silencing" in section and "Fake silencing" in section


@pytest.mark.slow
def test_real_experiment_quick(tmp_path: Path) -> None:
    # slow tier: two seeds of quick training plus two compiles take ~2.5 CPU-minutes
    if REAL_EXPERIMENT not in EXPERIMENTS:
        pytest.fail(f"the virtual experiment {REAL_EXPERIMENT!r} is not registered")
    experiment = EXPERIMENTS[REAL_EXPERIMENT]
    out = tmp_path / "predict"
    rc, stdout, stderr = _predict(out, [REAL_EXPERIMENT], seeds=2)
    assert rc == 0, stdout + stderr
    summary = json.loads((out / "predictions.json").read_text())["experiments"][REAL_EXPERIMENT]
    assert summary["status"] == "ok"
    assert EFFECT_KEYS <= set(summary["effect"])
    assert summary["effect"]["verdict"] in ("supported", "not supported", "opposite")
    assert set(summary["conditions_summary"]) == set(experiment.conditions)
    assert summary["recordings"], "the experiment wrote no recordings"
    for files in summary["recordings"].values():
        block = read_nix(out / files["nix"])
        assert sorted({s.annotations["seed"] for s in block.segments}) == [1, 2]
        assert len(read_nwb(out / files["nwb"]).segments) == len(block.segments)
    assert summary["figures"]
    assert "<section " in (out / "report.html").read_text()

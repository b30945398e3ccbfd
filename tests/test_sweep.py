"""Tests of ``neurosim sweep``: Dask tasks, one compilation per structure, resume, failures.

Every run is the small dendritic-prediction run of ``SMALL_RUN`` (one epoch); the swept learning
rate is a run-time parameter, so every run of a sweep shares one compiled structure. Sweeps run
as subprocesses of the ``neurosim`` console script (as a user runs them), with their own build
cache where the number of compilations is checked, and every process a test starts is stopped
in a ``finally``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurosim.cli import main
from neurosim.errors import ConfigError
from tests.conftest import SMALL_RUN

BASE = """
[run]
protocol = "dendritic-prediction"
epochs = 1

[protocol]
{protocol}

[circuit]
{circuit}
"""
#: the sweep of the issue: 3 seeds x 2 learning rates
ETA_SWEEP = """
[sweep]
name = "eta"
seeds = [1, 2, 3]
metric = "rate_correlation_test"

[sweep.grid]
"protocol.eta" = [0.05, 0.2]
"""
TIMEOUT_S = 600


def _small_tables() -> tuple[str, str]:
    """SMALL_RUN's ``--set`` values as the ``[protocol]`` and ``[circuit]`` table bodies."""
    pairs = [SMALL_RUN[k + 1] for k in range(0, len(SMALL_RUN), 2)]
    protocol = [p.removeprefix("protocol.") for p in pairs if p.startswith("protocol.")]
    circuit = [p.removeprefix("circuit.") for p in pairs if p.startswith("circuit.")]
    return "\n".join(protocol), "\n".join(circuit)


def _write_sweep(path: Path, sweep: str) -> Path:
    protocol, circuit = _small_tables()
    path.write_text(BASE.format(protocol=protocol, circuit=circuit) + sweep)
    return path


def _script() -> list[str]:
    script = Path(sys.executable).with_name("neurosim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "neurosim"]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "NEUROSIM_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


@contextlib.contextmanager
def _started(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group; stop the whole group (it and its children, e.g.
    a local cluster's workers) on the way out."""
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _sweep(config: Path, out: Path, cache: Path, *extra: str) -> tuple[int, str]:
    """Run a sweep to its end; returns the exit status and the output (stdout and stderr)."""
    log = out.with_name(out.name + ".log")
    cmd = [*_script(), "sweep", str(config), "--out", str(out), "--no-progress", *extra]
    with _started(cmd, _env(cache), log) as proc:
        rc = proc.wait(timeout=TIMEOUT_S)
    return rc, log.read_text()


def _table(out: Path) -> list[dict[str, str]]:
    with open(out / "sweep.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _statuses(rows: list[dict[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_complete_eta_sweep(out: Path) -> list[dict[str, str]]:
    rows = _table(out)
    assert len(rows) == 6
    assert {(r["seed"], r["protocol.eta"]) for r in rows} == {
        (s, e) for s in ("1", "2", "3") for e in ("0.05", "0.2")
    }
    for row in rows:
        assert (out / "runs" / row["run"] / "metrics.json").is_file()
        metrics = json.loads((out / "runs" / row["run"] / "metrics.json").read_text())
        assert metrics["seed"] == int(row["seed"])
        assert metrics["learning_rate_eta"] == float(row["protocol.eta"])
        assert float(row["rate_correlation_test"]) == pytest.approx(
            metrics["rate_correlation_test"]
        )
    assert (out / "summary.png").read_bytes().startswith(b"\x89PNG")
    return rows


# ---------------------------------------------------------------------------- local cluster
@pytest.mark.slow
def test_sweep_local_cluster_compiles_once_per_structure(tmp_path: Path) -> None:
    """3 seeds x 2 learning rates on 2 one-thread workers: 6 ok runs, one compilation."""
    config = _write_sweep(tmp_path / "eta.toml", ETA_SWEEP)
    out, cache = tmp_path / "out", tmp_path / "cache"
    start = time.perf_counter()
    rc, log = _sweep(config, out, cache, "--workers", "2")
    wall = time.perf_counter() - start
    assert rc == 0, log
    rows = _check_complete_eta_sweep(out)
    assert _statuses(rows) == {"ok": 6}
    assert sum(int(r["compilations"]) for r in rows) == 1
    assert len({r["build_dirs"] for r in rows}) == 1
    totals = json.loads((out / "sweep.json").read_text())
    assert (totals["runs"], totals["ok"], totals["failed"], totals["skipped"]) == (6, 6, 0, 0)
    assert totals["compilations"] == 1 and totals["distinct_structures"] == 1
    assert totals["finished"] is True
    # two workers ran the same build at once: no run lost its inputs to the other's clean-up
    assert "Error reading" not in log
    assert "6 ok, 0 failed, 0 skipped" in log
    print(f"6-run sweep on 2 workers: {wall:.1f} s, {totals['compilations']} compilation")

    # a second invocation finds everything complete and starts no cluster
    rc, log = _sweep(config, out, cache)
    assert rc == 0, log
    assert _statuses(_table(out)) == {"skipped": 6}


@pytest.mark.slow
def test_sweep_two_structures_compile_twice(tmp_path: Path) -> None:
    """A structural parameter (the number of inputs) swept beside a run-time one: 2 structures,
    2 compilations for 4 runs."""
    sweep = """
[sweep]
seeds = [1]
[sweep.grid]
"circuit.n_inputs" = [20, 24]
"protocol.eta" = [0.05, 0.2]
"""
    config = _write_sweep(tmp_path / "two.toml", sweep)  # the grid overrides [circuit] n_inputs
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc, log = _sweep(config, out, cache, "--workers", "2")
    assert rc == 0, log
    rows = _table(out)
    assert _statuses(rows) == {"ok": 4}
    totals = json.loads((out / "sweep.json").read_text())
    assert totals["compilations"] == 2 and totals["distinct_structures"] == 2
    by_inputs: dict[str, set[str]] = {}
    for row in rows:
        by_inputs.setdefault(row["circuit.n_inputs"], set()).add(row["build_dirs"])
    assert all(len(dirs) == 1 for dirs in by_inputs.values())
    assert by_inputs["20"] != by_inputs["24"]


@pytest.mark.slow
def test_sweep_resumes_after_kill(tmp_path: Path) -> None:
    """Kill a sweep once its first run is complete; the second invocation runs only the rest."""
    config = _write_sweep(tmp_path / "eta.toml", ETA_SWEEP)
    out, cache = tmp_path / "out", tmp_path / "cache"
    cmd = [*_script(), "sweep", str(config), "--out", str(out), "--no-progress", "--workers", "1"]
    with _started(cmd, _env(cache), tmp_path / "first.log") as proc:
        deadline = time.monotonic() + TIMEOUT_S
        while not list((out / "runs").glob("*/metrics.json")):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its workers, mid-way
        proc.wait(timeout=30)
    complete = {p.parent.name for p in (out / "runs").glob("*/metrics.json")}
    assert 1 <= len(complete) < 6
    table = _table(out)  # the table written before the kill is valid and says what was done
    assert len(table) == 6
    assert {r["run"] for r in table if r["status"] == "ok"} <= complete

    start = time.perf_counter()
    rc, log = _sweep(config, out, cache, "--workers", "2")
    resumed = time.perf_counter() - start
    assert rc == 0, log
    rows = _check_complete_eta_sweep(out)
    assert {r["run"] for r in rows if r["status"] == "skipped"} == complete
    assert _statuses(rows) == {"skipped": len(complete), "ok": 6 - len(complete)}
    totals = json.loads((out / "sweep.json").read_text())
    assert totals["compilations"] == 0  # the first invocation compiled the one structure
    assert totals["compilations_including_skipped"] == 1
    print(f"resumed: {6 - len(complete)} of 6 runs in {resumed:.1f} s")


# ---------------------------------------------------------------------------- external cluster
@pytest.mark.slow
def test_sweep_on_separately_started_scheduler(tmp_path: Path) -> None:
    """``dask scheduler`` + ``dask worker --nthreads 1`` on loopback, reached by --scheduler."""
    dask = Path(sys.executable).with_name("dask")
    dask_cmd = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    config = _write_sweep(
        tmp_path / "ext.toml", ETA_SWEEP.replace("seeds = [1, 2, 3]", "seeds = [1, 2]")
    )
    out, cache = tmp_path / "out", tmp_path / "cache"
    # the worker starts in another folder with another cache setting: the tasks carry both
    worker_env = {**os.environ, "NEUROSIM_CACHE": str(tmp_path / "not-this-cache")}
    worker_dir = tmp_path / "worker-cwd"
    worker_dir.mkdir()
    scheduler_cmd = [*dask_cmd, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker_cmd = [*dask_cmd, "worker", address, "--nthreads", "1", "--no-dashboard"]
    with (
        _started([*scheduler_cmd, "--no-dashboard"], dict(os.environ), tmp_path / "scheduler.log"),
        _started(worker_cmd, worker_env, tmp_path / "worker.log", worker_dir),
    ):
        rc, log = _sweep(config, out, cache, "--scheduler", address)
    assert rc == 0, log + (tmp_path / "worker.log").read_text()
    rows = _table(out)
    assert _statuses(rows) == {"ok": 4}
    totals = json.loads((out / "sweep.json").read_text())
    assert totals["compilations"] == 1
    assert all(Path(b).is_relative_to(cache) for r in rows for b in r["build_dirs"].split(";"))
    assert not (tmp_path / "not-this-cache").exists()
    assert not list(worker_dir.glob("runs"))


@pytest.mark.slow
def test_sweep_refuses_multithreaded_workers(tmp_path: Path) -> None:
    """A worker with two threads is refused before anything is submitted, with the fix."""
    dask = Path(sys.executable).with_name("dask")
    dask_cmd = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    config = _write_sweep(tmp_path / "eta.toml", ETA_SWEEP)
    scheduler_cmd = [*dask_cmd, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker_cmd = [*dask_cmd, "worker", address, "--nthreads", "2", "--no-dashboard"]
    with (
        _started([*scheduler_cmd, "--no-dashboard"], dict(os.environ), tmp_path / "s.log"),
        _started(worker_cmd, dict(os.environ), tmp_path / "w.log"),
    ):
        rc, log = _sweep(config, tmp_path / "out", tmp_path / "cache", "--scheduler", address)
    assert rc == 2, log
    assert "--nthreads 1" in log and "runs 2 threads" in log
    assert not list((tmp_path / "out" / "runs").iterdir())


# ---------------------------------------------------------------------------- failures
def test_failed_run_is_reported_and_the_others_complete(
    tmp_path: Path, private_build_cache: Path
) -> None:
    """The default tier's cluster test: 2 seeds x 2 learning rates on 2 one-thread workers, one
    run of which cannot write its folder. It fails with its error, the three others finish on one
    shared build, the exit status is 1, and the next invocation runs only that one.

    The session's build cache is shared with the other tests (it is usually warm), so this counts
    structures, not compilations; the slow test above counts compilations in a fresh cache."""
    sweep = ETA_SWEEP.replace("seeds = [1, 2, 3]", "seeds = [1, 2]")
    config = _write_sweep(tmp_path / "eta.toml", sweep)
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    blocker = out / "runs" / "seed=2,protocol.eta=0.2"
    blocker.write_text("not a folder")
    rc, log = _sweep(config, out, private_build_cache, "--workers", "2")
    assert rc == 1, log
    rows = {r["run"]: r for r in _table(out)}
    assert _statuses(list(rows.values())) == {"ok": 3, "failed": 1}
    failed = rows["seed=2,protocol.eta=0.2"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("NeurosimError: ") and "in the way" in failed["error"]
    assert "failed seed=2,protocol.eta=0.2: NeurosimError" in log
    assert "Error reading" not in log  # two workers ran one build at once without clashing
    totals = json.loads((out / "sweep.json").read_text())
    assert (totals["ok"], totals["failed"], totals["skipped"]) == (3, 1, 0)
    assert totals["distinct_structures"] == 1 and totals["compilations"] <= 1

    blocker.unlink()
    rc, log = _sweep(config, out, private_build_cache, "--workers", "1")
    assert rc == 0, log
    assert _statuses(_table(out)) == {"skipped": 3, "ok": 1}
    assert (out / "summary.png").read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------------------- configuration
def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurosim: error: ") and "\n" not in err
    return err


@pytest.mark.parametrize(
    ("sweep", "fragments"),
    [
        ("", ("no [sweep] table",)),
        ("[sweep]\nseed = [1]\n", ("Unknown [sweep] key 'seed'", "seeds")),
        ("[sweep]\nseeds = []\n", ("seeds must be a non-empty list",)),
        ("[sweep]\nseeds = [1, 1]\n", ("lists a seed twice",)),
        ('[sweep.grid]\n"protocol.eta" = 0.1\n', ("must be a non-empty list",)),
        ('[sweep.grid]\n"run.seed" = [1, 2]\n', ("[sweep] seeds",)),
        (
            '[sweep]\nseeds = [1, 2]\n[sweep.grid]\n"protocol.etaa" = [0.1]\n',
            ("Sweep run 'seed=1,protocol.etaa=0.1' is invalid", "protocol.etaa"),
        ),
        (
            '[sweep.grid]\n"protocol.eta" = [0.1, -1.0]\n',
            ("Sweep run 'seed=1,protocol.eta=-1.0' is invalid", "protocol.eta"),
        ),
        (
            '[sweep]\nprotocols = ["dendritic-prediction", "nope"]\n',
            ("run.protocol=nope", "nope"),
        ),
        ('[sweep]\nx = "protocol.eta"\n', ("[sweep] x must be one of the swept keys",)),
    ],
)
def test_sweep_configuration_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sweep: str, fragments: tuple[str, ...]
) -> None:
    config = _write_sweep(tmp_path / "bad.toml", sweep)
    out = tmp_path / "out"
    argv = ["sweep", str(config), "--out", str(out), "--no-progress"]
    err = _error(capsys, argv)
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()  # refused before anything was written or submitted


def test_sweep_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_sweep(tmp_path / "eta.toml", ETA_SWEEP)
    assert "at least 1" in _error(capsys, ["sweep", str(config), "--workers", "0"])
    err = _error(capsys, ["sweep", str(config), "--workers", "2", "--scheduler", "tcp://x:1"])
    assert "--scheduler" in err
    assert "does not exist" in _error(capsys, ["sweep", str(tmp_path / "missing.toml")])


@pytest.mark.slow
def test_sweep_unreachable_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_sweep(tmp_path / "eta.toml", ETA_SWEEP)
    port = _free_port()  # nothing listens there
    err = _error(
        capsys,
        ["sweep", str(config), "--out", str(tmp_path / "o"), "--scheduler", f"127.0.0.1:{port}"],
    )
    assert "Cannot reach the Dask scheduler" in err


def test_run_names_and_plan() -> None:
    """The plan crosses protocols, grid, explicit runs and seeds, with stable readable names."""
    from neurosim.cli.sweep import plan_sweep

    config = {
        "run": {"protocol": "dendritic-prediction", "epochs": 1},
        "protocol": {"pattern_ms": 50.0, "repetitions_per_epoch": 2, "correlation_repetitions": 1},
        "sweep": {
            "seeds": [3, 4],
            "grid": {"protocol": {"eta": [0.1, 0.2]}},
            "runs": [{"circuit.n_inputs": 10}, {"name": "big", "circuit": {"n_inputs": 30}}],
        },
    }
    plan = plan_sweep(config, "t")
    names = [r.name for r in plan.runs]
    assert len(names) == len(set(names)) == 8
    assert names[0] == "seed=3,protocol.eta=0.1,circuit.n_inputs=10"
    assert "big,seed=4,protocol.eta=0.2" in names
    assert plan.param_keys == ["protocol.eta", "circuit.n_inputs"]
    big = next(r for r in plan.runs if r.name == "big,seed=4,protocol.eta=0.2")
    assert big.raw["circuit"] == {"n_inputs": 30}
    assert big.raw["run"]["seed"] == 4 and big.raw["protocol"]["eta"] == 0.2
    assert big.raw["run"]["device"] in ("cpp_standalone", "runtime")
    # unsafe characters of a run's label become '_' in its folder name
    config["sweep"] = {"runs": [{"name": "a b/c", "protocol.eta": 0.1}]}
    assert [r.name for r in plan_sweep(config, "t").runs] == ["a_b_c,seed=1"]


def test_task_refuses_a_multithreaded_worker(tmp_path: Path) -> None:
    """A task that lands on a worker with two threads runs nothing and says how to fix it."""
    from distributed import Client, LocalCluster

    from neurosim.cli.sweep import run_task

    task = {"raw": {}, "run_dir": str(tmp_path / "run"), "cache": str(tmp_path / "cache")}
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        row = client.submit(run_task, task, pure=False).result()
    assert row["status"] == "failed"
    assert "runs 2 threads" in row["error"] and "--nthreads 1" in row["error"]
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_summary_statistics_pool_seeds() -> None:
    """Mean and sample sd per (series, x); non-finite values are left out of the pool."""
    from analysis.sweep import summary_statistics

    x = [0.1, 0.1, 0.1, 0.2, 0.2, 0.1]
    y = [1.0, 2.0, 3.0, 5.0, float("nan"), 7.0]
    series = ["a", "a", "a", "a", "a", "b"]
    points = summary_statistics(x, y, series)
    assert [(p.series, p.x, p.n) for p in points] == [("a", 0.1, 3), ("a", 0.2, 1), ("b", 0.1, 1)]
    assert points[0].mean == pytest.approx(2.0) and points[0].sd == pytest.approx(1.0)
    assert points[1].mean == 5.0 and points[1].sd == 0.0
    with pytest.raises(ValueError, match="equally long"):
        summary_statistics(x, y[:-1])


def test_summary_figure_with_categorical_x(tmp_path: Path) -> None:
    from analysis.sweep import plot_summary, summary_statistics

    points = summary_statistics(["dp", "dp", "fc"], [0.1, 0.3, 0.5])
    path = plot_summary(points, "run.protocol", "score", tmp_path / "s.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_plan_with_several_protocols() -> None:
    """Each protocol starts from its own tables: the top-level ones belong to [run] protocol,
    the others come from [sweep.base.NAME]; [run] keys other than protocol are shared."""
    from neurosim.cli.sweep import plan_sweep

    config = {
        "run": {"protocol": "dendritic-prediction", "epochs": 1},
        "protocol": {"pattern_ms": 50.0, "repetitions_per_epoch": 2, "correlation_repetitions": 1},
        "sweep": {
            "seeds": [1],
            "protocols": ["dendritic-prediction", "feedback-cancellation"],
            "base": {
                "feedback-cancellation": {
                    "run": {"dataset": "teacher"},
                    "protocol": {"pattern_ms": 40.0},
                }
            },
        },
    }
    plan = plan_sweep(config, "p")
    assert [r.name for r in plan.runs] == [
        "seed=1,run.protocol=dendritic-prediction",
        "seed=1,run.protocol=feedback-cancellation",
    ]
    dp, fc = plan.runs
    assert dp.raw["protocol"]["repetitions_per_epoch"] == 2
    assert fc.raw["protocol"] == {"pattern_ms": 40.0}
    assert fc.raw["run"]["epochs"] == 1 and fc.raw["run"]["dataset"] == "teacher"
    assert "dataset" not in dp.raw["run"]
    config["sweep"]["base"] = {"icf": {}}
    with pytest.raises(ConfigError, match="not in \\[sweep\\] protocols"):
        plan_sweep(config, "p")


def test_concurrent_run_keeps_shared_run_inputs(tmp_path: Path) -> None:
    """Workers share one build: a run deletes its input files only when no other process is
    running that build (else the other binary may be about to read a file of the same name)."""
    import fcntl

    def run(seed: int) -> Path:
        out = tmp_path / f"s{seed}"
        argv = ["run", "dendritic-prediction", *SMALL_RUN, "--epochs", "1", "--no-progress"]
        assert main([*argv, "--seed", str(seed), "--out", str(out)]) == 0
        return Path(json.loads((out / "metrics.json").read_text())["build_dir"])

    def inputs(build: Path) -> set[str]:
        return {p.name for p in (build / "static_arrays").glob("init_*")}

    build = run(1)
    before = inputs(build)
    with open(build / ".neurosim-runs.lock", "a+") as other:  # another process runs the build
        fcntl.flock(other, fcntl.LOCK_SH)
        try:
            assert run(2) == build
        finally:
            fcntl.flock(other, fcntl.LOCK_UN)
    kept = inputs(build)
    assert len(kept - before) >= 3  # this run's weights, state and teacher stayed for the other
    run(3)
    # alone on the build, a run removes the files it used (seed 3's weights among them, and the
    # teacher files it shares by content with seed 2's): nothing new stays
    assert inputs(build) < kept

"""Benchmark of the dendritic-prediction experiment: simulation speed and start-up time.

Usage::

    .venv/bin/python benchmarks/bench_dendritic_prediction.py [--quick] [--out FILE.json]

What it measures (issue 2, "Benchmark"), for the default experiment -- 4 epochs x 26 repetitions
of a 200 ms pattern (20.8 s of learning), 200 plastic synapses, dt 0.1 ms, plus the 5.2 s test
run:

1. ``cpp_standalone`` (one core: the engine sets ``openmp_threads = 0``): simulated seconds per
   wall second of the simulation runs alone (the protocol metrics ``simulated_seconds`` and
   ``wall_seconds_simulation``, the sum of the runs' wall times), and the wall time of the 20.8 s
   learning phase (the 4 epoch runs; the issue's aim is under 1 s after compilation).
2. ``runtime``: the same ratio (with ``--quick`` on fewer repetitions per epoch, said in the
   output).
3. start-up: the wall time of a whole ``neurosim run`` in a fresh process with an empty build
   cache (the first run compiles) against the same command again with the warm cache (a cached
   run: 0 compilations), with the metrics' ``compile_seconds`` and ``compilations`` of each, and
   the time from launching the process to the start of its first simulation run.

Every experiment runs in its own process, in a fresh temporary ``NEUROSIM_CACHE``. That process
is this script in its worker mode: it wraps ``Simulation.run`` to time-stamp each run (the learning
phase is the sum of the epoch runs' own wall times) and then calls ``neurosim.cli.main`` with the
same arguments as ``neurosim run dendritic-prediction ... --no-progress``, so it does exactly what
the command does. The JSON result is written atomically (temporary name, then ``os.replace``).

A cached run that compiles anyway (its build-cache key differed from the first run's) is counted
and named in a warning, and left out of the cached-run start-up figures. ``--python-hash-seed N``
pins ``PYTHONHASHSEED`` in every run; by default each process gets Python's random one, as a
user's would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "dendritic_prediction.json"
LAUNCH_ENV = "NEUROSIM_BENCH_LAUNCH_TIME"
PROTOCOL = "dendritic-prediction"


# ---------------------------------------------------------------------------------------- worker
def _worker(timings_path: str, cli_args: list[str]) -> int:
    """Run ``neurosim`` in this process, time-stamping every ``Simulation.run``."""
    from neurosim import cli, engine

    runs: list[dict[str, float]] = []
    original = engine.Simulation.run

    def timed_run(self: Any, **kwargs: Any) -> Any:
        start = time.time()
        result = original(self, **kwargs)
        runs.append(
            {
                "start": start,
                "end": time.time(),
                "wall_seconds": result.wall_seconds,
                "simulated_seconds": result.simulated_seconds,
            }
        )
        return result

    engine.Simulation.run = timed_run  # type: ignore[method-assign]
    rc = cli.main(cli_args)
    Path(timings_path).write_text(json.dumps({"runs": runs, "exit": time.time()}))
    return rc


# ---------------------------------------------------------------------------------------- parent
def _run_experiment(
    device: str,
    cache: Path,
    work: Path,
    tag: str,
    overrides: list[str],
    hash_seed: int | None = None,
) -> dict[str, Any]:
    """One ``neurosim run`` in a fresh process; its wall time, metrics and run time-stamps."""
    out = work / f"out-{tag}"
    timings = work / f"timings-{tag}.json"
    cli_args = ["run", PROTOCOL, "--device", device, "--no-progress", "--out", str(out)]
    for item in overrides:
        cli_args += ["--set", item]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(timings), "--", *cli_args]
    env = {**os.environ, "NEUROSIM_CACHE": str(cache)}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = str(hash_seed)
    launch = time.time()
    env[LAUNCH_ENV] = repr(launch)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    process_wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark run {tag!r} failed with exit status {proc.returncode}")
    metrics = json.loads((out / "metrics.json").read_text())
    runs = json.loads(timings.read_text())["runs"]
    epochs = int(metrics["epochs"])
    if len(runs) != epochs + 1:
        raise SystemExit(f"expected {epochs + 1} simulation runs in {tag!r}, saw {len(runs)}")
    learning = runs[:epochs]
    learning_wall = sum(r["wall_seconds"] for r in learning)
    learning_sim = sum(r["simulated_seconds"] for r in learning)
    sim_wall = float(metrics["wall_seconds_simulation"])
    sim_seconds = float(metrics["simulated_seconds"])
    shutil.rmtree(out, ignore_errors=True)
    return {
        "tag": tag,
        "device": device,
        "overrides": overrides,
        "process_wall_seconds": process_wall,
        "pipeline_wall_seconds": float(metrics["wall_seconds"]),
        "compile_seconds": float(metrics["compile_seconds"]),
        "compilations": int(metrics["compilations"]),
        "epochs": epochs,
        "repetitions": int(metrics["repetitions"]),
        "simulated_seconds": sim_seconds,
        "wall_seconds_simulation": sim_wall,
        "simulated_per_wall_second": sim_seconds / sim_wall,
        "learning_simulated_seconds": learning_sim,
        "learning_wall_seconds": learning_wall,
        "test_wall_seconds": runs[-1]["wall_seconds"],
        # the first run of a process also generates code (runtime: and loads/compiles Cython)
        "later_runs_simulated_per_wall_second": sum(r["simulated_seconds"] for r in runs[1:])
        / sum(r["wall_seconds"] for r in runs[1:]),
        "run_wall_seconds": [r["wall_seconds"] for r in runs],
        "launch_to_first_run_seconds": runs[0]["start"] - launch,
        "last_run_to_exit_seconds": process_wall - (runs[-1]["end"] - launch),
        "rate_correlation_end": metrics.get("rate_correlation_end"),
        "build_dir": Path(metrics["build_dir"]).name if metrics.get("build_dir") else None,
    }


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "n": len(values)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("brian2", "numpy", "neurosim"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(stats: dict[str, float], unit: str = "s", digits: int = 2) -> str:
    return f"{stats['median']:.{digits}f} {unit} (min {stats['min']:.{digits}f}, n={stats['n']})"


def _print_report(report: dict[str, Any]) -> None:
    cpp, rt, start = report["cpp_standalone"], report["runtime"], report["startup"]
    first, cached = start["first_run"], start["cached_run"]
    rows = [
        ("cpp_standalone (1 core), warm cache", ""),
        ("  simulated s per wall s (all runs)", _fmt(cpp["simulated_per_wall_second"], "x", 1)),
        (
            f"  learning phase ({cpp['learning_simulated_seconds']:.1f} s simulated) wall",
            _fmt(cpp["learning_wall_seconds"], "s", 3),
        ),
        ("  aim: learning phase < 1 s", "met" if cpp["learning_aim_met"] else "NOT met"),
        ("  simulation wall (learning + test)", _fmt(cpp["wall_seconds_simulation"], "s", 3)),
        (f"runtime{' (--quick: ' + rt['note'] + ')' if rt['note'] else ''}", ""),
        ("  simulated s per wall s (all runs)", _fmt(rt["simulated_per_wall_second"], "x", 2)),
        (
            "  ... runs 2.. only (run 1 generates code)",
            _fmt(rt["later_runs_simulated_per_wall_second"], "x", 2),
        ),
        ("  first run of the process, wall", _fmt(rt["first_run_wall_seconds"], "s", 1)),
        (
            f"  learning phase ({rt['learning_simulated_seconds']:.1f} s simulated) wall",
            _fmt(rt["learning_wall_seconds"], "s", 1),
        ),
        (
            "  cpp_standalone / runtime speed",
            f"{report['cpp_over_runtime_speed']:.0f}x (runs 2.. only: "
            f"{report['cpp_over_runtime_speed_later_runs']:.0f}x)",
        ),
        ("start-up: whole `neurosim run`, fresh process", ""),
        (
            "  first run (empty cache): process wall",
            f"{first['process_wall_seconds']:.2f} s, compile {first['compile_seconds']:.2f} s, "
            f"compilations {first['compilations']}",
        ),
        ("  cached run: process wall", _fmt(cached["process_wall_seconds"])),
        ("  cached run: compile_seconds / compilations", cached["compile_summary"]),
        (
            "  launch -> first simulation run",
            f"first {first['launch_to_first_run_seconds']:.2f} s, cached "
            + _fmt(cached["launch_to_first_run_seconds"]),
        ),
        (
            "  last run -> exit (analysis, figures, NIX)",
            f"first {first['last_run_to_exit_seconds']:.2f} s, cached "
            + _fmt(cached["last_run_to_exit_seconds"]),
        ),
        ("  first run / cached run (process wall)", f"{start['first_over_cached']:.2f}x"),
    ]
    width = max(len(k) for k, _ in rows) + 2
    print()
    print(
        f"dendritic-prediction benchmark  ({report['date']}, {report['machine']['cores']} cores,"
        f" {report['machine']['cpu']})"
    )
    print("-" * (width + 50))
    for key, value in rows:
        print(f"{key:<{width}}{value}")
    print("-" * (width + 50))


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    rt_repeats = (
        args.runtime_repeats if args.runtime_repeats is not None else (1 if args.quick else 2)
    )
    rt_reps = args.runtime_repetitions if args.runtime_repetitions else (5 if args.quick else None)
    rt_overrides = [f"protocol.repetitions_per_epoch={rt_reps}"] if rt_reps else []
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="neurosim-bench-"))
    try:
        cache = work / "cache"  # empty: the first cpp_standalone run must compile
        print(f"cpp_standalone, first run (empty cache {cache}) ...", flush=True)
        hs = args.python_hash_seed
        first = _run_experiment("cpp_standalone", cache, work, "cpp-first", [], hs)
        cached = []
        for k in range(repeats):
            print(f"cpp_standalone, cached run {k + 1}/{repeats} ...", flush=True)
            cached.append(_run_experiment("cpp_standalone", cache, work, f"cpp-cached-{k}", [], hs))
        runtime = []
        for k in range(rt_repeats):
            print(f"runtime, run {k + 1}/{rt_repeats} ...", flush=True)
            runtime.append(
                _run_experiment("runtime", cache, work, f"runtime-{k}", rt_overrides, hs)
            )
    finally:
        if args.keep_tmp:
            print(f"kept temporary folder {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def pick(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
        return _summary([float(r[key]) for r in rows])

    cpp = {
        key: pick(cached, key)
        for key in (
            "simulated_per_wall_second",
            "wall_seconds_simulation",
            "learning_wall_seconds",
            "test_wall_seconds",
        )
    }
    cpp["learning_simulated_seconds"] = cached[0]["learning_simulated_seconds"]
    cpp["simulated_seconds"] = cached[0]["simulated_seconds"]
    cpp["repetitions"] = cached[0]["repetitions"]
    cpp["learning_aim_met"] = cpp["learning_wall_seconds"]["median"] < 1.0
    cpp["first_run_simulated_per_wall_second"] = first["simulated_per_wall_second"]
    rt = {
        key: pick(runtime, key)
        for key in (
            "simulated_per_wall_second",
            "later_runs_simulated_per_wall_second",
            "wall_seconds_simulation",
            "learning_wall_seconds",
        )
    }
    rt["first_run_wall_seconds"] = _summary([r["run_wall_seconds"][0] for r in runtime])
    rt["learning_simulated_seconds"] = runtime[0]["learning_simulated_seconds"]
    rt["simulated_seconds"] = runtime[0]["simulated_seconds"]
    rt["repetitions"] = runtime[0]["repetitions"]
    rt["note"] = (
        f"repetitions_per_epoch={rt_reps}, {runtime[0]['repetitions']} repetitions instead of 104"
        if rt_reps
        else ""
    )
    compilations = [int(r["compilations"]) for r in cached]
    # the start-up of a cached run: only the runs that really found their build (0 compilations)
    hits = [r for r in cached if r["compilations"] == 0] or cached
    cached_summary: dict[str, Any] = {
        key: pick(hits, key)
        for key in (
            "process_wall_seconds",
            "pipeline_wall_seconds",
            "compile_seconds",
            "launch_to_first_run_seconds",
            "last_run_to_exit_seconds",
        )
    }
    cached_summary["compilations_per_run"] = compilations
    cached_summary["recompiled_runs"] = sum(1 for c in compilations if c)
    cached_summary["compile_summary"] = (
        f"{cached_summary['compile_seconds']['median']:.2f} s / 0 in "
        f"{len(cached) - cached_summary['recompiled_runs']} of {len(cached)} runs"
    )
    if any(compilations):
        dirs = sorted({str(r["build_dir"]) for r in [first, *cached]})
        print(
            "WARNING: a cached run compiled again (compilations != 0): the build-cache key "
            f"differed between processes (builds: {', '.join(dirs)})",
            file=sys.stderr,
        )
    report = {
        "benchmark": "dendritic-prediction",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": bool(args.quick),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "platform": platform.platform(),
        },
        "versions": _versions(),
        "python_hash_seed": args.python_hash_seed
        if args.python_hash_seed is not None
        else os.environ.get("PYTHONHASHSEED", "random (inherited)"),
        "experiment": "4 epochs x 26 repetitions of 200 ms (20.8 s learning) + 5.2 s test run, "
        "200 plastic synapses, dt 0.1 ms, seed 1, spiking read-out",
        "cpp_standalone": cpp,
        "runtime": rt,
        "cpp_over_runtime_speed": cpp["simulated_per_wall_second"]["median"]
        / rt["simulated_per_wall_second"]["median"],
        "cpp_over_runtime_speed_later_runs": cpp["simulated_per_wall_second"]["median"]
        / rt["later_runs_simulated_per_wall_second"]["median"],
        "startup": {
            "first_run": first,
            "cached_run": cached_summary,
            "first_over_cached": first["process_wall_seconds"]
            / cached_summary["process_wall_seconds"]["median"],
        },
        "raw": {"cpp_first": first, "cpp_cached": cached, "runtime": runtime},
    }
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        # internal: ``--worker TIMINGS.json -- run dendritic-prediction ...``
        sep = argv.index("--")
        return _worker(argv[1], argv[sep + 1 :])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 cached run, 1 runtime run of 5 repetitions per epoch (20 instead of 104)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    parser.add_argument("--repeats", type=int, help="cached cpp_standalone runs (default 3)")
    parser.add_argument("--runtime-repeats", type=int, help="runtime runs (default 2)")
    parser.add_argument(
        "--runtime-repetitions", type=int, help="protocol.repetitions_per_epoch on runtime"
    )
    parser.add_argument(
        "--python-hash-seed",
        type=int,
        help="set PYTHONHASHSEED in every run (default: inherited, i.e. random per process)",
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    report = _bench(args)
    _print_report(report)
    _write_json_atomic(args.out, report)
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to accuracy: wall time of a whole ``neurosim run`` on digits until a stated test accuracy.

Usage::

    .venv/bin/python benchmarks/bench_time_to_accuracy.py    # all cases: over 1 h on a free core
    .venv/bin/python benchmarks/bench_time_to_accuracy.py --cases ep,mc-prospective --epochs 10
    .venv/bin/python benchmarks/bench_time_to_accuracy.py --cases mc-default --epochs 9 --runs first

What it measures (issue 14, item 5), for each case (a circuit and a preset on ``digits``, seed 1,
``cpp_standalone``, one core):

1. a **first** process with an empty build cache (it compiles), then a **warm** process with the
   same command and the now-filled cache (it should compile nothing; a warning says if it did);
2. in each, the wall time from launching the process to the end of every epoch (the training
   pass and the test pass after it), from the protocol's own per-epoch progress messages, which
   the worker time-stamps; the test accuracies come from the run's ``metrics.json``;
3. the first epoch whose test accuracy reaches the case's target, and the time to it; the whole
   process wall time and the time after the last epoch (evaluation, analysis, recording), so
   that the wall time of a command stopped at that epoch (``--epochs k``: the first k epochs are
   the same run, the rates' decay depends on the epoch only) is the time to the epoch plus that
   tail;
4. beside each wall time, the CPU seconds of the process and its finished children (compilers,
   the standalone binaries) to the same point, which other jobs on a shared machine inflate far
   less than the wall time.

The package has no option that stops training at a target accuracy, so every run trains for the
case's full number of epochs and the time to the target is read from the time stamps.

Baselines that are no part of reaching the accuracy are off by default (the microcircuit's
shallow learner, training-set evaluation and backprop baseline; EP's gradient check, traces and
backprop baseline): ``--with-baselines`` keeps the presets' own. Every process is this script in
its worker mode; it wraps ``neurosim.api``'s progress callback and then calls
``neurosim.cli.main`` with the ``neurosim run`` arguments, so it does what the command does. The
load average (``/proc/loadavg``) is recorded before and after every process: the machine may be
shared. Results: a markdown table and a JSON file (``--out``), each written to a temporary name
and then renamed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "time_to_accuracy.json"
EPOCH_MESSAGE = re.compile(r"^epoch (\d+)/(\d+)(?: (\w+))?:")

MC_NO_BASELINES = [
    "protocol.shallow=false",
    "protocol.train_eval=false",
    "protocol.backprop_epochs=0",
]
EP_NO_BASELINES = [
    "protocol.grad_check=false",
    "protocol.traces=false",
    "protocol.backprop_epochs=0",
]

#: case -> protocol, preset, epochs, target test accuracy, the overrides that turn baselines off,
#: the metrics' history key of the circuit's test accuracies (entry 0: the untrained circuit)
CASES: dict[str, dict[str, Any]] = {
    "ep": {
        "protocol": "equilibrium-propagation", "preset": "digits", "epochs": 10,
        "target": 0.96, "no_baselines": EP_NO_BASELINES, "history": "test_accuracy",
        "label": "EP 64-100-10, two-phase (preset `digits`)",
    },
    "mc-prospective": {
        "protocol": "feedback-cancellation", "preset": "digits-prospective", "epochs": 15,
        "target": 0.96, "no_baselines": MC_NO_BASELINES, "history": "circuit",
        "label": "microcircuit 64-100-10, prospective (preset `digits-prospective`, 200 steps)",
    },
    "mc-default": {
        "protocol": "feedback-cancellation", "preset": "digits", "epochs": 15,
        "target": 0.96, "no_baselines": MC_NO_BASELINES, "history": "circuit",
        "label": "microcircuit 64-100-10, Sacramento neurons (preset `digits`, 1000 steps)",
    },
}  # fmt: skip


# ---------------------------------------------------------------------------------------- worker
def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (compilers, standalone binaries):
    less sensitive than wall time to other jobs on a shared machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _worker(timings_path: str, cli_args: list[str]) -> int:
    """Run ``neurosim`` in this process, time-stamping every progress message."""
    from neurosim import api, cli

    events: list[dict[str, Any]] = []
    original = api._progress_bar

    @contextlib.contextmanager
    def stamped(total: int, desc: str, show: Any) -> Iterator[Any]:
        with original(total, desc, show) as advance:

            def progress(n: int, message: str) -> None:
                events.append({"time": time.time(), "cpu": _cpu_seconds(), "message": message})
                advance(n, message)

            yield progress

    api._progress_bar = stamped  # type: ignore[assignment]
    rc = cli.main(cli_args)
    Path(timings_path).write_text(
        json.dumps({"events": events, "exit": time.time(), "exit_cpu": _cpu_seconds()})
    )
    return rc


# ---------------------------------------------------------------------------------------- parent
def _loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def _command(case: dict[str, Any], epochs: int, baselines: bool) -> list[str]:
    """The ``neurosim run`` arguments of a case."""
    args = ["run", case["protocol"], "--preset", case["preset"], "--seed", "1"]
    args += ["--epochs", str(epochs)]
    for item in [] if baselines else case["no_baselines"]:
        args += ["--set", item]
    return args


def _epoch_times(
    events: list[dict[str, Any]], launch: float
) -> tuple[dict[int, float], dict[int, float]]:
    """Wall seconds from launch, and CPU seconds, to each epoch's progress message (the
    circuit's, not a baseline's)."""
    wall: dict[int, float] = {}
    cpu: dict[int, float] = {}
    for event in events:
        m = EPOCH_MESSAGE.match(event["message"])
        if m and m.group(3) in (None, "circuit") and int(m.group(1)) not in wall:
            wall[int(m.group(1))] = event["time"] - launch
            cpu[int(m.group(1))] = event["cpu"]
    return wall, cpu


def _run_case(
    name: str, case: dict[str, Any], cache: Path, work: Path, tag: str, epochs: int,
    baselines: bool,
) -> dict[str, Any]:  # fmt: skip
    """One whole ``neurosim run`` of a case in a fresh process."""
    out = work / f"out-{name}-{tag}"
    timings = work / f"timings-{name}-{tag}.json"
    cli_args = [*_command(case, epochs, baselines), "--no-progress", "--out", str(out)]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(timings), "--", *cli_args]
    env = {**os.environ, "NEUROSIM_CACHE": str(cache)}
    load_before = _loadavg()
    launch = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    process_wall = time.time() - launch
    load_after = _loadavg()
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"run {name}/{tag} failed with exit status {proc.returncode}")
    metrics = json.loads((out / "metrics.json").read_text())
    stamps = json.loads(timings.read_text())
    times, cpu = _epoch_times(stamps["events"], launch)
    accuracy = [float(a) for a in metrics["history"][case["history"]]]
    if sorted(times) != list(range(1, epochs + 1)) or len(accuracy) != epochs + 1:
        raise SystemExit(f"run {name}/{tag}: expected {epochs} epochs, saw {sorted(times)}")
    reached = next((e for e in range(1, epochs + 1) if accuracy[e] >= case["target"]), None)
    tail = stamps["exit"] - launch - times[epochs]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "tag": tag,
        "command": "neurosim " + " ".join(_command(case, epochs, baselines)),
        "process_wall_seconds": process_wall,
        "compile_seconds": float(metrics.get("compile_seconds", 0.0)),
        "compilations": int(metrics.get("compilations", -1)),
        "wall_seconds_training": float(metrics["wall_seconds_training"]),
        "test_accuracy": accuracy,
        "seconds_to_epoch_end": [times[e] for e in range(1, epochs + 1)],
        "cpu_seconds_to_epoch_end": [cpu[e] for e in range(1, epochs + 1)],
        "process_cpu_seconds": stamps["exit_cpu"],
        "tail_seconds": tail,
        "target": case["target"],
        "epoch_reached": reached,
        "seconds_to_target": times[reached] if reached else None,
        "command_seconds_to_target": times[reached] + tail if reached else None,
        "cpu_seconds_to_target": cpu[reached] if reached else None,
        "load_before": load_before,
        "load_after": load_after,
    }


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _fmt_s(v: float | None) -> str:
    return "not reached" if v is None else f"{v:.1f}"


def _markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table (one row per case and run)."""
    lines = [
        f"Time to accuracy on digits (seed 1, cpp_standalone, one core), {report['date']}, "
        f"{report['cpu']}; baselines {'on' if report['baselines'] else 'off'}.",
        "",
        "| case | run | target | epoch reached (accuracy) | s to that epoch | + tail = command s | "
        "CPU s to that epoch | whole process s (epochs) | compile s | load before → after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in report["cases"].items():
        for run in res["runs"]:
            e = run["epoch_reached"]
            got = f"{e} ({run['test_accuracy'][e]:.3f})" if e else "—"
            load = f"{run['load_before'][0]:.1f} → {run['load_after'][0]:.1f}"
            cells = [
                name, run["tag"], f"{run['target']:.3f}", got,
                _fmt_s(run["seconds_to_target"]), _fmt_s(run["command_seconds_to_target"]),
                _fmt_s(run["cpu_seconds_to_target"]),
                f"{run['process_wall_seconds']:.1f} ({len(run['seconds_to_epoch_end'])})",
                f"{run['compile_seconds']:.1f}", load,
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Commands:", ""]
    for res in report["cases"].values():
        lines.append(f"    {res['runs'][0]['command']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"from {', '.join(CASES)}")
    parser.add_argument("--epochs", type=int, default=None, help="override every case's epochs")
    parser.add_argument(
        "--runs", default="first,warm", help="which runs per case: first (compiling), warm, or both"
    )
    parser.add_argument("--with-baselines", action="store_true", help="keep the presets' baselines")
    parser.add_argument("--cache", default=None, help="build cache folder (default: a fresh one)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON path (.md beside it)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {list(CASES)}")
    tags = [t for t in ("first", "warm") if t in args.runs.split(",")]
    if not tags:
        parser.error(f"--runs takes first, warm or both, got {args.runs!r}")
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "baselines": args.with_baselines,
        "cases": {},
    }
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="tta-") as tmp:
        work = Path(tmp)
        for name in names:
            case = CASES[name]
            epochs = args.epochs or case["epochs"]
            cache = Path(args.cache) / name if args.cache else work / f"cache-{name}"
            runs = []
            for tag in tags:
                print(f"{name} {tag}: {time.strftime('%H:%M:%S')} load {_loadavg()}", flush=True)
                run = _run_case(name, case, cache, work, tag, epochs, args.with_baselines)
                if tag == "warm" and run["compilations"] > 0:
                    print(f"warning: the warm {name} run compiled {run['compilations']}×")
                print(
                    f"  epoch {run['epoch_reached']}, {_fmt_s(run['seconds_to_target'])} s to "
                    f"target; process {run['process_wall_seconds']:.1f} s", flush=True,
                )  # fmt: skip
                runs.append(run)
            report["cases"][name] = {"label": case["label"], "runs": runs}
            _write_atomic(out, json.dumps(report, indent=2))
            _write_atomic(out.with_suffix(".md"), _markdown(report))
    print(_markdown(report))
    return 0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ×{os.cpu_count()}"
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())

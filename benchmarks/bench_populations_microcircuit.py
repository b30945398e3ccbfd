"""Accuracy, firing rates in Hz and cost per training example of the microcircuit with the
spiking read-out at n cells per unit, against its rate read-out (issue 15 items 1, 2 and 5, the
microcircuit's part).

Usage::

    .venv/bin/python benchmarks/bench_populations_microcircuit.py [--quick] [--epochs 3]
        [--populations 1,4,16] [--max-rate-hz 100] [--seed 1] [--out FILE.json]

Each case is one whole ``neurosim run feedback-cancellation --preset digits-spiking`` (64-100-10,
supervised stage, dt 0.1 ms, 100 ms patterns, the preset's learning rates) for ``--epochs``
epochs, without the shallow learner, the backprop baseline or the training-set pass (they cost
as much as the circuit and measure nothing here): the rate read-out with the same settings
(``--preset digits`` with the spiking preset's three learning-rate settings; its test passes
read the settled state, ``evaluation = auto``), then the spiking read-out at
``circuit.max_rate_hz`` = ``--max-rate-hz`` with ``circuit.population`` = n for every n of
``--populations``. Each case runs in its own process, one core (``OMP_NUM_THREADS=1``), with a
fresh ``NEUROSIM_CACHE`` (so each compiles its own build). Reported per case: the test accuracy
after every epoch, the firing rates of the last test pass (``metrics.firing``: mean and most
active cell per group in Hz, spikes per example), the cost per training example (the training
runs' wall time per example seen: arguments written, binary run, results read), its ratio to the
rate read-out's, the compile time and the load average before and after. Written to
``benchmarks/results/populations_microcircuit.json`` (atomically) unless ``--out`` says
otherwise. ``--quick``: 1 epoch on the first 100 training and 50 test digits (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "populations_microcircuit.json"
#: settings of every case: without the learners and passes that measure nothing here
COMMON = (
    "run", "feedback-cancellation", "--no-progress",
    "--set", "protocol.shallow=false", "--set", "protocol.backprop_epochs=0",
    "--set", "protocol.train_eval=false", "--set", "protocol.references=false",
)  # fmt: skip
#: the rate read-out with the settings of the digits-spiking preset (where it differs from digits)
RATE_AS_SPIKING = (
    "--preset", "digits", "--set", "protocol.eta_forward=[0.00375, 0.00125]",
    "--set", "protocol.eta_pi=0.005", "--set", "protocol.eta_decay=1.0",
)  # fmt: skip
QUICK = (
    "--set", "protocol.n_train=100", "--set", "protocol.n_test=50",
    "--set", "protocol.patterns_per_run=50",
)  # fmt: skip


def _loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def _case(readout: str, population: int, args: argparse.Namespace, epochs: int) -> dict:
    """One whole run in its own process and cache; its metrics reduced to the table's."""
    argv = [*COMMON, "--epochs", str(epochs), "--seed", str(args.seed)]
    if readout == "rate":
        argv += list(RATE_AS_SPIKING)
    else:
        argv += ["--preset", "digits-spiking"]
        argv += ["--set", f"circuit.max_rate_hz={args.max_rate_hz}"]
        argv += ["--set", f"circuit.population={population}"]
    if args.quick:
        argv += list(QUICK)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        env = {**os.environ, "NEUROSIM_CACHE": str(Path(tmp) / "cache"), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(REPO)}  # fmt: skip
        load_before, start = _loadavg(), time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "neurosim", *argv, "--out", str(out)],
            capture_output=True, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"case {readout} n={population} failed:\n{proc.stderr[-3000:]}")
        m = json.loads((out / "metrics.json").read_text())
    seen = m["samples_per_second"] * m["wall_seconds_training"]
    return {
        "readout": readout,
        "population": population if readout == "spiking" else None,
        "max_rate_hz": args.max_rate_hz if readout == "spiking" else None,
        "command": shlex.join(["neurosim", *argv]),
        "epochs": epochs,
        "test_accuracy": m["history"]["circuit"],  # before training, then after each epoch
        "firing": m.get("firing"),
        "training_examples": round(seen),
        "train_ms_per_example": 1e3 / m["samples_per_second"],
        "wall_seconds_training": m["wall_seconds_training"],
        "compile_seconds": m["compile_seconds"],
        "wall_seconds": time.perf_counter() - start,
        "evaluation": m["evaluation"],
        "load_before": load_before,
        "load_after": _loadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", default="1,4,16")
    parser.add_argument("--max-rate-hz", type=float, default=100.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-rate", action="store_true", help="skip the rate read-out's case")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    epochs = 1 if args.quick else args.epochs
    cases = [] if args.no_rate else [("rate", 1)]
    cases += [("spiking", int(n)) for n in args.populations.split(",") if n]
    rows = []
    for readout, n in cases:
        row = _case(readout, n, args, epochs)
        rows.append(row)
        firing = row["firing"] or {}
        hz = " / ".join(
            f"{firing['test'][g]['mean_hz']:.0f} ({firing['test'][g]['max_hz']:.0f})"
            for g in ("layer0", "layer1", "layer2", "inter1")
            if "test" in firing
        )
        print(
            f"{readout:8s} n={n:3d}: test {row['test_accuracy'][-1]:.3f} "
            f"({', '.join(f'{a:.3f}' for a in row['test_accuracy'][1:])}), "
            f"{row['train_ms_per_example']:.1f} ms/example, Hz {hz or '-'}, compile "
            f"{row['compile_seconds']:.0f} s, load {row['load_before'][0]:.2f}-"
            f"{row['load_after'][0]:.2f}",
            flush=True,
        )
        _write(rows, args.out)  # after every case: a long sitting keeps what it measured
    print(f"written to {args.out}")
    return 0


def _write(rows: list[dict], path: Path) -> None:
    """The rows so far, each with its cost relative to the rate read-out's, written atomically."""
    rate = next((r["train_ms_per_example"] for r in rows if r["readout"] == "rate"), None)
    for row in rows:
        row["ratio_to_rate"] = row["train_ms_per_example"] / rate if rate else None
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "rows": rows}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())

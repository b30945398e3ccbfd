"""Digits accuracy on the GPU against the CPU: the same seed must reach the same accuracy.

Trains the dendritic microcircuit (``feedback-cancellation``) and the EP circuit
(``equilibrium-propagation``) on the ``digits`` data set with one seed on ``cpp_standalone`` and
on ``cuda_standalone``, each as a whole ``neurosim run`` in its own process (all at once: the CPU
runs use one core each, the GPU runs the GPU), and prints both test accuracies and their
difference (issue 7: within 1 point). The protocols' default settings are kept but for fewer
epochs and, for the microcircuit, a subset of the data (its 1000 steps per example are slow on a
GPU): see ``RUNS`` and the ``--*-epochs`` / ``--mc-n-train`` options. Gradient checks, traces,
shallow and backprop baselines are off: they do not bear on the comparison.

Results go to ``--out`` (``gpu_digits.json``, written after each run finishes). A run still going
at ``--budget-s`` is stopped and reported as ``timeout``.
Run: ``.venv/bin/python benchmarks/gpu_digits.py --out results/gpu-digits``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEVICES = ("cpp_standalone", "cuda_standalone")
PROTOCOLS = ("feedback-cancellation", "equilibrium-propagation")
#: what each run leaves out of the defaults (baselines and checks that do not bear on accuracy)
RUNS = {
    "feedback-cancellation": [
        "--set",
        "protocol.shallow=false",
        "--set",
        "protocol.backprop_epochs=0",
        "--set",
        "protocol.train_eval=false",
    ],
    "equilibrium-propagation": [
        "--set",
        "protocol.backprop_epochs=0",
        "--set",
        "protocol.grad_check=false",
        "--set",
        "protocol.traces=false",
        "--set",
        "protocol.train_eval=false",
    ],
}


def _command(protocol: str, device: str, args: argparse.Namespace, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "neurosim", "run", protocol, "--dataset", "digits"]
    cmd += ["--device", device, "--seed", str(args.seed), "--no-progress", "--out", str(out)]
    cmd += RUNS[protocol]
    if protocol == "feedback-cancellation":
        cmd += ["--epochs", str(args.mc_epochs)]
        if args.mc_n_train:
            cmd += ["--set", f"protocol.n_train={args.mc_n_train}"]
        if args.mc_n_test:
            cmd += ["--set", f"protocol.n_test={args.mc_n_test}"]
    else:
        cmd += ["--epochs", str(args.ep_epochs)]
    return cmd


def _accuracy(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("test_accuracy")
    return float(value) if value is not None else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def compare(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per protocol: both accuracies, their difference in points, and whether it is ≤ 1 point."""
    rows = []
    for protocol in PROTOCOLS:
        acc = {
            r["device"]: r.get("test_accuracy")
            for r in runs
            if r["protocol"] == protocol and r["status"] == "ok"
        }
        cpu, gpu = acc.get("cpp_standalone"), acc.get("cuda_standalone")
        diff = None if cpu is None or gpu is None else 100.0 * (gpu - cpu)
        rows.append(
            {
                "protocol": protocol,
                "cpp_accuracy": cpu,
                "cuda_accuracy": gpu,
                "difference_points": diff,
                "within_1_point": None if diff is None else abs(diff) <= 1.0,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu-digits"))
    parser.add_argument("--devices", default=",".join(DEVICES), help="comma-separated")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--mc-epochs", type=int, default=1, help="microcircuit epochs (protocol default 3)"
    )
    parser.add_argument("--mc-n-train", type=int, default=300, help="0: all 1437 digits")
    parser.add_argument("--mc-n-test", type=int, default=0, help="0: all 360 test digits")
    parser.add_argument("--ep-epochs", type=int, default=3, help="EP epochs (protocol default 10)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="stop runs still going")
    parser.add_argument("--cache", default=None, help="build cache (default: a fresh temporary)")
    args = parser.parse_args(argv)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not set(devices) <= set(DEVICES) or not set(protocols) <= set(PROTOCOLS):
        parser.error(f"devices from {DEVICES}, protocols from {PROTOCOLS}")
    if min(args.mc_epochs, args.ep_epochs) < 1 or min(args.mc_n_train, args.mc_n_test) < 0:
        parser.error("epochs must be at least 1 and the subset sizes not negative")

    from neurosim.results import write_json

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or tempfile.mkdtemp(prefix="neurosim-gpu-digits-")
    env = {**os.environ, "NEUROSIM_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    report: dict[str, Any] = {"seed": args.seed, "settings": vars(args), "runs": []}
    start = time.perf_counter()
    procs = {}
    for protocol in protocols:
        for device in devices:
            run_out = out / f"{protocol}-{device}"
            cmd = _command(protocol, device, args, run_out)
            log = open(out / f"{protocol}-{device}.log", "w")  # noqa: SIM115 - closed below
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            procs[(protocol, device)] = (proc, log, run_out, " ".join(cmd[1:]))
            print(f"started {protocol} on {device}", flush=True)
    pending = dict(procs)
    while pending:
        time.sleep(1.0)
        elapsed = time.perf_counter() - start
        for key, (proc, log, run_out, cmd) in list(pending.items()):
            code = proc.poll()
            if code is None and elapsed < args.budget_s:
                continue
            if code is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
            del pending[key]
            protocol, device = key
            row: dict[str, Any] = {"protocol": protocol, "device": device, "command": cmd}
            row["wall_seconds"] = elapsed
            metrics_file = run_out / "metrics.json"
            if code is None:
                row["status"] = "timeout"
            elif code == 0 and metrics_file.is_file():
                metrics = json.loads(metrics_file.read_text())
                row.update(
                    status="ok",
                    test_accuracy=_accuracy(metrics),
                    history=metrics.get("history"),
                    compilations=metrics.get("compilations"),
                    compile_seconds=metrics.get("compile_seconds"),
                    epochs=metrics.get("epochs"),
                )
            else:
                text = (out / f"{protocol}-{device}.log").read_text()
                errors = [ln for ln in text.splitlines() if ln.startswith("neurosim: error:")]
                row.update(status="failed", message=(errors[-1] if errors else text[-500:]))
            report["runs"].append(row)
            report["comparison"] = compare(report["runs"])
            write_json(out / "gpu_digits.json", report)
            acc = row.get("test_accuracy")
            shown = f"test accuracy {acc:.4f}" if acc is not None else row.get("message", "")
            print(f"{protocol} on {device}: {row['status']} after {elapsed:.0f} s; {shown}")
    report["comparison"] = compare(report["runs"])
    report["wall_seconds"] = time.perf_counter() - start
    write_json(out / "gpu_digits.json", report)
    if not args.cache:
        shutil.rmtree(cache, ignore_errors=True)
    print(
        f"seed {args.seed}; microcircuit {args.mc_epochs} epoch(s) on "
        f"{args.mc_n_train or 'all'} digits, EP {args.ep_epochs} epoch(s) on all"
    )
    for row in report["comparison"]:
        diff = row["difference_points"]
        print(
            f"{row['protocol']:<24} cpp {_fmt(row['cpp_accuracy'])}"
            f"  cuda {_fmt(row['cuda_accuracy'])}"
            f"  difference {'-' if diff is None else f'{diff:+.2f} points'}"
            f"  within 1 point: {row['within_1_point']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training accuracy on digits against the time step dt and the steps per example, for the
microcircuit (feedback cancellation, prospective and instantaneous neurons) and for EP, with the
settled-potential error of the trained circuit beside each row (issue 14, item 2).

Usage::

    python benchmarks/bench_dt_training.py --rows mc-prospective:0.5:100:30  # case:dt:steps:epochs
    python benchmarks/bench_dt_training.py --grid ep        # a case's rows (GRIDS)
    python benchmarks/bench_dt_training.py --resettle       # settled errors again
    python benchmarks/bench_dt_training.py --report         # table and figure only

Every row is one whole ``neurosim run`` on digits (seed 1, ``cpp_standalone``, one core) in a
fresh process, its baselines off (shallow learner, training-set pass and backprop baseline of the
microcircuit; gradient check, traces and backprop baseline of EP): the Brian2 circuit trains,
never the twin. How a row's settings follow from (dt, steps):

* **microcircuit** (``mc-prospective``, ``mc-instantaneous``): the ``digits`` preset with its time
  scaled to a pattern of ``steps × dt`` ms by the rule of ``digits-prospective``: with
  s = 100 ms / pattern, the learning lag and the plasticity low-pass τ_w ÷ s and every learning
  rate × s (each pattern then changes the weights as much as a 100 ms pattern does), and
  ``circuit.neuron`` set. (0.1 ms, 200 steps, prospective) is the ``digits-prospective`` preset
  and (0.1 ms, 1000 steps, instantaneous) the ``digits`` preset. Test passes read the circuit as
  the protocol's ``evaluation = "auto"`` does (the settled state where the pattern settles,
  else the simulated pattern ends).
* **EP** (``ep``): the ``digits`` preset (20 free / 4 nudged steps of 0.5 ms) with ``dt_ms`` and
  ``free_steps`` set and the nudged phase a fifth of the free one (at least one step), as in
  the preset.

Beside each row, from the run's trained weights and the torch twin (which equals the circuit step
by step to about 1e-12: ``tests/test_bridge.py``, ``tests/test_microcircuit_circuit.py``,
``tests/test_equilibrium_propagation.py``): how far the output is from its fixed point at the
end of a test example's presentation, max over the 360 test digits of |u − u*| / max|u*|
(microcircuit: u of the output after ``steps`` steps from the previous digit's settled state, as
in ``bench_microcircuit_dt.py``; EP: the output state s at the end of the free phase, from 0, as
the protocol restarts every example). Wall and CPU seconds (the process and its children) and the
load average before and after are recorded per row; rows are appended to the JSON file as they
finish, so an interrupted grid resumes; each row's trained weights are kept beside it.

The twin trains nothing here: at one example per step it costs about 450 µs per step of the
64-100-10 microcircuit's dynamics alone (torch, one thread), against about 42 µs per step of the
compiled circuit with its plasticity, so every accuracy comes from the Brian2 circuit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "dt_training.json"
CASES = ("mc-prospective", "mc-instantaneous", "ep")
MC_BASE_PATTERN_MS = 100.0  # the digits preset's pattern, which the time scaling starts from
MC_NO_BASELINES = (
    "protocol.shallow=false",
    "protocol.train_eval=false",
    "protocol.backprop_epochs=0",
)
EP_NO_BASELINES = (
    "protocol.grad_check=false",
    "protocol.traces=false",
    "protocol.backprop_epochs=0",
)
#: the grids ``--grid`` runs, (dt ms, steps, epochs) in the order they were run (benchmarks/README):
#: prospective rows shorter than the preset's 200 steps run 30 epochs, the cost of 200 × 15, and
#: 300 steps 10 epochs, the same cost
GRIDS: dict[str, list[tuple[float, int, int]]] = {
    "mc-prospective": [(0.1, 200, 15), (0.5, 200, 15), (1.0, 200, 15), (0.5, 100, 30)]
    + [(0.5, 50, 30), (0.5, 20, 30), (0.1, 100, 30), (1.0, 20, 30), (0.1, 20, 30)]
    + [(0.1, 300, 10)],
    "mc-instantaneous": [(0.1, 1000, 1), (0.5, 200, 15)],
    "ep": [(0.5, 20, 10), (1.0, 10, 10), (0.5, 10, 10), (1.0, 20, 10), (0.5, 50, 10)]
    + [(0.5, 100, 10), (0.2, 100, 10), (0.1, 200, 10), (0.2, 50, 10), (0.1, 100, 10)]
    + [(0.05, 1000, 10), (1.0, 50, 10), (0.5, 200, 10)],
}


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def overrides(case: str, dt: float, steps: int) -> list[str]:
    """The ``--set`` items of one row (module docstring: how they follow from dt and steps)."""
    if case == "ep":
        nudged = max(1, round(steps / 5))
        return [
            f"protocol.dt_ms={_fmt(dt)}", f"protocol.free_steps={steps}",
            f"protocol.nudged_steps={nudged}", *EP_NO_BASELINES,
        ]  # fmt: skip
    from neurosim import presets
    from protocols.feedback_cancellation import FeedbackCancellation

    base = presets.load(FeedbackCancellation, "digits")
    p, c = base["protocol"], base["circuit"]
    pattern = steps * dt
    s = MC_BASE_PATTERN_MS / pattern
    eta = ", ".join(_fmt(v * s) for v in p["eta_forward"])
    return [
        f"protocol.dt_ms={_fmt(dt)}",
        f"protocol.pattern_ms={_fmt(pattern)}",
        f"protocol.learning_lag_ms={_fmt(p['learning_lag_ms'] / s)}",
        f"circuit.tau_w={_fmt(c['tau_w'] / s)}",
        f"protocol.eta_forward=[{eta}]",
        f"protocol.eta_ip={_fmt(p['eta_ip'] * s)}",
        f"protocol.self_predicting_eta_ip={_fmt(p['self_predicting_eta_ip'] * s)}",
        f"protocol.self_predicting_eta_pi={_fmt(p['self_predicting_eta_pi'] * s)}",
        f"circuit.neuron={case.removeprefix('mc-')}",
        *MC_NO_BASELINES,
    ]


def command(case: str, dt: float, steps: int, epochs: int) -> list[str]:
    """The ``neurosim`` arguments of one row."""
    protocol = "equilibrium-propagation" if case == "ep" else "feedback-cancellation"
    args = ["run", protocol, "--preset", "digits", "--seed", "1", "--epochs", str(epochs)]
    for item in overrides(case, dt, steps):
        args += ["--set", item]
    return args


def _kept(out_path: Path, case: str, dt: float, steps: int, epochs: int) -> Path:
    """Where a row's trained weights are kept."""
    return out_path.parent / "dt_training_weights" / f"{case}-{dt:g}-{steps}-{epochs}.npz"


def _loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def run_row(
    case: str, dt: float, steps: int, epochs: int, cache: Path, out_path: Path
) -> dict[str, Any]:
    """One whole run in a fresh process, then the settled-output error of its trained weights."""
    with tempfile.TemporaryDirectory(prefix="dt-training-") as work:
        out = Path(work) / "out"
        args = command(case, dt, steps, epochs)
        env = {**os.environ, "NEUROSIM_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
        env["PYTHONPATH"] = str(REPO)
        load_before, cpu0, t0 = _loadavg(), _children_cpu(), time.time()
        cmd = [sys.executable, "-m", "neurosim", *args, "--no-progress", "--out", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall, cpu, load_after = time.time() - t0, _children_cpu() - cpu0, _loadavg()
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"{case} dt {dt} steps {steps} failed ({proc.returncode})")
        metrics = json.loads((out / "metrics.json").read_text())
        history = metrics["history"]["circuit" if case != "ep" else "test_accuracy"]
        weights = dict(np.load(out / "weights.npz"))
        keep = _kept(out_path, case, dt, steps, epochs)
        keep.parent.mkdir(parents=True, exist_ok=True)
        np.savez(keep, **weights)  # for reading the trained circuit at other dt later
    return {
        "case": case, "dt": dt, "steps": steps, "epochs": epochs,
        "command": "neurosim " + " ".join(args),
        "test_accuracy": [float(a) for a in history],
        "evaluation": metrics.get("evaluation"),
        "wall_seconds": wall, "cpu_seconds": cpu,
        "wall_seconds_training": float(metrics["wall_seconds_training"]),
        "compile_seconds": float(metrics.get("compile_seconds", 0.0)),
        "simulated_seconds": metrics.get("simulated_seconds")
        or metrics.get("simulated_seconds_training"),
        "weights_sum": float(sum(np.abs(v).sum() for k, v in weights.items() if k[0] == "W")),
        "load_before": load_before, "load_after": load_after,
        **settled_errors(case, dt, steps, weights),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)),
    }  # fmt: skip


def settled_errors(
    case: str, dt: float, steps: int, weights: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Max and median over the test digits of max|output − its fixed point| / max|fixed point|
    at the end of a presentation of ``steps`` steps of ``dt`` (twin; module docstring)."""
    import torch

    from neurosim.datasets import load
    from neurosim.seeding import torch_threads

    data = load("digits", seed=1)
    x = np.asarray(data.x_test, dtype=float)
    w = {k: torch.as_tensor(v) for k, v in weights.items() if not k.startswith("initial_")}
    with torch_threads(1):
        if case == "ep":
            from models import equilibrium_propagation as ep

            params = ep.EPParameters(sizes=(64, 100, 10), dt=dt)
            s_n = ep.relax(params, w, torch.as_tensor(x), steps=steps).state.s[-1]
            reference = "fixed point"
            try:
                s_star = ep.fixed_point(params, w, torch.as_tensor(x)).state.s[-1]
            except RuntimeError:  # no exact fixed point found: a long relaxation stands for it
                long = ep.relax(params, w, torch.as_tensor(x), steps=round(2000 / dt))
                s_star, reference = (
                    long.state.s[-1],
                    f"relaxation of 2 s, residual {long.residual:.1e}",
                )
            per_digit = (s_n - s_star).abs().amax(1) / s_star.abs().max()
            return {"settled_error": float(per_digit.max()),
                    "settled_error_median": float(per_digit.median()),
                    "settled_share": float((per_digit <= 1e-3).double().mean()),
                    "settled_reference": reference}  # fmt: skip
        sys.path.insert(0, str(HERE))
        from bench_microcircuit_dt import measure

        from neurosim.parameters.microcircuit import MicrocircuitParams

        params = MicrocircuitParams(phi="logistic", neuron=case.removeprefix("mc-"))
        row = measure(params, w, x, None, dt, checkpoints=(steps,))[steps]
        return {
            "settled_error": row["u_error"],
            "settled_error_median": row["u_error_median"],
            "settled_share": row["u_settled_share"],
            "settled_reference": "fixed point",
        }


# ------------------------------------------------------------------------------------- reporting
def _rows(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["rows"] if path.exists() else []


def _save(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"rows": rows}, f, indent=1)
    os.replace(tmp, path)


def _at(row: dict[str, Any], epoch: int) -> float | None:
    acc = row["test_accuracy"]
    return acc[epoch] if epoch < len(acc) else None


def markdown(rows: list[dict[str, Any]], epochs: tuple[int, ...]) -> str:
    """One table per case: accuracy after the given epochs, the settled error, cost and load."""
    out = []
    for case in CASES:
        mine = sorted((r for r in rows if r["case"] == case), key=lambda r: (r["steps"], r["dt"]))
        if not mine:
            continue
        heads = " | ".join(f"epoch {e}" for e in epochs)
        out.append(f"\n{case}\n")
        out.append(f"| dt ms | steps | ms/example | {heads} | best (epoch) | settled error: max, "
                   "share ≤ 1e-3 | training s | wall s (CPU s) | load |")  # fmt: skip
        out.append("|---" * (8 + len(epochs)) + "|")
        for r in mine:
            accs = " | ".join("—" if _at(r, e) is None else f"{_at(r, e):.3f}" for e in epochs)
            best = int(np.argmax(r["test_accuracy"]))
            load = f"{r['load_before'][0]:.1f}→{r['load_after'][0]:.1f}"
            share = f"{r['settled_share']:.3f}" if "settled_share" in r else "—"
            out.append(
                f"| {r['dt']:g} | {r['steps']} | {r['dt'] * r['steps']:g} | {accs} | "
                f"{r['test_accuracy'][best]:.3f} ({best}) | {r['settled_error']:.1e}, {share} | "
                f"{r['wall_seconds_training']:.0f} | {r['wall_seconds']:.0f} "
                f"({r['cpu_seconds']:.0f}) | {load} |"
            )
    return "\n".join(out) + "\n"


def figure(rows: list[dict[str, Any]], path: Path, epoch: int) -> None:
    """Accuracy after ``epoch`` epochs and the settled error against steps, one line per dt."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("mc-prospective", "mc-instantaneous"), ("ep",)]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), squeeze=False)
    dts = sorted({r["dt"] for r in rows})
    colour = dict(zip(dts, plt.cm.viridis(np.linspace(0, 0.9, len(dts))), strict=True))
    for row_axes, cases in zip(axes, groups, strict=True):
        for case, style in zip(cases, ("-o", "--s"), strict=False):
            for dt in dts:
                mine = sorted(
                    (r for r in rows if r["case"] == case and r["dt"] == dt),
                    key=lambda r: r["steps"],
                )
                if not mine:
                    continue
                n = [r["steps"] for r in mine]
                label = f"{case} dt {dt:g}"
                acc = [_at(r, min(epoch, r["epochs"])) for r in mine]  # shorter rows: their last
                row_axes[0].semilogx(n, acc, style, color=colour[dt], label=label)
                err = [max(r["settled_error"], 1e-16) for r in mine]
                row_axes[1].loglog(n, err, style, color=colour[dt], label=label)
        name = "microcircuit (feedback cancellation)" if cases[0] != "ep" else "EP (two-phase)"
        row_axes[0].set(xlabel="steps per example (EP: free steps)", title=name,
                        ylabel=f"test accuracy, epoch {epoch} (or the row's last)")  # fmt: skip
        for ax in row_axes:
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        row_axes[1].set(xlabel="steps per example (EP: free steps)",
                        ylabel="output |u − u*| / max|u*| at the end", title=name)  # fmt: skip
        row_axes[0].legend(fontsize=7)
    fig.suptitle("digits 64-100-10, seed 1, cpp_standalone (training); twin (settled error)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="", help="case:dt:steps:epochs, comma separated")
    ap.add_argument("--grid", choices=CASES, help="run this case's grid (GRIDS)")
    ap.add_argument("--report", action="store_true", help="only write the table and figure")
    ap.add_argument(
        "--resettle", action="store_true", help="recompute the settled errors from kept weights"
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cache", type=Path, default=HERE / "results" / "build-cache")
    args = ap.parse_args(argv)
    todo = []
    if args.rows:
        for item in args.rows.split(","):
            case, dt, steps, epochs = item.split(":")
            todo.append((case, float(dt), int(steps), int(epochs)))
    if args.grid:
        todo += [(args.grid, dt, n, e) for dt, n, e in GRIDS[args.grid]]
    rows = _rows(args.out)
    if args.resettle:
        for r in rows:
            kept = _kept(args.out, r["case"], r["dt"], r["steps"], r["epochs"])
            if kept.exists():
                r.update(settled_errors(r["case"], r["dt"], r["steps"], dict(np.load(kept))))
        _save(args.out, rows)
    for case, dt, steps, epochs in [] if args.report else todo:
        if any((r["case"], r["dt"], r["steps"], r["epochs"]) == (case, dt, steps, epochs)
               for r in rows):  # fmt: skip
            continue
        row = run_row(case, dt, steps, epochs, args.cache, args.out)
        rows.append(row)
        _save(args.out, rows)
        acc = ", ".join(f"{a:.3f}" for a in row["test_accuracy"])
        print(f"{case} dt {dt} steps {steps}: {acc}; settled error {row['settled_error']:.2e}; "
              f"{row['wall_seconds']:.0f} s wall, {row['cpu_seconds']:.0f} s CPU, load "
              f"{row['load_before'][0]:.1f}→{row['load_after'][0]:.1f}", flush=True)  # fmt: skip
    if rows:
        table = markdown(rows, (10, 15, 30))
        args.out.with_suffix(".md").write_text(table)
        figure(rows, args.out.with_suffix(".png"), 15)
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU benchmark: samples per second of the microcircuit and the EP circuit, cuda vs cpp standalone.

Times the dendritic microcircuit (logistic φ, rate read-out, forward/IP/PI rules on, 100 ms =
1000 steps of 0.1 ms per example) and the Hopfield circuit of Equilibrium Propagation (two-phase
rule, 20 free + 4 nudged steps of 0.5 ms per example) at sizes from 64-100-10 to 784-500-500-10,
on random inputs (``benchmarks/gpu_cases.py``), size by size, the GPU first. Each case runs in its
own process: generate and compile the build (timed separately: ``compile_seconds``), one warm-up
run, then ``--repeats`` timed runs of the same build with new seeds (``run_args``).
``cpp_standalone`` (one core) runs only the sizes in ``--cpp-sizes``. The table gives samples per
second of the whole
``Simulation.run`` (writing the run arguments, starting the binary, reading the state back) and
of the simulation loop alone, and the GPU/CPU ratio where both ran.

Results are written to ``--out`` (``gpu.json``, ``gpu.png``) after every case, so a run cut off
by a time limit keeps what it measured. No new case starts when its estimated time (the slowest
compile seen on that device, before the first a prior, plus the runs) would overrun
``--budget-s``.
Without a GPU the CUDA cases compile and are reported as ``no-gpu``.

Run: ``.venv/bin/python benchmarks/gpu.py --out results/gpu`` (``--devices cpp_standalone`` for
a CPU-only check).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
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

DEVICES = ("cuda_standalone", "cpp_standalone")
CIRCUITS = ("microcircuit", "hopfield")
#: the order cases run in (see _cases); tables and plots sort by size
SIZES = ("64-100-10", "784-500-500-10", "784-100-10", "784-500-10")
CPP_SIZES = ("64-100-10", "784-100-10")
#: examples per run: enough steps that start-up is small against the run on a GPU
EXAMPLES = {"microcircuit": 10, "hopfield": 400}
#: compile-time priors (s) before one is observed on this machine: brian2cuda on 16 cores, gcc
COMPILE_PRIOR = {"cuda_standalone": 150.0, "cpp_standalone": 30.0}


def _parse_sizes(text: str) -> list[str]:
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    for s in sizes:
        parts = s.split("-")
        if len(parts) < 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(f"gpu.py: error: size {s!r} must look like 64-100-10")
    return sizes


# ---------------------------------------------------------------------------------------- worker
def _worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """Compile one case, then time its runs (this process holds Brian2's one global device)."""
    import brian2
    import numpy as np

    from benchmarks import gpu_cases as gc
    from neurosim.errors import NoGPUError

    sizes = [int(p) for p in cfg["size"].split("-")]
    make = gc.microcircuit_case if cfg["circuit"] == "microcircuit" else gc.hopfield_case
    start = time.perf_counter()
    case = make(sizes, cfg["examples"], device=cfg["device"], readout="rate", seed=0)
    out: dict[str, Any] = {
        "setup_seconds": time.perf_counter() - start,
        "compile_seconds": case.sim.compile_seconds,
        "compilations": case.sim.compilations,
        "steps_per_example": round(case.sim.duration_ms / case.sim.dt_ms / cfg["examples"]),
    }
    run_walls, sim_walls = [], []
    try:
        for k in range(1 + cfg["repeats"]):
            result = case.sim.run(values=case.values, timed=case.timed, seed=k, read=case.read)
            if k == 0:
                out["first_run_seconds"] = result.wall_seconds
                continue
            run_walls.append(result.wall_seconds)
            last = getattr(brian2.get_device(), "_last_run_time", None)
            sim_walls.append(float(last) if last is not None else float("nan"))
    except NoGPUError as exc:
        out.update(status="no-gpu", message=str(exc))
        return out
    moved = max(
        float(np.max(np.abs(result.state[key] - np.asarray(case.values[key]))))
        for key in case.weight_keys
    )
    if not (np.isfinite(moved) and moved > 0):
        raise SystemExit(f"the weights did not change in {cfg}: max |Δw| = {moved}")
    wall, sim = min(run_walls), min(sim_walls)
    out.update(
        status="ok",
        run_seconds=run_walls,
        sim_seconds=sim_walls,
        samples_per_second=cfg["examples"] / wall,
        sim_samples_per_second=cfg["examples"] / sim if sim > 0 else None,
        max_weight_change=moved,
        compilations_after_runs=case.sim.compilations,
    )
    return out


# ---------------------------------------------------------------------------------------- parent
def gpu_name() -> str | None:
    """The GPU as ``nvidia-smi`` names it (name, memory, driver), or None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        proc = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return "; ".join(lines) if proc.returncode == 0 and lines else None


def _host() -> str:
    """The machine and CPU model (as the build cache records them)."""
    from neurosim.build_cache import host_signature

    return host_signature()


def _versions() -> dict[str, str]:
    """Python's version and those of the packages a result depends on."""
    from neurosim.results import versions

    return {"python": platform.python_version(), **versions()}


def _cases(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Cases in the order they run: size by size in the order given, the GPU first, then the CPU
    where it runs (the default order puts the largest size second, so that a short budget still
    spans the range and gives a GPU/CPU ratio)."""
    cases = []
    for size in args.sizes:
        for device in args.devices:
            if device == "cpp_standalone" and size not in args.cpp_sizes:
                continue
            for circuit in args.circuits:
                examples = args.examples.get(circuit, EXAMPLES[circuit])
                cases.append(
                    {
                        "circuit": circuit,
                        "size": size,
                        "device": device,
                        "examples": examples,
                        "repeats": args.repeats,
                    }
                )
    return cases


def _neurons(size: str) -> int:
    return sum(int(p) for p in size.split("-"))


def _run_case(cfg: dict[str, Any], cache: Path, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="neurosim-gpu-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cfg), str(out)]
        env = {**os.environ, "NEUROSIM_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        # own session: on a timeout the whole group goes (make and nvcc included)
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"status": "timeout", "process_seconds": time.perf_counter() - start}
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.is_file():
            tail = (stdout[-1500:] + stderr[-3000:]).strip()
            return {"status": "failed", "process_seconds": wall, "message": tail}
        result = json.loads(out.read_text())
        result["process_seconds"] = wall
        return result


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GPU/CPU ratio of samples per second for every circuit and size measured on both."""
    ok = {(r["circuit"], r["size"], r["device"]): r for r in results if r.get("status") == "ok"}
    rows = []
    for (circuit, size, device), gpu in ok.items():
        cpu = ok.get((circuit, size, "cpp_standalone"))
        if device == "cuda_standalone" and cpu is not None:
            rows.append(
                {
                    "circuit": circuit,
                    "size": size,
                    "run_ratio": gpu["samples_per_second"] / cpu["samples_per_second"],
                    "sim_ratio": (gpu["sim_samples_per_second"] or float("nan"))
                    / (cpu["sim_samples_per_second"] or float("nan")),
                }
            )
    return rows


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"GPU: {report['gpu'] or 'none'}   CPU: {report['cpu']} (cpp_standalone on one core)",
        f"{'circuit':<13}{'size':<16}{'device':<17}{'status':<9}{'compile s':>10}"
        f"{'samples/s':>12}{'sim only':>12}",
    ]
    for r in sorted(report["results"], key=lambda r: (_neurons(r["size"]), r["circuit"])):
        cells = [r.get("compile_seconds"), r.get("samples_per_second")]
        cells.append(r.get("sim_samples_per_second"))
        comp, sps, sim = ("-" if v is None else f"{v:.2f}" for v in cells)
        lines.append(
            f"{r['circuit']:<13}{r['size']:<16}{r['device']:<17}{r['status']:<9}"
            f"{comp:>10}{sps:>12}{sim:>12}"
        )
    for row in report["ratios"]:
        lines.append(
            f"GPU/CPU {row['circuit']} {row['size']}: {row['run_ratio']:.2f}x whole run, "
            f"{row['sim_ratio']:.2f}x simulation loop"
        )
    return "\n".join(lines)


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurosim.results import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, circuit in zip(axes, CIRCUITS, strict=True):
        for device, marker in zip(DEVICES, "os", strict=True):
            rows = sorted(
                (
                    r
                    for r in report["results"]
                    if r["circuit"] == circuit and r["device"] == device and r["status"] == "ok"
                ),
                key=lambda r: _neurons(r["size"]),
            )
            if rows:
                ax.plot(
                    [r["size"] for r in rows],
                    [r["samples_per_second"] for r in rows],
                    marker=marker,
                    label=device,
                )
        ax.set_yscale("log")
        ax.set_title(circuit)
        ax.set_xlabel("sizes")
        ax.set_ylabel("samples per second")
        ax.tick_params(axis="x", labelrotation=20)
        if ax.lines:
            ax.legend()
    fig.suptitle(f"GPU: {report['gpu'] or 'none'}", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the cases in order within the budget, writing the report after each."""
    from neurosim.results import write_json

    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="neurosim-gpu-cache-"))
    report: dict[str, Any] = {
        "gpu": gpu_name(),
        "cpu": _host(),
        "cpu_count": os.cpu_count(),
        "versions": _versions(),
        "budget_seconds": args.budget_s,
        "examples": {c: args.examples.get(c, EXAMPLES[c]) for c in CIRCUITS},
        "repeats": args.repeats,
        "results": [],
        "ratios": [],
    }
    print(f"GPU: {report['gpu'] or 'none'}; CPU: {report['cpu']}; cache {cache}", flush=True)
    compiles: dict[str, list[float]] = {d: [] for d in DEVICES}  # observed compile seconds
    slowest_run = {d: 10.0 for d in DEVICES}
    for cfg in _cases(args):
        elapsed = time.perf_counter() - start
        seen = compiles[cfg["device"]]
        estimate = (max(seen) if seen else COMPILE_PRIOR[cfg["device"]]) + slowest_run[
            cfg["device"]
        ]
        tag = f"{cfg['circuit']} {cfg['size']} {cfg['device']}"
        if elapsed + estimate > args.budget_s:
            print(
                f"{tag}: skipped (about {estimate:.0f} s needed, {args.budget_s - elapsed:.0f} s "
                "left in the budget)",
                flush=True,
            )
            report["results"].append({**cfg, "status": "skipped", "estimate_seconds": estimate})
            continue
        print(f"{tag} ...", end="", flush=True)
        result = {**cfg, **_run_case(cfg, cache, args.budget_s - elapsed)}
        report["results"].append(result)
        if result.get("compilations"):
            compiles[cfg["device"]].append(result["compile_seconds"])
        if result["status"] == "ok":
            run_part = result["process_seconds"] - result["compile_seconds"]
            slowest_run[cfg["device"]] = max(slowest_run[cfg["device"]], run_part)
            print(
                f" {result['samples_per_second']:.2f} samples/s (compile "
                f"{result['compile_seconds']:.1f} s)",
                flush=True,
            )
        else:
            print(f" {result['status']}: {result.get('message', '')[-300:]}", flush=True)
        report["ratios"] = ratios(report["results"])
        report["wall_seconds"] = time.perf_counter() - start
        write_json(out / "gpu.json", report)
        _plot(report, out / "gpu.png")
    report["wall_seconds"] = time.perf_counter() - start
    write_json(out / "gpu.json", report)
    _plot(report, out / "gpu.png")
    if not args.cache:
        shutil.rmtree(cache, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:  # internal: --worker CONFIG_JSON OUT.json
        result = _worker(json.loads(argv[1]))
        Path(argv[2]).write_text(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu"))
    parser.add_argument("--budget-s", type=float, default=480.0, help="stop starting cases")
    parser.add_argument("--devices", default=",".join(DEVICES), help="comma-separated")
    parser.add_argument("--circuits", default=",".join(CIRCUITS), help="comma-separated")
    parser.add_argument("--sizes", default=",".join(SIZES), help="e.g. 64-100-10,784-500-10")
    parser.add_argument("--cpp-sizes", default=",".join(CPP_SIZES), help="sizes run on the CPU")
    parser.add_argument(
        "--examples",
        action="append",
        default=[],
        metavar="CIRCUIT=N",
        help="examples per run (default microcircuit=10, hopfield=400)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after the warm-up")
    parser.add_argument("--cache", default=None, help="build cache (default: a fresh temporary)")
    args = parser.parse_args(argv)
    args.devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    args.circuits = [c.strip() for c in args.circuits.split(",") if c.strip()]
    for d in args.devices:
        if d not in DEVICES:
            parser.error(f"unknown device {d!r}; choose from {', '.join(DEVICES)}")
    for c in args.circuits:
        if c not in CIRCUITS:
            parser.error(f"unknown circuit {c!r}; choose from {', '.join(CIRCUITS)}")
    args.sizes, args.cpp_sizes = _parse_sizes(args.sizes), _parse_sizes(args.cpp_sizes)
    examples = {}
    for item in args.examples:
        name, _, n = item.partition("=")
        if name not in CIRCUITS or not n.isdigit() or int(n) < 1:
            parser.error(f"--examples takes CIRCUIT=N with N ≥ 1, got {item!r}")
        examples[name] = int(n)
    args.examples = examples
    if args.repeats < 1 or args.budget_s <= 0:
        parser.error("--repeats must be at least 1 and --budget-s positive")
    report = bench(args)
    print(_table(report))
    print(f"results: {Path(args.out) / 'gpu.json'} and gpu.png ({report['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

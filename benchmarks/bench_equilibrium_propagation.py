"""Examples per second of Equilibrium Propagation training: Brian2 Hopfield circuit against its
torch twin (issue 4, "Benchmark").

Usage::

    .venv/bin/python benchmarks/bench_equilibrium_propagation.py [--quick] [--out FILE.json]

The same network, the same dynamics, the same dt and the same steps per example on both sides:
64-100-10 (digits-sized inputs: 64 random values in [0, 1], one-hot targets of random classes),
projected Euler with dt = 0.5 ms = ε 0.5 (τ = 1 ms), each example 20 free steps then 4 steps nudged
at β = 0.5 from the free state, states restarted from 0 for every example, learning rates
(0.1, 0.05) per layer, initial weights ``init_weights(sizes, seed=0)``. What is timed:

1. **Brian2 circuit, cpp_standalone, one core** (``openmp_threads = 0``; ``--threads N``: N): one
   run of P examples (default 1000) with in-run plasticity, for the two-phase rule (end-point
   latch, one update per example, as the twin) and for the continual rule (error in ds/dt, every
   nudged step). Per rule, a first process compiles the build into a fresh, empty
   ``NEUROSIM_CACHE`` (``compile_seconds``); a second process finds it there (warm cache, 0
   compilations, else a warning) and makes one warm-up run and ``--repeats`` measured runs: the
   simulation loop alone (the binary's own run time, Brian2's ``device._last_run_time``) and
   the whole ``Simulation.run`` (writing the run arguments, starting the binary, loading it,
   reading the final weights back).
2. **Brian2 runtime** (Brian2's default code generation target, cython where installed): the
   same per rule on fewer examples (default 100; said in the output), after a warm-up run that
   generates the code; the simulation alone is ``Network.run``, the whole run also rebuilds the
   objects (the runtime device builds them anew every run).
3. **torch twin** (``models.equilibrium_propagation``, float64, one thread):
   ``train_batch(params, w, x, d, lr, exact=False)`` at batch 1 and at batch 20 -- 20 free and 4
   nudged ``step``-s and the two-phase update, exactly what training calls; and, as a floor for
   the twin, the same arithmetic as a bare loop of the twin's internal step (no argument checks
   and no residuals).

Cost per example = wall / examples. The ratios are circuit cost / twin cost (issue aim: at most
0.2 against batch 1, as close to 1 as possible against batch 20). Every measurement runs in its
own process (this script's worker mode) with ``torch.set_num_threads(1)`` and one OpenMP/MKL
thread; the table gives the median and the minimum over the repeats; the JSON result
(``benchmarks/results/equilibrium_propagation.json``) is written atomically (a temporary file,
then ``os.replace``). ``--quick``: P = 200 (runtime 10), 2 repeats, fewer twin examples.

``--batch 1,8,32,128`` measures batch mode instead (issue 14): the two-phase circuit on
cpp_standalone, one core, with B examples side by side per presentation (B copies sharing their
weights, the changes summed), for each B a compiling and a cached process as above, each run
``--examples`` examples (default 2048, rounded up to whole presentations); cost per example =
wall / (presentations · B). Written to ``benchmarks/results/equilibrium_propagation_batch.json``
unless ``--out`` says otherwise.
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
sys.path.insert(0, str(REPO))

DEFAULT_OUT = HERE / "results" / "equilibrium_propagation.json"
SIZES = [64, 100, 10]
DT = 0.5  # ms; τ = 1 ms, so the twin's ε is 0.5 too
FREE_STEPS, NUDGED_STEPS = 20, 4
BETA = 0.5
LR = (0.1, 0.05)
RULES = ("two-phase", "continual")
SEED = 0


# ---------------------------------------------------------------------------------------- data
def _data(examples: int, seed: int = SEED) -> tuple[Any, Any]:
    """Random digits-sized inputs in [0, 1] and one-hot targets (numpy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (examples, SIZES[0]))
    d = np.zeros((examples, SIZES[-1]))
    d[np.arange(examples), rng.integers(0, SIZES[-1], examples)] = 1.0
    return x, d


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "n": len(values)}


def _per_example(walls: list[float], examples: int) -> dict[str, Any]:
    """Wall times of runs of ``examples`` examples -> cost per example and examples per second."""
    ms = [1000.0 * w / examples for w in walls]
    return {
        "wall_seconds": _summary(walls),
        "ms_per_example": _summary(ms),
        "examples_per_second": 1000.0 / statistics.median(ms),
        "examples_per_second_best": 1000.0 / min(ms),
    }


# ---------------------------------------------------------------------------------------- workers
def _worker_circuit(cfg: dict[str, Any]) -> dict[str, Any]:
    """One circuit (device, rule) in this process: build (compile if the cache lacks it), warm up,
    then time ``cfg['repeats']`` runs of ``cfg['examples']`` examples."""
    import brian2
    import numpy as np

    from circuits import hopfield as hp
    from models import equilibrium_propagation as ep
    from neurosim.engine import Simulation

    device, rule, batch = cfg["device"], cfg["rule"], int(cfg.get("batch", 1))
    presentations = -(-int(cfg["examples"]) // batch)  # batch mode: B examples side by side
    examples = presentations * batch
    plasticity = (rule,)
    x, d = _data(examples)
    timed, timed_dt, example_ms = hp.example_timed(
        hp.batch_rows(x, batch),
        hp.batch_rows(d, batch),
        BETA,
        free_ms=FREE_STEPS * DT,
        nudged_ms=NUDGED_STEPS * DT,
        dt_ms=DT,
        phases=2,
        names=hp.timed_names(plasticity, example_ms=(FREE_STEPS + NUDGED_STEPS) * DT),
    )
    steps_per_example = round(example_ms / DT)
    assert steps_per_example == FREE_STEPS + NUDGED_STEPS, steps_per_example

    def builder(tv: dict[str, Any]) -> Any:
        return hp.CIRCUIT.build(
            hp.HopfieldStructure(
                sizes=SIZES,
                plasticity=plasticity,
                example_ms=example_ms,
                record={},
                timed_dt_ms=timed_dt,
                batch=batch,
            ),
            hp.HopfieldParams(),
            tv,
            dt_ms=DT,
        )

    weights = {k: v.numpy() for k, v in ep.init_weights(SIZES, seed=SEED).items()}
    rates = {"two_phase": LR} if rule == "two-phase" else {"continual": LR}
    values = {**hp.weight_values(weights, SIZES, batch=batch), **hp.eta_values(SIZES, **rates)}
    read = tuple(k for k in hp.state_keys(SIZES) if not k.endswith(".s"))  # weights, biases

    # the simulation loop alone: the binary's own timer (standalone) or Network.run (runtime)
    net_walls: list[float] = []
    original_run = brian2.Network.run
    timing = [False]

    def timed_net_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = original_run(self, *args, **kwargs)
        if timing[0]:
            net_walls.append(time.perf_counter() - start)
        return out

    brian2.Network.run = timed_net_run  # type: ignore[method-assign]

    start = time.perf_counter()
    sim = Simulation(
        builder,
        device=device,
        duration_ms=hp.duration_ms(presentations, example_ms, DT),
        dt_ms=DT,
        initial_timed=timed,
        label=f"bench-ep-{rule}-batch{batch}",
        threads=int(cfg.get("threads", 0)),
    )
    setup_seconds = time.perf_counter() - start
    run_walls, sim_walls = [], []
    first_run = None
    timing[0] = device == "runtime"
    for k in range(int(cfg["warmup"]) + int(cfg["repeats"])):
        net_walls.clear()
        result = sim.run(values=values, timed=timed, seed=k, read=read)
        if device == "runtime":
            sim_wall = sum(net_walls)
        else:
            sim_wall = float(brian2.get_device()._last_run_time)
        if first_run is None:
            first_run = {"run_wall_seconds": result.wall_seconds, "sim_wall_seconds": sim_wall}
        if k >= int(cfg["warmup"]):
            run_walls.append(result.wall_seconds)
            sim_walls.append(sim_wall)
    brian2.Network.run = original_run  # type: ignore[method-assign]
    final = hp.weights_from_state(result.state, SIZES)
    moved = {
        name: float(np.linalg.norm(final[name] - weights[name]) / np.linalg.norm(weights[name]))
        for name in ("W1", "W2")
    }
    if not all(np.isfinite(v) and v > 0 for v in moved.values()):
        raise SystemExit(f"the {rule} circuit on {device} did not change its weights: {moved}")
    return {
        "device": device,
        "rule": rule,
        "batch": batch,
        "presentations": presentations,
        "openmp_threads": sim.threads,
        "codegen_target": (
            brian2.get_device().code_object_class().__name__ if device == "runtime" else None
        ),
        "examples": examples,
        "steps_per_example": steps_per_example,
        "duration_ms": sim.duration_ms,
        "setup_seconds": setup_seconds,
        "compile_seconds": sim.compile_seconds,
        "compilations": sim.compilations,
        "warmup_runs": int(cfg["warmup"]),
        "first_run": first_run,
        "simulation": _per_example(sim_walls, examples),
        "whole_run": _per_example(run_walls, examples),
        "raw_sim_wall_seconds": sim_walls,
        "raw_run_wall_seconds": run_walls,
        "relative_weight_change": moved,
    }


def _lean_loop(ep: Any, w: dict[str, Any], x: Any, d: Any) -> dict[str, Any]:
    """``train_batch``'s arithmetic without its checks and residuals: the twin's floor."""
    import torch

    from models.equilibrium_propagation.dynamics import _step
    from models.equilibrium_propagation.updates import _correlations

    s = [torch.zeros((x.shape[0], n), dtype=ep.DTYPE) for n in SIZES[1:]]
    for _ in range(FREE_STEPS):
        s = _step(w, s, x, None, 0.0, DT, True)
    free = s
    for _ in range(NUDGED_STEPS):
        s = _step(w, s, x, d, BETA, DT, True)
    hi, lo = _correlations(x, s), _correlations(x, free)
    return {n: v + LR[int(n[1:]) - 1] * (hi[n] - lo[n]) / BETA for n, v in w.items()}


def _worker_twin(cfg: dict[str, Any]) -> dict[str, Any]:
    """The torch twin at one batch size: ``train_batch`` and the lean loop, warm-up then repeats."""
    import torch

    from models import equilibrium_propagation as ep

    torch.set_num_threads(1)
    batch, examples = int(cfg["batch"]), int(cfg["examples"])
    n_batches = max(1, examples // batch)
    examples = n_batches * batch
    params = ep.EPParameters(
        tuple(SIZES), dt=DT, beta=BETA, free_steps=FREE_STEPS, nudged_steps=NUDGED_STEPS
    )
    xn, dn = _data(examples)
    x = torch.tensor(xn, dtype=ep.DTYPE)
    d = torch.tensor(dn, dtype=ep.DTYPE)
    batches = [
        (x[b * batch : (b + 1) * batch], d[b * batch : (b + 1) * batch]) for b in range(n_batches)
    ]
    w0 = ep.init_weights(SIZES, seed=SEED)

    def train_batch_epoch() -> dict[str, Any]:
        w = w0
        for xb, db in batches:
            w, _ = ep.train_batch(params, w, xb, db, LR, exact=False)
        return w

    def lean_epoch() -> dict[str, Any]:
        w = w0
        with torch.no_grad():
            for xb, db in batches:
                w = _lean_loop(ep, w, xb, db)
        return w

    out: dict[str, Any] = {
        "batch": batch,
        "examples": examples,
        "torch_threads": torch.get_num_threads(),
    }
    finals = {}
    for name, epoch in (("train_batch", train_batch_epoch), ("lean_step_loop", lean_epoch)):
        warm = batches[: max(1, min(len(batches), int(cfg["warmup_batches"])))]
        w = w0
        for xb, db in warm:  # warm-up: allocator, dispatch caches
            w, _ = ep.train_batch(params, w, xb, db, LR, exact=False)
        walls = []
        for _ in range(int(cfg["repeats"])):
            start = time.perf_counter()
            finals[name] = epoch()
            walls.append(time.perf_counter() - start)
        out[name] = {**_per_example(walls, examples), "raw_wall_seconds": walls}
    # the lean loop must be the same arithmetic as train_batch
    out["lean_equals_train_batch_max_abs"] = max(
        float((finals["train_batch"][k] - finals["lean_step_loop"][k]).abs().max()) for k in w0
    )
    if out["lean_equals_train_batch_max_abs"] > 1e-10:
        raise SystemExit(f"lean loop differs from train_batch: {out}")
    return out


def _worker(kind: str, cfg_json: str, out_path: str) -> int:
    cfg = json.loads(cfg_json)
    result = _worker_circuit(cfg) if kind == "circuit" else _worker_twin(cfg)
    Path(out_path).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------- parent
def _spawn(kind: str, cfg: dict[str, Any], work: Path, tag: str, cache: Path) -> dict[str, Any]:
    out = work / f"{tag}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        json.dumps(cfg),
        str(out),
    ]
    env = {
        **os.environ,
        "NEUROSIM_CACHE": str(cache),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    print(f"  {tag} ...", end="", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(" failed")
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-6000:])
        raise SystemExit(f"benchmark worker {tag!r} failed with exit status {proc.returncode}")
    print(f" {wall:.1f} s", flush=True)
    result = json.loads(out.read_text())
    result["process_wall_seconds"] = wall
    return result


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
    for name in ("brian2", "numpy", "torch", "cython", "neurosim"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(args.quick)
    examples = args.examples or (200 if quick else 1000)
    rt_examples = args.runtime_examples or (10 if quick else 100)
    repeats = args.repeats or (2 if quick else 5)
    rt_repeats = args.runtime_repeats or (1 if quick else 2)
    twin_examples = {1: 100 if quick else 500, 20: 400 if quick else 2000}
    twin_repeats = 1 if quick else 3
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="neurosim-bench-ep-"))
    cache = work / "cache"  # empty: every cpp_standalone build compiles once
    circuits: dict[str, dict[str, Any]] = {}
    twins: dict[str, dict[str, Any]] = {}
    try:
        print(f"workers (fresh NEUROSIM_CACHE {cache}):", flush=True)
        for rule in args.rules:
            cfg = {
                "device": "cpp_standalone",
                "rule": rule,
                "examples": examples,
                "threads": args.threads,
            }
            # a first process compiles into the empty cache; a second one finds the build
            first = _spawn(
                "circuit", {**cfg, "warmup": 0, "repeats": 1}, work, f"cpp-{rule}-compile", cache
            )
            cached = _spawn(
                "circuit",
                {**cfg, "warmup": 1, "repeats": repeats},
                work,
                f"cpp-{rule}-cached",
                cache,
            )
            if cached["compilations"]:
                print(
                    f"WARNING: the cached {rule} process compiled again: the build-cache key "
                    "differed between processes",
                    file=sys.stderr,
                )
            cached["compile_seconds"] = first["compile_seconds"]
            cached["compilations_first_process"] = first["compilations"]
            cached["compilations_cached_process"] = cached.pop("compilations")
            cached["first_process"] = {
                key: first[key] for key in ("setup_seconds", "first_run", "process_wall_seconds")
            }
            circuits[f"cpp_standalone/{rule}"] = cached
        for batch in (1, 20):
            cfg = {
                "batch": batch,
                "examples": twin_examples[batch],
                "repeats": twin_repeats,
                "warmup_batches": 5,
            }
            twins[f"batch_{batch}"] = _spawn("twin", cfg, work, f"twin-batch-{batch}", cache)
        if not args.skip_runtime:
            for rule in args.rules:
                cfg = {
                    "device": "runtime",
                    "rule": rule,
                    "examples": rt_examples,
                    "warmup": 1,
                    "repeats": rt_repeats,
                }
                circuits[f"runtime/{rule}"] = _spawn("circuit", cfg, work, f"runtime-{rule}", cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def cost(entry: dict[str, Any], key: str) -> float:
        return float(entry[key]["ms_per_example"]["median"])

    ratios: dict[str, Any] = {}
    for name, c in circuits.items():
        for part in ("whole_run", "simulation"):
            for batch in (1, 20):
                t = twins[f"batch_{batch}"]
                ratios[f"{name}/{part} over twin batch {batch}"] = {
                    "train_batch": cost(c, part) / cost(t, "train_batch"),
                    "lean_step_loop": cost(c, part) / cost(t, "lean_step_loop"),
                }
    main_key = f"cpp_standalone/{args.rules[0]}"
    headline = {
        "circuit": f"{main_key}, whole run",
        "cost_over_twin_batch_1": ratios[f"{main_key}/whole_run over twin batch 1"]["train_batch"],
        "cost_over_twin_batch_20": ratios[f"{main_key}/whole_run over twin batch 20"][
            "train_batch"
        ],
    }
    headline["aim_batch_1_met"] = headline["cost_over_twin_batch_1"] <= 0.2
    runtime_over_cpp = {
        rule: cost(circuits[f"runtime/{rule}"], "whole_run")
        / cost(circuits[f"cpp_standalone/{rule}"], "whole_run")
        for rule in RULES
        if f"runtime/{rule}" in circuits
    }
    return {
        "benchmark": "equilibrium-propagation",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": quick,
        "machine": _machine(load_before),
        "versions": _versions(),
        "setup": {
            "sizes": SIZES,
            "dt_ms": DT,
            "epsilon": DT,
            "free_steps": FREE_STEPS,
            "nudged_steps": NUDGED_STEPS,
            "steps_per_example": FREE_STEPS + NUDGED_STEPS,
            "openmp_threads": args.threads,
            "beta": BETA,
            "learning_rates": list(LR),
            "inputs": "uniform [0, 1], 64 per example; one-hot targets of random classes",
            "examples_cpp_standalone": examples,
            "examples_runtime": None if args.skip_runtime else rt_examples,
            "repeats_cpp_standalone": repeats,
            "repeats_runtime": rt_repeats,
            "twin_examples": twin_examples,
            "twin_repeats": twin_repeats,
        },
        "circuits": circuits,
        "twin": twins,
        "ratios": ratios,
        "runtime_over_cpp": runtime_over_cpp,
        "headline": headline,
    }


def _machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """The machine and its load before and after, for a report."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "platform": platform.platform(),
    }


def _bench_batch(args: argparse.Namespace, batches: list[int]) -> dict[str, Any]:
    """Batch mode: the two-phase circuit on cpp_standalone at every B of ``batches``."""
    examples = args.examples or 2048
    repeats = args.repeats or (2 if args.quick else 5)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="neurosim-bench-ep-batch-"))
    cache = work / "cache"
    circuits: dict[str, dict[str, Any]] = {}
    try:
        print(f"workers (fresh NEUROSIM_CACHE {cache}):", flush=True)
        for batch in batches:
            cfg = {"device": "cpp_standalone", "rule": "two-phase", "examples": examples}
            cfg.update(batch=batch, threads=args.threads)  # --threads applies here too
            first = _spawn(
                "circuit", {**cfg, "warmup": 0, "repeats": 1}, work, f"batch-{batch}-compile", cache
            )
            cached = _spawn(
                "circuit", {**cfg, "warmup": 1, "repeats": repeats}, work, f"batch-{batch}", cache
            )
            cached["compile_seconds"] = first["compile_seconds"]
            cached["compilations_cached_process"] = cached.pop("compilations")
            cached["load_average_after"] = os.getloadavg()
            circuits[f"batch_{batch}"] = cached
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "equilibrium-propagation batch mode",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": bool(args.quick),
        "machine": _machine(load_before),
        "versions": _versions(),
        "setup": {
            "sizes": SIZES,
            "dt_ms": DT,
            "free_steps": FREE_STEPS,
            "nudged_steps": NUDGED_STEPS,
            "beta": BETA,
            "learning_rates": list(LR),
            "rule": "two-phase",
            "examples_requested": examples,
            "repeats": repeats,
            "openmp_threads": args.threads,
        },
        "circuits": circuits,
    }


def _threads_label(threads: int) -> str:
    return "one thread" if threads == 0 else f"{threads} OpenMP threads"


def _print_batch_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print()
    print(
        f"EP batch mode ({report['date']}, {m['cores']} cores, {m['cpu']}, load "
        f"{m['load_average_before'][0]:.1f} before, {m['load_average_after'][0]:.1f} after), "
        f"two-phase, cpp_standalone, {_threads_label(report['setup']['openmp_threads'])}"
    )
    header = (
        f"{'B':>5s}{'examples':>10s}{'sim ms/ex':>11s}{'min':>9s}{'run ms/ex':>11s}"
        f"{'min':>9s}{'compile s':>11s}{'load':>6s}"
    )
    print(header)
    for c in report["circuits"].values():
        sim, whole = c["simulation"]["ms_per_example"], c["whole_run"]["ms_per_example"]
        print(
            f"{c['batch']:5d}{c['examples']:10d}{sim['median']:11.4f}{sim['min']:9.4f}"
            f"{whole['median']:11.4f}{whole['min']:9.4f}{c['compile_seconds']:11.1f}"
            f"{c['load_average_after'][0]:6.1f}"
        )


def _print_report(report: dict[str, Any]) -> None:
    s = report["setup"]
    print()
    print(
        f"Equilibrium Propagation benchmark ({report['date']}, {report['machine']['cores']} cores, "
        f"{report['machine']['cpu']}, load {report['machine']['load_average_before'][0]:.1f})"
        + ("  [--quick]" if report["quick"] else "")
    )
    print(
        f"{'-'.join(map(str, s['sizes']))}, dt {s['dt_ms']} ms, {s['free_steps']} free + "
        f"{s['nudged_steps']} nudged steps per example, beta {s['beta']}, "
        + (f"{s['openmp_threads']} OpenMP threads" if s.get("openmp_threads") else "one core")
    )
    rows: list[tuple[str, dict[str, Any]]] = []
    for name, c in report["circuits"].items():
        device, rule = name.split("/")
        rows.append((f"circuit {device} {rule} (P={c['examples']}): simulation", c["simulation"]))
        rows.append(("    whole run()", c["whole_run"]))
    for name, t in report["twin"].items():
        rows.append((f"torch twin {name.replace('_', ' ')}: train_batch", t["train_batch"]))
        rows.append(("    lean step loop", t["lean_step_loop"]))
    width = max(len(label) for label, _ in rows) + 2
    header = f"{'':{width}s}{'examples/s':>12s}{'ms/example':>12s}{'min':>10s}"
    print("-" * len(header))
    print(header)
    print("-" * len(header))
    for label, entry in rows:
        ms = entry["ms_per_example"]
        print(
            f"{label:{width}s}{entry['examples_per_second']:12.1f}"
            f"{ms['median']:12.4f}{ms['min']:10.4f}"
        )
    print("-" * len(header))
    for name, c in report["circuits"].items():
        if c["device"] == "cpp_standalone":
            print(
                f"{name}: compile {c['compile_seconds']:.1f} s in the first process "
                f"({c['compilations_first_process']} compilation); cached process: "
                f"{c['compilations_cached_process']} compilations, set-up "
                f"{c['setup_seconds']:.1f} s"
            )
        else:
            print(
                f"{name} ({c['codegen_target']}): first run of the process (generates code) "
                f"{c['first_run']['run_wall_seconds']:.1f} s"
            )
    print("circuit cost per example / twin's (against train_batch; the lean loop in brackets):")
    for key, value in report["ratios"].items():
        if key.startswith("cpp_standalone"):
            print(f"  {key:56s}{value['train_batch']:7.3f}  ({value['lean_step_loop']:.3f})")
    for rule, value in report["runtime_over_cpp"].items():
        print(f"  runtime / cpp_standalone cost, {rule}, whole run: {value:.0f}x")
    h = report["headline"]
    print(
        f"headline ({h['circuit']}): {h['cost_over_twin_batch_1']:.3f} of the twin at batch 1 "
        f"(aim <= 0.2: {'met' if h['aim_batch_1_met'] else 'NOT met'}), "
        f"{h['cost_over_twin_batch_20']:.2f}x the twin at batch 20 (aim: close to 1)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:  # internal: --worker circuit|twin CONFIG_JSON OUT.json
        return _worker(argv[1], argv[2], argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="P=200 (runtime 10), 2 repeats, fewer twin examples"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    parser.add_argument("--examples", type=int, help="examples per cpp_standalone run (1000)")
    parser.add_argument("--runtime-examples", type=int, help="examples per runtime run (100)")
    parser.add_argument("--repeats", type=int, help="measured cpp_standalone runs (5)")
    parser.add_argument("--runtime-repeats", type=int, help="measured runtime runs (2)")
    parser.add_argument("--skip-runtime", action="store_true", help="leave the runtime device out")
    parser.add_argument(
        "--batch", help="batch mode instead: comma-separated B (e.g. 1,8,32,128), two-phase only"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="OpenMP threads of the circuit (0: one core)"
    )
    parser.add_argument(
        "--rules", nargs="+", choices=RULES, default=list(RULES), help="circuit rules to time"
    )
    args = parser.parse_args(argv)
    if args.batch:
        report = _bench_batch(args, [int(b) for b in args.batch.split(",")])
        _print_batch_report(report)
        if args.out == DEFAULT_OUT:
            args.out = HERE / "results" / "equilibrium_propagation_batch.json"
    else:
        report = _bench(args)
        _print_report(report)
    from neurosim.results import write_json  # atomic: a temporary file, then os.replace

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

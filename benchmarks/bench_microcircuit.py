"""Samples per second of the dendritic microcircuit: Brian2 circuit against its torch twin.

The same equations, the same dt (0.1 ms) and the same number of steps per example (100 ms, 1000
steps), all plasticity on, 64-100-10 with logistic φ (the digits architecture of issue 3):

* the Brian2 circuit on cpp_standalone (one core, or ``--threads N`` OpenMP threads) and on the
  runtime device, one example after another within one run (inputs change every 100 ms through a
  TimedArray), on random inputs and, on the same build, on the first training digits with their
  target potentials (digits have many exact zeros: a build without flush-to-zero slows down on
  the subnormal floats that the filtered quantities of silent inputs decay into);
* the torch twin (``models.dendritic_microcircuit``): one Euler ``step`` of all potentials and
  the forward, IP and PI weight changes applied every step, at batch 1 and at batch 20.

The twin applies the induction terms directly; the circuit low-pass filters them (τ_w) first, so
the circuit does slightly more work per step.
Run: ``.venv/bin/python benchmarks/bench_microcircuit.py`` (``--circuit-only``: cpp_standalone
only).

``--batch 1,8,32,128`` measures batch mode instead (issue 14; ``circuit.batch``): the circuit of
the ``digits-prospective`` preset (prospective neurons, 20 ms = 200 steps per example, logistic
φ, every rule on, the filtered changes of the B copies summed every step) on the training digits,
cpp_standalone with ``--threads`` (0: one core, no OpenMP), per B one build, a warm-up run, then
``--repeats`` runs of ``--examples`` examples (rounded up to whole presentations of B); cost per
example = wall / examples, for the simulation loop alone (the binary's own timer) and for the
whole run (start of the binary, values in and out). Written to
``benchmarks/results/microcircuit_batch_threads<N>.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import brian2  # noqa: E402

from circuits import microcircuit as mc  # noqa: E402
from models import dendritic_microcircuit as dm  # noqa: E402
from neurosim import datasets, engine  # noqa: E402
from neurosim.batch import batch_rows  # noqa: E402
from neurosim.engine import Simulation  # noqa: E402
from neurosim.results import write_json  # noqa: E402

SIZES = [64, 100, 10]
DT = 0.1
PATTERN_MS = 100.0
STEPS = int(PATTERN_MS / DT)


def _inputs(kind: str, examples: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and target potentials: ``random`` (uniform, targets -1) or training ``digits``."""
    if kind == "random":
        x = np.random.default_rng(0).random((examples, SIZES[0]))
        return x, np.full((examples, SIZES[-1]), -1.0)
    data = datasets.digits()
    if examples > len(data.x_train):
        raise SystemExit(f"--examples must be at most {len(data.x_train)} for digits inputs")
    return data.x_train[:examples], data.u_train[:examples]


def bench_circuit(
    device: str, examples: int, threads: int = 0, inputs: tuple[str, ...] = ("random",)
) -> dict[str, dict[str, float]]:
    """Examples per second of the Brian2 circuit (all rules on, rate read-out), per input kind.

    One build serves every input kind (the inputs are TimedArray values), so the kinds differ in
    their numbers alone.
    """
    params = mc.MicrocircuitParams(phi="logistic")
    timed = {}
    for kind in inputs:
        x, u = _inputs(kind, examples)
        timed[kind] = mc.timed_values(x, SIZES[-1], targets=u, nudge=1.0, plastic=1.0)
    weights = mc.random_weights(SIZES, np.random.default_rng(0))
    values = {
        **mc.weight_values(weights),
        **mc.eta_values(SIZES, W=0.01, IP=0.01, PI=0.01),
    }
    start = time.perf_counter()
    sim = Simulation(
        mc.CIRCUIT.builder(
            mc.MicrocircuitStructure(SIZES, record={}, timed_dt_ms=PATTERN_MS), params, DT
        ),
        device=device,
        duration_ms=examples * PATTERN_MS,
        dt_ms=DT,
        initial_timed=timed[inputs[0]],
        label="bench-microcircuit",
        threads=threads,
    )
    setup = time.perf_counter() - start
    out: dict[str, dict[str, float]] = {}
    for kind in inputs:
        walls, cpus = [], []
        for seed in range(3 if device != "runtime" else 2):  # runtime run 1 generates code
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            result = sim.run(values=values, timed=timed[kind], seed=seed)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            walls.append(result.wall_seconds)
            # CPU time of the binary (a child process): less sensitive than wall time to other
            # jobs sharing the cores (all threads together: not a speed-up measure)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        wall = min(walls)
        out[kind] = {
            "examples": examples,
            "threads": threads,
            "wall_seconds": wall,
            "samples_per_second": examples / wall,
            "ms_per_example": 1000 * wall / examples,
            "binary_cpu_ms_per_example": 1000 * min(cpus) / examples,
            "setup_seconds": setup,
            "compilations": sim.compilations,
        }
    return out


def bench_twin(batch: int, examples: int) -> dict[str, float]:
    """Examples per second of the torch twin integrating the same equations, step by step."""
    torch.set_num_threads(1)
    params = dm.MicrocircuitParameters(phi="logistic")
    weights = dm.init_weights(SIZES, seed=0)
    eta = {"W": 0.01 * DT, "WIP": 0.01 * DT, "WPI": 0.01 * DT}
    gen = torch.Generator().manual_seed(0)
    n_batches = max(1, examples // batch)
    state = dm.zero_state(weights, batch)
    target = torch.full((batch, SIZES[-1]), -1.0, dtype=torch.float64)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(n_batches):
            r0 = torch.rand((batch, SIZES[0]), generator=gen, dtype=torch.float64)
            for _ in range(STEPS):
                state = dm.step(params, weights, state, r0, target, 1.0, DT)
                dw = dm.plasticity(params, weights, state, r0, eta)
                weights = {k: v + dw[k] if k in dw else v for k, v in weights.items()}
    wall = time.perf_counter() - start
    done = n_batches * batch
    return {
        "batch": batch,
        "examples": done,
        "wall_seconds": wall,
        "samples_per_second": done / wall,
        "ms_per_example": 1000 * wall / done,
    }


BATCH_PATTERN_MS = 20.0  # the digits-prospective preset: 200 steps of 0.1 ms


def bench_batch(batch: int, examples: int, threads: int, repeats: int) -> dict[str, object]:
    """Cost per example of the batch-mode circuit at ``batch`` copies (module docstring)."""
    params = mc.MicrocircuitParams(phi="logistic", neuron="prospective")
    presentations = -(-examples // batch)
    examples = presentations * batch
    x, u = _inputs("digits", examples)
    timed = mc.timed_values(
        batch_rows(x, batch), SIZES[-1] * batch, targets=batch_rows(u, batch), nudge=1.0,
        plastic=1.0,
    )  # fmt: skip
    structure = mc.MicrocircuitStructure(
        SIZES, record={}, timed_dt_ms=BATCH_PATTERN_MS, batch=batch
    )
    weights = mc.random_weights(SIZES, np.random.default_rng(0))
    values = {
        **mc.CIRCUIT.weight_values(structure, weights),
        **mc.eta_values(SIZES, W=0.01, IP=0.01, PI=0.01),
    }
    load_before = os.getloadavg()
    start = time.perf_counter()
    sim = Simulation(
        mc.CIRCUIT.builder(structure, params, DT),
        device="cpp_standalone",
        duration_ms=presentations * BATCH_PATTERN_MS,
        dt_ms=DT,
        initial_timed=timed,
        label=f"bench-microcircuit-batch{batch}",
        threads=threads,
    )
    setup = time.perf_counter() - start
    sims, runs = [], []
    for seed in range(1 + repeats):  # a warm-up run first
        result = sim.run(values=values, timed=timed, seed=seed, read=("W1.w",))
        if seed:
            sims.append(float(brian2.get_device()._last_run_time))
            runs.append(result.wall_seconds)
    moved = mc.weights_from_state(result.state, SIZES)["W1"] - weights["W1"]
    if not np.max(np.abs(moved)) > 0:
        raise SystemExit(f"batch {batch}: the weights did not move")
    return {
        "batch": batch,
        "threads": threads,
        "examples": examples,
        "presentations": presentations,
        "steps_per_example": round(BATCH_PATTERN_MS / DT),
        "simulation_ms_per_example": 1000 * float(np.median(sims)) / examples,
        "simulation_ms_per_example_min": 1000 * min(sims) / examples,
        "run_ms_per_example": 1000 * float(np.median(runs)) / examples,
        "run_ms_per_example_min": 1000 * min(runs) / examples,
        "setup_seconds": setup,
        "compile_seconds": sim.compile_seconds,
        "compilations": sim.compilations,
        "raw_simulation_seconds": sims,
        "raw_run_seconds": runs,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def _batch_worker(batch: int, args: argparse.Namespace) -> dict[str, object]:
    """One B in a process of its own, stopped after ``--timeout`` s (2 OpenMP threads on a
    loaded machine can take minutes where one core takes seconds)."""
    import json
    import subprocess

    out = Path(tempfile.mkdtemp(prefix="bench-mc-batch-")) / "row.json"
    command = [sys.executable, __file__, "--batch-worker", str(batch), "--out", str(out)]
    command += ["--examples", str(args.examples), "--threads", str(args.threads)]
    command += ["--repeats", str(args.repeats)]
    load = os.getloadavg()
    start = time.perf_counter()
    # a session of its own: on timeout the worker and the binary it started stop together
    proc = subprocess.Popen(command, start_new_session=True)
    try:
        if proc.wait(timeout=args.timeout):
            raise SystemExit(f"batch {batch}: the worker failed")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {
            "batch": batch, "threads": args.threads, "timed_out_after_seconds": args.timeout,
            "wall_seconds": time.perf_counter() - start, "load_average_before": load,
            "load_average_after": os.getloadavg(),
        }  # fmt: skip
    return json.loads(out.read_text())


def main_batch(args: argparse.Namespace) -> None:
    """``--batch``: cost per example against B (module docstring)."""
    batches = [int(b) for b in args.batch.split(",")]
    rows = []
    for b in batches:
        rows.append(_batch_worker(b, args))
        r = rows[-1]
        if "timed_out_after_seconds" in r:
            print(f"  B {b:4d}: stopped after {args.timeout} s", flush=True)
            continue
        print(
            f"  B {b:4d}: simulation {r['simulation_ms_per_example']:.3f} ms/example (min "
            f"{r['simulation_ms_per_example_min']:.3f}), whole run {r['run_ms_per_example']:.3f} "
            f"(min {r['run_ms_per_example_min']:.3f}), compile {r['compile_seconds']:.1f} s, "
            f"load {r['load_average_before'][0]:.2f} → {r['load_average_after'][0]:.2f}",
            flush=True,
        )
    results = {
        "benchmark": "microcircuit batch mode",
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "sizes": SIZES,
        "dt_ms": DT,
        "pattern_ms": BATCH_PATTERN_MS,
        "neuron": "prospective",
        "inputs": "digits (training set, target potentials, nudging and every rule on)",
        "threads": args.threads,
        "repeats": args.repeats,
        "rows": rows,
    }
    out = args.out or f"benchmarks/results/microcircuit_batch_threads{args.threads}.json"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_json(out, results)
    print(f"results written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per circuit run")
    parser.add_argument("--threads", type=int, default=0, help="OpenMP threads (0: one core)")
    parser.add_argument(
        "--circuit-only", action="store_true", help="cpp_standalone only (no runtime, no twin)"
    )
    parser.add_argument(
        "--no-ftz",
        action="store_true",
        help="link without -ffast-math (flush-to-zero off, as before issue 14), to measure it",
    )
    parser.add_argument(
        "--batch", help="batch mode: comma-separated copies B (e.g. 1,8,32,128; module docstring)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="--batch: timed runs per B")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="--batch: seconds after which a B is stopped"
    )
    parser.add_argument("--batch-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ.setdefault("NEUROSIM_CACHE", tempfile.mkdtemp(prefix="neurosim-bench-mc-"))
    if args.batch_worker:
        row = bench_batch(args.batch_worker, args.examples, args.threads, args.repeats)
        write_json(args.out, row)
        return
    if args.batch:
        main_batch(args)
        return
    args.out = args.out or "benchmarks/results/microcircuit.json"
    if args.no_ftz:
        engine.CPP_LINK_FLAGS = ()  # a different build key: never mixed with the default builds
    os.environ.setdefault("NEUROSIM_CACHE", tempfile.mkdtemp(prefix="neurosim-bench-mc-"))
    cpp = bench_circuit("cpp_standalone", args.examples, args.threads, ("random", "digits"))
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_average": os.getloadavg(),
        "sizes": SIZES,
        "dt_ms": DT,
        "steps_per_example": STEPS,
        "flush_to_zero": not args.no_ftz,
        "cpp_standalone": cpp["random"],
        "cpp_standalone_digits": cpp["digits"],
    }
    shown = ["cpp_standalone", "cpp_standalone_digits"]
    if not args.circuit_only:
        results["runtime"] = bench_circuit("runtime", max(10, args.examples // 10))["random"]
        results["twin_batch_1"] = bench_twin(1, 10)
        results["twin_batch_20"] = bench_twin(20, 40)
        shown += ["runtime", "twin_batch_1", "twin_batch_20"]
        cost = cpp["random"]["ms_per_example"]
        results["ratios"] = {
            "cpp_cost_over_twin_batch1": cost / results["twin_batch_1"]["ms_per_example"],
            "cpp_cost_over_twin_batch20": cost / results["twin_batch_20"]["ms_per_example"],
            "runtime_cost_over_cpp": results["runtime"]["ms_per_example"] / cost,
        }
    results["digits_cost_over_random"] = (
        cpp["digits"]["ms_per_example"] / cpp["random"]["ms_per_example"]
    )
    print(
        f"microcircuit {SIZES}, {STEPS} steps of {DT} ms per example, all rules on, "
        f"threads {args.threads}, flush-to-zero {not args.no_ftz}, "
        f"load average {results['load_average'][0]:.2f}"
    )
    for key in shown:
        r = results[key]
        print(
            f"  {key:22s} {r['samples_per_second']:9.1f} samples/s  "
            f"{r['ms_per_example']:9.2f} ms/example"
            + (
                f"  (binary CPU {r['binary_cpu_ms_per_example']:.2f} ms/example)"
                if "binary_cpu_ms_per_example" in r
                else ""
            )
        )
    for key, value in {
        **results.get("ratios", {}),
        "digits_cost_over_random": results["digits_cost_over_random"],
    }.items():
        print(f"  {key:30s} {value:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()

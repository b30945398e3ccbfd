"""Cost per training example of the spiking read-out with populations of n cells per unit,
against the rate read-out (issue 15, "Benchmark").

Usage::

    .venv/bin/python benchmarks/bench_populations.py [--quick] [--populations 1,16,64]
        [--max-rate-hz 100] [--examples 300] [--repeats 3] [--out FILE.json]

The two-phase EP circuit 64-100-10 as ``neurosim run equilibrium-propagation --preset
digits-spiking`` trains it: 40 free and 20 nudged steps of dt = 0.5 ms per example, β = 0.5,
rates (0.02, 0.01), states restarted every example, learning in-run; random digits-sized inputs
in [0, 1] and one-hot targets (seed 0), Glorot weights (seed 0). Cases: the rate read-out, and
the spiking read-out at every n of ``--populations`` (max rate ``--max-rate-hz``; n = 1 is one
cell per unit with a trace per synapse, n > 1 the populations of :class:`neurosim.blocks.
Population`). Each case runs in its own process on cpp_standalone, one core (no OpenMP), builds
into a fresh ``NEUROSIM_CACHE`` (``compile_seconds``), makes one warm-up run and ``--repeats``
measured runs of ``--examples`` examples; the cost per example is the binary's own simulation
time (``device._last_run_time``) / examples, median and minimum over the repeats, beside the
whole ``Simulation.run`` (arguments written, binary started, results read). The build's size
(neurons, synapses from :meth:`HopfieldCircuit.cost`) is reported with it. Written to
``benchmarks/results/populations.json`` (atomically) unless ``--out`` says otherwise.
``--quick``: 100 examples, 1 repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

DEFAULT_OUT = HERE / "results" / "populations.json"
SIZES = (64, 100, 10)
DT = 0.5
FREE_STEPS, NUDGED_STEPS = 40, 20
BETA = 0.5
LR = (0.02, 0.01)
SEED = 0


def _case(readout: str, population: int, max_rate_hz: float, examples: int, repeats: int) -> dict:
    """One case, in this process: build, warm up, time ``repeats`` runs."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import brian2
    import numpy as np

    from circuits import hopfield as hp
    from models import equilibrium_propagation as ep
    from protocols.equilibrium_propagation.layout import Plan, timed_layout
    from protocols.equilibrium_propagation.simulation import rule_values, simulation, static_values

    plan = Plan(
        sizes=SIZES, free_steps=FREE_STEPS, nudged_steps=NUDGED_STEPS, dt_ms=DT, beta=BETA,
        rates=LR, readout=readout, P=examples, population=population,
    )  # fmt: skip
    rng = np.random.default_rng(SEED)
    x = rng.uniform(0.0, 1.0, (examples, SIZES[0]))
    d = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], examples)]
    params = hp.HopfieldParams(max_rate_hz=max_rate_hz)
    start = time.perf_counter()
    sim = simulation(
        hp.CIRCUIT, plan, params, "cpp_standalone", n_examples=examples, record={},
        record_steps=1, label=f"bench-population-{readout}-{population}",
    )  # fmt: skip
    setup = time.perf_counter() - start
    weights = {k: v.numpy() for k, v in ep.init_weights(list(SIZES), seed=SEED).items()}
    values = {
        **hp.weight_values(weights, SIZES), **static_values(hp.CIRCUIT, plan, 0.0),
        **rule_values(hp.CIRCUIT, plan, 1.0),
    }  # fmt: skip
    timed, _, _ = timed_layout(hp.CIRCUIT, plan, x, d, np.full(examples, BETA))
    structure = hp.HopfieldStructure(
        sizes=SIZES, readout=readout, population=population, plasticity=("two-phase",),
        example_ms=(FREE_STEPS + NUDGED_STEPS) * DT,
    )  # fmt: skip
    read = tuple(k for k in hp.CIRCUIT.state_keys(structure) if k.startswith("W"))
    sim_walls, run_walls = [], []
    for k in range(1 + repeats):
        result = sim.run(values=values, timed=timed, seed=k, read=read)
        if k >= 1:
            sim_walls.append(float(brian2.get_device()._last_run_time))
            run_walls.append(result.wall_seconds)
    moved = float(np.linalg.norm(result.state["W1.w"] - hp.weight_values(weights, SIZES)["W1.w"]))
    if not moved > 0:
        raise SystemExit(f"{readout} n={population}: the weights did not change")
    cost = hp.CIRCUIT.cost(structure)
    return {
        "readout": readout,
        "population": population,
        "max_rate_hz": max_rate_hz if readout == "spiking" else None,
        "examples": examples,
        "steps_per_example": FREE_STEPS + NUDGED_STEPS,
        "neurons": cost.neurons,
        "synapses": cost.synapses,
        "setup_seconds": setup,
        "compile_seconds": sim.compile_seconds,
        "compilations": sim.compilations,
        "sim_ms_per_example_median": 1e3 * statistics.median(sim_walls) / examples,
        "sim_ms_per_example_min": 1e3 * min(sim_walls) / examples,
        "run_ms_per_example_median": 1e3 * statistics.median(run_walls) / examples,
        "repeats": repeats,
    }


def _loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", default="1,16,64")
    parser.add_argument("--max-rate-hz", type=float, default=100.0)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # one case, in its own process
        print(json.dumps(_case(**json.loads(args.worker))))
        return 0
    examples, repeats = (100, 1) if args.quick else (args.examples, args.repeats)
    cases = [("rate", 1)] + [("spiking", int(n)) for n in args.populations.split(",")]
    rows = []
    for readout, n in cases:
        spec = {"readout": readout, "population": n, "max_rate_hz": args.max_rate_hz,
                "examples": examples, "repeats": repeats}  # fmt: skip
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NEUROSIM_CACHE": cache, "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": str(REPO)}  # fmt: skip
            load_before = _loadavg()
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            if proc.returncode != 0:
                raise SystemExit(f"case {spec} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["load_before"], row["load_after"] = load_before, _loadavg()
        rows.append(row)
        print(
            f"{readout:8s} n={n:3d}: {row['sim_ms_per_example_median']:.3f} ms/example "
            f"(min {row['sim_ms_per_example_min']:.3f}; whole run "
            f"{row['run_ms_per_example_median']:.3f}), {row['synapses']} synapses, compile "
            f"{row['compile_seconds']:.0f} s, load {row['load_before'][0]:.2f}",
            flush=True,
        )
    rate = rows[0]["sim_ms_per_example_median"]
    for row in rows:
        row["ratio_to_rate"] = row["sim_ms_per_example_median"] / rate
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "rows": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, args.out)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Samples per second of the dendritic microcircuit: Brian2 circuit against its torch twin.

The same equations, the same dt (0.1 ms) and the same number of steps per example (100 ms, 1000
steps), all plasticity on, 64-100-10 with logistic φ (the digits architecture of issue 3):

* the Brian2 circuit on cpp_standalone (one core) and on the runtime device, one example after
  another within one run (inputs change every 100 ms through a TimedArray);
* the torch twin (``models.dendritic_microcircuit``): one Euler ``step`` of all potentials and
  the forward, IP and PI weight changes applied every step, at batch 1 and at batch 20.

The twin applies the induction terms directly; the circuit low-pass filters them (τ_w) first, so
the circuit does slightly more work per step.
Run: ``.venv/bin/python benchmarks/bench_microcircuit.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuits import microcircuit as mc  # noqa: E402
from models import dendritic_microcircuit as dm  # noqa: E402
from neurosim.engine import Simulation  # noqa: E402
from neurosim.results import write_json  # noqa: E402

SIZES = [64, 100, 10]
DT = 0.1
PATTERN_MS = 100.0
STEPS = int(PATTERN_MS / DT)


def bench_circuit(device: str, examples: int) -> dict[str, float]:
    """Examples per second of the Brian2 circuit (all rules on, rate read-out)."""
    params = mc.MicrocircuitParams(phi="logistic")
    rng = np.random.default_rng(0)
    x = rng.random((examples, SIZES[0]))
    y = np.full((examples, SIZES[-1]), -1.0)
    timed = mc.timed_values(x, SIZES[-1], targets=y, nudge=1.0, plastic=1.0)
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
        initial_timed=timed,
        label="bench-microcircuit",
    )
    setup = time.perf_counter() - start
    walls = []
    for seed in range(3 if device != "runtime" else 2):  # runtime run 1 generates code
        result = sim.run(values=values, timed=timed, seed=seed)
        walls.append(result.wall_seconds)
    wall = min(walls)
    return {
        "examples": examples,
        "wall_seconds": wall,
        "samples_per_second": examples / wall,
        "ms_per_example": 1000 * wall / examples,
        "setup_seconds": setup,
        "compilations": sim.compilations,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per circuit run")
    parser.add_argument("--out", default="benchmarks/results/microcircuit.json")
    args = parser.parse_args()
    os.environ.setdefault("NEUROSIM_CACHE", tempfile.mkdtemp(prefix="neurosim-bench-mc-"))
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "sizes": SIZES,
        "dt_ms": DT,
        "steps_per_example": STEPS,
        "cpp_standalone": bench_circuit("cpp_standalone", args.examples),
        "runtime": bench_circuit("runtime", max(10, args.examples // 10)),
        "twin_batch_1": bench_twin(1, 10),
        "twin_batch_20": bench_twin(20, 40),
    }
    cpp = results["cpp_standalone"]["ms_per_example"]
    results["ratios"] = {
        "cpp_cost_over_twin_batch1": cpp / results["twin_batch_1"]["ms_per_example"],
        "cpp_cost_over_twin_batch20": cpp / results["twin_batch_20"]["ms_per_example"],
        "runtime_cost_over_cpp": results["runtime"]["ms_per_example"] / cpp,
    }
    print(f"microcircuit {SIZES}, {STEPS} steps of {DT} ms per example, all rules on")
    for key in ("cpp_standalone", "runtime", "twin_batch_1", "twin_batch_20"):
        r = results[key]
        print(
            f"  {key:16s} {r['samples_per_second']:9.1f} samples/s  "
            f"{r['ms_per_example']:9.2f} ms/example"
        )
    for key, value in results["ratios"].items():
        print(f"  {key:30s} {value:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()

"""What recording spikes costs an EP training run with the spiking read-out (issue 15, item 3).

The same compiled training build of ``neurosim run equilibrium-propagation --readout spiking``
(digits preset, 64-100-10, two-phase, 60 steps of 0.5 ms per example, ``--examples`` per run),
built three ways: the circuit's spike monitors of every cell (what every spiking training run
carried before), the sampled monitors of the first ``--cells`` cells per group (the recording's
default, :mod:`neurosim.spike_sample`), and no spike monitor at all. Each build runs the same
training examples with learning on from the same weights and seed, the three interleaved
``--repeats`` times; the script prints per example the median wall time of a run (the binary,
and the engine reading every monitor back from disk) and the median CPU time of the binary (user
+ system of the child process, steadier than wall time on a shared machine), and the spikes
recorded.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_spike_sample.py --examples 100 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np

from circuits.hopfield import CIRCUIT
from models import equilibrium_propagation as ep
from neurosim import datasets
from neurosim.circuit import params_from_table
from neurosim.cli import pipeline
from protocols.equilibrium_propagation.layout import Plan, timed_layout
from protocols.equilibrium_propagation.simulation import (
    rule_values,
    simulation,
    static_values,
)

KINDS = ("every cell", "sampled", "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per build")
    parser.add_argument("--cells", type=int, default=10, help="sampled cells per group")
    args = parser.parse_args()

    resolved = pipeline.resolve(
        {"run": {"protocol": "equilibrium-propagation", "readout": "spiking", "dataset": "digits"}}
    )
    proto, sizes = resolved.protocol, tuple(resolved.circuit.sizes)
    params = params_from_table(CIRCUIT, resolved.circuit)
    plan = Plan(
        sizes=sizes, variant="two-phase", free_steps=proto.free_steps,
        nudged_steps=proto.nudged_steps, dt_ms=proto.dt_ms, beta=proto.beta,
        rates=tuple(proto.lr), readout="spiking", P=args.examples,
    )  # fmt: skip
    data = datasets.load("digits", seed=1)
    x = data.x_train[: args.examples]
    d = np.eye(sizes[-1])[data.labels_train[: args.examples]]
    timed, _, example_ms = timed_layout(CIRCUIT, plan, x, d, np.full(args.examples, plan.beta))
    w0 = {k: v.numpy() for k, v in ep.init_weights(list(sizes), seed=1, scale=1.0).items()}
    values = {
        **CIRCUIT.weight_values(CIRCUIT.Structure(sizes=sizes), w0),
        **static_values(CIRCUIT, plan, 0.0),
        **rule_values(CIRCUIT, plan, 1.0),
    }
    record = {f"layer{k}": ("s",) for k in range(1, len(sizes))}
    cells = {f"layer{k}": min(args.cells, n) for k, n in enumerate(sizes)}
    sims = {
        kind: simulation(
            CIRCUIT,
            plan,
            params,
            "cpp_standalone",
            n_examples=args.examples,
            record=record,
            record_steps=plan.unit_steps,
            label=f"bench-spike-sample-{kind.replace(' ', '-')}",
            spike_cells={"every cell": None, "sampled": cells, "none": {}}[kind],
        )  # fmt: skip
        for kind in KINDS
    }
    walls: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpus: dict[str, list[float]] = {kind: [] for kind in KINDS}
    spikes: dict[str, int] = {}
    for _ in range(args.repeats):  # interleaved, so that the machine's load drifts over all
        for kind, sim in sims.items():
            sim.run(values=values, timed=timed, seed=3)  # takes Brian2's one device (untimed)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            result = sim.run(values=values, timed=timed, seed=3)
            walls[kind].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[kind].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            spikes[kind] = sum(
                len(m["t"]) for name, m in result.monitors.items() if name.startswith("spikes_")
            )
    out = {
        kind: {
            "median_run_s": statistics.median(walls[kind]),
            "ms_per_example": 1000 * statistics.median(walls[kind]) / args.examples,
            "binary_cpu_ms_per_example": 1000 * statistics.median(cpus[kind]) / args.examples,
            "recorded_spikes": spikes[kind],
        }
        for kind in KINDS
    }
    print(json.dumps({"examples": args.examples, "example_ms": example_ms, **out}, indent=1))


if __name__ == "__main__":
    main()

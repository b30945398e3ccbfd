"""How close EP's update from spike traces comes to the update from rates, per example and summed
over examples, at fixed weights (issue 15 item 4): a diagnosis for the accuracy table of
``benchmarks/README.md``, not a speed test.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/ep_spike_plasticity.py [--examples 200]
        [--settings default,n16-tau1] [--window 20] [--rules rates,spike-traces]
        [--out FILE.json]

The two-phase circuit 64-100-10 with the ``digits-spiking`` preset's phases (40 free and 20
nudged steps of 0.5 ms, β = 0.5), at its initial Glorot weights (seed 1), sees the first
``--examples`` training digits once, learning at a rate η = 1e-6 so small that the weights do
not move the dynamics (an update is ~1e-7 of a weight): (w_end − w_0)/η is then the update
summed over the examples, Σ ΔW/η. It is measured for

* the rate read-out (no noise): the reference EP update;
* the spiking read-out learning from rates (``protocol.plasticity = "rates"``) and from spike
  traces (``"spike-traces"``, τ_ν = 3 ms, products over the last ``--window`` steps of each
  phase, default 20: the whole nudged phase), each with two seeds of the spikes;

at each setting of ``--settings``: ``default`` (1000 Hz, one cell per unit, τ_s = 3 ms) and
``n16-tau1`` (1000 Hz, 16 cells per unit, τ_s = 1 ms). Per layer it prints the cosine of each
summed update with the reference and with the other seed of the same rule, and its norm over the
reference's. A rule whose summed update has a high cosine with the other seed but a low one with
the reference is biased (systematic), one with low cosines to both is noisy. One build per
case (cpp_standalone, a private build cache). Written to ``--out`` (default
``benchmarks/results/ep_spike_plasticity.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

SIZES = (64, 100, 10)
DT, FREE, NUDGED, BETA = 0.5, 40, 20, 0.5
ETA = 1e-6
SETTINGS = {
    "default": {"max_rate_hz": 1000.0, "population": 1, "tau_s": 3.0},
    "n16-tau1": {"max_rate_hz": 1000.0, "population": 16, "tau_s": 1.0},
}


def _summed_update(
    readout: str,
    learn_from: str,
    setting: dict,
    examples: int,
    seeds: tuple[int, ...],
    window: int = NUDGED,
) -> list[dict]:
    """Σ ΔW/η and Σ Δb/η over the first ``examples`` training digits, per seed of the spikes."""
    import numpy as np

    from circuits import hopfield as hp
    from models import equilibrium_propagation as ep
    from neurosim import datasets as ds
    from protocols.equilibrium_propagation.config import one_hot
    from protocols.equilibrium_propagation.layout import Plan, timed_layout
    from protocols.equilibrium_propagation.simulation import rule_values, simulation, static_values

    data = ds.load("digits", seed=1)
    x, d = data.x_train[:examples], one_hot(data.labels_train[:examples], SIZES[-1])
    n = setting["population"] if readout == "spiking" else 1
    plan = Plan(
        sizes=SIZES, free_steps=FREE, nudged_steps=NUDGED, dt_ms=DT, beta=BETA,
        rates=(ETA, ETA), readout=readout, P=examples, population=n, learn_from=learn_from,
        trace_window_steps=window,
    )  # fmt: skip
    params = hp.HopfieldParams(max_rate_hz=setting["max_rate_hz"], tau_s=setting["tau_s"])
    sim = simulation(
        hp.CIRCUIT, plan, params, "cpp_standalone", n_examples=examples, record={},
        record_steps=1, label=f"ep-spike-plasticity-{readout}-{learn_from}-{n}",
    )  # fmt: skip
    w0 = {k: v.numpy() for k, v in ep.init_weights(list(SIZES), seed=1).items()}
    values = {
        **hp.weight_values(w0, SIZES), **static_values(hp.CIRCUIT, plan, 0.0),
        **rule_values(hp.CIRCUIT, plan, 1.0),
    }  # fmt: skip
    timed, _, _ = timed_layout(hp.CIRCUIT, plan, x, d, np.full(examples, BETA))
    structure = hp.HopfieldStructure(sizes=SIZES, readout=readout, population=n)
    out = []
    for seed in seeds:
        result = sim.run(
            values=values, timed=timed, seed=seed, read=hp.CIRCUIT.state_keys(structure)
        )
        w = hp.weights_from_state(result.state, SIZES)
        out.append({k: (w[k] - w0[k]) / ETA for k in w0})
    return out


def _cos(a, b) -> float:  # noqa: ANN001
    import numpy as np

    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--settings", default="default,n16-tau1")
    parser.add_argument("--window", type=int, default=NUDGED)
    parser.add_argument("--rules", default="rates,spike-traces")
    parser.add_argument("--out", default=str(HERE / "results" / "ep_spike_plasticity.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("NEUROSIM_CACHE", tempfile.mkdtemp(prefix="ep-spike-plasticity-"))
    import numpy as np

    start, load = time.time(), os.getloadavg()
    reference = _summed_update("rate", "rates", SETTINGS["default"], args.examples, (1,))[0]
    rows = []
    for name in args.settings.split(","):
        setting = SETTINGS[name]
        for rule in args.rules.split(","):
            first, second = _summed_update(
                "spiking", rule, setting, args.examples, (1, 2), args.window
            )
            row = {"setting": name, **setting, "plasticity": rule, "window_steps": args.window}
            for k in ("W1", "W2", "b1", "b2"):
                row[k] = {
                    "cos_reference": _cos(first[k], reference[k]),
                    "cos_other_seed": _cos(first[k], second[k]),
                    "norm_over_reference": float(
                        np.linalg.norm(first[k]) / np.linalg.norm(reference[k])
                    ),
                }
            rows.append(row)
            print(
                f"{name:9s} {rule:12s} w{args.window:<3d}"
                + "  ".join(
                    f"{k}: cos ref {row[k]['cos_reference']:+.2f} seed "
                    f"{row[k]['cos_other_seed']:+.2f} norm {row[k]['norm_over_reference']:.2f}"
                    for k in ("W1", "W2", "b1", "b2")
                ),
                flush=True,
            )
    result = {
        "examples": args.examples,
        "eta": ETA,
        "rows": rows,
        "wall_seconds": time.time() - start,
        "load_before": list(load),
        "load_after": list(os.getloadavg()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"written to {args.out} ({result['wall_seconds']:.0f} s, load {load} -> "
          f"{result['load_after']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How far the microcircuit's output is from its settled state after a pattern of ``steps`` steps
of ``dt`` ms, for instantaneous and prospective neurons (issue 14, items 1-2).

The potentials come from the torch twin (:mod:`models.dendritic_microcircuit`), which equals the
Brian2 circuit step by step to about 1e-14 for both neuron types (``tests/test_bridge.py``,
``tests/test_microcircuit_circuit.py``); the script adds the circuit's input layer: the 3 ms
input filter (instantaneous) or its prospective rate inputs(t − dt) (prospective). Each of the
360 digits test inputs is presented after the previous one has settled (the state starts at the
previous input's fixed point, as in a sequence of patterns), with nudging and plasticity off.

Measured per (neuron, dt, steps): the largest distance of the output potential read at the
pattern's end from its fixed point, relative to the largest output potential (u, which the
protocol reads, and for prospective neurons also ŭ, which sets the rate); and, with the weights
of a trained digits run (``--weights``, its ``weights.npz``), the test accuracy of argmax φ(u_N)
at the pattern's end against that of the fixed points. Inference only: training at a given dt
and presentation time is measured by whole protocol runs (benchmarks/README.md).

    .venv/bin/python benchmarks/bench_microcircuit_dt.py --weights results/X/weights.npz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from models import dendritic_microcircuit as dm
from neurosim.parameters.microcircuit import MicrocircuitParams

DTS = (0.05, 0.1, 0.2, 0.5, 1.0)
STEPS = (10, 20, 50, 100, 200, 500, 1000)
NEURONS = ("instantaneous", "prospective")
SETTLED = 1e-3  # the tolerance on the settled potentials (relative)
HERE = Path(__file__).resolve().parent


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from neurosim.datasets import load

    data = load("digits", seed=1)  # as the protocol loads it for seed 1
    return np.asarray(data.x_test, dtype=float), np.asarray(data.labels_test)


def _weights(path: Path | None, sizes: tuple[int, ...], params: MicrocircuitParams) -> dict:
    if path is not None:
        z = np.load(path)
        return {k: torch.as_tensor(z[k]) for k in z.files if not k.startswith("initial_")}
    # untrained: the digits preset's initial forward weights (gain 8), fixed random B (U(−2, 2))
    # and self-predicting lateral weights
    rng = np.random.default_rng(1)
    w = {
        f"W{k}": rng.uniform(-1, 1, (sizes[k], sizes[k - 1])) * 8 / np.sqrt(sizes[k - 1])
        for k in (1, 2)
    }
    w["B1"] = rng.uniform(-2, 2, (sizes[1], sizes[2]))
    w["WPI1"], w["WIP1"] = 0 * w["B1"], 0 * w["W2"]
    return dm.self_predicting_weights(w, params)


def measure(
    params: MicrocircuitParams,
    w: dict,
    x: np.ndarray,
    labels: np.ndarray | None,
    dt: float,
    checkpoints: tuple[int, ...] = STEPS,
) -> dict[int, dict[str, float]]:
    """Errors (and accuracy) at every step count of ``checkpoints`` for one neuron type and dt."""
    r0 = torch.as_tensor(x)
    fp = dm.fixed_point(params, w, r0).state
    u_star = fp.u[-1]
    scale = float(u_star.abs().max())
    start = dm.MicrocircuitState(
        tuple(torch.roll(v, 1, 0) for v in fp.u), tuple(torch.roll(v, 1, 0) for v in fp.uI)
    )
    prev = torch.roll(r0, 1, 0)  # the input layer starts settled on the previous input
    state, r_in, out = start, prev.clone(), {}
    for n in range(1, max(checkpoints) + 1):
        if params.prospective:
            r_in = prev if n == 1 else r0  # inputs(t − dt)
        state = dm.step(params, w, state, r_in, dt=dt)
        if not params.prospective:
            r_in = r_in + dt * (r0 - r_in) / params.tau_in  # the 3 ms input filter
        if n in checkpoints:
            per_input = (state.u[-1] - u_star).abs().amax(1) / scale
            row = {
                "u_error": float(per_input.max()),
                "u_error_median": float(per_input.median()),
                "u_settled_share": float((per_input <= SETTLED).double().mean()),
            }
            if params.prospective:
                row["ub_error"] = float((state.ub[-1] - u_star).abs().max()) / scale
            if labels is not None:
                row["accuracy"] = float(np.mean(np.argmax(state.u[-1].numpy(), 1) == labels))
            out[n] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path, help="weights.npz of a trained digits run")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "microcircuit_dt.json")
    args = ap.parse_args()
    x, labels = _digits()
    sizes = (64, 100, 10)
    base = MicrocircuitParams(phi="logistic")
    w = _weights(args.weights, sizes, base)
    acc_star = None
    if args.weights is not None:
        fp = dm.fixed_point(base, w, torch.as_tensor(x)).state
        acc_star = float(np.mean(np.argmax(fp.u[-1].numpy(), 1) == labels))
    torch.set_num_threads(1)  # one core: the machine is shared
    t0 = time.perf_counter()
    table = {}
    for neuron in NEURONS:
        params = MicrocircuitParams(phi="logistic", neuron=neuron)
        for dt in DTS:
            rows = measure(params, w, x, labels if args.weights else None, dt)
            table[f"{neuron} {dt}"] = rows
            for n, row in rows.items():
                cells = "  ".join(f"{k} {v:.3g}" for k, v in row.items())
                print(f"{neuron:13s} dt {dt:4} ms  {n:5d} steps ({n * dt:6.1f} ms)  {cells}")
    result = {
        "weights": str(args.weights) if args.weights else "untrained (gain 8, self-predicting)",
        "fixed_point_accuracy": acc_star,
        "dts": DTS,
        "steps": STEPS,
        "table": table,
        "seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    _figure(result, args.out.with_suffix(".png"))
    print(f"fixed-point accuracy {acc_star}; written {args.out} and its .png")


def _figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if result["fixed_point_accuracy"] is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(result["dts"])))
    for neuron, style in zip(NEURONS, ("--", "-"), strict=True):
        for dt, c in zip(result["dts"], colours, strict=True):
            rows = result["table"][f"{neuron} {dt}"]
            n = [int(k) for k in rows]
            err = [max(r["u_error"], 1e-16) for r in rows.values()]
            axes[0][0].loglog(n, err, style, color=c, label=f"{neuron[:4]}. dt {dt}")
            if panels == 2:
                acc = [r["accuracy"] for r in rows.values()]
                axes[0][1].semilogx(n, acc, style, color=c)
    rows = result["table"]["prospective 0.1"]
    ub = [max(r["ub_error"], 1e-16) for r in rows.values()]
    axes[0][0].loglog([int(k) for k in rows], ub, ":", color="k", label="pros. ŭ (every dt)")
    axes[0][0].set(xlabel="steps per pattern", ylabel="output |u − u*| / max|u*|")
    axes[0][0].legend(fontsize=7, ncol=2)
    if panels == 2:
        axes[0][1].axhline(result["fixed_point_accuracy"], color="k", lw=0.8)
        axes[0][1].set(xlabel="steps per pattern", ylabel="test accuracy (inference)")
    fig.suptitle("microcircuit 64-100-10 on digits: dashed instantaneous, solid prospective")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

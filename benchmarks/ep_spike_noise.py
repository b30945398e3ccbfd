"""Why EP's spiking read-out learns worse than its rate read-out at ≤ 100 Hz: the two-phase
update of the spiking circuit against the rate circuit's, example by example, at fixed weights
(issue 15, Must show: EP within 1 point of its rate read-out at ≤ 100 Hz). A diagnosis that
needs no training run, not a speed test.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/ep_spike_noise.py [--settings preset-n64,...]
        [--weights initial,epoch1,epoch10] [--windows 1,5,10,20] [--examples 200]
        [--out FILE.json]

For every setting (population n, maximum rate, trace τ_s, time constant τ, step, phases, β) one
rate build and one spiking build of the two-phase circuit 64-100-10 (cpp_standalone, a private
build cache) see the first ``--examples`` training digits, nudged at β as in training but with
learning rates 0 (the weights stay fixed), recording the states s of layers 1 and 2 every step.
The weights: ``initial`` (Glorot, seed 1), ``epoch1`` and ``epoch10`` (trained by the torch twin,
equal to the rate circuit to 1e-9, with two-phase EP at the ``digits-spiking`` preset's phases
and rates, 40/20 steps of 0.5 ms, β 0.5, rates 0.02, 0.01 × 0.85 per epoch; cached in
``--cache``).

From the recorded states, per example e, the two-phase update Δ_e = (ρ̄^β ρ̄^β' − ρ̄⁰ ρ̄⁰')/β,
ρ̄ the mean of ρ(s) over the last W steps of each phase (W = 1: the end-point latches the
circuit's rule reads today; W > 1: a rule whose latches average the settled phase). The
reference R_e is the rate build's update at W = 1 (what the rate read-out trains with). Per
layer W1, W2 and per W, over the examples:

* ``cos``: Σ_e⟨Δ_e, R_e⟩ / √(Σ|Δ_e|² Σ|R_e|²), the per-example agreement;
* ``err``: √(Σ|Δ_e − R_e|² / Σ|R_e|²), the per-example error relative to the signal;
* ``noise``: √(Σ|Δ¹_e − Δ²_e|²/2 / Σ|R_e|²), its part that changes with the spikes' seed
  (two seeds), so err² ≈ noise² + bias²;
* ``cos_sum``: the cosine of Σ_eΔ_e with Σ_eR_e, what many small steps see;
* ``acc``: accuracy of argmax ρ̄⁰ of the output (the free phase's window mean; W = 1 is the
  protocol's read-out) on these training digits, beside the rate build's.

Written to ``--out`` (default ``benchmarks/results/ep_spike_noise.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

SIZES = (64, 100, 10)
PRESET = {"population": 64, "max_rate_hz": 100.0, "tau_s": 3.0, "tau": 1.0, "dt_ms": 0.5,
          "free": 40, "nudged": 20, "beta": 0.5}  # fmt: skip
#: the settings compared (the preset's phases at 100 Hz, n = 64 unless said)
SETTINGS: dict[str, dict[str, Any]] = {
    "preset-n64": {},
    "n64-taus1": {"tau_s": 1.0},
    "n64-beta1": {"beta": 1.0},
    "n16-1000hz-taus1": {"population": 16, "max_rate_hz": 1000.0, "tau_s": 1.0},
    "n64-tau4-taus2": {"tau": 4.0, "tau_s": 2.0, "dt_ms": 1.0, "free": 60, "nudged": 30},
    "n64-tau4-taus2-beta1": {"tau": 4.0, "tau_s": 2.0, "dt_ms": 1.0, "free": 60, "nudged": 30,
                             "beta": 1.0},
    "n64-long": {"free": 80, "nudged": 40},
    "n64-tau10-taus2": {"tau": 10.0, "tau_s": 2.0, "dt_ms": 1.0, "free": 100, "nudged": 50},
    "n64-tau10-taus2-short": {"tau": 10.0, "tau_s": 2.0, "dt_ms": 1.0, "free": 60,
                              "nudged": 30},
    "n16-tau10-taus2": {"population": 16, "tau": 10.0, "tau_s": 2.0, "dt_ms": 1.0,
                        "free": 100, "nudged": 50},
}  # fmt: skip


def trained_weights(epochs: int, cache: Path) -> dict:
    """Glorot (seed 1) trained by the twin for ``epochs`` epochs of two-phase EP at the spiking
    preset's phases and rates (cached)."""
    import numpy as np
    import torch

    from models import equilibrium_propagation as ep
    from neurosim import datasets as ds
    from protocols.equilibrium_propagation.config import one_hot

    path = cache / f"ep_spike_noise_w{epochs}.npz"
    if path.exists():
        return {k: v for k, v in np.load(path).items()}
    w = ep.init_weights(list(SIZES), seed=1)
    if epochs:
        data = ds.load("digits", seed=1)
        x = torch.tensor(data.x_train)
        d = torch.tensor(one_hot(data.labels_train, SIZES[-1]))
        params = ep.EPParameters(SIZES, dt=0.5, beta=0.5, free_steps=40, nudged_steps=20)
        rng, lr = np.random.default_rng(1), np.array([0.02, 0.01])
        for _ in range(epochs):
            for i in rng.permutation(len(x)):
                w, _ = ep.train_batch(params, w, x[i : i + 1], d[i : i + 1], list(lr))
            lr = lr * 0.85
    out = {k: v.numpy() for k, v in w.items()}
    np.savez(path, **out)
    return out


def states(readout: str, setting: dict, weights: dict[str, dict], examples: int, seeds) -> dict:
    """Recorded s of layers 1, 2 (every step) per weight set and seed, for one build."""
    import numpy as np

    from circuits import hopfield as hp
    from neurosim import datasets as ds
    from protocols.equilibrium_propagation.config import one_hot
    from protocols.equilibrium_propagation.layout import Plan, timed_layout
    from protocols.equilibrium_propagation.simulation import rule_values, simulation, static_values

    data = ds.load("digits", seed=1)
    x, d = data.x_train[:examples], one_hot(data.labels_train[:examples], SIZES[-1])
    n = setting["population"] if readout == "spiking" else 1
    plan = Plan(
        sizes=SIZES, free_steps=setting["free"], nudged_steps=setting["nudged"],
        dt_ms=setting["dt_ms"], beta=setting["beta"], rates=(0.0, 0.0), readout=readout,
        P=examples, population=n,
    )  # fmt: skip
    params = hp.HopfieldParams(
        max_rate_hz=setting["max_rate_hz"], tau_s=setting["tau_s"], tau=setting["tau"]
    )
    sim = simulation(
        hp.CIRCUIT, plan, params, "cpp_standalone", n_examples=examples,
        record={"layer1": ["s"], "layer2": ["s"]}, record_steps=1,
        label=f"ep-spike-noise-{readout}-{n}",
    )  # fmt: skip
    timed, _, _ = timed_layout(hp.CIRCUIT, plan, x, d, np.full(examples, setting["beta"]))
    out = {}
    for name, w in weights.items():
        values = {
            **hp.weight_values(w, SIZES), **static_values(hp.CIRCUIT, plan, 0.0),
            **rule_values(hp.CIRCUIT, plan, 0.0),
        }  # fmt: skip
        for seed in seeds:
            result = sim.run(values=values, timed=timed, seed=seed, read=())
            out[(name, seed)] = [
                np.clip(np.asarray(result.monitors[f"layer{k}"]["s"]), 0.0, 1.0) for k in (1, 2)
            ]
    return out


def updates(rec: list, x, setting: dict, window: int) -> dict:
    """Per example the two-phase update from the window means of ρ at the end of each phase,
    and the free window's output means."""
    import numpy as np

    f, m = setting["free"], setting["nudged"]
    e = f + m
    p = len(x)
    free_rows = np.arange(p)[:, None] * e + f - np.arange(window)[None, :]
    nudged_rows = (np.arange(p)[:, None] + 1) * e - np.arange(window)[None, :]
    r0 = [x] + [layer[free_rows].mean(1) for layer in rec]
    rb = [x] + [layer[nudged_rows].mean(1) for layer in rec]
    beta = setting["beta"]
    out = {}
    for k in (1, 2):
        out[f"W{k}"] = (
            rb[k][:, :, None] * rb[k - 1][:, None, :] - r0[k][:, :, None] * r0[k - 1][:, None, :]
        ).reshape(p, -1) / beta
        out[f"b{k}"] = (rb[k] - r0[k]) / beta
    out["output"] = r0[2]
    return out


def compare(spk: list[dict], ref: dict, labels) -> dict:
    """The agreement of the spiking updates (two seeds) with the reference, per parameter."""
    import numpy as np

    row: dict[str, Any] = {}
    for k in ("W1", "W2", "b1", "b2"):
        a, b, r = spk[0][k], spk[1][k], ref[k]
        rr = float((r * r).sum())
        row[k] = {
            "cos": float((a * r).sum() / np.sqrt((a * a).sum() * rr)),
            "err": float(np.sqrt(((a - r) ** 2).sum() / rr)),
            "noise": float(np.sqrt(((a - b) ** 2).sum() / 2 / rr)),
            "cos_sum": float(
                a.sum(0) @ r.sum(0) / (np.linalg.norm(a.sum(0)) * np.linalg.norm(r.sum(0)))
            ),
            "norm": float(np.sqrt((a * a).sum() / rr)),
        }
    row["acc"] = float(np.mean([np.mean(np.argmax(s["output"], 1) == labels) for s in spk]))
    row["acc_rate"] = float(np.mean(np.argmax(ref["output"], 1) == labels))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--settings", default="preset-n64,n64-taus1,n64-beta1")
    parser.add_argument("--weights", default="initial,epoch1,epoch10")
    parser.add_argument("--windows", default="1,5,10,20")
    parser.add_argument("--cache", default=tempfile.gettempdir())
    parser.add_argument("--out", default=str(HERE / "results" / "ep_spike_noise.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("NEUROSIM_CACHE", tempfile.mkdtemp(prefix="ep-spike-noise-"))
    from neurosim import datasets as ds

    epochs = {"initial": 0, "epoch1": 1, "epoch10": 10}
    weights = {w: trained_weights(epochs[w], Path(args.cache)) for w in args.weights.split(",")}
    data = ds.load("digits", seed=1)
    x, labels = data.x_train[: args.examples], data.labels_train[: args.examples]
    windows = [int(v) for v in args.windows.split(",")]
    rows, start = [], time.time()
    for name in args.settings.split(","):
        setting = {**PRESET, **SETTINGS[name]}
        load = os.getloadavg()[0]
        t0 = time.time()
        rate = states("rate", setting, weights, args.examples, (1,))
        spiking = states("spiking", setting, weights, args.examples, (1, 2))
        for wname in weights:
            ref = updates(rate[(wname, 1)], x, setting, 1)
            for window in windows:
                if window > min(setting["free"], setting["nudged"]):
                    continue
                spk = [updates(spiking[(wname, s)], x, setting, window) for s in (1, 2)]
                row = {"setting": name, **setting, "weights": wname, "window": window,
                       **compare(spk, ref, labels)}  # fmt: skip
                rows.append(row)
                print(
                    f"{name:22s} {wname:8s} W={window:<3d} acc {row['acc']:.3f} "
                    f"(rate {row['acc_rate']:.3f}) "
                    + "  ".join(
                        f"{k}: cos {row[k]['cos']:+.2f} err {row[k]['err']:.2f} noise "
                        f"{row[k]['noise']:.2f} sum {row[k]['cos_sum']:+.2f}"
                        for k in ("W1", "W2")
                    ),
                    flush=True,
                )
        print(f"  ({time.time() - t0:.0f} s, load {load:.1f} -> {os.getloadavg()[0]:.1f})")
        # written after every setting, so that a stopped run keeps what it measured
        result = {"examples": args.examples, "rows": rows, "wall_seconds": time.time() - start}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(f"written to {args.out} ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

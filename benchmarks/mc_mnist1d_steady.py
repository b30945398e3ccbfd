"""Steady-state (two-pass) model of the microcircuit's supervised learning on MNIST-1D, for
exploring settings fast: per example the nudged steady state of Sacramento et al.'s two-pass
approximation with self-predicting lateral weights (W^IP = c W_2, W^PI = -B), and the weight
change eta * T_eff * e r^T the circuit's filtered rule integrates over one pattern's plastic window
(T_eff = pattern_ms - learning_lag_ms). Not the circuit: a fast stand-in whose ranking of settings
is checked against the circuit (README, MNIST-1D section)."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from neurosim import datasets as ds


def sig(u: np.ndarray) -> np.ndarray:
    """The logistic rate function of the mnist1d presets."""
    return 1.0 / (1.0 + np.exp(-u))


def run(
    seed: int, epochs: int, eta: tuple[float, float], decay: float, gain: float, t_eff: float,
    nudge: float, b_scale: float, w2_scale: float | None, tied: bool, n_train: int,
    g_A: float = 0.8, g_som: float = 0.8,
) -> dict:  # fmt: skip
    """Train 80-100-10 per example for ``epochs`` epochs (forward rates ``eta`` per ms, decaying
    by ``decay`` per epoch, as ``protocol.eta_forward``/``eta_decay``), initial weights
    U(-gain/sqrt(n_pre), +) (W2: ``w2_scale``/sqrt(100) when given), fixed top-down weights
    U(-b_scale, b_scale) or, with ``tied``, B = W2^T; test accuracy after each epoch (the first
    entry untrained) and training accuracy after each epoch."""
    data = ds.load("mnist1d", seed=seed, code="on-off")
    x, y, ut = data.x_train[:n_train], data.labels_train[:n_train], data.u_train[:n_train]
    xt, yt = data.x_test, data.labels_test
    rng = np.random.default_rng(seed)
    n0, n1, n2 = 80, 100, 10
    a1 = gain / np.sqrt(n0)
    a2 = (gain if w2_scale is None else w2_scale) / np.sqrt(n1)
    W1 = rng.uniform(-a1, a1, (n1, n0))
    W2 = rng.uniform(-a2, a2, (n2, n1))
    B = rng.uniform(-b_scale, b_scale, (n1, n2))
    g_lk, g_B, g_D = 0.1, 1.0, 1.0
    gh = g_B / (g_lk + g_B + g_A)
    go = g_B / (g_lk + g_B)
    k_out = g_lk + g_B + g_som * nudge
    k_int = g_lk + g_D + g_som
    k_hid = g_lk + g_B + g_A

    def predict(X: np.ndarray) -> np.ndarray:
        return (go * (sig(gh * (X @ W1.T)) @ W2.T)).argmax(1)

    hist, train_hist = [float((predict(xt) == yt).mean())], []
    for ep in range(epochs):
        e1s, e2s = eta[0] * t_eff * decay**ep, eta[1] * t_eff * decay**ep
        for i in rng.permutation(len(x)):
            r0 = x[i]
            vB1 = W1 @ r0
            u1f = gh * vB1
            r1 = sig(u1f)
            vB2 = W2 @ r1
            u2f = go * vB2
            u2 = (g_B * vB2 + g_som * nudge * ut[i]) / k_out
            vI = (W2 @ r1) * (g_B * (g_lk + g_D) / (g_D * (g_lk + g_B)))
            uI = (g_D * vI + g_som * u2) / k_int
            fb = W2.T if tied else B
            vA = fb @ (sig(u2) - sig(uI))
            u1 = (g_B * vB1 + g_A * vA) / k_hid
            e1 = sig(u1) - r1
            e2 = sig(u2) - sig(u2f)
            W2 += e2s * np.outer(e2, r1)
            W1 += e1s * np.outer(e1, r0)
        hist.append(float((predict(xt) == yt).mean()))
        train_hist.append(float((predict(x) == y).mean()))
    return {"test": hist, "train": train_hist}


def main() -> None:
    """One setting from the command line; prints the curves as JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--eta", type=float, nargs=2, default=[0.0625, 0.0125])
    p.add_argument("--decay", type=float, default=0.9)
    p.add_argument("--gain", type=float, default=16.0)
    p.add_argument("--t-eff", type=float, default=16.0)
    p.add_argument("--nudge", type=float, default=1.0)
    p.add_argument("--b-scale", type=float, default=2.0)
    p.add_argument("--w2-scale", type=float, default=None)
    p.add_argument("--tied", action="store_true")
    p.add_argument("--n-train", type=int, default=4000)
    a = p.parse_args()
    t = time.time()
    out = run(a.seed, a.epochs, tuple(a.eta), a.decay, a.gain, a.t_eff, a.nudge, a.b_scale,
              a.w2_scale, a.tied, a.n_train)  # fmt: skip
    out["wall_s"] = round(time.time() - t, 1)
    out["args"] = vars(a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

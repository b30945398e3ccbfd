"""Measures of a trained :mod:`models.icf` model over all 121 states of the grid world."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from models.icf.model import ContinuousICF, DiscreteICF, ICFSettings
from models.icf.objective import (
    SEL_EPS,
    WorldTensors,
    encode_with_next,
    reconstruction_loss,
    sample_factors,
    selectivity,
)
from neurosim import grid_world as gw


def linear_regression(features: np.ndarray, positions: np.ndarray) -> dict[str, Any]:
    """Per feature: R² of a least-squares line on x alone and on y alone, the best coordinate and
    its R², and the joint fit f_k ≈ b + w_x x + w_y y (slopes, R²). ``features`` (N, n)."""
    f = np.asarray(features, dtype=np.float64)
    p = np.asarray(positions, dtype=np.float64)

    def r2(design: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        X = np.column_stack([np.ones(len(y)), design])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        ss_res = float(np.sum((y - X @ coef) ** 2))
        return (1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0), coef

    out: dict[str, Any] = {"r2_x": [], "r2_y": [], "r2_best": [], "best_coordinate": [],
                           "r2_joint": [], "slopes": []}  # fmt: skip
    for k in range(f.shape[1]):
        rx, _ = r2(p[:, :1], f[:, k])
        ry, _ = r2(p[:, 1:], f[:, k])
        rj, coef = r2(p, f[:, k])
        out["r2_x"].append(rx)
        out["r2_y"].append(ry)
        out["r2_best"].append(max(rx, ry))
        out["best_coordinate"].append("x" if rx >= ry else "y")
        out["r2_joint"].append(rj)
        out["slopes"].append([float(coef[1]), float(coef[2])])
    return out


def matched_diagonal_mass(matrix: np.ndarray) -> tuple[float, list[int]]:
    """The best assignment of rows (features) to distinct columns (actions), by brute force over
    all injective assignments, and its mean matched entry. For a row-stochastic 4×4 policy matrix
    that is the share of policy mass on the matched actions: 1 for a permutation matrix, 0.25 for
    uniform policies. Returns (mass, the column matched to each row; −1 for an unmatched row when
    there are more rows than columns)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"need a non-empty 2-D matrix, got shape {m.shape}.")
    r, c = m.shape
    best, best_cols = -np.inf, [-1] * r
    if r <= c:
        for cols in itertools.permutations(range(c), r):
            v = m[np.arange(r), cols].mean()
            if v > best:
                best, best_cols = v, list(cols)
    else:
        for rows in itertools.permutations(range(r), c):
            v = m[rows, np.arange(c)].mean()
            if v > best:
                best, best_cols = v, [-1] * r
                for col, row in enumerate(rows):
                    best_cols[row] = col
    return float(best), best_cols


def r2_score(target: np.ndarray, prediction: np.ndarray) -> float:
    """1 − SS_res/SS_tot, pooled over every component (each centred on its own mean)."""
    t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    p = np.asarray(prediction, dtype=np.float64).reshape(len(target), -1)
    ss_tot = float(np.sum((t - t.mean(axis=0)) ** 2))
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot if ss_tot > 0 else float("nan")


#: a feature whose standard deviation over the 121 states is below this is "inactive" (constant
#: up to noise; tanh features that code a coordinate spread over ~0.5)
ACTIVE_STD = 0.01


def decode_positions(features: np.ndarray, positions: np.ndarray) -> list[float]:
    """R² of x and of y, each fitted linearly (with intercept) from all features: how much of the
    position the representation holds, whichever features hold it."""
    f = np.asarray(features, dtype=np.float64)
    X = np.column_stack([np.ones(len(f)), f])
    out = []
    for c in range(2):
        y = np.asarray(positions, dtype=np.float64)[:, c]
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        out.append(1.0 - float(np.sum((y - X @ coef) ** 2)) / float(np.sum((y - y.mean()) ** 2)))
    return out


@torch.no_grad()
def factor_action_analysis(
    model: ContinuousICF, z: Tensor, h: Tensor, h_next: Tensor, moved: Tensor, phi: Tensor
) -> dict[str, Any]:
    """How the factor space splits among the actions, for a continuous model on all states.

    For each φ of ``phi`` (M, n): its preferred action, argmax_a E_s π(a|s, φ); ``phi_action_share``
    [a] is the share of the φ preferring a. ``effect_directions`` [a] is the action's mean unit
    change of the features, mean over states where it moves of Δ_a/‖Δ_a‖₂, renormalised.
    ``phi_cluster_alignment`` [a, b] is the cosine between the mean φ preferring a and the effect
    direction of b (a diagonal near 1: each φ cluster lies along the change its action causes);
    ``embedding_alignment`` [a, b] the same for the mean action embedding E_s e_a(s).
    ``policy_confidence`` is E_{s,φ} max_a π(a|s, φ) (0.25 for a uniform policy) and
    ``policy_picks_best`` the share of (s, φ) where π's most likely action is the moving action
    with the largest A(φ, Δ_a(s)) (the selectivity's choice; ties count as picked)."""
    pol = model.policies(z, phi)  # (N, M, A)
    mean_pol = pol.mean(0)  # (M, A)
    pref = mean_pol.argmax(-1)
    A = gw.N_ACTIONS
    d = h_next - h[:, None, :]  # (N, A, n)
    unit = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w = moved.to(d.dtype)[..., None]
    effect = (unit * w).sum(0) / w.sum(0).clamp_min(1.0)
    effect = effect / effect.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    clusters = torch.full((A, phi.shape[1]), float("nan"))
    for a in range(A):
        if (pref == a).any():
            c = phi[pref == a].mean(0)
            clusters[a] = c / c.norm().clamp_min(1e-12)
    emb = model.action_embeddings(z).mean(0)
    emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    along = torch.einsum("ban,mn->bma", d, phi) / (d.abs().sum(-1)[:, None, :] + SEL_EPS)
    along = along.masked_fill(~moved[:, None, :], float("-inf"))
    best = along.max(-1, keepdim=True).values
    picked = pol.argmax(-1, keepdim=True)
    picks_best = torch.gather(along, -1, picked) >= best - 1e-6
    return {
        "phi_preferred_action": pref.numpy(),
        "phi_action_share": np.bincount(pref.numpy(), minlength=A) / len(pref),
        "effect_directions": effect.numpy(),
        "phi_cluster_mean": clusters.numpy(),
        "phi_cluster_alignment": (clusters @ effect.T).numpy(),
        "embedding_alignment": (emb @ effect.T).numpy(),
        "policy_confidence": float(pol.max(-1).values.mean()),
        "policy_picks_best": float(picks_best.float().mean()),
    }


@torch.no_grad()
def evaluate(
    model: DiscreteICF | ContinuousICF, settings: ICFSettings, n_phi_eval: int = 64
) -> dict[str, Any]:
    """Every measure of a trained model over all 121 states (:mod:`models.icf`). Arrays come back
    as numpy; scalars as floats."""
    model.eval()
    world = WorldTensors()
    _, test_idx = world.split(settings.holdout, settings.seed)
    idx = torch.arange(len(world.positions))
    s, h, z, h_next = encode_with_next(model, world, idx)
    recon = model.decoder(h)
    out: dict[str, Any] = {
        "features": h.numpy(),
        "positions": world.positions,
        "reconstruction_mse": float((s - recon).pow(2).mean()),
        "reconstruction_loss": float(reconstruction_loss(s, recon)),
    }
    reg = linear_regression(h.numpy(), world.positions)
    out["regression"] = reg
    std = h.numpy().std(0)
    out["feature_std"] = std
    out["active_features"] = [int(k) for k in np.flatnonzero(std >= ACTIVE_STD)]
    out["position_r2"] = decode_positions(h.numpy(), world.positions)
    sel = selectivity(h, h_next, settings.numerator, log=False)  # (N, A, n)
    out["selectivity_matrix"] = sel.mean(0).T.numpy()  # (n, A)
    out["selectivity_signed_matrix"] = selectivity(h, h_next, "signed").mean(0).T.numpy()
    if isinstance(model, DiscreteICF):
        pi = model.policies(z)  # (N, n, A)
    else:  # the basis directions as factors: π(a|s, e_k)
        pi = model.policies(z, torch.eye(model.n_features))
        gen = torch.Generator().manual_seed(settings.seed + 15485863)
        phi_eval = sample_factors(model.n_features, 256, gen)
        out["factors"] = factor_action_analysis(model, z, h, h_next, world.moved, phi_eval)
    out["policy_matrix"] = pi.mean(0).numpy()
    out["policies"] = pi.numpy()
    mass, matching = matched_diagonal_mass(out["policy_matrix"])
    out["matched_diagonal_mass"], out["matching"] = mass, matching
    # heads on held-out positions
    t = torch.from_numpy(test_idx)
    ht, hn = h[t], h_next[t]
    B, A, n = hn.shape
    moved = world.moved[t]
    hh = ht[:, None, :].expand(B, A, n)
    actions = torch.arange(A).expand(B, A)
    logits = model.heads.action_logits(hh[moved], hn[moved])
    out["inverse_accuracy"] = float((logits.argmax(-1) == actions[moved]).float().mean())
    out["inverse_pairs"] = int(moved.sum())
    out["inverse_blocked_pairs_left_out"] = int((~moved).sum())
    if isinstance(model, DiscreteICF):
        pred = model.heads.predict_next(hh, F.one_hot(actions, A).to(h.dtype))
        target = hn
    else:
        gen = torch.Generator().manual_seed(settings.seed + 104729)
        phi = sample_factors(n, n_phi_eval, gen)
        pol = model.policies(z[t], phi)
        target = torch.einsum("bma,ban->bmn", pol, hn)
        pred = model.heads.predict_next(ht[:, None].expand(B, n_phi_eval, n),
                                        phi[None].expand(B, n_phi_eval, n))  # fmt: skip
        hh = ht[:, None].expand(B, n_phi_eval, n)
    out["transition_r2"] = r2_score((target - hh).reshape(-1, n), (pred - hh).reshape(-1, n))
    out["transition_pairs"] = int(target.reshape(-1, n).shape[0])
    out["test_positions"] = int(len(test_idx))
    return out

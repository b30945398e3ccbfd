"""Plasticity of the microcircuit twin in rate form: the induction terms of the forward, IP and
PI rules (no low-pass filter, mean over the batch) and all three together
(:mod:`models.dendritic_microcircuit`).

Every rule reads the rates of the state's activities: with prospective neurons the prospective
rates φ(ŭ), pre- and postsynaptically (Latent Equilibrium's rules act on prospective quantities,
so that the error they see is that of the settled state, not of a settling transient)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from models.dendritic_microcircuit.network import (
    MicrocircuitParameters,
    MicrocircuitState,
    Weights,
    _batch,
    _drives,
    _kind,
    basal_gain,
    check_weights,
    interneuron_gain,
    rate_function,
)

#: the postsynaptic factor and presynaptic rates of one projection's rule, per example
Factors = tuple[torch.Tensor, torch.Tensor]


def induction_factors(
    params: MicrocircuitParameters, w: Weights, drives: tuple, topdown: str = "fixed"
) -> dict[str, Factors]:
    """Every plastic projection's rule as (post, pre), each example's postsynaptic factor
    (batch, n_post) and presynaptic rates (batch, n_pre), its induction term post ⊗ pre (the
    circuit's rules, ``circuits/microcircuit.py``): W_k: φ(u_k) − φ(v̂_B,k) and r_{k−1}; W^IP_k:
    φ(u^I_k) − φ(v̂^I_k) and r_k; W^PI_k: −v_A,k and r^I_k; with ``topdown="learned"`` also B_k:
    φ(u_k) − φ(B_k r_{k+1}) and r_{k+1}. The one definition the batch-mean updates here and the
    learning twin's filtered per-example inductions (:mod:`.learning`) both take."""
    phi = rate_function(params)
    r, rI, vB, vA, vI = drives
    top = len(vB)
    out: dict[str, Factors] = {}
    for k in range(1, top + 1):
        out[f"W{k}"] = (r[k] - phi(basal_gain(params, k == top) * vB[k - 1]), r[k - 1])
    for k in range(1, top):
        out[f"WIP{k}"] = (rI[k - 1] - phi(interneuron_gain(params) * vI[k - 1]), r[k])
        out[f"WPI{k}"] = (-vA[k - 1], rI[k - 1])
        if topdown == "learned":
            out[f"B{k}"] = (r[k] - phi(r[k + 1] @ w[f"B{k}"].T), r[k + 1])
    return out


def _eta(eta: float | Mapping[str, float], name: str) -> float:
    if isinstance(eta, Mapping):
        return float(eta.get(name, eta.get(_kind(name), 0.0)))
    return float(eta)


def _batch_means(
    factors: Mapping[str, Factors], kind: str, eta: float | Mapping[str, float]
) -> Weights:
    """η · post ⊗ pre, averaged over the batch, for the projections of one ``kind``."""
    return {
        name: _eta(eta, name) * post.T @ pre / pre.shape[0]
        for name, (post, pre) in factors.items()
        if _kind(name) == kind
    }


def _factors(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    topdown: str = "fixed",
) -> dict[str, Factors]:
    w = check_weights(weights)
    return induction_factors(params, w, _drives(params, w, state, _batch(r0)), topdown)


def forward_update(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: float | Mapping[str, float] = 1.0,
) -> Weights:
    """dW_k = η (φ(u_k) − φ(v̂_B,k)) r_{k−1}ᵀ for k = 1..N, averaged over the batch.

    v̂_B,k = g_B/(g_lk + g_B + g_A) v_B,k (g_B/(g_lk + g_B) at the output) with v_B,k from
    ``state``. ``eta``: one number, or a mapping by name (``"W2"``) or kind (``"W"``); missing
    names get 0.
    """
    return _batch_means(_factors(params, weights, state, r0), "W", eta)


def ip_update(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: float | Mapping[str, float] = 1.0,
) -> Weights:
    """dW^IP_k = η (φ(u^I_k) − φ(v̂^I_k)) r_kᵀ, v̂^I = g_D/(g_lk + g_D) v^I; batch mean."""
    return _batch_means(_factors(params, weights, state, r0), "WIP", eta)


def pi_update(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: float | Mapping[str, float] = 1.0,
) -> Weights:
    """dW^PI_k = η (0 − v_A,k) r^I_kᵀ (silences the apical dendrite); batch mean."""
    return _batch_means(_factors(params, weights, state, r0), "WPI", eta)


def top_down_update(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: float | Mapping[str, float] = 1.0,
) -> Weights:
    """dB_k = η (φ(u_k) − φ(B_k r_{k+1})) r_{k+1}ᵀ, batch mean: the circuit's learned top-down
    rule (``topdown="learned"``), which makes B_k r_{k+1} predict layer k's rates."""
    return _batch_means(_factors(params, weights, state, r0, "learned"), "B", eta)


def plasticity(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: Mapping[str, float],
) -> Weights:
    """The forward, IP and PI induction terms together, η by name or kind (``"W"``, ``"WIP"``,
    ``"WPI"``; missing: 0)."""
    factors = _factors(params, weights, state, r0)  # rates and dendrites once for all three
    return {
        k: v for kind in ("W", "WIP", "WPI") for k, v in _batch_means(factors, kind, eta).items()
    }

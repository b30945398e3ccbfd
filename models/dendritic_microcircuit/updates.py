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


def _eta(eta: float | Mapping[str, float], name: str) -> float:
    if isinstance(eta, Mapping):
        return float(eta.get(name, eta.get(_kind(name), 0.0)))
    return float(eta)


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
    w = check_weights(weights)
    return _forward_terms(params, state, _drives(params, w, state, _batch(r0)), eta)


def _forward_terms(params, state, drives, eta) -> Weights:  # noqa: ANN001
    phi = rate_function(params)
    r, _, vB, _, _ = drives
    top = len(state.u)
    batch = r[0].shape[0]
    out: Weights = {}
    for k in range(1, top + 1):
        post = r[k] - phi(basal_gain(params, k == top) * vB[k - 1])
        out[f"W{k}"] = _eta(eta, f"W{k}") * post.T @ r[k - 1] / batch
    return out


def ip_update(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: float | Mapping[str, float] = 1.0,
) -> Weights:
    """dW^IP_k = η (φ(u^I_k) − φ(v̂^I_k)) r_kᵀ, v̂^I = g_D/(g_lk + g_D) v^I; batch mean."""
    w = check_weights(weights)
    return _ip_terms(params, state, _drives(params, w, state, _batch(r0)), eta)


def _ip_terms(params, state, drives, eta) -> Weights:  # noqa: ANN001
    phi = rate_function(params)
    r, rI, _, _, vI = drives
    batch = r[0].shape[0]
    out: Weights = {}
    for k in range(1, len(state.u)):
        post = rI[k - 1] - phi(interneuron_gain(params) * vI[k - 1])
        out[f"WIP{k}"] = _eta(eta, f"WIP{k}") * post.T @ r[k] / batch
    return out


def pi_update(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: float | Mapping[str, float] = 1.0,
) -> Weights:
    """dW^PI_k = η (0 − v_A,k) r^I_kᵀ (silences the apical dendrite); batch mean."""
    w = check_weights(weights)
    return _pi_terms(state, _drives(params, w, state, _batch(r0)), eta)


def _pi_terms(state, drives, eta) -> Weights:  # noqa: ANN001
    r, rI, _, vA, _ = drives
    batch = r[0].shape[0]
    return {
        f"WPI{k}": _eta(eta, f"WPI{k}") * (-vA[k - 1]).T @ rI[k - 1] / batch
        for k in range(1, len(state.u))
    }


def top_down_update(*args: object, **kwargs: object) -> Weights:
    """Not implemented: DESIGN.md §4.2 writes the optional top-down rule as
    η (φ(u_k) − φ(B u-hat)) r_{k+1}ᵀ, which leaves open what B multiplies (the rates of layer k+1?)
    and whether a dendritic-attenuation factor applies; fixed or tied top-down weights cover the
    experiments of issue 3."""
    raise NotImplementedError(
        "top-down plasticity is not implemented in the torch twin: DESIGN.md §4.2 leaves the "
        "prediction term 'φ(B u-hat)' ambiguous; use fixed random (feedback alignment) or tied "
        "(tied_feedback) top-down weights."
    )


def plasticity(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    eta: Mapping[str, float],
) -> Weights:
    """The forward, IP and PI induction terms together, η by name or kind (``"W"``, ``"WIP"``,
    ``"WPI"``; missing: 0)."""
    w = check_weights(weights)
    drives = _drives(params, w, state, _batch(r0))  # rates and dendrites once for all three
    out = _forward_terms(params, state, drives, eta)
    out.update(_ip_terms(params, state, drives, eta))
    out.update(_pi_terms(state, drives, eta))
    return out

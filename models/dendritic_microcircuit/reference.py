"""Backprop reference of the microcircuit's architecture: its self-predicting forward pass as a
feed-forward network, the output losses and the error signals and gradients through autograd
(:mod:`models.dendritic_microcircuit`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch

from models.dendritic_microcircuit.network import (
    DTYPE,
    MicrocircuitParameters,
    Weights,
    _batch,
    basal_gain,
    layer_sizes,
    rate_derivative,
    rate_function,
)

LOSSES = ("circuit", "potential", "rate")


def feedforward(
    params: MicrocircuitParameters, weights: Mapping[str, torch.Tensor], r0: object
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The circuit's self-predicting forward pass as a feed-forward network:
    û_k = v̂_B,k = gain_k W_k r_{k−1} (gain from :func:`basal_gain`), r_k = φ(û_k).

    Returns ``(u, r)`` with ``u[k-1]`` = û_k (k = 1..N) and ``r[k]`` = r_k (k = 0..N). Weights may
    require grad (no check or copy is made of tensors that already are float64).
    """
    phi = rate_function(params)
    top = len(layer_sizes(weights)) - 1
    r = [_batch(r0)]
    u = []
    for k in range(1, top + 1):
        u.append(basal_gain(params, k == top) * (r[-1] @ weights[f"W{k}"].T))
        r.append(phi(u[-1]))
    return u, r


def output_loss(
    params: MicrocircuitParameters,
    u_out: torch.Tensor,
    u_target: torch.Tensor | None = None,
    r_target: torch.Tensor | None = None,
    loss: str = "circuit",
) -> torch.Tensor:
    """The batch mean of a per-sample output loss of the output potential û_N.

    * ``"potential"``: ½‖û_N − u_target‖²;
    * ``"rate"``: ½‖φ(û_N) − r_target‖² (r_target = φ(u_target) if not given);
    * ``"circuit"``: the loss whose gradient the circuit follows exactly as nudging → 0, with
      ∂L/∂û_N = φ'(û_N)(û_N − u_target): the Bregman divergence of Φ = ∫φ,
      Φ(u_t) − Φ(û) − φ(û)(u_t − û). Its value here is the local quadratic form
      ½ Σ φ'(û_N)(û_N − u_target)² with φ' held constant (no gradient through it), which has the
      exact gradient and agrees with the divergence to second order.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}.")
    if loss == "rate":
        if r_target is None:
            if u_target is None:
                raise ValueError("the rate loss needs r_target or u_target.")
            r_target = rate_function(params)(_batch(u_target))
        per = 0.5 * ((rate_function(params)(u_out) - _batch(r_target)) ** 2).sum(-1)
    else:
        if u_target is None:
            raise ValueError(f"the {loss} loss needs u_target.")
        diff = u_out - _batch(u_target)
        if loss == "potential":
            per = 0.5 * (diff**2).sum(-1)
        else:
            per = 0.5 * (rate_derivative(params)(u_out).detach() * diff**2).sum(-1)
    return per.mean()


def _leaf(x: object) -> torch.Tensor:
    return torch.as_tensor(x, dtype=DTYPE).detach().clone().requires_grad_(True)


class BackpropReference(NamedTuple):
    """Result of :func:`backprop_reference`.

    ``u`` (û_1..û_N), ``r`` (r_0..r_N) of the feed-forward pass; ``loss`` (batch mean);
    ``errors``: ``e{k}`` = −∂L/∂r_k (k = 1..N−1; what the apical potential v_A,k carries, up to a
    positive factor, when B_k = W_{k+1}ᵀ) and ``delta{k}`` = −∂L/∂û_k (k = 1..N), all per sample
    (scaled by the batch size, so they do not depend on it); ``grads``: ``W{k}`` = ∂L/∂W_k.
    """

    u: tuple[torch.Tensor, ...]
    r: tuple[torch.Tensor, ...]
    loss: torch.Tensor
    errors: dict[str, torch.Tensor]
    grads: Weights


def backprop_reference(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    r0: object,
    u_target: object | None = None,
    r_target: object | None = None,
    loss: str = "circuit",
) -> BackpropReference:
    """Backprop through the feed-forward network of :func:`feedforward` (torch.autograd).

    The loss is :func:`output_loss` (default ``"circuit"``: the one the circuit's weak-nudging limit
    follows exactly; ``"rate"`` and ``"potential"`` differ from it by per-unit factors φ'(û_N)).
    Only the forward weights W_k enter; B, W^PI, W^IP play no part.
    """
    top = len(layer_sizes(weights)) - 1
    leaves = {f"W{k}": _leaf(weights[f"W{k}"]) for k in range(1, top + 1)}
    with torch.enable_grad():
        u, r = feedforward(params, leaves, r0)
        ut = None if u_target is None else _batch(u_target)
        rt = None if r_target is None else _batch(r_target)
        value = output_loss(params, u[-1], ut, rt, loss)
        hidden = r[1:top]
        names = list(leaves)
        grads = torch.autograd.grad(value, [leaves[n] for n in names] + u + hidden)
    batch = r[0].shape[0]
    g_w = dict(zip(names, grads[:top], strict=True))
    g_u = grads[top : 2 * top]
    g_r = grads[2 * top :]
    errors = {f"delta{k}": -batch * g for k, g in enumerate(g_u, start=1)}
    errors.update({f"e{k}": -batch * g for k, g in enumerate(g_r, start=1)})
    return BackpropReference(
        tuple(x.detach() for x in u),
        tuple(x.detach() for x in r),
        value.detach(),
        errors,
        g_w,
    )

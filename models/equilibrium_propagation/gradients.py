"""The references of the gradient check: the loss gradient at the free fixed point by implicit
differentiation, the same by backprop through time, and how well an EP update agrees with it
(:mod:`models.equilibrium_propagation`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch

from models.equilibrium_propagation.dynamics import (
    _cost,
    _linear_system,
    _smooth_hessian,
    _split,
    _step,
    fixed_point,
)
from models.equilibrium_propagation.network import (
    DTYPE,
    EPParameters,
    HopfieldState,
    Weights,
    _setup,
    rho,
    zero_state,
)

# --------------------------------------------------------------------------------------------
# the loss gradient at the free fixed point
# --------------------------------------------------------------------------------------------


class LossGradient(NamedTuple):
    """Result of :func:`loss_gradient` / :func:`bptt_gradient`: ``grads`` (``W{k}``, ``b{k}``) of
    the batch-mean loss L = C(s⁰), ``loss`` (L), the free state, and for the implicit gradient the
    adjoint ``adjoint`` (λ per layer, 0 on clipped units), ``inside`` (1 for the units the
    gradient flows through, else 0) and ``margin`` (batch,): per sample, the smallest distance of
    any unit's drive from a bound, min |u|, |u − 1| with u = s − ∂F/∂s. L is smooth only
    while no unit crosses a bound: a finite-β EP update tracks the gradient only if the nudge moves
    no drive by more than the margin."""

    grads: Weights
    loss: float
    free: HopfieldState
    adjoint: HopfieldState | None = None
    inside: HopfieldState | None = None
    margin: torch.Tensor | None = None


def loss_gradient(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object,
    free: HopfieldState | None = None,
) -> LossGradient:
    """∂L/∂θ of L = mean_batch C(s⁰(θ)) by implicit differentiation at the free fixed point of
    the projected dynamics (:func:`fixed_point`).

    At the fixed point the units inside the box satisfy ∂E/∂s_I = H_II s_I − c_I = 0; clipped
    units stay at their bound under small changes of θ (zero sensitivity). The adjoint
    λ = H_II⁻¹ ∂C/∂s_I (H_II = I − A_II, the Hessian of E restricted to the inside units, per
    sample) gives ∂L/∂W_k = mean(λ_k ρ_{k−1}ᵀ + ρ_k λ_{k−1}ᵀ) (λ_0 = 0) and ∂L/∂b_k = mean(λ_k).
    This is what recurrent backprop, or BPTT through a long enough relaxation, computes
    (:func:`bptt_gradient`). ``free``: the free fixed point if already known (default: solved
    here from 0).

    Smooth sigmoid: every unit is inside, H the full Hessian (:func:`hessian`), λ = H⁻¹ ∂C/∂s and
    ∂L/∂W_k = mean((ρ'_k⊙λ_k) ρ_{k−1}ᵀ + ρ_k (ρ'_{k−1}⊙λ_{k−1})ᵀ), ∂L/∂b_k = mean(ρ'_k⊙λ_k);
    ``inside`` is all ones and ``margin`` None (there are no bounds to cross).
    """
    w, xt, dt, _, st = _setup(params, weights, x, d, 0.0, free)
    if dt is None:
        raise ValueError("loss_gradient needs a target d.")
    if params.smooth:
        return _smooth_loss_gradient(params, w, xt, dt, st)
    s0 = fixed_point(params, w, xt, state=st).state
    sizes = params.sizes
    z = torch.cat(list(s0.s), dim=1)
    h, c = _linear_system(w, sizes, xt, None, 0.0)
    u = z - (z @ h.T - c)
    inside = (u > 0.0) & (u < 1.0)
    dim = z.shape[1]
    dc = torch.zeros_like(z)
    dc[:, dim - sizes[-1] :] = rho(s0.s[-1]) - dt
    dc = torch.where(inside, dc, torch.zeros_like(dc))
    mask = inside.to(DTYPE)
    eye = torch.eye(dim, dtype=DTYPE)
    restricted = mask.unsqueeze(-1) * h.unsqueeze(0) * mask.unsqueeze(-2)
    restricted = restricted + torch.diag_embed(1.0 - mask) * eye
    lam = torch.linalg.solve(restricted, dc.unsqueeze(-1)).squeeze(-1)
    lam_layers = _split(lam, sizes)
    batch = xt.shape[0]
    r = [rho(xt)] + [rho(v) for v in s0.s]
    lam_all = [torch.zeros_like(r[0])] + lam_layers
    grads: Weights = {}
    for k in range(1, len(sizes)):
        grads[f"W{k}"] = (lam_all[k].T @ r[k - 1] + r[k].T @ lam_all[k - 1]) / batch
    for k in range(1, len(sizes)):
        grads[f"b{k}"] = lam_all[k].mean(0)
    loss = float(_cost(s0.s[-1], dt).mean())
    inside_layers = HopfieldState(tuple(_split(mask, sizes)))
    margin = torch.minimum(u.abs(), (u - 1.0).abs()).min(dim=1).values
    return LossGradient(grads, loss, s0, HopfieldState(tuple(lam_layers)), inside_layers, margin)


def _smooth_loss_gradient(params, w, xt, dt, st) -> LossGradient:
    """:func:`loss_gradient` for the smooth sigmoid (its docstring)."""
    rate, sizes = params.rate, params.sizes
    s0 = fixed_point(params, w, xt, state=st).state
    h = _smooth_hessian(w, sizes, list(s0.s), xt, None, 0.0, rate)
    dc = [torch.zeros_like(v) for v in s0.s]
    dc[-1] = rate.derivative(s0.s[-1]) * (rate.rho(s0.s[-1]) - dt)
    lam = torch.linalg.solve(h, torch.cat(dc, dim=1).unsqueeze(-1)).squeeze(-1)
    lam_layers = _split(lam, sizes)
    r = [rho(xt)] + [rate.rho(v) for v in s0.s]
    p = [torch.zeros_like(r[0])] + [
        rate.derivative(v) * lk for v, lk in zip(s0.s, lam_layers, strict=True)
    ]
    batch = xt.shape[0]
    grads: Weights = {}
    for k in range(1, len(sizes)):
        grads[f"W{k}"] = (p[k].T @ r[k - 1] + r[k].T @ p[k - 1]) / batch
    for k in range(1, len(sizes)):
        grads[f"b{k}"] = p[k].mean(0)
    loss = float(_cost(s0.s[-1], dt, rate).mean())
    inside = HopfieldState(tuple(torch.ones_like(v) for v in s0.s))
    return LossGradient(grads, loss, s0, HopfieldState(tuple(lam_layers)), inside, None)


def bptt_gradient(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object,
    steps: int = 500,
    state: HopfieldState | None = None,
) -> LossGradient:
    """∂L/∂θ by backprop through time: ``steps`` free-phase steps of the projected dynamics (step
    ``params.dt``, whatever ``params.projected`` says, like :func:`loss_gradient`; plain Euler for
    the smooth sigmoid) from ``state``
    (0 by default) under torch.autograd, L = mean_batch C at the last state. Tends to
    :func:`loss_gradient` as the relaxation reaches the fixed point; a cross-check (memory grows
    with ``steps``)."""
    w, xt, dt, _, st = _setup(params, weights, x, d, 0.0, state)
    if dt is None:
        raise ValueError("bptt_gradient needs a target d.")
    leaves = {name: v.detach().clone().requires_grad_(True) for name, v in w.items()}
    s = list(st.s) if st is not None else list(zero_state(params.sizes, xt.shape[0]).s)
    with torch.enable_grad():
        for _ in range(int(steps)):
            s = _step(leaves, s, xt, None, 0.0, params.dt, not params.smooth, params.rate)
        loss = _cost(s[-1], dt, params.rate).mean()
        names = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[n] for n in names])
    final = HopfieldState(tuple(v.detach() for v in s))
    return LossGradient(dict(zip(names, grads, strict=True)), float(loss.detach()), final)


class Agreement(NamedTuple):
    """Agreement of an update with −gradient: cosine, relative error ‖u + g‖ / ‖g‖, and the share
    of entries whose signs agree (entries where both are 0 count as agreeing)."""

    cosine: float
    relative_error: float
    sign_agreement: float


def gradient_agreement(
    update: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]
) -> dict[str, Agreement]:
    """Per parameter (``W{k}``, ``b{k}``), how well an EP ``update`` matches −``grads``."""
    out = {}
    for name, g in grads.items():
        if name not in update:
            raise ValueError(f"update lacks {name}.")
        u = torch.as_tensor(update[name], dtype=DTYPE).flatten()
        t = -torch.as_tensor(g, dtype=DTYPE).flatten()
        if u.shape != t.shape:
            raise ValueError(f"{name}: update has {u.numel()} entries, gradient {t.numel()}.")
        cos = float(u @ t / (u.norm() * t.norm()).clamp_min(1e-300))
        rel = float((u - t).norm() / t.norm().clamp_min(1e-300))
        signs = float((torch.sign(u) == torch.sign(t)).to(DTYPE).mean())
        out[name] = Agreement(cos, rel, signs)
    return out

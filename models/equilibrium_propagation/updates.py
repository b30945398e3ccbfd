"""The Equilibrium Propagation updates of the twin: two-phase and symmetric from the phases' end
points, the continual ("error in ds/dt") update integrated over the nudged phase, and one
training step (:mod:`models.equilibrium_propagation`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from models.equilibrium_propagation.dynamics import (
    _form,
    _gradient,
    _residual,
    _step,
    fixed_point,
    relax,
)
from models.equilibrium_propagation.network import (
    HARD_SIGMOID,
    EPParameters,
    HopfieldState,
    RateFunction,
    Weights,
    _setup,
    check_weights,
    rho,
)

VARIANTS = ("two-phase", "symmetric")


# --------------------------------------------------------------------------------------------
# Equilibrium Propagation updates
# --------------------------------------------------------------------------------------------


def _correlations(
    x: torch.Tensor, s: Sequence[torch.Tensor], rate: RateFunction = HARD_SIGMOID
) -> Weights:
    """Batch means of ρ_k ρ_{k−1}ᵀ (``W{k}``) and ρ_k (``b{k}``): −∂F/∂θ at state s."""
    r = [rho(x)] + [rate.rho(v) for v in s]
    batch = x.shape[0]
    out: Weights = {}
    for k in range(1, len(r)):
        out[f"W{k}"] = r[k].T @ r[k - 1] / batch
    for k in range(1, len(r)):
        out[f"b{k}"] = r[k].mean(0)
    return out


class EPUpdate(NamedTuple):
    """Result of :func:`ep_update`: ``update`` (``W{k}``, ``b{k}``; the EP estimate of −∂L/∂θ,
    batch mean, no learning rate), the free state, the nudged state (at +β) and, for the
    symmetric variant, the state at −β."""

    update: Weights
    free: HopfieldState
    nudged: HopfieldState
    nudged_minus: HopfieldState | None
    beta: float
    variant: str


def ep_update(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object,
    beta: float | None = None,
    variant: str = "two-phase",
    exact: bool = True,
    free: HopfieldState | None = None,
) -> EPUpdate:
    """The Equilibrium Propagation update of every weight and bias, batch mean.

    ``two-phase``: ΔW_k = (1/β)(ρ^β_k ρ^βᵀ_{k−1} − ρ⁰_k ρ⁰ᵀ_{k−1}), Δb_k = (1/β)(ρ^β_k − ρ⁰_k);
    ``symmetric``: phases at +β and −β, difference over 2β (no first-order bias in β,
    Laborieux et al. 2021). As β → 0 both tend to −∂L/∂θ, L = C at the free fixed point
    (:func:`loss_gradient`). ``beta`` defaults to ``params.beta`` and must not be 0.

    ``exact``: phases are fixed points (:func:`fixed_point`; the free one from ``state`` 0, the
    nudged ones from the free one) — the gradient check. Otherwise fixed-length relaxations as in
    training: ``params.free_steps`` from 0 (or from ``free`` if given) and ``params.nudged_steps``
    from the free state. ``free``, if given, is taken as the free state (exact: as the start of
    the free fixed-point search).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}.")
    beta = params.beta if beta is None else float(beta)
    if not math.isfinite(beta) or beta == 0.0:
        raise ValueError(f"beta must be finite and non-zero for an EP update, not {beta!r}.")
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, free)
    if exact:
        s0 = fixed_point(params, w, xt, state=st).state
    elif st is None:
        s0 = relax(params, w, xt, steps=params.free_steps).state
    else:
        s0 = st

    def nudge(b: float) -> HopfieldState:
        if exact:
            return fixed_point(params, w, xt, dt, b, state=s0).state
        return relax(params, w, xt, dt, b, state=s0, steps=params.nudged_steps).state

    plus = nudge(beta)
    if variant == "two-phase":
        minus, low, denom = None, s0, beta
    else:
        minus = nudge(-beta)
        low, denom = minus, 2.0 * beta
    hi_c, lo_c = _correlations(xt, plus.s, params.rate), _correlations(xt, low.s, params.rate)
    update = {name: (hi_c[name] - lo_c[name]) / denom for name in hi_c}
    return EPUpdate(update, s0, plus, minus, beta, variant)


class ContinualUpdate(NamedTuple):
    """Result of :func:`continual_update`.

    ``telescoped``: Σ_t (1/β)Δ(ρ_k ρ_{k−1}ᵀ) per step (exactly the end-point difference);
    ``product_rule``: Σ_t (dt/β)(ρ'_k ṡ_k ρ_{k−1}ᵀ + ρ_k (ρ'_{k−1} ṡ_{k−1})ᵀ) with every factor
    taken before the step (explicit Euler of dW/dt = (1/β) d(ρ_i ρ_j)/dt; what a simulator reading
    ds/dt each step accumulates); ``difference``: ‖product_rule − telescoped‖ / ‖telescoped‖ per
    parameter, O(dt); ``state``: the state at the end of the nudged phase and its ``residual``.
    """

    telescoped: Weights
    product_rule: Weights
    difference: dict[str, float]
    state: HopfieldState
    residual: float
    steps: int


def continual_update(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object,
    beta: float | None = None,
    duration: float | None = None,
    steps: int | None = None,
    free: HopfieldState | None = None,
) -> ContinualUpdate:
    """The EP update as the integral of dW/dt = (1/β) d(ρ_i ρ_j)/dt over the nudged phase — the
    error carried by the rate of change of activity (DESIGN.md §4.3) — with the weights held fixed.

    Starts from ``free`` (default: the free fixed point) and runs the nudged dynamics with
    ``params.dt`` for ``steps`` steps, or ``round(duration / dt)`` (default
    ``params.nudged_steps``), accumulating at every step both forms of :class:`ContinualUpdate`.
    ρ'ṡ is the actual rate of change of ρ(s): for the projected form (ρ(s) = s in the box) the
    projected step's (s_{t+1} − s_t)/dt, for the gated form ρ'(s_t)(−∂F/∂s). When the nudged
    phase has settled the telescoped sum equals the two-phase :func:`ep_update`; the product-rule
    sum misses Σ_t Δρ_i Δρ_j / β (relative size about β·dt): the product rule with each factor
    averaged over the step's two ends is exactly the telescoped sum.

    The gated form is accepted but starts from the projected fixed point, which is not its own:
    its units at 1 chatter (ρ'ṡ counts motion that ρ never makes), so it does not reproduce the
    two-phase update.
    """
    beta = params.beta if beta is None else float(beta)
    if not math.isfinite(beta) or beta == 0.0:
        raise ValueError(f"beta must be finite and non-zero for an EP update, not {beta!r}.")
    if steps is not None and duration is not None:
        raise ValueError("give steps or duration, not both.")
    if duration is not None:
        if not (math.isfinite(duration) and duration >= 0.0):
            raise ValueError(f"duration must be non-negative and finite, not {duration!r}.")
        steps = int(round(duration / params.dt))
    n_steps = params.nudged_steps if steps is None else int(steps)
    if n_steps < 0:
        raise ValueError(f"steps must be non-negative, not {steps!r}.")
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, free)
    s = list(st.s) if st is not None else list(fixed_point(params, w, xt).state.s)
    batch = xt.shape[0]
    projected, rate = _form(params)
    start = _correlations(xt, s, rate)
    tele = {name: torch.zeros_like(v) for name, v in start.items()}
    prod = {name: torch.zeros_like(v) for name, v in start.items()}
    r0 = rho(xt)
    top = len(s)
    for _ in range(n_steps):
        new = _step(w, s, xt, dt, beta, params.dt, projected, rate)
        r_old = [r0] + [rate.rho(v) for v in s]
        r_new = [r0] + [rate.rho(v) for v in new]
        if projected:
            speed = [torch.zeros_like(r0)] + [
                (b - a) / params.dt for a, b in zip(s, new, strict=True)
            ]
        else:
            g = _gradient(w, s, xt, dt, beta, False, rate)
            speed = [torch.zeros_like(r0)] + [
                -rate.derivative(v) * gv for v, gv in zip(s, g, strict=True)
            ]
        for k in range(1, top + 1):
            tele[f"W{k}"] += (r_new[k].T @ r_new[k - 1] - r_old[k].T @ r_old[k - 1]) / batch
            tele[f"b{k}"] += (r_new[k] - r_old[k]).mean(0)
            prod[f"W{k}"] += (
                params.dt * (speed[k].T @ r_old[k - 1] + r_old[k].T @ speed[k - 1]) / batch
            )
            prod[f"b{k}"] += params.dt * speed[k].mean(0)
        s = new
    tele = {name: v / beta for name, v in tele.items()}
    prod = {name: v / beta for name, v in prod.items()}
    diff = {
        name: float((prod[name] - tele[name]).norm() / tele[name].norm().clamp_min(1e-300))
        for name in tele
    }
    res = _residual(w, s, xt, dt, beta, projected, rate)
    return ContinualUpdate(tele, prod, diff, HopfieldState(tuple(s)), res, n_steps)


def train_batch(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object,
    lr: float | Sequence[float],
    variant: str = "two-phase",
    exact: bool = False,
    free: HopfieldState | None = None,
) -> tuple[Weights, EPUpdate]:
    """One EP training step: θ ← θ + lr_k Δθ with Δθ from :func:`ep_update` (fixed-length phases
    by default, as the authors train). ``lr``: one rate, or one per layer k = 1..N (applied to
    ``W{k}`` and ``b{k}``; the paper uses 0.1, 0.05 for 784-500-10). Returns the new parameters
    and the update (its ``free`` state can be passed back as ``free`` to continue from it)."""
    rates = [float(lr)] * params.n_layers if isinstance(lr, int | float) else list(lr)
    if len(rates) != params.n_layers or not all(math.isfinite(v) for v in rates):
        raise ValueError(f"lr needs one finite rate or {params.n_layers} of them, got {lr!r}.")
    result = ep_update(params, weights, x, d, variant=variant, exact=exact, free=free)
    w = check_weights(weights, params.sizes)
    new = {}
    for name, value in w.items():
        new[name] = value + rates[int(name[1:]) - 1] * result.update[name]
    return new, result

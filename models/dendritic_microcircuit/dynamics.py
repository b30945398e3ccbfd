"""Dynamics of the microcircuit twin: du/dt, one Euler step, relaxation, the exact fixed point
(Euler, then Newton) and the paper's two-pass steady-state approximation
(:mod:`models.dendritic_microcircuit`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from models.dendritic_microcircuit.network import (
    DTYPE,
    MicrocircuitParameters,
    MicrocircuitState,
    _batch,
    _drives,
    _nudge,
    _target,
    basal_gain,
    check_weights,
    layer_sizes,
    rate_function,
    zero_state,
)

# --------------------------------------------------------------------------------------------
# dynamics, relaxation and the exact fixed point
# --------------------------------------------------------------------------------------------


def derivatives(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    u_target: object | None = None,
    nudge: float | torch.Tensor = 0.0,
) -> MicrocircuitState:
    """du/dt of every somatic potential (noise-free), as a :class:`MicrocircuitState`."""
    return _derivatives(params, check_weights(weights), state, _batch(r0), _target(u_target), nudge)


def _derivatives(params, w, state, r0, u_target, nudge) -> MicrocircuitState:
    p = params
    top = len(state.u)
    _, _, vB, vA, vI = _drives(p, w, state, r0)
    du = []
    for k in range(1, top):
        u = state.u[k - 1]
        du.append(-p.g_lk * u + p.g_B * (vB[k - 1] - u) + p.g_A * (vA[k - 1] - u))
    u = state.u[top - 1]
    d_out = -p.g_lk * u + p.g_B * (vB[top - 1] - u)
    nudge = _nudge(nudge)
    if u_target is not None and not (isinstance(nudge, float) and nudge == 0.0):
        d_out = d_out + p.g_som * nudge * (u_target - u)
    du.append(d_out)
    duI = []
    # interneurons are nudged by the partner's prospective potential when there is one
    u_next = state.prospective()[0] if p.prospective else state.u
    for k in range(1, top):
        uI = state.uI[k - 1]
        duI.append(-p.g_lk * uI + p.g_D * (vI[k - 1] - uI) + p.g_som * (u_next[k] - uI))
    return MicrocircuitState(tuple(du), tuple(duI))


def _advance(
    params: MicrocircuitParameters,
    state: MicrocircuitState,
    d: MicrocircuitState,
    dt: float,
    u_target: torch.Tensor | None,
    nudge: float | torch.Tensor,
    noise: Sequence[torch.Tensor] | None = None,
) -> MicrocircuitState:
    """One Euler(–Maruyama) step from ``state`` with derivatives ``d``; with prospective neurons
    also ŭ = u + (u_new − u)/(g_total dt) of the step (the circuit's formula, DESIGN.md §4.8)."""
    u = [x + dt * dx for x, dx in zip(state.u, d.u, strict=True)]
    if noise is not None and params.sigma > 0.0:
        if len(noise) != len(u) - 1:
            raise ValueError(f"noise needs one sample per hidden layer ({len(u) - 1}).")
        for k, xi in enumerate(noise):
            u[k] = u[k] + params.sigma * math.sqrt(dt) * xi.to(DTYPE)
    uI = [x + dt * dx for x, dx in zip(state.uI, d.uI, strict=True)]
    if not params.prospective:
        return MicrocircuitState(tuple(u), tuple(uI))
    nudged = u_target is not None and not (isinstance(nudge, float) and nudge == 0.0)
    g = [params.prospective_conductance("hidden")] * (len(u) - 1)
    g.append(
        params.g_lk + params.g_B + params.g_som * nudge
        if nudged
        else params.prospective_conductance("output")
    )
    g_inter = params.prospective_conductance("inter")
    ub = tuple(a + (b - a) / (gk * dt) for a, b, gk in zip(state.u, u, g, strict=True))
    ubI = tuple(a + (b - a) / (g_inter * dt) for a, b in zip(state.uI, uI, strict=True))
    return MicrocircuitState(tuple(u), tuple(uI), ub, ubI)


def step(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    u_target: object | None = None,
    nudge: float | torch.Tensor = 0.0,
    dt: float = 0.1,
    noise: Sequence[torch.Tensor] | None = None,
) -> MicrocircuitState:
    """One explicit Euler step of ``dt`` ms of all somatic potentials; pure (returns a new state).

    ``r0`` is (batch, n0) (a 1-d input is a batch of one), ``u_target`` (batch, n_N) or None,
    ``nudge`` 0 (free), 1 (nudged) or any weight of the teaching conductance g_som. ``noise``, if
    given, holds one standard-normal sample (batch, n_k) per hidden layer k = 1..N-1; it adds
    σ √dt ξ to the hidden somata (Euler–Maruyama, as Brian2 integrates ``sigma*xi``).
    """
    d = derivatives(params, weights, state, r0, u_target, nudge)
    return _advance(params, state, d, dt, _target(u_target), _nudge(nudge), noise)


def _max_abs(state: MicrocircuitState) -> float:
    return max(float(x.abs().max()) for x in state.u + state.uI if x.numel())


def residual(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
    u_target: object | None = None,
    nudge: float | torch.Tensor = 0.0,
) -> float:
    """max |du/dt| over all somatic potentials of ``state`` (0 at a fixed point)."""
    return _max_abs(derivatives(params, weights, state, r0, u_target, nudge))


class Relaxation(NamedTuple):
    """Result of :func:`relax` / :func:`fixed_point`: the final state, its residual
    max|du/dt| and the number of Euler steps (plus Newton iterations for :func:`fixed_point`)."""

    state: MicrocircuitState
    residual: float
    steps: int
    newton_iterations: int = 0


def relax(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    r0: object,
    u_target: object | None = None,
    nudge: float | torch.Tensor = 0.0,
    dt: float = 0.1,
    steps: int = 20_000,
    tol: float = 1e-9,
    state: MicrocircuitState | None = None,
) -> Relaxation:
    """Integrate :func:`step` (no noise) from ``state`` (rest by default) until max|du/dt| < tol or
    ``steps`` steps; returns the final state and its residual (the Euler fixed points are exactly
    those of the ODE, so the state approaches the same fixed point :func:`fixed_point` solves).

    With ``tol <= 0`` it runs exactly ``steps`` steps and evaluates the residual only at the end
    (a fixed-duration integration, as a Brian2 run of ``steps * dt`` ms does).
    """
    w = check_weights(weights)
    r0 = _batch(r0)
    ut = _target(u_target)
    x = state if state is not None else zero_state(w, r0.shape[0])
    for n in range(steps + 1):
        d = _derivatives(params, w, x, r0, ut, nudge)
        if n == steps or (tol > 0.0 and _max_abs(d) < tol):
            return Relaxation(x, _max_abs(d), n)
        x = _advance(params, x, d, dt, ut, _nudge(nudge))
    raise AssertionError("unreachable")


def _flatten(state: MicrocircuitState) -> torch.Tensor:
    return torch.cat(list(state.u) + list(state.uI), dim=-1)


def _unflatten(x: torch.Tensor, template: MicrocircuitState) -> MicrocircuitState:
    parts = list(torch.split(x, [t.shape[-1] for t in template.u + template.uI], dim=-1))
    return MicrocircuitState(tuple(parts[: len(template.u)]), tuple(parts[len(template.u) :]))


def fixed_point(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    r0: object,
    u_target: object | None = None,
    nudge: float | torch.Tensor = 0.0,
    tol: float = 1e-12,
    max_newton: int = 50,
    relax_tol: float = 1e-5,
    dt: float = 0.1,
    relax_steps: int = 20_000,
    state: MicrocircuitState | None = None,
) -> Relaxation:
    """The fixed point (du/dt = 0) of the same equations, to max|du/dt| < ``tol``.

    Relaxes with Euler to ``relax_tol`` (so that the fixed point found is the one the dynamics
    reach from ``state``, rest by default), then runs Newton's method on du/dt(x) = 0 with the
    Jacobian of each sample (the samples are independent) from autograd, halving a step that would
    increase the residual. Raises ``RuntimeError`` if the residual does not fall below ``tol``.
    """
    w = check_weights(weights)
    r0 = _batch(r0)
    ut = _target(u_target)
    start = relax(params, w, r0, ut, nudge, dt=dt, steps=relax_steps, tol=relax_tol, state=state)
    template = start.state
    batch = r0.shape[0]

    def f(flat: torch.Tensor) -> torch.Tensor:
        return _flatten(_derivatives(params, w, _unflatten(flat, template), r0, ut, nudge))

    x = _flatten(template).detach().clone()
    fx = f(x)
    res = float(fx.abs().max())
    it = 0
    while res >= tol and it < max_newton:
        it += 1
        jac = torch.autograd.functional.jacobian(lambda y: f(y).sum(0), x, vectorize=True)
        jac = jac.permute(1, 0, 2)  # (batch, D, D): d f_b / d x_b
        dx = torch.linalg.solve(jac, -fx.unsqueeze(-1)).squeeze(-1)
        lam = 1.0
        while True:
            x_new = x + lam * dx
            f_new = f(x_new)
            res_new = float(f_new.abs().max())
            if res_new < res or lam < 1e-6:
                break
            lam *= 0.5
        x, fx, res = x_new.detach(), f_new.detach(), res_new
    if not res < tol:
        raise RuntimeError(
            f"fixed_point did not converge: max|du/dt| = {res:.3g} after {it} Newton iterations "
            f"(batch {batch}); the dynamics may have no stable fixed point for these weights."
        )
    return Relaxation(_unflatten(x, template), res, start.steps, it)


# --------------------------------------------------------------------------------------------
# the paper's two-pass steady-state approximation
# --------------------------------------------------------------------------------------------


class TwoPass(NamedTuple):
    """Result of :func:`two_pass`.

    ``forward``: the bottom-up pass (u_k = v̂_B,k, interneurons at their steady state given it);
    ``nudged``: after the top-down pass with the target (None without one); ``activities``: the
    named activities the passes computed (of ``nudged`` if there is a target, else of
    ``forward``; vB from the forward pass); ``errors``: ``e{k}`` = φ(u_k) − φ(v̂_B,k), the
    postsynaptic factor of the forward rule (zero without a target).
    """

    forward: MicrocircuitState
    nudged: MicrocircuitState | None
    activities: dict[str, torch.Tensor]
    errors: dict[str, torch.Tensor]


def two_pass(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    r0: object,
    u_target: object | None = None,
    nudge: float = 1.0,
) -> TwoPass:
    """The steady-state approximation of Sacramento et al. (2018), as in public reimplementations.

    Bottom-up pass: u_k = v̂_B,k = g_B/(g_lk + g_B + g_A) · W_k φ(u_{k−1}) (g_B/(g_lk + g_B) at the
    output), i.e. the apical input is taken as zero; interneurons at their steady state
    u^I_k = (g_D v^I_k + g_som u_{k+1}) / (g_lk + g_D + g_som). Top-down pass (with a target):
    the output at its nudged steady state u_N = (g_B v_B,N + g_som·nudge·u_target) /
    (g_lk + g_B + g_som·nudge); then for k = N−1..1 the interneurons given the nudged u_{k+1},
    the apical potential v_A,k = B_k φ(u_{k+1}) + W^PI_k φ(u^I_k) and u_k = (g_B v_B,k + g_A
    v_A,k) / (g_lk + g_B + g_A), with v_B,k and v^I_k kept from the bottom-up pass.

    What it approximates: the fixed point of the full dynamics. It is exact without a target when
    the lateral weights are self-predicting (v_A = 0); otherwise it drops the apical input in the
    bottom-up pass and the bottom-up propagation of the changes the top-down pass makes (their
    effect on v_B and v^I of the layers above), an error of second order in the apical
    potentials. See :func:`state_distance` for its distance from :func:`fixed_point`.
    """
    p = params
    w = check_weights(weights)
    phi = rate_function(p)
    r0 = _batch(r0)
    ut = _target(u_target)
    top = len(layer_sizes(w)) - 1
    k_int = p.g_lk + p.g_D + p.g_som

    # bottom-up
    u_f: list[torch.Tensor] = []
    vB: list[torch.Tensor] = []
    r = r0
    for k in range(1, top + 1):
        vB.append(r @ w[f"W{k}"].T)
        u_f.append(basal_gain(p, k == top) * vB[-1])
        r = phi(u_f[-1])
    vI = [phi(u_f[k - 1]) @ w[f"WIP{k}"].T for k in range(1, top)]

    def interneurons(u_next: list[torch.Tensor]) -> list[torch.Tensor]:
        return [(p.g_D * vI[k - 1] + p.g_som * u_next[k]) / k_int for k in range(1, top)]

    uI_f = interneurons(u_f)
    forward = MicrocircuitState(tuple(u_f), tuple(uI_f))

    if ut is None or nudge == 0.0:
        u, uI, nudged = u_f, uI_f, None
    else:
        g = p.g_som * float(nudge)
        u = list(u_f)
        uI = list(uI_f)
        u[top - 1] = (p.g_B * vB[top - 1] + g * ut) / (p.g_lk + p.g_B + g)
        for k in range(top - 1, 0, -1):
            uI[k - 1] = (p.g_D * vI[k - 1] + p.g_som * u[k]) / k_int
            vA_k = phi(u[k]) @ w[f"B{k}"].T + phi(uI[k - 1]) @ w[f"WPI{k}"].T
            u[k - 1] = (p.g_B * vB[k - 1] + p.g_A * vA_k) / (p.g_lk + p.g_B + p.g_A)
        nudged = MicrocircuitState(tuple(u), tuple(uI))

    acts: dict[str, torch.Tensor] = {"r0": r0}
    for k in range(1, top + 1):
        acts[f"u{k}"] = u[k - 1]
        acts[f"vB{k}"] = vB[k - 1]
        acts[f"r{k}"] = phi(u[k - 1])
    for k in range(1, top):
        acts[f"uI{k}"] = uI[k - 1]
        acts[f"vI{k}"] = vI[k - 1]
        acts[f"rI{k}"] = phi(uI[k - 1])
        acts[f"vA{k}"] = phi(u[k]) @ w[f"B{k}"].T + acts[f"rI{k}"] @ w[f"WPI{k}"].T
    errors = {f"e{k}": phi(u[k - 1]) - phi(u_f[k - 1]) for k in range(1, top + 1)}
    return TwoPass(forward, nudged, acts, errors)

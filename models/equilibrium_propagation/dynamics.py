"""Energy, dynamics, relaxation and the exact fixed point of the twin
(:mod:`models.equilibrium_propagation`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

import torch

from models.equilibrium_propagation.network import (
    DTYPE,
    HARD_SIGMOID,
    EPParameters,
    HopfieldState,
    RateFunction,
    Weights,
    _batch,
    _check_state,
    _setup,
    rho,
    zero_state,
)

# --------------------------------------------------------------------------------------------
# energy and dynamics (internal versions take checked tensors)
# --------------------------------------------------------------------------------------------


def _energy(
    w: Weights, s: Sequence[torch.Tensor], x: torch.Tensor, rate: RateFunction = HARD_SIGMOID
) -> torch.Tensor:
    r = [rho(x)] + [rate.rho(v) for v in s]
    e = sum(0.5 * (v * v).sum(-1) for v in s)
    for k in range(1, len(r)):
        e = e - ((r[k] @ w[f"W{k}"]) * r[k - 1]).sum(-1) - r[k] @ w[f"b{k}"]
    return e


def _cost(s_out: torch.Tensor, d: torch.Tensor, rate: RateFunction = HARD_SIGMOID) -> torch.Tensor:
    return 0.5 * ((rate.rho(s_out) - d) ** 2).sum(-1)


def _gradient(w, s, x, d, beta, projected, rate=HARD_SIGMOID) -> list[torch.Tensor]:
    """∂F/∂s_k for k = 1..N (the projected form takes ρ' = 1: its states stay in the box; the
    input's rate is clip(x, 0, 1) whatever ``rate`` is)."""
    top = len(s)
    r = [rho(x)] + [rate.rho(v) for v in s]
    out = []
    for k, drive in enumerate(_drives(w, r, top), start=1):
        if projected:
            g = s[k - 1] - drive
        else:
            g = s[k - 1] - rate.derivative(s[k - 1]) * drive
        if k == top and d is not None and beta != 0.0:
            nudge = beta * (r[top] - d)
            g = g + (nudge if projected else rate.derivative(s[top - 1]) * nudge)
        out.append(g)
    return out


def _drives(w, r: list[torch.Tensor], top: int) -> list[torch.Tensor]:
    """The input of each layer k = 1..N: W_k ρ_{k−1} + b_k (+ W_{k+1}ᵀ ρ_{k+1} below the top)."""
    drives = []
    for k in range(1, top + 1):
        drive = r[k - 1] @ w[f"W{k}"].T + w[f"b{k}"]
        if k < top:
            drive = drive + r[k + 1] @ w[f"W{k + 1}"]
        drives.append(drive)
    return drives


def _step(w, s, x, d, beta, dt, projected, rate=HARD_SIGMOID) -> list[torch.Tensor]:
    g = _gradient(w, s, x, d, beta, projected, rate)
    if projected:
        return [rho(v - dt * gv) for v, gv in zip(s, g, strict=True)]
    return [v - dt * gv for v, gv in zip(s, g, strict=True)]


def _form(params: EPParameters) -> tuple[bool, RateFunction]:
    """(projected, ρ) of the dynamics: the smooth sigmoid has no box, so never projected."""
    return params.projected and not params.smooth, params.rate


def _residual(w, s, x, d, beta, projected, rate=HARD_SIGMOID) -> float:
    """max|clip(s − ∂F/∂s) − s| (projected) or max|∂F/∂s| (gated, smooth)."""
    g = _gradient(w, s, x, d, beta, projected, rate)
    if projected:
        return max(float((rho(v - gv) - v).abs().max()) for v, gv in zip(s, g, strict=True))
    return max(float(gv.abs().max()) for gv in g)


def energy(
    params: EPParameters, weights: Mapping[str, object], state: HopfieldState, x: object
) -> torch.Tensor:
    """E(s) per sample, (batch,) (the constant ½‖x‖² of the clamped input is left out)."""
    w, xt, _, _, st = _setup(params, weights, x, None, 0.0, state)
    return _energy(w, st.s, xt, params.rate)


def cost(params: EPParameters, state: HopfieldState, d: object) -> torch.Tensor:
    """C(s) = ½‖ρ(s_N) − d‖² per sample, (batch,)."""
    dt = _batch(d, "d")
    if dt.shape[1] != params.sizes[-1]:
        raise ValueError(f"d has {dt.shape[1]} columns, expected n_N = {params.sizes[-1]}.")
    st = _check_state(params.sizes, state, dt.shape[0])
    return _cost(st.s[-1], dt, params.rate)


def total_energy(
    params: EPParameters,
    weights: Mapping[str, object],
    state: HopfieldState,
    x: object,
    d: object | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """F = E + βC per sample, (batch,)."""
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
    f = _energy(w, st.s, xt, params.rate)
    return f if dt is None else f + beta * _cost(st.s[-1], dt, params.rate)


def gradient(
    params: EPParameters,
    weights: Mapping[str, object],
    state: HopfieldState,
    x: object,
    d: object | None = None,
    beta: float = 0.0,
) -> HopfieldState:
    """∂F/∂s of every layer, as a :class:`HopfieldState`.

    ρ'-gated form (``params.projected`` False): the exact derivative of :func:`total_energy`
    (with ρ' = 1 on [0, 1]). Projected form: the same with ρ' = 1, which agrees with it inside the
    box, where the projected dynamics keep the state."""
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
    return HopfieldState(tuple(_gradient(w, st.s, xt, dt, beta, *_form(params))))


def derivatives(
    params: EPParameters,
    weights: Mapping[str, object],
    state: HopfieldState,
    x: object,
    d: object | None = None,
    beta: float = 0.0,
) -> HopfieldState:
    """ds/dt = −∂F/∂s (before any projection)."""
    g = gradient(params, weights, state, x, d, beta)
    return HopfieldState(tuple(-v for v in g.s))


def step(
    params: EPParameters,
    weights: Mapping[str, object],
    state: HopfieldState,
    x: object,
    d: object | None = None,
    beta: float = 0.0,
) -> HopfieldState:
    """One synchronous Euler step of ``params.dt`` of all layers; pure (returns a new state).
    Projected form: s ← clip(s − dt ∂F/∂s, 0, 1); gated form: s ← s − dt ∂F/∂s."""
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
    return HopfieldState(tuple(_step(w, st.s, xt, dt, beta, params.dt, *_form(params))))


def residual(
    params: EPParameters,
    weights: Mapping[str, object],
    state: HopfieldState,
    x: object,
    d: object | None = None,
    beta: float = 0.0,
) -> float:
    """How far ``state`` is from a fixed point: max|clip(s − ∂F/∂s) − s| for the projected form
    (the speed of the projected dynamics per unit dt, 0 exactly at its fixed points), max|ds/dt|
    for the gated form."""
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
    return _residual(w, st.s, xt, dt, beta, *_form(params))


class Relaxation(NamedTuple):
    """Result of :func:`relax` / :func:`fixed_point`: the final state, its :func:`residual`, the
    number of Euler steps (plus Newton iterations for :func:`fixed_point`) and, if asked for, F
    (batch mean) after every step, starting with the initial state."""

    state: HopfieldState
    residual: float
    steps: int
    newton_iterations: int = 0
    energies: tuple[float, ...] = ()


def relax(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object | None = None,
    beta: float = 0.0,
    state: HopfieldState | None = None,
    steps: int | None = None,
    tol: float = 0.0,
    record_energy: bool = False,
) -> Relaxation:
    """Run :func:`step` from ``state`` (0 by default) for ``steps`` steps (default
    ``params.free_steps``), or fewer if ``tol > 0`` and the residual falls below ``tol``.

    ``beta = 0`` is the free phase; ``beta != 0`` with a target ``d`` the nudged phase (start it
    from the free state). ``record_energy`` also returns F (batch mean) along the way."""
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
    n_steps = params.free_steps if steps is None else int(steps)
    if n_steps < 0:
        raise ValueError(f"steps must be non-negative, not {steps!r}.")
    s = list(st.s) if st is not None else list(zero_state(params.sizes, xt.shape[0]).s)
    energies = []

    def f_mean(v: list[torch.Tensor]) -> float:
        f = _energy(w, v, xt, params.rate)
        if dt is not None and beta != 0.0:
            f = f + beta * _cost(v[-1], dt, params.rate)
        return float(f.mean())

    if record_energy:
        energies.append(f_mean(s))
    n = 0
    while n < n_steps:
        s = _step(w, s, xt, dt, beta, params.dt, *_form(params))
        n += 1
        if record_energy:
            energies.append(f_mean(s))
        if tol > 0.0 and _residual(w, s, xt, dt, beta, *_form(params)) < tol:
            break
    res = _residual(w, s, xt, dt, beta, *_form(params))
    return Relaxation(HopfieldState(tuple(s)), res, n, 0, tuple(energies))


# --------------------------------------------------------------------------------------------
# the fixed point: active-set Newton on the piecewise-linear equation
# --------------------------------------------------------------------------------------------


def _coupling(w: Weights, sizes: tuple[int, ...]) -> torch.Tensor:
    """The symmetric block-tridiagonal matrix A of the layer-to-layer weights (D × D, D the number
    of units in layers 1..N): inside the box, −∂²E/∂s² = A − I."""
    n = sizes[1:]
    offsets = [0]
    for v in n:
        offsets.append(offsets[-1] + v)
    a = torch.zeros(offsets[-1], offsets[-1], dtype=DTYPE)
    for k in range(2, len(sizes)):
        rows = slice(offsets[k - 1], offsets[k])
        cols = slice(offsets[k - 2], offsets[k - 1])
        a[rows, cols] = w[f"W{k}"]
        a[cols, rows] = w[f"W{k}"].T
    return a


def _linear_system(w, sizes, x, d, beta):
    """H (D × D) and c (batch, D) with ∂F/∂s = H s − c inside the box."""
    dim = sum(sizes[1:])
    h = torch.eye(dim, dtype=DTYPE) - _coupling(w, sizes)
    c = torch.cat([w[f"b{k}"].expand(x.shape[0], -1) for k in range(1, len(sizes))], dim=1)
    c = c.clone()
    c[:, : sizes[1]] += rho(x) @ w["W1"].T
    if d is not None and beta != 0.0:
        out = slice(dim - sizes[-1], dim)
        h[out, out] += beta * torch.eye(sizes[-1], dtype=DTYPE)
        c[:, out] += beta * d
    return h, c


def _split(z: torch.Tensor, sizes: tuple[int, ...]) -> list[torch.Tensor]:
    return list(torch.split(z, list(sizes[1:]), dim=-1))


def fixed_point(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object | None = None,
    beta: float = 0.0,
    state: HopfieldState | None = None,
    tol: float = 1e-12,
    relax_steps: int = 200,
    max_newton: int = 50,
) -> Relaxation:
    """The fixed point s = clip(s − ∂F/∂s, 0, 1) of the projected dynamics, to residual < ``tol``.

    At such a point every unit is inside the box with ∂F/∂s = 0, or at 0 pushed down, or at 1
    pushed up (the conditions for a minimum of F on [0, 1]^n). Inside the box ∂F/∂s = H s − c is
    linear, so once the set of clipped units is known one linear solve per sample gives the fixed
    point exactly. It relaxes for ``relax_steps`` projected steps from ``state`` (0 by default;
    so the fixed point found is the one the dynamics reach), then iterates: clip the units whose
    drive clip(s − ∂F/∂s) is at a bound, solve the others' linear equations (active-set Newton;
    exact in finitely many steps when the set stops changing). A Newton step that does not lower
    the residual is replaced by 100 more relaxation steps. Raises ``RuntimeError`` if the residual
    stays above ``tol``.

    With the smooth sigmoid (``params.activation``) nothing is clipped: the same relaxation, then
    Newton's method on ∂F/∂s = 0 with the exact Hessian (:func:`hessian`), to max|∂F/∂s| < ``tol``.

    For the hard sigmoid this is the projected form's fixed point whatever ``params.projected``
    says: the ρ'-gated dynamics have units stuck below 0 and chattering at 1 instead of exact
    fixed points (use :func:`relax` to see them). Cost: a (batch, D, D) solve per iteration
    (D = n1 + … + nN).
    """
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
    if params.smooth:
        return _smooth_fixed_point(params, w, xt, dt, beta, st, tol, relax_steps, max_newton)
    proj = replace(params, projected=True)
    start = relax(proj, w, xt, dt, beta, st, steps=relax_steps, tol=tol)
    steps = start.steps
    z = torch.cat(list(start.state.s), dim=1)
    h, c = _linear_system(w, params.sizes, xt, dt, beta)
    eye = torch.eye(h.shape[0], dtype=DTYPE)

    def res_of(v: torch.Tensor) -> float:
        return _residual(w, _split(v, params.sizes), xt, dt, beta, True)

    res = start.residual
    it = 0
    while res >= tol and it < max_newton:
        it += 1
        u = z - (z @ h.T - c)  # clip(u) is where one unit step would take each unit
        inside = (u > 0.0) & (u < 1.0)
        jac = torch.where(inside.unsqueeze(-1), h.unsqueeze(0), eye.unsqueeze(0))
        rhs = torch.where(inside, c, rho(u))
        z_new = torch.linalg.solve(jac, rhs.unsqueeze(-1)).squeeze(-1)
        z_new = rho(z_new)  # a wrong active set can leave the box: the next pass fixes it
        res_new = res_of(z_new)
        if res_new < res:
            z, res = z_new, res_new
        else:
            more = relax(proj, w, xt, dt, beta, HopfieldState(tuple(_split(z, params.sizes))), 100)
            steps += more.steps
            z, res = torch.cat(list(more.state.s), dim=1), more.residual
    if not res < tol:
        raise RuntimeError(
            f"fixed_point did not converge: residual {res:.3g} after {it} Newton iterations and "
            f"{steps} relaxation steps; the weights may be too strong for a stable fixed point."
        )
    return Relaxation(HopfieldState(tuple(_split(z, params.sizes))), res, steps, it)


# --------------------------------------------------------------------------------------------
# the smooth sigmoid: Hessian and Newton's method
# --------------------------------------------------------------------------------------------


def hessian(
    params: EPParameters,
    weights: Mapping[str, object],
    state: HopfieldState,
    x: object,
    d: object | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """∂²F/∂s² per sample, (batch, D, D) over the units of layers 1..N, for the smooth sigmoid:
    I − diag(ρ''⊙drive) − diag(ρ') A diag(ρ') (A the layer-to-layer weights, drive the summed
    input W_k ρ_{k−1} + W_{k+1}ᵀ ρ_{k+1} + b_k), plus β(ρ'² + ρ''(ρ − d)) on the output's
    diagonal. What the implicit gradient and Newton's method need."""
    if not params.smooth:
        raise ValueError("hessian is for the smooth sigmoid; the hard sigmoid's is piecewise.")
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
    return _smooth_hessian(w, params.sizes, list(st.s), xt, dt, beta, params.rate)


def _smooth_hessian(w, sizes, s, x, d, beta, rate) -> torch.Tensor:
    top = len(s)
    r = [rho(x)] + [rate.rho(v) for v in s]
    drives = _drives(w, r, top)
    d1 = torch.cat([rate.derivative(v) for v in s], dim=1)
    d2 = torch.cat([rate.second(v) for v in s], dim=1)
    curvature = d2 * torch.cat(drives, dim=1)
    if d is not None and beta != 0.0:
        out = slice(d1.shape[1] - sizes[-1], d1.shape[1])
        curvature = curvature.clone()
        curvature[:, out] -= beta * (d1[:, out] ** 2 + d2[:, out] * (r[top] - d))
    a = _coupling(w, sizes)
    eye = torch.eye(d1.shape[1], dtype=DTYPE)
    return eye - torch.diag_embed(curvature) - d1.unsqueeze(-1) * a * d1.unsqueeze(-2)


def _smooth_fixed_point(params, w, xt, dt, beta, st, tol, relax_steps, max_newton) -> Relaxation:
    """Relaxation, then Newton on ∂F/∂s = 0 (a step that does not lower the residual is replaced
    by 100 more relaxation steps)."""
    rate = params.rate
    start = relax(params, w, xt, dt, beta, st, steps=relax_steps, tol=tol)
    steps, s, res = start.steps, list(start.state.s), start.residual
    it = 0
    while res >= tol and it < max_newton:
        it += 1
        g = torch.cat(_gradient(w, s, xt, dt, beta, False, rate), dim=1)
        h = _smooth_hessian(w, params.sizes, s, xt, dt, beta, rate)
        z = torch.cat(s, dim=1) - torch.linalg.solve(h, g.unsqueeze(-1)).squeeze(-1)
        s_new = _split(z, params.sizes)
        res_new = _residual(w, s_new, xt, dt, beta, False, rate)
        if res_new < res:
            s, res = s_new, res_new
        else:
            more = relax(params, w, xt, dt, beta, HopfieldState(tuple(s)), 100)
            steps += more.steps
            s, res = list(more.state.s), more.residual
    if not res < tol:
        raise RuntimeError(
            f"fixed_point did not converge: residual {res:.3g} after {it} Newton iterations and "
            f"{steps} relaxation steps; the weights may be too strong for a stable fixed point."
        )
    return Relaxation(HopfieldState(tuple(s)), res, steps, it)

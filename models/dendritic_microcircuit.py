"""Torch twin of the rate dendritic cortical microcircuit (Sacramento, Ponte Costa, Bengio & Senn,
NeurIPS 2018; DESIGN.md §4.2).

Written in the style of Norse (DESIGN.md §2): immutable parameter and state records plus pure
functions, float64 throughout, no Brian2. The Brian2 circuit (``circuits/microcircuit``) and this
twin share names, so the bridge can move weights and activities between them:

* layer sizes ``sizes = [n0, n1, ..., nN]``: layer 0 is the input (rates ``r0`` given, no
  dynamics), layers 1..N-1 are hidden three-compartment pyramidal cells (soma, basal, apical),
  layer N is the output (soma and basal, g_A = 0), nudged toward a target potential;
* weights, shape (post, pre), in a ``dict[str, Tensor]``: ``W{k}`` (k = 1..N; layer k <- layer
  k-1), ``B{k}`` (k = 1..N-1; hidden k apical <- rates of layer k+1), ``WPI{k}`` (hidden k apical
  <- interneurons of k, shape (n_k, n_{k+1})), ``WIP{k}`` (interneurons of k <- rates of hidden k,
  shape (n_{k+1}, n_k)); interneuron population k has n_{k+1} cells, each nudged by the somatic
  potential of its partner in layer k+1;
* activities: ``u{k}`` (somatic potential, k >= 1), ``vB{k}``, ``vA{k}`` (hidden only),
  ``uI{k}``, ``vI{k}`` (interneurons), and rates ``r{k}`` = φ(u_k) (``r0`` is the input),
  ``rI{k}`` = φ(uI_k).

Dynamics (time in ms, dimensionless potentials), with φ(u_0) := r0:

    hidden k:     du_k/dt  = -g_lk u_k + g_B (vB_k - u_k) + g_A (vA_k - u_k) [+ σ ξ]
                  vB_k = W_k φ(u_{k-1}),  vA_k = B_k φ(u_{k+1}) + WPI_k φ(uI_k)
    interneuron:  duI_k/dt = -g_lk uI_k + g_D (vI_k - uI_k) + g_som (u_{k+1} - uI_k)
                  vI_k = WIP_k φ(u_k)
    output N:     du_N/dt  = -g_lk u_N + g_B (vB_N - u_N) + g_som·nudge·(u_target - u_N)

``nudge`` is 0 (free) or 1 (nudged); any value in between scales the teaching conductance
(weak nudging, used for the backprop comparison). The target is a *potential*.

What is here:

* :func:`step` (one explicit Euler step), :func:`derivatives`, :func:`residual`;
* :func:`relax` (Euler to convergence) and :func:`fixed_point` (Euler, then Newton on the
  steady-state equations, to max|du/dt| < 1e-12): the reference a Brian2 run is compared to;
* :func:`two_pass`: the paper's steady-state approximation (one bottom-up and one top-down sweep);
* plasticity induction terms :func:`forward_update`, :func:`ip_update`, :func:`pi_update`;
* :func:`self_predicting_weights` (closed-form lateral weights), :func:`tied_feedback`;
* :func:`backprop_reference` (error signals and gradients of the same architecture through
  autograd); the backprop baseline itself is :mod:`models.backprop` with :func:`feedforward`'s
  layer function;
* :func:`init_weights` (U(-1, 1) times a scale, reproducible from a seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch

from neurosim.parameters.microcircuit import MicrocircuitParams

DTYPE = torch.float64

#: named weight matrices, shape (post, pre)
Weights = dict[str, torch.Tensor]

LOSSES = ("circuit", "potential", "rate")


# --------------------------------------------------------------------------------------------
# parameters and rate functions
# --------------------------------------------------------------------------------------------


#: the one parameter record of the microcircuit, shared with the Brian2 circuit and its
#: ``[circuit]`` table (:mod:`neurosim.parameters.microcircuit`)
MicrocircuitParameters = MicrocircuitParams


def soft_relu(
    u: torch.Tensor, gamma: float = 0.1, beta: float = 1.0, theta: float = 3.0
) -> torch.Tensor:
    """γ log(1 + e^{β(u − θ)}), computed without overflow."""
    x = beta * (u - theta)
    return gamma * torch.logaddexp(torch.zeros_like(x), x)


def soft_relu_derivative(
    u: torch.Tensor, gamma: float = 0.1, beta: float = 1.0, theta: float = 3.0
) -> torch.Tensor:
    """γ β σ(β(u − θ)), the derivative of :func:`soft_relu`."""
    return gamma * beta * torch.sigmoid(beta * (u - theta))


def logistic(u: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^{−u})."""
    return torch.sigmoid(u)


def logistic_derivative(u: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(u)
    return s * (1.0 - s)


def relu(u: torch.Tensor) -> torch.Tensor:
    """max(u, 0)."""
    return torch.clamp(u, min=0.0)


def relu_derivative(u: torch.Tensor) -> torch.Tensor:
    """1 for u > 0, else 0."""
    return (u > 0).to(u.dtype)


def rate_function(params: MicrocircuitParameters) -> Callable[[torch.Tensor], torch.Tensor]:
    """φ of ``params`` as a one-argument function."""
    if params.phi == "soft_relu":
        g, b, t = params.gamma, params.beta, params.theta
        return lambda u: soft_relu(u, g, b, t)
    if params.phi == "logistic":
        return logistic
    return relu


def rate_derivative(params: MicrocircuitParameters) -> Callable[[torch.Tensor], torch.Tensor]:
    """φ' of ``params`` as a one-argument function."""
    if params.phi == "soft_relu":
        g, b, t = params.gamma, params.beta, params.theta
        return lambda u: soft_relu_derivative(u, g, b, t)
    if params.phi == "logistic":
        return logistic_derivative
    return relu_derivative


def basal_gain(params: MicrocircuitParameters, output: bool) -> float:
    """Gain of the dendritic prediction v̂_B = gain · v_B: g_B/(g_lk + g_B + g_A) for hidden layers,
    g_B/(g_lk + g_B) for the output layer (its potential without nudging)."""
    return params.basal_gain(output)


def interneuron_gain(params: MicrocircuitParameters) -> float:
    """Gain of the interneurons' dendritic prediction v̂^I = g_D/(g_lk + g_D) · v^I."""
    return params.inter_dendrite_gain


def self_predicting_constant(params: MicrocircuitParameters, next_is_output: bool) -> float:
    """c in W^IP_k = c · W_{k+1}: g_B(g_lk + g_D) / (g_D (g_lk + g_B + g_A)), or
    g_B(g_lk + g_D) / (g_D (g_lk + g_B)) when layer k+1 is the output (DESIGN.md §4.2)."""
    return params.self_predicting_factor(next_is_output)


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------


def layer_sizes(weights: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """``(n0, ..., nN)`` read from the forward weights ``W1..WN``."""
    n_layers = 0
    while f"W{n_layers + 1}" in weights:
        n_layers += 1
    if n_layers == 0:
        raise ValueError("weights need at least W1.")
    sizes = [int(weights["W1"].shape[1])]
    sizes += [int(weights[f"W{k}"].shape[0]) for k in range(1, n_layers + 1)]
    return tuple(sizes)


def expected_shapes(sizes: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Shape (post, pre) of every named weight matrix of a circuit with layer ``sizes``."""
    n = list(sizes)
    top = len(n) - 1
    if top < 1:
        raise ValueError(f"sizes needs an input and an output layer, got {sizes!r}.")
    shapes = {f"W{k}": (n[k], n[k - 1]) for k in range(1, top + 1)}
    for k in range(1, top):
        shapes[f"B{k}"] = (n[k], n[k + 1])
        shapes[f"WPI{k}"] = (n[k], n[k + 1])
        shapes[f"WIP{k}"] = (n[k + 1], n[k])
    return shapes


def check_weights(weights: Mapping[str, object]) -> Weights:
    """The weights as float64 tensors, after checking that every matrix is there with its shape."""
    out = {name: torch.as_tensor(w, dtype=DTYPE) for name, w in weights.items()}
    sizes = layer_sizes(out)
    for name, shape in expected_shapes(sizes).items():
        if name not in out:
            raise ValueError(f"weights lack {name} (shape {shape}) for layer sizes {sizes}.")
        if tuple(out[name].shape) != shape:
            raise ValueError(
                f"{name} has shape {tuple(out[name].shape)}, expected {shape} for sizes {sizes}."
            )
    return out


def init_weights(
    sizes: Sequence[int],
    seed: int = 0,
    scale: float | Mapping[str, float] = 1.0,
) -> Weights:
    """Weights drawn from U(−1, 1) times ``scale``, reproducible from ``seed``.

    ``scale`` is one number for all matrices, or a mapping from a kind (``"W"``, ``"B"``,
    ``"WPI"``, ``"WIP"``) or a full name (``"W2"``) to a number (default 1). Matrices are drawn in
    the order W1..WN, B1.., WPI1.., WIP1.. from one ``torch.Generator``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    shapes = expected_shapes(sizes)
    order = sorted(shapes, key=lambda n: (("W", "B", "WPI", "WIP").index(_kind(n)), _index(n)))
    out: Weights = {}
    for name in order:
        if isinstance(scale, Mapping):
            s = float(scale.get(name, scale.get(_kind(name), 1.0)))
        else:
            s = float(scale)
        out[name] = s * (2.0 * torch.rand(shapes[name], generator=gen, dtype=DTYPE) - 1.0)
    return out


def _kind(name: str) -> str:
    return name.rstrip("0123456789")


def _index(name: str) -> int:
    return int(name[len(_kind(name)) :])


def self_predicting_weights(
    weights: Mapping[str, torch.Tensor], params: MicrocircuitParameters
) -> Weights:
    """A copy of ``weights`` with the closed-form lateral weights of the self-predicting state:
    W^PI_k = −B_k and W^IP_k = c_k · W_{k+1} (c_k from :func:`self_predicting_constant`).

    With these, and no target, the fixed point has u^I_k = u_{k+1} and v_A,k = 0 exactly (see
    :func:`fixed_point`): the interneurons' steady state is (g_D v^I + g_som u_{k+1})/(g_lk + g_D
    + g_som), and g_D c W_{k+1} r_k = (g_lk + g_D) u_{k+1} when u_{k+1} = v̂_B,k+1.
    """
    w = check_weights(weights)
    top = len(layer_sizes(w)) - 1
    out = dict(w)
    for k in range(1, top):
        out[f"WPI{k}"] = -w[f"B{k}"].clone()
        out[f"WIP{k}"] = self_predicting_constant(params, k + 1 == top) * w[f"W{k + 1}"]
    return out


def tied_feedback(weights: Mapping[str, torch.Tensor]) -> Weights:
    """A copy of ``weights`` with top-down weights tied to the forward weights: B_k = W_{k+1}ᵀ."""
    w = check_weights(weights)
    top = len(layer_sizes(w)) - 1
    out = dict(w)
    for k in range(1, top):
        out[f"B{k}"] = w[f"W{k + 1}"].T.clone()
    return out


# --------------------------------------------------------------------------------------------
# state and dynamics
# --------------------------------------------------------------------------------------------


class MicrocircuitState(NamedTuple):
    """Somatic potentials, each (batch, n): ``u[k-1]`` is u_k (k = 1..N), ``uI[k-1]`` is u^I_k
    (k = 1..N-1, n_{k+1} cells)."""

    u: tuple[torch.Tensor, ...]
    uI: tuple[torch.Tensor, ...]

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{"u1": .., "uN": .., "uI1": ..}``."""
        out = {f"u{k}": x for k, x in enumerate(self.u, start=1)}
        out.update({f"uI{k}": x for k, x in enumerate(self.uI, start=1)})
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> MicrocircuitState:
        """Inverse of :meth:`as_dict` (extra keys such as ``vA1`` are ignored)."""
        u, uI = [], []
        while f"u{len(u) + 1}" in values:
            u.append(_batch(values[f"u{len(u) + 1}"]))
        while f"uI{len(uI) + 1}" in values:
            uI.append(_batch(values[f"uI{len(uI) + 1}"]))
        return cls(tuple(u), tuple(uI))


def zero_state(weights: Mapping[str, torch.Tensor], batch: int = 1) -> MicrocircuitState:
    """All potentials at rest (0)."""
    n = layer_sizes(weights)
    top = len(n) - 1
    return MicrocircuitState(
        tuple(torch.zeros(batch, n[k], dtype=DTYPE) for k in range(1, top + 1)),
        tuple(torch.zeros(batch, n[k + 1], dtype=DTYPE) for k in range(1, top)),
    )


def state_distance(a: MicrocircuitState, b: MicrocircuitState) -> float:
    """max |a − b| over all somatic potentials."""
    return max(float((x - y).abs().max()) for x, y in zip(a.u + a.uI, b.u + b.uI, strict=True))


def _batch(x: object) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=DTYPE)
    return t.unsqueeze(0) if t.dim() == 1 else t


def _target(u_target: object | None) -> torch.Tensor | None:
    return None if u_target is None else _batch(u_target)


def _nudge(nudge: float | torch.Tensor) -> float | torch.Tensor:
    """A float, or a tensor broadcastable to (batch, n_N), e.g. (batch, 1) for per-sample gating."""
    if isinstance(nudge, torch.Tensor):
        return nudge.to(DTYPE)
    return float(nudge)


def _drives(params: MicrocircuitParameters, w: Weights, state: MicrocircuitState, r0: torch.Tensor):
    """Rates and dendritic potentials of ``state``: r (k = 0..N), rI, vB (k = 1..N), vA, vI."""
    phi = rate_function(params)
    top = len(state.u)
    r = [r0] + [phi(x) for x in state.u]
    rI = [phi(x) for x in state.uI]
    vB = [r[k - 1] @ w[f"W{k}"].T for k in range(1, top + 1)]
    vA = [r[k + 1] @ w[f"B{k}"].T + rI[k - 1] @ w[f"WPI{k}"].T for k in range(1, top)]
    vI = [r[k] @ w[f"WIP{k}"].T for k in range(1, top)]
    return r, rI, vB, vA, vI


def activities(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: MicrocircuitState,
    r0: object,
) -> dict[str, torch.Tensor]:
    """Every named activity of ``state``: ``u{k}``, ``vB{k}``, ``vA{k}``, ``uI{k}``, ``vI{k}``,
    rates ``r{k}`` (``r0`` the input) and ``rI{k}``."""
    w = check_weights(weights)
    r, rI, vB, vA, vI = _drives(params, w, state, _batch(r0))
    out = state.as_dict()
    out.update({f"r{k}": x for k, x in enumerate(r)})
    out.update({f"vB{k}": x for k, x in enumerate(vB, start=1)})
    out.update({f"vA{k}": x for k, x in enumerate(vA, start=1)})
    out.update({f"vI{k}": x for k, x in enumerate(vI, start=1)})
    out.update({f"rI{k}": x for k, x in enumerate(rI, start=1)})
    return out


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
    for k in range(1, top):
        uI = state.uI[k - 1]
        duI.append(-p.g_lk * uI + p.g_D * (vI[k - 1] - uI) + p.g_som * (state.u[k] - uI))
    return MicrocircuitState(tuple(du), tuple(duI))


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
    u = [x + dt * dx for x, dx in zip(state.u, d.u, strict=True)]
    if noise is not None and params.sigma > 0.0:
        if len(noise) != len(u) - 1:
            raise ValueError(f"noise needs one sample per hidden layer ({len(u) - 1}).")
        for k, xi in enumerate(noise):
            u[k] = u[k] + params.sigma * math.sqrt(dt) * xi.to(DTYPE)
    uI = tuple(x + dt * dx for x, dx in zip(state.uI, d.uI, strict=True))
    return MicrocircuitState(tuple(u), uI)


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
        x = MicrocircuitState(
            tuple(a + dt * b for a, b in zip(x.u, d.u, strict=True)),
            tuple(a + dt * b for a, b in zip(x.uI, d.uI, strict=True)),
        )
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


# --------------------------------------------------------------------------------------------
# plasticity (rate form: induction terms, no low-pass, mean over the batch)
# --------------------------------------------------------------------------------------------


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
        post = phi(state.u[k - 1]) - phi(basal_gain(params, k == top) * vB[k - 1])
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
    r, _, _, _, vI = drives
    batch = r[0].shape[0]
    out: Weights = {}
    for k in range(1, len(state.u)):
        post = phi(state.uI[k - 1]) - phi(interneuron_gain(params) * vI[k - 1])
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


# --------------------------------------------------------------------------------------------
# backprop reference of the same architecture
# --------------------------------------------------------------------------------------------


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


__all__ = [
    "BackpropReference",
    "MicrocircuitParameters",
    "MicrocircuitState",
    "Relaxation",
    "TwoPass",
    "Weights",
    "activities",
    "backprop_reference",
    "basal_gain",
    "check_weights",
    "derivatives",
    "expected_shapes",
    "feedforward",
    "fixed_point",
    "forward_update",
    "init_weights",
    "interneuron_gain",
    "ip_update",
    "layer_sizes",
    "logistic",
    "output_loss",
    "pi_update",
    "plasticity",
    "rate_derivative",
    "rate_function",
    "relax",
    "relu",
    "residual",
    "self_predicting_constant",
    "self_predicting_weights",
    "soft_relu",
    "state_distance",
    "step",
    "tied_feedback",
    "top_down_update",
    "two_pass",
    "zero_state",
]

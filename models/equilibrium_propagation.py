"""Torch twin of a layered continuous-time Hopfield circuit trained by Equilibrium Propagation
(Scellier & Bengio 2017; DESIGN.md §4.3, issue 4).

Written like :mod:`models.dendritic_microcircuit`: an immutable parameter record, NamedTuple
results and pure functions, float64 throughout, no Brian2. The Brian2 circuit
(``circuits/hopfield``) and this twin share names, so the bridge can move weights and states
between them:

* layer sizes ``sizes = [n0, n1, ..., nN]``: layer 0 is the input, clamped to ``x`` (no dynamics),
  layers 1..N have states ``s_k`` (batch, n_k), layer N is the output;
* weights in a ``dict[str, Tensor]``: ``W{k}`` (k = 1..N), shape (n_k, n_{k−1}), the *one*
  symmetric weight between layers k−1 and k, used bottom-up as W_k and top-down as W_kᵀ;
  ``b{k}`` (k = 1..N), shape (n_k,);
* ρ(s) = clip(s, 0, 1) (hard sigmoid); ρ'(s) = 1 on the closed interval [0, 1], 0 outside (the
  derivative torch's ``clamp`` uses, so a state starting at 0 can move).

Energy, cost and dynamics (time in units of τ = 1; in the Brian2 circuit τ = 1 ms), per sample:

    E(s) = ½ Σ_{k≥1} ‖s_k‖² − Σ_k ρ(s_k)ᵀ W_k ρ(s_{k−1}) − Σ_k b_kᵀ ρ(s_k),   s_0 = x
    C(s) = ½ ‖ρ(s_N) − d‖²,   F = E + β C,   ds/dt = −∂F/∂s
    ∂F/∂s_k = s_k − ρ'(s_k) (W_k ρ(s_{k−1}) + W_{k+1}ᵀ ρ(s_{k+1}) + b_k) [+ β ρ'(s_N)(ρ(s_N) − d)]

Two discretisations with step ``dt`` (= ε of the paper), chosen by ``projected``:

* projected Euler (default; the authors' code): s ← clip(s − ε ∂F/∂s, 0, 1). States stay in the
  box, where ρ(s) = s and ρ' = 1, so this is projected gradient descent on F over [0, 1]^n; its
  fixed points are exactly s = clip(s − ∂F/∂s), for every ε > 0.
* ρ'-gated Euler: s ← s − ε ∂F/∂s with the ρ' factors above (plain Euler on the exact gradient).
  A unit pushed below 0 has ρ' = 0 and decays back toward 0 from below without crossing: it
  sticks there even if its input turns positive later (DESIGN.md §4.3). A unit pushed above 1 has
  ρ' = 0 too and decays toward 0, re-enters the box and is pushed over 1 again: it chatters at 1
  (a sliding mode in continuous time), so max|ds/dt| does not go to 0. Its limits need not be
  stationary points of F on the box; the projected form is the reference.

What is here:

* :class:`EPParameters`, :func:`init_weights` (Glorot uniform, biases 0 or small),
  :func:`check_weights`, :func:`zero_state`;
* :func:`energy`, :func:`cost`, :func:`total_energy`, :func:`gradient` (∂F/∂s),
  :func:`derivatives` (ds/dt), :func:`step`, :func:`residual`;
* :func:`relax` (fixed number of steps, or until the residual is below a tolerance) and
  :func:`fixed_point` (relaxation, then the active-set Newton method on the piecewise-linear
  fixed-point equation, to max|clip(s − ∂F/∂s) − s| < 1e-12);
* :func:`ep_update`: the two-phase and the symmetric EP updates from fixed points (or from
  fixed-length relaxations, as in training); :func:`continual_update`: the same update integrated
  step by step over the nudged phase ("error in ds/dt"), in the telescoping and the product-rule
  forms; :func:`train_batch`, one EP training step;
* :func:`loss_gradient` (implicit differentiation at the free fixed point) and
  :func:`bptt_gradient` (autograd through a long relaxation), the references for the gradient
  check; :func:`gradient_agreement` (per-layer cosine, relative error, sign agreement);
* :func:`baseline_layer`: the layer function of the backprop baseline (:mod:`models.backprop`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from neurosim.parameters.hopfield import HopfieldParams

DTYPE = torch.float64

#: named parameters: ``W{k}`` (n_k, n_{k−1}) and ``b{k}`` (n_k,), k = 1..N
Weights = dict[str, torch.Tensor]

VARIANTS = ("two-phase", "symmetric")
ACTIVATIONS = ("hard_sigmoid", "sigmoid")


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EPParameters:
    """Sizes, time step and nudging of a layered Hopfield circuit (DESIGN.md §4.3).

    ``sizes``: ``(n0, ..., nN)``, input first, at least one layer above the input. ``dt``: the
    Euler step ε in units of the time constant τ = 1 (the paper's MNIST runs use 0.5; Brian2
    runs with τ = 1 ms and the same ``dt`` in ms). ``beta``: the nudging strength β used when a
    function is not given one. ``projected``: projected Euler (clip to [0, 1] after every step,
    the default) or the ρ'-gated form. ``free_steps``, ``nudged_steps``: the lengths of the two
    phases when training with fixed-length relaxations (:func:`train_batch`, ``exact=False``);
    the defaults are the paper's 784-500-10 settings.
    """

    sizes: tuple[int, ...]
    dt: float = 0.5
    beta: float = 0.5
    projected: bool = True
    free_steps: int = 20
    nudged_steps: int = 4

    def __post_init__(self) -> None:
        sizes = tuple(int(n) for n in self.sizes)
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(
                f"sizes needs an input and at least one more layer, all positive, got "
                f"{self.sizes!r}."
            )
        object.__setattr__(self, "sizes", sizes)
        if not (math.isfinite(self.dt) and self.dt > 0.0):
            raise ValueError(f"dt must be positive and finite, not {self.dt!r}.")
        if not math.isfinite(self.beta):
            raise ValueError(f"beta must be finite, not {self.beta!r}.")
        for name in ("free_steps", "nudged_steps"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be non-negative, not {getattr(self, name)!r}.")

    @property
    def n_layers(self) -> int:
        """N, the number of layers with dynamics (hidden layers and the output)."""
        return len(self.sizes) - 1

    @classmethod
    def for_circuit(
        cls, physics: HopfieldParams, sizes: Sequence[int], dt_ms: float, **settings: object
    ) -> EPParameters:
        """The twin of a Brian2 circuit with the physical parameters ``physics`` (the one record,
        :class:`neurosim.parameters.hopfield.HopfieldParams`) stepped every ``dt_ms``: the twin's
        time unit is the circuit's τ, so its step is dt_ms/τ."""
        return cls(tuple(sizes), dt=dt_ms / physics.tau, **settings)  # type: ignore[arg-type]


def rho(s: torch.Tensor) -> torch.Tensor:
    """The hard sigmoid clip(s, 0, 1)."""
    return torch.clamp(s, 0.0, 1.0)


def rho_derivative(s: torch.Tensor) -> torch.Tensor:
    """1 on the closed interval [0, 1], 0 outside (as torch's ``clamp`` backward)."""
    return ((s >= 0.0) & (s <= 1.0)).to(s.dtype)


# --------------------------------------------------------------------------------------------
# weights and states
# --------------------------------------------------------------------------------------------


def expected_shapes(sizes: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """Shape of every named parameter: ``W{k}`` (n_k, n_{k−1}), ``b{k}`` (n_k,)."""
    n = [int(v) for v in sizes]
    if len(n) < 2:
        raise ValueError(f"sizes needs an input and an output layer, got {sizes!r}.")
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(1, len(n)):
        shapes[f"W{k}"] = (n[k], n[k - 1])
    for k in range(1, len(n)):
        shapes[f"b{k}"] = (n[k],)
    return shapes


def layer_sizes(weights: Mapping[str, object]) -> tuple[int, ...]:
    """``(n0, ..., nN)`` read from ``W1..WN``."""
    top = 0
    while f"W{top + 1}" in weights:
        top += 1
    if top == 0:
        raise ValueError("weights need at least W1.")
    shapes = [tuple(torch.as_tensor(weights[f"W{k}"]).shape) for k in range(1, top + 1)]
    for k, shape in enumerate(shapes, start=1):
        if len(shape) != 2:
            raise ValueError(f"W{k} must be a matrix (n_{k}, n_{k - 1}), got shape {shape}.")
    return (int(shapes[0][1]),) + tuple(int(s[0]) for s in shapes)


def check_weights(weights: Mapping[str, object], sizes: Sequence[int] | None = None) -> Weights:
    """The parameters as float64 tensors, after checking that every ``W{k}``, ``b{k}`` is there
    with its shape (against ``sizes`` if given), that consecutive layers fit and that all values
    are finite. Extra names raise too (a misspelt name would otherwise be ignored)."""
    out = {name: torch.as_tensor(w, dtype=DTYPE) for name, w in weights.items()}
    found = layer_sizes(out)
    want = tuple(int(n) for n in sizes) if sizes is not None else found
    shapes = expected_shapes(want)
    for name, shape in shapes.items():
        if name not in out:
            raise ValueError(f"weights lack {name} (shape {shape}) for layer sizes {want}.")
        if tuple(out[name].shape) != shape:
            raise ValueError(
                f"{name} has shape {tuple(out[name].shape)}, expected {shape} for sizes {want}."
            )
        if not bool(torch.isfinite(out[name]).all()):
            raise ValueError(f"{name} has non-finite values.")
    extra = sorted(set(out) - set(shapes))
    if extra:
        raise ValueError(f"unexpected parameters {extra} for layer sizes {want}.")
    return out


def init_weights(
    sizes: Sequence[int], seed: int = 0, scale: float = 1.0, bias_scale: float = 0.0
) -> Weights:
    """Glorot-uniform weights as in the authors' code: W_k ~ U(−a, a) times ``scale``,
    a = √(6 / (n_{k−1} + n_k)); biases U(−1, 1) times ``bias_scale`` (0: zero biases, the
    paper's choice). Reproducible from ``seed``; drawn in the order W1..WN, b1..bN."""
    shapes = expected_shapes(sizes)
    gen = torch.Generator().manual_seed(int(seed))
    out: Weights = {}
    for name, shape in shapes.items():
        u = 2.0 * torch.rand(shape, generator=gen, dtype=DTYPE) - 1.0
        if name.startswith("W"):
            out[name] = float(scale) * math.sqrt(6.0 / (shape[0] + shape[1])) * u
        else:
            out[name] = float(bias_scale) * u
    return out


class HopfieldState(NamedTuple):
    """States of layers 1..N, each (batch, n_k): ``s[k-1]`` is s_k."""

    s: tuple[torch.Tensor, ...]

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{"s1": .., "sN": ..}``."""
        return {f"s{k}": x for k, x in enumerate(self.s, start=1)}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> HopfieldState:
        """Inverse of :meth:`as_dict` (extra keys are ignored)."""
        out = []
        while f"s{len(out) + 1}" in values:
            out.append(_batch(values[f"s{len(out) + 1}"], f"s{len(out) + 1}"))
        return cls(tuple(out))

    def rates(self) -> tuple[torch.Tensor, ...]:
        """ρ(s_k), k = 1..N."""
        return tuple(rho(x) for x in self.s)


def zero_state(sizes: Sequence[int], batch: int = 1) -> HopfieldState:
    """All states at 0 (the authors' initial state)."""
    return HopfieldState(tuple(torch.zeros(batch, int(n), dtype=DTYPE) for n in sizes[1:]))


def state_distance(a: HopfieldState, b: HopfieldState) -> float:
    """max |a − b| over all layers."""
    return max(float((x - y).abs().max()) for x, y in zip(a.s, b.s, strict=True))


def _batch(x: object, name: str) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=DTYPE)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2:
        raise ValueError(f"{name} must be (batch, n), got shape {tuple(t.shape)}.")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} has non-finite values.")
    return t


def _inputs(sizes: tuple[int, ...], x: object, d: object | None, beta: float):
    """x (batch, n0) and d (batch, nN) or None, checked; beta as a checked float."""
    xt = _batch(x, "x")
    if xt.shape[1] != sizes[0]:
        raise ValueError(f"x has {xt.shape[1]} columns, expected n0 = {sizes[0]}.")
    beta = float(beta)
    if not math.isfinite(beta):
        raise ValueError(f"beta must be finite, not {beta!r}.")
    if d is None:
        if beta != 0.0:
            raise ValueError("a nudged phase (beta != 0) needs a target d.")
        return xt, None, beta
    dt = _batch(d, "d")
    if dt.shape[1] != sizes[-1]:
        raise ValueError(f"d has {dt.shape[1]} columns, expected n_N = {sizes[-1]}.")
    if dt.shape[0] != xt.shape[0]:
        raise ValueError(f"d has batch {dt.shape[0]}, x has batch {xt.shape[0]}.")
    return xt, dt, beta


def _check_state(sizes: tuple[int, ...], state: HopfieldState, batch: int) -> HopfieldState:
    if not isinstance(state, HopfieldState):
        state = HopfieldState(tuple(state))
    if len(state.s) != len(sizes) - 1:
        raise ValueError(f"state has {len(state.s)} layers, expected {len(sizes) - 1}.")
    out = []
    for k, x in enumerate(state.s, start=1):
        t = _batch(x, f"s{k}")
        if tuple(t.shape) != (batch, sizes[k]):
            raise ValueError(f"s{k} has shape {tuple(t.shape)}, expected {(batch, sizes[k])}.")
        out.append(t)
    return HopfieldState(tuple(out))


def _setup(params: EPParameters, weights, x, d, beta, state=None):
    w = check_weights(weights, params.sizes)
    xt, dt, beta = _inputs(params.sizes, x, d, beta)
    st = None if state is None else _check_state(params.sizes, state, xt.shape[0])
    return w, xt, dt, beta, st


# --------------------------------------------------------------------------------------------
# energy and dynamics (internal versions take checked tensors)
# --------------------------------------------------------------------------------------------


def _energy(w: Weights, s: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    r = [rho(x)] + [rho(v) for v in s]
    e = sum(0.5 * (v * v).sum(-1) for v in s)
    for k in range(1, len(r)):
        e = e - ((r[k] @ w[f"W{k}"]) * r[k - 1]).sum(-1) - r[k] @ w[f"b{k}"]
    return e


def _cost(s_out: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((rho(s_out) - d) ** 2).sum(-1)


def _gradient(w, s, x, d, beta, projected) -> list[torch.Tensor]:
    """∂F/∂s_k for k = 1..N (the projected form takes ρ' = 1: its states stay in the box)."""
    top = len(s)
    r = [rho(x)] + [rho(v) for v in s]
    out = []
    for k in range(1, top + 1):
        drive = r[k - 1] @ w[f"W{k}"].T + w[f"b{k}"]
        if k < top:
            drive = drive + r[k + 1] @ w[f"W{k + 1}"]
        if projected:
            g = s[k - 1] - drive
        else:
            g = s[k - 1] - rho_derivative(s[k - 1]) * drive
        if k == top and d is not None and beta != 0.0:
            nudge = beta * (r[top] - d)
            g = g + (nudge if projected else rho_derivative(s[top - 1]) * nudge)
        out.append(g)
    return out


def _step(w, s, x, d, beta, dt, projected) -> list[torch.Tensor]:
    g = _gradient(w, s, x, d, beta, projected)
    if projected:
        return [rho(v - dt * gv) for v, gv in zip(s, g, strict=True)]
    return [v - dt * gv for v, gv in zip(s, g, strict=True)]


def _residual(w, s, x, d, beta, projected) -> float:
    """max|clip(s − ∂F/∂s) − s| (projected) or max|∂F/∂s| (gated)."""
    g = _gradient(w, s, x, d, beta, projected)
    if projected:
        return max(float((rho(v - gv) - v).abs().max()) for v, gv in zip(s, g, strict=True))
    return max(float(gv.abs().max()) for gv in g)


def energy(
    params: EPParameters, weights: Mapping[str, object], state: HopfieldState, x: object
) -> torch.Tensor:
    """E(s) per sample, (batch,) (the constant ½‖x‖² of the clamped input is left out)."""
    w, xt, _, _, st = _setup(params, weights, x, None, 0.0, state)
    return _energy(w, st.s, xt)


def cost(params: EPParameters, state: HopfieldState, d: object) -> torch.Tensor:
    """C(s) = ½‖ρ(s_N) − d‖² per sample, (batch,)."""
    dt = _batch(d, "d")
    if dt.shape[1] != params.sizes[-1]:
        raise ValueError(f"d has {dt.shape[1]} columns, expected n_N = {params.sizes[-1]}.")
    st = _check_state(params.sizes, state, dt.shape[0])
    return _cost(st.s[-1], dt)


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
    f = _energy(w, st.s, xt)
    return f if dt is None else f + beta * _cost(st.s[-1], dt)


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
    return HopfieldState(tuple(_gradient(w, st.s, xt, dt, beta, params.projected)))


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
    return HopfieldState(tuple(_step(w, st.s, xt, dt, beta, params.dt, params.projected)))


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
    return _residual(w, st.s, xt, dt, beta, params.projected)


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
        f = _energy(w, v, xt)
        if dt is not None and beta != 0.0:
            f = f + beta * _cost(v[-1], dt)
        return float(f.mean())

    if record_energy:
        energies.append(f_mean(s))
    n = 0
    while n < n_steps:
        s = _step(w, s, xt, dt, beta, params.dt, params.projected)
        n += 1
        if record_energy:
            energies.append(f_mean(s))
        if tol > 0.0 and _residual(w, s, xt, dt, beta, params.projected) < tol:
            break
    res = _residual(w, s, xt, dt, beta, params.projected)
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

    This is the projected form's fixed point whatever ``params.projected`` says: the ρ'-gated
    dynamics have units stuck below 0 and chattering at 1 instead of exact fixed points (use
    :func:`relax` to see them). Cost: a (batch, D, D) solve per iteration (D = n1 + … + nN).
    """
    w, xt, dt, beta, st = _setup(params, weights, x, d, beta, state)
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
# Equilibrium Propagation updates
# --------------------------------------------------------------------------------------------


def _correlations(x: torch.Tensor, s: Sequence[torch.Tensor]) -> Weights:
    """Batch means of ρ_k ρ_{k−1}ᵀ (``W{k}``) and ρ_k (``b{k}``): −∂F/∂θ at state s."""
    r = [rho(x)] + [rho(v) for v in s]
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
    hi_c, lo_c = _correlations(xt, plus.s), _correlations(xt, low.s)
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
    start = _correlations(xt, s)
    tele = {name: torch.zeros_like(v) for name, v in start.items()}
    prod = {name: torch.zeros_like(v) for name, v in start.items()}
    r0 = rho(xt)
    top = len(s)
    for _ in range(n_steps):
        new = _step(w, s, xt, dt, beta, params.dt, params.projected)
        r_old = [r0] + [rho(v) for v in s]
        r_new = [r0] + [rho(v) for v in new]
        if params.projected:
            rate = [torch.zeros_like(r0)] + [
                (b - a) / params.dt for a, b in zip(s, new, strict=True)
            ]
        else:
            g = _gradient(w, s, xt, dt, beta, False)
            rate = [torch.zeros_like(r0)] + [
                -rho_derivative(v) * gv for v, gv in zip(s, g, strict=True)
            ]
        for k in range(1, top + 1):
            tele[f"W{k}"] += (r_new[k].T @ r_new[k - 1] - r_old[k].T @ r_old[k - 1]) / batch
            tele[f"b{k}"] += (r_new[k] - r_old[k]).mean(0)
            prod[f"W{k}"] += (
                params.dt * (rate[k].T @ r_old[k - 1] + r_old[k].T @ rate[k - 1]) / batch
            )
            prod[f"b{k}"] += params.dt * rate[k].mean(0)
        s = new
    tele = {name: v / beta for name, v in tele.items()}
    prod = {name: v / beta for name, v in prod.items()}
    diff = {
        name: float((prod[name] - tele[name]).norm() / tele[name].norm().clamp_min(1e-300))
        for name in tele
    }
    res = _residual(w, s, xt, dt, beta, params.projected)
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
    """
    w, xt, dt, _, st = _setup(params, weights, x, d, 0.0, free)
    if dt is None:
        raise ValueError("loss_gradient needs a target d.")
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


def bptt_gradient(
    params: EPParameters,
    weights: Mapping[str, object],
    x: object,
    d: object,
    steps: int = 500,
    state: HopfieldState | None = None,
) -> LossGradient:
    """∂L/∂θ by backprop through time: ``steps`` free-phase steps of the projected dynamics (step
    ``params.dt``, whatever ``params.projected`` says, like :func:`loss_gradient`) from ``state``
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
            s = _step(leaves, s, xt, None, 0.0, params.dt, True)
        loss = _cost(s[-1], dt).mean()
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


# --------------------------------------------------------------------------------------------
# feed-forward backprop baseline
# --------------------------------------------------------------------------------------------


def baseline_layer(activation: str = "hard_sigmoid") -> Callable[[int, torch.Tensor], torch.Tensor]:
    """The layer function of the backprop baseline (:class:`models.backprop.FeedForward`):
    r_k = f(W_k r_{k−1} + b_k) with ``"hard_sigmoid"`` the circuit's own ρ (the two then differ
    only in the learning rule and in the circuit's top-down feedback; like the circuit, units
    saturated outside (0, 1) pass no gradient) or ``"sigmoid"`` (1/(1 + e^{−u}); never saturates
    exactly, a conventional baseline if hard-sigmoid units die)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}.")
    if activation == "hard_sigmoid":
        return lambda k, u: rho(u)
    return lambda k, u: torch.sigmoid(u)


__all__ = [
    "ACTIVATIONS",
    "VARIANTS",
    "Agreement",
    "baseline_layer",
    "ContinualUpdate",
    "EPParameters",
    "EPUpdate",
    "HopfieldState",
    "LossGradient",
    "Relaxation",
    "Weights",
    "bptt_gradient",
    "check_weights",
    "continual_update",
    "cost",
    "derivatives",
    "energy",
    "ep_update",
    "expected_shapes",
    "fixed_point",
    "gradient",
    "gradient_agreement",
    "init_weights",
    "layer_sizes",
    "loss_gradient",
    "relax",
    "residual",
    "rho",
    "rho_derivative",
    "state_distance",
    "step",
    "total_energy",
    "train_batch",
    "zero_state",
]

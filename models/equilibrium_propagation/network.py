"""The twin's network: its parameter record, ρ, the named weights and the layer states, and the
checks every public function runs on its arguments (:mod:`models.equilibrium_propagation`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from neurosim.parameters.hopfield import HopfieldParams

DTYPE = torch.float64

#: named parameters: ``W{k}`` (n_k, n_{k−1}) and ``b{k}`` (n_k,), k = 1..N
Weights = dict[str, torch.Tensor]

ACTIVATIONS = ("hard_sigmoid", "sigmoid")
#: rate functions ρ of the circuit's units (:class:`EPParameters` ``activation``)
RATE_FUNCTIONS = ("hard_sigmoid", "smooth_sigmoid")


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
    the defaults are the paper's 784-500-10 settings. ``activation``: ρ of layers 1..N,
    ``"hard_sigmoid"`` clip(s, 0, 1) (default) or ``"smooth_sigmoid"`` 1/(1 + e^{−4(s − 0.5)})
    (Laborieux et al. 2021), whose dynamics are plain Euler of ds/dt = −∂F/∂s with its ρ'
    (no box, so ``projected`` does not apply); the clamped input's rate stays clip(x, 0, 1).
    """

    sizes: tuple[int, ...]
    dt: float = 0.5
    beta: float = 0.5
    projected: bool = True
    free_steps: int = 20
    nudged_steps: int = 4
    activation: str = "hard_sigmoid"

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
        if self.activation not in RATE_FUNCTIONS:
            raise ValueError(
                f"activation must be one of {RATE_FUNCTIONS}, not {self.activation!r}."
            )

    @property
    def smooth(self) -> bool:
        """ρ is the smooth sigmoid (plain Euler dynamics, no clipping anywhere)."""
        return self.activation == "smooth_sigmoid"

    @property
    def rate(self) -> RateFunction:
        """ρ, ρ' and ρ'' of layers 1..N."""
        return RATES[self.activation]

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
        settings.setdefault("activation", physics.activation)
        return cls(tuple(sizes), dt=dt_ms / physics.tau, **settings)  # type: ignore[arg-type]


def rho(s: torch.Tensor) -> torch.Tensor:
    """The hard sigmoid clip(s, 0, 1)."""
    return torch.clamp(s, 0.0, 1.0)


def rho_derivative(s: torch.Tensor) -> torch.Tensor:
    """1 on the closed interval [0, 1], 0 outside (as torch's ``clamp`` backward)."""
    return ((s >= 0.0) & (s <= 1.0)).to(s.dtype)


def smooth_sigmoid(s: torch.Tensor) -> torch.Tensor:
    """Laborieux et al.'s (2021) σ(s) = 1/(1 + e^{−4(s − 0.5)}): the hard sigmoid's slope at 0.5,
    smooth everywhere."""
    return 1.0 / (1.0 + torch.exp(-4.0 * (s - 0.5)))


def smooth_sigmoid_derivative(s: torch.Tensor) -> torch.Tensor:
    """σ' = 4σ(1 − σ)."""
    r = smooth_sigmoid(s)
    return 4.0 * r * (1.0 - r)


def smooth_sigmoid_second(s: torch.Tensor) -> torch.Tensor:
    """σ'' = 4σ'(1 − 2σ)."""
    r = smooth_sigmoid(s)
    return 16.0 * r * (1.0 - r) * (1.0 - 2.0 * r)


class RateFunction(NamedTuple):
    """ρ of layers 1..N with its first and second derivatives (``second`` None: piecewise
    linear, 0 wherever it exists)."""

    name: str
    rho: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor], torch.Tensor]
    second: Callable[[torch.Tensor], torch.Tensor] | None


HARD_SIGMOID = RateFunction("hard_sigmoid", rho, rho_derivative, None)
SMOOTH_SIGMOID = RateFunction(
    "smooth_sigmoid", smooth_sigmoid, smooth_sigmoid_derivative, smooth_sigmoid_second
)
#: the rate functions by name
RATES = {r.name: r for r in (HARD_SIGMOID, SMOOTH_SIGMOID)}


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

    def rates(self, rate: RateFunction = HARD_SIGMOID) -> tuple[torch.Tensor, ...]:
        """ρ(s_k), k = 1..N (``rate``: the parameters' :attr:`EPParameters.rate`)."""
        return tuple(rate.rho(x) for x in self.s)


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

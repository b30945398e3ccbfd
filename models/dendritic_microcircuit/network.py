"""The microcircuit twin's network: its parameter record and rate functions, the named weights
(shapes, checks, initialisation, self-predicting and tied closed forms), the state of somatic
potentials and the activities it implies, and the argument checks every public function runs
(:mod:`models.dendritic_microcircuit`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch

from neurosim.parameters.microcircuit import MicrocircuitParams

DTYPE = torch.float64

#: named weight matrices, shape (post, pre)
Weights = dict[str, torch.Tensor]


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
# state
# --------------------------------------------------------------------------------------------


class MicrocircuitState(NamedTuple):
    """Somatic potentials, each (batch, n): ``u[k-1]`` is u_k (k = 1..N), ``uI[k-1]`` is u^I_k
    (k = 1..N-1, n_{k+1} cells); with prospective neurons also their prospective potentials
    ``ub``, ``ubI`` (same layout; empty: ŭ = u, the state taken at rest or at a fixed point)."""

    u: tuple[torch.Tensor, ...]
    uI: tuple[torch.Tensor, ...]
    ub: tuple[torch.Tensor, ...] = ()
    ubI: tuple[torch.Tensor, ...] = ()

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{"u1": .., "uN": .., "uI1": ..}`` (and ``ub1``, ``ubI1``, .. when present)."""
        out = {f"u{k}": x for k, x in enumerate(self.u, start=1)}
        out.update({f"uI{k}": x for k, x in enumerate(self.uI, start=1)})
        out.update({f"ub{k}": x for k, x in enumerate(self.ub, start=1)})
        out.update({f"ubI{k}": x for k, x in enumerate(self.ubI, start=1)})
        return out

    def prospective(self) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """(ŭ, ŭ^I): the prospective potentials, or u and u^I where the state has none."""
        return (self.ub or self.u), (self.ubI or self.uI)

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> MicrocircuitState:
        """Inverse of :meth:`as_dict` (extra keys such as ``vA1`` are ignored)."""
        out: dict[str, list[torch.Tensor]] = {"u": [], "uI": [], "ub": [], "ubI": []}
        for name, xs in out.items():
            while f"{name}{len(xs) + 1}" in values:
                xs.append(_batch(values[f"{name}{len(xs) + 1}"]))
        return cls(*(tuple(xs) for xs in out.values()))


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
    u, uI = state.prospective() if params.prospective else (state.u, state.uI)
    r = [r0] + [phi(x) for x in u]
    rI = [phi(x) for x in uI]
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
    rates ``r{k}`` (``r0`` the input) and ``rI{k}`` (φ of ``ub{k}``, ``ubI{k}`` with prospective
    neurons)."""
    w = check_weights(weights)
    r, rI, vB, vA, vI = _drives(params, w, state, _batch(r0))
    out = state.as_dict()
    out.update({f"r{k}": x for k, x in enumerate(r)})
    out.update({f"vB{k}": x for k, x in enumerate(vB, start=1)})
    out.update({f"vA{k}": x for k, x in enumerate(vA, start=1)})
    out.update({f"vI{k}": x for k, x in enumerate(vI, start=1)})
    out.update({f"rI{k}": x for k, x in enumerate(rI, start=1)})
    return out

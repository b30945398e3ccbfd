"""Learning in time, as the Brian2 circuit does it: every step the induction terms of the rules,
low-pass filtered per example (τ_w dΔ/dt = I − Δ), move the weights, dw/dt = η·gate·Σ_b Δ_b, the
sum over the examples of a mini-batch (:mod:`models.dendritic_microcircuit`; the circuit's batch
mode, ``circuits/microcircuit.py``). A batch of one is the circuit as it is by default.

One step (:func:`learning_step`) follows the circuit's schedule, every term at time t: the input
rate (the input filter's value, or with prospective neurons its prospective value), the rates of
the state, the dendritic sums and plasticity factors from them; then the filters and the weights
(explicit Euler: w reads Δ of the step's start), then the potentials with the weights of the
step's start (:func:`~models.dendritic_microcircuit.dynamics.step`) and the input filter
dr0/dt = (x − r0)/τ_in. Rate read-out, no noise; top-down weights fixed or learned (the circuit's
rule (φ(u_k) − φ(v_A,td)) r_{k+1}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch

from models.dendritic_microcircuit.dynamics import step
from models.dendritic_microcircuit.network import (
    DTYPE,
    MicrocircuitParameters,
    MicrocircuitState,
    Weights,
    _batch,
    _drives,
    check_weights,
    expected_shapes,
    layer_sizes,
    zero_state,
)
from models.dendritic_microcircuit.updates import induction_factors

TOPDOWN = ("fixed", "learned")


class LearningState(NamedTuple):
    """What a learning run carries from step to step, each with a leading batch dimension: the
    somatic potentials, the input filter ``r0`` and its value one step earlier ``r0_old``
    (prospective input rate), and the low-pass filtered induction ``deltas`` of every plastic
    projection, (batch, post, pre)."""

    neurons: MicrocircuitState
    r0: torch.Tensor
    r0_old: torch.Tensor
    deltas: dict[str, torch.Tensor]


def plastic_names(weights: Mapping[str, torch.Tensor], topdown: str = "fixed") -> tuple[str, ...]:
    """The projections whose weights learn: W, W^IP, W^PI, and B when it is learned."""
    if topdown not in TOPDOWN:
        raise ValueError(f"topdown must be one of {TOPDOWN} in the learning twin, not {topdown!r}")
    names = expected_shapes(layer_sizes(weights))
    return tuple(n for n in names if topdown == "learned" or not n.startswith("B"))


def learning_start(
    weights: Mapping[str, torch.Tensor], batch: int = 1, topdown: str = "fixed"
) -> LearningState:
    """Rest: potentials, the input filter and every Δ at 0 (the circuit's compiled defaults)."""
    w = check_weights(weights)
    n0 = layer_sizes(w)[0]
    zeros = torch.zeros(batch, n0, dtype=DTYPE)
    deltas = {
        name: torch.zeros(batch, *w[name].shape, dtype=DTYPE) for name in plastic_names(w, topdown)
    }
    return LearningState(zero_state(w, batch), zeros, zeros.clone(), deltas)


def _inductions(
    params: MicrocircuitParameters, w: Weights, drives: tuple, topdown: str
) -> dict[str, torch.Tensor]:
    """Each example's induction term I = post ⊗ pre of every plastic projection, (batch, post,
    pre), from the rules' one definition (:func:`~models.dendritic_microcircuit.updates
    .induction_factors`)."""
    return {
        name: post[:, :, None] * pre[:, None, :]
        for name, (post, pre) in induction_factors(params, w, drives, topdown).items()
    }


def learning_step(
    params: MicrocircuitParameters,
    weights: Mapping[str, torch.Tensor],
    state: LearningState,
    x: object,
    u_target: object | None = None,
    nudge: float | torch.Tensor = 0.0,
    gate: float = 1.0,
    eta: Mapping[str, float] | None = None,
    dt: float = 0.1,
    topdown: str = "fixed",
) -> tuple[Weights, LearningState]:
    """One step of ``dt`` ms of the learning circuit on a mini-batch: inputs ``x`` (batch, n0),
    target potentials ``u_target`` (batch, n_N), ``nudge`` and the plasticity ``gate`` shared by
    the batch, learning rates ``eta`` by projection name (missing: 0). Every weight changes by
    dt·η·gate·Σ_b Δ_b, the sum of the examples' filtered inductions of the step's start (the
    circuit's batch mode); returns the new weights and state."""
    w = check_weights(weights)
    eta = eta or {}
    x = _batch(x)
    if params.prospective:  # the input filter's prospective value: x of the previous step
        r_in = state.r0_old + (state.r0 - state.r0_old) * params.tau_in / dt
    else:
        r_in = state.r0
    drives = _drives(params, w, state.neurons, r_in)
    inductions = _inductions(params, w, drives, topdown)
    new_w = dict(w)
    deltas = {}
    for name, delta in state.deltas.items():
        deltas[name] = delta + dt * (inductions[name] - delta) / params.tau_w
        new_w[name] = w[name] + dt * eta.get(name, 0.0) * gate * delta.sum(0)
    neurons = step(params, w, state.neurons, r_in, u_target, nudge, dt)
    r0 = state.r0 + dt * (x - state.r0) / params.tau_in
    return new_w, LearningState(neurons, r0, state.r0, deltas)

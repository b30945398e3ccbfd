"""Online EP training and evaluation on a compiled build, one function each, used by the protocol
and by the virtual experiments alike (one way to train).

Every example restarts the states at 0, relaxes freely, is nudged toward its target and learns
in-run; P presentations make one run of the build, a shorter last chunk is padded with examples
at β = 0 (no update), and the weights and states are carried from run to run. The read-out is
argmax ρ(s_N) at the end of the free phase. Batch mode (``plan.batch`` = B): each presentation
shows B examples to B copies sharing their weights and learns their summed update (a
mini-batch); an epoch trains on the first ⌊n/B⌋·B examples of its permutation (the few left over
are left out of that epoch, a different few each epoch), and an evaluation pads its last
presentation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from neurosim.engine import RunResult, Simulation
from neurosim.seeding import run_seed
from protocols.equilibrium_propagation.layout import Plan, padded, timed_layout
from protocols.equilibrium_propagation.simulation import rule_values


class Pass(NamedTuple):
    """One pass over a set of examples: the carried run values, the output states at the end of
    every example's free phase (ρ is increasing, so their argmax is the rates'), the simulation
    wall time, and the states s at the end of every example's free phase of each recorded layer
    (``layer{k}`` → examples × units)."""

    values: dict[str, Any]
    outputs: np.ndarray
    wall_seconds: float
    free_states: dict[str, np.ndarray] = {}


def run_chunks(
    sim: Simulation,
    circuit: Any,
    plan: Plan,
    values: Mapping[str, Any],
    x: np.ndarray,
    d: np.ndarray,
    *,
    learn: bool,
    seed: int,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> Pass:
    """Run ``x`` through the circuit, P examples per run. ``learn``: nudge at β and carry the
    weights from run to run; otherwise β = 0 and learning rates 0. ``on_result(chunk, result)``
    sees every run."""
    P, N, B = plan.P, plan.n_layers, plan.batch
    structure = circuit.Structure(
        sizes=plan.sizes, readout=plan.readout, reciprocal=plan.reciprocal,
        population=plan.population,
    )  # fmt: skip
    keys = circuit.state_keys(structure)
    free_rows = plan.free_end_rows(P)
    run_values = dict(values)
    if not learn:
        run_values.update(rule_values(circuit, plan, 0.0))
    outs, wall = [], 0.0
    states: dict[str, list[np.ndarray]] = {}
    if learn and B > 1 and len(x) % B:
        raise ValueError(f"learning takes whole mini-batches: {len(x)} examples, batch {B}")
    for c, start in enumerate(range(0, len(x), P * B)):
        xs, dss = x[start : start + P * B], d[start : start + P * B]
        n = len(xs)
        betas = np.zeros(P)
        if learn:
            betas[: n // B] = plan.beta
        tv, _, _ = timed_layout(circuit, plan, padded(xs, P * B), padded(dss, P * B), betas)
        result = sim.run(values=run_values, timed=tv, seed=run_seed(seed, c), read=keys)
        if on_result is not None:
            on_result(c, result)
        wall += result.wall_seconds
        if learn:
            run_values.update(result.state)
        s_out = result.monitors[f"layer{N}"]["s"][free_rows[: -(-n // B)]]
        s_out = circuit.unbatch_rows(s_out, B)[:n]
        # states, not clip(s): the hard sigmoid's stay in [0, 1] anyway, and clipping the smooth
        # sigmoid's (which may pass 1) would make ties of distinct outputs
        outs.append(s_out)
        for k in range(1, N + 1):
            if "s" in result.monitors.get(f"layer{k}", {}):
                rows = result.monitors[f"layer{k}"]["s"][free_rows[: -(-n // B)]]
                states.setdefault(f"layer{k}", []).append(circuit.unbatch_rows(rows, B)[:n])
    carried = {**values, **{k: run_values[k] for k in keys if k in run_values}}
    free = {k: np.concatenate(v) for k, v in states.items()}
    return Pass(carried, np.concatenate(outs), wall, free)


def train(
    sim: Simulation,
    circuit: Any,
    plan: Plan,
    values: Mapping[str, Any],
    x: np.ndarray,
    d: np.ndarray,
    *,
    epochs: int,
    rng: np.random.Generator,
    lr_decay: float,
    epoch_seed: Callable[[int], int],
    first_epoch: int = 0,
    on_epoch: Callable[[int, Pass, np.ndarray], None] | None = None,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> dict[str, Any]:
    """Online EP for ``epochs`` passes over ``x``, each in the order ``rng.permutation``, the
    rates × lr_decay^epoch (epochs counted from ``first_epoch``, to continue a training), the
    runs of epoch e seeded from ``epoch_seed(e)``; ``on_epoch(epoch, pass, order)`` after each.
    Returns the carried run values (weights, biases, states)."""
    values = dict(values)
    for epoch in range(first_epoch, first_epoch + epochs):
        values.update(rule_values(circuit, plan, lr_decay**epoch))
        perm = rng.permutation(len(x))
        perm = perm[: len(x) // plan.batch * plan.batch]  # whole mini-batches
        done = run_chunks(
            sim, circuit, plan, values, x[perm], d[perm], learn=True, seed=epoch_seed(epoch),
            on_result=on_result,
        )  # fmt: skip
        values = done.values
        if on_epoch is not None:
            on_epoch(epoch, done, perm)
    return values


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose most active output cell is the label's."""
    return float(np.mean(np.argmax(outputs, axis=1) == labels))

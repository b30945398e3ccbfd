"""Batch mode, shared by the circuits (issue 14; GeNN's batch mode): B copies of a circuit side by
side in one build, each on its own example, one weight per synapse shared by the copies and their
weight changes summed (mini-batch learning).

Brian2 has no batch dimension, so a circuit in batch mode makes every group one ``NeuronGroup``
of B·n cells (copy b holds cells b·n .. (b+1)·n − 1, copy-major) and every projection one
``Synapses`` object of B dense blocks on the diagonal
(:func:`~neurosim.connectivity.batched_connectivity`). Each copy holds its own weights, and the
copies are kept *equal* rather than one weight being stored once: a summed variable reads only
the synapse's own, pre- and postsynaptic variables, so a weight held elsewhere could not be read
where it is used. :func:`tie_copies` builds what keeps them equal: a group of one cell per shared
value that sums the copies' changes, and a ``Synapses`` object from it to the copies that adds
the sum to every copy (the same increment of the same value, so the copies stay bitwise equal).

The data layout: K·B examples are K presentations (rows) of B copies side by side
(:func:`batch_rows`); recordings come back the same way (:func:`unbatch_rows`); run values of a
shared variable hold the B copies one after the other (:func:`tile_copies`, :func:`first_copy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from neurosim.schedule import on_own_clock, set_slot


def check_batch(batch: object) -> int:
    """``batch`` as a whole number of copies ≥ 1; a ValueError in one sentence otherwise."""
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ValueError(f"batch must be a whole number of copies ≥ 1, got {batch!r}")
    return int(batch)


def batch_rows(values: np.ndarray, batch: int) -> np.ndarray:
    """Batch mode: K·B examples (rows) as K presentations of B copies side by side (row k holds
    examples k·B .. k·B + B − 1, copy b's columns b·n .. (b+1)·n − 1), the layout of
    ``inputs`` and ``targets`` for a build of ``batch`` copies."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[0] % batch:
        raise ValueError(f"{values.shape[0]} examples do not fill batches of {batch}")
    return values.reshape(values.shape[0] // batch, batch * values.shape[1])


def unbatch_rows(values: np.ndarray, batch: int) -> np.ndarray:
    """The inverse of :func:`batch_rows`: recorded rows of B copies side by side (rows × B·n) →
    one row per example and copy (rows·B × n), copy b of row k at k·B + b."""
    values = np.asarray(values)
    return values.reshape(values.shape[0] * batch, values.shape[1] // batch)


def tile_copies(values: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Run values of one copy (flat arrays) repeated for ``batch`` copies, one after the other."""
    if batch == 1:
        return dict(values)
    return {key: np.tile(np.asarray(value), batch) for key, value in values.items()}


def first_copy(values: np.ndarray, n: int) -> np.ndarray:
    """The first copy's ``n`` entries of a run value that holds the copies one after the other
    (the copies of a shared weight are equal, so any copy is the weight)."""
    arr = np.asarray(values)
    if arr.size % n:
        raise ValueError(f"{arr.size} values are not whole copies of {n}")
    return arr.reshape(-1)[:n]


def tie_copies(
    owner: Any,
    n_shared: int,
    batch: int,
    summed: Mapping[str, str],
    apply: str,
    *,
    sum_slot: tuple[str, int],
    apply_slot: tuple[str, int],
    every: Any = None,
    namespace: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, tuple[np.ndarray, np.ndarray]]:
    """Keep the ``batch`` copies of variables of ``owner`` (a group or ``Synapses`` whose copy b
    holds entries b·n_shared .. (b+1)·n_shared − 1) equal.

    A group ``<owner>_sum`` of ``n_shared`` cells holds, for every ``name: expression`` of
    ``summed``, the sum over the copies of the expression of the copy entries (``expression`` in
    the copies' variables with ``_post``; a summed variable of ``<owner>_tie``, one synapse per
    copy entry, B·n_shared in all, run at ``sum_slot``); ``apply`` is the code of the tie that
    then changes every copy (``<v>_post`` the copies' variables, ``<name>_pre`` the sums; run at
    ``apply_slot``). ``every``: a period for both (once per example), None: every step.
    Returns the group, the tie and its (i, j)."""
    from brian2 import NeuronGroup, Synapses

    sums = NeuronGroup(
        n_shared, "\n".join(f"{name} : 1" for name in summed), name=f"{owner.name}_sum"
    )
    tie = Synapses(
        sums,
        owner,
        "\n".join(f"{name}_pre = {expr} : 1 (summed)" for name, expr in summed.items()),
        name=f"{owner.name}_tie",
        namespace=None if namespace is None else dict(namespace),
    )
    i = np.tile(np.arange(n_shared, dtype=np.int32), batch)
    j = np.arange(n_shared * batch, dtype=np.int32)
    tie.connect(i=i, j=j)
    for name, updater in zip(summed, tie.summed_updaters.values(), strict=True):
        set_slot(updater, sum_slot)
        if every is not None:
            on_own_clock(updater, every, f"{owner.name}_{name}_clock")
    if every is None:
        runner = tie.run_regularly(apply, name=f"{owner.name}_tie_apply")
    else:
        runner = tie.run_regularly(apply, dt=every, name=f"{owner.name}_tie_apply")
    set_slot(runner, apply_slot)
    return sums, tie, (i, j)

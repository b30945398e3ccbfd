"""The result record of ``neurosim run consciousness-prior``, read by
:func:`analysis.consciousness_prior.analyse`: plain arrays, no torch objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ConsciousnessPriorRecord:
    """One run: the world's graph, the bottleneck's attention, both models' errors and curves.

    ``parents`` (n, n) boolean, parents[v, u]: u is a parent of v; ``world_weights`` the
    mechanisms' weights. ``attention_scores`` and ``selected`` (n, n) are in variable space
    (row: queried variable, column: the variable its slot holds), after matching slots to
    variables; ``precision_per_query`` (n,) the share of each query's k slots that are parents,
    ``parent_precision_chance`` the precision of k slots drawn at random. ``errors_in`` and
    ``errors_shift`` hold, per model (``bottleneck``, ``baseline``), the normalised error of
    each queried variable's next value in distribution and with its non-parents shifted;
    ``history`` per model the training record of :func:`models.consciousness_prior.train`.
    ``slot_values`` per model (held-out samples, slots) and ``latent_test`` (held-out samples,
    variables): what the probes of the true variables from the slots read."""

    parents: np.ndarray
    world_weights: np.ndarray
    attention_scores: np.ndarray
    selected: np.ndarray
    precision_per_query: np.ndarray
    parent_precision_chance: float
    errors_in: Mapping[str, np.ndarray]
    errors_shift: Mapping[str, np.ndarray]
    history: Mapping[str, Mapping[str, list[float]]]
    slot_values: Mapping[str, np.ndarray] = field(default_factory=dict)
    latent_test: np.ndarray | None = None

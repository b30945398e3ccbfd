"""The result record of ``neurosim run icf``, read by :func:`analysis.icf.analyse`: arrays over
the 121 positions of the grid world, no torch objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ICFRecord:
    """One trained model, measured on every state (:func:`models.icf.evaluate`).

    ``features`` (121, n) and ``positions`` (121, 2, the square's corner (x, y));
    ``selectivity_matrix`` S[k, a] and ``policy_matrix`` P[k, a] (n, 4); ``matching``: the
    action matched to each feature (−1: none); ``feature_r2_best``: per feature, the R² of a line
    on its best coordinate; ``history``: the training record of :func:`models.icf.train`.
    The continuous variant adds ``phi_cluster_alignment`` (4, 4) and ``phi_action_share`` (4,)."""

    variant: str
    features: np.ndarray
    positions: np.ndarray
    selectivity_matrix: np.ndarray
    policy_matrix: np.ndarray
    matching: Sequence[int]
    feature_r2_best: Sequence[float]
    history: Mapping[str, Any]
    actions: tuple[str, ...]
    phi_cluster_alignment: np.ndarray | None = None
    phi_action_share: np.ndarray | None = None

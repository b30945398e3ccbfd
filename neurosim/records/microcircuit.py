"""What a feedback-cancellation run hands to :mod:`analysis.microcircuit`: one frozen record per
stage, plain arrays only (DESIGN.md §2: analysis reads arrays, not live networks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class SelfPredictingRecord:
    """The self-predicting stage: apical RMS at each pattern end (patterns × hidden layers), and
    per hidden layer k the interneuron and next-layer rates on held-out inputs before and after
    learning, and the cosine of each lateral weight with its closed form after every chunk."""

    stage: ClassVar[str] = "self-predicting"
    pattern_ms: float
    apical_rms: np.ndarray
    interneuron_rates: Mapping[int, np.ndarray]
    next_layer_rates: Mapping[int, np.ndarray]
    interneuron_rates_start: Mapping[int, np.ndarray]
    next_layer_rates_start: Mapping[int, np.ndarray]
    lateral_cosine_trace: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class SupervisedRecord:
    """The supervised stage: the test metric (``accuracy`` or ``mse``) before and after every
    epoch per learner (``circuit``, ``shallow``), backprop's after each of its epochs, the angle
    between W_{k+1} and B_kᵀ after each training run, and the apical RMS after each epoch."""

    stage: ClassVar[str] = "supervised"
    pattern_ms: float
    metric: str
    history: Mapping[str, Sequence[float]]
    backprop_history: Sequence[float] | None
    angles: np.ndarray
    apical_rms: np.ndarray


@dataclass(frozen=True)
class ErrorTransportRecord:
    """The error-transport check: per nudging strength the mean cosines of the apical potentials
    with the backprop error (``apical_cosine_{k}_mean``) and of the forward-weight induction with
    minus the gradient (``dW_cosine_{k}_mean``)."""

    stage: ClassVar[str] = "error-transport"
    pattern_ms: float
    nudges: np.ndarray
    curves: Mapping[str, np.ndarray]


FeedbackCancellationRecord = SelfPredictingRecord | SupervisedRecord | ErrorTransportRecord

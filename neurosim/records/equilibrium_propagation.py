"""The result record of ``neurosim run equilibrium-propagation``, read by
:func:`analysis.equilibrium_propagation.analyse`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EPRecord:
    """Arrays of one run. ``stage``: ``"train"`` or ``"gradient-check"``.

    Training: ``variant``, ``history`` (``test_accuracy`` after each epoch, epoch 0 before
    training, ``train_accuracy_online``, ``lr_scale``, ``wall_seconds``), ``backprop_history``
    (test accuracy of the baseline per epoch), ``grad_curve`` (the gradient check against β, per
    nudging mode, measure and parameter; :func:`protocols.equilibrium_propagation.gradient_check.
    curve_arrays`) and ``trace`` (one test example, every step). Gradient-check stage:
    ``grad_curve``, ``dts`` (the steps of the continual check) and ``continual_error`` /
    ``continual_error_exact`` (per parameter, one value per step)."""

    stage: str
    variant: str | None = None
    history: dict[str, list[Any]] | None = None
    backprop_history: list[float] | None = None
    grad_curve: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None
    dts: np.ndarray | None = None
    continual_error: dict[str, np.ndarray] | None = None
    continual_error_exact: dict[str, np.ndarray] | None = None

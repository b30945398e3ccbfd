"""What the dendritic-prediction protocol measured, as ``analysis/dendritic_prediction.py`` reads
it (DESIGN.md §4.1): the dendritic prediction φ(V*_w) sample by sample, the teacher it should
follow, and the weights over learning. Arrays only, no live simulation objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RateFunction:
    """φ(u) = φ_max/(1 + k·exp(β(θ − u))), in 1/ms."""

    phi_max: float
    k: float
    beta: float
    theta: float


@dataclass(frozen=True)
class DendriticPredictionRecord:
    """The arrays of one run, from which the analysis computes φ(U_M) and the correlations."""

    #: φ(V*_w) at every recorded sample of the learning runs (all epochs, in order)
    prediction: np.ndarray
    #: each sample's time step within the pattern (to look up the teacher)
    pattern_step: np.ndarray
    #: φ(V*_w) and pattern steps of the test run (teacher and plasticity off)
    test_prediction: np.ndarray
    test_pattern_step: np.ndarray
    #: the teacher's conductances over one pattern, one value per time step
    teacher_gE: np.ndarray
    teacher_gI: np.ndarray
    #: (E_E, E_I): the teacher's reversal potentials
    reversal: tuple[float, float]
    rate_function: RateFunction
    samples_per_repetition: int
    #: how many repetitions at the start and at the end are compared
    correlation_repetitions: int
    #: the weights once per repetition (time in s, samples × inputs)
    weights_t: np.ndarray
    weights: np.ndarray
    #: sample times within one pattern (ms), for the traces figure
    pattern_t_ms: np.ndarray

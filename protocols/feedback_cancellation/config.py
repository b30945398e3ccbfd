"""The ``[protocol]`` table of feedback cancellation. Its defaults are those of the ``digits``
preset (rate read-out); every data set's settings are written out in ``presets/*.toml``."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from neurosim.spike_sample import SpikeSampling

STAGES = ("self-predicting", "supervised", "error-transport")


class FeedbackCancellationConfig(SpikeSampling):
    """The ``[protocol]`` table."""

    stage: Literal["self-predicting", "supervised", "error-transport"] = "supervised"
    dt_ms: float = Field(0.1, gt=0, le=1.0)
    pattern_ms: float = Field(100.0, gt=0)
    learning_lag_ms: float = Field(20.0, ge=0, description="plasticity off after each change")
    patterns_per_run: int | None = Field(
        None, ge=1, le=100000, description="patterns per compiled run (default: the test set)"
    )
    n_train: int | None = Field(None, ge=1, description="first n training examples (None: all)")
    n_test: int | None = Field(None, ge=1, description="first n test examples (None: all)")
    nudge: float = Field(1.0, ge=0, description="output nudging strength (× g_som) in training")
    topdown: Literal["fixed", "learned", "tied"] | None = Field(
        None, description="top-down B: default 'tied' (B = Wᵀ) for error-transport, else 'fixed'"
    )
    p_fail: float = Field(0.0, ge=0, le=1, description="release failure (spiking read-out)")
    eta_forward: list[float] = Field(
        [0.0125, 0.0025], description="supervised: learning rates of W1..WN (1/ms)"
    )
    eta_ip: float = Field(2e-3, ge=0, description="supervised: pyramidal → interneuron (1/ms)")
    eta_pi: float = Field(0.0, ge=0, description="supervised: interneuron → pyramidal (1/ms)")
    eta_topdown: float = Field(0.0, ge=0, description="top-down B (topdown='learned')")
    eta_decay: float = Field(
        0.9, gt=0, le=1, description="supervised: forward rates × eta_decay per epoch"
    )
    w_init: Literal["gain", "teacher"] = Field(
        "gain",
        description="U(−a, a) of W_k: a = w_gain/√n_pre ('gain'), or matched to the teacher's "
        "potentials ('teacher', data set teacher with one hidden layer)",
    )
    w_gain: float = Field(8.0, gt=0, description="w_init 'gain': a = w_gain/√n_pre")
    w_scale: list[float] | None = Field(None, description="U(−a, a) of W1..WN (overrides w_init)")
    b_scale: float = Field(2.0, ge=0, description="U(−b, b) of B; 0: the scale of W_{k+1}")
    lateral_scale: float = Field(
        0.1, ge=0, description="U(−a, a)·‖closed form‖ scale of random initial lateral weights"
    )
    lateral_init: Literal["closed-form", "random"] = Field(
        "closed-form", description="supervised stage: lateral weights start self-predicting"
    )
    self_predicting_patterns: int = Field(
        6000, ge=2, description="self-predicting stage: patterns presented"
    )
    self_predicting_eta_ip: float = Field(
        1e-2, ge=0, description="self-predicting stage: pyramidal → interneuron (1/ms)"
    )
    self_predicting_eta_pi: float = Field(
        1e-2, ge=0, description="self-predicting stage: interneuron → pyramidal (1/ms)"
    )
    window: int = Field(50, ge=1, description="patterns averaged for start/end statistics")
    evaluation: Literal["auto", "simulation", "fixed-point"] = Field(
        "auto",
        description="test and training-set passes: the circuit simulated, or its settled state "
        "solved by the torch twin (rate read-out without noise only); 'auto': the fixed point "
        "where it is allowed",
    )
    shallow: bool = Field(True, description="also train the shallow learner (output weights)")
    train_eval: bool = Field(True, description="evaluate the training set after the last epoch")
    backprop_epochs: int = Field(100, ge=0)
    backprop_lr: float = Field(1e-3, gt=0)
    references: bool = Field(
        True,
        description="logistic regression and the reference MLP on the raw data, where the data "
        "set has published ones (MNIST-1D); cached",
    )
    transport_nudges: list[float] = Field(
        [1e-3, 1e-2, 1e-1, 1.0], description="error-transport: nudging strengths (× g_som)"
    )
    transport_patterns: int = Field(20, ge=1, le=10000, description="error-transport: test inputs")
    settle_ms: float = Field(
        400.0, gt=0, description="error-transport: settling time per input (≫ τ_w)"
    )

    @property
    def top_down(self) -> str:
        """The resolved top-down mode (``topdown`` or the stage's default)."""
        if self.topdown is not None:
            return self.topdown
        return "tied" if self.stage == "error-transport" else "fixed"

    @model_validator(mode="after")
    def _grid(self) -> FeedbackCancellationConfig:
        for name in ("pattern_ms", "learning_lag_ms"):
            ratio = getattr(self, name) / self.dt_ms
            if abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(f"{name} must be a whole number of time steps dt_ms")
        if self.learning_lag_ms >= self.pattern_ms:
            raise ValueError("learning_lag_ms must be shorter than pattern_ms")
        if not self.transport_nudges or any(v <= 0 for v in self.transport_nudges):
            raise ValueError("transport_nudges must hold positive nudging strengths")
        for name in ("eta_forward", "w_scale"):
            vals = getattr(self, name)
            if vals is not None and any(not (math.isfinite(v) and v >= 0) for v in vals):
                raise ValueError(f"{name} must hold non-negative numbers")
        return self

"""The ``[protocol]`` table of equilibrium-propagation and the settings of one run (:class:`Task`).

Every field has one explicit default, the ``digits`` preset's; the other settings (the continual
and stochastic variants, the spiking read-out, two hidden layers, the gradient-check stage,
mnist1d) are the presets in ``presets/``, chosen by data set, read-out, variant and stage
(:meth:`EquilibriumPropagation.preset_for`). Where the values come from is said in README.md
(Equilibrium Propagation) and in each preset's description.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from neurosim import datasets as ds
from neurosim.config import RunConfig
from neurosim.errors import ConfigError
from neurosim.spike_sample import SpikeSampling

VARIANTS = ("two-phase", "symmetric", "continual", "stochastic")
STAGES = ("train", "gradient-check")
#: the circuit's rule behind each variant
RULE_OF = {
    "two-phase": "two-phase",
    "symmetric": "two-phase",
    "continual": "continual",
    "stochastic": "continual",
}
#: gradient check: an example counts as settled when its free state is within this of the twin's
#: fixed point (max over units)
SETTLED_TOLERANCE = 1e-6


def example_steps(variant: str, free_steps: int, nudged_steps: int) -> int:
    """Steps of one example: the free phase and one nudged phase (two: ±β for the symmetric and
    stochastic variants)."""
    phases = 2 if variant in ("symmetric", "stochastic") else 1
    return free_steps + phases * nudged_steps


#: the longest simulated time (s) of one compiled run: Brian2's standalone scheduler treats two
#: clocks as simultaneous within 1e-14 s (absolute), which per-example clocks miss beyond 64 s
MAX_RUN_S = 60.0


class EquilibriumPropagationConfig(SpikeSampling):
    """The ``[protocol]`` table (with the recorded spike sample of :class:`SpikeSampling`)."""

    stage: Literal["train", "gradient-check"] = "train"
    variant: Literal["two-phase", "symmetric", "continual", "stochastic"] = Field(
        "two-phase",
        description="the learning rule and its phases (README: Equilibrium Propagation)",
    )
    dt_ms: float = Field(0.5, gt=0, le=1.0, description="time step = ε·τ (τ = 1 ms)")
    beta: float = Field(0.5, gt=0, description="nudging strength β of training")
    free_steps: int = Field(20, ge=1, description="free phase (steps)")
    nudged_steps: int = Field(4, ge=1, description="each nudged phase (steps)")
    lr: list[float] = Field([0.1, 0.05], description="learning rates per layer W1/b1..WN/bN")
    continual_gain: float = Field(
        0.15, gt=0, description="continual/stochastic: online feedback (η_1/β)·mean‖x‖² that "
        "sets lr_continual when it is left empty (DESIGN.md §4.3: keep it below ~0.15)",
    )  # fmt: skip
    lr_continual: list[float] = Field(
        [], description="continual/stochastic rates per layer; empty: η_1 from continual_gain, "
        "the other layers in the proportions of lr",
    )  # fmt: skip
    lr_decay: float = Field(0.85, gt=0, le=1, description="learning rates × lr_decay per epoch")
    centred: bool = Field(False, description="continual rule with the dt ρ'ṡρ'ṡ term")
    sigma: float = Field(0.0, ge=0, description="Langevin noise (1/√ms), stochastic variant")
    average_steps: int = Field(
        2, ge=1, description="stochastic: states averaged at the end of each nudged phase"
    )
    p_fail: float = Field(0.0, ge=0, le=1, description="release failure (spiking read-out)")
    plasticity: Literal["rates", "spike-traces"] = Field(
        "rates", description="what the two-phase and symmetric rules read: the units' rates "
        "ρ(s), or (spiking read-out) their spike traces ν, ΔW = (η/β)(⟨ν_iν_j⟩_β − ⟨ν_iν_j⟩_0) "
        "over the last trace_window_steps of each phase (README: Equilibrium Propagation)",
    )  # fmt: skip
    trace_tau_ms: float = Field(
        3.0, gt=0, description="spike-traces: time constant τ_ν (ms) of the units' spike traces"
    )
    trace_window_steps: int = Field(
        0, ge=0, description="spike-traces: steps at the end of the free (−β) and the nudged "
        "phase over which the trace products are averaged; 0: half the nudged phase (clear of "
        "the transients that bias the whole phase: benchmarks/README.md)",
    )  # fmt: skip
    w_scale: float = Field(1.0, gt=0, description="initial weights: Glorot uniform × w_scale")
    bias_scale: float = Field(0.0, ge=0, description="initial biases U(−a, a)")
    examples_per_run: int = Field(
        0, ge=0, le=100000, description="examples per compiled run; 0: the test set's size"
    )
    n_train: int = Field(0, ge=0, description="first n training examples; 0: all")
    n_test: int = Field(0, ge=0, description="first n test examples; 0: all")
    train_eval: bool = Field(True, description="evaluate the training set after the last epoch")
    backprop_epochs: int = Field(
        -1, ge=-1, description="backprop baseline epochs; -1: the run's epochs, 0: no baseline"
    )
    backprop_lr: list[float] = Field([0.1, 0.05], description="backprop rates per layer")
    backprop_activation: Literal["hard_sigmoid", "sigmoid"] = "hard_sigmoid"
    references: bool = Field(
        True,
        description="logistic regression and the reference MLP on the raw data, where the data "
        "set has published ones (MNIST-1D); cached",
    )
    grad_check: bool = Field(True, description="train: gradient check on the trained weights")
    traces: bool = Field(True, description="train: record one example step by step")
    grad_betas: list[float] = Field(
        [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 1e-3, 1e-4], description="β of the gradient check"
    )
    grad_examples: int = Field(20, ge=1, le=10000, description="examples of the gradient check")
    grad_free_ms: float = Field(200.0, gt=0, description="gradient check: free phase (ms)")
    grad_nudged_ms: float = Field(100.0, gt=0, description="gradient check: each nudged phase")
    continual_dts: list[float] = Field(
        [0.5, 0.2, 0.1, 0.05, 0.02, 0.01],
        description="gradient-check: steps of the continual check",
    )
    continual_examples: int = Field(5, ge=1, le=1000, description="examples per continual check")

    @model_validator(mode="after")
    def _check(self) -> EquilibriumPropagationConfig:
        if not math.isfinite(self.beta) or self.beta <= 0:
            raise ValueError("beta must be positive")
        for name in ("lr", "lr_continual", "backprop_lr"):
            if any(not (math.isfinite(v) and v >= 0) for v in getattr(self, name)):
                raise ValueError(f"{name} must hold non-negative numbers")
        if not self.grad_betas or any(not (b > 0) for b in self.grad_betas):
            raise ValueError("grad_betas must hold positive nudging strengths")
        if not self.continual_dts or any(not (0 < v <= 1) for v in self.continual_dts):
            raise ValueError("continual_dts must hold time steps in (0, 1] ms")
        continual = RULE_OF[self.variant] == "continual"
        if self.plasticity == "spike-traces" and continual:
            raise ValueError(
                "plasticity = 'spike-traces' is the two-phase rule on spike traces: it takes "
                f"variant two-phase or symmetric, not {self.variant!r}"
            )
        if self.trace_window_steps > min(self.free_steps, self.nudged_steps):
            raise ValueError(
                f"trace_window_steps ({self.trace_window_steps}) must not exceed free_steps or "
                "nudged_steps"
            )
        if self.sigma > 0 and self.variant != "stochastic":
            raise ValueError("sigma (Langevin noise) belongs to variant 'stochastic'")
        if self.centred and not continual:
            raise ValueError("centred belongs to the continual rule (variant continual/stochastic)")
        if self.lr_continual and not continual:
            raise ValueError("lr_continual belongs to variant continual or stochastic; use lr")
        if self.variant == "stochastic" and self.average_steps > self.nudged_steps:
            raise ValueError(
                f"average_steps ({self.average_steps}) must not exceed nudged_steps "
                f"({self.nudged_steps})"
            )
        for name in ("grad_free_ms", "grad_nudged_ms"):
            ratio = getattr(self, name) / self.dt_ms
            if abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(f"{name} must be a whole number of time steps dt_ms")
            for dt in self.continual_dts:
                r = getattr(self, name) / dt
                if abs(r - round(r)) > 1e-6:
                    raise ValueError(f"{name} must be a whole number of every continual_dts step")
        return self


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """Targets d: one-hot rows (0 and 1)."""
    d = np.zeros((len(labels), n))
    d[np.arange(len(labels)), np.asarray(labels, dtype=int)] = 1.0
    return d


class Task:
    """The data and the settings of one run: the tables, checked against each other and the data
    set, and the few values computed from the data (``x2``, the continual rates)."""

    def __init__(self, run: RunConfig, cfg: EquilibriumPropagationConfig, circ: Any):
        data = ds.load(run.dataset, seed=run.seed, code=run.input_code)
        #: classification: one-hot targets, argmax read-out, accuracy; regression: the data
        #: set's target rates, the output rates ρ(s_N) read out, their mean squared error
        self.regression = data.task == "regression"
        if self.regression:
            lo = min(float(data.y_train.min()), float(data.y_test.min()))
            hi = max(float(data.y_train.max()), float(data.y_test.max()))
            if lo < 0.0 or hi > 1.0:
                raise ConfigError(
                    f"equilibrium-propagation nudges the outputs toward rates in [0, 1]; the "
                    f"target rates of {data.name!r} lie in [{lo:g}, {hi:g}]."
                )
        elif data.labels_train is None:
            raise ConfigError(f"data set {data.name!r} is a classification without labels.")
        self.data = data.subset(cfg.n_train or None, cfg.n_test or None)
        sizes = list(circ.sizes) if circ.sizes else [data.n_inputs, 100, data.n_outputs]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ConfigError(
                f"circuit.sizes needs an input and at least one more layer, all positive; got "
                f"{sizes}."
            )
        if sizes[0] != data.n_inputs or sizes[-1] != data.n_outputs:
            raise ConfigError(
                f"circuit.sizes {sizes} do not fit data set {data.name!r}: it has "
                f"{data.n_inputs} inputs (input code {data.input_code!r}) and {data.n_outputs} "
                f"outputs."
            )
        self.sizes = [int(n) for n in sizes]
        self.n_layers = len(self.sizes) - 1
        self.variant = cfg.variant
        self.rule = RULE_OF[cfg.variant]
        self.readout = run.readout or "rate"
        self.free_steps, self.nudged_steps = cfg.free_steps, cfg.nudged_steps
        self.average_steps = cfg.average_steps
        self.lr = list(cfg.lr)
        #: mean ‖x‖² of the training inputs (digits ≈ 15, mnist1d ≈ 4.3 on-off, 10.6 offset)
        self.x2 = float(np.mean(np.sum(self.data.x_train**2, axis=1)))
        if cfg.lr_continual:
            self.lr_continual = list(cfg.lr_continual)
        else:  # (η_1/β)·‖x‖² = continual_gain (1/2β: symmetric gain), the other layers as lr
            div = 2 * cfg.beta if cfg.variant == "stochastic" else cfg.beta
            eta1 = cfg.continual_gain * div / self.x2
            self.lr_continual = [eta1 * v / self.lr[0] for v in self.lr]
        self.backprop_lr = list(cfg.backprop_lr)
        for name in ("lr", "lr_continual", "backprop_lr"):
            if len(getattr(self, name)) != self.n_layers:
                raise ConfigError(
                    f"protocol.{name} needs one rate per layer above the input "
                    f"({self.n_layers}), got {getattr(self, name)} (the preset digits-deep has "
                    "the settings of two hidden layers)."
                )
        self.centred = cfg.centred
        self.sigma = cfg.sigma if cfg.variant == "stochastic" else 0.0
        self.w_scale = cfg.w_scale
        #: examples side by side per presentation (``circuit.batch``; mini-batch learning)
        self.batch = int(getattr(circ, "batch", None) or 1)
        #: spiking cells per unit (``circuit.population``)
        self.population = int(getattr(circ, "population", None) or 1)
        if self.population > 1 and self.readout != "spiking":
            raise ConfigError(
                f"circuit.population = {self.population} is a number of spiking cells per unit: "
                "it needs --readout spiking."
            )
        if self.batch > 1 and self.rule != "two-phase":
            raise ConfigError(
                f"circuit.batch = {self.batch} sums the copies' changes once per example: it "
                f"takes the two-phase or symmetric variant, not {cfg.variant!r}."
            )
        self.P = self._examples_per_run(cfg)
        n_out = self.sizes[-1]
        if self.regression:  # the cost ½‖ρ(s_N) − d‖² takes the target rates as they are
            self.d_train, self.d_test = self.data.y_train, self.data.y_test
        else:
            self.d_train = one_hot(self.data.labels_train, n_out)
            self.d_test = one_hot(self.data.labels_test, n_out)
        self.cfg = cfg
        self.circ = circ

    def _examples_per_run(self, cfg: EquilibriumPropagationConfig) -> int:
        """Examples per compiled run: ``examples_per_run``, else the test set's size, but never
        more than :data:`MAX_RUN_S` of simulated time (a clear error if asked for more)."""
        example_ms = example_steps(cfg.variant, cfg.free_steps, cfg.nudged_steps) * cfg.dt_ms
        longest = max(1, int((MAX_RUN_S * 1000.0 - cfg.dt_ms) // example_ms)) * self.batch
        if cfg.examples_per_run > longest:
            raise ConfigError(
                f"protocol.examples_per_run = {cfg.examples_per_run} makes one run "
                f"{cfg.examples_per_run // self.batch * example_ms / 1000.0:g} s of simulated "
                f"time; at most {longest} examples of {example_ms:g} ms fit in {MAX_RUN_S:g} s, "
                "beyond which Brian2 no longer keeps the per-example clocks in step with the "
                "main clock."
            )
        return cfg.examples_per_run or min(len(self.data.x_test), longest)

    @property
    def metric(self) -> str:
        """What a pass is scored by: ``accuracy`` (classification) or ``mse`` (regression)."""
        return "mse" if self.regression else "accuracy"

    def score(self, outputs: np.ndarray, part: str, rows: np.ndarray | None = None) -> float:
        """A pass's score on the ``part`` (``train`` or ``test``) examples ``rows`` (default
        all): the accuracy of the argmax of ``outputs`` (states or rates, ρ is increasing), or
        the mean squared error of ``outputs`` (the output rates ρ(s_N)) against the targets."""
        if self.regression:
            d = self.d_train if part == "train" else self.d_test
            d = d if rows is None else d[rows]
            return float(np.mean((np.asarray(outputs, dtype=float) - d) ** 2))
        labels = self.data.labels_train if part == "train" else self.data.labels_test
        labels = labels if rows is None else labels[rows]
        return float(np.mean(np.argmax(outputs, axis=1) == labels))

    @property
    def rates(self) -> list[float]:
        """The learning rates of the variant's rule."""
        return self.lr_continual if self.rule == "continual" else self.lr

    @property
    def continual_gain(self) -> float:
        """(η_1/β)·mean‖x‖², the online feedback through W1 of the continual rule (DESIGN.md
        §4.3; 1/2β for the stochastic variant's symmetric gain)."""
        div = 2 * self.cfg.beta if self.variant == "stochastic" else self.cfg.beta
        return self.lr_continual[0] / div * self.x2

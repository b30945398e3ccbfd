"""Equilibrium Propagation on the layered Hopfield circuit (Scellier & Bengio 2017; DESIGN.md §4.3,
issue 4).

Two stages of one protocol on :mod:`circuits.hopfield` (time in ms, τ = 1 ms, so ``dt_ms`` is the
step ε of the paper):

* ``train``: online learning, one example after another inside one run (batch 1). Every example
  restarts the states at 0, relaxes freely for ``free_steps``, is nudged toward the one-hot target
  d for ``nudged_steps`` (per nudged phase) and learns in-run. The variant (``variant``) picks the
  rule and the phases:

  - ``two-phase``: free, then +β; the circuit's end-point latch applies
    ΔW = η/β (ρ^β ρ^βᵀ − ρ⁰ρ⁰ᵀ) at the start of the next example;
  - ``symmetric``: free, −β (latched), then +β from the −β state; ΔW = η/2β (ρ^{+β}ρ^{+β}ᵀ −
    ρ^{−β}ρ^{−β}ᵀ) (Laborieux et al. 2021);
  - ``continual``: free, then +β, and during the nudged phase the weights follow
    dW/dt = η/β (ρ'_i ṡ_i ρ_j + ρ_i ρ'_j ṡ_j), the error in ds/dt, every step, gated by the
    ``plastic`` TimedArray (Ernoult et al. 2020). ``centred`` adds the step's
    dt ρ'ṡ_i ρ'ṡ_j (the update then telescopes exactly to the end-point difference);
  - ``stochastic``: Langevin noise σ in the dynamics; the update is the difference of the *time
    averages* of ρ_i ρ_j over the last ``average_steps`` states of the +β and of the −β phase,
    over 2β. It is made by the same continual rule (centred) with a ramped gain g(t) =
    plastic(t)/β(t): g rises linearly from 0 to 1/2β over the −β window, holds, and falls back to
    0 over the +β window, so that ∫ g d(ρ_iρ_j) = −∫ g' ρ_iρ_j = (⟨ρ_iρ_j⟩_{+β} −
    ⟨ρ_iρ_j⟩_{−β})/2β exactly (summation by parts). The free phase cannot be averaged this way
    (the circuit's gain is 1/β(t), 0 at β = 0), hence the symmetric form.

  Any variant runs with ``--readout spiking`` (Poisson spikes at rate ρ·rate_scale, filtered
  traces, release failure ``p_fail``; the rules read the rates ρ(s) each cell keeps).

  Each variant is one standalone build of ``examples_per_run`` (P) examples, compiled once and
  re-run for every chunk of P examples with new inputs, targets and β (TimedArrays) and the
  weights and states carried through :func:`circuits.hopfield.state_keys`; a last, shorter chunk is
  padded with examples at β = 0 (no update). After every epoch the test set runs through the same
  build with β = 0 and the learning rates at 0; the read-out is argmax ρ(s_N) at the end of the
  free phase. A feed-forward network of the same sizes (the twin's :class:`BackpropNetwork`)
  trained by backprop (online SGD, the same learning rates and epochs, the same initial weights)
  on the same split is the baseline. At the end, on the trained weights and the first
  ``grad_examples`` test digits whose loss gradient is not 0 (a trained hard-sigmoid circuit puts
  most outputs exactly on their 0/1 targets, where loss, gradient and EP update all vanish; where
  every gradient vanishes, on the initial weights, ``grad_check_weights``):
  ``grad_cosine`` (also ``grad_relative_error``, ``grad_sign_agreement``) compares the update
  training makes — the training build, its own phases, the protocol's β, learning rates 0 — with
  −∇L of the twin, and ``grad_check`` is the settled curve against β of the stage below; one test
  example is recorded step by step (``traces``: s and ρ'ṡ of every layer).

  Measured (digits, 64-100-10, 10 epochs, seed 1): two-phase 0.969 (backprop of the same sizes
  0.967), symmetric 0.969, stochastic 0.950, spiking two-phase 0.853, spiking stochastic 0.853;
  64-100-100-10 two-phase 0.956; mnist1d 40-100-10 symmetric 0.384 (backprop 0.353). Continual,
  with its own defaults (β = 1, constant rates at the online-feedback limit 0.15), 40 epochs:
  0.967 (0.947 or more from epoch 16 on; 0.914 after 10 epochs at β = 0.5 and rates × 0.85 per
  epoch). On the trained continual weights every test example's loss gradient vanishes (outputs
  on their targets or clipped on the wrong side), so its training-stage gradient check runs on
  the initial weights.

* ``gradient-check``: no learning. With the weights held fixed (learning rates 0) the circuit's own
  continual-rule accumulators (``measure`` mode, centred: exactly the end-point EP update) over
  long, settled phases (``grad_free_ms``, ``grad_nudged_ms``) give the EP update of every example,
  for one-sided (two-phase) and symmetric nudging at every β in ``grad_betas``; each is compared
  with minus the twin's loss gradient at the free fixed point (implicit differentiation,
  :func:`models.equilibrium_propagation.loss_gradient`) on the same weights and examples:
  per-parameter cosine, relative error and share of agreeing signs, for the batch mean and per
  example (examples whose free phase has not reached the twin's fixed point within 1e-6 are left
  out and counted: ``unsettled_examples``; the accumulators summed over all examples are checked
  against the recorded end points, ``accumulator_vs_states``). Then, for every step in
  ``continual_dts`` (one build each), the continual rule as the circuit integrates it (product
  rule, centred = 0) against the two-phase end-point update of the same phases (centred = 1) and
  against the twin's exact two-phase update at the fixed points, with the free fixed point against
  the twin's (Brian2 vs torch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from circuits import hopfield as hp
from models import equilibrium_propagation as ep
from neurosim import datasets as ds
from neurosim.config import RunConfig, StrictModel
from neurosim.engine import Simulation
from neurosim.errors import ConfigError
from neurosim.protocol import Protocol, ProtocolResult
from neurosim.recording import SegmentRecord, SignalRecord
from neurosim.registry import register_protocol
from neurosim.seeding import run_seed, seed_everything

VARIANTS = ("two-phase", "symmetric", "continual", "stochastic")
STAGES = ("train", "gradient-check")
#: default online feedback of the continual rule through W1, (η_1/β)·mean‖x‖² (DESIGN.md §4.3:
#: keep it below ~0.15). Measured on digits (one trained epoch, 4 nudged steps of ε = 0.5): the
#: online update then differs from the weights-fixed one by 13 % (W1) and 8 % (W2); by 28 % and
#: 16 % at 0.3, 61 % and 35 % at 0.6; with 20 nudged steps by 39 % and 22 % already at 0.15.
CONTINUAL_GAIN = 0.15
#: the continual variant's defaults. Its rates are held at the online-feedback limit above, about
#: 10-20× below the two-phase rates, so it learns more slowly: β = 1 doubles them at the same gain,
#: and the rates stay constant. Measured on digits (64-100-10, seed 1, rate read-out, gain 0.15):
#: β = 0.5 constant, 30 epochs 0.944; β = 1 × 0.95 per epoch, 30 epochs 0.953; β = 1 × 0.97,
#: 50 epochs 0.956; β = 1 constant, 40 epochs 0.967 (≥ 0.947 from epoch 16 on).
CONTINUAL_DEFAULTS = {"beta": 1.0, "lr_decay": 1.0}
#: the spiking read-out's defaults: phases at least this long (steps), rates × lr_factor. Measured
#: on 500 digits, 3 epochs, 64-100-10: two-phase 40 / 20 steps, rates 0.02, 0.01: test 0.46;
#: stochastic (σ = 0, averaged over the last 10 steps of ±β, continual rates 0.01, 0.005) 0.55.
#: With the rate defaults (20 / 4, 0.1, 0.05) it stayed at chance (0.11).
SPIKING_DEFAULTS = {"free_steps": 40, "nudged_steps": 20, "lr_factor": 0.2}
#: the gradient-check stage's initial weights: Glorot × 0.5 (unless ``w_scale`` is given). With
#: full Glorot weights the hidden–output coupling of 64-100-10 has singular values up to 1.6: the
#: energy is not convex and 5 of 20 digits took more than 200 steps of ε = 0.5 to settle (one
#: was 0.87 from its fixed point after 200); × 0.5 makes the fixed point unique and fast.
GRADCHECK_W_SCALE = 0.5
#: gradient check: an example counts as settled when its free state is within this of the twin's
#: fixed point (max over units)
SETTLED_TOLERANCE = 1e-6
#: the circuit's rule behind each variant
RULE_OF = {
    "two-phase": "two-phase",
    "symmetric": "two-phase",
    "continual": "continual",
    "stochastic": "continual",
}


def depth_defaults(n_layers: int) -> dict[str, Any]:
    """Phase lengths, learning rates and initial weight scale by depth (N = layers above the
    input; DESIGN.md §4.3, the paper's MNIST settings). One hidden layer: 20 free / 4 nudged
    steps, rates 0.1, 0.05, Glorot weights (measured on digits 64-100-10 with the twin's numbers,
    batch 1, lr × 0.85 per epoch: 97.2 % after 10 epochs). Two hidden layers: 60 / 8 steps,
    rates 0.2, 0.1, 0.05, Glorot × 0.5 (measured 96.1 % after 8 epochs). The paper's 100 / 6 and
    0.4, 0.1, 0.01 for 784-500-500-10 left 64-100-100-10 at chance for 7 epochs: with full Glorot
    weights the 100 × 100 coupling has singular values up to 1.9, the energy is not convex, 80 %
    of the units start saturated, and no gradient reaches them; × 0.5 keeps the coupling < 1."""
    if n_layers <= 2:
        return {
            "free_steps": 20, "nudged_steps": 4, "lr": [0.1, 0.05][-n_layers:], "w_scale": 1.0,
        }  # fmt: skip
    if n_layers == 3:
        return {"free_steps": 60, "nudged_steps": 8, "lr": [0.2, 0.1, 0.05], "w_scale": 0.5}
    lr = [0.2 / 2**k for k in range(n_layers)]
    return {"free_steps": 30 * n_layers, "nudged_steps": 4 * n_layers, "lr": lr, "w_scale": 0.5}


class HopfieldConfig(StrictModel):
    """The ``[circuit]`` table: layer sizes and the spiking read-out's constants."""

    sizes: list[int] | None = Field(
        None, description="layer sizes [n0, ..., nN]; default: the data set's in/out, 100 hidden"
    )
    tau_s: float = Field(3.0, gt=0, description="synaptic trace of the spiking read-out (ms)")
    rate_scale_hz: float = Field(1000.0, gt=0, description="ρ = 1 as a spike rate (spiking)")

    @model_validator(mode="after")
    def _sizes(self) -> HopfieldConfig:
        if self.sizes is not None and (len(self.sizes) < 2 or min(self.sizes) < 1):
            raise ValueError("sizes needs an input and at least one more layer, all positive")
        return self


class EquilibriumPropagationConfig(StrictModel):
    """The ``[protocol]`` table."""

    stage: Literal["train", "gradient-check"] = "train"
    variant: Literal["two-phase", "symmetric", "continual", "stochastic"] = Field(
        "two-phase", description="the learning rule and its phases (module docstring)"
    )
    dt_ms: float = Field(0.5, gt=0, le=1.0, description="time step = ε·τ (τ = 1 ms)")
    beta: float = Field(
        0.5, gt=0, description="nudging strength β of training (default: continual 1, else 0.5)"
    )
    free_steps: int | None = Field(None, ge=1, description="free phase (default: by depth)")
    nudged_steps: int | None = Field(
        None, ge=1, description="each nudged phase (default: by depth; stochastic ≥ 20)"
    )
    lr: list[float] | None = Field(
        None, description="learning rates per layer W1/b1..WN/bN (default: by depth)"
    )
    lr_continual: list[float] | None = Field(
        None,
        description="continual/stochastic rates per layer (default: (η_1/β)·‖x‖² = 0.15, the "
        "other layers in the proportions of lr)",
    )
    lr_decay: float = Field(
        0.85, gt=0, le=1,
        description="learning rates × lr_decay per epoch (default: continual 1, else 0.85)",
    )  # fmt: skip
    centred: bool | None = Field(
        None, description="continual rule with the dt ρ'ṡρ'ṡ term (default: continual no, "
        "stochastic yes)",
    )  # fmt: skip
    sigma: float | None = Field(
        None, ge=0, description="Langevin noise (1/√ms), stochastic variant (default 0.05)"
    )
    average_steps: int | None = Field(
        None, ge=1, description="stochastic: states averaged at the end of each nudged phase"
    )
    p_fail: float = Field(0.0, ge=0, le=1, description="release failure (spiking read-out)")
    w_scale: float | None = Field(
        None, gt=0, description="initial weights: Glorot uniform × w_scale (default: by depth)"
    )
    bias_scale: float = Field(0.0, ge=0, description="initial biases U(−a, a)")
    examples_per_run: int | None = Field(
        None, ge=1, le=100000, description="examples per compiled run (default: the test set)"
    )
    n_train: int | None = Field(None, ge=1, description="first n training examples (None: all)")
    n_test: int | None = Field(None, ge=1, description="first n test examples (None: all)")
    train_eval: bool = Field(True, description="evaluate the training set after the last epoch")
    backprop_epochs: int | None = Field(None, ge=0, description="default: the run's epochs")
    backprop_lr: list[float] | None = Field(None, description="per layer (default: lr)")
    backprop_activation: Literal["hard_sigmoid", "sigmoid"] = "hard_sigmoid"
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

    @model_validator(mode="before")
    @classmethod
    def _variant_defaults(cls, data: Any) -> Any:
        """The continual variant's own defaults for what the table leaves out: β = 1 and constant
        rates (CONTINUAL_DEFAULTS)."""
        if isinstance(data, Mapping) and data.get("variant") == "continual":
            data = {**CONTINUAL_DEFAULTS, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> EquilibriumPropagationConfig:
        if not math.isfinite(self.beta) or self.beta <= 0:
            raise ValueError("beta must be positive")
        for name in ("lr", "lr_continual", "backprop_lr"):
            vals = getattr(self, name)
            if vals is not None and any(not (math.isfinite(v) and v >= 0) for v in vals):
                raise ValueError(f"{name} must hold non-negative numbers")
        if not self.grad_betas or any(not (b > 0) for b in self.grad_betas):
            raise ValueError("grad_betas must hold positive nudging strengths")
        if not self.continual_dts or any(not (0 < v <= 1) for v in self.continual_dts):
            raise ValueError("continual_dts must hold time steps in (0, 1] ms")
        if self.sigma is not None and self.sigma > 0 and self.variant != "stochastic":
            raise ValueError("sigma (Langevin noise) belongs to variant 'stochastic'")
        if self.average_steps is not None and self.variant != "stochastic":
            raise ValueError("average_steps belongs to variant 'stochastic'")
        if self.centred is not None and RULE_OF[self.variant] != "continual":
            raise ValueError("centred belongs to the continual rule (variant continual/stochastic)")
        if self.lr_continual is not None and RULE_OF[self.variant] != "continual":
            raise ValueError("lr_continual belongs to variant continual or stochastic; use lr")
        for name in ("grad_free_ms", "grad_nudged_ms"):
            ratio = getattr(self, name) / self.dt_ms
            if abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(f"{name} must be a whole number of time steps dt_ms")
            for dt in self.continual_dts:
                r = getattr(self, name) / dt
                if abs(r - round(r)) > 1e-6:
                    raise ValueError(f"{name} must be a whole number of every continual_dts step")
        return self


# ------------------------------------------------------------------------------ helpers
def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """Targets d: one-hot rows (0 and 1)."""
    d = np.zeros((len(labels), n))
    d[np.arange(len(labels)), np.asarray(labels, dtype=int)] = 1.0
    return d


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float("nan")


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖."""
    den = np.linalg.norm(np.ravel(b))
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / den) if den > 0 else float("nan")


def correlations(rates: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """ρ_k ρ_{k−1}ᵀ (``W{k}``) and ρ_k (``b{k}``) of one state, ``rates`` = [ρ0, ρ1, ..., ρN]."""
    out = {f"W{k}": np.outer(rates[k], rates[k - 1]) for k in range(1, len(rates))}
    out.update({f"b{k}": np.asarray(rates[k], dtype=float) for k in range(1, len(rates))})
    return out


def averaged_timed(
    inputs: np.ndarray,
    targets: np.ndarray,
    betas: np.ndarray,
    *,
    free_steps: int,
    nudged_steps: int,
    average_steps: int,
    dt_ms: float,
    names: Sequence[str],
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """The stochastic variant's layout: per example free (β = 0), −β, +β (``nudged_steps``
    each), β and the continual rule's gate ``plastic`` one row per step.

    The gain g_t = plastic_t/β_t of step t (t → t + 1; state a_t before it) makes the centred rule
    add g_t (a_{t+1} − a_t) = Σ_t a_t (g_{t−1} − g_t): g rises by G/m at each of the last m states
    of the −β phase and falls by G/m at each of the last m states of the +β phase (G = 1/2β,
    m = ``average_steps``), so the sum is G (mean_{+β window} a − mean_{−β window} a). With m = 1
    this is :func:`circuits.hopfield.example_timed`'s symmetric layout. Returns the TimedArray
    values (one neutral row more for the run's extra step), their sampling steps, example_ms.
    """
    f, n, m = int(free_steps), int(nudged_steps), int(average_steps)
    if not 1 <= m <= n:
        raise ValueError(f"average_steps must lie between 1 and nudged_steps ({n}), got {m}")
    p = len(inputs)
    e = f + 2 * n
    t = np.arange(e)
    sign = np.where(t < f, 0.0, np.where(t < f + n, -1.0, 1.0))
    t_a, t_b = f + n - m + 1, f + 2 * n - m + 1
    ramp = np.zeros(e)  # g_t in units of G
    up = (t >= t_a) & (t < t_a + m)
    ramp[up] = (t[up] - t_a + 1) / m
    ramp[(t >= f + n) & (t < t_b)] = 1.0
    down = t >= t_b
    ramp[down] = 1.0 - (t[down] - t_b + 1) / m
    beta_rows, plastic_rows = [], []
    for b in np.asarray(betas, dtype=float):
        beta_rows.append(sign * b)
        # plastic = g·β(t) with g = ramp·G, G = 1/(2β): ±ramp/2 where β ≠ 0
        plastic_rows.append(sign * ramp * 0.5 * float(b != 0.0))
    timed = hp.timed_values(
        inputs, targets.shape[1], targets=targets, beta=np.zeros(p), restart=np.ones(p)
    )
    timed["beta"] = np.concatenate([*beta_rows, [0.0]])
    timed["plastic"] = np.concatenate([*plastic_rows, [0.0]])
    timed = {name: timed[name] for name in names}
    example_ms = e * dt_ms
    timed_dt = {
        "inputs": example_ms,
        "targets": example_ms,
        "restart": example_ms,
        "beta": dt_ms,
        "plastic": dt_ms,
    }
    return timed, timed_dt, example_ms


class Task:
    """The data and the resolved settings of one run."""

    def __init__(self, run: RunConfig, cfg: EquilibriumPropagationConfig, circ: HopfieldConfig):
        data = ds.load(run.dataset, seed=run.seed)
        if data.task != "classification" or data.labels_train is None:
            raise ConfigError(
                f"equilibrium-propagation classifies (one-hot targets); {data.name!r} is a "
                f"{data.task}."
            )
        self.data = data.subset(cfg.n_train, cfg.n_test)
        sizes = circ.sizes or [data.n_inputs, 100, data.n_outputs]
        if sizes[0] != data.n_inputs or sizes[-1] != data.n_outputs:
            raise ConfigError(
                f"circuit.sizes {sizes} do not fit data set {data.name!r}: it has "
                f"{data.n_inputs} inputs and {data.n_outputs} outputs."
            )
        self.sizes = [int(n) for n in sizes]
        self.n_layers = len(self.sizes) - 1
        self.variant = cfg.variant
        self.rule = RULE_OF[cfg.variant]
        self.readout = run.readout or "rate"
        defaults = depth_defaults(self.n_layers)
        self.free_steps = cfg.free_steps or defaults["free_steps"]
        nudged = cfg.nudged_steps or defaults["nudged_steps"]
        if cfg.variant == "stochastic" and cfg.nudged_steps is None:
            nudged = max(nudged, 20)
        self.nudged_steps = nudged
        if self.readout == "spiking":  # the traces (τ_s) need time; the end points are noisy
            if cfg.free_steps is None:
                self.free_steps = max(self.free_steps, SPIKING_DEFAULTS["free_steps"])
            if cfg.nudged_steps is None:
                nudged = max(nudged, SPIKING_DEFAULTS["nudged_steps"])
            self.nudged_steps = nudged
        self.average_steps = cfg.average_steps or max(1, nudged // 2)
        if self.average_steps > nudged:
            raise ConfigError(
                f"average_steps ({self.average_steps}) must not exceed nudged_steps ({nudged})."
            )
        if cfg.lr is not None:
            self.lr = list(cfg.lr)
        else:
            factor = SPIKING_DEFAULTS["lr_factor"] if self.readout == "spiking" else 1.0
            self.lr = [v * factor for v in defaults["lr"]]
        #: mean ‖x‖² of the training inputs (digits ≈ 15, mnist1d ≈ 10.6)
        self.x2 = float(np.mean(np.sum(self.data.x_train**2, axis=1)))
        if cfg.lr_continual is not None:
            self.lr_continual = list(cfg.lr_continual)
        else:  # (η_1/β)·‖x‖² = CONTINUAL_GAIN (1/2β: symmetric gain), the other layers as lr
            div = 2 * cfg.beta if cfg.variant == "stochastic" else cfg.beta
            eta1 = CONTINUAL_GAIN * div / self.x2
            self.lr_continual = [eta1 * v / self.lr[0] for v in self.lr]
        if cfg.backprop_lr is not None:
            self.backprop_lr = list(cfg.backprop_lr)
        else:  # the rate read-out's EP rates (the spiking factor is no backprop matter)
            self.backprop_lr = list(cfg.lr) if cfg.lr is not None else list(defaults["lr"])
        for name in ("lr", "lr_continual", "backprop_lr"):
            if len(getattr(self, name)) != self.n_layers:
                raise ConfigError(
                    f"protocol.{name} needs one rate per layer above the input "
                    f"({self.n_layers}), got {getattr(self, name)}."
                )
        self.centred = cfg.centred if cfg.centred is not None else (cfg.variant == "stochastic")
        self.sigma = (
            (cfg.sigma if cfg.sigma is not None else 0.05) if cfg.variant == "stochastic" else 0.0
        )
        self.w_scale = cfg.w_scale if cfg.w_scale is not None else defaults["w_scale"]
        self.P = cfg.examples_per_run or len(self.data.x_test)
        n_out = self.sizes[-1]
        self.d_train = one_hot(self.data.labels_train, n_out)
        self.d_test = one_hot(self.data.labels_test, n_out)
        self.cfg = cfg
        self.circ = circ
        self.params = hp.HopfieldParams(
            tau=1.0, tau_s=circ.tau_s, rate_scale_hz=circ.rate_scale_hz, sigma=self.sigma
        )

    @property
    def rates(self) -> list[float]:
        """The learning rates of the variant's rule."""
        return self.lr_continual if self.rule == "continual" else self.lr


# ------------------------------------------------------------------------------ the protocol
class EquilibriumPropagation(Protocol):
    """Scellier & Bengio 2017: EP on a layered continuous-time Hopfield circuit in Brian2."""

    name = "equilibrium-propagation"
    summary = "EP on a layered Hopfield circuit: two-phase, symmetric, continual, stochastic"
    circuits = (hp.NAME,)
    datasets = ("digits", "mnist1d")
    readouts = ("rate", "spiking")
    default_epochs = 10
    protocol_config = EquilibriumPropagationConfig
    circuit_configs = {hp.NAME: HopfieldConfig}

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        assert isinstance(protocol, EquilibriumPropagationConfig)
        assert isinstance(circuit, HopfieldConfig)
        if run.readout != "spiking" and protocol.p_fail > 0:
            raise ConfigError("protocol.p_fail > 0 needs the spiking read-out (--readout spiking).")
        if protocol.stage == "gradient-check" and run.readout == "spiking":
            raise ConfigError(
                "stage gradient-check compares settled fixed points; it needs --readout rate."
            )
        if run.readout == "spiking" and circuit.rate_scale_hz * protocol.dt_ms * 1e-3 > 1.0:
            raise ConfigError(
                f"the spiking read-out fires at most once per step: rate_scale_hz·dt = "
                f"{circuit.rate_scale_hz * protocol.dt_ms * 1e-3:g} > 1; lower protocol.dt_ms."
            )
        Task(run, protocol, circuit)  # sizes against the data set, per-layer lists

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        assert isinstance(protocol, EquilibriumPropagationConfig)
        if protocol.stage == "gradient-check":
            return 2 * len(protocol.grad_betas) + len(protocol.continual_dts)
        epochs = int(run.epochs or self.default_epochs)
        return epochs + 1 + (1 if protocol.grad_check else 0)

    # ------------------------------------------------------------------ layouts and builds
    def _layout(
        self, task: Task, x: np.ndarray, d: np.ndarray, betas: np.ndarray, names: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
        dt = task.cfg.dt_ms
        if task.variant == "stochastic":
            return averaged_timed(
                x, d, betas, free_steps=task.free_steps, nudged_steps=task.nudged_steps,
                average_steps=task.average_steps, dt_ms=dt, names=names,
            )  # fmt: skip
        return hp.example_timed(
            x, d, betas, free_ms=task.free_steps * dt, nudged_ms=task.nudged_steps * dt,
            dt_ms=dt, symmetric=task.variant == "symmetric",
            phases=3 if task.variant == "symmetric" else 2, names=names,
        )  # fmt: skip

    def _example_steps(self, task: Task) -> int:
        phases = 2 if task.variant in ("symmetric", "stochastic") else 1
        return task.free_steps + phases * task.nudged_steps

    def _unit_steps(self, task: Task) -> int:
        return math.gcd(task.free_steps, task.nudged_steps)

    def _train_simulation(
        self, run: RunConfig, task: Task, n_examples: int, record: Mapping, record_every: int
    ) -> tuple[Simulation, dict[str, Any]]:
        """The variant's build for ``n_examples`` examples per run; ``record`` every
        ``record_every`` steps."""
        dt = task.cfg.dt_ms
        plasticity = (task.rule,)
        names = hp.timed_names(plasticity, example_ms=1.0)  # per-example events on
        timed, timed_dt, example_ms = self._layout(
            task, np.zeros((n_examples, task.sizes[0])), np.zeros((n_examples, task.sizes[-1])),
            np.zeros(n_examples), names,
        )  # fmt: skip

        def builder(tv: Any) -> Any:
            return hp.build(
                task.params, task.sizes, tv, dt_ms=dt, readout=task.readout, p_fail=task.cfg.p_fail,
                plasticity=plasticity, example_ms=example_ms,
                noise=task.variant == "stochastic", record=dict(record),
                record_dt_ms=record_every * dt, timed_dt_ms=timed_dt,
            )  # fmt: skip

        label = f"{hp.NAME}-{task.variant}-{task.readout}"
        if n_examples == 1:
            label += "-trace"
        sim = Simulation(
            builder,
            device=run.device,
            duration_ms=hp.duration_ms(n_examples, example_ms, dt),
            dt_ms=dt,
            initial_timed=timed,
            label=label,
            cuda_seed=run_seed(run.seed, 0),
        )
        return sim, {"names": names, "example_ms": example_ms, "P": n_examples}

    def _rule_values(self, task: Task, scale: float) -> dict[str, float]:
        """Learning rates (× ``scale``) of the variant's rule, and its run-time switches."""
        rates = [v * scale for v in task.rates]
        if task.rule == "continual":
            out: dict[str, float] = hp.eta_values(task.sizes, continual=rates)
            for k in range(1, task.n_layers + 1):
                out[f"W{k}.centred"] = float(task.centred)
        else:
            out = hp.eta_values(task.sizes, two_phase=rates)
        return out

    def _static_values(self, task: Task) -> dict[str, float]:
        out: dict[str, float] = {}
        if task.readout == "spiking":
            out.update(hp.p_fail_values(task.sizes, task.cfg.p_fail))
        if task.variant == "stochastic":
            for k in range(1, task.n_layers + 1):
                out[f"layer{k}.sigma"] = task.sigma
        return out

    # ------------------------------------------------------------------ passes
    def _pass(
        self,
        sim: Simulation,
        info: Mapping[str, Any],
        task: Task,
        values: dict[str, Any],
        x: np.ndarray,
        d: np.ndarray,
        *,
        learn: bool,
        seed: int,
    ) -> tuple[dict[str, Any], np.ndarray, float]:
        """Run ``x`` through the circuit in chunks of P examples (β = the protocol's if
        ``learn``, else 0 and learning rates 0); returns the carried values, the output rates at
        the end of each example's free phase, and the simulation wall time."""
        P, N = info["P"], task.n_layers
        keys = hp.state_keys(task.sizes, readout=task.readout)
        unit = self._unit_steps(task)
        e_steps = self._example_steps(task)
        free_idx = (np.arange(P) * e_steps + task.free_steps) // unit
        run_values = dict(values)
        if not learn:
            run_values.update(self._rule_values(task, 0.0))
        outs, wall = [], 0.0
        for c, start in enumerate(range(0, len(x), P)):
            xs, dss = x[start : start + P], d[start : start + P]
            n = len(xs)
            xp = np.concatenate([xs, np.repeat(xs[-1:], P - n, axis=0)])
            dp = np.concatenate([dss, np.repeat(dss[-1:], P - n, axis=0)])
            betas = np.zeros(P)
            if learn:
                betas[:n] = task.cfg.beta
            tv, _, _ = self._layout(task, xp, dp, betas, info["names"])
            result = sim.run(values=run_values, timed=tv, seed=run_seed(seed, c), read=keys)
            self._runs_done += 1
            wall += result.wall_seconds
            if learn:
                run_values.update(result.state)
            s_out = result.monitors[f"layer{N}"]["s"][free_idx[:n]]
            outs.append(np.clip(s_out, 0.0, 1.0))
        carried = {**values, **{k: run_values[k] for k in keys if k in run_values}}
        return carried, np.concatenate(outs), wall

    # ------------------------------------------------------------------ run
    def run(
        self,
        run: RunConfig,
        protocol: StrictModel,
        circuit: StrictModel,
        progress: Callable[[int, str], None] | None = None,
    ) -> ProtocolResult:
        assert isinstance(protocol, EquilibriumPropagationConfig)
        assert isinstance(circuit, HopfieldConfig)
        progress = progress or (lambda n, msg: None)
        rng = seed_everything(run.seed)
        task = Task(run, protocol, circuit)
        self._runs_done = 0
        self._sims: list[Simulation] = []
        progress(0, "building")
        if protocol.stage == "gradient-check":
            out = self._gradient_check_stage(run, task, progress)
        else:
            out = self._train(run, task, rng, progress)
        out.metrics.update(
            {
                "stage": protocol.stage,
                "variant": task.variant,
                "dataset": task.data.name,
                "sizes": task.sizes,
                "readout": task.readout,
                "dt_ms": protocol.dt_ms,
                "beta": protocol.beta,
                "compilations": sum(s.compilations for s in self._sims),
                "compile_seconds": sum(s.compile_seconds for s in self._sims),
                "builds": {
                    s.label: {
                        "compilations": s.compilations,
                        "compile_seconds": s.compile_seconds,
                        "build_dir": str(s.build_dir) if s.build_dir else None,
                    }
                    for s in self._sims
                },
                "simulation_runs": self._runs_done,
            }
        )
        return out

    def _initial_weights(self, task: Task, seed: int) -> dict[str, np.ndarray]:
        w = ep.init_weights(
            task.sizes, seed=seed, scale=task.w_scale, bias_scale=task.cfg.bias_scale
        )
        return {name: v.numpy().copy() for name, v in w.items()}

    def _train(self, run: RunConfig, task: Task, rng, progress) -> ProtocolResult:
        cfg, data, N = task.cfg, task.data, task.n_layers
        epochs = int(run.epochs or self.default_epochs)
        unit = self._unit_steps(task)
        # at the phase boundaries: the read-out layer, and every layer for the gradient check
        layers = range(1, N + 1) if cfg.grad_check and task.variant != "stochastic" else [N]
        record = {f"layer{k}": ("s",) for k in layers}
        sim, info = self._train_simulation(run, task, task.P, record, unit)
        self._sims.append(sim)
        w0 = self._initial_weights(task, run.seed)
        values: dict[str, Any] = {**hp.weight_values(w0, task.sizes), **self._static_values(task)}
        labels_tr, labels_te = data.labels_train, data.labels_test

        def accuracy(r: np.ndarray, labels: np.ndarray) -> float:
            return float(np.mean(np.argmax(r, axis=1) == labels))

        def test(vals: dict[str, Any], seed: int) -> float:
            _, r, _ = self._pass(
                sim, info, task, vals, data.x_test, task.d_test, learn=False, seed=seed
            )
            return accuracy(r, labels_te)

        progress(0, "testing the untrained circuit")
        history: dict[str, list] = {
            "test_accuracy": [test(values, run_seed(run.seed, 9, 0))],
            "train_accuracy_online": [],
            "lr_scale": [],
            "wall_seconds": [],
        }
        train_wall, seen = 0.0, 0
        for epoch in range(1, epochs + 1):
            scale = cfg.lr_decay ** (epoch - 1)
            values.update(self._rule_values(task, scale))
            perm = rng.permutation(len(data.x_train))
            values, r, wall = self._pass(
                sim, info, task, values, data.x_train[perm], task.d_train[perm], learn=True,
                seed=run_seed(run.seed, epoch),
            )  # fmt: skip
            train_wall += wall
            seen += len(perm)
            acc = test(values, run_seed(run.seed, 9, epoch))
            history["test_accuracy"].append(acc)
            history["train_accuracy_online"].append(accuracy(r, labels_tr[perm]))
            history["lr_scale"].append(scale)
            history["wall_seconds"].append(wall)
            progress(1, f"epoch {epoch}/{epochs}: test accuracy {acc:.4f}")
        metrics: dict[str, Any] = {}
        if cfg.train_eval:
            _, r, _ = self._pass(
                sim, info, task, values, data.x_train, task.d_train, learn=False,
                seed=run_seed(run.seed, 8),
            )  # fmt: skip
            metrics["train_accuracy"] = accuracy(r, labels_tr)
        else:
            metrics["train_accuracy"] = history["train_accuracy_online"][-1]
        w_end = hp.weights_from_state(values, task.sizes)
        progress(1, "backprop baseline")
        bp = self._backprop(task, w0, epochs, run.seed)
        grad: dict[str, Any] = {}
        dat: dict[str, Any] = {"stage": "train", "variant": task.variant, "history": history}
        dat["backprop_history"] = bp.get("history")
        w_check, checked_on = w_end, "trained"
        chosen, zero_share = (
            self._examples_with_loss(task, w_end, cfg.grad_examples)
            if cfg.grad_check
            else (np.array([], dtype=int), float("nan"))
        )
        if cfg.grad_check and len(chosen) == 0:
            # every loss gradient vanishes at the trained weights (outputs on their targets or
            # clipped): the update's direction is then compared on the initial weights
            w_check, checked_on = w0, "initial"
            chosen, _ = self._examples_with_loss(task, w0, cfg.grad_examples)
        if cfg.grad_check and len(chosen) == 0:
            grad = {
                "grad_zero_loss_share": zero_share,
                "grad_check_skipped": "every test example's loss gradient vanishes at the trained "
                "and at the initial weights: no direction to compare",
            }
            progress(1, "gradient check skipped: every gradient vanishes")
        elif cfg.grad_check:
            n_grad = len(chosen)
            grad_sim, layout = self._grad_simulation(run, task, cfg.dt_ms, n_grad, 3)
            self._sims.append(grad_sim)
            betas = sorted(set(cfg.grad_betas) | {cfg.beta}, reverse=True)
            x, d = data.x_test[chosen], task.d_test[chosen]
            modes = ["one-sided", "symmetric"]
            own = "symmetric" if task.variant in ("symmetric", "stochastic") else "one-sided"
            table = self._grad_curves(
                run, task, grad_sim, layout, w_check, x, d, betas, modes, progress
            )
            at = table[own][f"{cfg.beta:g}"]
            grad = {
                "grad_test_examples": [int(i) for i in chosen],
                "grad_zero_loss_share": zero_share,
                "grad_check_weights": checked_on,
                "grad_nudging": own,
                "grad_check": table,
                "grad_cosine_settled": at["cosine"],
            }
            if task.variant != "stochastic":
                layout_check = self._training_layout_check(run, task, sim, info, w_check, x, d)
                grad.update(layout_check)
            else:  # time averages are not end points: the settled, noiseless check stands in
                grad.update(
                    {
                        "grad_cosine": at["cosine"],
                        "grad_relative_error": at["relative_error"],
                        "grad_sign_agreement": at["sign_agreement"],
                        "grad_cosine_per_example_mean": at["cosine_per_example_mean"],
                        "grad_examples": n_grad,
                        "grad_phases": "settled (grad_free_ms, grad_nudged_ms), no noise",
                    }
                )
            dat["grad_curve"] = _curve_arrays(table, betas)
            progress(1, f"gradient check: cosine {grad.get('grad_cosine', at['cosine'])}")
        if cfg.traces:
            dat["trace"] = self._trace(run, task, w_end)
        metrics.update(
            {
                "test_accuracy": history["test_accuracy"][-1],
                "best_test_accuracy": max(history["test_accuracy"]),
                "history": history,
                "backprop_baseline": bp,
                **grad,
                "epochs": epochs,
                "free_steps": task.free_steps,
                "nudged_steps": task.nudged_steps,
                "average_steps": task.average_steps if task.variant == "stochastic" else None,
                "sigma": task.sigma,
                "centred": task.centred if task.rule == "continual" else None,
                "lr": task.rates,
                "lr_decay": cfg.lr_decay,
                "w_scale": task.w_scale,
                "continual_gain": self._continual_gain(task) if task.rule == "continual" else None,
                "examples_per_run": task.P,
                "n_train": len(data.x_train),
                "n_test": len(data.x_test),
                "samples_per_second": seen / train_wall if train_wall > 0 else None,
                "wall_seconds_training": train_wall,
                "simulated_seconds_training": seen * info["example_ms"] / 1000.0,
            }
        )
        weights = {f"initial_{k}": v for k, v in w0.items()}
        weights.update(w_end)
        period = info["example_ms"] / 1000.0
        segments = [
            SegmentRecord(
                "learning",
                [],
                [
                    SignalRecord(
                        "test_accuracy", np.asarray(history["test_accuracy"])[:, None], period,
                        0.0, "dimensionless", {"description": "test accuracy after each epoch"},
                    )
                ],
                {"variant": task.variant, "epochs": epochs},
            )
        ]  # fmt: skip
        if "trace" in dat:
            tr = dat["trace"]
            segments.append(
                SegmentRecord(
                    "one-example",
                    [],
                    [
                        SignalRecord(
                            f"s{k}", tr[f"s{k}"], cfg.dt_ms / 1000, 0.0, "dimensionless",
                            {"description": f"states of layer {k}, one example, every step"},
                        )
                        for k in range(1, N + 1)
                    ],
                    {"variant": task.variant},
                )
            )  # fmt: skip
        return ProtocolResult(metrics=metrics, segments=segments, weights=weights, data=dat)

    def _examples_with_loss(
        self, task: Task, w: Mapping[str, np.ndarray], n: int
    ) -> tuple[np.ndarray, float]:
        """The first ``n`` test examples whose loss *gradient* at the free fixed point is not 0
        (twin), and the share of test examples with zero loss. A trained hard-sigmoid circuit
        puts most outputs exactly on their 0/1 targets: loss, gradient and EP update are then
        exactly 0 and say nothing about agreement. An output clipped at 0 or 1 on the wrong side
        of its target has a loss but passes no gradient (ρ' = 0 there; the implicit gradient
        sees it as fixed), so examples whose loss sits only on clipped outputs are left out too.
        Returns no example at all when every gradient vanishes (then the check is undefined)."""
        import torch

        params = ep.EPParameters(tuple(task.sizes), dt=task.cfg.dt_ms)
        tw = {k: torch.tensor(v) for k, v in w.items()}
        x, d = task.data.x_test, task.d_test
        try:
            state = ep.fixed_point(params, tw, x).state
        except RuntimeError:  # no converged fixed point for some example: keep the order
            return np.arange(min(n, len(x))), float("nan")
        loss = ep.cost(params, state, d).numpy()
        chosen: list[int] = []
        for i in np.flatnonzero(loss > 1e-12):
            free = ep.HopfieldState(tuple(s[i : i + 1] for s in state.s))  # solved above
            g = ep.loss_gradient(params, tw, x[i : i + 1], d[i : i + 1], free=free).grads
            if max(float(v.abs().max()) for v in g.values()) > 1e-12:
                chosen.append(int(i))
                if len(chosen) == n:
                    break
        return np.array(chosen, dtype=int), float(np.mean(loss <= 1e-12))

    def _training_layout_check(
        self, run, task: Task, sim: Simulation, info, w, x, d
    ) -> dict[str, Any]:
        """The update training makes, with the weights held fixed: the training build with its
        own phases (``free_steps``, ``nudged_steps``) at the protocol's β and learning rates 0;
        each example's end-point update from the recorded states (what the latch applies; the
        continual rule's centred sum), against −∇L of the twin at the free fixed point."""
        cfg, N, P = task.cfg, task.n_layers, info["P"]
        n = min(len(x), P)
        x, d = x[:n], d[:n]
        xp = np.concatenate([x, np.repeat(x[-1:], P - n, axis=0)])
        dp = np.concatenate([d, np.repeat(d[-1:], P - n, axis=0)])
        betas = np.zeros(P)
        betas[:n] = cfg.beta
        tv, _, _ = self._layout(task, xp, dp, betas, info["names"])
        values = {
            **hp.weight_values(w, task.sizes),
            **self._static_values(task),
            **self._rule_values(task, 0.0),
        }
        result = sim.run(values=values, timed=tv, seed=run_seed(run.seed, 6))
        self._runs_done += 1
        unit = self._unit_steps(task)
        e_units = self._example_steps(task) // unit
        f_units, n_units = task.free_steps // unit, task.nudged_steps // unit
        symmetric = task.variant == "symmetric"
        mons = [result.monitors[f"layer{k}"]["s"] for k in range(1, N + 1)]
        _, _, refs = self._references(task, w, x, d, cfg.dt_ms)
        grads = [{k: v.numpy() for k, v in r.grads.items()} for r in refs]
        updates = []
        for i in range(n):
            start = i * e_units

            def rates(idx: int, i=i) -> list[np.ndarray]:
                return [np.clip(x[i], 0, 1)] + [np.clip(m[idx], 0, 1) for m in mons]

            low = rates(start + f_units + (n_units if symmetric else 0))
            high = rates(start + e_units)
            c_hi, c_lo = correlations(high), correlations(low)
            denom = 2 * cfg.beta if symmetric else cfg.beta
            updates.append({k: (c_hi[k] - c_lo[k]) / denom for k in c_hi})
        mean_u = {k: np.mean([u[k] for u in updates], axis=0) for k in grads[0]}
        mean_g = {k: np.mean([g[k] for g in grads], axis=0) for k in grads[0]}
        agree = ep.gradient_agreement(mean_u, mean_g)
        per = {
            k: float(np.nanmean([cosine(u[k], -g[k]) for u, g in zip(updates, grads, strict=True)]))
            for k in mean_g
        }
        return {
            "grad_cosine": {k: a.cosine for k, a in agree.items()},
            "grad_relative_error": {k: a.relative_error for k, a in agree.items()},
            "grad_sign_agreement": {k: a.sign_agreement for k, a in agree.items()},
            "grad_cosine_per_example_mean": per,
            "grad_examples": n,
            "grad_phases": "training (free_steps, nudged_steps)",
        }

    def _continual_gain(self, task: Task) -> float:
        """(η_1/β)·mean‖x‖², the online feedback through W1 of the continual rule (DESIGN.md
        §4.3; 1/2β for the stochastic variant's symmetric gain)."""
        div = 2 * task.cfg.beta if task.variant == "stochastic" else task.cfg.beta
        return task.lr_continual[0] / div * task.x2

    # ------------------------------------------------------------------ backprop baseline
    def _backprop(
        self, task: Task, w0: Mapping[str, np.ndarray], epochs: int, seed: int
    ) -> dict[str, Any]:
        """A feed-forward network of the same sizes and initial weights, trained by backprop
        on the same split: online SGD (batch 1) on ½‖r_N − d‖², per-layer rates ``backprop_lr``
        (default: the EP rates), × ``lr_decay`` per epoch, as many epochs."""
        import time

        import torch

        cfg, data = task.cfg, task.data
        n_epochs = epochs if cfg.backprop_epochs is None else cfg.backprop_epochs
        if n_epochs == 0:
            return {}
        net = ep.BackpropNetwork(
            task.sizes, seed=seed, weights={k: torch.tensor(v) for k, v in w0.items()},
            activation=cfg.backprop_activation,
        )  # fmt: skip
        X, D = torch.tensor(data.x_train), torch.tensor(task.d_train)
        Xt = torch.tensor(data.x_test)
        gen = torch.Generator().manual_seed(int(seed))
        hist = []
        start = time.perf_counter()
        for epoch in range(n_epochs):
            scale = cfg.lr_decay**epoch
            groups = [
                {
                    "params": [net.weights[f"W{k}"], net.weights[f"b{k}"]],
                    "lr": task.backprop_lr[k - 1] * scale,
                }
                for k in range(1, task.n_layers + 1)
            ]
            opt = torch.optim.SGD(groups)
            for i in torch.randperm(X.shape[0], generator=gen).tolist():
                opt.zero_grad()
                net.loss(X[i : i + 1], D[i : i + 1]).backward()
                opt.step()
            pred = net.predict(Xt).numpy()
            hist.append(float(np.mean(np.argmax(pred, axis=1) == data.labels_test)))
        wall = time.perf_counter() - start
        train_pred = net.predict(X).numpy()
        return {
            "test_accuracy": hist[-1],
            "train_accuracy": float(np.mean(np.argmax(train_pred, axis=1) == data.labels_train)),
            "history": hist,
            "epochs": n_epochs,
            "lr": task.backprop_lr,
            "activation": cfg.backprop_activation,
            "optimiser": "SGD, batch 1",
            "wall_seconds": wall,
        }

    # ------------------------------------------------------------------ gradient check
    def _grad_simulation(
        self, run: RunConfig, task: Task, dt: float, n_examples: int, phases: int
    ) -> tuple[Simulation, dict[str, Any]]:
        """Long, settled phases; continual rule in ``measure`` mode (accumulators), weights held
        fixed; every layer's state recorded at the phase boundaries."""
        cfg = task.cfg
        free_ms, nudged_ms = cfg.grad_free_ms, cfg.grad_nudged_ms
        zeros_x = np.zeros((n_examples, task.sizes[0]))
        zeros_d = np.zeros((n_examples, task.sizes[-1]))
        names = hp.timed_names(("continual",), 1.0)
        timed, timed_dt, example_ms = hp.example_timed(
            zeros_x, zeros_d, 0.0, free_ms=free_ms, nudged_ms=nudged_ms, dt_ms=dt,
            phases=phases, names=names,
        )  # fmt: skip
        record = {f"layer{k}": ("s",) for k in range(1, task.n_layers + 1)}
        unit_ms = math.gcd(round(free_ms / dt), round(nudged_ms / dt)) * dt
        params = hp.HopfieldParams(tau=1.0)

        def builder(tv: Any) -> Any:
            return hp.build(
                params, task.sizes, tv, dt_ms=dt, plasticity=("continual",),
                example_ms=example_ms, measure=True, record=record, record_dt_ms=unit_ms,
                timed_dt_ms=timed_dt,
            )  # fmt: skip

        sim = Simulation(
            builder,
            device=run.device,
            duration_ms=hp.duration_ms(n_examples, example_ms, dt),
            dt_ms=dt,
            initial_timed=timed,
            label=f"{hp.NAME}-gradcheck-{phases}-dt{dt:g}",
        )
        layout = {
            "free_ms": free_ms,
            "nudged_ms": nudged_ms,
            "phases": phases,
            "names": names,
            "unit_ms": unit_ms,
            "example_ms": example_ms,
        }
        return sim, layout

    def _measure(
        self,
        sim: Simulation,
        layout: Mapping[str, Any],
        task: Task,
        w: Mapping[str, np.ndarray],
        x: np.ndarray,
        d: np.ndarray,
        beta: float,
        symmetric: bool,
        centred: float,
        seed: int,
    ) -> dict[str, Any]:
        """One run of the gradient-check build: the accumulated update (summed over the examples)
        and, from the recorded states, each example's end-point update and free state."""
        free_ms, nudged_ms, phases = layout["free_ms"], layout["nudged_ms"], layout["phases"]
        names, unit_ms, example_ms = layout["names"], layout["unit_ms"], layout["example_ms"]
        dt, N, sizes = sim.dt_ms, task.n_layers, task.sizes
        timed, _, _ = hp.example_timed(
            x, d, beta, free_ms=free_ms, nudged_ms=nudged_ms, dt_ms=dt, symmetric=symmetric,
            phases=phases, names=names,
        )  # fmt: skip
        values = {
            **hp.weight_values(w, sizes),
            **hp.eta_values(sizes, continual=0.0),
            **{f"W{k}.centred": float(centred) for k in range(1, N + 1)},
        }
        read = tuple(f"W{k}.dW" for k in range(1, N + 1))
        read += tuple(f"layer{k}.db" for k in range(1, N + 1))
        result = sim.run(values=values, timed=timed, seed=seed, read=read)
        self._runs_done += 1
        acc: dict[str, np.ndarray] = {}
        for name, shape in hp.weight_shapes(sizes).items():
            if name.startswith("W"):
                acc[name] = hp.w_to_matrix(result.state[f"{name}.dW"], *shape)
            else:
                acc[name] = np.asarray(result.state[f"layer{name[1:]}.db"])
        per_unit = round(unit_ms / dt)
        e_units = round(example_ms / dt) // per_unit
        f_units = round(free_ms / dt) // per_unit
        n_units = round(nudged_ms / dt) // per_unit
        per_example, free_states = [], []
        for i in range(len(x)):
            start = i * e_units

            def state(idx: int, i=i) -> list[np.ndarray]:
                return [np.clip(x[i], 0, 1)] + [
                    np.clip(result.monitors[f"layer{k}"]["s"][idx], 0, 1) for k in range(1, N + 1)
                ]

            free = state(start + f_units)
            low = state(start + f_units + n_units) if symmetric else free
            high = state(start + e_units)
            denom = 2 * beta if symmetric else beta
            c_hi, c_lo = correlations(high), correlations(low)
            per_example.append({k: (c_hi[k] - c_lo[k]) / denom for k in c_hi})
            free_states.append(free[1:])
        return {"accumulated": acc, "per_example": per_example, "free": free_states, "run": result}

    def _references(self, task: Task, w: Mapping[str, np.ndarray], x, d, dt: float):
        """The twin's per-example loss gradients at the free fixed point, and fixed points."""
        import torch

        params = ep.EPParameters(tuple(task.sizes), dt=dt)
        tw = {k: torch.tensor(v) for k, v in w.items()}
        refs = [ep.loss_gradient(params, tw, x[i : i + 1], d[i : i + 1]) for i in range(len(x))]
        return params, tw, refs

    def _grad_curves(
        self, run, task: Task, sim: Simulation, layout, w, x, d, betas, modes, progress
    ) -> dict[str, Any]:
        """Per nudging mode and β: the circuit's EP update against −∇L of the twin."""
        _, _, refs = self._references(task, w, x, d, task.cfg.dt_ms)
        grads = [{k: v.numpy() for k, v in r.grads.items()} for r in refs]
        mean_grad = {k: np.mean([g[k] for g in grads], axis=0) for k in grads[0]}
        margins = np.array([float(r.margin[0]) for r in refs])
        table: dict[str, dict[str, Any]] = {}
        fp_error = 0.0
        for mode in modes:
            rows: dict[str, Any] = {}
            for j, beta in enumerate(betas):
                m = self._measure(
                    sim, layout, task, w, x, d, beta, mode == "symmetric", 1.0,
                    run_seed(run.seed, 7, j, int(mode == "symmetric")),
                )  # fmt: skip
                errors = np.array(
                    [
                        max(
                            float(np.abs(m["free"][i][k] - ref.free.s[k].numpy()[0]).max())
                            for k in range(task.n_layers)
                        )
                        for i, ref in enumerate(refs)
                    ]
                )
                fp_error = max(fp_error, float(errors.max()))
                # an example whose free phase has not reached the twin's fixed point has no
                # gradient to compare with: it is left out of the means (and counted)
                settled = np.flatnonzero(errors <= SETTLED_TOLERANCE)
                use = settled if len(settled) else np.arange(len(x))
                update = {
                    k: np.mean([m["per_example"][i][k] for i in use], axis=0) for k in mean_grad
                }
                target = {k: np.mean([grads[i][k] for i in use], axis=0) for k in mean_grad}
                agree = ep.gradient_agreement(update, target)
                per_cos = {
                    k: [cosine(m["per_example"][i][k], -grads[i][k]) for i in use]
                    for k in mean_grad
                }
                states_sum = {k: np.sum([u[k] for u in m["per_example"]], axis=0) for k in update}
                consistency = max(
                    relative_error(states_sum[k], m["accumulated"][k]) for k in update
                )
                unsettled = len(x) - len(settled)
                rows[f"{beta:g}"] = {
                    "beta": beta,
                    "cosine": {k: a.cosine for k, a in agree.items()},
                    "relative_error": {k: a.relative_error for k, a in agree.items()},
                    "sign_agreement": {k: a.sign_agreement for k, a in agree.items()},
                    "cosine_per_example_mean": {
                        k: float(np.nanmean(v)) for k, v in per_cos.items()
                    },
                    "cosine_per_example_min": {k: float(np.nanmin(v)) for k, v in per_cos.items()},
                    "accumulator_vs_states": consistency,
                    "unsettled_examples": unsettled,
                }
                progress(0, f"gradient check {mode} β={beta:g}")
            table[mode] = rows
        table["free_fixed_point_error"] = fp_error  # max over examples: circuit vs twin
        table["examples"] = len(x)
        table["margin_min"] = float(margins.min())
        table["margin_median"] = float(np.median(margins))
        table["loss"] = float(np.mean([r.loss for r in refs]))
        table["free_ms"], table["nudged_ms"] = task.cfg.grad_free_ms, task.cfg.grad_nudged_ms
        return table

    def _continual_vs_dt(self, run, task: Task, w, x, d, progress) -> dict[str, Any]:
        """Per step dt: the continual (ds/dt) rule integrated by the circuit (product rule,
        centred = 0) against the end-point two-phase update of the same phases (centred = 1) and
        the twin's exact two-phase update; weights held fixed."""
        import torch

        cfg = task.cfg
        beta = cfg.beta
        out: dict[str, Any] = {}
        # the projected dynamics' fixed points, and so the exact update, do not depend on dt
        params = ep.EPParameters(tuple(task.sizes), dt=cfg.dt_ms)
        tw = {k: torch.tensor(v) for k, v in w.items()}
        exact = {
            k: np.mean([
                ep.ep_update(params, tw, x[i : i + 1], d[i : i + 1], beta=beta).update[k].numpy()
                for i in range(len(x))
            ], axis=0)
            for k in w
        }  # fmt: skip
        fixed = [ep.fixed_point(params, tw, x[i : i + 1]).state for i in range(len(x))]
        for dt in cfg.continual_dts:
            sim, layout = self._grad_simulation(run, task, dt, len(x), 2)
            self._sims.append(sim)
            seed = run_seed(run.seed, 5)
            prod = self._measure(sim, layout, task, w, x, d, beta, False, 0.0, seed)
            tele = self._measure(sim, layout, task, w, x, d, beta, False, 1.0, seed)
            p = {k: v / len(x) for k, v in prod["accumulated"].items()}
            t = {k: v / len(x) for k, v in tele["accumulated"].items()}
            fp = max(
                float(np.abs(prod["free"][i][k] - fixed[i].s[k].numpy()[0]).max())
                for i in range(len(x))
                for k in range(task.n_layers)
            )
            out[f"{dt:g}"] = {
                "dt": dt,
                "continual_vs_two_phase": {k: relative_error(p[k], t[k]) for k in p},
                "continual_vs_exact": {k: relative_error(p[k], exact[k]) for k in p},
                "two_phase_vs_exact": {k: relative_error(t[k], exact[k]) for k in p},
                "free_fixed_point_error": fp,
                "wall_seconds": prod["run"].wall_seconds + tele["run"].wall_seconds,
                "compile_seconds": sim.compile_seconds,
            }
            row = out[f"{dt:g}"]
            row["continual_vs_two_phase_max"] = max(row["continual_vs_two_phase"].values())
            row["continual_vs_exact_max"] = max(row["continual_vs_exact"].values())
            progress(1, f"continual dt={dt:g}: {row['continual_vs_two_phase_max']:.2e}")
        return out

    def _gradient_check_stage(self, run: RunConfig, task: Task, progress) -> ProtocolResult:
        cfg, data = task.cfg, task.data
        scale = cfg.w_scale if cfg.w_scale is not None else GRADCHECK_W_SCALE
        w = {
            name: v.numpy().copy()
            for name, v in ep.init_weights(
                task.sizes, seed=run.seed, scale=scale, bias_scale=cfg.bias_scale
            ).items()
        }
        n = min(cfg.grad_examples, len(data.x_test))
        x, d = data.x_test[:n], task.d_test[:n]
        sim, layout = self._grad_simulation(run, task, cfg.dt_ms, n, 3)
        self._sims.append(sim)
        betas = sorted(set(cfg.grad_betas), reverse=True)
        table = self._grad_curves(
            run, task, sim, layout, w, x, d, betas, ["one-sided", "symmetric"], progress
        )
        progress(2 * len(betas), "continual against two-phase")
        m = min(cfg.continual_examples, n)
        dts = self._continual_vs_dt(run, task, w, x[:m], d[:m], progress)
        smallest = f"{min(cfg.grad_betas):g}"
        sym, one = table["symmetric"][smallest], table["one-sided"][smallest]
        finest = dts[f"{min(cfg.continual_dts):g}"]
        metrics: dict[str, Any] = {
            "grad_check": table,
            "grad_cosine": table["symmetric"].get(f"{cfg.beta:g}", sym)["cosine"],
            "grad_cosine_symmetric_smallest_beta": sym["cosine"],
            "grad_cosine_one_sided_smallest_beta": one["cosine"],
            "grad_cosine_symmetric_min": min(sym["cosine"].values()),
            "grad_relative_error_symmetric_max": max(sym["relative_error"].values()),
            "grad_sign_agreement_symmetric_min": min(sym["sign_agreement"].values()),
            "smallest_beta": min(cfg.grad_betas),
            "free_fixed_point_error": table["free_fixed_point_error"],
            "w_scale": scale,
            "continual_vs_dt": dts,
            "continual_vs_two_phase_finest_dt": finest["continual_vs_two_phase_max"],
            "continual_vs_exact_finest_dt": finest["continual_vs_exact_max"],
            "continual_examples": m,
        }
        dat = {
            "stage": "gradient-check",
            "grad_curve": _curve_arrays(table, betas),
            "dts": np.asarray(cfg.continual_dts, dtype=float),
            "continual_error": {
                name: np.array(
                    [dts[f"{v:g}"]["continual_vs_two_phase"][name] for v in cfg.continual_dts]
                )
                for name in w
            },  # fmt: skip
            "continual_error_exact": {
                name: np.array(
                    [dts[f"{v:g}"]["continual_vs_exact"][name] for v in cfg.continual_dts]
                )
                for name in w
            },  # fmt: skip
        }
        return ProtocolResult(metrics=metrics, segments=[], weights=w, data=dat)

    # ------------------------------------------------------------------ one example, every step
    def _trace(self, run: RunConfig, task: Task, w: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """One test example through the variant's phases with the trained weights held fixed
        (learning rates 0, β as in training): states s and their rate of change ρ'ṡ (``rdot``)
        of every layer at every step (a one-example build of the same layout)."""
        N = task.n_layers
        record = {f"layer{k}": ("s", "rdot") for k in range(1, N + 1)}
        sim, info = self._train_simulation(run, task, 1, record, 1)
        self._sims.append(sim)
        x, d = task.data.x_test[:1], task.d_test[:1]
        tv, _, _ = self._layout(task, x, d, np.array([task.cfg.beta]), info["names"])
        values = {
            **hp.weight_values(w, task.sizes),
            **self._static_values(task),
            **self._rule_values(task, 0.0),
        }
        result = sim.run(values=values, timed=tv, seed=run_seed(run.seed, 4))
        self._runs_done += 1
        e = round(info["example_ms"] / task.cfg.dt_ms)
        out: dict[str, Any] = {
            "dt_ms": task.cfg.dt_ms,
            "beta": np.repeat(tv["beta"][:-1], e // (len(tv["beta"]) - 1)),
            "x": x[0],
            "free_steps": task.free_steps,
            "nudged_steps": task.nudged_steps,
            "label": int(task.data.labels_test[0]),
        }
        for k in range(1, N + 1):
            out[f"s{k}"] = result.monitors[f"layer{k}"]["s"][: e + 1]
            out[f"rdot{k}"] = result.monitors[f"layer{k}"]["rdot"][: e + 1]
        return out


def _curve_arrays(table: Mapping[str, Any], betas: Sequence[float]) -> dict[str, Any]:
    """The gradient check as arrays against β, per mode and measure and parameter."""
    out: dict[str, Any] = {"betas": np.asarray(betas, dtype=float)}
    for mode in ("one-sided", "symmetric"):
        if mode not in table:
            continue
        rows = [table[mode][f"{b:g}"] for b in betas]
        for measure in ("cosine", "relative_error", "sign_agreement"):
            out[f"{mode}/{measure}"] = {
                name: np.array([r[measure][name] for r in rows]) for name in rows[0][measure]
            }
    return out


register_protocol(
    EquilibriumPropagation.name, EquilibriumPropagation.summary, EquilibriumPropagation
)

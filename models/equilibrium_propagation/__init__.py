"""Torch twin of a layered continuous-time Hopfield circuit trained by Equilibrium Propagation
(Scellier & Bengio 2017; DESIGN.md §4.3, issue 4).

Written like :mod:`models.dendritic_microcircuit`: an immutable parameter record, NamedTuple
results and pure functions, float64 throughout, no Brian2. The Brian2 circuit
(``circuits/hopfield``) and this twin share names, so the bridge can move weights and states
between them:

* layer sizes ``sizes = [n0, n1, ..., nN]``: layer 0 is the input, clamped to ``x`` (no dynamics),
  layers 1..N have states ``s_k`` (batch, n_k), layer N is the output;
* weights in a ``dict[str, Tensor]``: ``W{k}`` (k = 1..N), shape (n_k, n_{k−1}), the *one*
  symmetric weight between layers k−1 and k, used bottom-up as W_k and top-down as W_kᵀ;
  ``b{k}`` (k = 1..N), shape (n_k,);
* ρ(s) = clip(s, 0, 1) (hard sigmoid); ρ'(s) = 1 on the closed interval [0, 1], 0 outside (the
  derivative torch's ``clamp`` uses, so a state starting at 0 can move). With
  ``EPParameters(activation="smooth_sigmoid")`` ρ(s) = 1/(1 + e^{−4(s − 0.5)}) (Laborieux et al.
  2021) and the dynamics are plain Euler of ds/dt = −∂F/∂s (nothing is clipped; the input's
  rate stays clip(x, 0, 1)); fixed points by Newton's method with the exact :func:`hessian`.

Energy, cost and dynamics (time in units of τ = 1; in the Brian2 circuit τ = 1 ms), per sample:

    E(s) = ½ Σ_{k≥1} ‖s_k‖² − Σ_k ρ(s_k)ᵀ W_k ρ(s_{k−1}) − Σ_k b_kᵀ ρ(s_k),   s_0 = x
    C(s) = ½ ‖ρ(s_N) − d‖²,   F = E + β C,   ds/dt = −∂F/∂s
    ∂F/∂s_k = s_k − ρ'(s_k) (W_k ρ(s_{k−1}) + W_{k+1}ᵀ ρ(s_{k+1}) + b_k) [+ β ρ'(s_N)(ρ(s_N) − d)]

Two discretisations with step ``dt`` (= ε of the paper), chosen by ``projected``:

* projected Euler (default; the authors' code): s ← clip(s − ε ∂F/∂s, 0, 1). States stay in the
  box, where ρ(s) = s and ρ' = 1, so this is projected gradient descent on F over [0, 1]^n; its
  fixed points are exactly s = clip(s − ∂F/∂s), for every ε > 0.
* ρ'-gated Euler: s ← s − ε ∂F/∂s with the ρ' factors above (plain Euler on the exact gradient).
  A unit pushed below 0 has ρ' = 0 and decays back toward 0 from below without crossing: it
  sticks there even if its input turns positive later (DESIGN.md §4.3). A unit pushed above 1 has
  ρ' = 0 too and decays toward 0, re-enters the box and is pushed over 1 again: it chatters at 1
  (a sliding mode in continuous time), so max|ds/dt| does not go to 0. Its limits need not be
  stationary points of F on the box; the projected form is the reference.

What is here (every public name is importable from ``models.equilibrium_propagation``):

* :mod:`.network`: :class:`EPParameters`, ρ (:func:`rho`, :func:`rho_derivative`),
  :func:`init_weights` (Glorot uniform, biases 0 or small), :func:`check_weights`,
  :class:`HopfieldState`, :func:`zero_state`; :func:`baseline_layer`, the layer function of the
  backprop baseline (:mod:`models.backprop`);
* :mod:`.dynamics`: :func:`energy`, :func:`cost`, :func:`total_energy`, :func:`gradient`
  (∂F/∂s), :func:`derivatives` (ds/dt), :func:`step`, :func:`residual`; :func:`relax` (fixed
  number of steps, or until the residual is below a tolerance) and :func:`fixed_point`
  (relaxation, then the active-set Newton method on the piecewise-linear fixed-point equation, to
  max|clip(s − ∂F/∂s) − s| < 1e-12);
* :mod:`.updates`: :func:`ep_update`, the two-phase and the symmetric EP updates from fixed
  points (or from fixed-length relaxations, as in training); :func:`continual_update`: the same
  update integrated step by step over the nudged phase ("error in ds/dt"), in the telescoping
  and the product-rule forms; :func:`train_batch`, one EP training step;
* :mod:`.gradients`: :func:`loss_gradient` (implicit differentiation at the free fixed point)
  and :func:`bptt_gradient` (autograd through a long relaxation), the references for the
  gradient check; :func:`gradient_agreement` (per-layer cosine, relative error, sign agreement).
"""

from models.equilibrium_propagation.dynamics import (
    Relaxation,
    cost,
    derivatives,
    energy,
    fixed_point,
    gradient,
    hessian,
    relax,
    residual,
    step,
    total_energy,
)
from models.equilibrium_propagation.gradients import (
    Agreement,
    LossGradient,
    bptt_gradient,
    gradient_agreement,
    loss_gradient,
)
from models.equilibrium_propagation.network import (
    ACTIVATIONS,
    DTYPE,
    HARD_SIGMOID,
    RATE_FUNCTIONS,
    RATES,
    SMOOTH_SIGMOID,
    EPParameters,
    HopfieldState,
    RateFunction,
    Weights,
    baseline_layer,
    check_weights,
    expected_shapes,
    init_weights,
    layer_sizes,
    rho,
    rho_derivative,
    smooth_sigmoid,
    state_distance,
    zero_state,
)
from models.equilibrium_propagation.updates import (
    VARIANTS,
    ContinualUpdate,
    EPUpdate,
    continual_update,
    ep_update,
    train_batch,
)

__all__ = [
    "ACTIVATIONS",
    "DTYPE",
    "HARD_SIGMOID",
    "RATE_FUNCTIONS",
    "RATES",
    "SMOOTH_SIGMOID",
    "RateFunction",
    "VARIANTS",
    "Agreement",
    "baseline_layer",
    "ContinualUpdate",
    "EPParameters",
    "EPUpdate",
    "HopfieldState",
    "LossGradient",
    "Relaxation",
    "Weights",
    "bptt_gradient",
    "check_weights",
    "continual_update",
    "cost",
    "derivatives",
    "energy",
    "ep_update",
    "expected_shapes",
    "fixed_point",
    "gradient",
    "gradient_agreement",
    "hessian",
    "init_weights",
    "layer_sizes",
    "loss_gradient",
    "relax",
    "residual",
    "rho",
    "rho_derivative",
    "smooth_sigmoid",
    "state_distance",
    "step",
    "total_energy",
    "train_batch",
    "zero_state",
]

"""Independently Controllable Features in PyTorch (E. Bengio, Thomas, Pineau, Precup, Y. Bengio
2017; Thomas et al. 2017, 2018; DESIGN.md §4.4, issue 5).

The world is :mod:`neurosim.grid_world`: a 2×2 square on a 12×12 canvas, four actions. Its 121
states are few, so every measure here is exact: it runs over all positions. Files:
:mod:`.model` (settings, networks), :mod:`.objective` (selectivity, losses), :mod:`.training`,
:mod:`.measures`; every public name is importable from ``models.icf``.

**Discrete model** (:class:`DiscreteICF`). Encoder f: two 16@3×3 stride-2 ReLU convolutions
(12×12 → 6×6 → 3×3), a 32-unit ReLU layer z, n = 4 tanh features h = f(s). Decoder g mirrors it
(n → 32 → 16·3·3 → two transposed convolutions → 12×12, sigmoid: the pixels are 0 or 1). Policies
π_k(a|s), k = 1..n, are softmaxes over the 4 actions, read from z by one linear layer. Loss,
per batch of states s:

    L = ½ ‖s − g(f(s))‖² − λ Σ_k E_s[ Σ_a π_k(a|s) sel(s, a, k) ]
    sel(s, a, k) = E_{s'|s,a}[ num(f_k(s') − f_k(s)) / (Σ_k' |f_k'(s') − f_k'(s)| + ε) ]

λ rises linearly from 0 over the first ``warmup`` steps: at full strength from the start the
decoder can collapse to blank images while the scale-free selectivity shrinks the features
(README). The world is deterministic, so E_{s'|s,a} is the single next state s'_a and the sum
over a runs over the four next states exactly (no sampled actions, no REINFORCE). The numerator
is ``signed`` (Δ, each feature pairs with one direction, ±x or ±y), ``abs`` (|Δ|, the paper's
first form: a feature pairs with an axis) or ``relu`` (max(Δ, 0)). With ``log`` the term is
log sel: for ``abs``/``relu`` log(sel + ε_log); for ``signed``, whose sel lies in [−1, 1],
log((1 + sel)/2 + ε_log) (our choice of a monotone map onto [0, 1] so that the log exists).
ε keeps sel = 0 where an action hits the border and nothing changes.

**Continuous model** (:class:`ContinuousICF`; Thomas et al. 2018). A factor is an embedding φ
(a unit vector in feature space, sampled uniformly on the sphere, ``n_phi`` fresh ones per step).
The selectivity of an action along φ is the normalised change A(φ, Δ) = φ·Δ / (‖Δ‖₁ + ε_φ)
relative to the average over the sampled φ': A(φ, Δ) − mean_φ' A(φ', Δ) (plain), or
A/T − log mean_φ' exp(A(φ', Δ)/T) (``log``: the contrastive, softmax form). The loss is the
reconstruction minus λ E_{s,φ}[Σ_a π(a|s, φ) sel(s, a, φ)]. Two choices make it train (what
failed without them: README):

- The policy is bilinear, π(a|s, φ) = softmax_a(φ · e_a(s)), with e_a(s) ∈ R^n an *action
  embedding* read linearly from z: it depends on φ from the first step, so the log form's
  baseline log mean_φ' exp(A/T), which makes every change a loss while π ignores φ, cannot
  flatten the features before the policy picks anything.
- ε_φ = ``factor_eps`` (default 0.02, on the scale of a one-cell change of a tanh feature that
  spans its range over the grid, ≈ 0.2), not 1e-6: with ε_φ, changes much smaller than ε_φ earn
  proportionally less, so selective changes grow to a size the decoder can use.

What it learns: the best A along uniformly drawn φ comes from changes along single coordinates
(‖Δ‖₂/‖Δ‖₁ is 1 only there), and left/right, up/down undo each other, so the optimum uses *two*
features, one per axis, and leaves the others constant: n = 4 features hold two controllable
factors. The per-feature regression therefore scores two features near 1 and the two constant
ones near nothing; :func:`evaluate` also reports each feature's spread, which features are
active, how well (x, y) can be read linearly from all features, and how the factor space splits
among the actions (:func:`factor_action_analysis`).

**Heads** (both models, :class:`Heads`): a transition head predicts h' = h + T(h, c) — the effect
of an action in feature space — from h and the condition c (one-hot action for the discrete model;
φ for the continuous one, whose target is then the exact expectation Σ_a π(a|s, φ) f(s'_a)); an
inverse head recovers the action from (h, h') — the cause. They read the features detached (they
measure what the representation makes predictable; they do not shape it) and train only on the
training split of positions, so their scores on the held-out positions are generalisation.
Inverse accuracy counts only pairs where the action moved the square: at the border a blocked
action leaves s' = s and cannot be told from another blocked one.

Measures (:func:`evaluate`): per-feature linear regression on the true (x, y) (R² on x alone, on
y alone, the best of the two, joint slopes and R²), the selectivity matrix S[k, a], the policy
matrix P[k, a] = E_s π_k(a|s) and its matched diagonal mass (best assignment of features to
actions, brute force), reconstruction error, inverse accuracy and transition R² on held-out
positions; each feature's spread and the active ones, the R² of x and y read linearly from all
features; for the continuous model, how the factor space splits among the actions.
"""

from models.icf.measures import (
    ACTIVE_STD,
    decode_positions,
    evaluate,
    factor_action_analysis,
    linear_regression,
    matched_diagonal_mass,
    r2_score,
)
from models.icf.model import (
    NUMERATORS,
    ContinuousICF,
    Decoder,
    DiscreteICF,
    Encoder,
    Heads,
    ICFSettings,
    Numerator,
    build_model,
)
from models.icf.objective import (
    LOG_EPS,
    SEL_EPS,
    WorldTensors,
    encode_with_next,
    factor_selectivity,
    heads_loss,
    icf_loss,
    reconstruction_loss,
    sample_factors,
    selectivity,
)
from models.icf.training import train

__all__ = [
    "ACTIVE_STD",
    "LOG_EPS",
    "NUMERATORS",
    "SEL_EPS",
    "ContinuousICF",
    "Decoder",
    "DiscreteICF",
    "Encoder",
    "Heads",
    "ICFSettings",
    "Numerator",
    "WorldTensors",
    "build_model",
    "decode_positions",
    "encode_with_next",
    "evaluate",
    "factor_action_analysis",
    "factor_selectivity",
    "heads_loss",
    "icf_loss",
    "linear_regression",
    "matched_diagonal_mass",
    "r2_score",
    "reconstruction_loss",
    "sample_factors",
    "selectivity",
    "train",
]

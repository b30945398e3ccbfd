"""Independently Controllable Features in PyTorch (E. Bengio, Thomas, Pineau, Precup, Y. Bengio
2017; Thomas et al. 2017, 2018; DESIGN.md §4.4, issue 5).

The world is :mod:`neurosim.grid_world`: a 2×2 square on a 12×12 canvas, four actions. Its 121
states are few, so every measure here is exact: it runs over all positions.

**Discrete model** (:class:`DiscreteICF`). Encoder f: two 16@3×3 stride-2 ReLU convolutions
(12×12 → 6×6 → 3×3), a 32-unit ReLU layer z, n = 4 tanh features h = f(s). Decoder g mirrors it
(n → 32 → 16·3·3 → two transposed convolutions → 12×12, sigmoid: the pixels are 0 or 1). Policies
π_k(a|s), k = 1..n, are softmaxes over the 4 actions, read from z by one linear layer. Loss,
per batch of states s:

    L = ½ ‖s − g(f(s))‖² − λ Σ_k E_s[ Σ_a π_k(a|s) sel(s, a, k) ]
    sel(s, a, k) = E_{s'|s,a}[ num(f_k(s') − f_k(s)) / (Σ_k' |f_k'(s') − f_k'(s)| + ε) ]

λ rises linearly from 0 over the first ``warmup`` steps: the autoencoder first learns to
reconstruct, since with λ at full strength from the start the decoder can collapse to blank
images while the (scale-free) selectivity shrinks the features (seen with seed 1, batch 64:
reconstruction stuck at ½·4 pixels, features nearly constant). The world is deterministic, so
E_{s'|s,a} is the single next state s'_a and the sum over a runs
over the four next states exactly (no sampled actions, no REINFORCE). The numerator is ``signed``
(Δ, each feature pairs with one direction, ±x or ±y), ``abs`` (|Δ|, the paper's first form: a
feature pairs with an axis) or ``relu`` (max(Δ, 0)). With ``log`` the term is log sel: for
``abs``/``relu`` log(sel + ε_log); for ``signed``, whose sel lies in [−1, 1], log((1 + sel)/2 +
ε_log) (our choice of a monotone map onto [0, 1] so that the log exists). ε keeps sel = 0 where an
action hits the border and nothing changes.

**Continuous model** (:class:`ContinuousICF`; Thomas et al. 2018). A factor is an embedding φ
(a unit vector in feature space, sampled uniformly on the sphere, ``n_phi`` fresh ones per step).
The selectivity of an action along φ is the normalised change A(φ, Δ) = φ·Δ / (‖Δ‖₁ + ε_φ)
relative to the average over the sampled φ': A(φ, Δ) − mean_φ' A(φ', Δ) (plain), or
A/T − log mean_φ' exp(A(φ', Δ)/T) (``log``: the contrastive, softmax form). The loss is the
reconstruction minus λ E_{s,φ}[Σ_a π(a|s, φ) sel(s, a, φ)]. Two choices make it train (with the
first version, an MLP policy on (z, φ) and ε_φ = 1e-6, seed 1 collapsed to constant features and
blank reconstructions):

- The policy is bilinear: π(a|s, φ) = softmax_a(φ · e_a(s)), where e_a(s) ∈ R^n, an *action
  embedding* read linearly from z. A factor picks the action whose embedding it points along, so
  the policy depends on φ from the first step on. With the MLP policy it learned that dependence
  slowly, and while π does not depend on φ the log form's baseline log mean_φ' exp(A/T) makes
  every change a loss (Jensen: mean_φ A/T ≤ log mean_φ exp(A/T), with equality only for Δ = 0):
  the encoder made the features constant before the policy could pick anything (selectivity
  term exactly 0 from step ~300; features and reconstruction never recovered).
- ε_φ = ``factor_eps`` (default 0.02, on the scale of a one-cell change of a tanh feature that
  spans its range over the grid, ≈ 0.2) instead of 1e-6. A with ε = 1e-6 is scale-free: a change
  of 1e-4 earns the same selectivity as one of 0.2. With the bilinear policy alone, seed 1 learned
  perfect directions (one feature ∝ x, one ∝ y, R² 0.996, 0.998) with a range of 1e-4 over the
  whole grid, too small for the decoder (still blank after 3000 steps) or the inverse head (0.24).
  With ε_φ, changes much smaller than ε_φ earn proportionally less, so selective changes grow to
  a size the decoder can use. (ε_φ = 0.02 with the MLP policy: one feature learned, recon 1.56.)

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

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from neurosim import grid_world as gw

Numerator = Literal["abs", "signed", "relu"]
NUMERATORS: tuple[str, ...] = ("abs", "signed", "relu")
#: keeps sel finite where no feature changes (an action blocked by the border)
SEL_EPS = 1e-6
#: added inside log sel
LOG_EPS = 1e-3


# ---------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ICFSettings:
    """Everything that defines one training run (the protocol's ``[protocol]`` table maps here)."""

    variant: Literal["discrete", "continuous"] = "discrete"
    n_features: int = 4
    numerator: Numerator = "signed"
    log: bool = True
    lam: float = 1.0
    warmup: int = 500
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    n_phi: int = 16
    temperature: float = 0.25
    factor_eps: float = 0.02
    heads_lr: float = 3e-3
    holdout: float = 0.2
    seed: int = 1
    log_every: int = 100

    def __post_init__(self) -> None:
        if self.variant not in ("discrete", "continuous"):
            raise ValueError(f"variant must be 'discrete' or 'continuous', got {self.variant!r}.")
        if self.numerator not in NUMERATORS:
            raise ValueError(f"numerator must be one of {NUMERATORS}, got {self.numerator!r}.")
        if self.warmup < 0:
            raise ValueError(f"warmup must be non-negative, got {self.warmup}.")
        for name in ("n_features", "steps", "batch", "n_phi", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must lie strictly between 0 and 1, got {self.holdout}.")
        if self.lr <= 0 or self.heads_lr <= 0 or self.temperature <= 0 or self.factor_eps <= 0:
            raise ValueError("lr, heads_lr, temperature and factor_eps must be positive.")


# ---------------------------------------------------------------------------------- networks
class Encoder(nn.Module):
    """s (B, 1, 12, 12) → (h, z): n tanh features and the 32-unit ReLU layer they come from."""

    def __init__(self, n_features: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)  # 12 → 6
        self.conv2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)  # 6 → 3
        self.hidden = nn.Linear(16 * 3 * 3, 32)
        self.features = nn.Linear(32, n_features)

    def forward(self, s: Tensor) -> tuple[Tensor, Tensor]:
        x = F.relu(self.conv2(F.relu(self.conv1(s))))
        z = F.relu(self.hidden(x.flatten(1)))
        return torch.tanh(self.features(z)), z


class Decoder(nn.Module):
    """The encoder's mirror: h (B, n) → pixel probabilities (B, 1, 12, 12)."""

    def __init__(self, n_features: int = 4) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_features, 32)
        self.expand = nn.Linear(32, 16 * 3 * 3)
        self.deconv2 = nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1, output_padding=1)
        self.deconv1 = nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1)

    def forward(self, h: Tensor) -> Tensor:
        x = F.relu(self.expand(F.relu(self.hidden(h)))).view(-1, 16, 3, 3)
        return torch.sigmoid(self.deconv1(F.relu(self.deconv2(x))))


class Heads(nn.Module):
    """Transition head h' = h + T(h, c) and inverse head logits(a | h, h')."""

    def __init__(self, n_features: int, n_condition: int, hidden: int = 64) -> None:
        super().__init__()
        self.transition = nn.Sequential(
            nn.Linear(n_features + n_condition, hidden), nn.ReLU(), nn.Linear(hidden, n_features)
        )
        self.inverse = nn.Sequential(
            nn.Linear(2 * n_features, hidden), nn.ReLU(), nn.Linear(hidden, gw.N_ACTIONS)
        )

    def predict_next(self, h: Tensor, c: Tensor) -> Tensor:
        """Predicted next features h' from features h and condition c."""
        return h + self.transition(torch.cat([h, c], dim=-1))

    def action_logits(self, h: Tensor, h_next: Tensor) -> Tensor:
        """Logits over the 4 actions that took h to h_next."""
        return self.inverse(torch.cat([h, h_next], dim=-1))


class DiscreteICF(nn.Module):
    """Encoder, decoder, n policies π_k over the 4 actions from z, and the heads."""

    def __init__(self, n_features: int = 4) -> None:
        super().__init__()
        self.n_features = n_features
        self.encoder = Encoder(n_features)
        self.decoder = Decoder(n_features)
        self.policy = nn.Linear(32, n_features * gw.N_ACTIONS)
        self.heads = Heads(n_features, gw.N_ACTIONS)

    def policies(self, z: Tensor) -> Tensor:
        """π_k(a|s), shape (B, n, 4)."""
        return F.softmax(self.policy(z).view(-1, self.n_features, gw.N_ACTIONS), dim=-1)


class ContinuousICF(nn.Module):
    """Encoder, decoder, one bilinear policy π(a|s, φ) = softmax_a(φ · e_a(s)) over factor
    embeddings φ, with action embeddings e_a(s) read linearly from z, and the heads (module
    docstring: why bilinear)."""

    def __init__(self, n_features: int = 4) -> None:
        super().__init__()
        self.n_features = n_features
        self.encoder = Encoder(n_features)
        self.decoder = Decoder(n_features)
        self.policy = nn.Linear(32, gw.N_ACTIONS * n_features)
        self.heads = Heads(n_features, n_features)

    def action_embeddings(self, z: Tensor) -> Tensor:
        """e_a(s), shape (B, 4, n): the direction in factor space that selects action a."""
        return self.policy(z).view(-1, gw.N_ACTIONS, self.n_features)

    def policies(self, z: Tensor, phi: Tensor) -> Tensor:
        """π(a|s, φ) for every state and every φ, shape (B, M, 4) for z (B, 32), φ (M, n)."""
        return F.softmax(torch.einsum("ban,mn->bma", self.action_embeddings(z), phi), dim=-1)


def build_model(settings: ICFSettings) -> DiscreteICF | ContinuousICF:
    """A freshly initialised model, seeded by ``settings.seed``."""
    torch.manual_seed(settings.seed)
    cls = DiscreteICF if settings.variant == "discrete" else ContinuousICF
    return cls(settings.n_features)


# ---------------------------------------------------------------------------------- selectivity
def selectivity(
    h: Tensor, h_next: Tensor, numerator: Numerator = "signed", log: bool = False
) -> Tensor:
    """sel(s, a, k) for features ``h`` (B, n) and the features of the next states ``h_next``
    (B, A, n); shape (B, A, n). The world is deterministic, so the expectation over s' is the one
    next state. ``log`` returns log sel (module docstring for the signed form)."""
    if numerator not in NUMERATORS:
        raise ValueError(f"numerator must be one of {NUMERATORS}, got {numerator!r}.")
    if h_next.dim() != 3 or h.dim() != 2 or h_next.shape[0] != h.shape[0]:
        raise ValueError(f"need h (B, n) and h_next (B, A, n); got {tuple(h.shape)}, "
                         f"{tuple(h_next.shape)}.")  # fmt: skip
    d = h_next - h[:, None, :]
    denom = d.abs().sum(dim=-1, keepdim=True) + SEL_EPS
    num = {"signed": d, "abs": d.abs(), "relu": F.relu(d)}[numerator]
    sel = num / denom
    if not log:
        return sel
    if numerator == "signed":
        return torch.log((1.0 + sel) / 2.0 + LOG_EPS)
    return torch.log(sel + LOG_EPS)


def factor_selectivity(
    h: Tensor,
    h_next: Tensor,
    phi: Tensor,
    log: bool = False,
    temperature: float = 0.25,
    eps: float = SEL_EPS,
) -> Tensor:
    """Continuous selectivity sel(s, a, φ), shape (B, M, A), for h (B, n), h_next (B, A, n) and
    factors φ (M, n): the normalised change along φ, A = φ·Δ/(‖Δ‖₁ + eps), relative to the average
    over the M sampled φ (plain: minus the mean of A; log: A/T minus log-mean-exp of A/T). Training
    passes ``eps = settings.factor_eps`` (module docstring: why not 1e-6)."""
    d = h_next - h[:, None, :]  # (B, A, n)
    along = torch.einsum("ban,mn->bma", d, phi) / (d.abs().sum(-1)[:, None, :] + eps)
    if log:
        scaled = along / temperature
        return scaled - (torch.logsumexp(scaled, dim=1, keepdim=True) - math.log(phi.shape[0]))
    return along - along.mean(dim=1, keepdim=True)


def sample_factors(n: int, m: int, generator: torch.Generator | None = None) -> Tensor:
    """``m`` factor embeddings φ drawn uniformly on the unit sphere of R^n, shape (m, n)."""
    phi = torch.randn(m, n, generator=generator)
    return phi / phi.norm(dim=1, keepdim=True).clamp_min(1e-12)


# ---------------------------------------------------------------------------------- data
class WorldTensors:
    """All 121 states as tensors: images, the index of each next state, and whether it moved."""

    def __init__(self) -> None:
        self.positions = gw.all_positions()
        self.images = torch.from_numpy(gw.render(self.positions))[:, None]  # (121, 1, 12, 12)
        nxt = gw.next_states(self.positions)  # (121, 4, 2)
        self.next_index = torch.from_numpy(gw.position_index(nxt.reshape(-1, 2)).reshape(-1, 4))
        self.moved = torch.from_numpy(gw.moved(self.positions))

    def split(self, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of training and held-out positions (a seeded permutation)."""
        perm = np.random.default_rng(seed).permutation(len(self.positions))
        n_test = max(1, round(holdout * len(perm)))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _encode_with_next(
    model: DiscreteICF | ContinuousICF, world: WorldTensors, idx: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One encoder pass over states ``idx`` and their 4 next states: (s, h, z, h_next)."""
    s = world.images[idx]
    nxt = world.next_index[idx]  # (B, 4)
    h_all, z_all = model.encoder(torch.cat([s, world.images[nxt.reshape(-1)]]))
    B = len(idx)
    return s, h_all[:B], z_all[:B], h_all[B:].view(B, gw.N_ACTIONS, -1)


def reconstruction_loss(s: Tensor, recon: Tensor) -> Tensor:
    """½ ‖s − g(f(s))‖² summed over pixels, averaged over the batch."""
    return 0.5 * (s - recon).pow(2).flatten(1).sum(1).mean()


def icf_loss(
    model: DiscreteICF | ContinuousICF,
    world: WorldTensors,
    idx: Tensor,
    settings: ICFSettings,
    phi: Tensor | None = None,
    lam: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The ICF loss of a batch of state indices and its parts (``phi`` for the continuous model;
    ``lam`` overrides ``settings.lam``, for the warm-up); the parts include the features and next
    features for the heads."""
    lam = settings.lam if lam is None else lam
    s, h, z, h_next = _encode_with_next(model, world, idx)
    recon = reconstruction_loss(s, model.decoder(h))
    if isinstance(model, DiscreteICF):
        pi = model.policies(z)  # (B, n, A)
        sel = selectivity(h, h_next, settings.numerator, settings.log)  # (B, A, n)
        # G[b, k, j] = Σ_a π_j(a|s) sel(s, a, k): feature k under policy j
        G = torch.einsum("bja,bak->bkj", pi, sel)
        sel_term = torch.diagonal(G, dim1=1, dim2=2).sum(dim=1).mean()
    else:
        assert phi is not None
        pi = model.policies(z, phi)  # (B, M, A)
        sel = factor_selectivity(
            h, h_next, phi, settings.log, settings.temperature, settings.factor_eps
        )
        sel_term = (pi * sel).sum(dim=2).mean()
    loss = recon - lam * sel_term
    return loss, {"reconstruction": recon, "selectivity": sel_term, "h": h, "h_next": h_next,
                  "pi": pi}  # fmt: skip


def heads_loss(
    model: DiscreteICF | ContinuousICF,
    world: WorldTensors,
    idx: Tensor,
    h: Tensor,
    h_next: Tensor,
    pi: Tensor,
    phi: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(transition MSE, inverse cross-entropy) on detached features of states ``idx``. Inverse:
    every action that moved the square; transition: every action (discrete) or the expected next
    features under π(·|s, φ) (continuous)."""
    h, h_next = h.detach(), h_next.detach()
    B, A, n = h_next.shape
    actions = torch.arange(A).expand(B, A)
    hh = h[:, None, :].expand(B, A, n)
    moved = world.moved[idx]
    logits = model.heads.action_logits(hh[moved], h_next[moved])
    inverse = F.cross_entropy(logits, actions[moved]) if moved.any() else h.sum() * 0
    if isinstance(model, DiscreteICF):
        pred = model.heads.predict_next(hh, F.one_hot(actions, A).to(h.dtype))
        transition = (pred - h_next).pow(2).sum(-1).mean()
    else:
        assert phi is not None
        M = phi.shape[0]
        target = torch.einsum("bma,ban->bmn", pi.detach(), h_next)
        pred = model.heads.predict_next(
            h[:, None, :].expand(B, M, n), phi[None].expand(B, M, n)
        )  # fmt: skip
        transition = (pred - target).pow(2).sum(-1).mean()
    return transition, inverse


# ---------------------------------------------------------------------------------- training
def train(
    settings: ICFSettings,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[DiscreteICF | ContinuousICF, dict[str, Any]]:
    """Train a model from scratch; returns it and its history (every ``log_every`` steps: the
    loss and its parts, averaged over those steps). ``callback(steps_done, record)`` is called at
    each record. Reproducible by ``settings.seed`` (torch and numpy generators)."""
    model = build_model(settings)
    world = WorldTensors()
    train_idx, test_idx = world.split(settings.holdout, settings.seed)
    train_mask = torch.zeros(len(world.positions), dtype=torch.bool)
    train_mask[torch.from_numpy(train_idx)] = True
    sampler = gw.GridWorld(np.random.default_rng([settings.seed, 1]))
    phi_gen = torch.Generator().manual_seed(settings.seed + 7919)
    head_params = list(model.heads.parameters())
    head_ids = {id(p) for p in head_params}
    main_params = [p for p in model.parameters() if id(p) not in head_ids]
    opt = torch.optim.Adam(
        [{"params": main_params, "lr": settings.lr}, {"params": head_params,
                                                        "lr": settings.heads_lr}]
    )  # fmt: skip
    keys = ("loss", "reconstruction", "selectivity", "transition", "inverse")
    history: dict[str, Any] = {"step": [], **{k: [] for k in keys}, "settings": asdict(settings)}
    sums = dict.fromkeys(keys, 0.0)
    count = 0
    start = time.perf_counter()
    for step in range(1, settings.steps + 1):
        idx = torch.from_numpy(gw.position_index(sampler.sample_positions(settings.batch)))
        phi = None
        if settings.variant == "continuous":
            phi = sample_factors(settings.n_features, settings.n_phi, phi_gen)
        lam = settings.lam * min(1.0, step / settings.warmup) if settings.warmup else None
        loss, parts = icf_loss(model, world, idx, settings, phi, lam)
        in_train = train_mask[idx]
        t_loss, i_loss = heads_loss(
            model, world, idx[in_train], parts["h"][in_train], parts["h_next"][in_train],
            parts["pi"][in_train], phi,
        )  # fmt: skip
        opt.zero_grad(set_to_none=True)
        (loss + t_loss + i_loss).backward()
        opt.step()
        vals = {"loss": loss, "transition": t_loss, "inverse": i_loss}
        vals.update({k: parts[k] for k in ("reconstruction", "selectivity")})
        for k, v in vals.items():
            sums[k] += float(v.detach())
        count += 1
        if step % settings.log_every == 0 or step == settings.steps:
            record = {k: sums[k] / count for k in keys}
            history["step"].append(step)
            for k in keys:
                history[k].append(record[k])
            sums, count = dict.fromkeys(keys, 0.0), 0
            if callback is not None:
                callback(step, record)
    wall = time.perf_counter() - start
    history["wall_seconds"] = wall
    history["samples_per_second"] = settings.steps * settings.batch / wall
    model.eval()
    return model, history


# ---------------------------------------------------------------------------------- measures
def linear_regression(features: np.ndarray, positions: np.ndarray) -> dict[str, Any]:
    """Per feature: R² of a least-squares line on x alone and on y alone, the best coordinate and
    its R², and the joint fit f_k ≈ b + w_x x + w_y y (slopes, R²). ``features`` (N, n)."""
    f = np.asarray(features, dtype=np.float64)
    p = np.asarray(positions, dtype=np.float64)

    def r2(design: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        X = np.column_stack([np.ones(len(y)), design])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        ss_res = float(np.sum((y - X @ coef) ** 2))
        return (1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0), coef

    out: dict[str, Any] = {"r2_x": [], "r2_y": [], "r2_best": [], "best_coordinate": [],
                           "r2_joint": [], "slopes": []}  # fmt: skip
    for k in range(f.shape[1]):
        rx, _ = r2(p[:, :1], f[:, k])
        ry, _ = r2(p[:, 1:], f[:, k])
        rj, coef = r2(p, f[:, k])
        out["r2_x"].append(rx)
        out["r2_y"].append(ry)
        out["r2_best"].append(max(rx, ry))
        out["best_coordinate"].append("x" if rx >= ry else "y")
        out["r2_joint"].append(rj)
        out["slopes"].append([float(coef[1]), float(coef[2])])
    return out


def matched_diagonal_mass(matrix: np.ndarray) -> tuple[float, list[int]]:
    """The best assignment of rows (features) to distinct columns (actions), by brute force over
    all injective assignments, and its mean matched entry. For a row-stochastic 4×4 policy matrix
    that is the share of policy mass on the matched actions: 1 for a permutation matrix, 0.25 for
    uniform policies. Returns (mass, the column matched to each row; −1 for an unmatched row when
    there are more rows than columns)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"need a non-empty 2-D matrix, got shape {m.shape}.")
    r, c = m.shape
    best, best_cols = -np.inf, [-1] * r
    if r <= c:
        for cols in itertools.permutations(range(c), r):
            v = m[np.arange(r), cols].mean()
            if v > best:
                best, best_cols = v, list(cols)
    else:
        for rows in itertools.permutations(range(r), c):
            v = m[rows, np.arange(c)].mean()
            if v > best:
                best, best_cols = v, [-1] * r
                for col, row in enumerate(rows):
                    best_cols[row] = col
    return float(best), best_cols


def r2_score(target: np.ndarray, prediction: np.ndarray) -> float:
    """1 − SS_res/SS_tot, pooled over every component (each centred on its own mean)."""
    t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    p = np.asarray(prediction, dtype=np.float64).reshape(len(target), -1)
    ss_tot = float(np.sum((t - t.mean(axis=0)) ** 2))
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot if ss_tot > 0 else float("nan")


#: a feature whose standard deviation over the 121 states is below this is "inactive" (constant
#: up to noise; tanh features that code a coordinate spread over ~0.5)
ACTIVE_STD = 0.01


def decode_positions(features: np.ndarray, positions: np.ndarray) -> list[float]:
    """R² of x and of y, each fitted linearly (with intercept) from all features: how much of the
    position the representation holds, whichever features hold it."""
    f = np.asarray(features, dtype=np.float64)
    X = np.column_stack([np.ones(len(f)), f])
    out = []
    for c in range(2):
        y = np.asarray(positions, dtype=np.float64)[:, c]
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        out.append(1.0 - float(np.sum((y - X @ coef) ** 2)) / float(np.sum((y - y.mean()) ** 2)))
    return out


@torch.no_grad()
def factor_action_analysis(
    model: ContinuousICF, z: Tensor, h: Tensor, h_next: Tensor, moved: Tensor, phi: Tensor
) -> dict[str, Any]:
    """How the factor space splits among the actions, for a continuous model on all states.

    For each φ of ``phi`` (M, n): its preferred action, argmax_a E_s π(a|s, φ); ``phi_action_share``
    [a] is the share of the φ preferring a. ``effect_directions`` [a] is the action's mean unit
    change of the features, mean over states where it moves of Δ_a/‖Δ_a‖₂, renormalised.
    ``phi_cluster_alignment`` [a, b] is the cosine between the mean φ preferring a and the effect
    direction of b (a diagonal near 1: each φ cluster lies along the change its action causes);
    ``embedding_alignment`` [a, b] the same for the mean action embedding E_s e_a(s).
    ``policy_confidence`` is E_{s,φ} max_a π(a|s, φ) (0.25 for a uniform policy) and
    ``policy_picks_best`` the share of (s, φ) where π's most likely action is the moving action
    with the largest A(φ, Δ_a(s)) (the selectivity's choice; ties count as picked)."""
    pol = model.policies(z, phi)  # (N, M, A)
    mean_pol = pol.mean(0)  # (M, A)
    pref = mean_pol.argmax(-1)
    A = gw.N_ACTIONS
    d = h_next - h[:, None, :]  # (N, A, n)
    unit = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w = moved.to(d.dtype)[..., None]
    effect = (unit * w).sum(0) / w.sum(0).clamp_min(1.0)
    effect = effect / effect.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    clusters = torch.full((A, phi.shape[1]), float("nan"))
    for a in range(A):
        if (pref == a).any():
            c = phi[pref == a].mean(0)
            clusters[a] = c / c.norm().clamp_min(1e-12)
    emb = model.action_embeddings(z).mean(0)
    emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    along = torch.einsum("ban,mn->bma", d, phi) / (d.abs().sum(-1)[:, None, :] + SEL_EPS)
    along = along.masked_fill(~moved[:, None, :], float("-inf"))
    best = along.max(-1, keepdim=True).values
    picked = pol.argmax(-1, keepdim=True)
    picks_best = torch.gather(along, -1, picked) >= best - 1e-6
    return {
        "phi_preferred_action": pref.numpy(),
        "phi_action_share": np.bincount(pref.numpy(), minlength=A) / len(pref),
        "effect_directions": effect.numpy(),
        "phi_cluster_mean": clusters.numpy(),
        "phi_cluster_alignment": (clusters @ effect.T).numpy(),
        "embedding_alignment": (emb @ effect.T).numpy(),
        "policy_confidence": float(pol.max(-1).values.mean()),
        "policy_picks_best": float(picks_best.float().mean()),
    }


@torch.no_grad()
def evaluate(
    model: DiscreteICF | ContinuousICF, settings: ICFSettings, n_phi_eval: int = 64
) -> dict[str, Any]:
    """Every measure of a trained model over all 121 states (module docstring). Arrays come back
    as numpy; scalars as floats."""
    model.eval()
    world = WorldTensors()
    _, test_idx = world.split(settings.holdout, settings.seed)
    idx = torch.arange(len(world.positions))
    s, h, z, h_next = _encode_with_next(model, world, idx)
    recon = model.decoder(h)
    out: dict[str, Any] = {
        "features": h.numpy(),
        "positions": world.positions,
        "reconstruction_mse": float((s - recon).pow(2).mean()),
        "reconstruction_loss": float(reconstruction_loss(s, recon)),
    }
    reg = linear_regression(h.numpy(), world.positions)
    out["regression"] = reg
    std = h.numpy().std(0)
    out["feature_std"] = std
    out["active_features"] = [int(k) for k in np.flatnonzero(std >= ACTIVE_STD)]
    out["position_r2"] = decode_positions(h.numpy(), world.positions)
    sel = selectivity(h, h_next, settings.numerator, log=False)  # (N, A, n)
    out["selectivity_matrix"] = sel.mean(0).T.numpy()  # (n, A)
    out["selectivity_signed_matrix"] = selectivity(h, h_next, "signed").mean(0).T.numpy()
    if isinstance(model, DiscreteICF):
        pi = model.policies(z)  # (N, n, A)
    else:  # the basis directions as factors: π(a|s, e_k)
        pi = model.policies(z, torch.eye(model.n_features))
        gen = torch.Generator().manual_seed(settings.seed + 15485863)
        phi_eval = sample_factors(model.n_features, 256, gen)
        out["factors"] = factor_action_analysis(model, z, h, h_next, world.moved, phi_eval)
    out["policy_matrix"] = pi.mean(0).numpy()
    out["policies"] = pi.numpy()
    mass, matching = matched_diagonal_mass(out["policy_matrix"])
    out["matched_diagonal_mass"], out["matching"] = mass, matching
    # heads on held-out positions
    t = torch.from_numpy(test_idx)
    ht, hn = h[t], h_next[t]
    B, A, n = hn.shape
    moved = world.moved[t]
    hh = ht[:, None, :].expand(B, A, n)
    actions = torch.arange(A).expand(B, A)
    logits = model.heads.action_logits(hh[moved], hn[moved])
    out["inverse_accuracy"] = float((logits.argmax(-1) == actions[moved]).float().mean())
    out["inverse_pairs"] = int(moved.sum())
    out["inverse_blocked_pairs_left_out"] = int((~moved).sum())
    if isinstance(model, DiscreteICF):
        pred = model.heads.predict_next(hh, F.one_hot(actions, A).to(h.dtype))
        target = hn
    else:
        gen = torch.Generator().manual_seed(settings.seed + 104729)
        phi = sample_factors(n, n_phi_eval, gen)
        pol = model.policies(z[t], phi)
        target = torch.einsum("bma,ban->bmn", pol, hn)
        pred = model.heads.predict_next(ht[:, None].expand(B, n_phi_eval, n),
                                        phi[None].expand(B, n_phi_eval, n))  # fmt: skip
        hh = ht[:, None].expand(B, n_phi_eval, n)
    out["transition_r2"] = r2_score((target - hh).reshape(-1, n), (pred - hh).reshape(-1, n))
    out["transition_pairs"] = int(target.reshape(-1, n).shape[0])
    out["test_positions"] = int(len(test_idx))
    return out

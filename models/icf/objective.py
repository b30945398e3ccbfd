"""The objective of :mod:`models.icf`: the selectivity (discrete and along factors φ), the
grid world's states as tensors, and the losses of the model and of its heads."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from models.icf.model import NUMERATORS, ContinuousICF, DiscreteICF, ICFSettings, Numerator
from neurosim import grid_world as gw

#: keeps sel finite where no feature changes (an action blocked by the border)
SEL_EPS = 1e-6
#: added inside log sel
LOG_EPS = 1e-3


# ---------------------------------------------------------------------------------- selectivity
def selectivity(
    h: Tensor, h_next: Tensor, numerator: Numerator = "signed", log: bool = False
) -> Tensor:
    """sel(s, a, k) for features ``h`` (B, n) and the features of the next states ``h_next``
    (B, A, n); shape (B, A, n). The world is deterministic, so the expectation over s' is the one
    next state. ``log`` returns log sel (:mod:`models.icf` for the signed form)."""
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
    passes ``eps = settings.factor_eps`` (:mod:`models.icf`: why not 1e-6)."""
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


def encode_with_next(
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
    s, h, z, h_next = encode_with_next(model, world, idx)
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

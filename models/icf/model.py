"""The model of :mod:`models.icf`: its settings, the encoder, decoder and heads, the discrete
and continuous models and their constructor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from neurosim import grid_world as gw

Numerator = Literal["abs", "signed", "relu"]
NUMERATORS: tuple[str, ...] = ("abs", "signed", "relu")


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
    embeddings φ, with action embeddings e_a(s) read linearly from z, and the heads (why
    bilinear: :mod:`models.icf`)."""

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

"""The ``[protocol]`` table of ``neurosim run icf`` and its mapping onto the model's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from models.icf import ICFSettings
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError


class ICFConfig(StrictModel):
    """The ``[protocol]`` table."""

    variant: Literal["discrete", "continuous"] = Field(
        "discrete", description="n features with one policy each, or factor embeddings φ"
    )
    numerator: Literal["abs", "signed", "relu"] = Field(
        "signed", description="selectivity numerator: Δf_k, |Δf_k| or max(Δf_k, 0)"
    )
    log: bool = Field(True, description="maximise log sel (signed: log((1 + sel)/2))")
    lam: float = Field(1.0, ge=0, description="weight λ of the selectivity term")
    warmup: int = Field(500, ge=0, description="steps over which λ rises from 0 (0: none)")
    steps: int = Field(3000, ge=1, le=1_000_000, description="Adam steps")
    batch: int = Field(64, ge=1, le=4096, description="states per step")
    lr: float = Field(2e-3, gt=0, description="learning rate of encoder, decoder, policies")
    heads_lr: float = Field(3e-3, gt=0, description="learning rate of the two heads")
    n_features: int = Field(4, ge=1, le=16, description="number of tanh features n")
    n_phi: int = Field(16, ge=2, le=1024, description="continuous: factors φ sampled per step")
    temperature: float = Field(0.25, gt=0, description="continuous, log: softmax temperature")
    factor_eps: float = Field(
        0.02, gt=0, description="continuous: ε_φ in A = φ·Δ/(‖Δ‖₁ + ε_φ); rewards sizeable changes"
    )
    holdout: float = Field(0.2, gt=0, lt=1, description="share of positions the heads never see")
    log_every: int = Field(100, ge=1, description="steps per history record and progress tick")
    threads: int = Field(1, ge=1, le=256, description="torch CPU threads")


def settings(run: RunConfig, protocol: ICFConfig) -> ICFSettings:
    """The model's settings from the run (its seed) and the ``[protocol]`` table; the settings'
    own cross-field checks become configuration errors."""
    values = protocol.model_dump(exclude={"threads"})
    try:
        return ICFSettings(seed=run.seed, **values)
    except ValueError as exc:
        raise ConfigError(f"Invalid [protocol] settings: {exc}") from None

"""The ``[protocol]`` table of ``neurosim run consciousness-prior``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from neurosim.config import StrictModel


class ConsciousnessPriorConfig(StrictModel):
    """The ``[protocol]`` table."""

    n_variables: int = Field(16, ge=2, le=256, description="latent variables (= slots)")
    n_parents: int = Field(3, ge=1, description="parents of every variable")
    obs_dim: int = Field(128, ge=1, le=4096, description="dimension of the observed mixture")
    gain: float = Field(1.0, gt=0, description="|W_ij| ~ U(gain/2, gain) on parent edges")
    latent_noise: float = Field(0.4, ge=0, description="noise σ_z of the latent dynamics")
    obs_noise: float = Field(0.3, ge=0, description="observation noise σ_x")
    world_seed: int | None = Field(
        None, ge=0, description="seed of the graph, mechanisms and mixture (default: from seed)"
    )
    n_train: int = Field(20000, ge=1, description="training transitions")
    n_test: int = Field(4000, ge=10, description="held-out transitions (matching and measures)")
    k: int = Field(3, ge=1, description="slots selected by the attention bottleneck")
    key_dim: int = Field(16, ge=1, le=1024, description="dimension of the slot keys")
    hidden: int = Field(32, ge=1, le=1024, description="hidden units of each verifier head")
    encoder_hidden: int = Field(0, ge=0, le=4096, description="0: linear encoder, else MLP")
    tau: float = Field(3.0, gt=0, description="temperature of the relaxed top-k (backward)")
    entropy_weight: float = Field(
        0.3, ge=0, description="weight of the diversity term log n − H(mean attention)"
    )
    aux_weight: float = Field(1.0, ge=0, description="weight of the latent-regression loss")
    slots: Literal["given", "found"] = Field(
        "given",
        description="given: slot values regressed on the true variables while training; found: "
        "no latent regression, slots kept alive and distinct by the variance and independence "
        "terms",
    )
    variance_weight: float = Field(
        1.0, ge=0, description="slots = found: weight of the variance hinge mean relu(1 − std)"
    )
    independence_weight: float = Field(
        1.0, ge=0, description="slots = found: weight of the off-diagonal covariance penalty"
    )
    steps: int = Field(1500, ge=1, description="Adam steps per model")
    batch: int = Field(256, ge=1, description="batch size")
    lr: float = Field(3e-3, gt=0, description="initial learning rate (cosine decay to lr/20)")
    log_every: int = Field(50, ge=1, description="steps between history records")
    shift_offset: float = Field(3.0, description="shift of non-parents, in training std units")
    shift_scale: float = Field(1.0, description="scale of non-parents about their mean")
    threads: int = Field(1, ge=1, le=256, description="torch CPU threads")

    @model_validator(mode="after")
    def _check(self) -> ConsciousnessPriorConfig:
        if self.n_parents >= self.n_variables:
            raise ValueError(
                f"n_parents ({self.n_parents}) must be smaller than n_variables "
                f"({self.n_variables}): parents are drawn from the other variables"
            )
        if self.k > self.n_variables:
            raise ValueError(f"k ({self.k}) cannot exceed n_variables ({self.n_variables})")
        if self.shift_offset == 0 and self.shift_scale == 1:
            raise ValueError("shift_offset 0 with shift_scale 1 is no shift")
        return self

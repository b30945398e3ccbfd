"""Independently Controllable Features on the grid world (DESIGN.md §4.4, issue 5): train the
PyTorch model of :mod:`models.icf` and measure it.

No Brian2 circuit runs here (``circuits = ()``): the protocol trains the discrete model (n tanh
features, one policy per feature) or the continuous one (factor embeddings φ), each with its
transition and inverse heads, for ``steps`` Adam steps on batches of states drawn by a seeded
sampler, with the exact sum over the four next states. The run's ``epochs`` is not used (the
length is ``protocol.steps``; any ``--epochs`` other than 1 is refused rather than ignored).
``torch`` runs on ``threads`` CPU threads (default 1: results then repeat bit for bit by seed).

Metrics (``metrics.json``): ``feature_r2_best`` (per feature, R² of a line on its best coordinate
of the true (x, y)), ``feature_r2_min``, ``feature_best_coordinate``, ``feature_r2_x``,
``feature_r2_y``, ``feature_slopes`` (joint fit on x and y), ``selectivity_matrix`` S[k, a]
(training numerator, plain), ``selectivity_signed_matrix``, ``policy_matrix`` P[k, a],
``matched_diagonal_mass`` and ``matching`` (action matched to each feature),
``reconstruction_mse`` (per pixel, all 121 positions), ``reconstruction_loss`` (½ sum over
pixels), ``inverse_accuracy`` and ``transition_r2`` (held-out positions), ``feature_std``,
``active_features`` (std ≥ 0.01 over the states), ``position_r2`` (x and y read linearly from all
features), ``history`` and ``samples_per_second``. The continuous variant adds, over 256 sampled
factors φ (:func:`models.icf.factor_action_analysis`): ``phi_action_share`` (share of φ preferring
each action), ``phi_cluster_alignment`` and ``embedding_alignment`` (cosine of the mean φ of each
action's cluster, and of the mean action embedding, with each action's mean feature change),
``effect_directions``, ``policy_confidence`` and ``policy_picks_best``. It learns two active
features (one per axis) out of n = 4; the other two stay constant, so ``feature_r2_min`` is low
for it by construction (module docstring of :mod:`models.icf`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field

from models import icf
from neurosim import grid_world as gw
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.protocol import ProtocolResult, TorchModelProtocol
from neurosim.registry import register_protocol
from neurosim.seeding import seed_everything


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


class IndependentlyControllableFeatures(TorchModelProtocol):
    """E. Bengio et al. 2017 / Thomas et al. 2018: features paired with policies that control
    them, on the 2×2-square grid world, in PyTorch."""

    name = "icf"
    summary = "Independently Controllable Features on the grid world (PyTorch, no circuit)"
    protocol_config = ICFConfig

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        assert isinstance(protocol, ICFConfig)
        super().check(run, protocol, circuit)
        self.settings(run, protocol)  # cross-field checks of the model's settings

    @staticmethod
    def settings(run: RunConfig, protocol: ICFConfig) -> icf.ICFSettings:
        """The model's settings from the run and the ``[protocol]`` table."""
        values = protocol.model_dump(exclude={"threads"})
        try:
            return icf.ICFSettings(seed=run.seed, **values)
        except ValueError as exc:
            raise ConfigError(f"Invalid [protocol] settings: {exc}") from None

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        assert isinstance(protocol, ICFConfig)
        return math.ceil(protocol.steps / protocol.log_every) + 1

    def run(
        self,
        run: RunConfig,
        protocol: StrictModel,
        circuit: StrictModel,
        progress: Callable[[int, str], None] | None = None,
    ) -> ProtocolResult:
        assert isinstance(protocol, ICFConfig)
        progress = progress or (lambda n, msg: None)
        settings = self.settings(run, protocol)
        seed_everything(run.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(protocol.threads)
        try:

            def tick(step: int, record: dict[str, float]) -> None:
                progress(
                    1,
                    f"step {step}/{settings.steps}: recon {record['reconstruction']:.3f} "
                    f"sel {record['selectivity']:.3f}",
                )

            progress(0, "training")
            model, history = icf.train(settings, tick)
            progress(1, "measuring")
            m = icf.evaluate(model, settings)
        finally:
            torch.set_num_threads(threads)
        reg = m["regression"]
        metrics: dict[str, Any] = {
            "variant": settings.variant,
            "numerator": settings.numerator,
            "log": settings.log,
            "lam": settings.lam,
            "steps": settings.steps,
            "n_features": settings.n_features,
            "feature_r2_best": reg["r2_best"],
            "feature_r2_min": float(min(reg["r2_best"])),
            "feature_best_coordinate": reg["best_coordinate"],
            "feature_r2_x": reg["r2_x"],
            "feature_r2_y": reg["r2_y"],
            "feature_r2_joint": reg["r2_joint"],
            "feature_slopes": reg["slopes"],
            "feature_std": m["feature_std"].tolist(),
            "active_features": m["active_features"],
            "position_r2": m["position_r2"],
            "selectivity_matrix": m["selectivity_matrix"].tolist(),
            "selectivity_signed_matrix": m["selectivity_signed_matrix"].tolist(),
            "policy_matrix": m["policy_matrix"].tolist(),
            "matched_diagonal_mass": m["matched_diagonal_mass"],
            "matching": [gw.ACTIONS[a] if a >= 0 else None for a in m["matching"]],
            "reconstruction_mse": m["reconstruction_mse"],
            "reconstruction_loss": m["reconstruction_loss"],
            "inverse_accuracy": m["inverse_accuracy"],
            "inverse_pairs": m["inverse_pairs"],
            "inverse_blocked_pairs_left_out": m["inverse_blocked_pairs_left_out"],
            "transition_r2": m["transition_r2"],
            "transition_pairs": m["transition_pairs"],
            "test_positions": m["test_positions"],
            "train_seconds": history["wall_seconds"],
            "samples_per_second": history["samples_per_second"],
            "history": {k: v for k, v in history.items() if k != "settings"},
        }
        if "factors" in m:
            fa = m["factors"]
            metrics.update({
                "phi_action_share": fa["phi_action_share"].tolist(),
                "phi_cluster_alignment": fa["phi_cluster_alignment"].tolist(),
                "embedding_alignment": fa["embedding_alignment"].tolist(),
                "effect_directions": fa["effect_directions"].tolist(),
                "policy_confidence": fa["policy_confidence"],
                "policy_picks_best": fa["policy_picks_best"],
            })  # fmt: skip
        data = {
            "variant": settings.variant,
            "features": m["features"],
            "positions": m["positions"],
            "selectivity_matrix": m["selectivity_matrix"],
            "policy_matrix": m["policy_matrix"],
            "matching": m["matching"],
            "feature_r2_best": reg["r2_best"],
            "history": history,
            "actions": list(gw.ACTIONS),
        }
        if "factors" in m:
            data["phi_cluster_alignment"] = m["factors"]["phi_cluster_alignment"]
            data["phi_action_share"] = m["factors"]["phi_action_share"]
        weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        return ProtocolResult(metrics=metrics, weights=weights, data=data)


register_protocol(
    IndependentlyControllableFeatures.name,
    IndependentlyControllableFeatures.summary,
    IndependentlyControllableFeatures,
)

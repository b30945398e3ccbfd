"""Independently Controllable Features on the grid world (DESIGN.md §4.4, issue 5): train the
PyTorch model of :mod:`models.icf` and measure it.

No Brian2 circuit runs here (``circuits = ()``): the protocol trains the discrete model (n tanh
features, one policy per feature) or the continuous one (factor embeddings φ), each with its
transition and inverse heads, for ``steps`` Adam steps on batches of states drawn by a seeded
sampler, with the exact sum over the four next states. The run's ``epochs`` is not used (the
length is ``protocol.steps``; any ``--epochs`` other than 1 is refused rather than ignored).
``torch`` runs on ``threads`` CPU threads (default 1: results then repeat bit for bit by seed).

Files: :mod:`.config` (the ``[protocol]`` table), :mod:`.steps` (training, measures, metrics —
listed in :func:`.steps.metrics` — the record for :mod:`analysis.icf`, weights).
"""

from __future__ import annotations

import math

from models.icf import ICFSettings
from neurosim.config import RunConfig, StrictModel
from neurosim.protocol import ProtocolResult, RunContext, TorchModelProtocol
from neurosim.registry import register_protocol
from protocols.icf import steps
from protocols.icf.config import ICFConfig, settings

__all__ = ["ICFConfig", "IndependentlyControllableFeatures"]


class IndependentlyControllableFeatures(TorchModelProtocol):
    """E. Bengio et al. 2017 / Thomas et al. 2018: features paired with policies that control
    them, on the 2×2-square grid world, in PyTorch."""

    name = "icf"
    summary = "Independently Controllable Features on the grid world (PyTorch, no circuit)"
    protocol_config = ICFConfig

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        assert isinstance(protocol, ICFConfig)
        super().check(run, protocol, circuit)
        settings(run, protocol)  # cross-field checks of the model's settings

    @staticmethod
    def settings(run: RunConfig, protocol: ICFConfig) -> ICFSettings:
        """The model's settings from the run and the ``[protocol]`` table."""
        return settings(run, protocol)

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        assert isinstance(protocol, ICFConfig)
        return math.ceil(protocol.steps / protocol.log_every) + 1

    def execute(self, ctx: RunContext) -> ProtocolResult:
        cfg = ctx.protocol
        assert isinstance(cfg, ICFConfig)
        model_settings = settings(ctx.run, cfg)

        def tick(step: int, record: dict[str, float]) -> None:
            ctx.progress(
                1,
                f"step {step}/{model_settings.steps}: recon {record['reconstruction']:.3f} "
                f"sel {record['selectivity']:.3f}",
            )

        ctx.progress(0, "training")
        trained = steps.train_and_measure(
            model_settings, cfg.threads, tick, lambda: ctx.progress(1, "measuring")
        )
        return ProtocolResult(
            metrics=steps.metrics(model_settings, trained),
            weights=steps.weights(trained),
            data=steps.record(model_settings, trained),
        )


register_protocol(
    IndependentlyControllableFeatures.name,
    IndependentlyControllableFeatures.summary,
    IndependentlyControllableFeatures,
)

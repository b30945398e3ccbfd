"""The Consciousness Prior on a world of sparsely coupled latent variables (Bengio 2017;
DESIGN.md §4.5, issue 5). A PyTorch model trained on its own: no Brian2 circuit.

One run, all from the run's seed, in three steps, each in its own file:

1. :mod:`.world`: ``n_variables`` latent variables, each with ``n_parents`` random parents,
   z_{t+1,i} = tanh(W_i · z_{t,pa(i)} + b_i) + noise, observed as x = M z + noise (``obs_dim``
   dimensions); ``n_train`` training and ``n_test`` held-out transitions from independent chains
   in the stationary regime (:mod:`neurosim.latent_world`);
2. :mod:`.training`: the bottleneck model and the baseline (:mod:`models.consciousness_prior`:
   same encoder, auxiliary latent regression and verifier heads; the baseline reads all slots),
   trained for ``steps`` Adam steps each on the same data;
3. :mod:`.measures`: parent precision against chance and the prediction errors in distribution
   and with the non-parents shifted, on the held-out transitions.

The ``[protocol]`` table is in :mod:`.config`; measured results are in the README.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurosim.config import RunConfig, StrictModel
from neurosim.protocol import ProtocolResult, RunContext, TorchModelProtocol
from neurosim.registry import register_protocol
from neurosim.seeding import torch_threads
from protocols.consciousness_prior import measures, training, world
from protocols.consciousness_prior.config import ConsciousnessPriorConfig

__all__ = ["ConsciousnessPrior", "ConsciousnessPriorConfig"]


class ConsciousnessPrior(TorchModelProtocol):
    """Attention bottleneck (top-k, straight-through Gumbel) against the same model without it."""

    name = "consciousness-prior"
    summary = "Consciousness Prior: top-k attention finds the parents of latent variables (torch)"
    protocol_config = ConsciousnessPriorConfig

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        assert isinstance(protocol, ConsciousnessPriorConfig)
        records = -(-protocol.steps // protocol.log_every)
        return 2 * records + 1

    def execute(self, ctx: RunContext) -> ProtocolResult:
        cfg, seed = ctx.protocol, ctx.run.seed
        assert isinstance(cfg, ConsciousnessPriorConfig)
        with torch_threads(cfg.threads):
            ctx.progress(0, "sampling the world")
            samples = world.sample(cfg, seed)
            trained = training.train_both(cfg, samples, seed, ctx.progress)
            out, record = measures.measure(cfg, samples, trained, seed)
        ctx.progress(1, f"precision {out['parent_precision']:.3f} (chance "
                        f"{out['parent_precision_chance']:.3f})")  # fmt: skip
        out.update(_training_metrics(cfg, samples, trained))
        return ProtocolResult(
            metrics=out,
            data=record,
            weights=_weights(samples, trained),
        )


def _training_metrics(
    cfg: ConsciousnessPriorConfig, samples: world.Samples, trained: training.Trained
) -> dict[str, Any]:
    """The histories, throughput and sizes (the second part of ``metrics.json``)."""
    per_model = trained.samples_per_second
    samples_per_model = cfg.steps * cfg.batch
    compute_seconds = sum(samples_per_model / v for v in per_model.values())
    return {
        "history": trained.histories,
        "samples_per_second": len(per_model) * samples_per_model / compute_seconds,
        "samples_per_second_per_model": per_model,
        "train_seconds": trained.train_seconds,
        "world_seed": samples.world_seed,
        "n_variables": cfg.n_variables,
        "n_parents": cfg.n_parents,
        "k": cfg.k,
        "torch_threads": cfg.threads,
    }


def _weights(samples: world.Samples, trained: training.Trained) -> dict[str, np.ndarray]:
    """The world's parameters and both models' state dicts, prefixed by the model's kind."""
    w = samples.world
    weights = {"world/weights": w.weights, "world/bias": w.bias, "world/mixing": w.mixing,
               "world/parents": w.parents}  # fmt: skip
    for kind, model in trained.models.items():
        weights.update(
            {f"{kind}/{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}
        )
    return weights


register_protocol(ConsciousnessPrior.name, ConsciousnessPrior.summary, ConsciousnessPrior)

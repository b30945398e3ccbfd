"""Step 2 of a run: the bottleneck model and the baseline, trained one after the other on the
same transitions, each from its own seeds (run_seed parts 10 + i for the weights, 20 + i for the
batches and the Gumbel noise). With ``slots = "found"`` neither model sees the true variables:
no latent regression, the variance and independence terms instead
(:func:`models.consciousness_prior.spread_terms`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from models import consciousness_prior as cp
from neurosim.seeding import run_seed
from protocols.consciousness_prior.config import ConsciousnessPriorConfig
from protocols.consciousness_prior.world import Samples

#: held-out samples used to match slots to variables for the precision curve during training
CURVE_SAMPLES = 1000
#: the two models, in the order they train
KINDS = ("bottleneck", "baseline")


@dataclass(frozen=True)
class Trained:
    """The trained models (in evaluation mode), their histories, training times and training
    throughput (samples per second of compute), by kind."""

    models: dict[str, cp.ConsciousnessPriorModel]
    histories: dict[str, dict[str, list[float]]]
    train_seconds: dict[str, float]
    samples_per_second: dict[str, float]


def train_both(
    cfg: ConsciousnessPriorConfig,
    samples: Samples,
    seed: int,
    progress: Callable[[int, str], None],
) -> Trained:
    """Train the bottleneck model (its history also records the parent precision on the first
    :data:`CURVE_SAMPLES` held-out samples) and then the baseline."""
    curve_n = min(CURVE_SAMPLES, cfg.n_test)
    x_curve, z_curve = samples.x_test[:curve_n], samples.z_test[:curve_n]

    def precision_now(model: cp.ConsciousnessPriorModel) -> dict[str, float]:
        match, _ = cp.match_slots(cp.encode(model, x_curve), z_curve)
        prec = cp.parent_precision(model.selected(), samples.parents, match)
        return {"parent_precision": float(prec["precision"])}

    models: dict[str, cp.ConsciousnessPriorModel] = {}
    histories: dict[str, dict[str, list[float]]] = {}
    train_seconds: dict[str, float] = {}
    for idx, kind in enumerate(KINDS):
        spec = cp.ModelSpec(
            n_slots=cfg.n_variables, obs_dim=cfg.obs_dim, k=cfg.k, key_dim=cfg.key_dim,
            hidden=cfg.hidden, encoder_hidden=cfg.encoder_hidden,
            bottleneck=kind == "bottleneck",
        )  # fmt: skip
        model = cp.build_model(spec, run_seed(seed, 10 + idx))
        start = time.perf_counter()
        found = cfg.slots == "found"
        histories[kind] = cp.train(
            model, samples.train, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr,
            aux_weight=0.0 if found else cfg.aux_weight, entropy_weight=cfg.entropy_weight,
            tau=cfg.tau, variance_weight=cfg.variance_weight if found else 0.0,
            independence_weight=cfg.independence_weight if found else 0.0,
            seed=run_seed(seed, 20 + idx), log_every=cfg.log_every,
            evaluate=precision_now if spec.bottleneck else None, progress=progress,
        )  # fmt: skip
        train_seconds[kind] = time.perf_counter() - start
        model.eval()
        models[kind] = model
    per_model = {k: h.pop("samples_per_second")[0] for k, h in histories.items()}
    return Trained(models, histories, train_seconds, per_model)

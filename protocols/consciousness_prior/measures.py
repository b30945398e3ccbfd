"""Step 3 of a run: both models on the held-out transitions. Slots are matched to variables by
greedy |correlation|; ``parent_precision`` is the share of the k slots each query selects that
hold true parents of the queried variable, against ``parent_precision_chance`` (E|pa| / n: k
slots drawn uniformly from the n candidates); ``error_in_*`` is the normalised error (MSE / Var)
of the next value of every queried variable in distribution, ``error_shift_*`` the same with all
non-parents of that variable moved by z ← μ + ``shift_scale`` (z − μ) + ``shift_offset`` σ at
time t (training μ, σ), and ``shift_error_ratio_*`` = error under shift / error in distribution.
With ``slots = "found"`` every prediction is first put into its matched variable's units by a
line fitted on the held-out slot values (:func:`models.consciousness_prior.calibrate`).
``slot_match_r2_*`` is the mean squared matched correlation: the R² of each variable from its one
matched slot (the probe from all slots is added by :mod:`analysis.consciousness_prior`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models import consciousness_prior as cp
from neurosim.records.consciousness_prior import ConsciousnessPriorRecord
from neurosim.seeding import run_seed
from protocols.consciousness_prior.config import ConsciousnessPriorConfig
from protocols.consciousness_prior.training import Trained
from protocols.consciousness_prior.world import Samples


def measure(
    cfg: ConsciousnessPriorConfig, samples: Samples, trained: Trained, seed: int
) -> tuple[dict[str, Any], ConsciousnessPriorRecord]:
    """The run's measures (the first part of ``metrics.json``) and the record for
    :mod:`analysis.consciousness_prior`."""
    parents = samples.parents
    out: dict[str, Any] = {}
    errors_in: dict[str, np.ndarray] = {}
    errors_shift: dict[str, np.ndarray] = {}
    attention: dict[str, Any] = {}
    slot_values: dict[str, np.ndarray] = {}
    for kind, model in trained.models.items():
        values = cp.encode(model, samples.x_test)
        slot_values[kind] = values
        match, strength = cp.match_slots(values, samples.z_test)
        calibration = cp.calibrate(values, samples.z_test, match) if cfg.slots == "found" else None
        shifted = cp.shift_test(
            model, samples.world, samples.z_test, samples.z_next_test, match,
            offset=cfg.shift_offset, scale=cfg.shift_scale, mean=samples.mean, std=samples.std,
            seed=run_seed(seed, 6), calibration=calibration,
        )  # fmt: skip
        e_in, e_shift = float(shifted["in"].mean()), float(shifted["shift"].mean())
        out[f"error_in_{kind}"] = e_in
        out[f"error_shift_{kind}"] = e_shift
        out[f"shift_error_ratio_{kind}"] = e_shift / e_in
        out[f"shift_error_increase_{kind}"] = e_shift - e_in
        out[f"slot_match_correlation_{kind}"] = float(strength.mean())
        out[f"slot_match_r2_{kind}"] = float(np.mean(strength**2))
        out[f"slot_match_identity_{kind}"] = float(np.mean(match == np.arange(len(match))))
        errors_in[kind], errors_shift[kind] = shifted["in"], shifted["shift"]
        if kind == "bottleneck":
            prec = cp.parent_precision(model.selected(), parents, match)
            out["parent_precision"] = prec["precision"]
            out["parent_precision_chance"] = prec["chance"]
            out["parent_recall"] = prec["recall"]
            n_pa = parents.sum(axis=1)
            out["parent_precision_max"] = float(np.mean(np.minimum(n_pa, cfg.k) / cfg.k))
            attention = _attention(model, parents, match)
            attention["precision_per_query"] = prec["per_query"]
    record = ConsciousnessPriorRecord(
        parents=parents,
        world_weights=samples.world.weights,
        attention_scores=attention["scores"],
        selected=attention["selected"],
        precision_per_query=attention["precision_per_query"],
        parent_precision_chance=out["parent_precision_chance"],
        errors_in=errors_in,
        errors_shift=errors_shift,
        history=trained.histories,
        slot_values=slot_values,
        latent_test=samples.z_test,
    )
    return out, record


def _attention(
    model: cp.ConsciousnessPriorModel, parents: np.ndarray, match: np.ndarray
) -> dict[str, np.ndarray]:
    """The bottleneck's attention scores and selections in variable space (row: queried
    variable, column: the variable the read slot holds)."""
    inv = np.argsort(match)
    with torch.no_grad():
        scores = model.scores().numpy()
    chosen = np.zeros_like(parents)
    for i, row in enumerate(model.selected()):
        chosen[match[i], match[row]] = True
    return {"scores": scores[np.ix_(inv, inv)], "selected": chosen}

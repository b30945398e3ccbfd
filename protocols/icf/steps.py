"""The steps of ``neurosim run icf``: train the model on ``threads`` torch threads, measure it on
every state, and turn the measures into the run's metrics, its record and its weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models import icf
from neurosim import grid_world as gw
from neurosim.records.icf import ICFRecord
from neurosim.seeding import torch_threads


@dataclass(frozen=True)
class Trained:
    """A trained model, its training history and its measures (:func:`models.icf.evaluate`)."""

    model: icf.DiscreteICF | icf.ContinuousICF
    history: dict[str, Any]
    measures: dict[str, Any]


def train_and_measure(
    settings: icf.ICFSettings,
    threads: int,
    tick: Callable[[int, dict[str, float]], None] | None = None,
    before_measuring: Callable[[], None] | None = None,
) -> Trained:
    """Train a model from ``settings`` and measure it, both on ``threads`` torch CPU threads (1:
    results repeat bit for bit by seed); the caller's thread count is restored afterwards.
    ``tick(step, record)`` is called at every history record, ``before_measuring()`` once
    between training and measuring."""
    with torch_threads(threads):
        model, history = icf.train(settings, tick)
        if before_measuring is not None:
            before_measuring()
        measures = icf.evaluate(model, settings)
    return Trained(model, history, measures)


def metrics(settings: icf.ICFSettings, trained: Trained) -> dict[str, Any]:
    """The run's ``metrics.json``.

    ``feature_r2_best`` (per feature, R² of a line on its best coordinate of the true (x, y)),
    ``feature_r2_min``, ``feature_best_coordinate``, ``feature_r2_x``, ``feature_r2_y``,
    ``feature_r2_joint`` and ``feature_slopes`` (joint fit on x and y), ``selectivity_matrix``
    S[k, a] (training numerator, plain), ``selectivity_signed_matrix``, ``policy_matrix`` P[k, a],
    ``matched_diagonal_mass`` and ``matching`` (action matched to each feature),
    ``reconstruction_mse`` (per pixel, all 121 positions), ``reconstruction_loss`` (½ sum over
    pixels), ``inverse_accuracy`` and ``transition_r2`` (held-out positions), ``feature_std``,
    ``active_features`` (std ≥ 0.01 over the states), ``position_r2`` (x and y read linearly from
    all features), ``history``, ``train_seconds`` and ``samples_per_second``. The continuous
    variant adds, over 256 sampled factors φ (:func:`models.icf.factor_action_analysis`):
    ``phi_action_share``, ``phi_cluster_alignment``, ``embedding_alignment``,
    ``effect_directions``, ``policy_confidence`` and ``policy_picks_best``. It learns two active
    features out of n = 4 (:mod:`models.icf`), so its ``feature_r2_min`` is low by construction.
    """
    m, history = trained.measures, trained.history
    reg = m["regression"]
    out: dict[str, Any] = {
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
        out.update({
            "phi_action_share": fa["phi_action_share"].tolist(),
            "phi_cluster_alignment": fa["phi_cluster_alignment"].tolist(),
            "embedding_alignment": fa["embedding_alignment"].tolist(),
            "effect_directions": fa["effect_directions"].tolist(),
            "policy_confidence": fa["policy_confidence"],
            "policy_picks_best": fa["policy_picks_best"],
        })  # fmt: skip
    return out


def record(settings: icf.ICFSettings, trained: Trained) -> ICFRecord:
    """What :func:`analysis.icf.analyse` draws the figures from."""
    m = trained.measures
    factors = m.get("factors")
    return ICFRecord(
        variant=settings.variant,
        features=m["features"],
        positions=m["positions"],
        selectivity_matrix=m["selectivity_matrix"],
        policy_matrix=m["policy_matrix"],
        matching=m["matching"],
        feature_r2_best=m["regression"]["r2_best"],
        history=trained.history,
        actions=tuple(gw.ACTIONS),
        phi_cluster_alignment=None if factors is None else factors["phi_cluster_alignment"],
        phi_action_share=None if factors is None else factors["phi_action_share"],
    )


def weights(trained: Trained) -> dict[str, Any]:
    """The trained model's parameters as numpy arrays, by their state-dict names."""
    return {k: v.detach().numpy().copy() for k, v in trained.model.state_dict().items()}

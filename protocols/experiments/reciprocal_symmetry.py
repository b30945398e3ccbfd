"""Virtual experiment: reciprocal weight symmetry after learning, EP versus feedback alignment
(DESIGN.md §4.2, §4.3, §4.7).

Both arms are the same Hopfield circuit with **untied** reciprocal synapses
(``reciprocal="untied"`` of :mod:`circuits.hopfield`): every hidden–output pair has a forward
synapse (hidden → output, ``W2``) and a backward one (output → hidden, ``W2_back``), drawn
independently at the start (so their correlation starts near 0), with the same initial weights in
both arms. The forward synapses learn by the local two-phase EP rule in both arms. The arms differ
in one thing only, the plasticity of the backward synapse:

* **EP**: the backward synapse learns by its own copy of the same local rule (the product
  ρ_iρ_j of its two cells' rates, nudged minus free, is available at both ends), at the same rate;
* **feedback alignment**: the backward synapse is fixed (random feedback), the forward one learns
  as before; the hidden cells then receive the output error through fixed random weights.

Why this is the comparison (rather than the dendritic microcircuit with a fixed top-down B): the
prediction is about whether reciprocal synapses between the same cells become symmetric, and
here the cells, dynamics, task, initial weights and forward rule are identical, so the measured
difference is due to the backward synapse's plasticity alone; in the microcircuit the backward
pathway targets another compartment (the apical dendrite) through another circuit, so a
difference there would mix the rule with the architecture.

What makes the EP arm's weights converge, stated plainly: both synapses of a pair receive the
*same* increment (same rule, same rate), so their difference W − W_back never changes — it stays
the initial random asymmetry — while their common part grows with learning. The correlation
rises because the learned common part comes to dominate the fixed difference; nothing shrinks the
difference itself (no weight decay is used; with decay both would also forget the initial
asymmetry, the Kolen–Pollack mechanism, but it is not needed for the prediction and not added).
The feedback-alignment arm can become correlated only by the forward weights aligning with the
fixed backward ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from neurosim.experiment import (
    ExperimentSettings,
    SeedOutcome,
    VirtualExperiment,
    register_experiment,
)
from neurosim.recording import SegmentRecord
from neurosim.seeding import run_seed
from protocols.experiments import _ep_trained as et

EP, FA = "EP (plastic backward synapses)", "feedback alignment (fixed backward synapses)"
#: the untied circuit (rate read-out; the EP protocol's one-hidden-layer phases and rates)
SETUP = et.EPSetup(
    sizes=(64, 50, 10), free_steps=20, nudged_steps=4, beta=0.5, rates=(0.1, 0.05),
    reciprocal="untied", P=50,
)  # fmt: skip
DEFAULT = {"n_train": 500, "n_test": 360, "epochs": 10}
QUICK = {"n_train": 100, "n_test": 50, "epochs": 2}
LR_DECAY = 0.85
#: reciprocal pairs whose weights are kept as the virtual recording (per epoch)
RECORDED_PAIRS = 20


def reciprocal_correlation(values: dict[str, Any], sizes: tuple[int, ...]) -> float:
    """Pearson correlation over hidden–output pairs of the forward weight (hidden j → output i)
    and the backward weight of the same pair (output i → hidden j)."""
    w = et.weights_from_state(replace(SETUP, sizes=tuple(sizes)), values)
    return float(np.corrcoef(w["W2"].ravel(), w["W2_back"].ravel())[0, 1])


def _pairs(values: dict[str, Any], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(values["W2.w"])[idx], np.asarray(values["W2.wb"])[idx]


@register_experiment
class ReciprocalSymmetry(VirtualExperiment):
    """Correlation of reciprocal weights after learning: EP against feedback alignment."""

    name: ClassVar[str] = "reciprocal-symmetry"
    title: ClassVar[str] = (
        "Reciprocal synapses are more alike after learning under EP than under feedback alignment"
    )
    hypothesis: ClassVar[str] = (
        "If cortex learns by Equilibrium Propagation, the synapse from cell A to cell B and the "
        "one from B back to A are changed by the same local rule (the change of A's and B's "
        "joint activity between the teaching and the free state), so after learning their "
        "strengths are correlated across pairs. If feedback is fixed (feedback alignment), the "
        "backward strength keeps its random value and only the forward strength moves (it comes "
        "to align with the fixed feedback in part), so the correlation is lower. Both arms start "
        "from independent random strengths, so neither becomes fully symmetric without a decay "
        "of the initial difference."
    )
    record: ClassVar[str] = (
        "Paired recordings (or multi-patch / optogenetic connectivity mapping) of reciprocally "
        "connected pyramidal cells across the two stages of a learned pathway (e.g. L2/3 of a "
        "lower area and its target area, or within a recurrently connected layer): the unitary "
        "EPSP amplitude in both directions of each connected pair, after learning a task that "
        "engages the pathway and in naive animals; spine-volume imaging at both synapses of "
        "identified pairs is an alternative."
    )
    contrast: ClassVar[str] = (
        "Across pairs, the Pearson correlation of forward and backward strengths after learning, "
        "in a circuit whose backward synapses learn by the same local rule (EP) and in one whose "
        "backward synapses are fixed (feedback alignment). Effect = correlation(EP) − "
        "correlation(feedback alignment)."
    )
    conditions: ClassVar[tuple[str, ...]] = (EP, FA)
    effect_label: ClassVar[str] = "correlation(EP) − correlation(feedback alignment)"
    effect_units: ClassVar[str] = "Pearson r"
    expected_sign: ClassVar[int] = 1
    figure: ClassVar[str] = "conditions"
    circuit: ClassVar[str] = "hopfield"
    readout: ClassVar[str] = "rate"

    def run_seed(
        self,
        seed: int,
        settings: ExperimentSettings,
        progress: Callable[[str], None] | None = None,
    ) -> SeedOutcome:
        say = progress or (lambda msg: None)
        size = QUICK if settings.quick else DEFAULT
        task = et.digits_task(seed, size["n_train"], size["n_test"])
        w0 = et.weight_values(SETUP, et.initial_weights(SETUP, seed))
        n_pairs = SETUP.sizes[1] * SETUP.sizes[2]
        idx = np.random.default_rng(run_seed(seed, 80)).choice(
            n_pairs, RECORDED_PAIRS, replace=False
        )
        sim = et.shared_simulation(settings, SETUP)
        started = time.perf_counter()
        conditions: dict[str, float] = {}
        curves: dict[str, dict[str, np.ndarray]] = {}
        recordings: dict[str, list[SegmentRecord]] = {}
        extra: dict[str, float] = {"initial_correlation": reciprocal_correlation(w0, SETUP.sizes)}
        epoch_s = size["n_train"] * SETUP.example_ms / 1000.0
        for cond, lr_back in ((EP, SETUP.rates), (FA, (0.0,) * len(SETUP.rates))):
            setup = replace(SETUP, back_rates=tuple(lr_back))
            say(f"seed {seed}: training, {cond}")
            values: dict[str, Any] = dict(w0)
            corr = [reciprocal_correlation(values, SETUP.sizes)]
            fwd, bwd = _pairs(values, idx)
            fwd_t, bwd_t = [fwd], [bwd]
            for epoch in range(size["epochs"]):
                values = et.train(
                    sim, setup, values, task["x_train"], task["d_train"], epochs=1,
                    seed=run_seed(seed, 81), lr_decay=LR_DECAY, first_epoch=epoch,
                )  # fmt: skip
                corr.append(reciprocal_correlation(values, SETUP.sizes))
                fwd, bwd = _pairs(values, idx)
                fwd_t.append(fwd)
                bwd_t.append(bwd)
            conditions[cond] = corr[-1]
            curves[cond] = {"x": np.arange(len(corr), dtype=float), "y": np.array(corr)}
            _, out = et.run_chunks(
                sim, setup, values, task["x_test"], task["d_test"], learn=False,
                seed=run_seed(seed, 82),
            )  # fmt: skip
            short = "EP" if cond == EP else "FA"
            extra[f"test_accuracy[{short}]"] = et.accuracy(out, task["labels_test"])
            w_end = et.weights_from_state(SETUP, values)
            w_start = et.weights_from_state(SETUP, w0)
            diff = w_end["W2"] - w_end["W2_back"]
            extra[f"asymmetry[{short}]"] = float(
                np.linalg.norm(diff) / np.linalg.norm(w_end["W2"] + w_end["W2_back"])
            )
            extra[f"forward_change_norm[{short}]"] = float(
                np.linalg.norm(w_end["W2"] - w_start["W2"])
            )
            extra[f"backward_change_norm[{short}]"] = float(
                np.linalg.norm(w_end["W2_back"] - w_start["W2_back"])
            )
            ann = {"seed": seed, "condition": cond, "pairs": idx.tolist(), "epoch_s": epoch_s}
            seg = SegmentRecord(f"seed{seed} {short} reciprocal weights per epoch", annotations=ann)
            seg.signals += [
                et.signal("forward weight hidden→output (W2)", np.array(fwd_t), epoch_s,
                          annotations={**ann, "direction": "forward"}),
                et.signal("backward weight output→hidden (W2_back)", np.array(bwd_t), epoch_s,
                          annotations={**ann, "direction": "backward"}),
            ]  # fmt: skip
            recordings[cond] = [seg]
        extra["initial_asymmetry"] = float(
            np.linalg.norm(np.asarray(w0["W2.w"]) - np.asarray(w0["W2.wb"]))
        )
        extra["train_seconds"] = time.perf_counter() - started
        return SeedOutcome(
            seed=seed, effect=conditions[EP] - conditions[FA], conditions=conditions,
            curves=curves, recordings=recordings, extra=extra,
        )  # fmt: skip

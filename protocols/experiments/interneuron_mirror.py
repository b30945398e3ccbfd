"""Interneuron activity mirrors the next layer's pyramidal activity (DESIGN.md §4.2, §4.7), and
stops mirroring it when the learned pyramidal→interneuron weights are scrambled. Trained circuit
and frozen runs: :mod:`protocols.experiments._microcircuit_trained`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neurosim.experiment import (
    ExperimentSettings,
    SeedOutcome,
    VirtualExperiment,
    register_experiment,
)
from neurosim.seeding import run_seed
from protocols.experiments import _microcircuit_trained as mt

#: stimuli over which the pair correlations are computed, and trials per stimulus
STIMULI = {False: 24, True: 8}
TRIALS = {False: 6, True: 3}
INTACT, SCRAMBLED = "intact", "scrambled"


def pair_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over matched pairs (columns i of ``a`` and ``b``) of the Pearson correlation across
    stimuli (rows); pairs where either cell does not vary are left out (nan if all are)."""
    values = []
    for i in range(a.shape[1]):
        if np.std(a[:, i]) > 0 and np.std(b[:, i]) > 0:
            values.append(float(np.corrcoef(a[:, i], b[:, i])[0, 1]))
    return float(np.mean(values)) if values else float("nan")


@register_experiment
class InterneuronMirror(VirtualExperiment):
    """Correlation of each interneuron's spike count with its next-layer pyramidal partner's."""

    name = "interneuron-mirror"
    title = "SST interneurons mirror the next layer's pyramidal cells"
    hypothesis = (
        "Each SST interneuron learns, from the pyramidal cells of its own layer, to predict the "
        "activity of one pyramidal cell of the next (higher) layer, so across stimuli its firing "
        "follows that cell's firing; scrambling the learned pyramidal-to-interneuron weights "
        "(each interneuron receiving the inputs learned by another) weakens the match."
    )
    record = (
        "Spikes of SST interneurons and of the next-layer pyramidal cells they are paired with "
        "(simultaneous two-photon calcium imaging or multi-electrode recording, cell types "
        "identified genetically, e.g. SST-Cre), counted in the settled part of each stimulus "
        "(40-100 ms after onset) and averaged over repeated trials, for many stimuli. The "
        "scrambled condition permutes the rows of W^IP so that no interneuron keeps its own "
        "inputs (no lab manipulation does exactly this: it stands for disrupting the learned "
        "pyramidal-to-SST connectivity, e.g. by blocking its plasticity during learning)."
    )
    contrast = (
        "Effect: the mean over interneuron/pyramidal pairs of the correlation across stimuli of "
        "their trial-averaged spike counts, intact minus scrambled."
    )
    conditions = (INTACT, SCRAMBLED)
    effect_label = "interneuron–pyramidal spike-count correlation, intact minus scrambled"
    effect_units = "Pearson correlation (difference)"
    expected_sign = 1
    figure = "conditions"
    circuit = "microcircuit"
    readout = "spiking"

    def run_seed(
        self,
        seed: int,
        settings: ExperimentSettings,
        progress: Callable[[str], None] | None = None,
    ) -> SeedOutcome:
        """Train (or fetch) the circuit of ``seed``; correlate interneuron and next-layer spike
        counts across stimuli, intact and with W^IP scrambled."""
        trained = mt.trained_microcircuit(seed, settings, progress)
        if progress:
            progress("frozen runs of the trained circuit")
        quick = trained.quick
        x = mt.stimuli(trained, STIMULI[quick])
        rng = np.random.default_rng([int(seed), 73])
        overrides = {INTACT: None, SCRAMBLED: mt.scrambled(trained.weights, rng)}
        runs = {
            condition: mt.run_frozen(
                trained, x, seed=run_seed(seed, 73, part), settings=settings, overrides=ov,
                trials=TRIALS[quick],
            )
            for part, (condition, ov) in enumerate(overrides.items())
        }  # fmt: skip
        counts = {
            c: pair_correlation(r.counts[mt.INTER], r.counts[mt.OUTPUT]) for c, r in runs.items()
        }
        potentials = {c: pair_correlation(r.means["uI"], r.means["u2"]) for c, r in runs.items()}
        extra = {
            "potential_correlation_intact": potentials[INTACT],
            "potential_correlation_scrambled": potentials[SCRAMBLED],
            "potential_correlation_difference": potentials[INTACT] - potentials[SCRAMBLED],
            "interneuron_rate_hz_intact": float(np.mean(runs[INTACT].spike_rates_hz(mt.INTER))),
            "next_layer_rate_hz_intact": float(np.mean(runs[INTACT].spike_rates_hz(mt.OUTPUT))),
            "stimuli": float(len(x)),
            "trials": float(TRIALS[quick]),
            **trained.metrics,
        }
        recordings = {
            condition: [
                mt.recording(
                    run, f"{self.name}-seed{seed}-{condition}",
                    {"seed": seed, "condition": condition, "experiment": self.name,
                     "WIP": "rows permuted" if condition == SCRAMBLED else "as learned"},
                )
            ]
            for condition, run in runs.items()
        }  # fmt: skip
        return SeedOutcome(
            seed=int(seed),
            effect=counts[INTACT] - counts[SCRAMBLED],
            conditions=counts,
            recordings=recordings,
            extra=extra,
        )

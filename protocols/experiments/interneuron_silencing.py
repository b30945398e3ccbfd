"""Silencing the SST interneurons exposes the top-down input to the apical dendrite (DESIGN.md
§4.2, §4.7): apical activity for predicted stimuli and for stimuli with a teaching signal, with
the interneurons intact and silenced. Trained circuit and frozen runs:
:mod:`protocols.experiments._microcircuit_trained`."""

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

#: distance (L2 norm over the 10 output cells, model potential units) between the teaching
#: target and the circuit's own prediction: the largest step of the dose–response experiment
TEACHING_DISTANCE = 10.0
PREDICTED_INTACT = "predicted-intact"
PREDICTED_SILENCED = "predicted-silenced"
TEACHING_INTACT = "teaching-intact"
TEACHING_SILENCED = "teaching-silenced"


@register_experiment
class InterneuronSilencing(VirtualExperiment):
    """Apical |v_A| in four conditions: predicted or taught stimuli × SST intact or silenced."""

    name = "interneuron-silencing"
    title = "Silencing SST interneurons raises apical activity for predicted stimuli"
    hypothesis = (
        "After the circuit has learned to predict its own top-down input, SST (Martinotti-like) "
        "interneurons cancel that input at the apical dendrite, so apical activity stays near "
        "rest for stimuli the circuit predicts; silencing the interneurons removes the "
        "cancellation and raises apical activity for the same stimuli. A teaching signal (an "
        "output pushed away from the prediction) raises apical activity with the interneurons "
        "intact, because only the predicted part is cancelled."
    )
    record = (
        "Apical tuft potential of hidden-layer pyramidal cells (L2/3 or L5; dendritic patch "
        "clamp, or dendritic Ca2+ imaging of the tuft as a proxy), averaged over the settled "
        "part of each stimulus (40-100 ms after onset) and over repeated trials; spikes of the "
        "pyramidal cells of both layers and of the SST interneurons (cell-attached or calcium "
        "imaging). Silencing: optogenetic inhibition of SST cells (e.g. ArchT or GtACR in "
        "SST-Cre mice), modelled as removing their output to the apical dendrite (W^PI = 0); "
        "the model's interneurons keep spiking, which a lab's silencing would also stop. Teaching "
        "signal: the output layer driven toward a target that differs from the circuit's own "
        "prediction (here by 10 potential units, L2 norm over the 10 output cells)."
    )
    contrast = (
        "Effect: mean |v_A| over hidden cells and stimuli, 'predicted-silenced' (no teaching "
        "signal, SST output removed) minus 'predicted-intact'. Also reported: 'teaching-intact' "
        "minus 'predicted-intact' and 'teaching-silenced' minus 'predicted-silenced', and the "
        "same contrast on a noise-corrected amplitude (cross-products of different trials)."
    )
    conditions = (PREDICTED_INTACT, PREDICTED_SILENCED, TEACHING_INTACT, TEACHING_SILENCED)
    effect_label = "apical |v_A|, silenced minus intact, predicted stimuli"
    effect_units = "dimensionless model potential"
    change_from = (PREDICTED_INTACT, PREDICTED_SILENCED)
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
        """Train (or fetch) the circuit of ``seed`` and measure apical |v_A| in the four
        conditions on the same stimuli and trials."""
        trained = mt.trained_microcircuit(seed, settings, progress)
        if progress:
            progress("frozen runs of the trained circuit")
        x = mt.stimuli(trained)
        trials = mt.TRIALS[trained.quick]
        runs = {PREDICTED_INTACT: mt.predicted(trained, settings)}
        prediction = runs[PREDICTED_INTACT].means["u2"]
        targets = prediction + TEACHING_DISTANCE * mt.error_directions(trained, len(x))
        off = mt.silenced(trained.weights)
        for part, (condition, overrides, target, nudge) in enumerate(
            (
                (PREDICTED_SILENCED, off, None, 0.0),
                (TEACHING_INTACT, None, targets, mt.TEACHING_NUDGE),
                (TEACHING_SILENCED, off, targets, mt.TEACHING_NUDGE),
            ),
            start=1,
        ):
            runs[condition] = mt.run_frozen(
                trained, x, seed=run_seed(seed, 71, part), settings=settings, targets=target,
                nudge=nudge, overrides=overrides, trials=trials,
            )  # fmt: skip
        values = {c: mt.mean_abs_apical(r) for c, r in runs.items()}
        corrected = {c: mt.noise_corrected_rms(r) for c, r in runs.items()}
        phi = trained.phi
        extra = {
            "teaching_minus_predicted_intact": values[TEACHING_INTACT] - values[PREDICTED_INTACT],
            "teaching_minus_predicted_silenced": values[TEACHING_SILENCED]
            - values[PREDICTED_SILENCED],
            "interneuron_term_silenced_max_abs": max(
                float(np.max(np.abs(runs[c].means["vA_int"])))
                for c in (PREDICTED_SILENCED, TEACHING_SILENCED)
            ),
            "interneuron_term_intact_mean_abs": float(
                np.mean(np.abs(runs[PREDICTED_INTACT].means["vA_int"]))
            ),
            "topdown_term_intact_mean_abs": float(
                np.mean(np.abs(runs[PREDICTED_INTACT].means["vA_td"]))
            ),
            "output_rate_error_teaching": float(
                np.mean(
                    np.linalg.norm(phi(runs[TEACHING_INTACT].means["u2"]) - phi(prediction), axis=1)
                )
            ),  # fmt: skip
            **{f"noise_corrected_rms_{c}": corrected[c] for c in runs},
            "noise_corrected_effect": corrected[PREDICTED_SILENCED] - corrected[PREDICTED_INTACT],
            "stimuli": float(len(x)),
            "trials": float(trials),
            **trained.metrics,
        }
        recordings = {
            condition: [
                mt.recording(
                    run, f"{self.name}-seed{seed}-{condition}",
                    {"seed": seed, "condition": condition, "experiment": self.name,
                     "sst_output": "removed (W^PI = 0)" if "silenced" in condition else "intact",
                     "teaching_distance": TEACHING_DISTANCE if "teaching" in condition else 0.0},
                )
            ]
            for condition, run in runs.items()
        }  # fmt: skip
        return SeedOutcome(
            seed=int(seed),
            effect=values[PREDICTED_SILENCED] - values[PREDICTED_INTACT],
            conditions=values,
            recordings=recordings,
            extra=extra,
        )

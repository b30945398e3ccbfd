"""Apical potential against the size of the output error (DESIGN.md §4.2, §4.7): teaching
targets at graded distances from the circuit's own prediction. Trained circuit and frozen runs:
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

#: distances of the teaching target from the prediction (L2 norm over the output cells, model
#: potential units), default and quick
DISTANCES = {False: (0.0, 2.0, 4.0, 6.0, 8.0, 10.0), True: (0.0, 5.0, 10.0)}
SMALLEST, LARGEST = "smallest error", "largest error"


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xc = x - x.mean()
    return float(xc @ (y - y.mean()) / (xc @ xc))


@register_experiment
class ApicalDoseResponse(VirtualExperiment):
    """Mean apical |v_A| of the hidden cells for teaching targets at graded output errors."""

    name = "apical-dose-response"
    title = "Apical potential grows with the output error"
    hypothesis = (
        "The apical dendrite carries the output error: with the interneurons cancelling the "
        "predicted top-down input, what remains at the apical tuft grows with the distance "
        "between the teaching signal and the circuit's own prediction, from near rest when the "
        "target equals the prediction."
    )
    record = (
        "Apical tuft potential of hidden-layer pyramidal cells (dendritic patch clamp, or "
        "dendritic Ca2+ imaging of L2/3-L5 apical tufts), averaged over the settled part of "
        "each stimulus (40-100 ms after onset) and over repeated trials, while the output layer "
        "is driven (teaching signal) toward targets at graded distances from its own response "
        "to the same stimulus (first measured without a teaching signal); spikes of the "
        "pyramidal cells and SST interneurons. Output error size: the distance of the target "
        "from the prediction, L2 norm over the 10 output cells, in model potential units "
        "(dimensionless); every step, distance 0 included, has the teaching signal on."
    )
    contrast = (
        "Effect: least-squares slope of mean |v_A| (hidden cells, stimuli) against the output "
        "error size over the graded series; 'smallest error' and 'largest error' give the two "
        "ends."
    )
    conditions = (SMALLEST, LARGEST)
    effect_label = "slope of apical |v_A| against output error"
    effect_units = "dimensionless potential per unit output error"
    expected_sign = 1
    figure = "dose-response"
    x_label = "output error: distance of the target from the prediction (L2, potential)"
    y_label = "apical |v_A| of hidden cells (dimensionless)"
    circuit = "microcircuit"
    readout = "spiking"

    def run_seed(
        self,
        seed: int,
        settings: ExperimentSettings,
        progress: Callable[[str], None] | None = None,
    ) -> SeedOutcome:
        """Train (or fetch) the circuit of ``seed``; measure apical |v_A| at each distance."""
        trained = mt.trained_microcircuit(seed, settings, progress)
        if progress:
            progress("frozen runs of the trained circuit")
        x = mt.stimuli(trained)
        trials = mt.TRIALS[trained.quick]
        prediction = mt.predicted(trained, settings).means["u2"]
        directions = mt.error_directions(trained, len(x))
        distances = np.asarray(DISTANCES[trained.quick])
        runs = [
            mt.run_frozen(
                trained, x, seed=run_seed(seed, 72, step), settings=settings,
                targets=prediction + d * directions, nudge=mt.TEACHING_NUDGE, trials=trials,
            )
            for step, d in enumerate(distances)
        ]  # fmt: skip
        apical = np.array([mt.mean_abs_apical(r) for r in runs])
        corrected = np.array([mt.noise_corrected_rms(r) for r in runs])
        phi = trained.phi
        rate_error = np.array(
            [np.mean(np.linalg.norm(phi(r.means["u2"]) - phi(prediction), axis=1)) for r in runs]
        )
        extra = {
            **{f"apical_at_{d:g}": float(a) for d, a in zip(distances, apical, strict=True)},
            **{
                f"output_rate_error_at_{d:g}": float(e)
                for d, e in zip(distances, rate_error, strict=True)
            },
            "slope_against_output_rate_error": slope(rate_error, apical),
            "noise_corrected_slope": slope(distances, corrected),
            **{
                f"noise_corrected_rms_at_{d:g}": float(a)
                for d, a in zip(distances, corrected, strict=True)
            },
            "stimuli": float(len(x)),
            "trials": float(trials),
            **trained.metrics,
        }
        recordings = {
            label: [
                mt.recording(
                    runs[index], f"{self.name}-seed{seed}-{label.replace(' ', '-')}",
                    {"seed": seed, "condition": label, "experiment": self.name,
                     "output_error_distance": float(distances[index])},
                )
            ]
            for label, index in ((SMALLEST, 0), (LARGEST, len(runs) - 1))
        }  # fmt: skip
        return SeedOutcome(
            seed=int(seed),
            effect=slope(distances, apical),
            conditions={SMALLEST: float(apical[0]), LARGEST: float(apical[-1])},
            curves={"apical |v_A|": {"x": distances.copy(), "y": apical}},
            recordings=recordings,
            extra=extra,
        )

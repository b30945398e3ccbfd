"""Virtual experiment: spiking dropout and the generalisation gap (DESIGN.md §3, §4.7).

Per seed, four copies of one Equilibrium-Propagation circuit (64-50-10 Hopfield, two-phase rule)
learn the same small digits training set (300 examples; the generalisation gap is clear there)
from the same initial weights: one with the rate read-out, three with the spiking read-out at
release-failure probability p_fail = 0, 0.25, 0.5 (each spike is transmitted with probability
1 − p_fail: spiking dropout). All four use the same phases, nudging and learning rates (those that
let the spiking circuit learn at all: β = 1, rates 0.05/0.025, 20 ms free / 10 ms nudged phases;
DESIGN.md §4.3 notes the spiking read-out's noisy end points).

After training each circuit is scored on its training set and on the 360 test digits by its
**mean-field** circuit: the rate read-out with every weight × (1 − p_fail), the expected summed
input of the spiking circuit (the analogue of evaluating a dropout network without dropout). The
gap is train accuracy − test accuracy; the effect is gap(spiking, p_fail = 0) − gap(spiking,
p_fail = 0.5), predicted positive (release failure regularises), so that only release failure
differs between the two arms. The read-out contrast gap(rate) − gap(spiking) is reported beside
it with the train and test accuracies: a circuit that fits the training set less also has a
smaller gap (the spiking circuits underfit here), and the reader should see that this, not
better generalisation, is what narrows the gap between the read-outs.
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

#: release-failure probabilities of the spiking conditions
P_FAILS = (0.0, 0.25, 0.5)
#: the circuit and its training (shared by all four conditions)
SETUP = et.EPSetup(
    sizes=(64, 50, 10), free_steps=40, nudged_steps=20, beta=1.0, rates=(0.05, 0.025), P=50
)
#: default and quick sizes of the run: training examples, test examples, epochs
DEFAULT = {"n_train": 300, "n_test": 360, "epochs": 10}
QUICK = {"n_train": 50, "n_test": 50, "epochs": 2}
LR_DECAY = 0.9
#: examples of the recorded test pass (spike trains / output states per condition)
RECORDED_EXAMPLES = 3
RECORDED_CELLS = 20


def _condition(readout: str, p_fail: float) -> str:
    return "rate" if readout == "rate" else f"spiking p={p_fail:g}"


@register_experiment
class SpikingDropout(VirtualExperiment):
    """Generalisation gap against release failure, rate versus spiking read-out."""

    name: ClassVar[str] = "spiking-dropout"
    title: ClassVar[str] = "Spiking variability and release failure narrow the generalisation gap"
    hypothesis: ClassVar[str] = (
        "Trial-to-trial variability of spiking transmission (Poisson spiking and synaptic release "
        "failure) acts like dropout during learning: a circuit that learns with it generalises "
        "better, so the gap between performance on trained and on new stimuli shrinks as the "
        "release-failure probability grows, and is smaller than in a noise-free (rate) circuit."
    )
    record: ClassVar[str] = (
        "Behavioural or decoded accuracy on the trained stimulus set and on a held-out set of "
        "the same categories, in animals (or slices/cultures trained by closed-loop stimulation) "
        "whose release probability is lowered or raised during learning (e.g. extracellular "
        "Ca²⁺/Mg²⁺ ratio, or presynaptic manipulations of release probability in the learning "
        "pathway), with paired-pulse ratios to verify the release probability reached. Test "
        "both sets with the same (normal) release probability after learning. Record spike "
        "trains of input, hidden and output populations during a test pass."
    )
    contrast: ClassVar[str] = (
        "Gap = train accuracy − test accuracy after learning, per condition: rate read-out, and "
        "spiking read-out at release failure 0, 0.25 and 0.5 (all scored by the mean-field "
        "circuit, weights × (1 − p_fail)). Effect = gap(spiking, p_fail = 0) − gap(spiking, "
        "p_fail = 0.5): release failure is the only difference, so the effect is not confounded "
        "by the read-out. The read-out contrast, gap(rate) − gap(spiking, p_fail = 0), is "
        "reported beside it with the train accuracies: a smaller gap that comes with a lower "
        "train accuracy is underfitting, not better generalisation."
    )
    conditions: ClassVar[tuple[str, ...]] = (
        "rate",
        *(_condition("spiking", p) for p in P_FAILS),
    )
    effect_label: ClassVar[str] = "gap(spiking, p_fail 0) − gap(spiking, p_fail 0.5)"
    effect_units: ClassVar[str] = "accuracy (fraction)"
    expected_sign: ClassVar[int] = 1
    figure: ClassVar[str] = "dose-response"
    x_label: ClassVar[str] = "release-failure probability p_fail"
    y_label: ClassVar[str] = "generalisation gap (train − test accuracy)"
    circuit: ClassVar[str] = "hopfield"
    readout: ClassVar[str] = "spiking"

    def run_seed(
        self,
        seed: int,
        settings: ExperimentSettings,
        progress: Callable[[str], None] | None = None,
    ) -> SeedOutcome:
        say = progress or (lambda msg: None)
        size = QUICK if settings.quick else DEFAULT
        task = et.digits_task(seed, size["n_train"], size["n_test"])
        rate_setup = replace(SETUP, readout="rate")
        spike_setup = replace(SETUP, readout="spiking")
        w0 = et.weight_values(SETUP, et.initial_weights(SETUP, seed))
        started = time.perf_counter()
        trained: dict[str, dict[str, Any]] = {}
        arms = [("rate", 0.0)] + [("spiking", p) for p in P_FAILS]
        for readout, p_fail in arms:
            cond = _condition(readout, p_fail)
            setup = rate_setup if readout == "rate" else spike_setup
            sim = et.shared_simulation(settings, setup)
            say(f"seed {seed}: training the {cond} circuit ({size['epochs']} epochs)")
            values = {**w0, **et.static_values(setup, p_fail)}
            trained[cond] = et.train(
                sim, setup, values, task["x_train"], task["d_train"], epochs=size["epochs"],
                seed=run_seed(seed, 70), lr_decay=LR_DECAY,
            )  # fmt: skip
        train_seconds = time.perf_counter() - started

        # ---- score every circuit by its mean-field rate circuit
        rate_sim = et.shared_simulation(settings, rate_setup)
        gaps: dict[str, float] = {}
        extra: dict[str, float] = {}
        for readout, p_fail in arms:
            cond = _condition(readout, p_fail)
            mf = et.mean_field(trained[cond], SETUP, p_fail)
            accs = []
            for part in ("train", "test"):
                _, out = et.run_chunks(
                    rate_sim, rate_setup, mf, task[f"x_{part}"], task[f"d_{part}"], learn=False,
                    seed=run_seed(seed, 71),
                )  # fmt: skip
                accs.append(et.accuracy(out, task[f"labels_{part}"]))
            gaps[cond] = accs[0] - accs[1]
            extra[f"train_accuracy[{cond}]"] = accs[0]
            extra[f"test_accuracy[{cond}]"] = accs[1]

        # ---- the virtual recordings: a test pass through each trained circuit, its own read-out
        recordings: dict[str, list[SegmentRecord]] = {}
        spike_sim = et.shared_simulation(settings, spike_setup)
        n_rec = SETUP.P
        x_rec, d_rec = task["x_test"][:n_rec], task["d_test"][:n_rec]
        if len(x_rec) < n_rec:  # pad to one compiled run
            reps = -(-n_rec // len(x_rec))
            x_rec, d_rec = np.tile(x_rec, (reps, 1))[:n_rec], np.tile(d_rec, (reps, 1))[:n_rec]
        t_stop = RECORDED_EXAMPLES * SETUP.example_ms / 1000.0
        for readout, p_fail in arms:
            cond = _condition(readout, p_fail)
            setup = rate_setup if readout == "rate" else spike_setup
            sim = rate_sim if readout == "rate" else spike_sim
            results: list[Any] = []
            et.run_chunks(
                sim, setup, trained[cond], x_rec, d_rec, learn=False, seed=run_seed(seed, 72),
                on_result=lambda c, r, kept=results: kept.append(r),
            )  # fmt: skip
            result = results[0]
            ann = {"seed": seed, "condition": cond, "p_fail": p_fail, "readout": readout}
            name = f"seed{seed} {cond} test pass"
            if readout == "spiking":
                seg = et.spike_segment(
                    name, result, SETUP.sizes, layers=(0, 1, 2), t_stop_s=t_stop,
                    max_cells=RECORDED_CELLS, annotations=ann,
                )  # fmt: skip
                for sp in seg.spikes:
                    sp.times_s = sp.times_s[sp.times_s < t_stop]
            else:
                seg = SegmentRecord(name, annotations=ann)
            mon = result.monitors["layer2"]
            keep = mon["t"] < t_stop
            seg.signals.append(
                et.signal(
                    "output state s (layer2)",
                    mon["s"][keep],
                    SETUP.phase_unit * et.DT_MS / 1e3,
                    annotations=ann,
                )  # fmt: skip
            )
            recordings[cond] = [seg]

        spiking_conds = [_condition("spiking", p) for p in P_FAILS]
        curves = {
            "spiking read-out": {
                "x": np.array(P_FAILS, dtype=float),
                "y": np.array([gaps[c] for c in spiking_conds]),
            },
            "rate read-out": {"x": np.array([0.0]), "y": np.array([gaps["rate"]])},
        }
        extra["train_seconds"] = train_seconds
        extra["n_train"] = float(size["n_train"])
        extra["epochs"] = float(size["epochs"])
        no_failure = gaps[_condition("spiking", 0.0)]
        effect = no_failure - gaps[_condition("spiking", P_FAILS[-1])]
        extra["gap_rate_minus_spiking_p0"] = gaps["rate"] - no_failure
        extra["gap_rate_minus_spiking_largest_p_fail"] = (
            gaps["rate"] - gaps[_condition("spiking", P_FAILS[-1])]
        )
        return SeedOutcome(
            seed=seed, effect=float(effect), conditions=gaps, curves=curves,
            recordings=recordings, extra=extra,
        )  # fmt: skip

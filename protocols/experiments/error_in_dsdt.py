"""Virtual experiment: the error is carried by ds/dt (DESIGN.md §4.3 "Error in ds/dt", §4.7).

A naive Equilibrium-Propagation circuit (64-50-10 Hopfield, **spiking read-out**, initial
weights) learns digits online; every example has a free phase (no teaching) and a nudged phase
(the output cells pulled toward the target, β = 1). Everything measured comes from the compiled
Brian2 circuit: the weights are read before and after each phase from its weight monitors, the
activity from its spike trains (rates estimated as a lab would, from spike counts in windows).

* **Nudged phase, continual rule** (run A): the circuit's continual plasticity (error in ds/dt,
  dW/dt = η/β · d(ρ_iρ_j)/dt, gated on during the nudged phase only) changes the weights. Per
  synapse j → i, the weight change over the nudged phases is compared with the presynaptic rate ×
  the change of the postsynaptic rate, ρ̂_j · (ρ̂_i^nudged − ρ̂_i^free) (∫ ρ_j dρ_i/dt over the
  phase with ρ_j roughly constant), both estimated from spikes and summed over examples. The
  effect is their correlation over synapses (input → hidden and hidden → output pooled, each
  weight change divided by its projection's rate η), predicted positive.
* **Free versus nudged phase, two-phase rule** (run B, same examples): the circuit's end-point
  rule makes ΔW = η/β (ρ_i^β ρ_j^β − ρ_i^0 ρ_j^0) once per example. The per-example weight
  change (× β/η) is regressed jointly on the spike-estimated coactivity ρ̂_iρ̂_j at the end of
  the free phase and at the end of the nudged phase: the coefficients are the sign of plasticity
  in each phase (theory: −1 anti-Hebbian in the free phase, +1 Hebbian in the nudged phase; the
  noise of spike-count estimates shrinks both toward 0). They are the two conditions.

Extras: the same correlation per projection, and against the circuit's internal rates ρ(s)
(recorded every step: the exact ∫ρ_j dρ_i/dt), and the regression coefficients from internal
rates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from neurosim.connectivity import w_to_matrix
from neurosim.engine import RunResult
from neurosim.experiment import (
    ExperimentSettings,
    SeedOutcome,
    VirtualExperiment,
    register_experiment,
)
from neurosim.parameters.hopfield import HopfieldParams
from neurosim.recording import SegmentRecord
from neurosim.seeding import run_seed
from protocols.experiments import _ep_trained as et

FREE, NUDGED = "free phase", "nudged phase"
#: phases of 40 ms each (80 steps); rates are estimated in the last WINDOW_STEPS of each
SETUP = et.EPSetup(
    sizes=(64, 50, 10), free_steps=80, nudged_steps=80, beta=1.0, rates=(0.05, 0.025),
    readout="spiking", rules=("two-phase", "continual"), P=50,
)  # fmt: skip
WINDOW_STEPS = 40
#: the continual rule's rates: (η_1/β)·‖x‖² ≈ 0.15 on digits (the EP protocol's online limit)
CONTINUAL_LR = (0.01, 0.005)
#: runs of P examples per seed (each rule runs on the same examples)
DEFAULT_CHUNKS, QUICK_CHUNKS = 4, 1
RECORDED_EXAMPLES, RECORDED_CELLS, RECORDED_SYNAPSES = 3, 20, 20


def _window_rates(
    result: RunResult, sizes: tuple[int, ...], starts_ms: np.ndarray, length_ms: float, scale: float
) -> list[np.ndarray]:
    """Per layer, (examples, cells) rates ρ̂ = spike count / (length · rate scale) in the windows
    [start, start + length) (ms)."""
    out = []
    for k, n in enumerate(sizes):
        mon = result.monitors[f"spikes_layer{k}"]
        t_ms, cell = mon["t"] * 1000.0, mon["i"]
        counts = np.zeros((len(starts_ms), n))
        e = np.searchsorted(starts_ms, t_ms, side="right") - 1
        ok = (e >= 0) & (t_ms < starts_ms[np.clip(e, 0, None)] + length_ms)
        np.add.at(counts, (e[ok], cell[ok]), 1.0)
        out.append(counts / (length_ms * 1e-3 * scale))
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _phase_regression(dw: np.ndarray, c_free: np.ndarray, c_nudged: np.ndarray) -> tuple:
    """Least squares dw ≈ a·c_nudged + b·c_free + c; returns (b, a)."""
    design = np.column_stack([c_nudged.ravel(), c_free.ravel(), np.ones(dw.size)])
    coef, *_ = np.linalg.lstsq(design, dw.ravel(), rcond=None)
    return float(coef[1]), float(coef[0])


@register_experiment
class ErrorInDsDt(VirtualExperiment):
    """Weight change against presynaptic rate × change of postsynaptic rate; sign per phase."""

    name: ClassVar[str] = "error-in-dsdt"
    title: ClassVar[str] = (
        "Weight change follows presynaptic rate × rate of change of postsynaptic activity"
    )
    hypothesis: ClassVar[str] = (
        "Under Equilibrium Propagation the teaching signal is carried by how postsynaptic "
        "activity changes when the teacher arrives: during the teaching phase a synapse changes "
        "in proportion to presynaptic rate × rate of change of postsynaptic rate. Plasticity is "
        "anti-Hebbian with respect to coactivity in the free (untaught) state and Hebbian with "
        "respect to coactivity in the taught state."
    )
    record: ClassVar[str] = (
        "During learning with a teaching signal (e.g. a reward-/instruction-cued epoch after a "
        "free response epoch), record spike trains of identified pre- and postsynaptic cells "
        "(paired whole-cell or juxtacellular recordings, or 2-photon imaging with spike "
        "inference) in the free epoch and in the teaching epoch, and the strength of the same "
        "synapses before and after each epoch (EPSP amplitude in paired recordings, or spine "
        "volume by 2-photon imaging of the connected spines). Pre/post pairing protocols that "
        "ramp the postsynaptic rate up or down at a fixed presynaptic rate test the rule "
        "directly."
    )
    contrast: ClassVar[str] = (
        "Effect: across synapses, the correlation of the weight change during the teaching "
        "phase with presynaptic rate × (postsynaptic rate at the end of teaching − at the end "
        "of the free phase). Conditions: the joint regression coefficient of the per-example "
        "weight change on pre×post coactivity at the end of the free phase and at the end of the "
        "teaching phase (in units of the EP prediction: −1 free, +1 nudged)."
    )
    conditions: ClassVar[tuple[str, ...]] = (FREE, NUDGED)
    effect_label: ClassVar[str] = "corr(ΔW during teaching, pre rate × Δ post rate)"
    effect_units: ClassVar[str] = "Pearson r"
    expected_sign: ClassVar[int] = 1
    figure: ClassVar[str] = "scatter"
    x_label: ClassVar[str] = "presynaptic rate × change of postsynaptic rate (nudged phase)"
    y_label: ClassVar[str] = "weight change / learning rate"
    circuit: ClassVar[str] = "hopfield"
    readout: ClassVar[str] = "spiking"

    def run_seed(
        self,
        seed: int,
        settings: ExperimentSettings,
        progress: Callable[[str], None] | None = None,
    ) -> SeedOutcome:
        say = progress or (lambda msg: None)
        chunks = QUICK_CHUNKS if settings.quick else DEFAULT_CHUNKS
        n_ex = chunks * SETUP.P
        task = et.digits_task(seed, n_ex, 1)
        sizes, N = SETUP.sizes, len(SETUP.sizes) - 1
        record = {f"layer{k}": ("s",) for k in range(1, N + 1)}
        sim = et.shared_simulation(
            settings, SETUP, record=record, record_steps=1, weight_record_steps=SETUP.phase_unit
        )
        dt, T = et.DT_MS, SETUP.example_ms
        F = SETUP.free_steps * dt
        win = WINDOW_STEPS * dt
        starts = np.arange(SETUP.P) * T
        scale = HopfieldParams().rate_scale_hz
        etas = {"W1": SETUP.rates[0], "W2": SETUP.rates[1]}
        c_etas = {"W1": CONTINUAL_LR[0], "W2": CONTINUAL_LR[1]}
        base = {
            **et.weight_values(SETUP, et.initial_weights(SETUP, seed)),
            **et.static_values(SETUP, 0.0),
        }
        off = et.rule_values(SETUP, 0.0)  # both rules off, centred 0
        continual = {**off, **et.hopfield().eta_values(sizes, continual=list(CONTINUAL_LR))}
        two_phase = {**off, **et.hopfield().eta_values(sizes, two_phase=list(SETUP.rates))}
        keys = et.state_keys(SETUP)
        acc: dict[str, Any] = {
            "dw": {p: 0.0 for p in etas},
            "x": {p: 0.0 for p in etas},
            "x_int": {p: 0.0 for p in etas},
            "reg_spk": [],
            "reg_int": [],
        }
        recs: dict[str, list[SegmentRecord]] = {}
        started = time.perf_counter()
        values_a, values_b = dict(base), dict(base)
        for c in range(chunks):
            say(f"seed {seed}: examples {c * SETUP.P + 1}-{(c + 1) * SETUP.P}, both rules")
            sl = slice(c * SETUP.P, (c + 1) * SETUP.P)
            tv, _, _ = et.layout(SETUP, task["x_train"][sl], task["d_train"][sl],
                                 np.full(SETUP.P, SETUP.beta))  # fmt: skip
            ra = sim.run(values={**values_a, **continual}, timed=tv, seed=run_seed(seed, 90, c),
                         read=keys)  # fmt: skip
            rb = sim.run(values={**values_b, **two_phase}, timed=tv, seed=run_seed(seed, 91, c),
                         read=keys)  # fmt: skip
            values_a.update(ra.state)
            values_b.update(rb.state)
            x_in = np.clip(task["x_train"][sl], 0, 1)
            self._continual(ra, x_in, starts, F, win, T, scale, acc, c_etas)
            self._two_phase(rb, x_in, starts, F, win, T, scale, acc, etas)
            if c == 0:
                recs = self._recordings(seed, ra, rb)
        wall = time.perf_counter() - started

        # ---- effect: pooled over projections, ΔW / η_k
        dw_all = np.concatenate([np.ravel(acc["dw"][p]) / c_etas[p] for p in etas])
        x_all = np.concatenate([np.ravel(acc["x"][p]) for p in etas])
        effect = _corr(dw_all, x_all)
        extra: dict[str, float] = {"examples": float(n_ex), "wall_seconds": wall}
        for p in etas:
            extra[f"corr_spike_estimate[{p}]"] = _corr(acc["dw"][p], acc["x"][p])
            extra[f"corr_internal_rates[{p}]"] = _corr(acc["dw"][p], acc["x_int"][p])
        xi_all = np.concatenate([np.ravel(acc["x_int"][p]) for p in etas])
        extra["corr_internal_rates[pooled]"] = _corr(dw_all, xi_all)
        reg = {}
        for kind in ("spk", "int"):
            dw = np.concatenate([np.ravel(r[0]) for r in acc[f"reg_{kind}"]])
            cf = np.concatenate([np.ravel(r[1]) for r in acc[f"reg_{kind}"]])
            cn = np.concatenate([np.ravel(r[2]) for r in acc[f"reg_{kind}"]])
            reg[kind] = _phase_regression(dw, cf, cn)
        conditions = {FREE: reg["spk"][0], NUDGED: reg["spk"][1]}
        extra["free_coefficient_internal_rates"] = reg["int"][0]
        extra["nudged_coefficient_internal_rates"] = reg["int"][1]
        rng = np.random.default_rng(run_seed(seed, 92))
        w1_idx = rng.choice(np.size(acc["dw"]["W1"]), 500, replace=False)
        curves = {
            "hidden→output (W2)": {
                "x": np.ravel(acc["x"]["W2"]),
                "y": np.ravel(acc["dw"]["W2"]) / c_etas["W2"],
            },
            "input→hidden (W1, 500 synapses)": {
                "x": np.ravel(acc["x"]["W1"])[w1_idx],
                "y": np.ravel(acc["dw"]["W1"])[w1_idx] / c_etas["W1"],
            },
        }
        return SeedOutcome(
            seed=seed, effect=effect, conditions=conditions, curves=curves, recordings=recs,
            extra=extra,
        )  # fmt: skip

    # ------------------------------------------------------------------ per run
    @staticmethod
    def _continual(ra, x_in, starts, F, win, T, scale, acc, c_etas) -> None:
        """Run A: ΔW over each nudged phase (weights at its start and end) against pre rate ×
        change of post rate (spike estimates; and the exact sum from the internal rates)."""
        sizes = SETUP.sizes
        free_end = _window_rates(ra, sizes, starts + F - win, win, scale)
        nudged_end = _window_rates(ra, sizes, starts + T - win, win, scale)
        nudged_all = _window_rates(ra, sizes, starts + F, T - F, scale)
        per_example = (SETUP.free_steps + SETUP.nudged_steps) // SETUP.phase_unit
        first = SETUP.free_steps // SETUP.phase_unit  # weight row at the nudged phase's start
        for k, p in ((1, "W1"), (2, "W2")):
            w = ra.monitors[p]["w"]
            rows = np.arange(SETUP.P) * per_example + first
            dw = (w[rows + SETUP.nudged_steps // SETUP.phase_unit] - w[rows]).sum(axis=0)
            acc["dw"][p] = acc["dw"][p] + w_to_matrix(dw, sizes[k], sizes[k - 1])
            d_post = nudged_end[k] - free_end[k]  # (examples, post)
            acc["x"][p] = acc["x"][p] + d_post.T @ nudged_all[k - 1]
            # the exact ∫ ρ_pre dρ_post over the nudged steps, from the internal rates
            s = {j: np.clip(ra.monitors[f"layer{j}"]["s"], 0, 1) for j in range(1, len(sizes))}
            steps = np.arange(SETUP.P)[:, None] * (T / et.DT_MS) + SETUP.free_steps
            t_idx = (steps + np.arange(SETUP.nudged_steps)[None, :]).astype(int).ravel()
            post = s[k]
            d_post_int = post[t_idx + 1] - post[t_idx]
            pre = np.repeat(x_in, SETUP.nudged_steps, axis=0) if k == 1 else s[k - 1][t_idx]
            acc["x_int"][p] = acc["x_int"][p] + d_post_int.T @ pre

    @staticmethod
    def _two_phase(rb, x_in, starts, F, win, T, scale, acc, etas) -> None:
        """Run B: the per-example two-phase ΔW (× β/η) against coactivity at the end of the
        free and of the nudged phase (spike estimates, and the internal rates at the phase
        ends)."""
        sizes = SETUP.sizes
        free_end = _window_rates(rb, sizes, starts + F - win, win, scale)
        nudged_end = _window_rates(rb, sizes, starts + T - win, win, scale)
        per_example = (SETUP.free_steps + SETUP.nudged_steps) // SETUP.phase_unit
        steps_per_example = int(round(T / et.DT_MS))
        # example e's update is applied at t = (e+1)T, between weight rows (e+1)·m and (e+1)·m+1
        e = np.arange(SETUP.P - 1)
        s = {j: np.clip(rb.monitors[f"layer{j}"]["s"], 0, 1) for j in range(1, len(sizes))}
        for k, p in ((1, "W1"), (2, "W2")):
            w = rb.monitors[p]["w"]
            dw = w[(e + 1) * per_example + 1] - w[(e + 1) * per_example]
            dw = dw.reshape(len(e), sizes[k], sizes[k - 1]) * SETUP.beta / etas[p]
            c_free = free_end[k][e][:, :, None] * free_end[k - 1][e][:, None, :]
            c_nud = nudged_end[k][e][:, :, None] * nudged_end[k - 1][e][:, None, :]
            acc["reg_spk"].append((dw, c_free, c_nud))
            # internal rates at the phase ends (the values the rule itself uses)
            f_idx = e * steps_per_example + SETUP.free_steps
            n_idx = (e + 1) * steps_per_example
            if k == 1:  # the input is clamped: ρ_0 = x in both phases
                pre_f = pre_n = x_in[e]
            else:
                pre_f, pre_n = s[k - 1][f_idx], s[k - 1][n_idx]
            c_free_i = s[k][f_idx][:, :, None] * pre_f[:, None, :]
            c_nud_i = s[k][n_idx][:, :, None] * pre_n[:, None, :]
            acc["reg_int"].append((dw, c_free_i, c_nud_i))

    @staticmethod
    def _recordings(seed: int, ra: RunResult, rb: RunResult) -> dict[str, list[SegmentRecord]]:
        """The first examples of each run: spike trains of 20 cells per layer, the output states
        and 20 hidden→output weights over time."""
        t_stop = RECORDED_EXAMPLES * SETUP.example_ms / 1000.0
        out = {}
        for cond, res, rule in ((NUDGED, ra, "continual"), (FREE, rb, "two-phase")):
            ann = {"seed": seed, "condition": cond, "rule": rule, "beta": SETUP.beta,
                   "free_ms": SETUP.free_steps * et.DT_MS,
                   "nudged_ms": SETUP.nudged_steps * et.DT_MS}  # fmt: skip
            seg = et.spike_segment(
                f"seed{seed} {rule} rule, free and nudged phases", res, SETUP.sizes,
                layers=(0, 1, 2), t_stop_s=t_stop, max_cells=RECORDED_CELLS, annotations=ann,
            )  # fmt: skip
            for sp in seg.spikes:
                sp.times_s = sp.times_s[sp.times_s < t_stop]
            mon = res.monitors["layer2"]
            keep = mon["t"] < t_stop
            seg.signals.append(
                et.signal(
                    "output state s (layer2)", mon["s"][keep], et.DT_MS / 1e3, annotations=ann
                )  # fmt: skip
            )
            wm = res.monitors["W2"]
            keep = wm["t"] <= t_stop
            seg.signals.append(
                et.signal(
                    "hidden→output weights (W2, first 20 synapses)",
                    wm["w"][keep][:, :RECORDED_SYNAPSES],
                    SETUP.phase_unit * et.DT_MS / 1e3,
                    annotations=ann,
                )
            )
            out[cond] = [seg]
        return out

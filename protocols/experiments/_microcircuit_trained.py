"""A trained dendritic microcircuit for the virtual experiments, and a way to run it frozen.

Shared by the microcircuit experiments (``interneuron_silencing``, ``apical_dose_response``,
``interneuron_mirror``; DESIGN.md §4.2 and §4.7). Per seed, one circuit of sizes 30-20-10 with
the **spiking read-out** learns the teacher–student task of the feedback-cancellation protocol
(:mod:`protocols.feedback_cancellation`), in two stages on that protocol's compiled build:

1. self-predicting: from random lateral weights, no target (nudging 0), only W^IP and W^PI
   learn, until the SST interneurons cancel the top-down input (v_A ≈ 0);
2. supervised: a short phase with the output nudged toward the teacher's target potentials, all
   rules on (the protocol's teacher learning rates).

The trained circuit is kept in ``ExperimentSettings.shared`` (keyed by family, seed, quick and
device), so the three experiments train it once per seed. :func:`run_frozen` then presents
stimuli to the trained circuit with plasticity off, optional nudging toward given targets and
optional weight overrides (W^PI = 0: interneuron output silenced; a scrambled W^IP), on one
second compiled build shared by every frozen pass of every seed (weights go in as run values).
It records the apical potential (total, top-down and interneuron terms), somatic potentials and
the spikes of every cell; each stimulus lasts :data:`STIMULUS_MS` and is measured over its
settled part (from :data:`WINDOW_START_MS` on): potentials are averaged over that window (which
also averages out the shot noise of the spiking synapses) and spikes are counted in it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurosim.config import RunConfig
from neurosim.engine import RunResult, Simulation
from neurosim.errors import NeurosimError
from neurosim.experiment import ExperimentSettings
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord
from neurosim.registry import circuit as registered_circuit
from neurosim.seeding import run_seed
from protocols.feedback_cancellation import (
    FeedbackCancellation,
    FeedbackCancellationConfig,
    Task,
    TrainingCircuit,
    initial_weights,
    learning_pass,
    learning_values,
    preset_tables,
    training_circuit,
)

FAMILY = "microcircuit-trained"
CIRCUIT = "microcircuit"
#: layer sizes: the teacher's own architecture (30 inputs, 20 hidden cells, 10 outputs)
SIZES = (30, 20, 10)
DATASET = "teacher"
DT_MS = 0.1
#: training: one pattern every PATTERN_MS, plasticity off for the first LAG_MS of each
PATTERN_MS = 100.0
LAG_MS = 20.0
TRAIN_PATTERNS_PER_RUN = 100
#: frozen passes: stimuli per compiled run, stimulus length, measuring window, sampling step
FROZEN_PATTERNS_PER_RUN = 8
STIMULUS_MS = 100.0
WINDOW_START_MS = 40.0
RECORD_DT_MS = 1.0
#: test inputs on which training is checked (apical RMS, output MSE), two frozen runs
PROBE_PATTERNS = 16
#: the teacher preset's forward learning rates × this in the supervised stage: at × 1 some seeds
#: lose their self-predicting state (README, feedback cancellation)
SUPERVISED_ETA_SCALE = 1.0 / 3.0
#: output nudging during supervised training and in the experiments' teaching conditions
TEACHING_NUDGE = 1.0
HIDDEN, OUTPUT, INTER = "layer1", "layer2", "inter1"
#: the window means of a frozen run: name -> (group, recorded variable)
MEASURED = {
    "vA": (HIDDEN, "vA"),
    "vA_td": (HIDDEN, "vA_td"),
    "vA_int": (HIDDEN, "vA_int"),
    "u1": (HIDDEN, "u"),
    "u2": (OUTPUT, "u"),
    "uI": (INTER, "uI"),
}
CELL_TYPES = {
    "layer1": "hidden pyramidal cell (L2/3-like; soma, basal and apical dendrite)",
    "layer2": "output pyramidal cell (next layer)",
    "inter1": "SST/Martinotti-like interneuron (one per next-layer pyramidal cell)",
}


@dataclass(frozen=True)
class Schedule:
    """How many patterns each training stage presents."""

    self_predicting: int
    supervised: int


#: default and quick training at the teacher preset's rates (how the lengths were chosen: README,
#: feedback cancellation)
SCHEDULES = {False: Schedule(self_predicting=3000, supervised=1000), True: Schedule(400, 200)}


@dataclass
class TrainedMicrocircuit:
    """One seed's trained circuit: its task (data, parameters), weights and training figures."""

    seed: int
    quick: bool
    task: Task
    weights: dict[str, np.ndarray]
    metrics: dict[str, float]

    @property
    def sizes(self) -> list[int]:
        """Layer sizes [n0, n1, n2]."""
        return list(self.task.sizes)

    def phi(self, u: np.ndarray) -> np.ndarray:
        """The circuit's rate function φ (dimensionless rate; × 1000 Hz as a spike rate)."""
        return self.task.params.phi_numpy(u)


@dataclass
class FrozenRun:
    """What one frozen presentation of ``n`` stimuli measured (settled window of each stimulus).

    ``means``: window means per stimulus, (n, cells), of ``vA``, ``vA_td``, ``vA_int`` (hidden
    apical potential and its top-down and interneuron terms), ``u1`` (hidden soma), ``u2``
    (output soma), ``uI`` (interneuron soma); dimensionless potentials. ``counts``: spikes per
    stimulus and cell in the window (mean over trials), by group (``layer1``, ``layer2``,
    ``inter1``).
    ``apical_trials``: the window means of ``vA`` per trial, (trials, n, cells).
    ``first``: the raw monitors of the first compiled run (for the recording).
    """

    n: int
    means: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    apical_trials: np.ndarray
    first: RunResult
    first_n: int
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def window_s(self) -> float:
        """Length of the measuring window of each stimulus (s)."""
        return (STIMULUS_MS - WINDOW_START_MS) / 1000.0

    def spike_rates_hz(self, group: str) -> np.ndarray:
        """Spike rate per stimulus and cell in the window (Hz)."""
        return self.counts[group] / self.window_s


# ------------------------------------------------------------------------------ training
def _run_config(seed: int, settings: ExperimentSettings) -> RunConfig:
    return RunConfig(
        protocol=FeedbackCancellation.name,
        circuit=CIRCUIT,
        dataset=DATASET,
        device=settings.device,
        readout="spiking",
        seed=seed,
    )


def _task(seed: int, settings: ExperimentSettings) -> Task:
    """The protocol's ``teacher`` preset with the experiments' sizes, chunking and stages."""
    tables = preset_tables(DATASET)
    cfg = FeedbackCancellationConfig(
        **{
            **tables["protocol"],
            "stage": "supervised",
            "dt_ms": DT_MS,
            "pattern_ms": PATTERN_MS,
            "learning_lag_ms": LAG_MS,
            "patterns_per_run": TRAIN_PATTERNS_PER_RUN,
            "shallow": False,
            "train_eval": False,
            "backprop_epochs": 0,
        }
    )
    table = FeedbackCancellation().circuit_table(CIRCUIT)
    circuit = table(**{**tables["circuit"], "sizes": list(SIZES)})
    return Task(_run_config(seed, settings), cfg, circuit)


def microcircuit() -> Any:
    """The registered microcircuit."""
    return registered_circuit(CIRCUIT)


def _shared(settings: ExperimentSettings, key: str, make: Callable[[], Any]) -> Any:
    full = f"{FAMILY}/{key}"
    if full not in settings.shared:
        settings.shared[full] = make()
    return settings.shared[full]


def _training_circuit(settings: ExperimentSettings, task: Task) -> TrainingCircuit:
    """The protocol's own compiled build (one per device, shared by all seeds: weights and data
    go in as run values)."""
    run = _run_config(0, settings)
    shared = _shared(settings, f"train-sim/{settings.device}", lambda: training_circuit(run, task))
    return TrainingCircuit(shared.sim, task, shared.readout, shared.keys)


def trained_microcircuit(
    seed: int,
    settings: ExperimentSettings,
    progress: Callable[[str], None] | None = None,
) -> TrainedMicrocircuit:
    """The circuit of ``seed`` after self-predicting and supervised learning (trained once per
    seed, quick and device, then fetched from ``settings.shared``)."""
    key = f"seed={int(seed)}/quick={bool(settings.quick)}/device={settings.device}"
    full = f"{FAMILY}/{key}"
    if full in settings.shared:
        return settings.shared[full]
    say = progress or (lambda message: None)
    start = time.perf_counter()
    schedule = SCHEDULES[bool(settings.quick)]
    task = _task(seed, settings)
    tc = _training_circuit(settings, task)
    rng = np.random.default_rng([int(seed), 6_4_2])
    data, cfg, n = task.data, task.cfg, task.n_layers
    probe_x = data.x_test[:PROBE_PATTERNS]
    probe_y = data.y_test[:PROBE_PATTERNS]
    metrics: dict[str, float] = {}

    w0 = initial_weights(task, rng, "random")
    say(f"self-predicting learning, {schedule.self_predicting} patterns")
    eta_sp = (cfg.self_predicting_eta_ip, cfg.self_predicting_eta_pi)
    values = learning_values(task, w0, "spiking", forward=[0.0] * n, ip=eta_sp[0], pi=eta_sp[1])
    order = _orders(rng, len(data.x_train), schedule.self_predicting)
    values, _ = learning_pass(
        tc, values, data.x_train[order], None, nudge=0.0, seed=run_seed(seed, 65)
    )
    w_sp = task.circuit.named_weights_from_state(values, task.sizes, cfg.top_down)
    say(f"supervised learning, {schedule.supervised} patterns")
    eta_f = [eta * SUPERVISED_ETA_SCALE for eta in cfg.eta_forward]
    values = learning_values(task, w_sp, "spiking", forward=eta_f, ip=cfg.eta_ip, pi=cfg.eta_pi)
    order = _orders(rng, len(data.x_train), schedule.supervised)
    values, _ = learning_pass(
        tc, values, data.x_train[order], data.u_train[order],
        nudge=TEACHING_NUDGE, seed=run_seed(seed, 66),
    )  # fmt: skip
    w_end = task.circuit.named_weights_from_state(values, task.sizes, cfg.top_down)
    # checks on held-out inputs, plasticity off, after training (all on the frozen build, so
    # that the two compiled builds are swapped on the device once per seed, not per stage)
    for part, (label, weights) in enumerate(
        (("initial", w0), ("self_predicting", w_sp), ("trained", w_end)), start=1
    ):
        shell = TrainedMicrocircuit(int(seed), bool(settings.quick), task, weights, {})
        out = run_frozen(shell, probe_x, seed=run_seed(seed, 64, part), settings=settings)
        metrics[f"apical_rms_{label}"] = float(np.sqrt(np.mean(out.means["vA"] ** 2)))
        rates = task.params.phi_numpy(out.means["u2"])
        metrics[f"test_mse_{label}"] = float(np.mean(np.sum((rates - probe_y) ** 2, axis=1)))
    closed = task.circuit.self_predicting_weights(w_end, task.params, task.sizes)
    for name in ("WPI1", "WIP1"):
        metrics[f"cosine_{name}_closed_form"] = _cosine(w_end[name], closed[name])
    metrics.update(
        {
            "self_predicting_patterns": float(schedule.self_predicting),
            "supervised_patterns": float(schedule.supervised),
            "training_wall_seconds": time.perf_counter() - start,
        }
    )
    trained = TrainedMicrocircuit(int(seed), bool(settings.quick), task, w_end, metrics)
    settings.shared[full] = trained
    return trained


def _orders(rng: np.random.Generator, n_items: int, n: int) -> np.ndarray:
    reps = math.ceil(n / n_items)
    return np.concatenate([rng.permutation(n_items) for _ in range(reps)])[:n]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > 0 else float("nan")


# ------------------------------------------------------------------------------ frozen passes
def _frozen_record() -> dict[str, tuple[str, ...]]:
    return {HIDDEN: ("u", "vA", "vA_td", "vA_int"), INTER: ("uI",), OUTPUT: ("u",)}


def _frozen_timed(
    x: np.ndarray, targets: np.ndarray, nudge: float, n_active: int
) -> dict[str, np.ndarray]:
    """TimedArray values of one frozen run: stimuli one per STIMULUS_MS, padded with the last."""
    P = FROZEN_PATTERNS_PER_RUN
    xs = np.repeat(x[-1:], P, axis=0)
    xs[:n_active] = x
    us = np.repeat(targets[-1:], P, axis=0)
    us[:n_active] = targets
    active = (np.arange(P) < n_active).astype(float)
    return microcircuit().timed_values(
        xs, len(targets[0]), targets=us, nudge=nudge * active, plastic=0.0
    )


def _frozen_simulation(settings: ExperimentSettings, task: Task) -> Simulation:
    """The frozen passes' compiled build (one per device, shared by all seeds)."""

    def make() -> Simulation:
        sizes = list(task.sizes)
        init = _frozen_timed(
            np.zeros((1, sizes[0])), np.zeros((1, sizes[-1])), 0.0, FROZEN_PATTERNS_PER_RUN
        )

        structure = task.circuit.Structure(
            sizes, readout="spiking", record=_frozen_record(), record_dt_ms=RECORD_DT_MS,
            timed_dt_ms=STIMULUS_MS,
        )  # fmt: skip
        return Simulation(
            task.circuit.builder(structure, task.params, DT_MS),
            device=settings.device,
            duration_ms=FROZEN_PATTERNS_PER_RUN * STIMULUS_MS,
            dt_ms=DT_MS,
            initial_timed=init,
            label=f"{CIRCUIT}-experiments",
        )

    return _shared(settings, f"frozen-sim/{settings.device}", make)


def silenced(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Override removing the interneurons' output to the apical dendrite: W^PI = 0."""
    return {"WPI1": np.zeros_like(weights["WPI1"])}


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``n`` ≥ 2 items that moves every item."""
    if n < 2:
        raise NeurosimError(f"A permutation that moves every one of {n} item(s) does not exist.")
    while True:
        perm = rng.permutation(n)
        if np.all(perm != np.arange(n)):
            return perm


def scrambled(weights: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Override scrambling the pyramidal→interneuron weights: the rows of W^IP are permuted so
    that no interneuron keeps its own (interneuron i gets the input learned by interneuron π(i))."""
    w = np.asarray(weights["WIP1"])
    return {"WIP1": w[derangement(w.shape[0], rng)].copy()}


def _checked_inputs(
    trained: TrainedMicrocircuit,
    x: np.ndarray,
    targets: np.ndarray | None,
    nudge: float,
    overrides: Mapping[str, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Stimuli, targets (zeros where none) and the weights with ``overrides``, shapes checked."""
    sizes = trained.sizes
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != sizes[0] or len(x) == 0:
        raise NeurosimError(f"Stimuli must have shape (n ≥ 1, {sizes[0]}), got {x.shape}.")
    if targets is None:
        if nudge != 0.0:
            raise NeurosimError("Nudging the output needs target potentials.")
        targets = np.zeros((len(x), sizes[-1]))
    targets = np.asarray(targets, dtype=float)
    if targets.shape != (len(x), sizes[-1]):
        raise NeurosimError(
            f"Targets must have shape ({len(x)}, {sizes[-1]}) like the stimuli, got "
            f"{targets.shape}."
        )
    weights = dict(trained.weights)
    for name, m in (overrides or {}).items():
        if name not in weights or np.shape(m) != weights[name].shape:
            raise NeurosimError(
                f"Weight override {name!r} must replace one of {', '.join(sorted(weights))} "
                "with a matrix of the same shape."
            )
        weights[name] = np.asarray(m, dtype=float)
    return x, targets, weights


def run_frozen(
    trained: TrainedMicrocircuit,
    x: np.ndarray,
    *,
    seed: int,
    settings: ExperimentSettings,
    targets: np.ndarray | None = None,
    nudge: float = 0.0,
    overrides: Mapping[str, np.ndarray] | None = None,
    trials: int = 1,
) -> FrozenRun:
    """Present the stimuli ``x`` (n, n0) to ``trained`` with plasticity off, the output nudged
    by ``nudge`` (× g_som) toward the target potentials ``targets`` (n, n_out), and the weight
    matrices in ``overrides`` replacing the trained ones; window means and spike counts per
    stimulus (:class:`FrozenRun`), averaged over ``trials`` repetitions with fresh spike noise
    (a lab's trial average; the recording keeps the first trial)."""
    if trials < 1:
        raise NeurosimError(f"At least one trial is needed, got {trials}.")
    sizes = trained.sizes
    x, targets, weights = _checked_inputs(trained, x, targets, nudge, overrides)
    sim = _frozen_simulation(settings, trained.task)
    circuit = trained.task.circuit
    values = {
        **circuit.weight_values(circuit.Structure(sizes), weights),
        **circuit.eta_values(sizes),  # every learning rate 0: plasticity off
        **circuit.p_fail_values(sizes, 0.0),
    }
    P = FROZEN_PATTERNS_PER_RUN
    means: dict[str, list[np.ndarray]] = {k: [] for k in MEASURED}
    counts: dict[str, list[np.ndarray]] = {g: [] for g in (HIDDEN, OUTPUT, INTER)}
    apical: list[np.ndarray] = []
    first: RunResult | None = None
    first_n = 0
    for c, start in enumerate(range(0, len(x), P)):
        xs, us = x[start : start + P], targets[start : start + P]
        timed = _frozen_timed(xs, us, nudge, len(xs))
        chunk_means: dict[str, list[np.ndarray]] = {k: [] for k in MEASURED}
        chunk_counts: dict[str, list[np.ndarray]] = {g: [] for g in counts}
        for trial in range(trials):
            result = sim.run(values=values, timed=timed, seed=run_seed(seed, c, trial))
            if first is None:
                first, first_n = result, len(xs)
            for key, (group, var) in MEASURED.items():
                chunk_means[key].append(_window_means(result.monitors[group], var, len(xs)))
            for group in counts:
                chunk_counts[group].append(
                    _window_counts(result.monitors[f"spikes_{group}"], len(xs), _size(sizes, group))
                )
        apical.append(np.asarray(chunk_means["vA"]))
        for key, rows in chunk_means.items():
            means[key].append(np.mean(rows, axis=0))
        for group, rows in chunk_counts.items():
            counts[group].append(np.mean(rows, axis=0))
    assert first is not None
    return FrozenRun(
        n=len(x),
        means={k: np.concatenate(v) for k, v in means.items()},
        counts={k: np.concatenate(v) for k, v in counts.items()},
        apical_trials=np.concatenate(apical, axis=1),
        first=first,
        first_n=first_n,
        weights=weights,
    )


def _size(sizes: list[int], group: str) -> int:
    return sizes[2] if group in (OUTPUT, INTER) else sizes[1]


def _window_means(monitor: dict[str, np.ndarray], var: str, n: int) -> np.ndarray:
    """Mean of ``var`` over [WINDOW_START_MS, STIMULUS_MS) of each of the first n stimuli."""
    t_ms = monitor["t"] * 1000.0
    phase = np.mod(t_ms + 1e-6, STIMULUS_MS)
    index = np.floor((t_ms + 1e-6) / STIMULUS_MS).astype(int)
    rows = []
    for p in range(n):
        sel = (index == p) & (phase >= WINDOW_START_MS)
        rows.append(monitor[var][sel].mean(axis=0))
    return np.asarray(rows)


def _window_counts(spikes: dict[str, np.ndarray], n: int, cells: int) -> np.ndarray:
    """Spikes per cell in [WINDOW_START_MS, STIMULUS_MS) of each of the first n stimuli."""
    t_ms = spikes["t"] * 1000.0
    index = np.floor(t_ms / STIMULUS_MS).astype(int)
    keep = (np.mod(t_ms, STIMULUS_MS) >= WINDOW_START_MS) & (index < n)
    out = np.zeros((n, cells))
    np.add.at(out, (index[keep], spikes["i"][keep]), 1.0)
    return out


def recording(
    frozen: FrozenRun, name: str, annotations: Mapping[str, Any] | None = None
) -> SegmentRecord:
    """The virtual recording of the first compiled run of ``frozen`` (≤ 8 stimuli): the spike
    trains of the hidden and output pyramidal cells and of the interneurons, and the hidden
    cells' apical potential (dimensionless, sampled every RECORD_DT_MS) as an analog signal."""
    result, n = frozen.first, frozen.first_n
    t_stop = n * STIMULUS_MS / 1000.0
    sizes = [len(frozen.means["u1"][0]), len(frozen.means["u2"][0])]
    spikes: list[SpikeRecord] = []
    for group in (HIDDEN, OUTPUT, INTER):
        mon = result.monitors[f"spikes_{group}"]
        keep = mon["t"] < t_stop
        cells = sizes[0] if group == HIDDEN else sizes[1]
        for i in range(cells):
            times = np.sort(mon["t"][keep & (mon["i"] == i)])
            spikes.append(
                SpikeRecord(
                    f"{group}_{i}", times, 0.0, t_stop,
                    {"group": group, "cell_type": CELL_TYPES[group], "neuron": i},
                )
            )  # fmt: skip
    mon = result.monitors[HIDDEN]
    keep = mon["t"] < t_stop - 1e-9
    signals = [
        SignalRecord(
            "apical_potential_layer1", mon["vA"][keep], RECORD_DT_MS / 1000.0, 0.0,
            "dimensionless",
            {"description": "apical dendritic potential v_A of the hidden pyramidal cells",
             "channels": "hidden cell index"},
        ),
        SignalRecord(
            "apical_interneuron_term_layer1", mon["vA_int"][keep], RECORD_DT_MS / 1000.0, 0.0,
            "dimensionless",
            {"description": "the interneurons' contribution W^PI r^I to v_A"},
        ),
    ]  # fmt: skip
    notes = {
        "stimuli": n,
        "stimulus_ms": STIMULUS_MS,
        "window_start_ms": WINDOW_START_MS,
        "plasticity": "off",
        "potential_units": "dimensionless model potential",
        **dict(annotations or {}),
    }
    return SegmentRecord(name, spikes, signals, notes)


# ------------------------------------------------------------------------------ shared stimuli
#: the experiments' stimuli: held-out test inputs after the probe inputs
STIMULI = 8
#: repetitions of every stimulus with fresh spike noise (trial average), default and quick. The
#: spike noise left in a 60 ms window mean of v_A is ~0.4 (dimensionless) in one trial, as large
#: as the apical signals themselves (~0.1-0.5): mean |v_A| carries a noise floor ∝ 1/√trials,
#: lower with the interneurons silenced (half the spiking inputs), see noise_corrected_rms
TRIALS = {False: 12, True: 2}


def stimuli(trained: TrainedMicrocircuit, n: int = STIMULI) -> np.ndarray:
    """``n`` held-out test inputs (not the probe inputs used to check training)."""
    x = trained.task.data.x_test[PROBE_PATTERNS : PROBE_PATTERNS + n]
    if len(x) < n:
        raise NeurosimError(f"The test set holds fewer than {PROBE_PATTERNS + n} inputs.")
    return x


def predicted(trained: TrainedMicrocircuit, settings: ExperimentSettings) -> FrozenRun:
    """The intact circuit on :func:`stimuli` without a teaching signal (nudging off): the
    predicted-stimulus condition, whose output potentials are the circuit's own prediction.
    Kept in ``settings.shared`` so that the experiments of one seed measure it once."""
    key = f"predicted/seed={trained.seed}/quick={trained.quick}/device={settings.device}"
    return _shared(
        settings,
        key,
        lambda: run_frozen(
            trained,
            stimuli(trained),
            seed=run_seed(trained.seed, 70),
            settings=settings,
            trials=TRIALS[trained.quick],
        ),
    )


def error_directions(trained: TrainedMicrocircuit, n: int) -> np.ndarray:
    """Fixed random unit vectors (n, n_out) of ±1/√n_out: the directions in which the teaching
    targets are moved away from the circuit's prediction (one per stimulus, per seed)."""
    rng = np.random.default_rng([trained.seed, 71])
    n_out = trained.sizes[-1]
    return rng.choice([-1.0, 1.0], size=(n, n_out)) / math.sqrt(n_out)


def mean_abs_apical(frozen: FrozenRun) -> float:
    """Mean over stimuli and hidden cells of |v_A| (window and trial average; dimensionless)."""
    return float(np.mean(np.abs(frozen.means["vA"])))


def noise_corrected_rms(frozen: FrozenRun) -> float:
    """RMS over stimuli and hidden cells of the trial-averaged v_A with the spike noise removed:
    √(mean over distinct trial pairs t ≠ s of v_t·v_s), unbiased for the squared mean potential
    because the noise of different trials is independent (0 where the estimate is negative; nan
    with one trial). A cross-validated amplitude, as for split-half reliability in a lab."""
    v = frozen.apical_trials
    t = v.shape[0]
    if t < 2:
        return float("nan")
    total = v.sum(axis=0)
    cross = (total**2 - (v**2).sum(axis=0)) / (t * (t - 1))
    return float(np.sqrt(max(float(np.mean(cross)), 0.0)))

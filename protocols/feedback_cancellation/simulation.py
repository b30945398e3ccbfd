"""The one compiled build of the training stages and the passes run on it.

Every run of the self-predicting and supervised stages (training chunk, test pass, shallow
learner, self-predicting chunk) is one run of ONE compiled build of ``patterns_per_run``
patterns: weights and state flow between runs through the circuit's ``state_keys``; a last,
shorter chunk is padded with patterns that have nudging and plasticity off.

Batch mode (``circuit.batch`` = B, supervised stage): a run presents ⌈P/B⌉ presentations of B
examples side by side (:func:`neurosim.batch.batch_rows`; example k·B + b is copy b's in
presentation k), the copies sharing their weights (mini-batch learning,
``circuits/microcircuit.py``); a learning pass takes whole mini-batches, a pass without learning
any number of examples (the copies of a padded presentation see the last example again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurosim.batch import batch_rows, unbatch_rows
from neurosim.config import RunConfig
from neurosim.engine import RunResult, Simulation
from neurosim.errors import ConfigError
from neurosim.seeding import run_seed
from neurosim.spike_sample import sampled_cells
from protocols.feedback_cancellation.spikes import group_sizes
from protocols.feedback_cancellation.task import Task, gate_rows


@dataclass
class TrainingCircuit:
    """A task's compiled build, its read-out and carried state keys, and the runs made on it."""

    sim: Simulation
    task: Task
    readout: str
    keys: tuple[str, ...]
    runs: int = 0
    #: spiking read-out: the first cells per group whose spike trains the recording keeps
    spike_cells: dict[str, int] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        """Examples side by side per presentation (1: one at a time)."""
        return self.task.batch

    @property
    def capacity(self) -> int:
        """Examples per run: P, or ⌈P/B⌉ presentations of B in batch mode."""
        return self.task.presentations * self.task.batch


def training_circuit(run: RunConfig, task: Task) -> TrainingCircuit:
    """The training stages' circuit for ``task``: one build of P patterns, compiled once and
    re-run per chunk, recording u, vA and uI at each pattern's end (B copies of the circuit side
    by side in batch mode), and with the spiking read-out the spikes of every cell. The
    recording's sample of spike trains (:mod:`neurosim.spike_sample`) is cut from those: this
    build is shared with the comparisons and the virtual experiments, which read every cell's
    spikes, and a second build of sampled monitors would cost a compilation to save nothing
    measurable (benchmarks/README.md, bench_spike_sample.py)."""
    cfg, sizes, P, circuit = task.cfg, task.sizes, task.presentations, task.circuit
    B = task.batch
    readout = run.readout or "rate"
    record: dict[str, tuple[str, ...]] = {}
    for k in range(1, task.n_layers):
        record[f"layer{k}"] = ("u", "vA")
        record[f"inter{k}"] = ("uI",)
    record[f"layer{task.n_layers}"] = ("u",)
    timed_dt = {"inputs": cfg.pattern_ms, "targets": cfg.pattern_ms, "nudge": cfg.pattern_ms}
    gate, gate_dt = gate_rows(P, np.ones(P), cfg.pattern_ms, cfg.learning_lag_ms, cfg.dt_ms)
    timed_dt["plastic"] = gate_dt
    init = circuit.timed_values(np.zeros((P, sizes[0] * B)), sizes[-1] * B, plastic=gate)
    init["nudge"] = np.zeros(P)
    structure = circuit.Structure(
        sizes, readout=readout, p_fail=cfg.p_fail, topdown=cfg.top_down, record=record,
        record_dt_ms=cfg.pattern_ms, timed_dt_ms=timed_dt, batch=B, population=task.population,
    )  # fmt: skip
    sim = Simulation(
        circuit.builder(structure, task.params, cfg.dt_ms),
        device=run.device,
        duration_ms=P * cfg.pattern_ms,
        dt_ms=cfg.dt_ms,
        initial_timed=init,
        label=f"{circuit.name}-{readout}",
    )
    keys = circuit.state_keys(
        sizes, topdown=cfg.top_down, readout=readout, neuron=task.params.neuron,
        population=task.population,
    )  # fmt: skip
    cells = sampled_cells(cfg, group_sizes(sizes)) if readout == "spiking" else {}
    return TrainingCircuit(sim, task, readout, keys, spike_cells=cells)


def etas(task: Task, *, forward: list[float], ip: float, pi: float) -> dict[str, float]:
    """Run values of every learning rate: ``forward`` one per W_k, ``ip``/``pi`` the lateral
    rules, B at ``eta_topdown`` when it is learned."""
    out = task.circuit.eta_values(task.sizes, topdown=task.cfg.top_down, IP=ip, PI=pi, B=0.0)
    for k in range(1, task.n_layers + 1):
        out[f"W{k}.eta"] = forward[k - 1]
    if task.cfg.top_down == "learned":
        for k in range(1, task.n_layers):
            out[f"B{k}.eta"] = task.cfg.eta_topdown
    return out


def frozen_etas(task: Task) -> dict[str, float]:
    """Every learning rate 0."""
    return dict.fromkeys(etas(task, forward=[0.0] * task.n_layers, ip=0.0, pi=0.0), 0.0)


def start_values(task: Task, w: dict[str, np.ndarray], readout: str) -> dict[str, Any]:
    """Weights, release failure and noise; state not given starts at the compiled defaults
    (0: rest, empty low-pass filters)."""
    circuit = task.circuit
    values: dict[str, Any] = dict(circuit.weight_values(_structure(task), w))
    if readout == "spiking":
        values.update(
            circuit.p_fail_values(task.sizes, task.cfg.p_fail, task.cfg.top_down, task.population)
        )
    if task.params.sigma > 0:
        for k in range(1, task.n_layers):
            values[f"layer{k}.sigma"] = task.params.sigma
    return values


def _structure(task: Task) -> Any:
    return task.circuit.Structure(task.sizes, topdown=task.cfg.top_down, batch=task.batch)


def learning_values(
    task: Task, weights: dict[str, np.ndarray], readout: str, *, forward: list[float],
    ip: float, pi: float,
) -> dict[str, Any]:  # fmt: skip
    """The run values that start learning from ``weights``: weights, release failure, noise and
    the learning rates, for :func:`learning_pass`."""
    return {
        **start_values(task, weights, readout),
        **etas(task, forward=list(forward), ip=ip, pi=pi),
    }


def chunk_timed(
    task: Task, x: np.ndarray, u: np.ndarray | None, nudge: float, learn: bool
) -> tuple[dict[str, np.ndarray], int]:
    """TimedArray values for ≤ P patterns, padded to P (padding: nudge and plasticity off); in
    batch mode ⌈P/B⌉ presentations of B, where learning takes whole mini-batches."""
    cfg, P, B = task.cfg, task.presentations, task.batch
    n = len(x)
    if learn and n % B:
        raise ValueError(f"learning takes whole mini-batches: {n} examples, batch {B}")
    active = np.zeros(P)
    active[: -(-n // B)] = 1.0
    xs = np.zeros((P * B, task.sizes[0]))
    xs[:n] = x
    xs[n:] = x[-1]
    us = np.zeros((P * B, task.sizes[-1]))
    if u is not None:
        us[:n] = u
        us[n:] = u[-1]
    gate, _ = gate_rows(P, active, cfg.pattern_ms, cfg.learning_lag_ms, cfg.dt_ms)
    if not learn:
        gate[:] = 0.0
    if B > 1:
        xs, us = batch_rows(xs, B), batch_rows(us, B)
    tv = task.circuit.timed_values(
        xs, task.sizes[-1] * B, targets=us, nudge=nudge * active, plastic=gate
    )
    return tv, n


def pattern_ends(result: RunResult, group: str, var: str, n: int, batch: int = 1) -> np.ndarray:
    """``var`` of ``group`` at the end of each of the first ``n`` patterns (n, cells).

    The monitor samples at t = 0, T, 2T, ...: sample k+1 is the end of pattern k; the end of
    the last pattern is the run's final state (for ``u``/``uI``) — for other variables the
    last pattern is left out. ``batch``: B examples per presentation, side by side.
    """
    samples = result.monitors[group][var][1:]
    key = f"{group}.{var}"
    if key in result.state:
        samples = np.concatenate([samples, result.state[key][None, :]], axis=0)
    return unbatch_rows(samples, batch)[:n] if batch > 1 else samples[:n]


def _collect_ends(  # noqa: ANN202
    outs: dict[str, list[np.ndarray]], result: RunResult, n_layers: int, n: int, batch: int
):
    outs["out"].append(pattern_ends(result, f"layer{n_layers}", "u", n, batch))
    for k in range(1, n_layers):
        vA = pattern_ends(result, f"layer{k}", "vA", n, batch)
        outs[f"vA{k}"].append(vA[: min(n, len(vA))])
        outs[f"uI{k}"].append(pattern_ends(result, f"inter{k}", "uI", n, batch))
        outs[f"u{k}"].append(pattern_ends(result, f"layer{k}", "u", n, batch))


def run_pass(
    tc: TrainingCircuit,
    values: dict[str, Any],
    x: np.ndarray,
    u: np.ndarray | None,
    *,
    nudge: float,
    learn: bool,
    seed: int,
    trace: dict[str, Callable[[dict[str, np.ndarray]], Any]] | None = None,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray], float, dict[str, list]]:
    """Run ``x`` through the circuit in chunks of P patterns; returns the carried values, the
    output/hidden/interneuron potentials at each pattern's end, the wall time, and ``trace``'s
    functions of the weights after each chunk. ``on_result(chunk, result)`` sees every run."""
    task = tc.task
    N = task.n_layers
    outs: dict[str, list[np.ndarray]] = {"out": []}
    for k in range(1, N):
        outs[f"vA{k}"], outs[f"uI{k}"], outs[f"u{k}"] = [], [], []
    traced: dict[str, list] = {name: [] for name in trace or {}}
    wall = 0.0
    size = tc.capacity
    for c, start in enumerate(range(0, len(x), size)):
        xs = x[start : start + size]
        us = None if u is None else u[start : start + size]
        tv, n = chunk_timed(task, xs, us, nudge, learn)
        result = tc.sim.run(values=values, timed=tv, seed=run_seed(seed, c), read=tc.keys)
        tc.runs += 1
        if on_result is not None:
            on_result(c, result)
        wall += result.wall_seconds
        if learn:
            values = {**values, **result.state}
        _collect_ends(outs, result, N, n, tc.batch)
        if trace:
            w = task.circuit.named_weights_from_state(result.state, task.sizes, task.cfg.top_down)
            for name, fn in trace.items():
                traced[name].append(fn(w))
    ends = {k: np.concatenate(v) for k, v in outs.items()}
    ends[f"u{N}"] = ends["out"]
    return values, ends, wall, traced


def learning_pass(
    tc: TrainingCircuit,
    values: dict[str, Any],
    x: np.ndarray,
    targets: np.ndarray | None,
    *,
    nudge: float,
    seed: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Present ``x`` (any number of inputs, in runs of P patterns) with plasticity on, the output
    nudged by ``nudge`` toward the target potentials ``targets`` (None: no target); the carried
    values (the start of the next pass) and the potentials at each pattern's end."""
    values, ends, _, _ = run_pass(tc, values, x, targets, nudge=nudge, learn=True, seed=seed)
    return values, ends


def frozen_pass(
    tc: TrainingCircuit, weights: dict[str, np.ndarray], x: np.ndarray, seed: int
) -> tuple[RunResult, int]:
    """Present up to P inputs ``x`` with ``weights``, every learning rate 0 and no nudging: the
    raw run result (all its monitors; :func:`pattern_ends` reads each pattern's end) and the
    number of inputs presented. For running a trained circuit on new inputs."""
    task = tc.task
    if tc.batch > 1:
        raise ConfigError("a frozen pass presents one example at a time: use circuit.batch = 1.")
    if len(x) > task.P:
        raise ConfigError(
            f"{len(x)} inputs do not fit one run of {task.P} patterns (patterns_per_run)."
        )
    values = {**start_values(task, weights, tc.readout), **frozen_etas(task)}
    timed, n = chunk_timed(task, x, None, nudge=0.0, learn=False)
    return tc.sim.run(values=values, timed=timed, seed=seed, read=tc.keys), n

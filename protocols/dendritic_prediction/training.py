"""The training runs: epochs of learning with the teacher on, then one test run with the teacher
and plasticity off.

Each epoch is one run of the same compiled build (``repetitions_per_epoch`` repetitions); weights
and state flow from one run into the next through ``run_args``, so a run of any number of epochs
compiles at most once, and not at all when the build is cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurosim.circuit import Circuit
from neurosim.engine import RunResult, Simulation
from neurosim.seeding import run_seed
from protocols.dendritic_prediction.config import DendriticPredictionConfig


@dataclass(frozen=True)
class Training:
    """The runs of one experiment and what the simulation reports about itself."""

    runs: tuple[RunResult, ...]
    test: RunResult
    final_w: np.ndarray
    wall_seconds: float
    compile_seconds: float
    compilations: int
    build_dir: Path | None


def learning_values(cfg: DendriticPredictionConfig, weights: Mapping[str, Any]) -> dict[str, Any]:
    """The run values of a learning run: initial weights, no trace, plasticity and teacher on."""
    (w,) = weights.values()
    return {
        **weights,
        "dendritic_synapses.Delta": np.zeros(len(w)),
        "dendritic_synapses.eta": cfg.eta,
        "dendritic_synapses.plastic": 1.0,
        "neuron.teacher_on": 1.0,
    }


#: what the test run changes: no learning, no teacher
TEST_VALUES = {
    "dendritic_synapses.eta": 0.0,
    "dendritic_synapses.plastic": 0.0,
    "neuron.teacher_on": 0.0,
}


def train(
    circuit: Circuit,
    structure: Any,
    params: Any,
    cfg: DendriticPredictionConfig,
    timed: Mapping[str, np.ndarray],
    w0: np.ndarray,
    *,
    epochs: int,
    device: str | None,
    seed: int,
    progress: Callable[[int, str], None],
) -> Training:
    """Build (or find) the circuit, run ``epochs`` learning runs and the test run."""
    progress(0, "building")
    sim = Simulation(
        circuit.builder(structure, params, cfg.dt_ms),
        device=device,
        duration_ms=cfg.repetitions_per_epoch * cfg.pattern_ms,
        dt_ms=cfg.dt_ms,
        initial_timed=timed,
        label=circuit.name,
        cuda_seed=run_seed(seed, 0),
    )
    state = tuple(circuit.state)
    values = learning_values(cfg, circuit.weight_values(structure, {"dendritic_synapses": w0}))
    runs: list[RunResult] = []
    for epoch in range(epochs):
        result = sim.run(values=values, timed=timed, seed=run_seed(seed, epoch + 1), read=state)
        values.update(result.state)
        runs.append(result)
        progress(1, f"epoch {epoch + 1}/{epochs}")
    test = sim.run(
        values={**values, **TEST_VALUES}, timed=timed, seed=run_seed(seed, epochs + 1), read=state
    )
    progress(1, "test")
    return Training(
        runs=tuple(runs),
        test=test,
        final_w=values["dendritic_synapses.w"],
        wall_seconds=sum(r.wall_seconds for r in (*runs, test)),
        compile_seconds=sim.compile_seconds,
        compilations=sim.compilations,
        build_dir=sim.build_dir,
    )

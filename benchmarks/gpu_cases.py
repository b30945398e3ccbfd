"""Small, self-contained runs of each circuit family, shared by the GPU benchmark and GPU tests.

A :class:`Case` is one compiled :class:`~neurosim.engine.Simulation` of a circuit family
(``urbanczik-senn``, ``microcircuit``, ``hopfield``) with random inputs and all plasticity on,
plus the values of its first run. :func:`train` runs it for several epochs the way the protocols
do: one standalone run per epoch, the final state of one run handed to the next through
``run_args``, so every epoch after the first re-runs the same build.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuits import hopfield as hp  # noqa: E402
from circuits import microcircuit as mc  # noqa: E402
from circuits import urbanczik_senn as us  # noqa: E402
from neurosim.engine import RunResult, Simulation  # noqa: E402
from neurosim.errors import NeurosimError  # noqa: E402

FAMILIES = ("urbanczik-senn", "microcircuit", "hopfield")

#: microcircuit: dt and pattern length of the digits protocol (100 ms = 1000 steps per example)
MC_DT, MC_PATTERN_MS = 0.1, 100.0
#: Hopfield/EP: dt = ε·τ = 0.5 ms, 20 free + 4 nudged steps per example at β = 0.5 (the paper's
#: one-hidden-layer MNIST settings; deeper nets use the same steps here so sizes compare)
EP_DT, EP_FREE, EP_NUDGED, EP_BETA = 0.5, 20, 4, 0.5
EP_RULES = ("two-phase",)


@dataclass
class Case:
    """One compiled circuit with the values of its first run."""

    family: str
    sizes: list[int]
    examples: int
    sim: Simulation
    values: dict[str, Any]
    timed: dict[str, np.ndarray]
    read: tuple[str, ...]
    weight_keys: tuple[str, ...]
    spike_monitors: tuple[str, ...] = field(default_factory=tuple)


def _inputs(rng: np.random.Generator, examples: int, n_in: int, n_out: int) -> tuple[Any, Any]:
    x = rng.random((examples, n_in))
    labels = rng.integers(0, n_out, examples)
    return x, labels


def microcircuit_case(
    sizes: Sequence[int], examples: int, *, device: str, readout: str = "rate", seed: int = 0
) -> Case:
    """The dendritic microcircuit (logistic φ), targets nudged in, forward/IP/PI rules on."""
    sizes = list(sizes)
    rng = np.random.default_rng(seed)
    x, labels = _inputs(rng, examples, sizes[0], sizes[-1])
    targets = np.full((examples, sizes[-1]), 0.1)
    targets[np.arange(examples), labels] = 0.8
    timed = mc.timed_values(x, sizes[-1], targets=targets, nudge=1.0, plastic=1.0)
    params = mc.MicrocircuitParams(phi="logistic")

    structure = mc.MicrocircuitStructure(
        sizes, readout=readout, record={}, timed_dt_ms=MC_PATTERN_MS
    )
    sim = Simulation(
        mc.CIRCUIT.builder(structure, params, MC_DT),
        device=device,
        duration_ms=examples * MC_PATTERN_MS,
        dt_ms=MC_DT,
        initial_timed=timed,
        label=f"gpu-microcircuit-{readout}",
    )
    weights = mc.random_weights(sizes, np.random.default_rng(seed))
    values = {**mc.weight_values(weights), **mc.eta_values(sizes, W=0.01, IP=0.01, PI=0.01)}
    read = mc.state_keys(sizes, readout=readout)
    spikes = tuple(n for n in sim._build.monitors if n.startswith("spikes_")) if sim._build else ()
    return Case(
        "microcircuit",
        sizes,
        examples,
        sim,
        values,
        timed,
        read,
        tuple(k for k in read if k.endswith(".w") and not k.startswith("B")),
        spikes,
    )


def hopfield_case(
    sizes: Sequence[int], examples: int, *, device: str, readout: str = "rate", seed: int = 0
) -> Case:
    """The layered Hopfield circuit of EP, two-phase rule, random inputs and one-hot targets."""
    from models import equilibrium_propagation as ep

    sizes = list(sizes)
    rng = np.random.default_rng(seed)
    x, labels = _inputs(rng, examples, sizes[0], sizes[-1])
    d = np.zeros((examples, sizes[-1]))
    d[np.arange(examples), labels] = 1.0
    example_ms = (EP_FREE + EP_NUDGED) * EP_DT
    timed, timed_dt, example_ms = hp.example_timed(
        x,
        d,
        EP_BETA,
        free_ms=EP_FREE * EP_DT,
        nudged_ms=EP_NUDGED * EP_DT,
        dt_ms=EP_DT,
        phases=2,
        names=hp.timed_names(EP_RULES, example_ms=example_ms),
    )

    def builder(tv: Any) -> Any:
        return hp.CIRCUIT.build(
            hp.HopfieldStructure(
                sizes=sizes,
                readout=readout,
                plasticity=EP_RULES,
                example_ms=example_ms,
                record={},
                timed_dt_ms=timed_dt,
            ),
            hp.HopfieldParams(),
            tv,
            dt_ms=EP_DT,
        )

    sim = Simulation(
        builder,
        device=device,
        duration_ms=hp.duration_ms(examples, example_ms, EP_DT),
        dt_ms=EP_DT,
        initial_timed=timed,
        label=f"gpu-hopfield-{readout}",
    )
    weights = {k: v.numpy() for k, v in ep.init_weights(sizes, seed=seed).items()}
    n_layers = len(sizes) - 1
    lr = [0.1 / 2**k for k in range(n_layers)]  # the paper's per-layer rates fall with depth
    values = {**hp.weight_values(weights, sizes), **hp.eta_values(sizes, two_phase=lr)}
    read = hp.state_keys(sizes, readout=readout)
    spikes = tuple(n for n in sim._build.monitors if n.startswith("spikes_")) if sim._build else ()
    weight_keys = tuple(k for k in read if k.split(".")[1] in ("w", "wb"))
    return Case("hopfield", sizes, examples, sim, values, timed, read, weight_keys, spikes)


def urbanczik_case(
    n_inputs: int, repetitions: int, *, device: str, readout: str = "spiking", seed: int = 0
) -> Case:
    """One Urbanczik-Senn neuron learning a frozen 200 ms Poisson pattern (10 Hz) from a teacher."""
    rng = np.random.default_rng(seed)
    dt, pattern_ms = 0.1, 200.0
    steps = int(round(pattern_ms / dt))
    stimulus = (rng.random((steps, n_inputs)) < 10.0 * dt / 1000.0).astype(float)
    t = np.arange(steps) * dt
    g_e = 0.5 * (1.0 + np.sin(2 * np.pi * t / pattern_ms))
    timed = {"stimulus": stimulus, "teacher_gE": g_e, "teacher_gI": 0.5 * (1.0 - 0.5 * g_e)}
    structure = us.UrbanczikSennStructure(
        n_inputs=n_inputs, readout=readout, record_dt_ms=1.0, weight_record_dt_ms=pattern_ms
    )
    sim = Simulation(
        us.CIRCUIT.builder(structure, us.UrbanczikSennParams(), dt),
        device=device,
        duration_ms=repetitions * pattern_ms,
        dt_ms=dt,
        initial_timed=timed,
        label=f"gpu-urbanczik-senn-{readout}",
    )
    values = {
        "dendritic_synapses.w": rng.normal(0.0, 0.1, n_inputs),
        "dendritic_synapses.Delta": np.zeros(n_inputs),
        "dendritic_synapses.eta": 0.05,
        "dendritic_synapses.plastic": 1.0,
        "neuron.teacher_on": 1.0,
    }
    spikes = ("output_spikes",) if readout == "spiking" else ()
    return Case(
        "urbanczik-senn",
        [n_inputs, 1],
        repetitions,
        sim,
        values,
        timed,
        us.STATE,
        ("dendritic_synapses.w",),
        spikes,
    )


def small_case(family: str, *, device: str, readout: str, seed: int = 0) -> Case:
    """The smallest meaningful case of a family (the GPU tests and the compile checks)."""
    if family == "urbanczik-senn":
        return urbanczik_case(50, 2, device=device, readout=readout, seed=seed)
    if family == "microcircuit":
        return microcircuit_case([64, 20, 10], 4, device=device, readout=readout, seed=seed)
    if family == "hopfield":
        return hopfield_case([64, 30, 10], 20, device=device, readout=readout, seed=seed)
    raise NeurosimError(f"Unknown circuit family {family!r}; expected one of {FAMILIES}.")


def train(case: Case, epochs: int, seeds: Sequence[int] | None = None) -> list[RunResult]:
    """Run ``epochs`` standalone runs, each starting from the state the previous one ended in."""
    seeds = list(range(epochs)) if seeds is None else list(seeds)
    if len(seeds) != epochs:
        raise NeurosimError(f"{epochs} epochs need {epochs} seeds, got {len(seeds)}.")
    values = dict(case.values)
    results = []
    for seed in seeds:
        result = case.sim.run(values=values, timed=case.timed, seed=seed, read=case.read)
        values.update(result.state)
        results.append(result)
    return results

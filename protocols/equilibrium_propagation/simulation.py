"""The compiled builds of a training :class:`~protocols.equilibrium_propagation.layout.Plan` and
their run-time values (learning rates, release failure, noise), and the bookkeeping of the builds
one protocol run made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import ms

from neurosim.diagnostics import firing_rates
from neurosim.engine import Simulation
from neurosim.spike_sample import sampled_spike_monitors
from protocols.equilibrium_propagation.layout import Plan, timed_layout


@dataclass
class Builds:
    """The simulations one protocol run built and how many runs they made."""

    sims: list[Simulation] = field(default_factory=list)
    runs: int = 0

    def add(self, sim: Simulation) -> Simulation:
        self.sims.append(sim)
        return sim

    def count(self, _chunk: int = 0, _result: Any = None) -> None:
        """One more simulation run (usable as an ``on_result`` callback)."""
        self.runs += 1

    def metrics(self) -> dict[str, Any]:
        """Compilations, their time and build folders per label, and the number of runs."""
        return {
            "compilations": sum(s.compilations for s in self.sims),
            "compile_seconds": sum(s.compile_seconds for s in self.sims),
            "builds": {
                s.label: {
                    "compilations": s.compilations,
                    "compile_seconds": s.compile_seconds,
                    "build_dir": str(s.build_dir) if s.build_dir else None,
                }
                for s in self.sims
            },
            "simulation_runs": self.runs,
        }


def simulation(
    circuit: Any,
    plan: Plan,
    params: Any,
    device: str,
    *,
    n_examples: int,
    record: Mapping[str, Sequence[str]],
    record_steps: int,
    label: str,
    weight_record_steps: int | None = None,
    p_fail: float = 0.0,
    cuda_seed: int | None = None,
    spike_cells: Mapping[str, int] | None = None,
) -> Simulation:
    """The build of ``plan`` for ``n_examples`` presentations per run (of ``plan.batch``
    examples each), recording ``record`` every
    ``record_steps`` steps (and the weights every ``weight_record_steps``); ``p_fail``: the
    compiled default of release failure (the run-time value is :func:`static_values`'s);
    ``spike_cells``: spiking read-out, record the spikes of only these first cells per group
    (:func:`neurosim.spike_sample.sampled_spike_monitors`; None: the circuit's monitors of
    every cell)."""
    dt = plan.dt_ms
    zeros, examples = np.zeros(n_examples), n_examples * plan.batch
    timed, timed_dt, example_ms = timed_layout(
        circuit, plan, np.zeros((examples, plan.sizes[0])),
        np.zeros((examples, plan.sizes[-1])), zeros,
    )  # fmt: skip
    structure = circuit.Structure(
        sizes=plan.sizes, readout=plan.readout, p_fail=p_fail, plasticity=plan.compiled,
        reciprocal=plan.reciprocal, example_ms=example_ms, noise=plan.variant == "stochastic",
        sigma=plan.sigma, record=dict(record), record_dt_ms=record_steps * dt,
        weight_record_dt_ms=weight_record_steps * dt if weight_record_steps else None,
        timed_dt_ms=timed_dt, examples=n_examples, batch=plan.batch, population=plan.population,
        learn_from=plan.learn_from,
    )  # fmt: skip
    kwargs = {} if cuda_seed is None else {"cuda_seed": cuda_seed}
    builder = circuit.builder(structure, params, dt)
    if spike_cells is not None:
        builder = sampled_spike_monitors(builder, spike_cells)
    return Simulation(
        builder,
        device=device,
        duration_ms=circuit.duration_ms(n_examples, example_ms, dt),
        dt_ms=dt,
        initial_timed=timed,
        label=label,
        **kwargs,
    )


def rule_values(circuit: Any, plan: Plan, scale: float) -> dict[str, float]:
    """Learning rates (× ``scale``) of the variant's rule (and of the backward weights of an untied
    circuit), a compiled rule that is not the variant's at 0, and the continual rule's switch."""
    rates = [v * scale for v in plan.rates]
    back = [v * scale for v in (plan.rates if plan.back_rates is None else plan.back_rates)]
    untied = plan.reciprocal == "untied"
    out: dict[str, float] = {}
    if "two-phase" in plan.compiled:
        active = plan.rule == "two-phase"
        out.update(circuit.eta_values(plan.sizes, two_phase=rates if active else 0.0))
        if untied:
            out.update(circuit.back_eta_values(plan.sizes, two_phase=back if active else 0.0))
    if "continual" in plan.compiled:
        active = plan.rule == "continual"
        out.update(circuit.eta_values(plan.sizes, continual=rates if active else 0.0))
        for k in range(1, plan.n_layers + 1):
            out[f"W{k}.centred"] = float(plan.centred and active)
        if untied:
            out.update(circuit.back_eta_values(plan.sizes, continual=back if active else 0.0))
    return out


def static_values(circuit: Any, plan: Plan, p_fail: float) -> dict[str, Any]:
    """Release failure of every projection (spiking read-out), the Langevin σ (stochastic) and
    the time constant τ_ν of the spike traces plasticity reads (``learn_from="spike-traces"``)."""
    out: dict[str, Any] = {}
    if plan.readout == "spiking":
        out.update(circuit.p_fail_values(plan.sizes, p_fail, plan.population))
    if plan.learn_from == "spike-traces":
        for k in range(plan.n_layers + 1):
            out[f"layer{k}.tau_nu"] = plan.trace_tau_ms * ms
    if plan.variant == "stochastic":
        for k in range(1, plan.n_layers + 1):
            out[f"layer{k}.sigma"] = plan.sigma
    return out


@dataclass
class Firing:
    """Spike counts of every cell over one pass of a spiking build (a pass starts at its chunk
    0), turned into rates in Hz and spikes per example (:func:`neurosim.diagnostics.
    firing_rates`)."""

    circuit: Any
    plan: Plan
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    runs: int = 0
    duration_s: float = 0.0

    def add(self, chunk: int, result: Any) -> None:
        """One run's counts (usable as an ``on_result`` callback); chunk 0 starts a new pass."""
        if chunk == 0:
            self.counts, self.runs = {}, 0
        counts = self.circuit.spike_counts(result.monitors, self.plan.sizes, self.plan.batch)
        for name, c in counts.items():
            self.counts[name] = self.counts.get(name, 0) + c
        self.runs += 1
        self.duration_s = float(result.simulated_seconds)

    def rates(self) -> dict[str, Any]:
        """The last pass's rates per layer (every presentation of it counted, a padded last one
        too)."""
        examples = self.runs * self.plan.P * self.plan.batch
        return firing_rates(self.counts, self.runs * self.duration_s, examples)


#: the Brian2 functions a neuron's rate text may call, as numpy functions
_NUMPY_FUNCTIONS = {"clip": np.clip, "exp": np.exp, "log": np.log, "tanh": np.tanh,
                    "sqrt": np.sqrt, "abs": np.abs}  # fmt: skip


@dataclass
class Session:
    """What the steps of one protocol run share: the run table, the settings, the circuit with
    its parameters, the training plan and the builds made so far."""

    run: Any
    task: Any
    circuit: Any
    params: Any
    plan: Plan
    builds: Builds = field(default_factory=Builds)

    def twin(self, dt_ms: float | None = None) -> Any:
        """The torch twin's parameters for this circuit (step ``dt_ms``, default the run's)."""
        from models import equilibrium_propagation as ep

        dt = self.task.cfg.dt_ms if dt_ms is None else dt_ms
        return ep.EPParameters.for_circuit(self.params, self.task.sizes, dt)

    def rates_of(self, s: np.ndarray) -> np.ndarray:
        """ρ(s) of the circuit's neuron model: its Brian2 text evaluated on numpy arrays (the
        regression read-out)."""
        rate = self.circuit.neuron_for(self.params).rate_of("s")
        namespace = {"__builtins__": {}, **_NUMPY_FUNCTIONS}
        return np.asarray(eval(rate, namespace, {"s": np.asarray(s, dtype=float)}), dtype=float)

    def weight_values(
        self, weights: Mapping[str, np.ndarray], batch: int = 1
    ) -> dict[str, np.ndarray]:
        """Named weights -> run values of the run's circuit (a build of ``batch`` copies)."""
        structure = self.circuit.Structure(sizes=self.plan.sizes, batch=batch)
        return self.circuit.weight_values(structure, weights)


def plan_of(task: Any) -> Plan:
    """The training plan of a run's settings (batch mode: the examples per run in presentations
    of B, rounded up)."""
    return Plan(
        sizes=tuple(task.sizes), variant=task.variant, free_steps=task.free_steps,
        nudged_steps=task.nudged_steps, average_steps=task.average_steps,
        dt_ms=task.cfg.dt_ms, beta=task.cfg.beta, rates=tuple(task.rates),
        readout=task.readout, centred=task.centred, sigma=task.sigma,
        P=-(-task.P // task.batch), batch=task.batch, population=task.population,
        learn_from=task.cfg.plasticity, trace_tau_ms=task.cfg.trace_tau_ms,
        trace_window_steps=task.cfg.trace_window_steps,
    )  # fmt: skip

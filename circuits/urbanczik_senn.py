"""Urbanczik & Senn (2014): a two-compartment neuron whose dendrite learns to predict its soma.

Soma:      dU/dt = −g_L U + g_D (V_w − U) + g_E(t)(E_E − U) + g_I(t)(E_I − U)
Dendrite:  V_w = Σ_i w_i PSP_i, PSP kernel (e^{−t/τ_L} − e^{−t/τ_s})/(τ_L − τ_s)
Spikes:    Poisson with rate φ(U) = φ_max/(1 + k e^{β(θ − U)}), refractory period
Plasticity: PI_i = [S(t) − φ(V*_w)] h(V*_w) PSP_i,  τ_Δ dΔ_i/dt = PI_i − Δ_i,  dw_i/dt = η Δ_i,
            V*_w = g_D/(g_L + g_D) V_w,  h = d ln φ/du.

Units as in the paper: dimensionless potentials, time in ms (so rates are in 1/ms). The soma and
the dendrite are state variables of one ``NeuronGroup`` (DESIGN.md §3). Inputs are a ``TimedArray``
of spike indicators over one pattern period, replayed every period; the teacher's conductances are
``TimedArray``s over the same period. The learning rate, the plasticity switch and the teacher
switch are ``(shared, constant)`` parameters, so they change between runs without recompiling.
The parameters are :class:`neurosim.parameters.urbanczik_senn.UrbanczikSennParams`.

Schedule: the dendritic sum is taken at the start of each step, before any state update, so the
recorded ``V_w`` at time t is Σ w PSP(t) where a presynaptic spike emitted at step t_k enters the
traces at t_k + dt (a one-step conduction delay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from brian2 import NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, ms

from neurosim.blocks import poisson_threshold
from neurosim.circuit import Circuit, Cost, dense_cost, param
from neurosim.engine import CircuitBuild
from neurosim.neurons import (
    double_exponential_on_spike,
    double_exponential_traces,
    sigmoid_log_derivative_expr,
    sigmoid_rate_expr,
)
from neurosim.parameters.urbanczik_senn import UrbanczikSennParams
from neurosim.registry import register_circuit
from neurosim.schedule import set_slot

NAME = "urbanczik-senn"
TIMED_INPUTS = ("stimulus", "teacher_gE", "teacher_gI")

#: the state carried from one run to the next (and returned at the end of every run)
STATE = (
    "neuron.U",
    "inputs.PSP_L",
    "inputs.PSP_s",
    "dendritic_synapses.w",
    "dendritic_synapses.Delta",
)

#: position within the replayed pattern, in whole steps (no floating-point modulo)
PHASE = "(timestep(t, dt) % pattern_steps)*dt"

__all__ = ["CIRCUIT", "NAME", "STATE", "UrbanczikSennCircuit", "UrbanczikSennParams"]


@dataclass(frozen=True)
class UrbanczikSennStructure:
    """What changes the generated code: sizes, read-out and the monitors' sampling."""

    n_inputs: int = param(200, "number of dendritic inputs", ge=1, le=100000)
    #: "spiking": the Poisson spike train S(t) in the learning rule (the paper); "rate": its
    #: expectation φ(U) (no spikes, deterministic learning)
    readout: Literal["spiking", "rate"] = "spiking"
    record_dt_ms: float = 1.0
    weight_record_dt_ms: float = 200.0

    def __post_init__(self) -> None:
        if self.readout not in ("spiking", "rate"):
            raise ValueError(f"readout must be 'spiking' or 'rate', got {self.readout!r}")


class UrbanczikSennCircuit(Circuit):
    """The neuron, its input population, the plastic dendritic synapses and the monitors."""

    name = NAME
    summary = "Urbanczik & Senn 2014 two-compartment neuron, plastic dendrite"
    Params = UrbanczikSennParams
    Structure = UrbanczikSennStructure
    configurable = ("n_inputs",)
    #: the state a protocol carries from one run into the next
    state = STATE
    # DESIGN.md §3: the dendritic sum first, then the synapses (which read it), then the neurons
    schedule = {
        "dendritic_sum": ("start", -10),
        "plasticity": ("groups", -1),
        "neuron": ("groups", 0),
        "inputs": ("groups", 0),
        "recording": ("end", 0),
    }

    def build(
        self,
        structure: UrbanczikSennStructure,
        params: UrbanczikSennParams,
        timed: Mapping[str, np.ndarray],
        *,
        dt_ms: float,
    ) -> CircuitBuild:
        """``timed`` holds ``stimulus`` (steps × n_inputs, 1 where an input spikes),
        ``teacher_gE`` and ``teacher_gI`` (steps), all sampled at ``dt_ms`` over one pattern."""
        arrays = _timed_arrays(structure, timed, dt_ms)
        namespace = _namespace(params, arrays)
        spiking = structure.readout == "spiking"
        inputs = _input_group(structure, namespace)
        neuron = _neuron(params, spiking, namespace)
        synapses = _dendritic_synapses(inputs, neuron, spiking, namespace)
        i = np.arange(structure.n_inputs, dtype=np.int32)
        j = np.zeros(structure.n_inputs, dtype=np.int32)
        synapses.connect(i=i, j=j)
        set_slot(synapses.summed_updaters["V_w_post"], self.slot("dendritic_sum"))
        set_slot(synapses.state_updater, self.slot("plasticity"))
        set_slot(neuron.state_updater, self.slot("neuron"))
        set_slot(inputs.state_updater, self.slot("inputs"))
        monitors = _monitors(structure, inputs, neuron, synapses, self.slot("recording"))
        return CircuitBuild(
            objects=[inputs, neuron, synapses, *monitors.values()],
            namespace={},
            timed_arrays=arrays,
            connectivity={"dendritic_synapses": (i, j)},
            monitors=monitors,
        )

    def weight_shapes(self, structure: UrbanczikSennStructure) -> dict[str, tuple[int, ...]]:
        """One weight vector, ``dendritic_synapses.w`` (one synapse per input)."""
        return {"dendritic_synapses": (structure.n_inputs,)}

    def timed_names(self, structure: UrbanczikSennStructure) -> tuple[str, ...]:
        return TIMED_INPUTS

    def cost(self, structure: UrbanczikSennStructure) -> Cost:
        """Inputs with two traces, one neuron, a weight and its low-pass per input."""
        n = structure.n_inputs
        return dense_cost({"inputs": (n, 2), "neuron": (1, 2)}, {"dendritic_synapses": (n, 1, 2)})


def _timed_arrays(
    structure: UrbanczikSennStructure, timed: Mapping[str, np.ndarray], dt_ms: float
) -> dict[str, TimedArray]:
    """The stimulus and the teacher's conductances as named ``TimedArray``s, shapes checked."""
    stimulus = np.asarray(timed["stimulus"], dtype=float)
    steps = stimulus.shape[0]
    if stimulus.shape[1] != structure.n_inputs:
        raise ValueError(f"stimulus has {stimulus.shape[1]} columns, expected {structure.n_inputs}")
    for name in ("teacher_gE", "teacher_gI"):
        if np.shape(timed[name]) != (steps,):
            raise ValueError(f"{name} must have shape ({steps},), got {np.shape(timed[name])}")
    return {
        "stimulus": TimedArray(stimulus, dt=dt_ms * ms, name="stimulus"),
        **{
            name: TimedArray(np.asarray(timed[name], dtype=float), dt=dt_ms * ms, name=name)
            for name in ("teacher_gE", "teacher_gI")
        },
    }


def _namespace(params: UrbanczikSennParams, arrays: Mapping[str, TimedArray]) -> dict[str, Any]:
    """The constants of the equations (compiled in) and the inputs."""
    return {
        **{f"p_{key}": value for key, value in asdict(params).items()},
        "phi_max": params.phi_max,
        "k_phi": params.k,
        "beta_phi": params.beta,
        "theta_phi": params.theta,
        "tau_L": params.tau_L * ms,
        "tau_s": params.tau_s * ms,
        "tau_delta": params.tau_delta * ms,
        "pattern_steps": arrays["stimulus"].values.shape[0],
        **arrays,
    }


def _input_group(structure: UrbanczikSennStructure, namespace: dict[str, Any]) -> NeuronGroup:
    """The inputs: each spikes where the replayed pattern says so, and carries its PSP traces."""
    return NeuronGroup(
        structure.n_inputs,
        double_exponential_traces("PSP", "tau_s", "tau_L"),
        threshold=f"stimulus({PHASE}, i) > 0.5",
        reset=double_exponential_on_spike("PSP"),
        method="exact",
        name="inputs",
        namespace=namespace,
    )


def _neuron(params: UrbanczikSennParams, spiking: bool, namespace: dict[str, Any]) -> NeuronGroup:
    """The two-compartment neuron: soma U driven by the dendrite V_w and the teacher."""
    return NeuronGroup(
        1,
        f"""
        dU/dt = (-p_g_L*U + p_g_D*(V_w - U) + g_E*(p_E_E - U) + g_I*(p_E_I - U))/ms : 1
        g_E = teacher_on*teacher_gE({PHASE}) : 1
        g_I = teacher_on*teacher_gI({PHASE}) : 1
        V_w : 1
        V_star = p_g_D/(p_g_L + p_g_D)*V_w : 1
        phi_U = {sigmoid_rate_expr("U")} : 1
        phi_star = {sigmoid_rate_expr("V_star")} : 1
        h_star = {sigmoid_log_derivative_expr("V_star")} : 1
        teacher_on : 1 (shared, constant)
        """,
        threshold=poisson_threshold("phi_U") if spiking else None,
        refractory=params.refractory * ms if spiking else False,
        method="exponential_euler",
        name="neuron",
        namespace=namespace,
    )


def _dendritic_synapses(
    inputs: NeuronGroup, neuron: NeuronGroup, spiking: bool, namespace: dict[str, Any]
) -> Synapses:
    """The plastic synapses: they sum V_w and learn by PI = [S(t) − φ(V*)] h(V*) PSP.

    PI below is the continuous part; with spikes, the S(t) term enters as a jump of Delta at each
    somatic spike (on_post); with the rate read-out, S(t) is replaced by φ(U)."""
    somatic_rate = "0" if spiking else "phi_U_post"
    return Synapses(
        inputs,
        neuron,
        f"""
        PI = ({somatic_rate} - phi_star_post)*h_star_post*PSP_pre : 1
        dDelta/dt = (PI - Delta)/tau_delta : 1 (clock-driven)
        dw/dt = eta*plastic*Delta/ms : 1 (clock-driven)
        V_w_post = w*PSP_pre : 1 (summed)
        eta : 1 (shared, constant)
        plastic : 1 (shared, constant)
        """,
        on_post="Delta += h_star_post*PSP_pre/(tau_delta/ms)" if spiking else None,
        method="euler",
        name="dendritic_synapses",
        namespace=namespace,
    )


def _monitors(
    structure: UrbanczikSennStructure,
    inputs: NeuronGroup,
    neuron: NeuronGroup,
    synapses: Synapses,
    slot: tuple[str, int],
) -> dict[str, Any]:
    """Soma and dendrite, weights, input spikes and (spiking read-out) output spikes."""
    when, order = slot
    monitors: dict[str, Any] = {
        "soma": StateMonitor(
            neuron,
            ["U", "V_w"],
            record=True,
            dt=structure.record_dt_ms * ms,
            when=when,
            order=order,
            name="soma_monitor",
        ),
        "weights": StateMonitor(
            synapses,
            "w",
            record=True,
            dt=structure.weight_record_dt_ms * ms,
            when=when,
            order=order,
            name="weight_monitor",
        ),
        "input_spikes": SpikeMonitor(inputs, name="input_spikes"),
    }
    if structure.readout == "spiking":
        monitors["output_spikes"] = SpikeMonitor(neuron, name="output_spikes")
    return monitors


CIRCUIT = register_circuit(UrbanczikSennCircuit())

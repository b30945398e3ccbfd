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

Schedule: the dendritic sum is taken at the start of each step, before any state update, so the
recorded ``V_w`` at time t is Σ w PSP(t) where a presynaptic spike emitted at step t_k enters the
traces at t_k + dt (a one-step conduction delay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from brian2 import NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, ms

from neurosim.blocks import poisson_threshold
from neurosim.engine import CircuitBuild
from neurosim.neurons import (
    double_exponential_on_spike,
    double_exponential_traces,
    sigmoid_log_derivative_expr,
    sigmoid_rate_expr,
)
from neurosim.registry import register_circuit

NAME = "urbanczik-senn"
TIMED_INPUTS = ("stimulus", "teacher_gE", "teacher_gI")


@dataclass(frozen=True)
class UrbanczikSennParams:
    """Parameters of DESIGN.md §4.1 (dimensionless; times in ms; rates in 1/ms)."""

    n_inputs: int = 200
    g_L: float = 0.1
    g_D: float = 2.0
    E_E: float = 14.0 / 3.0
    E_I: float = -1.0 / 3.0
    tau_L: float = 10.0
    tau_s: float = 3.0
    phi_max: float = 0.15
    k: float = 0.5
    beta: float = 5.0
    theta: float = 1.0
    refractory: float = 3.0
    tau_delta: float = 100.0


def build(
    params: UrbanczikSennParams,
    timed: Mapping[str, np.ndarray],
    *,
    dt_ms: float,
    readout: str = "spiking",
    record_dt_ms: float = 1.0,
    weight_record_dt_ms: float = 200.0,
) -> CircuitBuild:
    """Create the neuron, its input population, the plastic dendritic synapses and the monitors.

    ``readout="spiking"`` uses the Poisson spike train S(t) in the learning rule (the paper);
    ``readout="rate"`` replaces S(t) by its expectation φ(U) (no spikes, deterministic learning).

    ``timed`` holds ``stimulus`` (steps × n_inputs, 1 where an input spikes), ``teacher_gE`` and
    ``teacher_gI`` (steps), all sampled at ``dt_ms`` over one pattern period.
    """
    if readout not in ("spiking", "rate"):
        raise ValueError(f"readout must be 'spiking' or 'rate', got {readout!r}")
    spiking = readout == "spiking"
    stimulus = np.asarray(timed["stimulus"], dtype=float)
    steps = stimulus.shape[0]
    if stimulus.shape[1] != params.n_inputs:
        raise ValueError(f"stimulus has {stimulus.shape[1]} columns, expected {params.n_inputs}")
    for name in ("teacher_gE", "teacher_gI"):
        if np.shape(timed[name]) != (steps,):
            raise ValueError(f"{name} must have shape ({steps},), got {np.shape(timed[name])}")
    stim_ta = TimedArray(stimulus, dt=dt_ms * ms, name="stimulus")
    gE_ta = TimedArray(
        np.asarray(timed["teacher_gE"], dtype=float), dt=dt_ms * ms, name="teacher_gE"
    )
    gI_ta = TimedArray(
        np.asarray(timed["teacher_gI"], dtype=float), dt=dt_ms * ms, name="teacher_gI"
    )

    namespace = {
        **{f"p_{key}": value for key, value in asdict(params).items() if key != "n_inputs"},
        "phi_max": params.phi_max,
        "k_phi": params.k,
        "beta_phi": params.beta,
        "theta_phi": params.theta,
        "tau_L": params.tau_L * ms,
        "tau_s": params.tau_s * ms,
        "tau_delta": params.tau_delta * ms,
        "pattern_steps": steps,
        "stimulus": stim_ta,
        "teacher_gE": gE_ta,
        "teacher_gI": gI_ta,
    }
    # position within the replayed pattern, in whole steps (no floating-point modulo)
    phase = "(timestep(t, dt) % pattern_steps)*dt"

    inputs = NeuronGroup(
        params.n_inputs,
        double_exponential_traces("PSP", "tau_s", "tau_L"),
        threshold=f"stimulus({phase}, i) > 0.5",
        reset=double_exponential_on_spike("PSP"),
        method="exact",
        name="inputs",
        namespace=namespace,
    )
    neuron = NeuronGroup(
        1,
        f"""
        dU/dt = (-p_g_L*U + p_g_D*(V_w - U) + g_E*(p_E_E - U) + g_I*(p_E_I - U))/ms : 1
        g_E = teacher_on*teacher_gE({phase}) : 1
        g_I = teacher_on*teacher_gI({phase}) : 1
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
    # PI = [S(t) - phi(V*)] h(V*) PSP. PI below is its continuous part; with spikes, the S(t)
    # term enters as a jump of Delta at each somatic spike (on_post); with the rate read-out,
    # S(t) is replaced by phi(U).
    somatic_rate = "0" if spiking else "phi_U_post"
    synapses = Synapses(
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
    i = np.arange(params.n_inputs, dtype=np.int32)
    j = np.zeros(params.n_inputs, dtype=np.int32)
    synapses.connect(i=i, j=j)
    # schedule (DESIGN.md §3): dendritic sum first, then synapses, then the neurons
    synapses.summed_updaters["V_w_post"].when = "start"
    synapses.summed_updaters["V_w_post"].order = -10
    synapses.state_updater.order = -1
    neuron.state_updater.order = 0
    inputs.state_updater.order = 0

    state_mon = StateMonitor(
        neuron, ["U", "V_w"], record=True, dt=record_dt_ms * ms, when="end", name="soma_monitor"
    )
    weight_mon = StateMonitor(
        synapses, "w", record=True, dt=weight_record_dt_ms * ms, when="end", name="weight_monitor"
    )
    in_spikes = SpikeMonitor(inputs, name="input_spikes")
    objects = [inputs, neuron, synapses, state_mon, weight_mon, in_spikes]
    monitors = {"soma": state_mon, "weights": weight_mon, "input_spikes": in_spikes}
    if spiking:
        monitors["output_spikes"] = SpikeMonitor(neuron, name="output_spikes")
        objects.append(monitors["output_spikes"])
    return CircuitBuild(
        objects=objects,
        namespace={},
        timed_arrays={"stimulus": stim_ta, "teacher_gE": gE_ta, "teacher_gI": gI_ta},
        connectivity={"dendritic_synapses": (i, j)},
        monitors=monitors,
    )


#: the state carried from one run to the next (and returned at the end of every run)
STATE = (
    "neuron.U",
    "inputs.PSP_L",
    "inputs.PSP_s",
    "dendritic_synapses.w",
    "dendritic_synapses.Delta",
)

register_circuit(NAME, "Urbanczik & Senn 2014 two-compartment neuron, plastic dendrite", build)

"""The Urbanczik–Senn neuron's parameters (DESIGN.md §4.1), written once.

Dimensionless potentials, times in ms, rates in 1/ms, as in the paper. The circuit
(``circuits/urbanczik_senn.py``) compiles these values into its equations, and the ``[circuit]``
configuration table is derived from this record (:func:`neurosim.circuit.config_model`): same
names, defaults, descriptions and bounds, and the same cross-field check.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurosim.circuit import param


@dataclass(frozen=True)
class UrbanczikSennParams:
    """Soma, dendrite, rate function and plasticity of the two-compartment neuron."""

    g_L: float = param(0.1, "somatic leak conductance (1/ms)", gt=0)
    g_D: float = param(2.0, "dendro-somatic coupling conductance (1/ms)", gt=0)
    E_E: float = param(14.0 / 3.0, "excitatory reversal potential of the teacher")
    E_I: float = param(-1.0 / 3.0, "inhibitory reversal potential of the teacher")
    tau_L: float = param(10.0, "PSP decay time (ms)", gt=0)
    tau_s: float = param(3.0, "PSP rise time (ms)", gt=0)
    phi_max: float = param(0.15, "maximal rate (1/ms)", gt=0)
    k: float = param(0.5, "rate function: φ = φ_max/(1 + k·exp(β(θ − U)))", gt=0)
    beta: float = param(5.0, "rate function: steepness β", gt=0)
    theta: float = param(1.0, "rate function: threshold θ")
    refractory: float = param(3.0, "ms", ge=0)
    tau_delta: float = param(100.0, "low-pass of the plasticity induction (ms)", gt=0)

    def __post_init__(self) -> None:
        if self.tau_L == self.tau_s:
            raise ValueError("tau_L and tau_s must differ (the PSP kernel divides by τ_L − τ_s)")

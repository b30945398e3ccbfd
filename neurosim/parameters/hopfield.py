"""The physical parameters of the layered Hopfield circuit trained by Equilibrium Propagation
(DESIGN.md §4.3): read by :mod:`circuits.hopfield`, by its torch twin
(:meth:`models.equilibrium_propagation.EPParameters.for_circuit`) and, derived, by the ``[circuit]``
table of ``neurosim run equilibrium-propagation``."""

from __future__ import annotations

from dataclasses import dataclass

from neurosim.circuit import param


@dataclass(frozen=True)
class HopfieldParams:
    """Constants compiled into the circuit (times in ms)."""

    tau: float = param(1.0, "time constant of the dynamics (ms): the twin's unit of time", gt=0)
    tau_s: float = param(3.0, "synaptic trace of the spiking read-out (ms)", gt=0)
    rate_scale_hz: float = param(1000.0, "ρ = 1 as a spike rate (spiking read-out)", gt=0)

"""The physical parameters of the layered Hopfield circuit trained by Equilibrium Propagation
(DESIGN.md §4.3): read by :mod:`circuits.hopfield`, by its torch twin
(:meth:`models.equilibrium_propagation.EPParameters.for_circuit`) and, derived, by the ``[circuit]``
table of ``neurosim run equilibrium-propagation``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from neurosim.circuit import param


@dataclass(frozen=True)
class HopfieldParams:
    """Constants compiled into the circuit (times in ms)."""

    tau: float = param(1.0, "time constant of the dynamics (ms): the twin's unit of time", gt=0)
    tau_s: float = param(3.0, "synaptic trace of the spiking read-out (ms)", gt=0)
    max_rate_hz: float = param(
        1000.0, "spiking read-out: the rate (Hz) of a cell at ρ = 1, its maximum", gt=0
    )
    activation: Literal["hard_sigmoid", "smooth_sigmoid"] = param(
        "hard_sigmoid",
        "ρ of layers 1..N: clip(s, 0, 1) with projected Euler, or 1/(1 + e^(−4(s − 0.5))) "
        "(Laborieux et al. 2021) with plain Euler of ds/dt = −s + ρ'(s)·input",
    )

    #: former names of fields: a ``[circuit]`` table that uses one is refused, naming the new one
    renamed: ClassVar[dict[str, str]] = {"rate_scale_hz": "max_rate_hz"}

    @property
    def rate_scale_hz(self) -> float:
        """The former name of :attr:`max_rate_hz` (read-only; the microcircuit's record still
        calls its own maximum rate so)."""
        return self.max_rate_hz

    def __post_init__(self) -> None:
        if self.activation not in ("hard_sigmoid", "smooth_sigmoid"):
            raise ValueError(
                f"activation must be 'hard_sigmoid' or 'smooth_sigmoid', not {self.activation!r}."
            )

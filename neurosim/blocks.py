"""Building blocks every circuit shares, defined once (DESIGN.md §3): the spiking read-out
(an inhomogeneous Poisson threshold and exponentially filtered synaptic traces), release failure
(spiking dropout) and low-pass filtered plasticity terms.

Each returns Brian2 text, so a circuit's equations stay readable as equations; the strings are the
ones the circuits compiled before they shared them, so builds (and their cache keys) are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brian2 import Hz, ms

from neurosim.errors import ConfigError

#: the run-time release-failure probability of a projection (spiking dropout)
RELEASE_FAILURE = "p_fail : 1 (shared, constant)"


@dataclass(frozen=True)
class SpikingReadout:
    """Poisson spikes at rate r·``rate_scale_hz`` (r a dimensionless rate in [0, 1]), read through
    traces that decay with τ_s and jump by 1/(rate_scale·τ_s) per spike, so that a trace's mean
    is r."""

    rate_scale_hz: float
    tau_s_ms: float

    #: the threshold of a group whose rate variable is ``r``: one Bernoulli draw per step
    threshold: str = "rand() < r*rate_scale*dt"

    def namespace(self) -> dict[str, Any]:
        """The constants the threshold, traces and jumps use (``tau_s`` as a quantity)."""
        return {
            "tau_s": self.tau_s_ms * ms,
            "rate_scale": self.rate_scale_hz * Hz,
            "x_jump": 1.0 / (self.rate_scale_hz * self.tau_s_ms * 1e-3),
        }

    def check_dt(self, dt_ms: float) -> None:
        """At most one spike per step: rate_scale·dt ≤ 1."""
        if self.rate_scale_hz * dt_ms * 1e-3 > 1.0:
            raise ConfigError(
                f"rate_scale_hz·dt = {self.rate_scale_hz * dt_ms * 1e-3:g} > 1: the spiking "
                "read-out fires at most once per step; lower dt or rate_scale_hz."
            )


def trace(name: str = "x", tau: str = "tau_s") -> str:
    """A synaptic trace that decays between the spikes it receives (clock-driven, per synapse)."""
    return f"d{name}/dt = -{name}/{tau} : 1 (clock-driven)"


def transmit(name: str = "x") -> str:
    """A spike reaches trace ``name`` unless its release fails (probability ``p_fail``)."""
    return f"{name} += int(rand() > p_fail)*x_jump"


def low_pass(induction: str, pre: str, name: str = "Delta", tau: str = "tau_w") -> str:
    """A plasticity induction term (postsynaptic factor × presynaptic rate or trace ``pre``),
    low-pass filtered with τ before it changes a weight."""
    return f"d{name}/dt = (({induction})*{pre} - {name})/{tau} : 1 (clock-driven)"


def poisson_threshold(rate_per_ms: str) -> str:
    """Spiking read-out of a rate in 1/ms: one Bernoulli draw per step."""
    return f"rand() < ({rate_per_ms})*dt/ms"

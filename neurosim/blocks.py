"""Building blocks every circuit shares, defined once (DESIGN.md §3): the spiking read-out
(an inhomogeneous Poisson threshold and exponentially filtered synaptic traces), release failure
(spiking dropout), low-pass filtered plasticity terms, and the checked TimedArray inputs and
layer sizes of layered circuits.

Each returns Brian2 text, so a circuit's equations stay readable as equations; the strings are the
ones the circuits compiled before they shared them, so builds (and their cache keys) are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import Hz, TimedArray, ms

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


def layer_sizes(sizes: Sequence[int]) -> list[int]:
    """The layer sizes of a layered circuit, checked: an input and at least one more layer."""
    checked = [int(n) for n in sizes]
    if len(checked) < 2 or any(n < 1 for n in checked):
        raise ValueError(f"sizes must list at least two positive layer sizes, got {checked}")
    return checked


def timed_inputs(
    timed: Mapping[str, np.ndarray],
    names: Sequence[str],
    columns: Mapping[str, int],
    dt_ms: float,
    sample_dt_ms: Mapping[str, float],
) -> dict[str, TimedArray]:
    """The TimedArray inputs ``names`` of a build, checked before Brian2 sees them: none missing
    or unknown, ``columns[name]`` columns where given (one value per row otherwise), and each
    sampled every ``sample_dt_ms[name]`` (default dt), a whole number of steps. Each TimedArray is
    named after its input, so compiled runs receive its values by name."""
    unknown = set(timed) - set(names)
    if unknown:
        raise ValueError(
            f"unknown TimedArray input(s) for this build: {', '.join(sorted(unknown))} "
            f"(it takes {', '.join(names)})"
        )
    arrays = {}
    for name in names:
        if name not in timed:
            raise ValueError(f"missing the TimedArray input {name!r}")
        values = np.asarray(timed[name], dtype=float)
        if name in columns:
            if values.ndim != 2 or values.shape[1] != columns[name]:
                raise ValueError(
                    f"{name} must have shape (rows, {columns[name]}), got {values.shape}"
                )
        elif values.ndim != 1:
            raise ValueError(f"{name} must be one value per row, got shape {values.shape}")
        step = float(sample_dt_ms.get(name, dt_ms))
        n = round(step / dt_ms)
        if n < 1 or abs(n * dt_ms - step) > 1e-9 * max(1.0, step):
            raise ValueError(
                f"the sampling step of {name} ({step} ms) must be a positive multiple of dt "
                f"({dt_ms} ms)"
            )
        arrays[name] = TimedArray(values, dt=step * ms, name=name)
    return arrays


#: the read-outs every layered circuit offers
READOUTS = ("rate", "spiking")


def check_readout(readout: str, p_fail: float) -> None:
    """A read-out every layered circuit knows, and release failure only where spikes exist."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if not 0.0 <= p_fail <= 1.0:
        raise ValueError(f"p_fail must lie in [0, 1], got {p_fail}")
    if readout == "rate" and p_fail != 0.0:
        raise ValueError("release failure (p_fail > 0) needs the spiking read-out")


class LayeredStructure:
    """What the structure records of layered circuits (``sizes``, ``readout``) derive alike."""

    sizes: tuple[int, ...]
    readout: str

    @property
    def n_layers(self) -> int:
        """N: the index of the output layer (the layers above the input)."""
        return len(self.sizes) - 1

    @property
    def spiking(self) -> bool:
        """Whether cells fire Poisson spikes that reach their targets through traces."""
        return self.readout == "spiking"


def per_row(value: float | np.ndarray, rows: int) -> np.ndarray:
    """A TimedArray column: a constant repeated for every row, or the given values."""
    if np.ndim(value) == 0:
        return np.full(rows, float(value))
    return np.asarray(value, dtype=float)

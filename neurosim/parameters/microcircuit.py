"""The one parameter record of the dendritic cortical microcircuit (Sacramento et al. 2018;
DESIGN.md §4.2), read by the Brian2 circuit (:mod:`circuits.microcircuit`), its torch twin
(:mod:`models.dendritic_microcircuit`) and the derived ``[circuit]`` table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from neurosim.circuit import param
from neurosim.neurons import logistic, logistic_expr, soft_relu, soft_relu_expr

#: rate functions the twin knows; the Brian2 circuit writes the first two
RATE_FUNCTIONS = ("soft_relu", "logistic", "relu")
#: what a cell's rate is read from: its somatic potential u, or its prospective potential ŭ
NEURONS = ("instantaneous", "prospective")


@dataclass(frozen=True)
class MicrocircuitParams:
    """Dimensionless potentials, conductances in 1/ms, times in ms.

    ``phi`` is ``"soft_relu"`` (γ log(1 + e^{β(u − θ)})), ``"logistic"`` (1/(1 + e^{−u})) or, in
    the torch twin only, ``"relu"``. ``sigma`` scales the background noise of the hidden somata
    (a run-time parameter once the circuit is built with noise); ``max_rate_hz`` is the rate of a
    cell at φ = 1, its maximum (spiking read-out; formerly ``rate_scale_hz``, same default).

    ``neuron``: ``"instantaneous"`` cells (Sacramento et al. 2018) have the rate φ(u);
    ``"prospective"`` cells (Latent Equilibrium, Haider et al. 2021) have the rate φ(ŭ) of the
    prospective potential ŭ = u + τ du/dt, τ = 1/g_total (capacitance 1), discretised as
    ŭ(t) = u(t − dt) + (u(t) − u(t − dt))/(g_total dt), g_total the conductance of that step
    (:meth:`prospective_conductance`). Without noise this is the potential the cell's inputs of
    the previous step drive it to, so rates follow their inputs one step later instead of after
    several membrane time constants; fixed points do not change (there ŭ = u).
    """

    g_lk: float = param(0.1, "leak conductance (1/ms)", gt=0)
    g_B: float = param(1.0, "basal → soma conductance (1/ms)", gt=0)
    g_A: float = param(0.8, "apical → soma conductance (1/ms)", ge=0)
    g_D: float = param(1.0, "interneuron dendrite → soma conductance (1/ms)", gt=0)
    g_som: float = param(0.8, "somatic nudging conductance (1/ms)", ge=0)
    phi: Literal["soft_relu", "logistic", "relu"] = param("soft_relu", "rate function φ")
    gamma: float = param(0.1, "soft-ReLU scale γ", gt=0)
    beta: float = param(1.0, "soft-ReLU slope β", gt=0)
    theta: float = param(3.0, "soft-ReLU threshold θ")
    tau_in: float = param(3.0, "input filter (ms)", gt=0)
    tau_s: float = param(3.0, "synaptic trace of the spiking read-out (ms)", gt=0)
    tau_w: float = param(30.0, "low-pass of the plasticity induction (ms)", gt=0)
    sigma: float = param(0.0, "background noise of the hidden somata", ge=0)
    max_rate_hz: float = param(
        1000.0, "spiking read-out: the rate (Hz) of a cell at φ = 1, its maximum", gt=0
    )
    neuron: Literal["instantaneous", "prospective"] = param(
        "instantaneous", "rate from u, or from the prospective potential ŭ = u + τ du/dt"
    )

    #: former names of fields: a ``[circuit]`` table that uses one is refused, naming the new one
    renamed: ClassVar[dict[str, str]] = {"rate_scale_hz": "max_rate_hz"}

    @property
    def rate_scale_hz(self) -> float:
        """The former name of :attr:`max_rate_hz` (read-only, for Python readers)."""
        return self.max_rate_hz

    def __post_init__(self) -> None:
        if self.phi not in RATE_FUNCTIONS:
            raise ValueError(f"phi must be one of {RATE_FUNCTIONS}, not {self.phi!r}.")
        if self.neuron not in NEURONS:
            raise ValueError(f"neuron must be one of {NEURONS}, not {self.neuron!r}.")
        for name in ("g_B", "g_A", "g_D", "g_som", "sigma"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be non-negative, not {getattr(self, name)!r}.")
        if not self.g_lk > 0.0:
            raise ValueError(f"g_lk must be positive, not {self.g_lk!r}.")

    def phi_expr(self, u: str) -> str:
        """φ as Brian2 text."""
        if self.phi == "soft_relu":
            return soft_relu_expr(u, self.gamma, self.beta, self.theta)
        if self.phi == "logistic":
            return logistic_expr(u)
        raise ValueError(f"phi must be 'soft_relu' or 'logistic', got {self.phi!r}")

    def phi_numpy(self, u: np.ndarray) -> np.ndarray:
        """φ in numpy (the twin of :meth:`phi_expr`)."""
        if self.phi == "soft_relu":
            return soft_relu(u, self.gamma, self.beta, self.theta)
        if self.phi == "logistic":
            return logistic(u)
        raise ValueError(f"phi must be 'soft_relu' or 'logistic', got {self.phi!r}")

    def sensitive_range(self, fraction: float = 0.01) -> tuple[float, float]:
        """The potentials where φ' is at least ``fraction`` of its maximum (dead-unit diagnostic,
        :mod:`neurosim.diagnostics`): logistic φ' = φ(1 − φ) (maximum 1/4 at u = 0), a
        symmetric interval; soft-ReLU φ' = γβ·σ(β(u − θ)) (maximum γβ), above a threshold;
        ReLU: u > 0."""
        if self.phi == "logistic":
            lo = (1.0 - np.sqrt(1.0 - fraction)) / 2.0  # φ(1 − φ) = fraction/4
            edge = float(np.log((1.0 - lo) / lo))
            return -edge, edge
        if self.phi == "soft_relu":
            return self.theta + float(np.log(fraction / (1.0 - fraction))) / self.beta, np.inf
        return 0.0, np.inf

    @property
    def hidden_basal_gain(self) -> float:
        """v̂_B/vB of a hidden cell: g_B/(g_lk + g_B + g_A)."""
        return self.g_B / (self.g_lk + self.g_B + self.g_A)

    @property
    def output_basal_gain(self) -> float:
        """v̂_B/vB of an output cell: g_B/(g_lk + g_B)."""
        return self.g_B / (self.g_lk + self.g_B)

    @property
    def inter_dendrite_gain(self) -> float:
        """v̂_I/vI of an interneuron: g_D/(g_lk + g_D)."""
        return self.g_D / (self.g_lk + self.g_D)

    @property
    def prospective(self) -> bool:
        """Rates read from the prospective potential ŭ (``neuron == "prospective"``)."""
        return self.neuron == "prospective"

    def prospective_conductance(self, population: str, nudge: float = 0.0) -> float:
        """g_total = 1/τ of a ``"hidden"``, ``"output"`` (nudged by ``nudge`` × g_som) or
        ``"inter"`` cell: the rate at which its potential approaches its drive."""
        if population == "hidden":
            return self.g_lk + self.g_B + self.g_A
        if population == "output":
            return self.g_lk + self.g_B + self.g_som * nudge
        if population == "inter":
            return self.g_lk + self.g_D + self.g_som
        raise ValueError(f"population must be 'hidden', 'output' or 'inter', not {population!r}")

    def basal_gain(self, output: bool) -> float:
        """v̂_B/vB of an output (``output``) or hidden cell."""
        return self.output_basal_gain if output else self.hidden_basal_gain

    def self_predicting_factor(self, next_is_output: bool) -> float:
        """c in W^IP_k = c W_{k+1} of the self-predicting state (DESIGN.md §4.2)."""
        return self.basal_gain(next_is_output) / self.inter_dendrite_gain

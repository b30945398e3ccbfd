"""Neuron building blocks shared by the circuits: rate read-outs, Poisson spiking, synaptic traces.

Potentials are dimensionless and time is in ms, as in the papers (DESIGN.md §3 "Units"): an
equation ``du/dt = (...)/ms : 1`` reads exactly as the paper's ``du/dt = ...``. Every rate
function exists twice, as Brian2 expression text and as a numpy function, so that analysis and
reference solutions evaluate the same φ as the simulation.
"""

from __future__ import annotations

import numpy as np


def sigmoid_rate_expr(u: str, prefix: str = "") -> str:
    """Urbanczik & Senn 2014 rate φ(u) = φ_max / (1 + k e^{β(θ − u)}), in 1/ms (Brian2 text)."""
    p = prefix
    return f"{p}phi_max/(1 + {p}k_phi*exp({p}beta_phi*({p}theta_phi - ({u}))))"


def sigmoid_rate(u: np.ndarray, phi_max: float, k: float, beta: float, theta: float) -> np.ndarray:
    """numpy twin of :func:`sigmoid_rate_expr`."""
    return phi_max / (1.0 + k * np.exp(beta * (theta - np.asarray(u, dtype=float))))


def sigmoid_log_derivative_expr(u: str, prefix: str = "") -> str:
    """h(u) = d ln φ/du = β (1 − φ(u)/φ_max) for the sigmoid rate (Brian2 text)."""
    p = prefix
    return f"{p}beta_phi*(1 - ({sigmoid_rate_expr(u, prefix)})/{p}phi_max)"


def double_exponential_traces(name: str, tau_rise: str, tau_decay: str) -> str:
    """Equations of a difference-of-exponentials synaptic trace, normalised to unit area.

    Each presynaptic spike adds 1 to ``{name}_L`` and ``{name}_s`` (see
    :func:`double_exponential_on_spike`); ``{name}`` = (x_L − x_s)/(τ_L − τ_s) is then the
    kernel (e^{−t/τ_L} − e^{−t/τ_s})/(τ_L − τ_s) of Urbanczik & Senn, in 1/ms, whose integral over
    time (in ms) is 1.
    """
    return (
        f"d{name}_L/dt = -{name}_L/{tau_decay} : 1\n"
        f"d{name}_s/dt = -{name}_s/{tau_rise} : 1\n"
        f"{name} = ({name}_L - {name}_s)/(({tau_decay} - {tau_rise})/ms) : 1\n"
    )


def double_exponential_on_spike(name: str) -> str:
    """The reset code that adds one spike to a :func:`double_exponential_traces` trace."""
    return f"{name}_L += 1\n{name}_s += 1"


def double_exponential_kernel(t_ms: np.ndarray, tau_rise: float, tau_decay: float) -> np.ndarray:
    """The PSP kernel κ(t) = (e^{−t/τ_L} − e^{−t/τ_s})/(τ_L − τ_s) for t ≥ 0 (0 before), in 1/ms."""
    t = np.asarray(t_ms, dtype=float)
    k = (np.exp(-t / tau_decay) - np.exp(-t / tau_rise)) / (tau_decay - tau_rise)
    return np.where(t >= 0, k, 0.0)


# ---------------------------------------------------------------------------------------------
# Rate functions of the dendritic cortical microcircuit (DESIGN.md §4.2). The Brian2 texts inline
# their constants as literals, so a circuit needs no extra namespace entries for them.


def soft_relu_expr(u: str, gamma: float = 0.1, beta: float = 1.0, theta: float = 3.0) -> str:
    """Soft-ReLU φ(u) = γ log(1 + e^{β(u − θ)}) as Brian2 text, safe for any u.

    Written as γ (max(x, 0) + log1p(e^{−|x|})) with x = β(u − θ), which never overflows (the
    exponent is ≤ 0) and keeps full precision where φ is tiny.
    """
    x = f"({float(beta)!r}*(({u}) - {float(theta)!r}))"
    return f"{float(gamma)!r}*(({x} + abs({x}))/2 + log1p(exp(-abs({x}))))"


def soft_relu(
    u: np.ndarray, gamma: float = 0.1, beta: float = 1.0, theta: float = 3.0
) -> np.ndarray:
    """numpy twin of :func:`soft_relu_expr`."""
    x = beta * (np.asarray(u, dtype=float) - theta)
    return gamma * (np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x))))


def soft_relu_derivative(
    u: np.ndarray, gamma: float = 0.1, beta: float = 1.0, theta: float = 3.0
) -> np.ndarray:
    """dφ/du = γ β / (1 + e^{−β(u − θ)}) for :func:`soft_relu` (numpy)."""
    return gamma * beta * logistic(beta * (np.asarray(u, dtype=float) - theta))


def logistic_expr(u: str) -> str:
    """Logistic φ(u) = 1/(1 + e^{−u}) as Brian2 text (e^{−u} → ∞ gives 0, never NaN)."""
    return f"1/(1 + exp(-({u})))"


def logistic(u: np.ndarray) -> np.ndarray:
    """numpy twin of :func:`logistic_expr`, without overflow for large |u|."""
    u = np.asarray(u, dtype=float)
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def logistic_derivative(u: np.ndarray) -> np.ndarray:
    """dφ/du = φ(u)(1 − φ(u)) for :func:`logistic` (numpy)."""
    s = logistic(u)
    return s * (1.0 - s)

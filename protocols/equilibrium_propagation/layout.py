"""How examples are laid out in time and learned in one compiled build: the :class:`Plan` of a
training (variant, phases, rates, read-out) shared by the protocol and the virtual experiments,
and the TimedArray layouts of its variants."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.equilibrium_propagation.config import RULE_OF, example_steps


@dataclass(frozen=True)
class Plan:
    """One training's layout and rules (the structure of its build follows from it).

    ``variant``: ``two-phase`` (free, +β), ``symmetric`` (free, −β, +β), ``continual`` (free, +β,
    the continual rule), ``stochastic`` (free, −β, +β, time averages of the last
    ``average_steps`` states by the continual rule); phases in steps of ``dt_ms``; ``rates``: the
    variant's rule per layer; ``back_rates``: the backward weights' rates of an untied circuit
    (default ``rates``; 0 freezes them); ``rules``: the rules compiled in (default the variant's;
    a compiled rule that is not the variant's runs at rate 0); ``P``: presentations per run;
    ``batch``: examples per presentation, side by side in B copies of the circuit sharing their
    weights (mini-batch learning, two-phase rule; a run takes P·B examples); ``population``:
    spiking cells per unit (spiking read-out); ``learn_from``: what the two-phase rule reads,
    ``"rates"`` or ``"spike-traces"`` (traces of time constant ``trace_tau_ms``, products averaged
    over the last ``trace_window_steps`` of each phase; 0: half of ``nudged_steps``)."""

    sizes: tuple[int, ...]
    variant: str = "two-phase"
    free_steps: int = 20
    nudged_steps: int = 4
    average_steps: int = 1
    dt_ms: float = 0.5
    beta: float = 0.5
    rates: tuple[float, ...] = (0.1, 0.05)
    back_rates: tuple[float, ...] | None = None
    readout: str = "rate"
    reciprocal: str = "tied"
    rules: tuple[str, ...] | None = None
    centred: bool = False
    sigma: float = 0.0
    P: int = 50
    batch: int = 1
    population: int = 1
    learn_from: str = "rates"
    trace_tau_ms: float = 3.0
    trace_window_steps: int = 0

    @property
    def rule(self) -> str:
        """The circuit's rule behind the variant."""
        return RULE_OF[self.variant]

    @property
    def compiled(self) -> tuple[str, ...]:
        """The rules compiled into the build."""
        return self.rules if self.rules is not None else (self.rule,)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def example_steps(self) -> int:
        """Steps of one example: the free phase and one or two nudged phases."""
        return example_steps(self.variant, self.free_steps, self.nudged_steps)

    @property
    def unit_steps(self) -> int:
        """The TimedArray row of the phase signals, in steps (gcd of the phase lengths)."""
        return math.gcd(self.free_steps, self.nudged_steps)

    @property
    def window_ms(self) -> float | None:
        """Spike traces: the window of the trace products at the end of each phase (ms)."""
        if self.learn_from != "spike-traces":
            return None
        return self.window_steps * self.dt_ms

    @property
    def window_steps(self) -> int:
        """Spike traces: the steps of that window (``trace_window_steps``, or half the nudged
        phase: a window over the whole nudged phase, and so over the free phase's second half,
        reads the transients of the restart and of the nudging through the traces' lag, which
        biases the update, ``benchmarks/ep_spike_plasticity.py``)."""
        return self.trace_window_steps or max(1, self.nudged_steps // 2)

    def free_end_rows(self, n: int) -> np.ndarray:
        """Rows (of a recording every unit) at the end of the free phase of examples 0..n−1."""
        return (np.arange(n) * self.example_steps + self.free_steps) // self.unit_steps


def timed_layout(
    circuit: Any, plan: Plan, x: np.ndarray, d: np.ndarray, betas: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """The TimedArray values of P presentations for ``plan``'s build, their sampling steps and
    ``example_ms``: ``x``, ``d`` hold P·B examples (example k·B + b is copy b's in presentation
    k), ``betas`` one value per presentation."""
    if plan.batch > 1:
        x, d = circuit.batch_rows(x, plan.batch), circuit.batch_rows(d, plan.batch)
    names = circuit.timed_names(
        circuit.Structure(
            sizes=plan.sizes, plasticity=plan.compiled, example_ms=1.0, learn_from=plan.learn_from
        )
    )
    dt = plan.dt_ms
    if plan.variant == "stochastic":
        return averaged_timed(
            circuit, x, d, betas, free_steps=plan.free_steps, nudged_steps=plan.nudged_steps,
            average_steps=plan.average_steps, dt_ms=dt, names=names,
        )  # fmt: skip
    return circuit.example_timed(
        x, d, betas, free_ms=plan.free_steps * dt, nudged_ms=plan.nudged_steps * dt,
        dt_ms=dt, symmetric=plan.variant == "symmetric",
        phases=3 if plan.variant == "symmetric" else 2, names=names, window_ms=plan.window_ms,
    )  # fmt: skip


def averaged_timed(
    circuit: Any,
    inputs: np.ndarray,
    targets: np.ndarray,
    betas: np.ndarray,
    *,
    free_steps: int,
    nudged_steps: int,
    average_steps: int,
    dt_ms: float,
    names: Sequence[str],
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """The stochastic variant's layout: per example free (β = 0), −β, +β (``nudged_steps``
    each), β and the continual rule's gate ``plastic`` one row per step.

    The gain g_t = plastic_t/β_t of step t (t → t + 1; state a_t before it) makes the centred rule
    add g_t (a_{t+1} − a_t) = Σ_t a_t (g_{t−1} − g_t): g rises by G/m at each of the last m states
    of the −β phase and falls by G/m at each of the last m states of the +β phase (G = 1/2β,
    m = ``average_steps``), so the sum is G (mean_{+β window} a − mean_{−β window} a). With m = 1
    this is the circuit's symmetric ``example_timed`` layout. Returns the TimedArray values (one
    neutral row more for the run's extra step), their sampling steps, example_ms.
    """
    f, n, m = int(free_steps), int(nudged_steps), int(average_steps)
    if not 1 <= m <= n:
        raise ValueError(f"average_steps must lie between 1 and nudged_steps ({n}), got {m}")
    p = len(inputs)
    e = f + 2 * n
    t = np.arange(e)
    sign = np.where(t < f, 0.0, np.where(t < f + n, -1.0, 1.0))
    t_a, t_b = f + n - m + 1, f + 2 * n - m + 1
    ramp = np.zeros(e)  # g_t in units of G
    up = (t >= t_a) & (t < t_a + m)
    ramp[up] = (t[up] - t_a + 1) / m
    ramp[(t >= f + n) & (t < t_b)] = 1.0
    down = t >= t_b
    ramp[down] = 1.0 - (t[down] - t_b + 1) / m
    beta_rows, plastic_rows = [], []
    for b in np.asarray(betas, dtype=float):
        beta_rows.append(sign * b)
        # plastic = g·β(t) with g = ramp·G, G = 1/(2β): ±ramp/2 where β ≠ 0
        plastic_rows.append(sign * ramp * 0.5 * float(b != 0.0))
    timed = circuit.timed_values(
        inputs, targets.shape[1], targets=targets, beta=np.zeros(p), restart=np.ones(p)
    )
    timed["beta"] = np.concatenate([*beta_rows, [0.0]])
    timed["plastic"] = np.concatenate([*plastic_rows, [0.0]])
    timed = {name: timed[name] for name in names}
    example_ms = e * dt_ms
    steps = circuit.sampling_steps(example_ms, dt_ms)
    return timed, {name: steps[name] for name in names}, example_ms


def padded(x: np.ndarray, P: int) -> np.ndarray:
    """``x`` padded to P rows by repeating its last row."""
    return np.concatenate([x, np.repeat(x[-1:], P - len(x), axis=0)])

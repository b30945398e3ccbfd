"""Building blocks every circuit shares, defined once (DESIGN.md §3): the spiking read-out
(an inhomogeneous Poisson threshold and exponentially filtered synaptic traces), populations of
spiking cells per unit (DESIGN.md §4.8), release failure (spiking dropout), low-pass filtered
plasticity terms, and the checked TimedArray inputs and layer sizes of layered circuits.

Each returns Brian2 text, so a circuit's equations stay readable as equations; the strings are the
ones the circuits compiled before they shared them, so builds (and their cache keys) are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from brian2 import Hz, NeuronGroup, Synapses, TimedArray, ms

from neurosim.errors import ConfigError

#: the run-time release-failure probability of a projection (spiking dropout)
RELEASE_FAILURE = "p_fail : 1 (shared, constant)"


@dataclass(frozen=True)
class SpikingReadout:
    """Poisson spikes at rate r·``max_rate_hz`` (r a dimensionless rate in [0, 1], so
    ``max_rate_hz`` is the rate of a saturated cell), read through traces that decay with τ_s and
    jump by 1/(max_rate·τ_s) per spike, so that a trace's mean is r.

    The Brian2 names (``rate_scale``, ``x_jump``) are the ones circuits compiled before the
    parameter was called ``max_rate_hz``, so their builds are unchanged."""

    max_rate_hz: float
    tau_s_ms: float

    #: the threshold of a group whose rate variable is ``r``: one Bernoulli draw per step
    threshold: str = "rand() < r*rate_scale*dt"

    def namespace(self) -> dict[str, Any]:
        """The constants the threshold, traces and jumps use (``tau_s`` as a quantity)."""
        return {
            "tau_s": self.tau_s_ms * ms,
            "rate_scale": self.max_rate_hz * Hz,
            "x_jump": 1.0 / (self.max_rate_hz * self.tau_s_ms * 1e-3),
        }

    def check_dt(self, dt_ms: float) -> None:
        """At most one spike per step: max_rate·dt ≤ 1."""
        if self.max_rate_hz * dt_ms * 1e-3 > 1.0:
            raise ConfigError(
                f"the maximum rate × dt = {self.max_rate_hz * dt_ms * 1e-3:g} > 1: the spiking "
                "read-out fires at most once per step; lower dt or the maximum rate."
            )


@dataclass(frozen=True)
class PopulationParts:
    """The Brian2 objects of the populations of one group of units: the ``cells`` (n per unit,
    cell-major: cell m·units + u is cell m of unit u, so ``cells[:units]`` holds one cell per unit
    with the unit's index) and the ``pool`` (one synapse per cell, into its unit's trace)."""

    cells: NeuronGroup
    pool: Synapses
    units: int

    @property
    def first_cells(self) -> Any:
        """One cell of every unit (cell 0), indexed as the units: whose spike trains to record."""
        return self.cells[: self.units]


@dataclass(frozen=True)
class Population:
    """Every unit a population of ``n`` Poisson cells, each firing at the unit's rate r·max_rate
    (DESIGN.md §4.8); the unit's rate reaches its targets as the population's filtered activity.

    ``n = 1`` is the spiking read-out circuits had before populations: the unit is the cell and
    every synapse keeps its own trace (:func:`trace`, :func:`transmit`; a failure is drawn per
    spike and target synapse). ``n > 1`` keeps the cost linear in n: the n cells of a unit feed
    one trace ``X`` per unit (:attr:`unit_trace`) through one ``pool`` synapse per cell, which
    jumps by x_jump/n per transmitted spike, so that X has mean r and a variance n times smaller
    than one cell's; the weights stay between units and read ``X`` of their pre- or
    postsynaptic unit (no synapse per pair of cells, no trace per weight). Release failure is
    drawn in the pool, once per spike (``p_fail`` a ``(shared, constant)`` parameter of each
    pool): a failed spike is lost to every target of its unit, as dropout drops a unit's output
    (with n = 1 each target synapse draws its own)."""

    n: int
    readout: SpikingReadout

    def __post_init__(self) -> None:
        check_population(self.n)

    @property
    def pooled(self) -> bool:
        """Whether the units' cells feed one trace per unit (n > 1)."""
        return self.n > 1

    #: the unit's trace of its population's spikes (Euler, as the per-synapse traces: its mean
    #: is then exactly r); its state updater belongs in the synaptic-trace slot
    unit_trace: ClassVar[str] = "dX/dt = -X/tau_s : 1"

    def namespace(self) -> dict[str, Any]:
        """The read-out's constants and ``x_jump_cell``, one cell's share of a jump."""
        out = self.readout.namespace()
        out["x_jump_cell"] = out["x_jump"] / self.n
        return out

    def build(
        self, units: NeuronGroup, p_fail: float = 0.0, on_spike: str | None = None
    ) -> PopulationParts:
        """The cells of ``units`` and their pool into the units' ``X`` (which ``units`` must
        declare: :attr:`unit_trace`), named ``<units>_cells`` and ``<units>_pool``; ``p_fail``
        the pool's compiled default. Each cell's rate ``r`` is its unit's, copied every step by
        the pool's summed variable (``pool.summed_updaters``: schedule it after the units'
        rates and before the thresholds); a linked variable would do the same, but a group
        with an indexed link has no subgroups, and :attr:`PopulationParts.first_cells` is one.
        ``on_spike``: a further statement of the pool on every spike of a cell, before release
        failure (e.g. a unit's own spike trace that plasticity reads, ``name_post += ...``)."""
        if not self.pooled:
            raise ValueError("a population of one cell is the unit itself: nothing to build")
        count = len(units)
        namespace = self.namespace()
        cells = NeuronGroup(
            self.n * count,
            "r : 1",
            threshold=self.readout.threshold,
            name=f"{units.name}_cells",
            namespace=namespace,
        )
        unit_of = np.tile(np.arange(count, dtype=np.int32), self.n)
        pool = Synapses(
            cells,
            units,
            f"r_pre = r_post : 1 (summed)\n{RELEASE_FAILURE}",
            on_pre="\n".join(filter(None, [on_spike, transmit("X_post", "x_jump_cell")])),
            name=f"{units.name}_pool",
            namespace=namespace,
        )
        pool.connect(i=np.arange(self.n * count, dtype=np.int32), j=unit_of)
        pool.p_fail = p_fail
        return PopulationParts(cells=cells, pool=pool, units=count)


def population_field() -> Any:
    """The ``population`` field of a layered circuit's structure (one declaration for both
    circuits): spiking cells per unit, 1 by default."""
    return field(
        default=1,
        metadata={"description": "spiking read-out: Poisson cells per unit, each at the unit's "
                  "rate, read through one trace per unit (cost linear in it); 1: the unit is "
                  "one cell", "ge": 1},
    )  # fmt: skip


def check_population(n: Any, spiking: bool = True) -> int:
    """A circuit's population size: a whole number of cells ≥ 1, and above 1 only with the
    spiking read-out (the cells are spiking cells)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"circuit population must be a whole number of cells ≥ 1, got {n!r}")
    if n > 1 and not spiking:
        raise ValueError(
            f"population = {n} is a number of spiking cells per unit: it needs the spiking read-out"
        )
    return int(n)


def trace(name: str = "x", tau: str = "tau_s") -> str:
    """A synaptic trace that decays between the spikes it receives (clock-driven, per synapse)."""
    return f"d{name}/dt = -{name}/{tau} : 1 (clock-driven)"


def transmit(name: str = "x", jump: str = "x_jump") -> str:
    """A spike reaches trace ``name`` (by ``jump``) unless its release fails (probability
    ``p_fail``)."""
    return f"{name} += int(rand() > p_fail)*{jump}"


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

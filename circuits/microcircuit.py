"""Dendritic cortical microcircuits (Sacramento, Ponte Costa, Bengio & Senn, NeurIPS 2018).

One Brian2 network of layers ``k = 0..N`` (``sizes = [n0, ..., nN]``), DESIGN.md §4.2; potentials
are dimensionless and time is in ms (conductances in 1/ms):

* ``layer0`` (input, n0 cells): ``dr0/dt = (inputs(t, i) − r0)/τ_in``; its rate is ``r = r0``.
* ``layer{k}``, k = 1..N−1 (hidden pyramidal cells: soma, basal and apical compartments)::

      du/dt = −g_lk u + g_B (vB − u) + g_A (vA − u) [+ σ ξ(t)]
      vB = W_k r_{k−1},  vA = vA_td + vA_int,  vA_td = B_k r_{k+1},  vA_int = W^PI_k r^I_k

* ``layer{N}`` (output, two compartments), nudged towards ``u_target = targets(t, i)``::

      du/dt = −g_lk u + g_B (vB − u) + g_som nudge(t) (u_target − u),   vB = W_N r_{N−1}

* ``inter{k}``, k = 1..N−1 (SST/Martinotti-like interneurons, n_{k+1} cells), nudged one-to-one
  by the next layer's somatic potential ``u_next = u_{k+1}``::

      duI/dt = −g_lk uI + g_D (vI − uI) + g_som (u_next − uI),   vI = W^IP_k r_k

Every cell has the rate ``r = φ(u)`` (soft-ReLU or logistic, :mod:`neurosim.neurons`), stored once
per step (a ``constant over dt`` subexpression) rather than recomputed per synapse.

**Prospective neurons** (``params.neuron = "prospective"``; Latent Equilibrium, Haider et al.
2021; DESIGN.md §4.8): every pyramidal cell and interneuron has the rate ``r = φ(ŭ)`` of its
prospective potential ŭ = u + τ du/dt, τ = 1/g_total, written with the potential ``u_old`` kept
before the last update: ``ub = u_old + (u − u_old)/(g_total dt)`` (``ubI`` of the interneurons;
the output keeps its step's g_total = g_lk + g_B + g_som·nudge in ``g_old``). Noise-free, ŭ(t) is
the potential the inputs of step t − dt drive the cell to, so a change of input reaches the
output in one step per layer instead of several membrane time constants; fixed points are those
of the instantaneous cells (there ŭ = u). The input layer's rate is its filter's prospective
value, r0_old + (r0 − r0_old) τ_in/dt = inputs(t − dt), and interneurons are nudged by ŭ of their
partner. The plasticity rules are unchanged in form and read the prospective rates φ(ŭ) pre- and
postsynaptically, as in Latent Equilibrium, where the rules act on prospective quantities so that
the error they see is that of the settled state rather than of a settling transient; the
dendritic predictions φ(v̂) are those of the step's sums (one step later than ŭ's own inputs, a
difference confined to the first steps after an input change, which the learning lag gates).

**Compartments and synapses.** Compartments are state variables of one ``NeuronGroup`` per layer;
dendritic potentials are ``(summed)`` synaptic variables, one summed ``Synapses`` per target:
``W{k}`` (layer k ← k−1, target ``vB``), ``B{k}`` (hidden k ← layer k+1, ``vA_td``),
``WPI{k}`` (hidden k ← inter k, ``vA_int``), ``WIP{k}`` (inter k ← hidden k, ``vI``), and
``copy{k}`` (inter k ← layer k+1, one-to-one, ``u_next``). With ``topdown="tied"`` there is no
``B{k}``: ``W{k+1}`` carries ``vA_td`` of layer k backwards through its own weights
(``B_k = W_{k+1}ᵀ``, for checks only).

**Weight order.** Every projection is dense, connected with explicit ``i`` (pre) and ``j`` (post)
arrays in the row-major order of its (post, pre) matrix: synapse ``s = post*n_pre + pre``, so that
``w.reshape(n_post, n_pre)`` is the matrix (:func:`matrix_to_w`, :func:`w_to_matrix`).

**Read-out.** ``readout="rate"``: the presynaptic quantity of every projection is ``r_pre``.
``readout="spiking"``: every cell (input, pyramidal and interneuron) fires Poisson spikes at rate
``φ(u)·max_rate_hz`` (``MicrocircuitParams.max_rate_hz``, the rate of a cell at φ = 1) and each
synapse keeps a trace ``x`` (τ_s) that jumps by ``1/(max_rate·τ_s)`` per transmitted spike, so
that its mean equals the rate; a spike is transmitted with probability ``1 − p_fail`` (release
failure, spiking dropout; ``p_fail`` a ``(shared, constant)`` parameter of each projection, not
rescaled). The postsynaptic factors of the learning rules stay rates (the soma knows its own
φ(u)); the presynaptic factors read the traces.

**Populations** (``population = n > 1``, spiking read-out; :class:`neurosim.blocks.Population`,
the definition the Hopfield circuit uses, issue 15): every unit of every group (``layer{k}``,
``inter{k}``) is n Poisson cells, ``<group>_cells`` (cell m of unit u is cell m·units + u), each
firing at the unit's rate (copied from the unit every step, in the ``summed`` slot; the rate is
computed before the step starts), and their spikes feed one trace ``X`` per unit through
``<group>_pool`` (one synapse per cell, jump ``1/(n·max_rate·τ_s)``): X has mean φ and a variance
n times smaller than one cell's trace. The weights stay between units and read the units' traces
(``X_pre`` where n = 1 reads the synapse's ``x``; ``X_post`` for ``xb``), with no trace per
synapse, so a build grows by n cells and n pool synapses per unit (linear in n, no synapse per
pair of cells). X decays in the units' own state updater (``groups`` 0, after the synaptic
updaters at −1), so every reader sees the step's starting value, as with the per-synapse traces.
Release failure is drawn in the pool, once per spike (run value ``<group>_pool.p_fail``,
:func:`p_fail_values`): a failed spike is lost to all the unit's targets, where with one cell per
unit each target synapse draws its own. Monitors: ``spikes_<group>`` holds the spike trains of the
units' first cells (indexed as the units) and ``counts_<group>`` every cell's spike count
(:func:`spike_counts`). ``population = 1`` builds exactly the one-cell circuit (the same generated
code and build key). Batch mode takes populations (copy b's unit u has its n cells and its trace).

**Plasticity** (always on; each induction term I low-pass filtered, τ_w dΔ/dt = I − Δ, then
dw/dt = η·plastic(t)·Δ, η a ``(shared, constant)`` parameter ``eta`` per projection, 0 disables):

* ``W{k}``:   I = (φ(u_k) − φ(v̂_B,k)) r_{k−1},  v̂_B = g_B/(g_lk + g_B + g_A) vB
  (g_B/(g_lk + g_B) vB at the output);
* ``WIP{k}``: I = (φ(uI_k) − φ(v̂_I,k)) r_k,     v̂_I = g_D/(g_lk + g_D) vI;
* ``WPI{k}``: I = (0 − vA_k) r^I_k;
* ``B{k}`` with ``topdown="learned"``: I = (φ(u_k) − φ(vA_td,k)) r_{k+1}; fixed otherwise.

**Schedule** (DESIGN.md §3; tested): every step t → t + dt, forward Euler, every term at time t:

1. ``before_start``: r = φ(u) of every group (``constant over dt``; prospective: ŭ, then φ(ŭ));
2. ``start``, order −10: all summed updaters (vB, vA_td, vA_int, vI, u_next);
3. ``start``, order −5: per-cell plasticity factors φ(v̂) (``phi_vhat``; ``phi_td``), from the sums
   (prospective: also ``u_old = u``, and the output's ``g_old``, before the neurons update);
4. ``start``, order 0: the state monitors (so a sample at t holds u(t) with vB(t) = W r(t));
5. ``groups``, order −1: synaptic state updaters (Δ, w, traces);
6. ``groups``, order 0: neuron state updaters; then thresholds and spike transmission (a spike
   emitted in step t enters the traces in step t and the sums in step t + dt).

In batch mode the copies' filters are summed at ``groups`` −3 (``batch_sum``) and the weights
changed at ``groups`` −2 (``batch_apply``), after the sums read w(t) and before the filters move.

**Batch mode** (``batch = B > 1``; issue 14, as GeNN's batch mode; :mod:`neurosim.batch`): B
copies of the circuit run side by side in one build, each on its own example, with one weight per
synapse shared by the copies. Every group is B·n cells (copy b: cells b·n .. (b+1)·n − 1), every
projection B dense blocks on the diagonal, ``inputs`` and ``targets`` B·n columns
(:func:`~neurosim.batch.batch_rows`); ``nudge`` and ``plastic`` are shared. *How the copies share
the weights:* each copy keeps its own low-pass filter Δ_b (it filters that copy's induction), and
the copies' filtered changes are summed **every step**::

    dw/dt = η·plastic(t)·Σ_b Δ_b

— the rule above with the sum of the copies' Δ in place of one Δ, integrated with the same Euler
step (w reads the Δ of the step's start). A group ``<name>_sum`` of one cell per shared weight sums
the Δ_b (a summed variable of the ``Synapses`` ``<name>_tie``, one synapse per copy's weight), and
the tie adds η·plastic·ΣΔ·dt to every copy, so the copies stay bitwise equal. Summing per step
rather than once per example keeps the continuous rule as it is (B identical examples learn exactly
as one example at B times the rate, and weights still change within an example), at the price of
two passes over the B copies' synapses per step. Each rate applies to each copy's change: a
mini-batch step is B times the mean change (the convention of the Hopfield circuit's batch mode).
The torch twin of this update is :func:`models.dendritic_microcircuit.learning.learning_step`
(equal to 1e-9, ``tests/test_microcircuit_batch.py``). Rate and spiking read-out, instantaneous
and prospective cells; fixed top-down weights are tiled and never change. ``batch = 1`` builds
exactly the circuit above (no ties, the same generated code and build key).

``TimedArray`` inputs: ``inputs`` (rows × n0), ``targets`` (rows × nN, target *potentials*),
``nudge`` (rows) and ``plastic`` (rows), each sampled every ``timed_dt_ms`` (per name, a multiple
of dt; the last row holds after the end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, ms

from neurosim.batch import check_batch, first_copy, tie_copies, tile_copies
from neurosim.blocks import (
    RELEASE_FAILURE,
    LayeredStructure,
    Population,
    PopulationParts,
    SpikingReadout,
    check_population,
    check_readout,
    layer_sizes,
    low_pass,
    per_row,
    population_field,
    timed_inputs,
    trace,
    transmit,
)
from neurosim.circuit import Circuit, Cost, dense_cost
from neurosim.connectivity import batched_connectivity, dense_connectivity, matrix_to_w, w_to_matrix
from neurosim.engine import CircuitBuild
from neurosim.errors import ConfigError
from neurosim.parameters.microcircuit import MicrocircuitParams
from neurosim.registry import register_circuit
from neurosim.schedule import set_slot

__all__ = [
    "MicrocircuitCircuit",
    "MicrocircuitParams",
    "MicrocircuitStructure",
    "dense_connectivity",
    "matrix_to_w",
    "w_to_matrix",
]

NAME = "microcircuit"
TIMED_INPUTS = ("inputs", "targets", "nudge", "plastic")
TOPDOWN = ("fixed", "learned", "tied")


def _pairs(value: Any) -> Any:
    """A mapping as a tuple of (key, value) pairs, so that the frozen record stays hashable."""
    if isinstance(value, Mapping):
        return tuple((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in value.items())
    return value


@dataclass(frozen=True)
class MicrocircuitStructure(LayeredStructure):
    """What changes the generated code of one microcircuit (the build key is made from it).

    ``readout``: ``"rate"`` or ``"spiking"``; ``p_fail``: compiled default of every projection's
    release-failure probability (spiking only); ``topdown``: ``"fixed"``, ``"learned"`` or
    ``"tied"``; ``noise``: include σ ξ(t) in the hidden somata (None: when ``params.sigma > 0``;
    σ is then the run-time parameter ``layer{k}.sigma``); ``record``: variables to record per
    group (None: :func:`default_record`; ``{}`` records none) every ``record_dt_ms``;
    ``weight_record_dt_ms``: also record every projection's ``w`` that often; ``timed_dt_ms``:
    the sampling step of the TimedArray inputs (one value, or one per name; None: dt);
    ``batch``: copies of the circuit simulated side by side (batch mode, module docstring);
    ``population``: spiking cells per unit (populations, module docstring; 1: the unit is one
    cell).
    """

    sizes: list[int] | tuple[int, ...] = field(
        metadata={"description": "layer sizes [n0, ..., nN]: input, hidden layers, output"}
    )
    readout: str = "rate"
    p_fail: float = 0.0
    topdown: str = "fixed"
    noise: bool | None = None
    record: Any = None
    record_dt_ms: float | None = 1.0
    weight_record_dt_ms: float | None = None
    timed_dt_ms: Any = None
    batch: int = field(
        default=1,
        metadata={"description": "examples simulated side by side, one shared weight per "
                  "synapse, their filtered changes summed every step (mini-batch); 1: one "
                  "example at a time", "ge": 1},
    )  # fmt: skip
    population: int = population_field()

    @property
    def pooled(self) -> bool:
        """Spiking units of n > 1 cells, read through one trace ``X`` per unit."""
        return self.spiking and self.population > 1

    def __post_init__(self) -> None:
        check_readout(self.readout, self.p_fail)
        check_batch(self.batch)
        check_population(self.population, self.spiking)
        if self.topdown not in TOPDOWN:
            raise ValueError(f"topdown must be one of {TOPDOWN}, got {self.topdown!r}")
        object.__setattr__(self, "sizes", tuple(layer_sizes(self.sizes)))
        object.__setattr__(self, "record", _pairs(self.record))
        object.__setattr__(self, "timed_dt_ms", _pairs(self.timed_dt_ms))


# ------------------------------------------------------------------------------ named weights
def weight_shapes(sizes: Sequence[int], topdown: str = "fixed") -> dict[str, tuple[int, int]]:
    """Every weighted projection of the circuit and its (n_post, n_pre) matrix shape."""
    sizes = layer_sizes(sizes)
    n_layers = len(sizes) - 1
    shapes: dict[str, tuple[int, int]] = {}
    for k in range(1, n_layers + 1):
        shapes[f"W{k}"] = (sizes[k], sizes[k - 1])
    for k in range(1, n_layers):
        if topdown != "tied":
            shapes[f"B{k}"] = (sizes[k], sizes[k + 1])
        shapes[f"WPI{k}"] = (sizes[k], sizes[k + 1])
        shapes[f"WIP{k}"] = (sizes[k + 1], sizes[k])
    return shapes


def weight_values(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weight matrices by projection name → ``{'W1.w': array, ...}`` for ``Simulation.run``."""
    return {f"{name}.w": matrix_to_w(m) for name, m in weights.items()}


def weights_from_state(
    state: Mapping[str, np.ndarray], sizes: Sequence[int], topdown: str = "fixed"
) -> dict[str, np.ndarray]:
    """The weight matrices found in a run's ``state`` (keys ``'W1.w'``, ...); in batch mode the
    first copy's (the copies are kept equal)."""
    return {
        name: w_to_matrix(first_copy(state[f"{name}.w"], shape[0] * shape[1]), *shape)
        for name, shape in weight_shapes(sizes, topdown).items()
        if f"{name}.w" in state
    }


def random_weights(
    sizes: Sequence[int],
    rng: np.random.Generator,
    *,
    topdown: str = "fixed",
    scale: float | Mapping[str, float] = 1.0,
) -> dict[str, np.ndarray]:
    """Weights drawn from U(−a, a), a = ``scale`` (one value, or one per projection name)."""
    out = {}
    for name, shape in weight_shapes(sizes, topdown).items():
        a = scale[name] if isinstance(scale, Mapping) else scale
        out[name] = rng.uniform(-a, a, size=shape)
    return out


def self_predicting_weights(
    weights: Mapping[str, np.ndarray], params: MicrocircuitParams, sizes: Sequence[int]
) -> dict[str, np.ndarray]:
    """The closed-form lateral weights W^PI_k = −B_k, W^IP_k = c_k W_{k+1} (DESIGN.md §4.2).

    ``weights`` needs ``W{k}`` and, unless the top-down weights are tied, ``B{k}``.
    """
    sizes = layer_sizes(sizes)
    n_layers = len(sizes) - 1
    out = {}
    for k in range(1, n_layers):
        w_next = np.asarray(weights[f"W{k + 1}"], dtype=float)
        b = np.asarray(weights[f"B{k}"], dtype=float) if f"B{k}" in weights else w_next.T
        out[f"WPI{k}"] = -b
        out[f"WIP{k}"] = params.self_predicting_factor(k + 1 == n_layers) * w_next
    return out


def eta_values(
    sizes: Sequence[int],
    *,
    topdown: str = "fixed",
    W: float = 0.0,
    IP: float = 0.0,
    PI: float = 0.0,
    B: float = 0.0,
) -> dict[str, float]:
    """Learning rates (1/ms) for ``Simulation.run``: ``{'W1.eta': W, 'WIP1.eta': IP, ...}``."""
    out: dict[str, float] = {}
    for name in weight_shapes(sizes, topdown):
        if name.startswith("WIP"):
            out[f"{name}.eta"] = IP
        elif name.startswith("WPI"):
            out[f"{name}.eta"] = PI
        elif name.startswith("B"):
            if topdown == "learned":
                out[f"{name}.eta"] = B
        else:
            out[f"{name}.eta"] = W
    return out


def group_names(sizes: Sequence[int]) -> tuple[str, ...]:
    """Every group of cells: ``layer0`` .. ``layer{N}``, then ``inter1`` .. ``inter{N-1}``."""
    n_layers = len(layer_sizes(sizes)) - 1
    return (
        *(f"layer{k}" for k in range(n_layers + 1)),
        *(f"inter{k}" for k in range(1, n_layers)),
    )


def p_fail_values(
    sizes: Sequence[int], p_fail: float, topdown: str = "fixed", population: int = 1
) -> dict[str, float]:
    """The release-failure probability of every projection (spiking read-out; one cell per
    unit), or of every group's pool (``population`` > 1: drawn once per spike of its cells)."""
    if population > 1:
        return {f"{g}_pool.p_fail": p_fail for g in group_names(sizes)}
    return {f"{name}.p_fail": p_fail for name in weight_shapes(sizes, topdown)}


def spike_counts(
    monitors: Mapping[str, Mapping[str, np.ndarray]], sizes: Sequence[int], batch: int = 1
) -> dict[str, np.ndarray]:
    """Spikes of every cell of every group in one run of a spiking build (group → counts): from
    ``counts_<group>`` (populations: every cell, cell m of unit u at m·units + u) or
    ``spikes_<group>`` (one cell per unit)."""
    sizes = layer_sizes(sizes)
    units = {f"layer{k}": n for k, n in enumerate(sizes)}
    units.update({f"inter{k}": sizes[k + 1] for k in range(1, len(sizes) - 1)})
    out: dict[str, np.ndarray] = {}
    for g in group_names(sizes):
        if f"counts_{g}" in monitors:
            out[g] = np.asarray(monitors[f"counts_{g}"]["count"], dtype=int)
        else:
            i = np.asarray(monitors[f"spikes_{g}"]["i"], dtype=int)
            out[g] = np.bincount(i, minlength=units[g] * batch)
    return out


def state_keys(
    sizes: Sequence[int],
    *,
    topdown: str = "fixed",
    readout: str = "rate",
    neuron: str = "instantaneous",
    population: int = 1,
) -> tuple[str, ...]:
    """The state carried from one run into the next (read it at the end, pass it as ``values``):
    potentials, weights, filters and the spike traces (per synapse, or per unit with
    ``population`` > 1).

    The dendritic sums, rates and plasticity factors are recomputed at the start of every step.
    """
    sizes = layer_sizes(sizes)
    n_layers = len(sizes) - 1
    keys = ["layer0.r0"]
    keys += [f"layer{k}.u" for k in range(1, n_layers + 1)]
    keys += [f"inter{k}.uI" for k in range(1, n_layers)]
    if neuron == "prospective":  # the previous step's potentials (and output conductance)
        keys.append("layer0.r0_old")
        keys += [f"layer{k}.u_old" for k in range(1, n_layers + 1)]
        keys.append(f"layer{n_layers}.g_old")
        keys += [f"inter{k}.uI_old" for k in range(1, n_layers)]
    for name in weight_shapes(sizes, topdown):
        keys.append(f"{name}.w")
        if not (name.startswith("B") and topdown == "fixed"):
            keys.append(f"{name}.Delta")
        if readout == "spiking" and population == 1:
            keys.append(f"{name}.x")
            if topdown == "tied" and name.startswith("W") and name[1:].isdigit():
                if int(name[1:]) >= 2:
                    keys.append(f"{name}.xb")
    if readout == "spiking" and population > 1:
        keys += [f"{g}.X" for g in group_names(sizes)]
    return tuple(keys)


def default_record(sizes: Sequence[int]) -> dict[str, tuple[str, ...]]:
    """The potentials recorded by default: r0; u, vB, vA of hidden cells; u, vB; uI, vI."""
    sizes = layer_sizes(sizes)
    n_layers = len(sizes) - 1
    rec: dict[str, tuple[str, ...]] = {"layer0": ("r0",)}
    for k in range(1, n_layers):
        rec[f"layer{k}"] = ("u", "vB", "vA")
        rec[f"inter{k}"] = ("uI", "vI")
    rec[f"layer{n_layers}"] = ("u", "vB")
    return rec


def timed_values(
    inputs: np.ndarray,
    n_out: int,
    *,
    targets: np.ndarray | None = None,
    nudge: float | np.ndarray = 0.0,
    plastic: float | np.ndarray = 1.0,
) -> dict[str, np.ndarray]:
    """The four TimedArray inputs, scalars broadcast to one value per row of ``inputs``."""
    inputs = np.asarray(inputs, dtype=float)
    rows = inputs.shape[0]
    return {
        "inputs": inputs,
        "targets": (
            np.zeros((rows, n_out)) if targets is None else np.asarray(targets, dtype=float)
        ),
        "nudge": per_row(nudge, rows),
        "plastic": per_row(plastic, rows),
    }


# ------------------------------------------------------------------------------ the builder
def _sample_dt(name: str, dt_ms: float, timed_dt_ms: Any) -> float:
    if isinstance(timed_dt_ms, tuple):
        return float(dict(timed_dt_ms).get(name, dt_ms))
    return float(timed_dt_ms) if timed_dt_ms is not None else dt_ms


def _timed_arrays(
    timed: Mapping[str, np.ndarray],
    sizes: Sequence[int],
    dt_ms: float,
    timed_dt_ms: Any,
    batch: int = 1,
) -> dict[str, TimedArray]:
    columns = {"inputs": sizes[0] * batch, "targets": sizes[-1] * batch}  # B copies side by side
    steps = {name: _sample_dt(name, dt_ms, timed_dt_ms) for name in TIMED_INPUTS}
    return timed_inputs(timed, TIMED_INPUTS, columns, dt_ms, steps)


@dataclass
class _Parts:
    """The objects of one build while it is put together, and what every part reads."""

    s: MicrocircuitStructure
    params: MicrocircuitParams
    circuit: MicrocircuitCircuit
    namespace: dict[str, Any]
    syn_namespace: dict[str, Any]
    threshold: str | None
    #: n > 1 cells per unit (``s.pooled``): their definition; None otherwise
    population: Population | None = None
    layers: list[NeuronGroup] = field(default_factory=list)
    inters: list[NeuronGroup] = field(default_factory=list)
    synapses: list[Synapses] = field(default_factory=list)
    connectivity: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    factor_runners: list[Any] = field(default_factory=list)
    ties: list[Any] = field(default_factory=list)

    def group(self, n: int, eqs: str, name: str) -> NeuronGroup:
        """A group of ``n`` cells per copy (B·n in batch mode, copy-major); with populations the
        units fire nothing and keep the trace ``X`` of their cells' spikes."""
        if self.population is not None:
            eqs = f"{eqs.rstrip()}\n{self.population.unit_trace}"
        g = NeuronGroup(
            n * self.s.batch,
            eqs,
            threshold=self.threshold,
            method="euler",
            name=name,
            namespace=self.namespace,
        )
        set_slot(g.state_updater, self.circuit.slot("neuron_update"))
        return g


def _rate(params: MicrocircuitParams, u: str, g_total: float | str) -> str:
    """The rate ``r`` of a cell with potential ``u``: φ(u), or with prospective neurons φ(ŭ) of
    ŭ = u_old + (u − u_old)/(g_total dt), u_old the potential one step earlier (DESIGN.md §4.8;
    ``g_total`` a number or the name of a variable)."""
    if not params.prospective:
        return f"r = {params.phi_expr(u)} : 1 (constant over dt)"
    g = repr(g_total) if isinstance(g_total, float) else g_total
    b = "ub" if u == "u" else f"ub{u[1:]}"  # ub, ubI
    return (
        f"{u}_old : 1\n"
        f"{b} = {u}_old + ({u} - {u}_old)*ms/({g}*dt) : 1 (constant over dt)\n"
        f"r = {params.phi_expr(b)} : 1 (constant over dt)"
    )


def _keep_old(params: MicrocircuitParams, u: str) -> str:
    """Factor-runner code that keeps ``u`` before the neuron update (prospective neurons)."""
    return f"\n{u}_old = {u}" if params.prospective else ""


def _hidden_equations(parts: _Parts, with_noise: bool) -> tuple[str, str]:
    """Equations and plasticity factors of a hidden pyramidal layer (soma, basal, apical)."""
    p, phi = parts.params, parts.params.phi_expr
    noise_term = " + sigma*xi*ms**-0.5" if with_noise else ""
    eqs = f"""
            du/dt = (-g_lk*u + g_B*(vB - u) + g_A*(vA - u))/ms{noise_term} : 1
            vA = vA_td + vA_int : 1
            vB : 1
            vA_td : 1
            vA_int : 1
            {_rate(p, "u", p.prospective_conductance("hidden"))}
            phi_vhat : 1
            """
    factors = f"phi_vhat = {phi(f'{p.hidden_basal_gain!r}*vB')}" + _keep_old(p, "u")
    if parts.s.topdown == "learned":
        eqs += "phi_td : 1\n"
        factors += f"\nphi_td = {phi('vA_td')}"
    if with_noise:
        eqs += "sigma : 1 (shared, constant)\n"
    return eqs, factors


def _output_equations(parts: _Parts) -> tuple[str, str]:
    """Equations and plasticity factor of the output layer, nudged toward ``targets``."""
    p, phi = parts.params, parts.params.phi_expr
    eqs = f"""
            du/dt = (-g_lk*u + g_B*(vB - u) + g_som*nudge(t)*(u_target - u))/ms : 1
            u_target = targets(t, i) : 1
            vB : 1
            {_rate(p, "u", "g_old")}
            phi_vhat : 1
            """
    factors = f"phi_vhat = {phi(f'{p.output_basal_gain!r}*vB')}" + _keep_old(p, "u")
    if p.prospective:  # the step's total conductance: nudging changes the output's τ
        eqs += "g_old : 1\n"
        factors += "\ng_old = g_lk + g_B + g_som*nudge(t)"
    return eqs, factors


def _build_groups(parts: _Parts) -> None:
    """The input layer, the pyramidal layers and the interneurons, with their factor runners."""
    s, p, phi = parts.s, parts.params, parts.params.phi_expr
    n_layers = s.n_layers
    with_noise = p.sigma > 0 if s.noise is None else bool(s.noise)
    if p.prospective:  # the input filter's lag removed as a neuron's: r = inputs(t − dt)
        layer0 = parts.group(
            s.sizes[0],
            "dr0/dt = (inputs(t, i) - r0)/tau_in : 1\nr0_old : 1\n"
            "r = r0_old + (r0 - r0_old)*tau_in/dt : 1 (constant over dt)",
            "layer0",
        )
        parts.factor_runners.append(layer0.run_regularly("r0_old = r0", name="layer0_factors"))
    else:
        layer0 = parts.group(
            s.sizes[0], "dr0/dt = (inputs(t, i) - r0)/tau_in : 1\nr = r0 : 1", "layer0"
        )
    parts.layers.append(layer0)
    for k in range(1, n_layers + 1):
        hidden = k < n_layers
        eqs, factors = _hidden_equations(parts, with_noise) if hidden else _output_equations(parts)
        g = parts.group(s.sizes[k], eqs, f"layer{k}")
        if with_noise and hidden:
            g.sigma = p.sigma
        if p.prospective and not hidden:
            g.g_old = p.prospective_conductance("output")
        parts.factor_runners.append(g.run_regularly(factors, name=f"layer{k}_factors"))
        parts.layers.append(g)
    for k in range(1, n_layers):
        g = parts.group(
            s.sizes[k + 1],
            f"""
            duI/dt = (-g_lk*uI + g_D*(vI - uI) + g_som*(u_next - uI))/ms : 1
            vI : 1
            u_next : 1
            {_rate(p, "uI", p.prospective_conductance("inter"))}
            phi_vhat : 1
            """,
            f"inter{k}",
        )
        factors = f"phi_vhat = {phi(f'{p.inter_dendrite_gain!r}*vI')}" + _keep_old(p, "uI")
        parts.factor_runners.append(g.run_regularly(factors, name=f"inter{k}_factors"))
        parts.inters.append(g)
    for runner in parts.factor_runners:
        set_slot(runner, parts.circuit.slot("factors"))


def _projection(
    parts: _Parts,
    name: str,
    source: NeuronGroup,
    target: NeuronGroup,
    summed_target: str,
    induction: str | None,
    backward_target: str | None = None,
) -> Synapses:
    """One dense weighted projection onto the summed variable ``summed_target``; plastic when
    ``induction`` (the postsynaptic factor) is given; ``backward_target``: the same w also
    carried backwards (tied top-down weights)."""
    spiking, pooled = parts.s.spiking, parts.s.pooled
    # what a projection reads of its presynaptic cells: rates, its own trace, or the unit's trace
    pre_quantity = "X_pre" if pooled else ("x" if spiking else "r_pre")
    tied = induction is not None and parts.s.batch > 1  # batch mode: w changed by the tie
    eqs = [f"{summed_target}_post = w*{pre_quantity} : 1 (summed)"]
    if induction is None or tied:
        eqs.append("w : 1")
    on_pre = on_post = None
    if spiking and not pooled:
        eqs += [trace("x"), RELEASE_FAILURE]
        on_pre = transmit("x")
    if backward_target is not None:
        if pooled:
            eqs.append(f"{backward_target}_pre = w*X_post : 1 (summed)")
        elif spiking:
            eqs += [f"{backward_target}_pre = w*xb : 1 (summed)", trace("xb")]
            on_post = transmit("xb")
        else:
            eqs.append(f"{backward_target}_pre = w*r_post : 1 (summed)")
    if induction is not None:
        eqs.append(low_pass(induction, pre_quantity))
        if not tied:
            eqs.append("dw/dt = eta*plastic(t)*Delta/ms : 1 (clock-driven)")
        eqs.append("eta : 1 (shared, constant)")
    syn = Synapses(
        source, target, "\n".join(eqs), on_pre=on_pre, on_post=on_post, method="euler",
        name=name, namespace=parts.syn_namespace,
    )  # fmt: skip
    B = parts.s.batch
    n_pre, n_post = len(source) // B, len(target) // B
    i, j = batched_connectivity(n_pre, n_post, B)
    syn.connect(i=i, j=j)
    if spiking and not pooled:
        syn.p_fail = parts.s.p_fail
    parts.connectivity[name] = (i, j)
    parts.synapses.append(syn)
    if tied:
        # dw/dt = η·plastic(t)·Σ_b Δ_b: the copies' filtered changes summed every step, then
        # added to every copy (Euler with Δ of the step's start, as dw/dt above)
        sums, tie, parts.connectivity[f"{name}_tie"] = tie_copies(
            syn, n_pre * n_post, B, {"sum_Delta": "Delta_post"},
            "w_post = w_post + eta_post*plastic(t)*sum_Delta_pre*dt/ms",
            sum_slot=parts.circuit.slot("batch_sum"), apply_slot=parts.circuit.slot("batch_apply"),
            namespace={"plastic": parts.syn_namespace["plastic"]},
        )  # fmt: skip
        parts.ties += [sums, tie]
    return syn


def _build_synapses(parts: _Parts) -> None:
    """Forward, top-down and lateral projections, the one-to-one copies of u_{k+1}, and their
    slots."""
    s, layers, inters = parts.s, parts.layers, parts.inters
    for k in range(1, s.n_layers + 1):
        tied_back = "vA_td" if (s.topdown == "tied" and k >= 2) else None
        _projection(
            parts, f"W{k}", layers[k - 1], layers[k], "vB", "r_post - phi_vhat_post", tied_back
        )
    for k in range(1, s.n_layers):
        if s.topdown != "tied":
            rule = "r_post - phi_td_post" if s.topdown == "learned" else None
            _projection(parts, f"B{k}", layers[k + 1], layers[k], "vA_td", rule)
        _projection(parts, f"WPI{k}", inters[k - 1], layers[k], "vA_int", "-vA_post")
        _projection(parts, f"WIP{k}", layers[k], inters[k - 1], "vI", "r_post - phi_vhat_post")
        # interneurons are nudged by the partner's prospective potential when there is one
        u_pre = "ub_pre" if parts.params.prospective else "u_pre"
        copy = Synapses(
            layers[k + 1], inters[k - 1], f"u_next_post = {u_pre} : 1 (summed)",
            name=f"copy{k}", namespace=parts.syn_namespace,
        )  # fmt: skip
        idx = np.arange(s.sizes[k + 1] * s.batch, dtype=np.int32)
        copy.connect(i=idx, j=idx)
        parts.connectivity[f"copy{k}"] = (idx, idx.copy())
        parts.synapses.append(copy)
    for syn in parts.synapses:
        for updater in syn.summed_updaters.values():
            set_slot(updater, parts.circuit.slot("summed"))
        if syn.state_updater is not None:
            set_slot(syn.state_updater, parts.circuit.slot("synapse_update"))


def _build_monitors(parts: _Parts, pops: Sequence[PopulationParts] = ()) -> dict[str, Any]:
    """State monitors by group (``'layer1'``), by projection (``'W1'``, weights) and spike
    monitors ``'spikes_<group>'``: every cell's with one cell per unit; with populations the
    spike trains of the units' first cells (indexed as the units) and every cell's spike count
    (``counts_<group>``, no spike times: cheap at any n)."""
    s = parts.s
    groups = {g.name: g for g in [*parts.layers, *parts.inters]}
    monitors: dict[str, Any] = {}
    rec = default_record(s.sizes) if s.record is None else dict(s.record)
    slot = parts.circuit.slot("monitor")
    if s.record_dt_ms is not None:
        for gname, variables in rec.items():
            if gname not in groups:
                raise ValueError(f"cannot record {gname!r}: the circuit has {sorted(groups)}")
            if not variables:
                continue
            mon = StateMonitor(
                groups[gname], list(variables), record=True, dt=s.record_dt_ms * ms,
                name=f"mon_{gname}",
            )  # fmt: skip
            set_slot(mon, slot)
            monitors[gname] = mon
    if s.weight_record_dt_ms is not None:
        for syn in parts.synapses:
            if "w" in syn.variables:
                mon = StateMonitor(
                    syn, "w", record=True, dt=s.weight_record_dt_ms * ms, name=f"mon_{syn.name}"
                )
                set_slot(mon, slot)
                monitors[syn.name] = mon
    if s.spiking and not pops:
        for g in groups.values():
            monitors[f"spikes_{g.name}"] = SpikeMonitor(g, name=f"spikes_{g.name}")
    for g, pop in zip(groups.values(), pops, strict=False):  # no pops with one cell per unit
        monitors[f"spikes_{g.name}"] = SpikeMonitor(pop.first_cells, name=f"spikes_{g.name}")
        monitors[f"counts_{g.name}"] = SpikeMonitor(
            pop.cells, record=False, name=f"counts_{g.name}"
        )
    return monitors


class MicrocircuitCircuit(Circuit):
    """The dendritic cortical microcircuit through the circuit interface (module docstring)."""

    name = NAME
    summary = (
        "Sacramento et al. 2018 dendritic cortical microcircuit (pyramidal cells, SST interneurons)"
    )
    Params = MicrocircuitParams
    Structure = MicrocircuitStructure
    configurable = ("sizes", "batch", "population")
    schedule = {
        "summed": ("start", -10),
        "factors": ("start", -5),
        "monitor": ("start", 0),
        "batch_sum": ("groups", -3),
        "batch_apply": ("groups", -2),
        "synapse_update": ("groups", -1),
        "neuron_update": ("groups", 0),
    }

    def build(
        self,
        structure: MicrocircuitStructure,
        params: MicrocircuitParams,
        timed: Mapping[str, np.ndarray],
        *,
        dt_ms: float,
    ) -> CircuitBuild:
        """Create the groups, synapses and monitors of one microcircuit. Weights, learning rates
        and initial state default to 0 and are given per run as ``values``
        (:func:`weight_values`, :func:`eta_values`)."""
        params.phi_expr("u")  # validates params.phi
        tas = _timed_arrays(timed, structure.sizes, dt_ms, structure.timed_dt_ms, structure.batch)
        readout = SpikingReadout(params.max_rate_hz, params.tau_s)
        if structure.spiking:
            try:
                readout.check_dt(dt_ms)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        population = Population(structure.population, readout) if structure.pooled else None
        conductances = ("g_lk", "g_B", "g_A", "g_D", "g_som")
        namespace: dict[str, Any] = {name: getattr(params, name) for name in conductances}
        namespace.update(tau_in=params.tau_in * ms, tau_w=params.tau_w * ms)
        # n > 1: the cells fire, the units keep the trace (the unit groups have no threshold)
        namespace.update(population.namespace() if population else readout.namespace())
        # synapses see only the plasticity gate: ``targets`` is also a Synapses-internal name
        syn_namespace = {**namespace, "plastic": tas["plastic"]}
        namespace.update(tas)
        threshold = readout.threshold if structure.spiking and not population else None
        parts = _Parts(structure, params, self, namespace, syn_namespace, threshold, population)
        _build_groups(parts)
        groups = [*parts.layers, *parts.inters]
        pops = [population.build(g, structure.p_fail) for g in groups] if population else []
        for pop in pops:  # the cells' rates: their units' of this step, before the thresholds
            for updater in pop.pool.summed_updaters.values():
                set_slot(updater, self.slot("summed"))
        _build_synapses(parts)
        monitors = _build_monitors(parts, pops)
        return CircuitBuild(
            objects=[
                *parts.layers,
                *parts.inters,
                *[obj for pop in pops for obj in (pop.cells, pop.pool)],
                *parts.synapses,
                *parts.ties,
                *monitors.values(),
            ],
            namespace={},
            timed_arrays=tas,
            connectivity=parts.connectivity,
            monitors=monitors,
        )

    # the circuit's helpers by sizes and top-down mode, for protocols that look it up by name
    named_weight_shapes = staticmethod(weight_shapes)
    named_weights_from_state = staticmethod(weights_from_state)
    random_weights = staticmethod(random_weights)
    self_predicting_weights = staticmethod(self_predicting_weights)
    eta_values = staticmethod(eta_values)
    p_fail_values = staticmethod(p_fail_values)
    state_keys = staticmethod(state_keys)
    timed_values = staticmethod(timed_values)
    spike_counts = staticmethod(spike_counts)
    group_names = staticmethod(group_names)

    def weight_shapes(self, structure: MicrocircuitStructure) -> dict[str, tuple[int, ...]]:
        return dict(weight_shapes(structure.sizes, structure.topdown))

    def weight_values(
        self, structure: MicrocircuitStructure, weights: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        """Named matrices → run values, one copy per copy of the circuit (batch mode)."""
        return tile_copies(super().weight_values(structure, weights), structure.batch)

    def weights_from_state(
        self, structure: MicrocircuitStructure, state: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        return weights_from_state(state, structure.sizes, structure.topdown)

    def timed_names(self, structure: MicrocircuitStructure) -> tuple[str, ...]:
        return TIMED_INPUTS

    def cost(self, structure: MicrocircuitStructure) -> Cost:
        """Groups with their state variables, the dense projections (w, Δ, and a trace when
        spiking with one cell per unit) and the one-to-one copies, B times in batch mode with the
        ties of the plastic projections (one sum per shared weight, one tie synapse per copy's);
        with populations n cells and n pool synapses per unit and a trace per unit; monitors are
        left out (their size depends on the run length, which the structure does not fix)."""
        sizes, n_layers, B = structure.sizes, structure.n_layers, structure.batch
        pooled = int(structure.pooled)  # the unit's trace X
        groups = {
            "layer0": (sizes[0] * B, 2 + pooled),
            f"layer{n_layers}": (sizes[-1] * B, 4 + pooled),
        }
        for k in range(1, n_layers):
            groups[f"layer{k}"] = (sizes[k] * B, 7 + pooled)
            groups[f"inter{k}"] = (sizes[k + 1] * B, 5 + pooled)
        per_synapse = 3 if structure.spiking and not pooled else 2
        shapes = weight_shapes(sizes, structure.topdown)
        projections = {name: (pre, post * B, per_synapse) for name, (post, pre) in shapes.items()}
        if pooled:  # n cells per unit (their rate), one pool synapse per cell
            n = structure.population
            for g, (units, _) in list(groups.items()):
                groups[f"{g}_cells"] = (n * units, 1)
                projections[f"{g}_pool"] = (n, units, 0)
        for k in range(1, n_layers):
            projections[f"copy{k}"] = (sizes[k + 1] * B, 1, 0)
        if B > 1:
            for name, (post, pre) in shapes.items():
                if not (name.startswith("B") and structure.topdown != "learned"):
                    groups[f"{name}_sum"] = (pre * post, 1)
                    projections[f"{name}_tie"] = (pre * post, B, 0)
        return dense_cost(groups, projections)


#: the registered circuit object (protocols look it up by name)
CIRCUIT = register_circuit(MicrocircuitCircuit())

"""Layered continuous-time Hopfield circuit trained by Equilibrium Propagation (Scellier & Bengio
2017; DESIGN.md §4.3, issue 4).

The Brian2 counterpart of the torch twin :mod:`models.equilibrium_propagation`: the same energy,
the same projected-Euler dynamics with the same step, the same names (``W{k}``, ``b{k}``), so the
two agree number for number. Layers ``k = 0..N`` (``sizes = [n0, ..., nN]``); potentials are
dimensionless, time is in ms, the time constant is τ (``params.tau``, 1 ms: a Brian2 step of
``dt_ms`` is a twin step of ``dt = dt_ms/τ``):

* ``layer0`` (input), clamped: ``r = ρ(inputs(t, i))``, and ``s`` holds the same value once the
  step is done (so that every layer has an ``s`` the end-of-example rule can read).
* ``layer{k}``, k = 1..N, projected Euler of ds/dt = −∂F/∂s / τ, written as the step itself::

      s ← clip(s + dt/τ·(−s + up + down + b [+ β(t)(d − ρ(s))]) [+ σ √dt ξ], 0, 1)
      up = W_k ρ(s_{k−1}),  down = W_{k+1}ᵀ ρ(s_{k+1}) (k < N),  d = targets(t, i),  β = beta(t)

  with ρ = clip(·, 0, 1), the nudging term on the output only, ξ ~ N(0, 1) per unit and step
  (Langevin noise; compiled in only with ``noise=True``, σ in 1/√ms the run-time
  ``layer{k}.sigma``; σ = √(2T/τ) samples exp(−F/T) at temperature T). Because the state stays
  in [0, 1] after every step, ρ(s) = s there, as in the twin's projected form (its default).
  Clipping is why the step is written out in ``run_regularly`` code rather than left to
  Brian2's Euler integrator: each step stores ``s_next`` (the clipped Euler step) and
  ``rdot = (s_next − ρ(s))/dt`` — the rate of change of ρ(s) over the step, ρ'ṡ of the
  continual rule — and then sets ``s = s_next``.

  ``HopfieldParams.activation = "smooth_sigmoid"`` (:data:`SMOOTH_SIGMOID`; Laborieux et al. 2021)
  replaces the hard sigmoid by ρ(s) = 1/(1 + e^{−4(s − 0.5)}) and the step by plain Euler of
  ds/dt = −∂F/∂s, nothing clipped::

      s ← s + dt/τ·(−s + 4ρ(1 − ρ)·(up + down + b [+ β(t)(d − ρ(s))])) [+ σ √dt ξ]

  (the input layer's rate stays clip(x, 0, 1)), as the twin with the same ``activation``.

**Synapses.** ``W{k}`` (layer k−1 → layer k) is one dense ``Synapses`` object per weight matrix,
connected with explicit ``i``, ``j`` in row-major (post, pre) order (synapse ``post*n_pre + pre``,
:func:`matrix_to_w`), carrying the *one* symmetric weight both ways (DESIGN.md §3):
``up_post = w ρ_pre (summed)`` and, for k ≥ 2, ``down_pre = w ρ_post (summed)``. Biases are the
per-cell state ``layer{k}.b``.

**Read-out.** ``readout="rate"``: the summed quantities are the rates ρ. ``readout="spiking"``:
every cell (the input too) fires Poisson spikes at rate ρ·``max_rate_hz`` (``rand() < r·rate·dt``;
``HopfieldParams.max_rate_hz``, the rate of a cell at ρ = 1) and each synapse keeps a trace per
direction — ``x`` of the presynaptic spikes (summed into ``up``), ``xb`` of the postsynaptic ones
(summed into ``down``) — decaying with τ_s and jumping by ``1/(max_rate·τ_s)`` per transmitted
spike, so that its mean is the rate; each spike is transmitted with probability 1 − ``p_fail``
(``(shared, constant)`` per projection: release failure, spiking dropout), as in
:mod:`circuits.microcircuit`. The learning rules read the rates ρ(s) each unit keeps, not the
traces, unless they learn from spike traces (*Plasticity from spike traces* below).

**Populations** (``population = n > 1``, spiking read-out; :class:`neurosim.blocks.Population`,
issue 15): every unit is n Poisson cells, ``layer{k}_cells`` (cell m of unit u is cell
m·units + u), each firing at the unit's rate (copied from the unit every step, slot
``cell_rate``), and their spikes feed one trace ``X`` per unit through ``layer{k}_pool`` (one
synapse per cell, jump ``1/(n·max_rate·τ_s)``): X has mean ρ and a variance n times smaller than
one cell's trace. The weights stay between units and read the units' traces, ``up_post = w·X_pre``
and ``down_pre = w·X_post``, with no trace per synapse, so a build grows by n cells and n pool
synapses per unit (linear in n, no synapse per pair of cells). Release failure is drawn in the
pool, once per spike (run value ``layer{k}_pool.p_fail``, :func:`p_fail_values`): a failed spike
is lost to all the unit's targets, where with one cell per unit each target synapse draws its own.
Monitors: ``spikes_layer{k}`` holds the spike trains of the units' first cells (indexed as the
units) and ``counts_layer{k}`` every cell's spike count (:func:`spike_counts`). ``population = 1``
builds exactly the one-cell circuit above (the same generated code and build key).

**Reciprocal weights** (``reciprocal``): ``"tied"`` (default) is the one symmetric weight above.
``"untied"`` gives every pair of cells in adjacent layers k−1, k (k ≥ 2) two synapses, the forward
``w`` (k−1 → k, into ``up``) and the backward ``wb`` (k → k−1, into ``down``: ``down_pre = wb ρ_post
(summed)``), separate state variables initialised independently (``W{k}_back`` in
:func:`weight_values`, the transpose-free layout of ``W{k}``: entry [i, j] is the synapse from cell
i of layer k to cell j of layer k−1). Each is changed by its own copy of the same local rule (the
one ρ_iρ_j difference is available at both ends), with its own run-time learning rate
(``W{k}.eta_back`` two-phase, ``W{k}.eta_c_back`` continual; 0 freezes the backward weights:
feedback alignment). The dynamics are then no longer the gradient of an energy unless w = wb.

**Plasticity** (``plasticity``: any of ``"two-phase"``, ``"continual"``; learning rates are
``(shared, constant)`` run-time parameters, 0 by default, one per projection and one per layer for
the biases):

* ``"continual"`` (error in ds/dt; Ernoult et al. 2020), every step, gated by ``plastic(t)`` (a
  signed gain, 0 = off)::

      dw/dt = eta_c · plastic(t)/β(t) · (ρ'ṡ_post ρ_pre + ρ_post ρ'ṡ_pre
                                          [+ centred·dt ρ'ṡ_post ρ'ṡ_pre])
      db/dt = eta_bc · plastic(t)/β(t) · ρ'ṡ

  (``W{k}.eta_c``, ``layer{k}.eta_bc``; 1/β(t) read as 0 where β(t) = 0), explicit Euler with every
  factor at the start of the step, i.e. the twin's ``continual_update(...).product_rule``. With
  the run-time switch ``centred = 1`` each factor is averaged over the step's two ends (the
  extra ``dt ρ'ṡ ρ'ṡ``), which telescopes exactly: the update is then the end-point difference of
  ρ_i ρ_j, the twin's ``telescoped`` sum, for any dt. With ``measure=True`` the same update without
  η is also integrated into the accumulators ``W{k}.dW`` and ``layer{k}.db`` (0 at the start of
  every run), so it can be read with the weights held fixed (``eta_c = 0``).
* ``"two-phase"`` (needs ``example_ms``): end-point latches. While ``latch(t) = 1`` every cell
  keeps ``rl = ρ(s)`` and ``beta_l = β`` of the step just done; when the gate closes they hold
  the values at the end of that window (the free phase, or the −β phase for symmetric nudging).
  At the start of every example k ≥ 1 (t = k·example_ms, before anything else of that step) the
  update of the example just ended is applied once::

      w += eta · (ρ_post ρ_pre − rl_post rl_pre)/(β_h − β_l),   b += eta · (ρ − rl)/(β_h − β_l)

  with ρ the state the example ended in and β_h the β of its last step (``W{k}.eta``,
  ``layer{k}.eta_b``; nothing is applied where β_h = β_l). Two-phase: latch in the free phase
  (β_l = 0), end nudged at β: (1/β)(ρ^β ρ^β − ρ⁰ρ⁰). Symmetric: latch in the −β phase, end at +β:
  difference over 2β. One run of P examples thus makes P EP updates in-run; the last one is
  applied at t = P·example_ms, so a run needs one step more than its examples
  (:func:`duration_ms`; β, ``plastic`` and ``latch`` 0 in that step).
* ``example_ms`` (alone or with the rules): at the start of every example, ``restart(t)`` (one
  value per example) = 1 sets the states of layers 1..N to 0 before the step (the twin relaxes
  every example from 0), 0 keeps them.

**Plasticity from spike traces** (``learn_from="spike-traces"``, spiking read-out, two-phase rule;
issue 15 item 4, DESIGN.md §4.8): the rule reads only what a synapse has, the spike traces of
its two units, not their rates ρ(s). Every unit keeps ν, the trace of its own spikes (all n cells
of a population, before release failure)::

      dν/dt = −ν/τ_ν,   ν += 1/(n·max_rate·τ_ν) per spike of one of its cells

(τ_ν the run-time ``layer{k}.tau_nu``, a time; Euler, so that ν's mean is ρ), and every synapse
(every bias) accumulates the gated product of its units' traces (of its unit's trace)::

      dH/dt = g(t)·ν_pre·ν_post / ms,   dH_b/dt = g(t)·ν / ms

with the gate g(t) = ``hebb_gate(t)`` (per ms, :func:`hebb_gate_rows`) −1/((β_h − β_l)·T) over
the last T of the free phase (the −β phase when symmetric) and +1/((β_h − β_l)·T) over the last
T of the example, 0 elsewhere. At the start of the next example, in place of the rates' update::

      w += eta·H,   b += eta_b·H_b,   then H = H_b = 0

so ΔW_ij = (η/β)(⟨ν_iν_j⟩_β − ⟨ν_iν_j⟩_0), ⟨·⟩ the mean over the window: the difference of the
nudged and free phases' trace products. With the cells' spikes independent given their rates,
E[ν_iν_j] = E[ν_i]E[ν_j] and E[ν] follows ρ through the trace's filter, so once the traces
have settled the expected update is the rate rule (η/β)(ρ_i^βρ_j^β − ρ_i⁰ρ_j⁰); its noise falls
with the spikes per window (n·max_rate·T). The synapses' products read ν before the units' traces
decay in the same step (slot ``hebb``); the latches of the rates' rule stay compiled, unused.

**Schedule** (DESIGN.md §3; tested): every step t → t + dt, every term at time t:

1. ``start`` −60: the state monitors: s(t) as the previous step left it, before this step's
   per-example events (other recorded variables hold the values computed in the previous step);
2. ``start`` −50: per-example, every example_ms: apply the two-phase update (``*_apply``; batch
   mode: the copies' changes, then at −49 their sums, ``*_tie`` summed updaters, and at −48 the
   sums added to every copy, ``*_tie_apply``);
3. ``start`` −45: per-example: restart the states (``layer{k}_restart``);
4. ``start`` −40: rates r = ρ(s) (input: ρ(inputs(t, i))) (``*_rate``), and with spike-trace
   plasticity the step's gate g = hebb_gate(t) (``*_gate``); −39, populations: the cells' rates
   copied from their units (``cell_rate``);
5. ``start`` −10: summed updaters (up, down). The input drive ``W1 ρ(x)`` is constant within an
   example when the input is sampled once per example, the read-out is ``rate`` and W1 has no
   continual rule (it then changes only at example boundaries): it is summed once per example,
   at the example's first step (a per-example clock), which saves most of a 64-100-10 step;
6. ``start`` −5: the projected Euler step into ``s_next`` and ``rdot`` (``layer{k}_dynamics``);
7. ``groups`` −2: with spike-trace plasticity, the synaptic state updaters (the products H of
   the units' traces ν, and the read-out traces of n = 1); ``groups`` −1: synaptic state
   updaters otherwise (continual rule, accumulators, spike traces; the units' traces ``X`` of
   populations, and ν);
8. ``groups`` 0: neuron updates: continual bias rule, ``s = s_next``, latches (``*_update``);
   then thresholds and spike transmission (a spike of step t enters the sums at t + dt).

The continual rule thus reads ρ'ṡ of the *current* step (6 before 7) with ρ from its start (4).

**Batch mode** (``batch = B > 1``, two-phase rule; issue 14, as GeNN's batch mode): B copies of
the circuit run side by side in one build, each on its own example, learning mini-batches: one
weight per synapse shared by the copies, their changes summed. Brian2 has no batch dimension, so

* every layer is one ``NeuronGroup`` of B·n cells, copy b holding cells b·n .. (b+1)·n − 1, and
  every ``W{k}`` one ``Synapses`` object of B·n_pre·n_post synapses, B dense blocks on the
  diagonal (copy b to copy b only; :func:`~neurosim.connectivity.batched_connectivity`: no
  synapse between copies, so the cost is B times batch 1's, not B²). Each copy holds its own
  ``w`` (and ``b``), and the copies are kept *equal* rather than the weight being stored once:
  the summed variables ``up``/``down`` can read only the synapse's own, pre- and postsynaptic
  variables, so a weight held once elsewhere (a linked variable, which ``Synapses`` lack) could
  not be read where it is used;
* at the start of every example the two-phase rule computes each copy's change into
  ``delta_w`` (``delta_wb``, ``delta_b``) instead of adding it (``apply``); a group
  ``W{k}_sum`` (``layer{k}_sum``) of one cell per shared weight (bias) sums the B changes, a
  summed variable of the ``Synapses`` ``W{k}_tie`` (``layer{k}_tie``) from that group to the B
  copies (one synapse per copy entry, B·n_pre·n_post in all; ``batch_sum``, on a per-example
  clock); the tie then adds the sum to every copy (``batch_apply``). Every copy gets the same
  increment of the same value, so the copies stay bitwise equal; the update is the twin's
  mini-batch update with the rate × B (the twin averages, this sums, as GeNN);
* ``inputs`` and ``targets`` have B·n columns (copy b's example in columns b·n .. (b+1)·n − 1,
  :func:`batch_rows`: example k·B + b is copy b's in presentation k); ``beta``, ``latch`` and
  ``restart`` are shared by the copies; monitors record the B·n cells
  (:func:`unbatch_rows`); run values of ``W{k}.w`` and ``layer{k}.b`` hold the B copies one after
  the other (:meth:`HopfieldCircuit.weight_values` tiles them,
  :func:`weights_from_state` reads the first).

The spiking read-out works unchanged in batch mode (each copy's cells fire and its synapses keep
their traces), populations too (copy b's unit u has its n cells and its trace), and so does
plasticity from spike traces (each copy's η·H is its change, summed as above). The continual
rule changes the weights every step, so it is refused in batch mode (summing every step would
cost a reduction per step; not built). ``batch = 1`` builds exactly the circuit above (no
``delta``, no sums, the same generated code and build key).

``TimedArray`` inputs and the layout of examples in time (:func:`timed_names`,
:func:`example_timed`, ...) are in :mod:`circuits.hopfield_inputs`; the named weights and the
other run values (:func:`weight_values`, :func:`eta_values`, :func:`state_keys`, ...) in
:mod:`circuits.hopfield_values`. This module re-exports both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from brian2 import NeuronGroup, SpikeMonitor, StateMonitor, Synapses, ms

from circuits.hopfield_inputs import (
    BASE_INPUTS,
    _sample_dt,
    _steps,
    _timed_arrays,
    duration_ms,
    example_timed,
    hebb_gate_rows,
    sampling_steps,
    timed_names,
    timed_values,
)
from circuits.hopfield_values import (
    RECIPROCAL,
    _check_reciprocal,
    _check_sizes,
    back_eta_values,
    default_record,
    eta_values,
    p_fail_values,
    spike_counts,
    state_keys,
    weight_shapes,
    weight_values,
    weights_from_state,
)
from neurosim.batch import batch_rows, check_batch, tie_copies, unbatch_rows
from neurosim.blocks import (
    READOUTS,
    RELEASE_FAILURE,
    LayeredStructure,
    Population,
    PopulationParts,
    SpikingReadout,
    check_population,
    check_readout,
    population_field,
    trace,
    transmit,
)
from neurosim.circuit import Circuit, Cost, dense_cost
from neurosim.connectivity import (
    batched_connectivity,
    dense_connectivity,
    matrix_to_w,
    w_to_matrix,
)
from neurosim.engine import CircuitBuild
from neurosim.errors import ConfigError
from neurosim.parameters.hopfield import HopfieldParams
from neurosim.registry import register_circuit
from neurosim.schedule import on_own_clock, set_slot

NAME = "hopfield"
RULES = ("two-phase", "continual")
#: what the two-phase rule reads: the units' rates ρ(s), or their spike traces ν (spiking only)
LEARN_FROM = ("rates", "spike-traces")

__all__ = [
    "BASE_INPUTS",
    "CIRCUIT",
    "NAME",
    "READOUTS",
    "RECIPROCAL",
    "RULES",
    "HopfieldCircuit",
    "HopfieldParams",
    "HopfieldStructure",
    "LEARN_FROM",
    "Neuron",
    "SMOOTH_SIGMOID",
    "back_eta_values",
    "batch_rows",
    "default_record",
    "dense_connectivity",
    "duration_ms",
    "eta_values",
    "example_timed",
    "hebb_gate_rows",
    "sampling_steps",
    "matrix_to_w",
    "p_fail_values",
    "spike_counts",
    "state_keys",
    "timed_names",
    "timed_values",
    "unbatch_rows",
    "w_to_matrix",
    "weight_shapes",
    "weight_values",
    "weights_from_state",
]


# ------------------------------------------------------------------------------ the builder
def _safe_inverse(numerator: str, denominator: str) -> str:
    """numerator/denominator as Brian2 text, 0 where the denominator is 0."""
    d = f"({denominator})"
    return f"({numerator})*int({d} != 0)/({d} + int({d} == 0))"


def _factor(expr: str) -> str:
    """``expr`` as a factor of a product (parenthesised unless it is a name)."""
    return expr if expr.isidentifier() else f"({expr})"


#: one step in units of ms, as Brian2 text
_STEP = "(dt/ms)"

#: plasticity from spike traces: every unit's trace ν of its own spikes (all its cells', no
#: release failure), with a run-time time constant τ_ν; Euler, as the read-out's traces, so that
#: its mean is ρ when each spike adds 1/(n·max_rate·τ_ν)
SPIKE_TRACE = "dnu/dt = -nu/tau_nu : 1\ntau_nu : second (shared, constant)"
#: the jump of ν per spike of one of the unit's n cells (``{n}``; ``{post}``: "_post" in a pool)
NU_JUMP = "nu{post} += 1/({n}*rate_scale*tau_nu{post})"


@dataclass(frozen=True)
class Neuron:
    """The neuron model of layers 1..N as Brian2 text: the hook for a user-written neuron (a
    subclass of :class:`HopfieldCircuit` sets ``neuron``; ``examples/custom_neuron_circuit.py``).

    ``rate``: ρ of a state, a template in ``{s}``; ``settled``: ρ of a state just made by a step
    (what the end-point rules, the latches and ρ'ṡ read), a template in ``{s}``; ``step``: the
    state after one step, a template in ``{drive}`` (the summed input, the output's nudging
    included; ρ of the neighbours is the variable ``r_pre``/``r_post`` summed into it) and
    ``{noise}`` (the Langevin term, empty without noise); ``sensitive``: the open interval of
    states where ρ' is not negligible (a unit never inside it on the training data is reported
    dead, :mod:`neurosim.diagnostics`). The defaults are the hard sigmoid and projected Euler
    (module docstring), which keeps s in [0, 1], so a stepped state is its rate; the hard
    sigmoid's ρ' is 1 inside (0, 1) and 0 outside."""

    rate: str = "clip({s}, 0, 1)"
    settled: str = "{s}"
    step: str = "clip(s + (dt/tau)*(-s + {drive}){noise}, 0, 1)"
    sensitive: tuple[float, float] = (0.0, 1.0)

    def rate_of(self, s: str) -> str:
        """ρ of the state variable ``s`` (Brian2 text)."""
        return self.rate.format(s=s)

    def settled_of(self, s: str) -> str:
        """ρ of the stepped state variable ``s`` (Brian2 text)."""
        return self.settled.format(s=s)


#: the smooth sigmoid of ``HopfieldParams.activation = "smooth_sigmoid"`` (Laborieux et al.
#: 2021): ρ(s) = 1/(1 + e^{−4(s − 0.5)}), one plain Euler step of ds/dt = −s + ρ'(s)·drive with
#: ρ' = 4ρ(1 − ρ) and r = ρ(s) of the step's start, as the twin's ``activation``
SMOOTH_SIGMOID = Neuron(
    rate="1/(1 + exp(-4*({s} - 0.5)))",
    settled="1/(1 + exp(-4*({s} - 0.5)))",
    step="s + (dt/tau)*(-s + 4*r*(1 - r)*({drive})){noise}",
    sensitive=(-1.0, 2.0),  # where ρ' is at least 1 % of its maximum
)


@dataclass(frozen=True)
class HopfieldStructure(LayeredStructure):
    """Everything that changes the generated code of one build (:meth:`HopfieldCircuit.build`).

    ``readout``: ``"rate"`` or ``"spiking"``; ``p_fail``: compiled default of every projection's
    release-failure probability (spiking only); ``plasticity``: the rules compiled in (any of
    ``"two-phase"``, ``"continual"``); ``reciprocal``: ``"tied"`` (one symmetric weight per pair)
    or ``"untied"`` (separate forward ``w`` and backward ``wb``); ``example_ms``: length of one
    example (compiles the per-example restart and, with ``"two-phase"``, the update; a multiple
    of dt); ``measure``: the continual rule's accumulators ``dW``/``db``; ``noise``: Langevin
    noise, ``sigma`` its compiled default (the run-time ``layer{k}.sigma``); ``record``:
    variables per group (default :func:`default_record`; ``{}`` none) every ``record_dt_ms``
    (default dt); ``weight_record_dt_ms``: also record every ``w`` that often;
    ``timed_dt_ms``: sampling steps of the TimedArray inputs (one value, or one per name;
    default dt); ``examples``: examples per run (the run length is compiled in; it sizes the
    recordings in :meth:`HopfieldCircuit.cost`); ``batch``: copies of the circuit simulated side
    by side (batch mode, module docstring; two-phase rule only); ``population``: spiking cells
    per unit (populations, module docstring; 1: the unit is one cell); ``learn_from``: what the
    two-phase rule reads, ``"rates"`` (ρ(s), the default) or ``"spike-traces"`` (the units' spike
    traces ν, module docstring: *Plasticity from spike traces*; spiking read-out only).
    """

    sizes: Sequence[int] = field(
        metadata={"description": "layer sizes [n0, ..., nN]; default: the data set's in/out, "
                  "100 hidden"}
    )  # fmt: skip
    readout: str = "rate"
    p_fail: float = 0.0
    plasticity: tuple[str, ...] = ()
    reciprocal: str = "tied"
    example_ms: float | None = None
    measure: bool = False
    noise: bool = False
    sigma: float = 0.0
    record: Mapping[str, Sequence[str]] | None = None
    record_dt_ms: float | None = None
    weight_record_dt_ms: float | None = None
    timed_dt_ms: float | Mapping[str, float] | None = None
    examples: int = 1
    batch: int = field(
        default=1,
        metadata={"description": "examples simulated side by side, one shared weight per "
                  "synapse, their changes summed (mini-batch); 1: one example at a time",
                  "ge": 1},
    )  # fmt: skip
    population: int = population_field()
    learn_from: str = "rates"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(_check_sizes(self.sizes)))
        object.__setattr__(self, "plasticity", tuple(self.plasticity))

    @property
    def two_phase(self) -> bool:
        return "two-phase" in self.plasticity

    @property
    def continual(self) -> bool:
        return "continual" in self.plasticity

    @property
    def untied(self) -> bool:
        return self.reciprocal == "untied"

    @property
    def pooled(self) -> bool:
        """Spiking units of n > 1 cells, read through one trace ``X`` per unit."""
        return self.spiking and self.population > 1

    @property
    def spike_traces(self) -> bool:
        """The two-phase rule reads the units' spike traces ν, not their rates."""
        return self.learn_from == "spike-traces"

    def check(self, params: HopfieldParams, dt_ms: float) -> None:
        """Refuse a structure that cannot be built, in one sentence."""
        check_readout(self.readout, self.p_fail)
        _check_reciprocal(self.reciprocal)
        unknown_rules = set(self.plasticity) - set(RULES)
        if unknown_rules:
            raise ValueError(f"plasticity rules must be among {RULES}, got {sorted(unknown_rules)}")
        if self.two_phase and self.example_ms is None:
            raise ValueError("the two-phase rule is applied once per example: give example_ms")
        if self.measure and not self.continual:
            raise ValueError("measure=True accumulates the continual rule: add it to plasticity")
        if self.learn_from not in LEARN_FROM:
            raise ValueError(f"learn_from must be one of {LEARN_FROM}, got {self.learn_from!r}")
        if self.spike_traces and not self.spiking:
            raise ValueError(
                "learn_from='spike-traces' reads spike traces: the rate read-out fires no spikes "
                "(use readout='spiking', or learn from rates)"
            )
        if self.spike_traces and (self.continual or not self.two_phase):
            raise ValueError(
                "learn_from='spike-traces' is the two-phase rule on spike traces: compile "
                "plasticity=('two-phase',) alone (the continual rule reads rates)"
            )
        if self.example_ms is not None:
            _steps(self.example_ms, dt_ms, "example_ms")
        check_population(self.population, self.spiking)
        check_batch(self.batch)
        if self.batch > 1 and self.continual:
            raise ValueError(
                "batch mode sums the copies' changes once per example: it takes the two-phase "
                "rule, not the continual one"
            )
        if self.spiking:
            readout = SpikingReadout(params.max_rate_hz, params.tau_s)
            try:
                readout.check_dt(dt_ms)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None


@dataclass
class _Parts:
    """What the build functions share: the structure, names and the runners with their slots."""

    structure: HopfieldStructure
    namespace: dict[str, Any]
    threshold: str | None
    per_example: Any
    input_drive_per_example: bool
    neuron: Neuron
    #: n > 1 cells per unit (``structure.pooled``): their definition; None otherwise
    population: Population | None = None
    runners: list[tuple[Any, tuple[str, int]]] = field(default_factory=list)


class HopfieldCircuit(Circuit):
    """The layered Hopfield circuit of this module; subclass it and set :attr:`neuron` for
    another neuron model (the protocols that accept ``hopfield`` accept its subclasses)."""

    name = NAME
    summary = (
        "Layered continuous-time Hopfield circuit (hard-sigmoid units, symmetric weights) for "
        "Equilibrium Propagation: two-phase end-point and continual (ds/dt) rules, rate or spiking"
    )
    Params = HopfieldParams
    Structure = HopfieldStructure
    configurable = ("sizes", "batch", "population")
    #: the neuron model of layers 1..N (the hook for user-written neurons)
    neuron: ClassVar[Neuron] = Neuron()
    schedule = {
        "monitor": ("start", -60),
        "apply": ("start", -50),
        "batch_sum": ("start", -49),
        "batch_apply": ("start", -48),
        "restart": ("start", -45),
        "rate": ("start", -40),
        "cell_rate": ("start", -39),
        "summed": ("start", -10),
        "dynamics": ("start", -5),
        "hebb": ("groups", -2),
        "synapse_update": ("groups", -1),
        "neuron_update": ("groups", 0),
    }

    # ------------------------------------------------------------------ the interface
    def neuron_for(self, params: HopfieldParams) -> Neuron:
        """The neuron model of a build: :attr:`neuron` (the hard sigmoid unless a subclass sets
        another), or the smooth sigmoid where ``params.activation`` asks for it."""
        if params.activation == "hard_sigmoid":
            return self.neuron
        if self.neuron != Neuron():
            raise ValueError(
                f"circuit {self.name!r} has its own neuron model; activation "
                f"{params.activation!r} is for the built-in neuron"
            )
        return SMOOTH_SIGMOID

    def build(
        self,
        structure: HopfieldStructure,
        params: HopfieldParams,
        timed: Mapping[str, np.ndarray],
        *,
        dt_ms: float,
    ) -> CircuitBuild:
        """Create the groups, synapses and monitors of one layered Hopfield circuit (module
        docstring). Weights, biases, learning rates and states default to 0 and are given per
        run as ``values`` (:meth:`weight_values`, :meth:`eta_values`). Monitors are returned by
        group (``'layer1'``), by projection (``'W1'``) and as ``'spikes_<group>'``."""
        s = structure
        s.check(params, dt_ms)
        cells = [n * s.batch for n in s.sizes]  # B copies of every layer, copy-major
        tas = _timed_arrays(timed, self.timed_names(s), cells, dt_ms, s.timed_dt_ms)
        readout = SpikingReadout(params.max_rate_hz, params.tau_s)
        population = Population(s.population, readout) if s.pooled else None
        # n > 1: the cells fire, the units keep the trace (the unit groups have no threshold)
        constants = population.namespace() if population else readout.namespace()
        parts = _Parts(
            structure=s,
            namespace={"tau": params.tau * ms, **constants, **tas},
            threshold=readout.threshold if s.spiking and not s.pooled else None,
            per_example=s.example_ms * ms if s.example_ms is not None else None,
            input_drive_per_example=(
                s.example_ms is not None
                and not s.spiking
                and not s.continual
                and math.isclose(_sample_dt(s.timed_dt_ms, "inputs", dt_ms), s.example_ms)
            ),
            neuron=self.neuron_for(params),
            population=population,
        )
        layers = [self._input_layer(parts)]
        layers += [self._layer(parts, k) for k in range(1, s.n_layers + 1)]
        on_spike = NU_JUMP.format(n=s.population, post="_post") if s.spike_traces else None
        pops = [population.build(g, s.p_fail, on_spike) for g in layers] if population else []
        for pop in pops:  # the cells' rates: their units' of this step, before the thresholds
            for updater in pop.pool.summed_updaters.values():
                set_slot(updater, self.slot("cell_rate"))
        synapses, connectivity = [], {}
        for k in range(1, s.n_layers + 1):
            syn, connectivity[f"W{k}"] = self._projection(parts, layers, k)
            synapses.append(syn)
        ties: list[Any] = []
        if s.batch > 1 and s.two_phase:
            for k in range(1, s.n_layers + 1):
                weights = ("w", "wb") if k >= 2 and s.untied else ("w",)
                for owner, n_shared, names in (
                    (synapses[k - 1], s.sizes[k - 1] * s.sizes[k], weights),
                    (layers[k], s.sizes[k], ("b",)),
                ):
                    # each copy's change delta_<v>, summed and added once per example
                    sums, tie, connectivity[f"{owner.name}_tie"] = tie_copies(
                        owner, n_shared, s.batch,
                        {f"sum_{v}": f"delta_{v}_post" for v in names},
                        "\n".join(f"{v}_post = {v}_post + sum_{v}_pre" for v in names),
                        sum_slot=self.slot("batch_sum"), apply_slot=self.slot("batch_apply"),
                        every=parts.per_example,
                    )  # fmt: skip
                    ties += [sums, tie]
        for runner, slot in parts.runners:
            set_slot(runner, slot)
        monitors = self._monitors(s, layers, synapses, dt_ms, pops)
        pop_objects = [obj for pop in pops for obj in (pop.cells, pop.pool)]
        return CircuitBuild(
            objects=[*layers, *pop_objects, *synapses, *ties, *monitors.values()],
            namespace={},
            timed_arrays=tas,
            connectivity=connectivity,
            monitors=monitors,
        )

    def weight_shapes(self, structure: HopfieldStructure) -> dict[str, tuple[int, ...]]:
        return weight_shapes(structure.sizes, structure.reciprocal)

    def weight_values(
        self, structure: HopfieldStructure, weights: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        return weight_values(weights, structure.sizes, structure.reciprocal, structure.batch)

    def weights_from_state(
        self, structure: HopfieldStructure, state: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        return weights_from_state(state, structure.sizes, structure.reciprocal)

    def timed_names(self, structure: HopfieldStructure) -> tuple[str, ...]:
        return timed_names(structure.plasticity, structure.example_ms, structure.learn_from)

    def cost(self, structure: HopfieldStructure) -> Cost:
        """Cells and dense projections with the variables each keeps, and the recordings over
        one run of ``examples`` examples."""
        s = structure
        sizes, B = s.sizes, s.batch
        tied = B > 1 and s.two_phase  # batch mode: the copies' changes and their sums
        per_cell = 7 + s.two_phase + s.measure + tied + s.pooled + 2 * s.spike_traces
        traces = 2 * (s.spiking and not s.pooled)  # n > 1: one trace per unit, not per synapse
        per_synapse = 1 + s.untied + s.measure + traces + tied * (1 + s.untied) + s.spike_traces
        groups = {f"layer{k}": (n * B, per_cell) for k, n in enumerate(sizes)}
        projections = {
            f"W{k}": (sizes[k - 1], sizes[k] * B, per_synapse) for k in range(1, len(sizes))
        }
        if s.pooled:  # n cells per unit (a linked rate), one pool synapse per cell
            for k, n in enumerate(sizes):
                groups[f"layer{k}_cells"] = (s.population * n * B, 1)
                projections[f"layer{k}_pool"] = (s.population, n * B, 0)
        if tied:
            for k in range(1, len(sizes)):
                groups[f"W{k}_sum"] = (sizes[k - 1] * sizes[k], 1 + s.untied)
                groups[f"layer{k}_sum"] = (sizes[k], 1)
                projections[f"W{k}_tie"] = (sizes[k - 1] * sizes[k], B, 0)
                projections[f"layer{k}_tie"] = (sizes[k], B, 0)
        recorded = 0
        if s.example_ms is not None and s.record_dt_ms:
            rows = s.examples * s.example_ms / s.record_dt_ms
        else:
            rows = s.examples
        record = default_record(sizes) if s.record is None else s.record
        for gname, variables in record.items():
            k = int(gname.removeprefix("layer"))
            recorded += int(rows * sizes[k] * B * len(variables))
        if s.weight_record_dt_ms and s.example_ms is not None:
            w_rows = s.examples * s.example_ms / s.weight_record_dt_ms
            weights = sum(sizes[k - 1] * sizes[k] * B for k in range(1, len(sizes)))
            recorded += int(w_rows * weights)
        return dense_cost(groups, projections, recorded)

    # ------------------------------------------------------------------ run values
    def state_keys(self, structure: HopfieldStructure) -> tuple[str, ...]:
        return state_keys(
            structure.sizes,
            readout=structure.readout,
            reciprocal=structure.reciprocal,
            population=structure.population,
        )

    eta_values = staticmethod(eta_values)
    back_eta_values = staticmethod(back_eta_values)
    p_fail_values = staticmethod(p_fail_values)
    spike_counts = staticmethod(spike_counts)
    timed_values = staticmethod(timed_values)
    example_timed = staticmethod(example_timed)
    duration_ms = staticmethod(duration_ms)
    batch_rows = staticmethod(batch_rows)
    unbatch_rows = staticmethod(unbatch_rows)
    sampling_steps = staticmethod(sampling_steps)

    # ------------------------------------------------------------------ the parts of a build
    def _input_layer(self, parts: _Parts) -> NeuronGroup:
        """``layer0``: clamped to ρ(inputs(t, i)); ``s`` holds the same value after the step."""
        two_phase = parts.structure.two_phase
        eqs = "s : 1\nr : 1\n" + ("rl : 1\n" if two_phase else "")
        layer0 = self._group(parts, parts.structure.sizes[0], eqs, "layer0")
        rate = layer0.run_regularly("r = clip(inputs(t, i), 0, 1)", name="layer0_rate")
        parts.runners.append((rate, self.slot("rate")))
        update0 = "s = r"
        if two_phase:
            update0 += "\nrl = rl + latch(t)*(r - rl)"
        update = layer0.run_regularly(update0, name="layer0_update")
        parts.runners.append((update, self.slot("neuron_update")))
        return layer0

    def _layer(self, parts: _Parts, k: int) -> NeuronGroup:
        """``layer{k}``, k ≥ 1: the neuron's step into ``s_next``/``rdot``, then the update."""
        s, neuron = parts.structure, parts.neuron
        top = k == s.n_layers
        eqs = ["s : 1", "r : 1", "s_next : 1", "rdot : 1", "b : 1", "up : 1"]
        drive = "up + b"
        if not top:
            eqs.append("down : 1")
            drive = "up + down + b"
        if top:
            drive += " + beta(t)*(targets(t, i) - r)"
        noise_term = ""
        if s.noise:
            eqs.append("sigma : 1 (shared, constant)")
            noise_term = " + sigma*sqrt(dt/ms)*randn()"
        if s.continual:
            eqs.append("eta_bc : 1 (shared, constant)")
        if s.measure:
            eqs.append("db : 1")
        if s.two_phase:
            eqs += [
                "rl : 1",
                "beta_l : 1 (shared)",
                "beta_h : 1 (shared)",
                "eta_b : 1 (shared, constant)",
            ]
        if s.two_phase and s.batch > 1:
            eqs.append("delta_b : 1")
        if s.spike_traces:  # the phase gate of this step and the bias's accumulator
            eqs += ["g_nu : 1 (shared)", "dhebb_b/dt = g_nu*nu/ms : 1"]
        g = self._group(parts, s.sizes[k], "\n".join(eqs), f"layer{k}")
        if s.noise:
            g.sigma = s.sigma
        dynamics = (
            f"s_next = {neuron.step.format(drive=drive, noise=noise_term)}\n"
            f"rdot = ({neuron.settled_of('s_next')} - r)/{_STEP}"
        )
        parts.runners += [
            (
                g.run_regularly(f"r = {neuron.rate_of('s')}", name=f"layer{k}_rate"),
                self.slot("rate"),
            ),
            (g.run_regularly(dynamics, name=f"layer{k}_dynamics"), self.slot("dynamics")),
            (
                g.run_regularly(self._layer_update(s, neuron), name=f"layer{k}_update"),
                self.slot("neuron_update"),
            ),
        ]
        if s.spike_traces:
            gate = g.run_regularly("g_nu = hebb_gate(t)", name=f"layer{k}_gate")
            parts.runners.append((gate, self.slot("rate")))
        if parts.per_example is not None:
            restart = g.run_regularly(
                "s = s*(1 - restart(t))", dt=parts.per_example, name=f"layer{k}_restart"
            )
            parts.runners.append((restart, self.slot("restart")))
        if s.two_phase:
            gain = _safe_inverse("eta_b", "beta_h - beta_l")
            settled = neuron.settled_of("s")
            # batch mode: each copy's change, summed over the copies by _tie
            target = "delta_b = " if s.batch > 1 else "b = b + "
            change = f"{gain}*({settled} - rl)"
            if s.spike_traces:  # the gated trace accumulated over the example, then cleared
                change = "eta_b*hebb_b\nhebb_b = 0"
            apply = g.run_regularly(
                f"{target}{change}", dt=parts.per_example, name=f"layer{k}_apply"
            )
            parts.runners.append((apply, self.slot("apply")))
        return g

    def _group(self, parts: _Parts, size: int, eqs: str, name: str) -> NeuronGroup:
        """The units of one layer (B copies): with the spiking read-out each unit is a cell
        firing at its rate; with populations (n > 1) the units fire nothing and keep the trace
        ``X`` of their cells' spikes (its decay in the synaptic-trace slot, as the traces of
        n = 1)."""
        kwargs: dict[str, Any] = {}
        traces = [parts.population.unit_trace] if parts.population is not None else []
        if parts.structure.spike_traces:  # the trace ν plasticity reads
            traces.append(SPIKE_TRACE)
            if parts.population is None:  # the unit is the cell: its spikes raise ν
                kwargs["reset"] = NU_JUMP.format(n=1, post="")
        if traces:
            eqs = "\n".join([eqs.rstrip(), *traces])
            kwargs["method"] = "euler"
        g = NeuronGroup(
            size * parts.structure.batch,
            eqs,
            threshold=parts.threshold,
            name=name,
            namespace=parts.namespace,
            **kwargs,
        )
        if traces:
            set_slot(g.state_updater, self.slot("synapse_update"))
        return g

    def _layer_update(self, s: HopfieldStructure, neuron: Neuron) -> str:
        """The end of a step of layer k ≥ 1: continual bias rule, accumulators, s = s_next,
        latches (shared statements first)."""
        gain = _safe_inverse("plastic(t)", "beta(t)")
        update = []
        if s.two_phase:
            update += ["beta_h = beta(t)", "beta_l = beta_l + latch(t)*(beta(t) - beta_l)"]
        if s.continual:
            update.append(f"b = b + eta_bc*{gain}*rdot*{_STEP}")
        if s.measure:
            update.append(f"db = db + {gain}*rdot*{_STEP}")
        update.append("s = s_next")
        if s.two_phase:
            update.append(f"rl = rl + latch(t)*({neuron.settled_of('s')} - rl)")
        return "\n".join(update)

    def _synapse_equations(self, s: HopfieldStructure, k: int) -> tuple[list[str], Any, Any]:
        """Equations, on_pre and on_post of ``W{k}``: sums both ways, spike traces with release
        failure (spiking), the continual rule and its accumulator, or a plain weight."""
        backward = k >= 2  # layer 0 is clamped: W1 carries nothing down
        back = backward and s.untied  # a separate backward weight wb
        if s.pooled:  # the populations' traces, one per unit
            pre_q, post_q = "X_pre", "X_post"
        else:
            pre_q, post_q = ("x", "xb") if s.spiking else ("r_pre", "r_post")
        eqs = [f"up_post = w*{pre_q} : 1 (summed)"]
        if backward:
            eqs.append(f"down_pre = {'wb' if back else 'w'}*{post_q} : 1 (summed)")
        on_pre = on_post = None
        if s.spiking and not s.pooled:
            eqs += [trace("x"), RELEASE_FAILURE]
            on_pre = transmit("x")
            if backward:
                eqs.append(trace("xb"))
                on_post = transmit("xb")
        if s.continual:
            product = "rdot_post*r_pre"
            if backward:
                product += f" + r_post*rdot_pre + centred*{_STEP}*rdot_post*rdot_pre"
            eqs += [
                f"G = {_safe_inverse('plastic(t)', 'beta(t)')}*({product}) : 1",
                "dw/dt = eta_c*G/ms : 1 (clock-driven)",
                "eta_c : 1 (shared, constant)",
                "centred : 1 (shared, constant)",
            ]
            if back:
                eqs += [
                    "dwb/dt = eta_c_back*G/ms : 1 (clock-driven)",
                    "eta_c_back : 1 (shared, constant)",
                ]
            if s.measure:
                eqs.append("ddW/dt = G/ms : 1 (clock-driven)")
        else:
            eqs.append("w : 1")
            if back:
                eqs.append("wb : 1")
        if s.spike_traces:  # Hebbian product of the two units' spike traces, gated by phase
            eqs.append("dhebb/dt = g_nu_post*nu_pre*nu_post/ms : 1 (clock-driven)")
        if s.two_phase:
            eqs.append("eta : 1 (shared, constant)")
            if back:
                eqs.append("eta_back : 1 (shared, constant)")
            if s.batch > 1:
                eqs.append("delta_w : 1")
                if back:
                    eqs.append("delta_wb : 1")
        return eqs, on_pre, on_post

    def _projection(
        self, parts: _Parts, layers: Sequence[NeuronGroup], k: int
    ) -> tuple[Synapses, tuple[np.ndarray, np.ndarray]]:
        """``W{k}`` (layer k−1 → layer k), dense, explicit ``i``, ``j`` in (post, pre) order."""
        s = parts.structure
        eqs, on_pre, on_post = self._synapse_equations(s, k)
        syn_namespace = {
            key: v for key, v in parts.namespace.items() if key not in ("inputs", "targets")
        }
        syn = Synapses(
            layers[k - 1],
            layers[k],
            "\n".join(eqs),
            on_pre=on_pre,
            on_post=on_post,
            method="euler",
            name=f"W{k}",
            namespace=syn_namespace,
        )
        i, j = batched_connectivity(s.sizes[k - 1], s.sizes[k], s.batch)
        syn.connect(i=i, j=j)
        if s.spiking and not s.pooled:
            syn.p_fail = s.p_fail
        for updater in syn.summed_updaters.values():
            set_slot(updater, self.slot("summed"))
            if k == 1 and parts.input_drive_per_example:
                # W1 ρ(x) is constant within an example (clamped input, W1 changes only at the
                # example boundaries): summed once, at each example's first step
                on_own_clock(updater, parts.per_example, "W1_summed_clock")
        if syn.state_updater is not None:
            # spike traces: the products read the units' traces ν before these decay
            slot = "hebb" if s.spike_traces else "synapse_update"
            set_slot(syn.state_updater, self.slot(slot))
        if s.two_phase:
            parts.runners.append((self._synapse_apply(syn, s, k, parts), self.slot("apply")))
        return syn, (i, j)

    def _synapse_apply(self, syn: Synapses, s: HopfieldStructure, k: int, parts: _Parts) -> Any:
        """The two-phase update of ``W{k}`` at the start of every example (and of ``wb``, the
        same ρ_iρ_j difference at the backward synapse's own rate)."""
        post = _factor(parts.neuron.settled_of("s_post"))
        pre = "s_pre" if k == 1 else _factor(parts.neuron.settled_of("s_pre"))  # input: s is ρ
        difference = f"{post}*{pre} - rl_post*rl_pre"
        # batch mode: each copy's change, summed over the copies by _tie
        w_to, wb_to = ("delta_w = ", "delta_wb = ") if s.batch > 1 else ("w = w + ", "wb = wb + ")
        if s.spike_traces:  # the gated trace products accumulated over the example, cleared
            apply = f"{w_to}eta*hebb"
            if k >= 2 and s.untied:
                apply += f"\n{wb_to}eta_back*hebb"
            return syn.run_regularly(f"{apply}\nhebb = 0", dt=parts.per_example, name=f"W{k}_apply")
        apply = f"{w_to}{_safe_inverse('eta', 'beta_h_post - beta_l_post')}*({difference})"
        if k >= 2 and s.untied:
            gain_b = _safe_inverse("eta_back", "beta_h_post - beta_l_post")
            apply += f"\n{wb_to}{gain_b}*({difference})"
        return syn.run_regularly(apply, dt=parts.per_example, name=f"W{k}_apply")

    def _monitors(
        self,
        s: HopfieldStructure,
        layers: Sequence[NeuronGroup],
        synapses: Sequence[Synapses],
        dt_ms: float,
        pops: Sequence[PopulationParts] = (),
    ) -> dict[str, Any]:
        """State monitors by group and by projection, at the start of every step, and spikes:
        every cell's (``spikes_<group>``) with one cell per unit; with populations the spike
        trains of the units' first cells (indexed as the units) and every cell's spike count
        (``counts_<group>``, no spike times: cheap at any n)."""
        groups = {g.name: g for g in layers}
        monitors: dict[str, Any] = {}
        rec = default_record(s.sizes) if s.record is None else dict(s.record)
        rec_dt = (s.record_dt_ms if s.record_dt_ms is not None else dt_ms) * ms
        for gname, variables in rec.items():
            if gname not in groups:
                raise ValueError(f"cannot record {gname!r}: the circuit has {sorted(groups)}")
            if variables:
                mon = StateMonitor(
                    groups[gname], list(variables), record=True, dt=rec_dt, name=f"mon_{gname}"
                )
                set_slot(mon, self.slot("monitor"))
                monitors[gname] = mon
        if s.weight_record_dt_ms is not None:
            for syn in synapses:
                recorded: str | list[str] = ["w", "wb"] if "wb" in syn.variables else "w"
                mon = StateMonitor(
                    syn,
                    recorded,
                    record=True,
                    dt=s.weight_record_dt_ms * ms,
                    name=f"mon_{syn.name}",
                )
                set_slot(mon, self.slot("monitor"))
                monitors[syn.name] = mon
        if s.spiking and not pops:
            for g in layers:
                monitors[f"spikes_{g.name}"] = SpikeMonitor(g, name=f"spikes_{g.name}")
        for g, pop in zip(layers, pops, strict=False):
            monitors[f"spikes_{g.name}"] = SpikeMonitor(pop.first_cells, name=f"spikes_{g.name}")
            monitors[f"counts_{g.name}"] = SpikeMonitor(
                pop.cells, record=False, name=f"counts_{g.name}"
            )
        return monitors


#: the registered circuit
CIRCUIT = register_circuit(HopfieldCircuit())

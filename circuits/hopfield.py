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

**Synapses.** ``W{k}`` (layer k−1 → layer k) is one dense ``Synapses`` object per weight matrix,
connected with explicit ``i``, ``j`` in row-major (post, pre) order (synapse ``post*n_pre + pre``,
:func:`matrix_to_w`), carrying the *one* symmetric weight both ways (DESIGN.md §3):
``up_post = w ρ_pre (summed)`` and, for k ≥ 2, ``down_pre = w ρ_post (summed)``. Biases are the
per-cell state ``layer{k}.b``.

**Read-out.** ``readout="rate"``: the summed quantities are the rates ρ. ``readout="spiking"``:
every cell (the input too) fires Poisson spikes at rate ρ·``rate_scale`` (``rand() < r·rate·dt``)
and each synapse keeps a trace per direction — ``x`` of the presynaptic spikes (summed into
``up``), ``xb`` of the postsynaptic ones (summed into ``down``) — decaying with τ_s and jumping by
``1/(rate_scale·τ_s)`` per transmitted spike, so that its mean is the rate; each spike is
transmitted with probability 1 − ``p_fail`` (``(shared, constant)`` per projection: release
failure, spiking dropout), as in :mod:`circuits.microcircuit`. The learning rules read the rates
ρ(s) each cell keeps, not the traces.

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

**Schedule** (DESIGN.md §3; tested): every step t → t + dt, every term at time t:

1. ``start`` −60: the state monitors: s(t) as the previous step left it, before this step's
   per-example events (other recorded variables hold the values computed in the previous step);
2. ``start`` −50: per-example, every example_ms: apply the two-phase update (``*_apply``);
3. ``start`` −45: per-example: restart the states (``layer{k}_restart``);
4. ``start`` −40: rates r = ρ(s) (input: ρ(inputs(t, i))) (``*_rate``);
5. ``start`` −10: summed updaters (up, down). The input drive ``W1 ρ(x)`` is constant within an
   example when the input is sampled once per example, the read-out is ``rate`` and W1 has no
   continual rule (it then changes only at example boundaries): it is summed once per example,
   at the example's first step (a per-example clock), which saves most of a 64-100-10 step;
6. ``start`` −5: the projected Euler step into ``s_next`` and ``rdot`` (``layer{k}_dynamics``);
7. ``groups`` −1: synaptic state updaters (continual rule, accumulators, spike traces);
8. ``groups`` 0: neuron updates: continual bias rule, ``s = s_next``, latches (``*_update``);
   then thresholds and spike transmission (a spike of step t enters the sums at t + dt).

The continual rule thus reads ρ'ṡ of the *current* step (6 before 7) with ρ from its start (4).

``TimedArray`` inputs (:func:`timed_names`): ``inputs`` (rows × n0), ``targets`` (rows × nN,
target rates d), ``beta`` (rows); with the rules ``plastic`` (continual), ``latch`` (two-phase),
``restart`` (with ``example_ms``; one row per example), each sampled every ``timed_dt_ms`` (per
name; a multiple of dt; the last row holds after the end). :func:`example_timed` lays out P
examples of free and nudged phases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import Clock, Hz, NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, ms

from neurosim.connectivity import dense_connectivity, matrix_to_w, w_to_matrix
from neurosim.engine import CircuitBuild
from neurosim.registry import register_circuit
from neurosim.schedule import set_slot as _set_slot
from neurosim.schedule import slot_rank as _slot_rank

NAME = "hopfield"
READOUTS = ("rate", "spiking")
RECIPROCAL = ("tied", "untied")
RULES = ("two-phase", "continual")
BASE_INPUTS = ("inputs", "targets", "beta")

#: schedule slots (when, order) of the circuit's code objects; see the module docstring
MONITOR_SLOT = ("start", -60)
APPLY_SLOT = ("start", -50)
RESTART_SLOT = ("start", -45)
RATE_SLOT = ("start", -40)
SUMMED_SLOT = ("start", -10)
DYNAMICS_SLOT = ("start", -5)
SYNAPSE_UPDATE_SLOT = ("groups", -1)
NEURON_UPDATE_SLOT = ("groups", 0)

__all__ = [
    "NAME",
    "HopfieldParams",
    "back_eta_values",
    "build",
    "dense_connectivity",
    "duration_ms",
    "eta_values",
    "example_timed",
    "matrix_to_w",
    "p_fail_values",
    "schedule",
    "state_keys",
    "timed_names",
    "timed_values",
    "w_to_matrix",
    "weight_shapes",
    "weight_values",
    "weights_from_state",
]


@dataclass(frozen=True)
class HopfieldParams:
    """Constants compiled into the circuit (times in ms).

    ``tau``: the time constant of the dynamics (the twin's unit of time); ``tau_s``: the synaptic
    trace time constant of the spiking read-out; ``rate_scale_hz``: spike rate at ρ = 1;
    ``sigma``: the default Langevin amplitude (in 1/√ms; a run-time parameter once built with
    noise).
    """

    tau: float = 1.0
    tau_s: float = 3.0
    rate_scale_hz: float = 1000.0
    sigma: float = 0.0


# ------------------------------------------------------------------------------ weight layout
def _check_sizes(sizes: Sequence[int]) -> list[int]:
    sizes = [int(n) for n in sizes]
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must list at least two positive layer sizes, got {sizes}")
    return sizes


def _n_layers(sizes: Sequence[int]) -> int:
    return len(_check_sizes(sizes)) - 1


def _check_reciprocal(reciprocal: str) -> str:
    if reciprocal not in RECIPROCAL:
        raise ValueError(f"reciprocal must be one of {RECIPROCAL}, got {reciprocal!r}")
    return reciprocal


def weight_shapes(sizes: Sequence[int], reciprocal: str = "tied") -> dict[str, tuple[int, ...]]:
    """Every parameter and its shape, as the twin names them: ``W{k}`` (n_k, n_{k−1}) — the
    symmetric weight between layers k−1 and k — and ``b{k}`` (n_k,); with ``reciprocal="untied"``
    also ``W{k}_back`` (n_k, n_{k−1}), k ≥ 2, the backward weights (entry [i, j]: cell i of layer
    k → cell j of layer k−1)."""
    sizes = _check_sizes(sizes)
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(1, len(sizes)):
        shapes[f"W{k}"] = (sizes[k], sizes[k - 1])
    if _check_reciprocal(reciprocal) == "untied":
        for k in range(2, len(sizes)):
            shapes[f"W{k}_back"] = (sizes[k], sizes[k - 1])
    for k in range(1, len(sizes)):
        shapes[f"b{k}"] = (sizes[k],)
    return shapes


def weight_values(
    weights: Mapping[str, Any], sizes: Sequence[int] | None = None, reciprocal: str = "tied"
) -> dict[str, np.ndarray]:
    """Named parameters (``W{k}`` matrices, ``b{k}`` vectors, ``W{k}_back`` of an untied circuit;
    numpy or torch) → run values ``{'W1.w': ..., 'layer1.b': ..., 'W2.wb': ...}``. With
    ``sizes``, every shape is checked first."""
    shapes = weight_shapes(sizes, reciprocal) if sizes is not None else None
    out: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        arr = np.array(value.detach().cpu() if hasattr(value, "detach") else value, dtype=float)
        if shapes is not None:
            if name not in shapes:
                raise ValueError(f"unknown parameter {name!r} for sizes {list(sizes)}")
            if arr.shape != shapes[name]:
                raise ValueError(f"{name} has shape {arr.shape}, expected {shapes[name]}")
        if name.startswith("W") and name.endswith("_back"):
            out[f"{name[: -len('_back')]}.wb"] = matrix_to_w(arr)
        elif name.startswith("W"):
            out[f"{name}.w"] = matrix_to_w(arr)
        elif name.startswith("b"):
            if arr.ndim != 1:
                raise ValueError(f"{name} must be a vector, got shape {arr.shape}")
            out[f"layer{name[1:]}.b"] = arr.copy()
        else:
            raise ValueError(f"unknown parameter {name!r}: names are W1.., b1..")
    return out


def weights_from_state(
    state: Mapping[str, np.ndarray], sizes: Sequence[int], reciprocal: str = "tied"
) -> dict[str, np.ndarray]:
    """The parameters found in a run's ``state`` (``'W1.w'``, ``'layer1.b'``, ``'W2.wb'``...)."""
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(sizes, reciprocal).items():
        if name.endswith("_back"):
            key = f"{name[: -len('_back')]}.wb"
        else:
            key = f"{name}.w" if name.startswith("W") else f"layer{name[1:]}.b"
        if key in state:
            if name.startswith("W"):
                out[name] = w_to_matrix(state[key], *shape)
            else:
                out[name] = np.array(state[key], dtype=float).reshape(shape)
    return out


def _per_layer(value: float | Sequence[float], n_layers: int, what: str) -> list[float]:
    values = [float(value)] * n_layers if np.ndim(value) == 0 else [float(v) for v in value]
    if len(values) != n_layers or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} needs one finite value or {n_layers}, got {value!r}")
    return values


def eta_values(
    sizes: Sequence[int],
    *,
    two_phase: float | Sequence[float] | None = None,
    continual: float | Sequence[float] | None = None,
) -> dict[str, float]:
    """Learning rates for ``Simulation.run``: one value, or one per layer k = 1..N (applied to
    ``W{k}`` and ``b{k}``). ``two_phase`` → ``W{k}.eta`` and ``layer{k}.eta_b``, ``continual`` →
    ``W{k}.eta_c`` and ``layer{k}.eta_bc``; a rule left at
    ``None`` is not listed (it must be compiled in for its rate to be given)."""
    n = _n_layers(sizes)
    out: dict[str, float] = {}
    for rule, var, bias_var in ((two_phase, "eta", "eta_b"), (continual, "eta_c", "eta_bc")):
        if rule is None:
            continue
        for k, value in enumerate(_per_layer(rule, n, var), start=1):
            out[f"W{k}.{var}"] = value
            out[f"layer{k}.{bias_var}"] = value
    return out


def back_eta_values(
    sizes: Sequence[int],
    *,
    two_phase: float | Sequence[float] | None = None,
    continual: float | Sequence[float] | None = None,
) -> dict[str, float]:
    """Learning rates of the backward weights of an untied circuit (``reciprocal="untied"``): one
    value, or one per layer k = 1..N (the value for k = 1 is unused: the input is clamped and has
    no backward weights). ``two_phase`` → ``W{k}.eta_back``, ``continual`` → ``W{k}.eta_c_back``,
    k ≥ 2; 0 freezes them."""
    n = _n_layers(sizes)
    out: dict[str, float] = {}
    for rule, var in ((two_phase, "eta_back"), (continual, "eta_c_back")):
        if rule is None:
            continue
        for k, value in enumerate(_per_layer(rule, n, var), start=1):
            if k >= 2:
                out[f"W{k}.{var}"] = value
    return out


def p_fail_values(sizes: Sequence[int], p_fail: float) -> dict[str, float]:
    """The release-failure probability of every projection (spiking read-out)."""
    return {f"W{k}.p_fail": float(p_fail) for k in range(1, _n_layers(sizes) + 1)}


def state_keys(
    sizes: Sequence[int], *, readout: str = "rate", reciprocal: str = "tied"
) -> tuple[str, ...]:
    """The state carried from one run into the next: states, weights, biases (and spike traces;
    the backward weights of an untied circuit).

    Rates, sums, latches and accumulators are recomputed or restart at 0 in every run.
    """
    n = _n_layers(sizes)
    keys = [f"layer{k}.s" for k in range(1, n + 1)]
    keys += [f"W{k}.w" for k in range(1, n + 1)]
    keys += [f"layer{k}.b" for k in range(1, n + 1)]
    if _check_reciprocal(reciprocal) == "untied":
        keys += [f"W{k}.wb" for k in range(2, n + 1)]
    if readout == "spiking":
        keys += [f"W{k}.x" for k in range(1, n + 1)]
        keys += [f"W{k}.xb" for k in range(2, n + 1)]
    return tuple(keys)


def default_record(sizes: Sequence[int]) -> dict[str, tuple[str, ...]]:
    """The states s of layers 1..N."""
    return {f"layer{k}": ("s",) for k in range(1, _n_layers(sizes) + 1)}


def timed_names(plasticity: Sequence[str] = (), example_ms: float | None = None) -> tuple[str, ...]:
    """The TimedArray inputs a build with these options needs."""
    names = list(BASE_INPUTS)
    if "continual" in plasticity:
        names.append("plastic")
    if "two-phase" in plasticity:
        names.append("latch")
    if example_ms is not None:
        names.append("restart")
    return tuple(names)


def _rows(value: float | np.ndarray, rows: int) -> np.ndarray:
    if np.ndim(value) == 0:
        return np.full(rows, float(value))
    return np.asarray(value, dtype=float)


def timed_values(
    inputs: np.ndarray,
    n_out: int,
    *,
    targets: np.ndarray | None = None,
    beta: float | np.ndarray = 0.0,
    plastic: float | np.ndarray | None = None,
    latch: float | np.ndarray | None = None,
    restart: float | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """TimedArray values: scalars broadcast to one value per row of ``inputs``; ``plastic``,
    ``latch``, ``restart`` only when given (see :func:`timed_names`)."""
    inputs = np.asarray(inputs, dtype=float)
    rows = inputs.shape[0]
    out = {
        "inputs": inputs,
        "targets": (
            np.zeros((rows, n_out)) if targets is None else np.asarray(targets, dtype=float)
        ),
        "beta": _rows(beta, rows),
    }
    for name, value in (("plastic", plastic), ("latch", latch), ("restart", restart)):
        if value is not None:
            out[name] = _rows(value, rows)
    return out


def _steps(value_ms: float, dt_ms: float, what: str) -> int:
    n = round(value_ms / dt_ms)
    if n < 1 or abs(n * dt_ms - value_ms) > 1e-9 * max(1.0, value_ms):
        raise ValueError(f"{what} ({value_ms} ms) must be a positive multiple of dt ({dt_ms} ms)")
    return n


def example_timed(
    inputs: np.ndarray,
    targets: np.ndarray,
    beta: float | Sequence[float],
    *,
    free_ms: float,
    nudged_ms: float,
    dt_ms: float,
    symmetric: bool | Sequence[bool] = False,
    restart: float | Sequence[float] = 1.0,
    plastic: bool = True,
    phases: int | None = None,
    names: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """P examples (rows of ``inputs``, ``targets``) laid out for a build with ``example_ms``:
    returns the TimedArray values (all six), their sampling steps and ``example_ms``.

    Two-phase example: free phase (β = 0, ``latch`` 1) for ``free_ms``, then nudged at β
    (``plastic`` 1) for ``nudged_ms``. Symmetric example (``symmetric`` per example or for all):
    free, then −β with ``latch`` 1, then +β with ``plastic`` 0.5 (the continual rule then
    integrates from −β to +β over 2β), each nudged phase ``nudged_ms`` long. ``phases``: 2 (free,
    nudged) or 3 (free and two nudged phases; a two-phase example is then nudged for
    2·``nudged_ms``); default 3 if any example is symmetric. ``beta``: one value
    or one per example; ``restart``: start each example from s = 0 (1) or go on (0); ``plastic``:
    False leaves the continual gate at 0 throughout; ``names``: keep only these inputs (those of
    the build, :func:`timed_names`; default all six). ``beta``, ``latch`` and ``plastic`` end
    with one neutral row (all 0) for the extra step of :func:`duration_ms`.
    """
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float))
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    p = inputs.shape[0]
    if targets.shape[0] != p:
        raise ValueError(f"{p} inputs but {targets.shape[0]} targets")
    betas = _rows(np.asarray(beta, dtype=float), p)
    sym = np.broadcast_to(np.asarray(symmetric, dtype=bool), (p,))
    n_free, n_nudged = _steps(free_ms, dt_ms, "free_ms"), _steps(nudged_ms, dt_ms, "nudged_ms")
    unit = math.gcd(n_free, n_nudged)  # phase rows, in steps
    per_phase_free, per_phase_nudged = n_free // unit, n_nudged // unit
    n_phases = (3 if sym.any() else 2) if phases is None else int(phases)
    if n_phases not in (2, 3) or (sym.any() and n_phases == 2):
        raise ValueError(f"phases must be 2 or 3 (3 with symmetric examples), got {phases!r}")
    example_steps = n_free + (n_phases - 1) * n_nudged
    beta_rows, latch_rows, plastic_rows = [], [], []
    for e in range(p):
        b = betas[e]
        beta_rows += [0.0] * per_phase_free
        if sym[e]:
            latch_rows += [0.0] * per_phase_free + [1.0] * per_phase_nudged
            plastic_rows += [0.0] * (per_phase_free + per_phase_nudged)
            beta_rows += [-b] * per_phase_nudged + [b] * per_phase_nudged
            latch_rows += [0.0] * per_phase_nudged
            plastic_rows += [0.5] * per_phase_nudged
        else:
            latch_rows += [1.0] * per_phase_free + [0.0] * per_phase_nudged
            plastic_rows += [0.0] * per_phase_free + [1.0] * per_phase_nudged
            beta_rows += [b] * per_phase_nudged
            if n_phases == 3:  # pad to the common example length with more nudged steps
                beta_rows += [b] * per_phase_nudged
                latch_rows += [0.0] * per_phase_nudged
                plastic_rows += [1.0] * per_phase_nudged
    example_ms = example_steps * dt_ms
    timed = timed_values(
        inputs,
        targets.shape[1],
        targets=targets,
        beta=np.zeros(p),
        restart=_rows(np.asarray(restart, dtype=float), p),
    )
    # one more row, for the step after the last example (:func:`duration_ms`): no nudging, no
    # latching and no continual plasticity there
    timed["beta"] = np.array([*beta_rows, 0.0])
    timed["latch"] = np.array([*latch_rows, 0.0])
    timed["plastic"] = np.array([*plastic_rows, 0.0]) * float(plastic)
    if names is not None:
        timed = {name: timed[name] for name in names}
    phase_ms = unit * dt_ms
    timed_dt = {
        "inputs": example_ms,
        "targets": example_ms,
        "restart": example_ms,
        "beta": phase_ms,
        "latch": phase_ms,
        "plastic": phase_ms,
    }
    return timed, timed_dt, example_ms


def duration_ms(n_examples: int, example_ms: float, dt_ms: float) -> float:
    """The run length for ``n_examples`` examples: one step more, so that the last example's
    two-phase update (applied at t = n·example_ms) is made within the run. That extra step also
    runs the dynamics (after the restart, if the last example's ``restart`` is 1): ``beta``,
    ``plastic`` and ``latch`` should be 0 there (:func:`example_timed` appends such a row), and
    the final state is one step past the end of the last example (the monitors hold the state
    at its end)."""
    return n_examples * example_ms + dt_ms


# ------------------------------------------------------------------------------ the builder
def _timed_arrays(
    timed: Mapping[str, np.ndarray],
    names: tuple[str, ...],
    sizes: list[int],
    dt_ms: float,
    timed_dt_ms: float | Mapping[str, float] | None,
) -> dict[str, TimedArray]:
    unknown = set(timed) - set(names)
    if unknown:
        raise ValueError(
            f"unknown TimedArray input(s) for this build: {', '.join(sorted(unknown))} "
            f"(it takes {', '.join(names)})"
        )
    expected_cols = {"inputs": sizes[0], "targets": sizes[-1]}
    arrays = {}
    for name in names:
        if name not in timed:
            raise ValueError(f"missing the TimedArray input {name!r}")
        values = np.asarray(timed[name], dtype=float)
        if name in expected_cols:
            if values.ndim != 2 or values.shape[1] != expected_cols[name]:
                raise ValueError(
                    f"{name} must have shape (rows, {expected_cols[name]}), got {values.shape}"
                )
        elif values.ndim != 1:
            raise ValueError(f"{name} must be one value per row, got shape {values.shape}")
        sample_dt = _sample_dt(timed_dt_ms, name, dt_ms)
        _steps(sample_dt, dt_ms, f"the sampling step of {name}")
        arrays[name] = TimedArray(values, dt=sample_dt * ms, name=name)
    return arrays


def _sample_dt(timed_dt_ms: float | Mapping[str, float] | None, name: str, dt_ms: float) -> float:
    """The sampling step (ms) of the TimedArray ``name`` (default: dt)."""
    if isinstance(timed_dt_ms, Mapping):
        return float(timed_dt_ms.get(name, dt_ms))
    return float(timed_dt_ms) if timed_dt_ms is not None else dt_ms


def _safe_inverse(numerator: str, denominator: str) -> str:
    """numerator/denominator as Brian2 text, 0 where the denominator is 0."""
    d = f"({denominator})"
    return f"({numerator})*int({d} != 0)/({d} + int({d} == 0))"


_RUNNER_KINDS = ("apply", "restart", "rate", "dynamics", "update")


def schedule(build: CircuitBuild) -> list[tuple[str, str, str, int]]:
    """The circuit's code objects in execution order within one step: (kind, name, when, order).

    ``kind``: ``'monitor'``, ``'apply'``, ``'restart'``, ``'rate'``, ``'summed'``,
    ``'dynamics'``, ``'synapse_update'``, ``'update'`` (the neuron updates), ``'threshold'``,
    ``'spikes'``. Ties of (when, order) break by name in Brian2; the circuit never relies on them.
    """
    rows: list[tuple[str, Any]] = []
    for obj in build.objects:
        if isinstance(obj, NeuronGroup | Synapses):
            for runner in obj.contained_objects:
                kind = runner.name.rsplit("_", 1)[-1]
                if kind in _RUNNER_KINDS:
                    rows.append((kind, runner))
        if isinstance(obj, NeuronGroup):
            if getattr(obj, "thresholder", None):
                rows += [("threshold", t) for t in obj.thresholder.values()]
        elif isinstance(obj, Synapses):
            rows += [("summed", u) for u in obj.summed_updaters.values()]
            if obj.state_updater is not None:
                rows.append(("synapse_update", obj.state_updater))
            rows += [("spikes", p) for p in obj._pathways]
        elif isinstance(obj, StateMonitor):
            rows.append(("monitor", obj))
    table = [(kind, o.name, o.when, int(o.order)) for kind, o in rows]
    return sorted(table, key=lambda row: (_slot_rank(row[2]), row[3], row[1]))


def build(
    params: HopfieldParams,
    sizes: Sequence[int],
    timed: Mapping[str, np.ndarray],
    *,
    dt_ms: float,
    readout: str = "rate",
    p_fail: float = 0.0,
    plasticity: Sequence[str] = (),
    reciprocal: str = "tied",
    example_ms: float | None = None,
    measure: bool = False,
    noise: bool | None = None,
    record: Mapping[str, Sequence[str]] | None = None,
    record_dt_ms: float | None = None,
    weight_record_dt_ms: float | None = None,
    timed_dt_ms: float | Mapping[str, float] | None = None,
) -> CircuitBuild:
    """Create the groups, synapses and monitors of one layered Hopfield circuit (module
    docstring).

    ``readout``: ``"rate"`` or ``"spiking"``; ``p_fail``: compiled default of every projection's
    release-failure probability (spiking only); ``plasticity``: the rules compiled in (any of
    ``"two-phase"``, ``"continual"``); ``example_ms``: length of one example (compiles the
    per-example restart and, with ``"two-phase"``, the update; a multiple of dt); ``measure``:
    the continual rule's accumulators ``dW``/``db``; ``noise``: Langevin noise (default: when
    ``params.sigma > 0``; σ is then the run-time ``layer{k}.sigma``); ``record``: variables per
    group (default :func:`default_record`; ``{}`` none) every ``record_dt_ms`` (default dt);
    ``weight_record_dt_ms``: also record every ``w`` that often; ``timed_dt_ms``: sampling steps
    of the TimedArray inputs (one value, or one per name; default dt); ``reciprocal``: ``"tied"``
    (one symmetric weight per pair) or ``"untied"`` (separate forward ``w`` and backward ``wb``,
    each with its own copy of the rules; module docstring).

    Weights, biases, learning rates and states default to 0 and are given per run as ``values``
    (:func:`weight_values`, :func:`eta_values`). Monitors are returned by group (``'layer1'``),
    by projection (``'W1'``) and as ``'spikes_<group>'``.
    """
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    untied = _check_reciprocal(reciprocal) == "untied"
    if not 0.0 <= p_fail <= 1.0:
        raise ValueError(f"p_fail must lie in [0, 1], got {p_fail}")
    if readout == "rate" and p_fail != 0.0:
        raise ValueError("release failure (p_fail > 0) needs the spiking read-out")
    plasticity = tuple(plasticity)
    unknown_rules = set(plasticity) - set(RULES)
    if unknown_rules:
        raise ValueError(f"plasticity rules must be among {RULES}, got {sorted(unknown_rules)}")
    two_phase, continual = "two-phase" in plasticity, "continual" in plasticity
    if two_phase and example_ms is None:
        raise ValueError("the two-phase rule is applied once per example: give example_ms")
    if measure and not continual:
        raise ValueError("measure=True accumulates the continual rule: add it to plasticity")
    if example_ms is not None:
        _steps(example_ms, dt_ms, "example_ms")
    spiking = readout == "spiking"
    if spiking and params.rate_scale_hz * dt_ms * 1e-3 > 1.0:
        raise ValueError(
            f"rate_scale_hz·dt = {params.rate_scale_hz * dt_ms * 1e-3} > 1: at most one spike "
            "per step; lower dt or rate_scale_hz"
        )
    sizes = _check_sizes(sizes)
    n = len(sizes) - 1
    with_noise = params.sigma > 0 if noise is None else bool(noise)
    tas = _timed_arrays(timed, timed_names(plasticity, example_ms), sizes, dt_ms, timed_dt_ms)

    namespace: dict[str, Any] = {
        "tau": params.tau * ms,
        "tau_s": params.tau_s * ms,
        "rate_scale": params.rate_scale_hz * Hz,
        "x_jump": 1.0 / (params.rate_scale_hz * params.tau_s * 1e-3),
        **tas,
    }
    syn_namespace = {k: v for k, v in namespace.items() if k not in ("inputs", "targets")}
    threshold = "rand() < r*rate_scale*dt" if spiking else None
    # 1/β(t), 0 where β = 0, times the gate: the continual rule's gain (scalar, hoisted)
    continual_gain = _safe_inverse("plastic(t)", "beta(t)")
    step = "(dt/ms)"
    runners: list[tuple[Any, tuple[str, int]]] = []
    per_example = example_ms * ms if example_ms is not None else None
    input_drive_per_example = (
        example_ms is not None
        and not spiking
        and not continual
        and math.isclose(_sample_dt(timed_dt_ms, "inputs", dt_ms), example_ms)
    )

    # ---------------------------------------------------------------- layers
    layer0 = NeuronGroup(
        sizes[0],
        "s : 1\nr : 1\n" + ("rl : 1\n" if two_phase else ""),
        threshold=threshold,
        name="layer0",
        namespace=namespace,
    )
    runners.append(
        (layer0.run_regularly("r = clip(inputs(t, i), 0, 1)", name="layer0_rate"), RATE_SLOT)
    )
    update0 = "s = r"
    if two_phase:
        update0 += "\nrl = rl + latch(t)*(r - rl)"
    runners.append((layer0.run_regularly(update0, name="layer0_update"), NEURON_UPDATE_SLOT))
    layers: list[NeuronGroup] = [layer0]
    for k in range(1, n + 1):
        top = k == n
        eqs = ["s : 1", "r : 1", "s_next : 1", "rdot : 1", "b : 1", "up : 1"]
        drive = "up + b"
        if not top:
            eqs.append("down : 1")
            drive = "up + down + b"
        if top:
            drive += " + beta(t)*(targets(t, i) - r)"
        noise_term = ""
        if with_noise:
            eqs.append("sigma : 1 (shared, constant)")
            noise_term = " + sigma*sqrt(dt/ms)*randn()"
        if continual:
            eqs.append("eta_bc : 1 (shared, constant)")
        if measure:
            eqs.append("db : 1")
        if two_phase:
            eqs += [
                "rl : 1",
                "beta_l : 1 (shared)",
                "beta_h : 1 (shared)",
                "eta_b : 1 (shared, constant)",
            ]
        g = NeuronGroup(
            sizes[k], "\n".join(eqs), threshold=threshold, name=f"layer{k}", namespace=namespace
        )
        if with_noise:
            g.sigma = params.sigma
        dynamics = (
            f"s_next = clip(s + (dt/tau)*(-s + {drive}){noise_term}, 0, 1)\n"
            f"rdot = (s_next - r)/{step}"
        )
        update = []
        if two_phase:  # shared (scalar) statements first
            update += ["beta_h = beta(t)", "beta_l = beta_l + latch(t)*(beta(t) - beta_l)"]
        if continual:
            update.append(f"b = b + eta_bc*{continual_gain}*rdot*{step}")
        if measure:
            update.append(f"db = db + {continual_gain}*rdot*{step}")
        update.append("s = s_next")
        if two_phase:
            update.append("rl = rl + latch(t)*(s - rl)")
        runners += [
            (g.run_regularly("r = clip(s, 0, 1)", name=f"layer{k}_rate"), RATE_SLOT),
            (g.run_regularly(dynamics, name=f"layer{k}_dynamics"), DYNAMICS_SLOT),
            (g.run_regularly("\n".join(update), name=f"layer{k}_update"), NEURON_UPDATE_SLOT),
        ]
        if per_example is not None:
            restart_runner = g.run_regularly(
                "s = s*(1 - restart(t))", dt=per_example, name=f"layer{k}_restart"
            )
            runners.append((restart_runner, RESTART_SLOT))
        if two_phase:
            gain = _safe_inverse("eta_b", "beta_h - beta_l")
            runners.append(
                (
                    g.run_regularly(
                        f"b = b + {gain}*(s - rl)", dt=per_example, name=f"layer{k}_apply"
                    ),
                    APPLY_SLOT,
                )
            )
        layers.append(g)

    # ---------------------------------------------------------------- synapses
    synapses: list[Synapses] = []
    connectivity: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k in range(1, n + 1):
        backward = k >= 2  # layer 0 is clamped: W1 carries nothing down
        pre_q, post_q = ("x", "xb") if spiking else ("r_pre", "r_post")
        eqs = [f"up_post = w*{pre_q} : 1 (summed)"]
        back = backward and untied  # a separate backward weight wb
        if backward:
            eqs.append(f"down_pre = {'wb' if back else 'w'}*{post_q} : 1 (summed)")
        on_pre = on_post = None
        if spiking:
            eqs += ["dx/dt = -x/tau_s : 1 (clock-driven)", "p_fail : 1 (shared, constant)"]
            on_pre = "x += int(rand() > p_fail)*x_jump"
            if backward:
                eqs.append("dxb/dt = -xb/tau_s : 1 (clock-driven)")
                on_post = "xb += int(rand() > p_fail)*x_jump"
        if continual:
            product = "rdot_post*r_pre"
            if backward:
                product += f" + r_post*rdot_pre + centred*{step}*rdot_post*rdot_pre"
            eqs += [
                f"G = {continual_gain}*({product}) : 1",
                "dw/dt = eta_c*G/ms : 1 (clock-driven)",
                "eta_c : 1 (shared, constant)",
                "centred : 1 (shared, constant)",
            ]
            if back:
                eqs += [
                    "dwb/dt = eta_c_back*G/ms : 1 (clock-driven)",
                    "eta_c_back : 1 (shared, constant)",
                ]
            if measure:
                eqs.append("ddW/dt = G/ms : 1 (clock-driven)")
        else:
            eqs.append("w : 1")
            if back:
                eqs.append("wb : 1")
        if two_phase:
            eqs.append("eta : 1 (shared, constant)")
            if back:
                eqs.append("eta_back : 1 (shared, constant)")
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
        i, j = dense_connectivity(sizes[k - 1], sizes[k])
        syn.connect(i=i, j=j)
        connectivity[syn.name] = (i, j)
        if spiking:
            syn.p_fail = p_fail
        for updater in syn.summed_updaters.values():
            _set_slot(updater, SUMMED_SLOT)
            if k == 1 and input_drive_per_example:
                # W1 ρ(x) is constant within an example (clamped input, W1 changes only at the
                # example boundaries): compute it once, at each example's first step, after the
                # update and the input's rates of that step. Brian2 puts summed updaters on the
                # target's clock, hence the private attribute.
                updater._clock = Clock(dt=per_example, name="W1_summed_clock")
        if syn.state_updater is not None:
            _set_slot(syn.state_updater, SYNAPSE_UPDATE_SLOT)
        if two_phase:
            gain = _safe_inverse("eta", "beta_h_post - beta_l_post")
            apply = f"w = w + {gain}*(s_post*s_pre - rl_post*rl_pre)"
            if back:  # the same ρ_iρ_j difference, at the backward synapse's own rate
                gain_b = _safe_inverse("eta_back", "beta_h_post - beta_l_post")
                apply += f"\nwb = wb + {gain_b}*(s_post*s_pre - rl_post*rl_pre)"
            runners.append(
                (
                    syn.run_regularly(
                        apply,
                        dt=per_example,
                        name=f"W{k}_apply",
                    ),
                    APPLY_SLOT,
                )
            )
        synapses.append(syn)
    for runner, slot in runners:
        _set_slot(runner, slot)

    # ---------------------------------------------------------------- monitors
    groups = {g.name: g for g in layers}
    monitors: dict[str, Any] = {}
    rec = default_record(sizes) if record is None else dict(record)
    rec_dt = (record_dt_ms if record_dt_ms is not None else dt_ms) * ms
    for gname, variables in rec.items():
        if gname not in groups:
            raise ValueError(f"cannot record {gname!r}: the circuit has {sorted(groups)}")
        if variables:
            mon = StateMonitor(
                groups[gname], list(variables), record=True, dt=rec_dt, name=f"mon_{gname}"
            )
            _set_slot(mon, MONITOR_SLOT)
            monitors[gname] = mon
    if weight_record_dt_ms is not None:
        for syn in synapses:
            recorded: str | list[str] = ["w", "wb"] if "wb" in syn.variables else "w"
            mon = StateMonitor(
                syn, recorded, record=True, dt=weight_record_dt_ms * ms, name=f"mon_{syn.name}"
            )
            _set_slot(mon, MONITOR_SLOT)
            monitors[syn.name] = mon
    if spiking:
        for g in layers:
            monitors[f"spikes_{g.name}"] = SpikeMonitor(g, name=f"spikes_{g.name}")

    return CircuitBuild(
        objects=[*layers, *synapses, *monitors.values()],
        namespace={},
        timed_arrays=tas,
        connectivity=connectivity,
        monitors=monitors,
    )


register_circuit(
    NAME,
    "Layered continuous-time Hopfield circuit (hard-sigmoid units, symmetric weights) for "
    "Equilibrium Propagation: two-phase end-point and continual (ds/dt) rules, rate or spiking",
    build,
)

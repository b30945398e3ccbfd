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
``readout="spiking"``: every cell fires Poisson spikes at rate ``φ(u)·rate_scale`` and each synapse
keeps a trace ``x`` (τ_s) that jumps by ``1/(rate_scale·τ_s)`` per transmitted spike, so that its
mean equals the rate; a spike is transmitted with probability ``1 − p_fail`` (release failure,
spiking dropout; ``p_fail`` a ``(shared, constant)`` parameter of each projection, not rescaled).
The postsynaptic factors of the learning rules stay rates (the soma knows its own φ(u)).

**Plasticity** (always on; each induction term I low-pass filtered, τ_w dΔ/dt = I − Δ, then
dw/dt = η·plastic(t)·Δ, η a ``(shared, constant)`` parameter ``eta`` per projection, 0 disables):

* ``W{k}``:   I = (φ(u_k) − φ(v̂_B,k)) r_{k−1},  v̂_B = g_B/(g_lk + g_B + g_A) vB
  (g_B/(g_lk + g_B) vB at the output);
* ``WIP{k}``: I = (φ(uI_k) − φ(v̂_I,k)) r_k,     v̂_I = g_D/(g_lk + g_D) vI;
* ``WPI{k}``: I = (0 − vA_k) r^I_k;
* ``B{k}`` with ``topdown="learned"``: I = (φ(u_k) − φ(vA_td,k)) r_{k+1}; fixed otherwise.

**Schedule** (DESIGN.md §3; tested): every step t → t + dt, forward Euler, every term at time t:

1. ``before_start``: r = φ(u) of every group (``constant over dt``);
2. ``start``, order −10: all summed updaters (vB, vA_td, vA_int, vI, u_next);
3. ``start``, order −5: per-cell plasticity factors φ(v̂) (``phi_vhat``; ``phi_td``), from the sums;
4. ``start``, order 0: the state monitors (so a sample at t holds u(t) with vB(t) = W r(t));
5. ``groups``, order −1: synaptic state updaters (Δ, w, traces);
6. ``groups``, order 0: neuron state updaters; then thresholds and spike transmission (a spike
   emitted in step t enters the traces in step t and the sums in step t + dt).

``TimedArray`` inputs: ``inputs`` (rows × n0), ``targets`` (rows × nN, target *potentials*),
``nudge`` (rows) and ``plastic`` (rows), each sampled every ``timed_dt_ms`` (per name, a multiple
of dt; the last row holds after the end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import (
    Hz,
    NeuronGroup,
    SpikeMonitor,
    StateMonitor,
    Synapses,
    TimedArray,
    ms,
)

from neurosim.connectivity import dense_connectivity, matrix_to_w, w_to_matrix
from neurosim.engine import CircuitBuild
from neurosim.neurons import logistic, logistic_expr, soft_relu, soft_relu_expr
from neurosim.registry import register_circuit
from neurosim.schedule import set_slot as _set_slot
from neurosim.schedule import slot_rank as _slot_rank

NAME = "microcircuit"
TIMED_INPUTS = ("inputs", "targets", "nudge", "plastic")
READOUTS = ("rate", "spiking")
TOPDOWN = ("fixed", "learned", "tied")

#: schedule slots (when, order) of the circuit's code objects; see the module docstring
SUMMED_SLOT = ("start", -10)
FACTOR_SLOT = ("start", -5)
MONITOR_SLOT = ("start", 0)
SYNAPSE_UPDATE_SLOT = ("groups", -1)
NEURON_UPDATE_SLOT = ("groups", 0)


@dataclass(frozen=True)
class MicrocircuitParams:
    """Parameters of DESIGN.md §4.2 (dimensionless; conductances in 1/ms; times in ms).

    ``phi`` is ``"soft_relu"`` (γ log(1 + e^{β(u − θ)})) or ``"logistic"`` (1/(1 + e^{−u})).
    ``sigma`` is the default background-noise amplitude of the hidden somata (a run-time
    parameter once the circuit is built with noise); ``rate_scale_hz`` converts φ to a spike rate.
    """

    g_lk: float = 0.1
    g_B: float = 1.0
    g_A: float = 0.8
    g_D: float = 1.0
    g_som: float = 0.8
    phi: str = "soft_relu"
    gamma: float = 0.1
    beta: float = 1.0
    theta: float = 3.0
    tau_in: float = 3.0
    tau_s: float = 3.0
    tau_w: float = 30.0
    sigma: float = 0.0
    rate_scale_hz: float = 1000.0

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

    def self_predicting_factor(self, next_is_output: bool) -> float:
        """c in W^IP_k = c W_{k+1} of the self-predicting state (DESIGN.md §4.2)."""
        gain = self.output_basal_gain if next_is_output else self.hidden_basal_gain
        return gain / self.inter_dendrite_gain


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    sizes = [int(n) for n in sizes]
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must list at least two positive layer sizes, got {sizes}")
    return sizes


def weight_shapes(sizes: Sequence[int], topdown: str = "fixed") -> dict[str, tuple[int, int]]:
    """Every weighted projection of the circuit and its (n_post, n_pre) matrix shape."""
    sizes = _check_sizes(sizes)
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
    """The weight matrices found in a run's ``state`` (keys ``'W1.w'``, ...)."""
    return {
        name: w_to_matrix(state[f"{name}.w"], *shape)
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
    sizes = _check_sizes(sizes)
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


def p_fail_values(sizes: Sequence[int], p_fail: float, topdown: str = "fixed") -> dict[str, float]:
    """The release-failure probability of every projection (spiking read-out)."""
    return {f"{name}.p_fail": p_fail for name in weight_shapes(sizes, topdown)}


def state_keys(
    sizes: Sequence[int], *, topdown: str = "fixed", readout: str = "rate"
) -> tuple[str, ...]:
    """The state carried from one run into the next (read it at the end, pass it as ``values``).

    The dendritic sums, rates and plasticity factors are recomputed at the start of every step.
    """
    sizes = _check_sizes(sizes)
    n_layers = len(sizes) - 1
    keys = ["layer0.r0"]
    keys += [f"layer{k}.u" for k in range(1, n_layers + 1)]
    keys += [f"inter{k}.uI" for k in range(1, n_layers)]
    for name in weight_shapes(sizes, topdown):
        keys.append(f"{name}.w")
        if not (name.startswith("B") and topdown == "fixed"):
            keys.append(f"{name}.Delta")
        if readout == "spiking":
            keys.append(f"{name}.x")
            if topdown == "tied" and name.startswith("W") and name[1:].isdigit():
                if int(name[1:]) >= 2:
                    keys.append(f"{name}.xb")
    return tuple(keys)


def default_record(sizes: Sequence[int]) -> dict[str, tuple[str, ...]]:
    """The potentials recorded by default: r0; u, vB, vA of hidden cells; u, vB; uI, vI."""
    sizes = _check_sizes(sizes)
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
        "nudge": np.broadcast_to(np.asarray(nudge, dtype=float), (rows,)).copy()
        if np.ndim(nudge) == 0
        else np.asarray(nudge, dtype=float),
        "plastic": np.broadcast_to(np.asarray(plastic, dtype=float), (rows,)).copy()
        if np.ndim(plastic) == 0
        else np.asarray(plastic, dtype=float),
    }


# ------------------------------------------------------------------------------ the builder
def _timed_arrays(
    timed: Mapping[str, np.ndarray],
    sizes: list[int],
    dt_ms: float,
    timed_dt_ms: float | Mapping[str, float] | None,
) -> dict[str, TimedArray]:
    expected_cols = {"inputs": sizes[0], "targets": sizes[-1]}
    arrays = {}
    for name in TIMED_INPUTS:
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
        if isinstance(timed_dt_ms, Mapping):
            sample_dt = float(timed_dt_ms.get(name, dt_ms))
        else:
            sample_dt = float(timed_dt_ms) if timed_dt_ms is not None else dt_ms
        ratio = sample_dt / dt_ms
        if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(
                f"the sampling step of {name} ({sample_dt} ms) must be a multiple of dt"
            )
        arrays[name] = TimedArray(values, dt=sample_dt * ms, name=name)
    unknown = set(timed) - set(TIMED_INPUTS)
    if unknown:
        raise ValueError(f"unknown TimedArray input(s): {', '.join(sorted(unknown))}")
    return arrays


def schedule(build: CircuitBuild) -> list[tuple[str, str, str, int]]:
    """The circuit's code objects in execution order within one step: (kind, name, when, order).

    ``kind`` is ``'rate'`` (r = φ(u) stored), ``'summed'``, ``'factors'`` (φ(v̂)),
    ``'synapse_update'``, ``'neuron_update'``, ``'monitor'``, ``'threshold'`` or ``'spikes'``.
    Brian2 breaks ties of (when, order) by name; the circuit never relies on that.
    """
    rows: list[tuple[str, Any]] = []
    for obj in build.objects:
        if isinstance(obj, NeuronGroup):
            rows.append(("neuron_update", obj.state_updater))
            if obj.subexpression_updater is not None:
                rows.append(("rate", obj.subexpression_updater))
            if getattr(obj, "thresholder", None):
                rows += [("threshold", t) for t in obj.thresholder.values()]
            rows += [("factors", o) for o in obj.contained_objects if "_factors" in o.name]
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
    params: MicrocircuitParams,
    sizes: Sequence[int],
    timed: Mapping[str, np.ndarray],
    *,
    dt_ms: float,
    readout: str = "rate",
    p_fail: float = 0.0,
    topdown: str = "fixed",
    noise: bool | None = None,
    record: Mapping[str, Sequence[str]] | None = None,
    record_dt_ms: float | None = 1.0,
    weight_record_dt_ms: float | None = None,
    timed_dt_ms: float | Mapping[str, float] | None = None,
) -> CircuitBuild:
    """Create the groups, synapses and monitors of one microcircuit (see the module docstring).

    ``readout``: ``"rate"`` or ``"spiking"``; ``p_fail``: compiled default of every projection's
    release-failure probability (spiking only); ``topdown``: ``"fixed"``, ``"learned"`` or
    ``"tied"``; ``noise``: include σ ξ(t) in the hidden somata (default: when ``params.sigma > 0``;
    σ is then the run-time parameter ``layer{k}.sigma``); ``record``: variables to record per
    group (default :func:`default_record`; ``{}`` records none) every ``record_dt_ms``;
    ``weight_record_dt_ms``: also record every projection's ``w`` that often; ``timed_dt_ms``: the
    sampling step of the TimedArray inputs (one value, or one per name; default ``dt_ms``).

    Weights, learning rates and initial state default to 0 and are given per run as ``values``
    (:func:`weight_values`, :func:`eta_values`). Monitors are returned by group (``'layer1'``),
    by projection (``'W1'``, weights) and as ``'spikes_<group>'``.
    """
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if topdown not in TOPDOWN:
        raise ValueError(f"topdown must be one of {TOPDOWN}, got {topdown!r}")
    if not 0.0 <= p_fail <= 1.0:
        raise ValueError(f"p_fail must lie in [0, 1], got {p_fail}")
    if readout == "rate" and p_fail != 0.0:
        raise ValueError("release failure (p_fail > 0) needs the spiking read-out")
    params.phi_expr("u")  # validates params.phi
    sizes = _check_sizes(sizes)
    n_layers = len(sizes) - 1
    spiking = readout == "spiking"
    with_noise = params.sigma > 0 if noise is None else bool(noise)
    tas = _timed_arrays(timed, sizes, dt_ms, timed_dt_ms)
    phi = params.phi_expr

    namespace: dict[str, Any] = {
        "g_lk": params.g_lk,
        "g_B": params.g_B,
        "g_A": params.g_A,
        "g_D": params.g_D,
        "g_som": params.g_som,
        "tau_in": params.tau_in * ms,
        "tau_s": params.tau_s * ms,
        "tau_w": params.tau_w * ms,
        "rate_scale": params.rate_scale_hz * Hz,
        "x_jump": 1.0 / (params.rate_scale_hz * params.tau_s * 1e-3),
    }
    # synapses see only the plasticity gate: ``targets`` is also a Synapses-internal name
    syn_namespace = {**namespace, "plastic": tas["plastic"]}
    namespace.update(tas)
    threshold = "rand() < r*rate_scale*dt" if spiking else None

    def group(n: int, eqs: str, name: str) -> NeuronGroup:
        g = NeuronGroup(n, eqs, threshold=threshold, method="euler", name=name, namespace=namespace)
        _set_slot(g.state_updater, NEURON_UPDATE_SLOT)
        return g

    layers: list[NeuronGroup] = [
        group(sizes[0], "dr0/dt = (inputs(t, i) - r0)/tau_in : 1\nr = r0 : 1", "layer0")
    ]
    factor_runners = []
    for k in range(1, n_layers + 1):
        if k < n_layers:
            noise_term = " + sigma*xi*ms**-0.5" if with_noise else ""
            eqs = f"""
            du/dt = (-g_lk*u + g_B*(vB - u) + g_A*(vA - u))/ms{noise_term} : 1
            vA = vA_td + vA_int : 1
            vB : 1
            vA_td : 1
            vA_int : 1
            r = {phi("u")} : 1 (constant over dt)
            phi_vhat : 1
            """
            factors = f"phi_vhat = {phi(f'{params.hidden_basal_gain!r}*vB')}"
            if topdown == "learned":
                eqs += "phi_td : 1\n"
                factors += f"\nphi_td = {phi('vA_td')}"
            if with_noise:
                eqs += "sigma : 1 (shared, constant)\n"
        else:
            eqs = f"""
            du/dt = (-g_lk*u + g_B*(vB - u) + g_som*nudge(t)*(u_target - u))/ms : 1
            u_target = targets(t, i) : 1
            vB : 1
            r = {phi("u")} : 1 (constant over dt)
            phi_vhat : 1
            """
            factors = f"phi_vhat = {phi(f'{params.output_basal_gain!r}*vB')}"
        g = group(sizes[k], eqs, f"layer{k}")
        if with_noise and k < n_layers:
            g.sigma = params.sigma
        factor_runners.append(g.run_regularly(factors, name=f"layer{k}_factors"))
        layers.append(g)
    inters: list[NeuronGroup] = []
    for k in range(1, n_layers):
        g = group(
            sizes[k + 1],
            f"""
            duI/dt = (-g_lk*uI + g_D*(vI - uI) + g_som*(u_next - uI))/ms : 1
            vI : 1
            u_next : 1
            r = {phi("uI")} : 1 (constant over dt)
            phi_vhat : 1
            """,
            f"inter{k}",
        )
        factor_runners.append(
            g.run_regularly(
                f"phi_vhat = {phi(f'{params.inter_dendrite_gain!r}*vI')}", name=f"inter{k}_factors"
            )
        )
        inters.append(g)
    for runner in factor_runners:
        _set_slot(runner, FACTOR_SLOT)

    synapses: list[Synapses] = []
    connectivity: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pre_quantity = "x" if spiking else "r_pre"

    def projection(
        name: str,
        source: NeuronGroup,
        target: NeuronGroup,
        summed_target: str,
        induction: str | None,
        backward_target: str | None = None,
    ) -> Synapses:
        eqs = [f"{summed_target}_post = w*{pre_quantity} : 1 (summed)"]
        if induction is None:
            eqs.append("w : 1")
        on_pre = on_post = None
        if spiking:
            eqs += ["dx/dt = -x/tau_s : 1 (clock-driven)", "p_fail : 1 (shared, constant)"]
            on_pre = "x += int(rand() > p_fail)*x_jump"
        if backward_target is not None:  # tied top-down weights: the same w carried backwards
            if spiking:
                eqs += [
                    f"{backward_target}_pre = w*xb : 1 (summed)",
                    "dxb/dt = -xb/tau_s : 1 (clock-driven)",
                ]
                on_post = "xb += int(rand() > p_fail)*x_jump"
            else:
                eqs.append(f"{backward_target}_pre = w*r_post : 1 (summed)")
        if induction is not None:
            eqs += [
                f"dDelta/dt = (({induction})*{pre_quantity} - Delta)/tau_w : 1 (clock-driven)",
                "dw/dt = eta*plastic(t)*Delta/ms : 1 (clock-driven)",
                "eta : 1 (shared, constant)",
            ]
        syn = Synapses(
            source,
            target,
            "\n".join(eqs),
            on_pre=on_pre,
            on_post=on_post,
            method="euler",
            name=name,
            namespace=syn_namespace,
        )
        i, j = dense_connectivity(len(source), len(target))
        syn.connect(i=i, j=j)
        if spiking:
            syn.p_fail = p_fail
        connectivity[name] = (i, j)
        synapses.append(syn)
        return syn

    for k in range(1, n_layers + 1):
        tied_back = "vA_td" if (topdown == "tied" and k >= 2) else None
        projection(f"W{k}", layers[k - 1], layers[k], "vB", "r_post - phi_vhat_post", tied_back)
    for k in range(1, n_layers):
        if topdown != "tied":
            rule = "r_post - phi_td_post" if topdown == "learned" else None
            projection(f"B{k}", layers[k + 1], layers[k], "vA_td", rule)
        projection(f"WPI{k}", inters[k - 1], layers[k], "vA_int", "-vA_post")
        projection(f"WIP{k}", layers[k], inters[k - 1], "vI", "r_post - phi_vhat_post")
        copy = Synapses(
            layers[k + 1],
            inters[k - 1],
            "u_next_post = u_pre : 1 (summed)",
            name=f"copy{k}",
            namespace=syn_namespace,
        )
        idx = np.arange(sizes[k + 1], dtype=np.int32)
        copy.connect(i=idx, j=idx)
        connectivity[f"copy{k}"] = (idx, idx.copy())
        synapses.append(copy)
    for syn in synapses:
        for updater in syn.summed_updaters.values():
            _set_slot(updater, SUMMED_SLOT)
        if syn.state_updater is not None:
            _set_slot(syn.state_updater, SYNAPSE_UPDATE_SLOT)

    groups = {g.name: g for g in [*layers, *inters]}
    monitors: dict[str, Any] = {}
    rec = default_record(sizes) if record is None else dict(record)
    if record_dt_ms is not None:
        for gname, variables in rec.items():
            if gname not in groups:
                raise ValueError(f"cannot record {gname!r}: the circuit has {sorted(groups)}")
            if not variables:
                continue
            mon = StateMonitor(
                groups[gname],
                list(variables),
                record=True,
                dt=record_dt_ms * ms,
                name=f"mon_{gname}",
            )
            _set_slot(mon, MONITOR_SLOT)
            monitors[gname] = mon
    if weight_record_dt_ms is not None:
        for syn in synapses:
            if "w" in syn.variables:
                mon = StateMonitor(
                    syn, "w", record=True, dt=weight_record_dt_ms * ms, name=f"mon_{syn.name}"
                )
                _set_slot(mon, MONITOR_SLOT)
                monitors[syn.name] = mon
    if spiking:
        for g in groups.values():
            monitors[f"spikes_{g.name}"] = SpikeMonitor(g, name=f"spikes_{g.name}")

    return CircuitBuild(
        objects=[*layers, *inters, *synapses, *monitors.values()],
        namespace={},
        timed_arrays=tas,
        connectivity=connectivity,
        monitors=monitors,
    )


register_circuit(
    NAME,
    "Sacramento et al. 2018 dendritic cortical microcircuit (pyramidal cells, SST interneurons)",
    build,
)

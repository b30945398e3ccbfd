"""Shared parts of the Equilibrium-Propagation virtual experiments (DESIGN.md §4.3, §4.7): a small
digits task, the compiled Hopfield circuit for P examples per run, online EP training and
evaluation in chunks of P examples, and a per-``predict`` cache of trained circuits
(``ExperimentSettings.shared``).

Every run is a compiled :class:`neurosim.engine.Simulation` of the registered ``hopfield`` circuit
(one build per structure; weights, learning rates, release failure and inputs are run-time values),
so all numbers come from the Brian2 circuit. Training and evaluation are the equilibrium-propagation
protocol's own (:mod:`protocols.equilibrium_propagation.training`, two-phase variant): restart at
0, free phase (β = 0), nudged phase (β > 0); the read-out is argmax ρ(s_N) at the end of the free
phase.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models import equilibrium_propagation as ep
from neurosim import datasets as ds
from neurosim import registry
from neurosim.engine import RunResult, Simulation
from neurosim.experiment import ExperimentSettings
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord
from neurosim.seeding import run_seed
from protocols.equilibrium_propagation import training
from protocols.equilibrium_propagation.config import one_hot
from protocols.equilibrium_propagation.layout import Plan, timed_layout
from protocols.equilibrium_propagation.simulation import rule_values as ep_rule_values
from protocols.equilibrium_propagation.simulation import simulation as ep_simulation
from protocols.equilibrium_propagation.simulation import static_values as ep_static_values

#: ms per step (ε = dt/τ = 0.5, the paper's step; DESIGN.md §4.3)
DT_MS = 0.5


@dataclass(frozen=True)
class EPSetup(Plan):
    """One circuit structure and its training settings (the structure is compiled once): the
    protocol's :class:`~protocols.equilibrium_propagation.layout.Plan` of the two-phase variant
    (``rates`` of the two-phase rule per layer, ``back_rates`` of an untied circuit's backward
    weights, default ``rates``, 0: frozen; ``rules`` compiled, default two-phase; steps of
    ``DT_MS``) with the experiments' default sizes and the initial weights' scale ``w_scale``
    (Glorot × this)."""

    sizes: tuple[int, ...] = (64, 50, 10)
    w_scale: float = 1.0

    @property
    def example_ms(self) -> float:
        return self.example_steps * self.dt_ms

    @property
    def phase_unit(self) -> int:
        """The TimedArray row of the phase signals, in steps (gcd of the phase lengths)."""
        return self.unit_steps

    @property
    def plan(self) -> Plan:
        """The setup as the protocol's training plan."""
        return self


def weight_values(setup: EPSetup, weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Named weights -> run values of ``setup``'s circuit (its reciprocal mode)."""
    return hopfield().weight_values(_structure(setup), weights)


def weights_from_state(setup: EPSetup, state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Run values -> named weights of ``setup``'s circuit."""
    return hopfield().weights_from_state(_structure(setup), state)


def state_keys(setup: EPSetup) -> tuple[str, ...]:
    """The state carried from run to run by ``setup``'s circuit."""
    return hopfield().state_keys(_structure(setup))


def _structure(setup: EPSetup) -> Any:
    return hopfield().Structure(
        sizes=setup.sizes, readout=setup.readout, reciprocal=setup.reciprocal
    )


def hopfield() -> Any:
    """The registered ``hopfield`` circuit."""
    import circuits  # noqa: F401  (registers the circuits)

    return registry.circuit("hopfield")


def digits_task(seed: int, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """A seed's small digits task: ``n_train`` training examples drawn (stratified by shuffling)
    from the fixed 1437-example training split, and the first ``n_test`` of the 360 test digits.
    Inputs in [0, 1]; targets one-hot (0/1), the EP protocol's."""
    data = ds.digits()
    rng = np.random.default_rng(run_seed(seed, 61))
    idx = rng.permutation(len(data.x_train))[:n_train]
    lab_tr, lab_te = data.labels_train[idx], data.labels_test[:n_test]
    return {
        "x_train": data.x_train[idx],
        "labels_train": lab_tr,
        "d_train": one_hot(lab_tr, 10),
        "x_test": data.x_test[:n_test],
        "labels_test": lab_te,
        "d_test": one_hot(lab_te, 10),
    }


def initial_weights(setup: EPSetup, seed: int) -> dict[str, np.ndarray]:
    """Glorot-uniform × ``w_scale`` (the twin's :func:`init_weights`), zero biases; an untied
    circuit's backward weights are drawn independently (another seed)."""
    w = {k: v.numpy().copy() for k, v in ep.init_weights(setup.sizes, seed, setup.w_scale).items()}
    if setup.reciprocal == "untied":
        other = ep.init_weights(setup.sizes, run_seed(seed, 62), setup.w_scale)
        for k in range(2, len(setup.sizes)):
            w[f"W{k}_back"] = other[f"W{k}"].numpy().copy()
    return w


def layout(
    setup: EPSetup, x: np.ndarray, d: np.ndarray, betas: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """The TimedArray values of P examples (two phases each) for ``setup``'s build."""
    return timed_layout(hopfield(), setup.plan, x, d, betas)


def simulation(
    setup: EPSetup,
    device: str,
    *,
    record: Mapping[str, Sequence[str]] | None = None,
    record_steps: int | None = None,
    weight_record_steps: int | None = None,
    p_fail: float = 0.0,
    label: str = "ep-experiment",
) -> Simulation:
    """The compiled circuit of ``setup`` for P examples per run. ``record``: variables per layer
    (default: s of the output layer) every ``record_steps`` (default: a phase unit);
    ``weight_record_steps``: also the weights that often; ``p_fail``: compiled default only
    (the run-time value is given per run, :func:`static_values`)."""
    n = len(setup.sizes) - 1
    circuit = hopfield()
    return ep_simulation(
        circuit, setup.plan, circuit.Params(), device, n_examples=setup.P,
        record={f"layer{n}": ("s",)} if record is None else dict(record),
        record_steps=record_steps or setup.phase_unit,
        weight_record_steps=weight_record_steps, p_fail=p_fail,
        label=f"{label}-{setup.readout}-{setup.reciprocal}",
    )  # fmt: skip


def rule_values(setup: EPSetup, scale: float = 1.0) -> dict[str, float]:
    """The two-phase learning rates (× ``scale``; the backward ones of an untied circuit too) and,
    if compiled, the continual rule switched off."""
    return ep_rule_values(hopfield(), setup.plan, scale)


def static_values(setup: EPSetup, p_fail: float) -> dict[str, float]:
    """Release failure of every projection (spiking read-out only)."""
    return ep_static_values(hopfield(), setup.plan, p_fail)


def run_chunks(
    sim: Simulation, setup: EPSetup, values: Mapping[str, Any], x: np.ndarray, d: np.ndarray,
    **options: Any,
) -> tuple[dict[str, Any], np.ndarray]:  # fmt: skip
    """Run ``x`` through the circuit, P examples per run: the protocol's
    :func:`~protocols.equilibrium_propagation.training.run_chunks` (``learn``, ``seed``,
    ``on_result``); returns the carried values and the output rates ρ(s_N) at the end of every
    example's free phase."""
    done = training.run_chunks(sim, hopfield(), setup.plan, values, x, d, **options)
    return done.values, done.outputs


accuracy = training.accuracy


def train(
    sim: Simulation,
    setup: EPSetup,
    values: dict[str, Any],
    x: np.ndarray,
    d: np.ndarray,
    *,
    epochs: int,
    seed: int,
    lr_decay: float = 0.85,
    first_epoch: int = 0,
) -> dict[str, Any]:
    """Online EP (batch 1) for ``epochs`` passes over ``x`` in a seeded order, the rates ×
    lr_decay per epoch (counted from ``first_epoch``, to continue a training): the protocol's
    :func:`~protocols.equilibrium_propagation.training.train`. Returns the carried run values
    (weights, biases, states)."""
    return training.train(
        sim, hopfield(), setup.plan, values, x, d, epochs=epochs,
        rng=np.random.default_rng(run_seed(seed, 63, first_epoch)), lr_decay=lr_decay,
        epoch_seed=lambda epoch: run_seed(seed, 64, epoch), first_epoch=first_epoch,
    )  # fmt: skip


def mean_field(values: Mapping[str, Any], setup: EPSetup, p_fail: float) -> dict[str, Any]:
    """The rate circuit whose summed inputs are the expected ones of a spiking circuit with
    release failure ``p_fail``: every weight × (1 − p_fail) (each spike reaches its target with
    probability 1 − p_fail; the traces are not rescaled). The spiking read-out's own values
    (release failure, traces) are left out."""
    out = {k: v for k, v in values.items() if k.split(".")[1] not in ("p_fail", "x", "xb")}
    for k in range(1, len(setup.sizes)):
        for var in ("w", "wb"):
            key = f"W{k}.{var}"
            if key in out:
                out[key] = np.asarray(out[key], dtype=float) * (1.0 - p_fail)
    return out


def cached(settings: ExperimentSettings, key: str, make: Callable[[], Any]) -> Any:
    """``settings.shared[key]``, made once per ``predict`` invocation."""
    if key not in settings.shared:
        settings.shared[key] = make()
    return settings.shared[key]


def with_readout(setup: EPSetup, readout: str) -> EPSetup:
    """The same setup with another read-out."""
    return replace(setup, readout=readout)


# ------------------------------------------------------------------------------ recordings
def spike_segment(
    name: str,
    result: RunResult,
    sizes: Sequence[int],
    *,
    layers: Sequence[int],
    t_stop_s: float,
    max_cells: int = 20,
    annotations: Mapping[str, Any] | None = None,
) -> SegmentRecord:
    """The spike trains of the first ``max_cells`` cells of ``layers`` of one spiking run."""
    spikes = []
    for k in layers:
        mon = result.monitors[f"spikes_layer{k}"]
        for cell in range(min(max_cells, sizes[k])):
            t = mon["t"][mon["i"] == cell]
            spikes.append(
                SpikeRecord(
                    f"layer{k}[{cell}]", t, 0.0, t_stop_s, {"layer": int(k), "cell": int(cell)}
                )
            )
    return SegmentRecord(name, spikes=spikes, annotations=dict(annotations or {}))


def signal(
    name: str,
    values: np.ndarray,
    period_s: float,
    *,
    t_start_s: float = 0.0,
    annotations: Mapping[str, Any] | None = None,
) -> SignalRecord:
    """One dimensionless analog signal (time, channel)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    return SignalRecord(name, arr, period_s, t_start_s, "dimensionless", dict(annotations or {}))


def shared_simulation(settings: ExperimentSettings, setup: EPSetup, **kwargs: Any) -> Simulation:
    """:func:`simulation` kept in ``settings.shared`` for the whole ``predict`` invocation (one
    per structure and device), so that later seeds and experiments rebuild nothing."""
    key = f"ep-simulation:{setup!r}:{sorted(kwargs.items())!r}:{settings.device}"
    return cached(settings, key, lambda: simulation(setup, settings.device, **kwargs))

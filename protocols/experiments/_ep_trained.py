"""Shared parts of the Equilibrium-Propagation virtual experiments (DESIGN.md §4.3, §4.7): a small
digits task, the compiled Hopfield circuit for P examples per run, online EP training and
evaluation in chunks of P examples, and a per-``predict`` cache of trained circuits
(``ExperimentSettings.shared``).

Every run is a compiled :class:`neurosim.engine.Simulation` of :mod:`circuits.hopfield` (one
build per structure; weights, learning rates, release failure and inputs are run-time values), so
all numbers come from the Brian2 circuit. Examples follow :func:`circuits.hopfield.example_timed`:
restart at 0, free phase (β = 0), nudged phase (β > 0); the read-out is argmax ρ(s_N) at the end of
the free phase.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from circuits import hopfield as hp
from models import equilibrium_propagation as ep
from neurosim import datasets as ds
from neurosim.engine import RunResult, Simulation
from neurosim.experiment import ExperimentSettings
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord
from neurosim.seeding import run_seed

#: ms per step (ε = dt/τ = 0.5, the paper's step; DESIGN.md §4.3)
DT_MS = 0.5


@dataclass(frozen=True)
class EPSetup:
    """One circuit structure and its training settings (the structure is compiled once).

    ``sizes``: layer sizes; ``free_steps``/``nudged_steps``: phase lengths (steps of ``DT_MS``);
    ``beta``: nudging strength; ``lr``: two-phase learning rates per layer (forward weights and
    biases); ``lr_back``: the backward weights' rates of an untied circuit (default: ``lr``; 0:
    frozen); ``readout``/``reciprocal``: as :func:`circuits.hopfield.build`; ``rules``: compiled
    rules; ``P``: examples per compiled run; ``w_scale``: Glorot × this at the start.
    """

    sizes: tuple[int, ...] = (64, 50, 10)
    free_steps: int = 20
    nudged_steps: int = 4
    beta: float = 0.5
    lr: tuple[float, ...] = (0.1, 0.05)
    lr_back: tuple[float, ...] | None = None
    readout: str = "rate"
    reciprocal: str = "tied"
    rules: tuple[str, ...] = ("two-phase",)
    P: int = 50
    w_scale: float = 1.0

    @property
    def example_ms(self) -> float:
        return (self.free_steps + self.nudged_steps) * DT_MS

    @property
    def phase_unit(self) -> int:
        """The TimedArray row of the phase signals, in steps (gcd of the phase lengths)."""
        return int(np.gcd(self.free_steps, self.nudged_steps))


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
        "d_train": _one_hot(lab_tr),
        "x_test": data.x_test[:n_test],
        "labels_test": lab_te,
        "d_test": _one_hot(lab_te),
    }


def _one_hot(labels: np.ndarray, n: int = 10) -> np.ndarray:
    d = np.zeros((len(labels), n))
    d[np.arange(len(labels)), np.asarray(labels, dtype=int)] = 1.0
    return d


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
    names = hp.timed_names(setup.rules, example_ms=setup.example_ms)
    return hp.example_timed(
        x, d, betas, free_ms=setup.free_steps * DT_MS, nudged_ms=setup.nudged_steps * DT_MS,
        dt_ms=DT_MS, phases=2, names=names,
    )  # fmt: skip


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
    P = setup.P
    timed, timed_dt, example_ms = layout(
        setup, np.zeros((P, setup.sizes[0])), np.zeros((P, setup.sizes[-1])), np.zeros(P)
    )
    n = len(setup.sizes) - 1
    rec = {f"layer{n}": ("s",)} if record is None else dict(record)
    rec_steps = record_steps or setup.phase_unit

    def builder(tv: Mapping[str, np.ndarray]) -> Any:
        return hp.build(
            hp.HopfieldParams(), setup.sizes, tv, dt_ms=DT_MS, readout=setup.readout,
            p_fail=p_fail, plasticity=setup.rules, example_ms=example_ms,
            reciprocal=setup.reciprocal, record=rec, record_dt_ms=rec_steps * DT_MS,
            weight_record_dt_ms=(
                weight_record_steps * DT_MS if weight_record_steps is not None else None
            ),
            timed_dt_ms=timed_dt,
        )  # fmt: skip

    return Simulation(
        builder,
        device=device,
        duration_ms=hp.duration_ms(P, example_ms, DT_MS),
        dt_ms=DT_MS,
        initial_timed=timed,
        label=f"{label}-{setup.readout}-{setup.reciprocal}",
    )


def rule_values(setup: EPSetup, scale: float = 1.0) -> dict[str, float]:
    """The two-phase learning rates (× ``scale``; the backward ones of an untied circuit too) and,
    if compiled, the continual rule switched off."""
    lr = [v * scale for v in setup.lr]
    out: dict[str, float] = {}
    if "two-phase" in setup.rules:
        out.update(hp.eta_values(setup.sizes, two_phase=lr))
        if setup.reciprocal == "untied":
            back = setup.lr if setup.lr_back is None else setup.lr_back
            out.update(hp.back_eta_values(setup.sizes, two_phase=[v * scale for v in back]))
    if "continual" in setup.rules:
        out.update(hp.eta_values(setup.sizes, continual=0.0))
        for k in range(1, len(setup.sizes)):
            out[f"W{k}.centred"] = 0.0
        if setup.reciprocal == "untied":
            out.update(hp.back_eta_values(setup.sizes, continual=0.0))
    return out


def static_values(setup: EPSetup, p_fail: float) -> dict[str, float]:
    """Release failure of every projection (spiking read-out only)."""
    return hp.p_fail_values(setup.sizes, p_fail) if setup.readout == "spiking" else {}


def run_chunks(
    sim: Simulation,
    setup: EPSetup,
    values: Mapping[str, Any],
    x: np.ndarray,
    d: np.ndarray,
    *,
    learn: bool,
    seed: int,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Run ``x`` through the circuit, P examples per run (a shorter last chunk is padded with
    examples at β = 0). ``learn``: nudge at β and carry the weights from run to run; otherwise
    β = 0 and learning rates 0. Returns the carried values and the output rates ρ(s_N) at the end
    of every example's free phase; ``on_result(chunk, result)`` sees every run."""
    P, N = setup.P, len(setup.sizes) - 1
    keys = hp.state_keys(setup.sizes, readout=setup.readout, reciprocal=setup.reciprocal)
    unit = setup.phase_unit
    e_steps = setup.free_steps + setup.nudged_steps
    free_idx = (np.arange(P) * e_steps + setup.free_steps) // unit
    run_values = dict(values)
    if not learn:
        run_values.update(rule_values(setup, 0.0))
    outs = []
    for c, start in enumerate(range(0, len(x), P)):
        xs, dss = x[start : start + P], d[start : start + P]
        n = len(xs)
        xp = np.concatenate([xs, np.repeat(xs[-1:], P - n, axis=0)])
        dp = np.concatenate([dss, np.repeat(dss[-1:], P - n, axis=0)])
        betas = np.zeros(P)
        if learn:
            betas[:n] = setup.beta
        tv, _, _ = layout(setup, xp, dp, betas)
        result = sim.run(values=run_values, timed=tv, seed=run_seed(seed, c), read=keys)
        if on_result is not None:
            on_result(c, result)
        if learn:
            run_values.update(result.state)
        s_out = result.monitors[f"layer{N}"]["s"][free_idx[:n]]
        outs.append(np.clip(s_out, 0.0, 1.0))
    carried = {**values, **{k: run_values[k] for k in keys if k in run_values}}
    return carried, np.concatenate(outs)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose most active output cell is the label's."""
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


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
    lr_decay per epoch (counted from ``first_epoch``, to continue a training); returns the
    carried run values (weights, biases, states)."""
    rng = np.random.default_rng(run_seed(seed, 63, first_epoch))
    for epoch in range(first_epoch, first_epoch + epochs):
        values = {**values, **rule_values(setup, lr_decay**epoch)}
        perm = rng.permutation(len(x))
        values, _ = run_chunks(
            sim, setup, values, x[perm], d[perm], learn=True, seed=run_seed(seed, 64, epoch)
        )
    return values


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

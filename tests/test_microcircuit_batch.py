"""Batch mode of the dendritic microcircuit (``batch = B``, issue 14): B copies side by side in one
build, one shared weight per synapse, the copies' low-pass filtered changes summed every step.

Against the torch twin's learning step (:mod:`models.dendritic_microcircuit.learning`): B
distinct examples per presentation, every rule on (learned top-down), nudging and the plasticity
gate; the final state of every copy and the shared weights equal the twin's to 1e-9, and the
copies' weights stay bitwise equal. The twin itself: B identical examples are batch 1 at B times
the rates, and batch 1 is the numpy Euler reference of ``tests/test_microcircuit_circuit.py``.
One build compiles in the default tier (prospective, B = 3); the instantaneous and spiking builds
are in the slow tier.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch

from circuits import microcircuit as mc
from models.dendritic_microcircuit.learning import learning_start, learning_step
from neurosim.batch import batch_rows, unbatch_rows
from neurosim.engine import Simulation
from tests.test_microcircuit_circuit import (
    DT,
    GATE_MS,
    PARAMS,
    PATTERN_MS,
    PRO_PARAMS,
    SIZES,
    TIMED_DT,
    _euler_twin,
    _weights,
)

B = 3
DURATION = 300.0  # three patterns
ROWS = int(DURATION / PATTERN_MS)
STEPS = round(DURATION / DT)
ETA = 0.02
PLASTIC = ("W1", "W2", "W3", "B1", "B2", "WIP1", "WIP2", "WPI1", "WPI2")


def _timed(seed: int, batch: int) -> dict[str, np.ndarray]:
    """ROWS presentations of ``batch`` distinct examples: inputs, targets, nudging in every
    other pattern, the gate off for the first 10 ms of each (learning lag)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (ROWS * batch, SIZES[0]))
    targets = rng.uniform(-1, 1, (ROWS * batch, SIZES[-1]))
    tv = mc.timed_values(
        batch_rows(x, batch), SIZES[-1] * batch, targets=batch_rows(targets, batch),
        nudge=(np.arange(ROWS) % 2).astype(float),
    )  # fmt: skip
    tv["plastic"] = (np.arange(int(DURATION / GATE_MS)) % 10 >= 1).astype(float)
    return tv


def _simulation(params: mc.MicrocircuitParams, batch: int, readout: str = "rate") -> Simulation:
    def builder(tv: Mapping[str, np.ndarray]):  # noqa: ANN202
        structure = mc.MicrocircuitStructure(
            SIZES, topdown="learned", readout=readout, timed_dt_ms=TIMED_DT, batch=batch
        )
        return mc.CIRCUIT.build(structure, params, tv, dt_ms=DT)

    return Simulation(
        builder, device="cpp_standalone", duration_ms=DURATION, dt_ms=DT,
        initial_timed=_timed(0, batch), label=f"test-mc-batch{batch}-{readout}-{params.neuron}",
    )  # fmt: skip


def _values(batch: int, eta: float = ETA) -> dict[str, object]:
    structure = mc.MicrocircuitStructure(SIZES, topdown="learned", batch=batch)
    values: dict[str, object] = dict(mc.CIRCUIT.weight_values(structure, _weights(SIZES, 5)))
    values.update({f"{name}.eta": eta for name in mc.weight_shapes(SIZES, "learned")})
    return values


def _twin(
    params: mc.MicrocircuitParams, tv: Mapping[str, np.ndarray], batch: int, eta: float = ETA
) -> tuple[dict[str, torch.Tensor], object]:
    """The torch twin's learning steps on the same TimedArray values, ``batch`` copies."""
    w = {k: torch.tensor(v) for k, v in _weights(SIZES, 5).items()}
    state = learning_start(w, batch, topdown="learned")
    per_input, per_gate = round(PATTERN_MS / DT), round(GATE_MS / DT)
    for n in range(STEPS):
        row = n // per_input
        x = torch.tensor(tv["inputs"][row]).reshape(batch, -1)
        target = torch.tensor(tv["targets"][row]).reshape(batch, -1)
        w, state = learning_step(
            params, w, state, x, target, float(tv["nudge"][row]),
            float(tv["plastic"][n // per_gate]), dict.fromkeys(PLASTIC, eta), DT, "learned",
        )  # fmt: skip
    return w, state


def _assert_copies_equal(state: Mapping[str, np.ndarray], batch: int) -> None:
    for name in PLASTIC:
        copies = np.asarray(state[f"{name}.w"]).reshape(batch, -1)
        assert np.array_equal(copies, np.broadcast_to(copies[0], copies.shape)), name


def _compare_with_twin(sim: Simulation, params: mc.MicrocircuitParams) -> None:
    tv = _timed(1, B)
    keys = mc.state_keys(SIZES, topdown="learned", neuron=params.neuron)
    result = sim.run(values=_values(B), timed=tv, read=keys)
    _assert_copies_equal(result.state, B)
    w, state = _twin(params, tv, B)
    w0 = _weights(SIZES, 5)
    circuit_w = mc.weights_from_state(result.state, SIZES, "learned")
    for name in PLASTIC:
        change = w[name].numpy() - w0[name]
        assert np.max(np.abs(change)) > 1e-3, name  # it learned
        np.testing.assert_allclose(circuit_w[name] - w0[name], change, rtol=1e-9, atol=1e-12)
    potentials = state.neurons.as_dict()
    for k in range(1, len(SIZES)):
        copies = unbatch_rows(result.state[f"layer{k}.u"][None, :], B)
        np.testing.assert_allclose(copies, potentials[f"u{k}"].numpy(), rtol=1e-9, atol=1e-12)
    for k in range(1, len(SIZES) - 1):
        copies = unbatch_rows(result.state[f"inter{k}.uI"][None, :], B)
        np.testing.assert_allclose(copies, potentials[f"uI{k}"].numpy(), rtol=1e-9, atol=1e-12)
    for name, delta in state.deltas.items():  # each copy's own filter
        np.testing.assert_allclose(
            result.state[f"{name}.Delta"], delta.reshape(-1).numpy(), rtol=1e-9, atol=1e-12
        )


# ------------------------------------------------------------------------------ no compiling
def test_batch_layout_weights_checks_and_cost() -> None:
    """Weights are tiled per copy and read from the first; a batch below 1 is refused; ``batch``
    is a ``[circuit]`` field; the cost is linear in B (B·n_pre·n_post synapses per projection,
    as many in the ties of the plastic ones, never B²)."""
    w = _weights(SIZES, 5)
    tiled = mc.CIRCUIT.weight_values(mc.MicrocircuitStructure(SIZES, topdown="learned", batch=3), w)
    assert tiled["W1.w"].size == 3 * SIZES[0] * SIZES[1]
    back = mc.weights_from_state(tiled, SIZES, "learned")
    assert all(np.array_equal(back[k], w[k]) for k in w)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="batch"):
            mc.MicrocircuitStructure(SIZES, batch=bad)
    assert "batch" in mc.CIRCUIT.configurable
    cost = {b: mc.CIRCUIT.cost(mc.MicrocircuitStructure(SIZES, batch=b)) for b in (4, 8)}
    assert cost[8].synapses == 2 * cost[4].synapses
    assert cost[8].neurons - cost[4].neurons == 4 * (sum(SIZES) + sum(SIZES[2:]))


@pytest.mark.parametrize("params", [PARAMS, PRO_PARAMS], ids=["instantaneous", "prospective"])
def test_twin_batch_of_identical_examples_is_batch_one_at_b_times_the_rate(params) -> None:
    """The twin's mini-batch: B copies of one example learn as one example at B times the rates
    (1e-12); one example is the numpy Euler reference of the B = 1 circuit (1e-9)."""
    tv1 = _timed(2, 1)
    tvb = dict(tv1)
    tvb["inputs"] = np.tile(tv1["inputs"], B)
    tvb["targets"] = np.tile(tv1["targets"], B)
    w_b, state_b = _twin(params, tvb, B)
    w_1, state_1 = _twin(params, tv1, 1, eta=B * ETA)
    for name in PLASTIC:
        np.testing.assert_allclose(w_b[name].numpy(), w_1[name].numpy(), rtol=1e-12, atol=1e-14)
    for k, u in state_1.neurons.as_dict().items():
        np.testing.assert_allclose(state_b.neurons.as_dict()[k].numpy(), u.expand(B, -1).numpy())
    reference = _euler_twin(
        params, SIZES, _weights(SIZES, 5), dict.fromkeys(PLASTIC, ETA), tv1, STEPS
    )
    w_one, _ = _twin(params, tv1, 1)
    for name in PLASTIC:
        np.testing.assert_allclose(
            mc.matrix_to_w(w_one[name].numpy()), reference[f"{name}.w"], rtol=1e-9, atol=1e-12
        )


# ------------------------------------------------------------------------------ compiled
def test_prospective_batch_is_the_twins_mini_batch_learning() -> None:
    """Prospective neurons, B = 3 distinct examples per presentation, every rule on: every copy's
    potentials and filters and the shared weights equal the twin's after 3,000 steps (1e-9)."""
    _compare_with_twin(_simulation(PRO_PARAMS, B), PRO_PARAMS)


@pytest.mark.slow
def test_instantaneous_batch_is_the_twins_mini_batch_learning() -> None:
    """The same with instantaneous neurons (φ(u))."""
    _compare_with_twin(_simulation(PARAMS, B), PARAMS)


@pytest.mark.slow
@pytest.mark.parametrize("params", [PARAMS, PRO_PARAMS], ids=["instantaneous", "prospective"])
def test_spiking_batch_keeps_the_copies_equal_and_every_copy_fires(params) -> None:
    """The spiking read-out in batch mode (B = 2): every copy's cells fire, the copies learn
    different examples, and their weights stay bitwise equal and move."""
    sim = _simulation(params, 2, readout="spiking")
    result = sim.run(values=_values(2), timed=_timed(3, 2), seed=4, read=mc.state_keys(
        SIZES, topdown="learned", readout="spiking", neuron=params.neuron))  # fmt: skip
    _assert_copies_equal(result.state, 2)
    w0 = _weights(SIZES, 5)
    w = mc.weights_from_state(result.state, SIZES, "learned")
    assert all(np.max(np.abs(w[k] - w0[k])) > 1e-4 for k in PLASTIC)
    for group, n in (("layer1", SIZES[1]), ("inter1", SIZES[2])):
        spikes = result.monitors[f"spikes_{group}"]["i"]
        assert np.any(spikes < n) and np.any(spikes >= n), group  # both copies fire


# ------------------------------------------------------------------------------ the protocol
def _task(*sets: str):  # noqa: ANN202
    from neurosim.cli import pipeline
    from neurosim.config import parse_overrides
    from protocols.feedback_cancellation.task import Task

    base = {"protocol": "feedback-cancellation", "circuit": "microcircuit", "dataset": "digits"}
    r = pipeline.resolve(pipeline.build_raw(None, base, parse_overrides(sets)))
    return Task(r.run, r.protocol, r.circuit)


def test_protocol_presents_mini_batches_side_by_side() -> None:
    """``circuit.batch`` through the protocol: a run holds ⌈P/B⌉ presentations of B examples
    side by side; learning takes whole mini-batches, a pass without learning any number (its
    padded presentation has nudging and plasticity off); another stage is refused."""
    from neurosim.errors import ConfigError
    from protocols.feedback_cancellation.simulation import chunk_timed

    task = _task("circuit.batch=4", "protocol.patterns_per_run=10", "protocol.n_train=40")
    assert (task.batch, task.presentations) == (4, 3)
    x = task.data.x_train[:12]
    tv, n = chunk_timed(task, x, task.data.u_train[:12], nudge=1.0, learn=True)
    assert n == 12 and tv["inputs"].shape == (3, 4 * SIZES_DIGITS[0])
    np.testing.assert_array_equal(unbatch_rows(tv["inputs"], 4), x)
    np.testing.assert_array_equal(tv["nudge"], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="whole mini-batches"):
        chunk_timed(task, x[:10], None, nudge=1.0, learn=True)
    tv, _ = chunk_timed(task, x[:5], None, nudge=0.0, learn=False)
    assert tv["nudge"].tolist() == [0.0] * 3 and not tv["plastic"].any()
    with pytest.raises(ConfigError, match="supervised stage only"):
        _task("circuit.batch=4", "protocol.stage=self-predicting")


SIZES_DIGITS = (64, 100, 10)

"""Batch mode of the layered Hopfield circuit (``batch = B``, issue 14): B copies side by side in
one build, one shared weight per synapse, the copies' two-phase changes summed once per example.

Against batch 1 (B identical examples = one example at B times the rate) and against the torch
twin's mini-batch step (B distinct examples = ``train_batch`` on that mini-batch at B times the
rate, the twin averaging where the circuit sums), with the copies' weights bitwise equal
throughout. Three builds compile once each (cpp_standalone): a 10-8-4 rate circuit at B = 3 and at
B = 1, and a spiking one at B = 2.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
import torch

from circuits import hopfield as hp
from models import equilibrium_propagation as ep
from neurosim.engine import Simulation

SIZES = [10, 8, 4]
DT = 0.5  # ms (τ = 1 ms: the twin's dt is 0.5 too)
N_FREE, N_NUDGED = 20, 4
B = 3  # copies
K = 3  # presentations per run (K·B examples)
LR = [0.2, 0.1]
BETA = 0.5
NAMES = hp.timed_names(("two-phase",), 1.0)


def _layout(x: np.ndarray, d: np.ndarray, beta: float | list[float] = BETA) -> tuple:
    """K presentations of the rows of x, d (already B copies wide) as two-phase examples."""
    return hp.example_timed(
        x, d, beta, free_ms=N_FREE * DT, nudged_ms=N_NUDGED * DT, dt_ms=DT, phases=2, names=NAMES
    )


def _examples(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, SIZES[0])), rng.uniform(0, 1, (n, SIZES[-1]))


def _weights() -> dict[str, torch.Tensor]:
    return ep.init_weights(SIZES, seed=2, scale=0.5, bias_scale=0.3)


def _simulation(
    batch: int, readout: str = "rate", presentations: int = K, population: int = 1
) -> Simulation:
    x, d = _examples(0, presentations * batch)
    timed, timed_dt, example_ms = _layout(hp.batch_rows(x, batch), hp.batch_rows(d, batch))

    def builder(tv: Mapping[str, np.ndarray]):  # noqa: ANN202
        structure = hp.HopfieldStructure(
            sizes=SIZES, readout=readout, plasticity=("two-phase",), example_ms=example_ms,
            timed_dt_ms=timed_dt, batch=batch, examples=presentations, population=population,
        )  # fmt: skip
        return hp.CIRCUIT.build(structure, hp.HopfieldParams(), tv, dt_ms=DT)

    return Simulation(
        builder, device="cpp_standalone", dt_ms=DT, initial_timed=timed,
        duration_ms=hp.duration_ms(presentations, example_ms, DT),
        label=f"test-hopfield-batch{batch}-{readout}-{population}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def batched() -> Simulation:
    return _simulation(B)


def _run(sim: Simulation, batch: int, x: np.ndarray, d: np.ndarray, lr: list[float]) -> tuple:
    """One run of K presentations; returns the result and the weights it ended with."""
    timed, _, _ = _layout(hp.batch_rows(x, batch), hp.batch_rows(d, batch))
    structure = hp.HopfieldStructure(sizes=SIZES, batch=batch)
    values = {
        **hp.CIRCUIT.weight_values(structure, _weights()),
        **hp.eta_values(SIZES, two_phase=lr),
    }
    result = sim.run(values=values, timed=timed, read=hp.state_keys(SIZES))
    return result, hp.weights_from_state(result.state, SIZES)


def _assert_copies_equal(state: Mapping[str, np.ndarray], batch: int) -> None:
    for key in ("W1.w", "W2.w", "layer1.b", "layer2.b"):
        copies = np.asarray(state[key]).reshape(batch, -1)
        assert np.array_equal(copies, np.broadcast_to(copies[0], copies.shape)), key


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


# ------------------------------------------------------------------------------ layout and checks
def test_batch_layout_weights_and_checks() -> None:
    """Rows of K·B examples become K rows of B copies and back; weights are tiled per copy and
    read from the first; a continual rule or a batch below 1 is refused; the cost is linear in B
    (B·n_pre·n_post synapses per projection and as many in its tie, never B²)."""
    x = np.arange(12.0).reshape(6, 2)
    assert hp.batch_rows(x, 3).tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    np.testing.assert_array_equal(hp.unbatch_rows(hp.batch_rows(x, 3), 3), x)
    with pytest.raises(ValueError, match="do not fill"):
        hp.batch_rows(x, 4)
    w = {k: v.numpy() for k, v in _weights().items()}
    tiled = hp.CIRCUIT.weight_values(hp.HopfieldStructure(sizes=SIZES, batch=3), w)
    assert tiled["W1.w"].size == 3 * SIZES[0] * SIZES[1]
    back = hp.weights_from_state(tiled, SIZES)
    assert all(np.array_equal(back[k], w[k]) for k in w)
    params = hp.HopfieldParams()
    with pytest.raises(ValueError, match="continual"):
        hp.HopfieldStructure(sizes=SIZES, plasticity=("continual",), batch=2).check(params, DT)
    with pytest.raises(ValueError, match="batch"):
        hp.HopfieldStructure(sizes=SIZES, batch=0).check(params, DT)
    cost = {
        b: hp.CIRCUIT.cost(
            hp.HopfieldStructure(sizes=SIZES, plasticity=("two-phase",), example_ms=1.0, batch=b)
        )
        for b in (4, 8)
    }
    assert cost[8].synapses == 2 * cost[4].synapses


# ------------------------------------------------------------------------------ against batch 1
def test_identical_examples_in_every_copy_are_batch_one_at_b_times_the_rate(batched) -> None:
    """The same example in all B copies (K presentations): weights, biases and every recorded
    state equal batch 1's on those K examples at learning rates × B (1e-9), and the B copies'
    weights stay bitwise equal."""
    x, d = _examples(1, K)
    result_b, w_b = _run(batched, B, np.repeat(x, B, axis=0), np.repeat(d, B, axis=0), LR)
    _assert_copies_equal(result_b.state, B)
    result_1, w_1 = _run(_simulation(1), 1, x, d, [B * v for v in LR])
    w0 = {k: v.numpy() for k, v in _weights().items()}
    for name in w_1:
        assert np.linalg.norm(w_1[name] - w0[name]) > 1e-3, name  # it learned
        assert _rel(w_b[name] - w0[name], w_1[name] - w0[name]) < 1e-9, name
    for k in (1, 2):
        s_b = result_b.monitors[f"layer{k}"]["s"].reshape(-1, B, SIZES[k])
        for b in range(B):
            np.testing.assert_allclose(
                s_b[:, b], result_1.monitors[f"layer{k}"]["s"], rtol=0, atol=1e-9
            )


# ------------------------------------------------------------------------------ against the twin
def test_distinct_examples_are_the_twins_mini_batch_steps(batched) -> None:
    """K·B distinct examples, B per presentation: after each presentation the weights are the
    twin's ``train_batch`` on those B examples at rates × B (the twin takes the batch mean), for
    the K presentations in turn (1e-9 of the change); every copy's output at the end of its free
    phase is the twin's free state of its example (1e-9); the copies stay bitwise equal."""
    x, d = _examples(2, K * B)
    result, w_circuit = _run(batched, B, x, d, LR)
    _assert_copies_equal(result.state, B)
    twin = ep.EPParameters(tuple(SIZES), dt=DT, free_steps=N_FREE, nudged_steps=N_NUDGED)
    w = _weights()
    free_rows = np.arange(K) * (N_FREE + N_NUDGED) + N_FREE
    outputs = hp.unbatch_rows(result.monitors["layer2"]["s"][free_rows], B)
    for k in range(K):
        xk, dk = torch.tensor(x[k * B : (k + 1) * B]), torch.tensor(d[k * B : (k + 1) * B])
        w, update = ep.train_batch(twin, w, xk, dk, [B * v for v in LR])
        np.testing.assert_allclose(
            outputs[k * B : (k + 1) * B], update.free.s[-1].numpy(), rtol=0, atol=1e-9
        )
    w0 = _weights()
    for name, value in w.items():
        change = (value - w0[name]).numpy()
        assert np.linalg.norm(change) > 1e-3, name
        assert _rel(w_circuit[name] - w0[name].numpy(), change) < 1e-9, name


@pytest.mark.parametrize("population", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_spiking_batch_keeps_the_copies_equal_and_every_copy_fires(population: int) -> None:
    """The spiking read-out in batch mode (B = 2), with one cell per unit and with populations
    of 4: every copy's cells fire, the copies learn different examples, and their weights stay
    bitwise equal and move."""
    sim = _simulation(2, readout="spiking", presentations=2, population=population)
    x, d = _examples(3, 4)
    result, w = _run(sim, 2, x, d, LR)
    _assert_copies_equal(result.state, 2)
    w0 = {k: v.numpy() for k, v in _weights().items()}
    assert all(np.linalg.norm(w[k] - w0[k]) > 1e-4 for k in w)
    spikes = result.monitors["spikes_layer1"]["i"]
    n = SIZES[1]
    assert np.any(spikes < n) and np.any(spikes >= n)  # both copies fire

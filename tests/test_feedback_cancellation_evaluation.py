"""Test and training-set passes of feedback cancellation: the simulated circuit against its settled
state solved by the torch twin (``protocol.evaluation``), and which read-outs may use which.

A simulated test pass reads each pattern's end after ``pattern_ms`` of settling; the fixed point is
where that settling goes. For patterns long enough to settle, both must give the same potentials
(1e-9) and hence the same accuracy and MSE; for patterns too short to settle, ``auto`` must keep
simulating.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurosim import result_cache
from neurosim.cli import main, pipeline
from neurosim.config import parse_overrides
from neurosim.errors import ConfigError
from protocols.feedback_cancellation import supervised
from protocols.feedback_cancellation.simulation import learning_values, run_pass, training_circuit
from protocols.feedback_cancellation.task import Task, initial_weights


def _resolved(*sets: str, dataset: str = "digits", readout: str | None = None):  # noqa: ANN202
    base = {"protocol": "feedback-cancellation", "circuit": "microcircuit", "dataset": dataset}
    if readout is not None:
        base["readout"] = readout
    r = pipeline.resolve(pipeline.build_raw(None, base, parse_overrides(sets)))
    return r.run, Task(r.run, r.protocol, r.circuit)


def _task(*sets: str, dataset: str = "digits", readout: str | None = None) -> Task:
    return _resolved(*sets, dataset=dataset, readout=readout)[1]


@pytest.mark.parametrize(
    ("dataset", "sets"),
    [
        ("digits", ("circuit.sizes=[64, 20, 10]",)),
        # regression targets, tied top-down weights; prospective cells on 200 steps per pattern
        # (each compiles a build of its own: slow tier, to keep the default tier short)
        pytest.param("teacher", ("protocol.topdown=tied",), marks=pytest.mark.slow),
        pytest.param("digits", ("circuit.sizes=[64, 20, 10]", "circuit.neuron=prospective",
                     "protocol.pattern_ms=20", "protocol.learning_lag_ms=4"),
                     marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_settled_ends_equal_the_simulated_pass(dataset: str, sets: tuple[str, ...]) -> None:
    """After some learning (so the weights are not the initial ones), the test set's pattern ends
    simulated and solved agree to 1e-9, and so do accuracy/MSE."""
    common = ("protocol.n_train=40", "protocol.n_test=30", "protocol.patterns_per_run=40")
    run, task = _resolved(*common, *sets, "protocol.evaluation=simulation", dataset=dataset)
    tc = training_circuit(run, task)
    rng = np.random.default_rng(3)
    w0 = initial_weights(task, rng, task.cfg.lateral_init)
    values = learning_values(
        task, w0, "rate", forward=list(task.cfg.eta_forward), ip=task.cfg.eta_ip, pi=0.0
    )
    data = task.data
    values, _, _, _ = run_pass(
        tc, values, data.x_train, data.u_train, nudge=1.0, learn=True, seed=5
    )
    simulated = supervised.evaluation_ends(tc, values, data.x_test, data.u_test, seed=7)
    task.evaluation = "fixed-point"
    solved = supervised.evaluation_ends(tc, values, data.x_test, data.u_test, seed=7)
    assert set(solved) >= {"out", "u1", "vA1", "uI1"}
    for key in ("out", "u1", "uI1", "vA1"):
        scale = max(1.0, float(np.abs(simulated[key]).max()))
        assert np.abs(solved[key] - simulated[key]).max() < 1e-9 * scale, key
    assert np.abs(simulated["out"]).max() > 0.1  # a circuit that does something
    ev_sim = supervised.evaluate(task, simulated["out"], data.y_test, data.labels_test)
    ev_fp = supervised.evaluate(task, solved["out"], data.y_test, data.labels_test)
    assert ev_fp.keys() == ev_sim.keys()
    for key in ev_sim:
        assert ev_fp[key] == pytest.approx(ev_sim[key], rel=1e-9, abs=1e-12)


def test_auto_takes_the_fixed_point_only_where_the_pass_settles() -> None:
    assert _task().evaluation == "fixed-point"  # digits: 100 ms, dt 0.1 ms, rate, no noise
    assert _task(readout="spiking").evaluation == "simulation"
    assert _task("circuit.sigma=0.1").evaluation == "simulation"
    short = ("protocol.pattern_ms=20", "protocol.learning_lag_ms=4")
    assert _task(*short).evaluation == "simulation"  # instantaneous cells settle in time
    assert _task(*short, "circuit.neuron=prospective").evaluation == "fixed-point"  # 200 steps
    coarse = ("protocol.dt_ms=1.0", "protocol.learning_lag_ms=20")
    assert _task(*coarse).evaluation == "simulation"  # Euler steps of 1 ms never settle
    assert _task(*short, "protocol.evaluation=fixed-point").evaluation == "fixed-point"
    assert _task("protocol.evaluation=simulation").evaluation == "simulation"


def test_fixed_point_is_refused_where_there_is_none() -> None:
    with pytest.raises(ConfigError, match="rate read-out without noise"):
        _task("protocol.evaluation=fixed-point", readout="spiking")
    with pytest.raises(ConfigError, match=r"circuit.sigma = 0.1"):
        _task("protocol.evaluation=fixed-point", "circuit.sigma=0.1")


def test_a_second_run_reads_its_baselines_from_the_cache(tmp_path, monkeypatch) -> None:
    """The shallow learner and the backprop baseline do not depend on the circuit's learning: a
    second run with the same inputs reads them (same numbers), a run with another seed does not."""
    monkeypatch.delenv("NEUROSIM_RESULT_CACHE", raising=False)
    # an empty result cache of its own; the builds stay shared with the other tests
    monkeypatch.setattr(result_cache, "results_root", lambda: tmp_path / "results")

    def run(name: str, seed: int, *extra: str) -> dict:
        out = tmp_path / name
        args = [
            "run", "feedback-cancellation", "--dataset", "digits", "--no-progress",
            "--out", str(out), "--epochs", "2", "--seed", str(seed),
            "--set", "circuit.sizes=[64, 20, 10]", "--set", "protocol.n_train=60",
            "--set", "protocol.n_test=30", "--set", "protocol.patterns_per_run=40",
            "--set", "protocol.backprop_epochs=2", *extra,
        ]  # fmt: skip
        assert main(args) == 0
        return json.loads((out / "metrics.json").read_text())

    first, second = run("a", 1), run("b", 1)
    # a simulated evaluation never imports the twin, whose source is part of the key
    other = run("c", 2, "--set", "protocol.evaluation=simulation")
    assert first["baselines_from_cache"] == [] and other["baselines_from_cache"] == []
    assert second["baselines_from_cache"] == ["shallow", "backprop"]
    assert second["history"] == first["history"]  # the circuit trained again, same numbers
    assert second["backprop_baseline"] == first["backprop_baseline"]
    assert second["shallow_baseline"] == first["shallow_baseline"]
    assert other["history"]["shallow"] != first["history"]["shallow"]

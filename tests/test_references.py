"""The conventional references of issue 16 (logistic regression and the MNIST-1D reference MLP on
the raw data): they learn what they should, are seeded, and are computed once per input (data,
settings, seed) and then read from the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import references as refs
from neurosim import datasets as ds
from neurosim import result_cache
from protocols import references

FAST = refs.ReferenceSettings(hidden=16, lr=0.05, batch=50, steps=300)


def _separable(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Three classes in 5 dimensions, separated by a margin along random directions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = 3.0 * rng.standard_normal((3, 5))
    return centres[labels] + 0.3 * rng.standard_normal((n, 5)), labels


def _xor(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Two classes by the sign of x0·x1: no linear read-out does better than ~chance."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(int)


def _dataset(x: np.ndarray, labels: np.ndarray, name: str = "toy") -> ds.Dataset:
    h = len(x) // 2
    y = np.eye(int(labels.max()) + 1)[labels]
    return ds.Dataset(
        name, x[:h], y[:h], y[:h], x[h:], y[h:], y[h:], "classification", "logistic",
        labels[:h], labels[h:],
    )  # fmt: skip


def test_logistic_regression_separates_a_linearly_separable_set() -> None:
    x, labels = _separable()
    out = refs.train_reference("logistic_regression", x[:150], labels[:150], x[150:], labels[150:],
                               FAST, seed=1)  # fmt: skip
    assert out["test_accuracy"] == 1.0 and out["train_accuracy"] == 1.0
    assert out["history"][0] < 0.9  # it learned it: the untrained model was not already there


def test_the_mlp_learns_xor_where_logistic_regression_cannot() -> None:
    x, labels = _xor()
    split = (x[:200], labels[:200], x[200:], labels[200:])
    mlp = refs.train_reference("mlp", *split, FAST, seed=1)["test_accuracy"]
    linear = refs.train_reference("logistic_regression", *split, FAST, seed=1)["test_accuracy"]
    assert mlp > 0.9 and linear < 0.75


def test_the_mlp_is_mnist1d_s_reference_architecture() -> None:
    """MLPBase of the MNIST-1D code: 40-100-100-10, the second hidden layer residual."""
    net = refs.build("mlp", 40, 10, refs.ReferenceSettings(), seed=0)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(100, 40), (100,), (100, 100), (100,), (10, 100), (10,)]
    import torch

    x = torch.randn(3, 40)
    h = net.linear1(x).relu()
    expected = net.linear3(h + net.linear2(h).relu())
    torch.testing.assert_close(net(x), expected)


def test_results_depend_on_the_seed_only() -> None:
    x, labels = _xor()
    split = (x[:200], labels[:200], x[200:], labels[200:])
    a = refs.train_reference("mlp", *split, FAST, seed=3)
    import torch

    torch.manual_seed(123)  # the global generator plays no part
    b = refs.train_reference("mlp", *split, FAST, seed=3)
    assert a == b
    w3, w4 = (refs.build("mlp", 2, 2, FAST, seed=s).linear1.weight for s in (3, 4))
    assert not np.allclose(w3.detach().numpy(), w4.detach().numpy())


def test_cache_returns_the_stored_result_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path))
    data = _dataset(*_separable())
    first = references.reference("logistic_regression", data, seed=1, settings=FAST)
    assert first["cached"] is False and first["test_accuracy"] == 1.0

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached reference was trained again")

    monkeypatch.setattr(refs, "train_reference", no_training)
    again = references.reference("logistic_regression", data, seed=1, settings=FAST)
    assert again["cached"] is True
    assert {k: v for k, v in again.items() if k != "cached"} == {
        k: v for k, v in first.items() if k != "cached"
    }
    assert len(list((tmp_path / "results" / "references").glob("*.json"))) == 1


def test_the_cache_key_changes_with_data_settings_seed_and_model() -> None:
    data = _dataset(*_separable())
    key = references.reference_key("mlp", data, FAST, 1)
    path = result_cache.entry_path("references", key)
    x = data.x_train.copy()
    x[0, 0] += 1e-9
    changed = [
        references.reference_key("mlp", ds.Dataset(**{**data.__dict__, "x_train": x}), FAST, 1),
        references.reference_key("mlp", data, refs.ReferenceSettings(steps=301), 1),
        references.reference_key("mlp", data, FAST, 2),
        references.reference_key("logistic_regression", data, FAST, 1),
    ]
    paths = {result_cache.entry_path("references", k) for k in changed}
    assert path not in paths and len(paths) == len(changed)
    assert result_cache.entry_path(
        "references", references.reference_key("mlp", data, FAST, 1)
    ) == (path)


def test_references_are_given_where_published_ones_exist() -> None:
    assert references.references_for("digits", 1, None, None) is None
    assert references.PUBLISHED["mnist1d"] == {"logistic_regression": 0.32, "mlp": 0.68}


@pytest.mark.slow
def test_both_protocols_write_the_references_on_mnist1d(tmp_path: Path) -> None:
    """EP and the microcircuit on a tiny MNIST-1D split: the references on the raw values of the
    same split, beside the same-architecture baseline; the second run reads them from the cache."""
    import json

    from neurosim.cli import main

    small = ["--set", "protocol.n_train=40", "--set", "protocol.n_test=20"]
    runs = {
        "ep": ["equilibrium-propagation", "--set", "protocol.grad_check=false",
               "--set", "protocol.traces=false", "--set", "protocol.examples_per_run=20"],
        "fc": ["feedback-cancellation", "--set", "protocol.shallow=false",
               "--set", "protocol.backprop_epochs=2", "--set", "protocol.patterns_per_run=20",
               "--set", "protocol.pattern_ms=20", "--set", "protocol.learning_lag_ms=4"],
    }  # fmt: skip
    seen = {}
    for name, args in runs.items():
        out = tmp_path / name
        code = main(["run", *args[:1], "--dataset", "mnist1d", "--epochs", "1", "--no-progress",
                     "--out", str(out), *args[1:], *small])  # fmt: skip
        assert code in (0, None)
        m = json.loads((out / "metrics.json").read_text())
        r = m["references"]
        assert r["n_train"] == 40 and r["n_test"] == 20 and r["published"]["mlp"] == 0.68
        for model in refs.MODELS:
            assert 0.0 <= r[model]["test_accuracy"] <= 1.0
        assert m["backprop_baseline"]
        seen[name] = r
    assert seen["ep"]["mlp"]["cached"] is False and seen["fc"]["mlp"]["cached"] is True
    assert seen["fc"]["mlp"]["test_accuracy"] == seen["ep"]["mlp"]["test_accuracy"]

"""The one backprop baseline (models/backprop.py) reproduces, number for number, the two training
loops it replaced: EP's online SGD with per-layer rates decaying per epoch, and the microcircuit's
Adam in mini-batches of 32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import backprop as bp

SIZES = (6, 5, 3)


def _data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, SIZES[0])), rng.uniform(0, 1, (n, SIZES[-1]))


def _weights(bias: bool, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = {}
    for k in range(1, len(SIZES)):
        w[f"W{k}"] = rng.uniform(-1, 1, (SIZES[k], SIZES[k - 1]))
        if bias:
            w[f"b{k}"] = rng.uniform(-0.1, 0.1, SIZES[k])
    return w


def _hard_sigmoid(k: int, u: torch.Tensor) -> torch.Tensor:
    return torch.clamp(u, 0.0, 1.0)


def test_sgd_matches_the_online_loop_with_decaying_rates() -> None:
    x, d = _data()
    w0 = _weights(bias=True)
    lr, decay, epochs, seed = [0.1, 0.05], 0.85, 3, 7
    net = bp.FeedForward(w0, _hard_sigmoid)
    bp.train(net, x, d, epochs=epochs, lr=lr, lr_decay=decay, optimiser="sgd", batch=1, seed=seed)

    # the loop EP's protocol ran before (a new SGD per epoch, one example at a time)
    ref = {k: torch.tensor(v, requires_grad=True) for k, v in w0.items()}
    X, D = torch.tensor(x), torch.tensor(d)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        opt = torch.optim.SGD(
            [
                {"params": [ref[f"W{k}"], ref[f"b{k}"]], "lr": lr[k - 1] * decay**epoch}
                for k in (1, 2)
            ]
        )
        for i in torch.randperm(X.shape[0], generator=gen).tolist():
            opt.zero_grad()
            r = X[i : i + 1]
            for k in (1, 2):
                r = torch.clamp(r @ ref[f"W{k}"].T + ref[f"b{k}"], 0.0, 1.0)
            (0.5 * ((r - D[i : i + 1]) ** 2).sum(-1).mean()).backward()
            opt.step()
    for name, value in net.to_weights().items():
        np.testing.assert_array_equal(value, ref[name].detach().numpy())


def test_adam_matches_the_minibatch_loop_without_biases() -> None:
    x, d = _data()
    w0 = _weights(bias=False)
    gains = {1: 0.5, 2: 0.9}

    def layer(k: int, u: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(gains[k] * u)

    net = bp.FeedForward(w0, layer)
    seen = bp.train(
        net, x, d, epochs=2, lr=1e-2, optimiser="adam", batch=32, seed=3,
        evaluate=lambda n, e: {"epoch": e, "loss": float(n.loss(x, d).detach())},
    )  # fmt: skip
    assert [h["epoch"] for h in seen] == [0, 1]

    ref = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in w0.items()}
    X, D = torch.tensor(x), torch.tensor(d)
    opt = torch.optim.Adam(ref.values(), lr=1e-2)
    gen = torch.Generator().manual_seed(3)
    for _ in range(2):
        order = torch.randperm(X.shape[0], generator=gen)
        for start in range(0, X.shape[0], 32):
            idx = order[start : start + 32]
            opt.zero_grad()
            r = X[idx]
            for k in (1, 2):
                r = torch.sigmoid(gains[k] * (r @ ref[f"W{k}"].T))
            (0.5 * ((r - D[idx]) ** 2).sum(-1).mean()).backward()
            opt.step()
    for name, value in net.to_weights().items():
        np.testing.assert_array_equal(value, ref[name].detach().numpy())


def test_training_lowers_the_loss_and_bad_settings_are_refused() -> None:
    x, _ = _data(80)
    teacher = bp.FeedForward(_weights(bias=True, seed=5), lambda k, u: torch.sigmoid(3 * u))
    d = teacher.predict(x)  # a target the network can learn
    net = bp.FeedForward(_weights(bias=True), lambda k, u: torch.sigmoid(3 * u))
    before = float(net.loss(x, d).detach())
    bp.train(net, x, d, epochs=50, lr=0.5, optimiser="sgd", batch=8, seed=0)
    assert float(net.loss(x, d).detach()) < 0.5 * before
    with pytest.raises(ValueError, match="optimiser"):
        bp.train(net, x, d, epochs=1, lr=0.1, optimiser="rmsprop")
    with pytest.raises(ValueError, match="one rate per layer"):
        bp.train(net, x, d, epochs=1, lr=[0.1])
    with pytest.raises(ValueError, match="W1"):
        bp.FeedForward({"V1": np.zeros((2, 2))}, _hard_sigmoid)

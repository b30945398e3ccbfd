"""The backprop baseline of equilibrium-propagation: a feed-forward network of the same sizes and
initial weights, trained by backprop on the same split."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from models import equilibrium_propagation as ep


def backprop_baseline(
    task: Any, w0: Mapping[str, np.ndarray], epochs: int, seed: int
) -> dict[str, Any]:
    """Online SGD (batch 1) on ½‖r_N − d‖², per-layer rates ``backprop_lr``, × ``lr_decay`` per
    epoch, ``backprop_epochs`` epochs (-1: as many as EP, 0: none)."""
    import torch

    cfg, data = task.cfg, task.data
    n_epochs = epochs if cfg.backprop_epochs < 0 else cfg.backprop_epochs
    if n_epochs == 0:
        return {}
    net = ep.BackpropNetwork(
        task.sizes, seed=seed, weights={k: torch.tensor(v) for k, v in w0.items()},
        activation=cfg.backprop_activation,
    )  # fmt: skip
    X, D = torch.tensor(data.x_train), torch.tensor(task.d_train)
    Xt = torch.tensor(data.x_test)
    gen = torch.Generator().manual_seed(int(seed))
    hist = []
    start = time.perf_counter()
    for epoch in range(n_epochs):
        scale = cfg.lr_decay**epoch
        groups = [
            {
                "params": [net.weights[f"W{k}"], net.weights[f"b{k}"]],
                "lr": task.backprop_lr[k - 1] * scale,
            }
            for k in range(1, task.n_layers + 1)
        ]
        opt = torch.optim.SGD(groups)
        for i in torch.randperm(X.shape[0], generator=gen).tolist():
            opt.zero_grad()
            net.loss(X[i : i + 1], D[i : i + 1]).backward()
            opt.step()
        pred = net.predict(Xt).numpy()
        hist.append(float(np.mean(np.argmax(pred, axis=1) == data.labels_test)))
    wall = time.perf_counter() - start
    train_pred = net.predict(X).numpy()
    return {
        "test_accuracy": hist[-1],
        "train_accuracy": float(np.mean(np.argmax(train_pred, axis=1) == data.labels_train)),
        "history": hist,
        "epochs": n_epochs,
        "lr": task.backprop_lr,
        "activation": cfg.backprop_activation,
        "optimiser": "SGD, batch 1",
        "wall_seconds": wall,
    }

"""The backprop baseline of equilibrium-propagation: the one feed-forward baseline
(:mod:`models.backprop`) with the circuit's layer sizes, layer function and initial weights,
trained on the same split."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from models import backprop
from models import equilibrium_propagation as ep


def backprop_baseline(
    task: Any, w0: Mapping[str, np.ndarray], epochs: int, seed: int
) -> dict[str, Any]:
    """Online SGD (batch 1) on ½‖r_N − d‖², per-layer rates ``backprop_lr``, × ``lr_decay`` per
    epoch, ``backprop_epochs`` epochs (-1: as many as EP, 0: none)."""
    cfg, data = task.cfg, task.data
    n_epochs = epochs if cfg.backprop_epochs < 0 else cfg.backprop_epochs
    if n_epochs == 0:
        return {}
    net = backprop.FeedForward(w0, ep.baseline_layer(cfg.backprop_activation))

    metric = task.metric  # accuracy, or the mean squared error of the output rates

    def evaluate(model: backprop.FeedForward, epoch: int) -> dict[str, float]:
        return {f"test_{metric}": task.score(model.predict(data.x_test), "test")}

    start = time.perf_counter()
    history = backprop.train(
        net, data.x_train, task.d_train, epochs=n_epochs, lr=task.backprop_lr,
        lr_decay=cfg.lr_decay, optimiser="sgd", batch=1, seed=seed, evaluate=evaluate,
    )  # fmt: skip
    wall = time.perf_counter() - start
    return {
        f"test_{metric}": history[-1][f"test_{metric}"],
        f"train_{metric}": task.score(net.predict(data.x_train), "train"),
        "history": [h[f"test_{metric}"] for h in history],
        "epochs": n_epochs,
        "lr": task.backprop_lr,
        "activation": cfg.backprop_activation,
        "optimiser": "SGD, batch 1",
        "wall_seconds": wall,
    }

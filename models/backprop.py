"""The one backprop baseline: a feed-forward network of a circuit's layer sizes, trained by
gradient descent on the circuit's cost, so that a circuit's local rule is measured against the
gradient on the same architecture, data split and initial weights.

Both circuits use it with their own layer function: the Hopfield circuit's r_k = ρ(W_k r_{k−1} +
b_k) (hard sigmoid, or a logistic baseline), the microcircuit's self-predicting forward pass
r_k = φ(gain_k W_k r_{k−1}) (no biases). The loss is the batch mean of ½‖r_N − d‖². float64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

DTYPE = torch.float64
OPTIMISERS = ("sgd", "adam")

#: ``layer(k, u)``: the rates of layer k from its drive u = r_{k−1} W_kᵀ (+ b_k)
Layer = Callable[[int, torch.Tensor], torch.Tensor]


class FeedForward(torch.nn.Module):
    """r_0 = x, r_k = layer(k, r_{k−1} W_kᵀ + b_k) for k = 1..N (b_k only where ``b{k}`` is
    given). Parameters keep the circuit's names (``W{k}``, ``b{k}``) and shapes (post × pre)."""

    def __init__(self, weights: Mapping[str, Any], layer: Layer) -> None:
        super().__init__()
        depth = 0
        while f"W{depth + 1}" in weights:
            depth += 1
        if depth == 0:
            raise ValueError("FeedForward needs weights W1..WN, got none named W1.")
        self.depth = depth
        self.layer = layer
        self.weights = torch.nn.ParameterDict()
        for k in range(1, depth + 1):
            for name in (f"W{k}", f"b{k}"):
                if name in weights:
                    value = torch.as_tensor(weights[name], dtype=DTYPE).detach().clone()
                    self.weights[name] = torch.nn.Parameter(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output rates r_N, shape (batch, n_N)."""
        r = torch.as_tensor(x, dtype=DTYPE)
        if r.ndim == 1:
            r = r[None, :]
        for k in range(1, self.depth + 1):
            u = r @ self.weights[f"W{k}"].T
            if f"b{k}" in self.weights:
                u = u + self.weights[f"b{k}"]
            r = self.layer(k, u)
        return r

    def loss(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Batch mean of ½‖r_N − d‖²."""
        return 0.5 * ((self(x) - torch.as_tensor(d, dtype=DTYPE)) ** 2).sum(-1).mean()

    @torch.no_grad()
    def predict(self, x: Any) -> np.ndarray:
        """Output rates for inputs ``x`` as a numpy array, without gradients."""
        return self(x).numpy()

    def to_weights(self) -> dict[str, np.ndarray]:
        """The parameters as numpy arrays by name."""
        return {name: p.detach().numpy().copy() for name, p in self.weights.items()}


def _layer_rates(lr: float | Sequence[float], depth: int) -> list[float]:
    rates = [float(lr)] * depth if np.isscalar(lr) else [float(v) for v in lr]  # type: ignore[arg-type]
    if len(rates) != depth:
        raise ValueError(f"lr needs one rate per layer ({depth}), got {len(rates)}.")
    return rates


def train(
    net: FeedForward,
    x: Any,
    d: Any,
    *,
    epochs: int,
    lr: float | Sequence[float],
    optimiser: str = "sgd",
    batch: int = 1,
    lr_decay: float = 1.0,
    seed: int = 0,
    evaluate: Callable[[FeedForward, int], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train ``net`` on (x, d) for ``epochs`` passes in a fresh random order each (one
    ``torch.Generator`` seeded with ``seed``), in mini-batches of ``batch``; layer k learns at
    ``lr[k−1] · lr_decay^epoch``. Returns ``evaluate(net, epoch)`` after every epoch."""
    if optimiser not in OPTIMISERS:
        raise ValueError(f"optimiser must be one of {OPTIMISERS}, not {optimiser!r}.")
    if batch < 1 or epochs < 0:
        raise ValueError(f"batch must be ≥ 1 and epochs ≥ 0, got {batch} and {epochs}.")
    rates = _layer_rates(lr, net.depth)
    groups = [
        {
            "params": [net.weights[n] for n in (f"W{k}", f"b{k}") if n in net.weights],
            "lr": rates[k - 1],
        }
        for k in range(1, net.depth + 1)
    ]
    opt = torch.optim.SGD(groups) if optimiser == "sgd" else torch.optim.Adam(groups)
    X, D = torch.as_tensor(x, dtype=DTYPE), torch.as_tensor(d, dtype=DTYPE)
    gen = torch.Generator().manual_seed(int(seed))
    history: list[dict[str, Any]] = []
    for epoch in range(epochs):
        for group, rate in zip(opt.param_groups, rates, strict=True):
            group["lr"] = rate * lr_decay**epoch
        order = torch.randperm(X.shape[0], generator=gen)
        for start in range(0, X.shape[0], batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            net.loss(X[idx], D[idx]).backward()
            opt.step()
        history.append(evaluate(net, epoch) if evaluate is not None else {})
    return history

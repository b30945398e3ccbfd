"""The conventional references of a classification data set, trained on its raw values (no input
code): logistic regression and the MNIST-1D reference MLP (Greydanus 2020), so that a circuit's
result sits on the published scale (issue 16).

Both follow the MNIST-1D authors' reference code (``notebooks/models.py``, ``train.py`` of
greydanus/mnist1d): ``LinearBase`` is one linear layer; ``MLPBase`` is
h = relu(W1 x + b1), h ← h + relu(W2 h + b2), logits W3 h + b3 (100 hidden units); both trained
with Adam (learning rate 1e-2, no weight decay) on the cross-entropy, mini-batches of 100 taken
in order from the training set (batch i is examples 100·i mod n onwards), 6000 steps, float32.
Published test accuracies: 32 % and 68 %. Here the initial weights come from a
``torch.Generator`` seeded by the caller (PyTorch's default ``nn.Linear`` initialisation,
U(−1/√fan_in, 1/√fan_in) for weights and biases), so a result depends on its seed only and
never on torch's global random state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from neurosim.seeding import torch_threads

DTYPE = torch.float32
#: the reference models, by name
MODELS = ("logistic_regression", "mlp")


@dataclass(frozen=True)
class ReferenceSettings:
    """The reference code's training settings (module docstring)."""

    hidden: int = 100
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch: int = 100
    steps: int = 6000

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReferenceMLP(torch.nn.Module):
    """MNIST-1D's ``MLPBase``: two hidden layers of ``hidden`` ReLU units, the second residual."""

    def __init__(self, n_in: int, n_out: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = torch.nn.Linear(n_in, hidden)
        self.linear2 = torch.nn.Linear(hidden, hidden)
        self.linear3 = torch.nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x).relu()
        h = h + self.linear2(h).relu()
        return self.linear3(h)


def build(model: str, n_in: int, n_out: int, settings: ReferenceSettings, seed: int) -> Any:
    """Reference ``model`` (one of :data:`MODELS`) with its initial weights drawn from ``seed``."""
    if model == "logistic_regression":
        net: torch.nn.Module = torch.nn.Linear(n_in, n_out)
    elif model == "mlp":
        net = ReferenceMLP(n_in, n_out, settings.hidden)
    else:
        raise ValueError(f"reference model must be one of {MODELS}, not {model!r}.")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, torch.nn.Linear):
                bound = 1.0 / np.sqrt(layer.in_features)  # nn.Linear's default bounds
                for p in (layer.weight, layer.bias):
                    p.copy_((2.0 * torch.rand(p.shape, generator=gen, dtype=DTYPE) - 1.0) * bound)
    return net.to(DTYPE)


def _accuracy(net: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(-1) == labels).double().mean())


def train_reference(
    model: str,
    x_train: np.ndarray,
    labels_train: np.ndarray,
    x_test: np.ndarray,
    labels_test: np.ndarray,
    settings: ReferenceSettings | None = None,
    seed: int = 0,
    eval_every: int = 1000,
) -> dict[str, Any]:
    """Train reference ``model`` on (x_train, labels_train) as the reference code does and
    return its test and training accuracies at the end, and the test accuracy every
    ``eval_every`` steps (``history``, step 0 included)."""
    settings = settings or ReferenceSettings()
    x_tr, x_te = torch.as_tensor(x_train, dtype=DTYPE), torch.as_tensor(x_test, dtype=DTYPE)
    l_tr = torch.as_tensor(np.asarray(labels_train), dtype=torch.long)
    l_te = torch.as_tensor(np.asarray(labels_test), dtype=torch.long)
    n_out = int(max(l_tr.max(), l_te.max())) + 1
    net = build(model, x_tr.shape[1], n_out, settings, seed)
    with torch_threads(1):  # batches of 100 × 100 units: extra threads only wait on each other
        return _train(net, x_tr, l_tr, x_te, l_te, settings, seed, eval_every)


def _train(
    net: torch.nn.Module,
    x_tr: torch.Tensor,
    l_tr: torch.Tensor,
    x_te: torch.Tensor,
    l_te: torch.Tensor,
    settings: ReferenceSettings,
    seed: int,
    eval_every: int,
) -> dict[str, Any]:
    opt = torch.optim.Adam(net.parameters(), settings.lr, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    history = [_accuracy(net, x_te, l_te)]
    for step in range(settings.steps):
        start = (step * settings.batch) % len(x_tr)  # in order, as the reference code
        xb, lb = x_tr[start : start + settings.batch], l_tr[start : start + settings.batch]
        opt.zero_grad()
        loss_fn(net(xb), lb).backward()
        opt.step()
        if eval_every > 0 and (step + 1) % eval_every == 0:
            history.append(_accuracy(net, x_te, l_te))
    return {
        "test_accuracy": _accuracy(net, x_te, l_te),
        "train_accuracy": _accuracy(net, x_tr, l_tr),
        "history": history,
        "history_every_steps": eval_every,
        "settings": settings.as_dict(),
        "seed": int(seed),
    }

"""Measures of the circuit's output and weights, and the backprop baseline of the same
architecture (:mod:`models.backprop`) on the same split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neurosim import result_cache
from neurosim.seeding import torch_threads
from protocols.feedback_cancellation.task import Task, forward_scales


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two arrays, flattened (nan for a zero array)."""
    a, b = np.ravel(a), np.ravel(b)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float("nan")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two arrays, flattened (nan for a constant one)."""
    x, y = np.ravel(x), np.ravel(y)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two arrays in degrees."""
    c = cosine(a, b)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def metric_key(task: Task) -> str:
    """``accuracy`` for classification, ``mse`` for regression."""
    return "accuracy" if task.data.task == "classification" else "mse"


def evaluate_rates(task: Task, r: np.ndarray, y: np.ndarray, labels: Any) -> dict[str, float]:
    """MSE ‖r − y‖² per pattern and, for classification, the accuracy of argmax r."""
    out = {"mse": float(np.mean(np.sum((r - y) ** 2, axis=1)))}
    if task.data.task == "classification":
        out["accuracy"] = float(np.mean(np.argmax(r, axis=1) == labels))
    return out


def evaluate(task: Task, u_out: np.ndarray, y: np.ndarray, labels: Any) -> dict[str, float]:
    """:func:`evaluate_rates` of the output potentials ``u_out``."""
    return evaluate_rates(task, task.params.phi_numpy(u_out), y, labels)


def settled_ends(
    task: Task, weights: dict[str, np.ndarray], x: np.ndarray
) -> dict[str, np.ndarray]:
    """The free circuit's settled potentials for each input of ``x``, solved by the torch twin's
    :func:`~models.dendritic_microcircuit.fixed_point` (the same equations; the Brian2 circuit's
    settled potentials equal it to 1e-9): the keys of a simulated pass's pattern ends (``out``,
    ``u{k}``, ``vA{k}``, ``uI{k}``), without a simulation."""
    import torch

    N = task.n_layers
    tw = {name: torch.as_tensor(m, dtype=torch.float64) for name, m in weights.items()}
    if task.cfg.top_down == "tied":  # the circuit's apical input reads W_{k+1}ᵀ
        tw.update({f"B{k}": tw[f"W{k + 1}"].T.clone() for k in range(1, N)})
    parts: dict[str, list[np.ndarray]] = {}
    with torch_threads(1):  # small solves: torch's thread pool spins on a shared machine
        for start in range(0, len(x), SETTLE_CHUNK):
            _settle_chunk(task, tw, x[start : start + SETTLE_CHUNK], parts)
    ends = {key: np.concatenate(v) for key, v in parts.items()}
    ends["out"] = ends[f"u{N}"]
    return ends


def _settle_chunk(task: Task, tw: dict, x: np.ndarray, parts: dict[str, list[np.ndarray]]) -> None:
    """Solve one chunk of inputs and append its pattern ends to ``parts``."""
    import torch

    from models import dendritic_microcircuit as dm

    N = task.n_layers
    r0 = torch.as_tensor(x, dtype=torch.float64)
    state = dm.fixed_point(task.params, tw, r0).state
    acts = dm.activities(task.params, tw, state, r0)
    for k in range(1, N + 1):
        parts.setdefault(f"u{k}", []).append(acts[f"u{k}"].numpy())
    for k in range(1, N):
        parts.setdefault(f"vA{k}", []).append(acts[f"vA{k}"].numpy())
        parts.setdefault(f"uI{k}", []).append(acts[f"uI{k}"].numpy())


#: inputs solved together by :func:`settled_ends` (Newton's Jacobians grow as chunk × cells²)
SETTLE_CHUNK = 256


def backprop_baseline_cached(task: Task, seed: int) -> tuple[dict[str, Any], bool]:
    """:func:`backprop_baseline`, read from :mod:`neurosim.result_cache` when a run with the same
    data, sizes, parameters, settings and seed trained it before; and whether it was."""
    import dataclasses

    import torch

    cfg, d = task.cfg, task.data
    inputs = {
        "sizes": task.sizes, "params": dataclasses.asdict(task.params), "seed": seed,
        "scales": forward_scales(task), "epochs": cfg.backprop_epochs, "lr": cfg.backprop_lr,
        "data": [d.x_train, d.y_train, d.x_test, d.y_test, d.labels_test], "task": d.task,
        "torch": torch.__version__,
    }  # fmt: skip
    code = (__name__, "models.backprop", "models.dendritic_microcircuit.network")
    return result_cache.cached(
        "backprop-baseline", inputs, lambda: backprop_baseline(task, seed), code
    )


def backprop_baseline(task: Task, seed: int) -> dict[str, Any]:
    """Backprop in torch on the same split and architecture: the circuit's self-predicting
    forward pass r_k = φ(gain_k W_k r_{k−1}), Adam, batch 32 (:mod:`models.backprop`)."""
    if task.cfg.backprop_epochs == 0:
        return {}
    key, data = metric_key(task), task.data

    def test(net: Any, epoch: int) -> dict[str, Any]:
        return evaluate_rates(task, net.predict(data.x_test), data.y_test, data.labels_test)

    _, hist = backprop_network(task, seed, test)
    return {"test": hist[-1][key], "history": [h[key] for h in hist], "epochs": len(hist)}


def backprop_network(
    task: Task, seed: int, evaluate: Callable[[Any, int], Any] | None = None
) -> tuple[Any, list[Any]]:
    """The baseline's network trained as :func:`backprop_baseline` trains it (initial weights
    U(−a_k, a_k) of :func:`forward_scales` from ``seed``, ``backprop_epochs`` of Adam at
    ``backprop_lr``, batch 32), and ``evaluate``'s record after each epoch: for callers that
    need the trained network itself, not only its test figures."""
    import torch

    from models import backprop
    from models import dendritic_microcircuit as dm

    cfg, data, sizes, params = task.cfg, task.data, task.sizes, task.params
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    weights = {
        f"W{k}": rng.uniform(-a, a, (sizes[k], sizes[k - 1]))
        for k, a in enumerate(forward_scales(task), start=1)
    }
    phi = dm.rate_function(params)
    gains = {k: params.basal_gain(k == task.n_layers) for k in range(1, task.n_layers + 1)}
    net = backprop.FeedForward(weights, lambda k, u: phi(gains[k] * u))
    hist = backprop.train(
        net, data.x_train, data.y_train, epochs=cfg.backprop_epochs, lr=cfg.backprop_lr,
        optimiser="adam", batch=32, seed=seed, evaluate=evaluate,
    )  # fmt: skip
    return net, hist

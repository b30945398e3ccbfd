"""Stage ``error-transport``: a check, not training. Top-down weights tied to the forward weights
(B = Wᵀ), lateral weights in the closed form, plasticity off; each test input settles for
``settle_ms`` at each nudging strength of ``transport_nudges``, and the settled apical potentials
and the circuit's own low-pass filtered forward-weight induction terms (``W.Delta``) are compared
with the backprop error and minus the gradient of the torch twin
(:func:`models.dendritic_microcircuit.backprop_reference`, ``loss="circuit"``: the loss the
circuit follows exactly as nudging → 0; DESIGN.md §4.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neurosim.config import RunConfig
from neurosim.connectivity import w_to_matrix
from neurosim.engine import Simulation
from neurosim.protocol import ProtocolResult
from neurosim.records.microcircuit import ErrorTransportRecord
from neurosim.seeding import run_seed
from protocols.feedback_cancellation.evaluation import cosine
from protocols.feedback_cancellation.simulation import etas
from protocols.feedback_cancellation.task import Task, initial_weights


def transport_simulation(run: RunConfig, task: Task) -> Simulation:
    """One input per run, settling for ``settle_ms`` with B tied to W and nothing recorded."""
    cfg, sizes, circuit = task.cfg, task.sizes, task.circuit
    init = circuit.timed_values(np.zeros((1, sizes[0])), sizes[-1], plastic=0.0)
    structure = circuit.Structure(sizes, topdown="tied", record={}, timed_dt_ms=cfg.settle_ms)
    return Simulation(
        circuit.builder(structure, task.params, cfg.dt_ms),
        device=run.device,
        duration_ms=cfg.settle_ms,
        dt_ms=cfg.dt_ms,
        initial_timed=init,
        label=f"{circuit.name}-transport",
    )


def _read_names(N: int) -> dict[str, str]:
    names = {"layer0.r0": "r0"}
    for k in range(1, N + 1):
        names[f"layer{k}.u"] = f"u{k}"
    for k in range(1, N):
        names[f"layer{k}.vA_td"] = f"vA_td{k}"
        names[f"layer{k}.vA_int"] = f"vA_int{k}"
    return names


def _nudge_row(
    run: RunConfig, task: Task, sim: Simulation, values: dict, refs: list, step: int, nudge: float
) -> tuple[dict[str, Any], float]:
    """Every test input settled at one nudging strength: the row of cosines and the wall time."""
    sizes, N, circuit = task.sizes, task.n_layers, task.circuit
    n = len(refs)
    x, u_t = task.data.x_test[:n], task.data.u_test[:n]
    read = (*_read_names(N), *(f"W{k}.Delta" for k in range(1, N + 1)))
    apical: dict[int, list] = {k: [] for k in range(1, N)}
    dw: dict[int, list] = {k: [] for k in range(1, N + 1)}
    dw_sum: dict[int, Any] = dict.fromkeys(range(1, N + 1), 0.0)
    grad_sum: dict[int, Any] = dict.fromkeys(range(1, N + 1), 0.0)
    vA_norm, wall = [], 0.0
    for i in range(n):
        tv = circuit.timed_values(
            x[i : i + 1], sizes[-1], targets=u_t[i : i + 1], nudge=nudge, plastic=0.0
        )
        result = sim.run(values=values, timed=tv, seed=run_seed(run.seed, step, i), read=read)
        wall += result.wall_seconds
        st, ref = result.state, refs[i]
        for k in range(1, N):
            vA = st[f"layer{k}.vA_td"] + st[f"layer{k}.vA_int"]
            apical[k].append(cosine(vA, ref.errors[f"e{k}"].numpy()))
            vA_norm.append(float(np.linalg.norm(vA)))
        for k in range(1, N + 1):
            d = w_to_matrix(st[f"W{k}.Delta"], sizes[k], sizes[k - 1])
            g = -ref.grads[f"W{k}"].numpy()
            dw[k].append(cosine(d, g))
            dw_sum[k] = dw_sum[k] + d
            grad_sum[k] = grad_sum[k] + g
    row: dict[str, Any] = {"nudge": nudge, "apical_rms": float(np.mean(vA_norm))}
    for k in range(1, N):
        row[f"apical_cosine_{k}_mean"] = float(np.mean(apical[k]))
        row[f"apical_cosine_{k}_min"] = float(np.min(apical[k]))
    for k in range(1, N + 1):
        row[f"dW_cosine_{k}_mean"] = float(np.mean(dw[k]))
        row[f"dW_cosine_{k}_min"] = float(np.min(dw[k]))
        row[f"dW_cosine_{k}_batch"] = cosine(dw_sum[k], grad_sum[k])
    row["apical_cosine_min"] = min(row[f"apical_cosine_{k}_min"] for k in range(1, N))
    row["dW_cosine_min"] = min(row[f"dW_cosine_{k}_min"] for k in range(1, N + 1))
    return row, wall


def check_error_transport(
    run: RunConfig, task: Task, rng: np.random.Generator, progress: Callable
) -> tuple[Simulation, ProtocolResult]:
    """Settle every test input at every nudging strength and compare with the backprop error
    and gradient of the same weights."""
    import torch

    from models import dendritic_microcircuit as dm

    cfg, N = task.cfg, task.n_layers
    n = min(cfg.transport_patterns, len(task.data.x_test))
    x, u_t = task.data.x_test[:n], task.data.u_test[:n]
    w = initial_weights(task, rng, "closed-form")
    sim = transport_simulation(run, task)
    values = {
        **task.circuit.weight_values(task.circuit.Structure(task.sizes, topdown="tied"), w),
        **etas(task, forward=[0.0] * N, ip=0.0, pi=0.0),
    }
    tw = {name: torch.tensor(m) for name, m in w.items()}
    refs = [dm.backprop_reference(task.params, tw, x[i], u_t[i], loss="circuit") for i in range(n)]
    table: dict[str, dict[str, Any]] = {}
    wall = 0.0
    for step, nudge in enumerate(cfg.transport_nudges, start=1):
        row, row_wall = _nudge_row(run, task, sim, values, refs, step, nudge)
        wall += row_wall
        table[f"{nudge:g}"] = row
        progress(
            1, f"nudge {nudge:g}: apical cos ≥ {row['apical_cosine_min']:.4f}, "
            f"dW cos ≥ {row['dW_cosine_min']:.4f}"
        )  # fmt: skip
    weakest = table[f"{min(cfg.transport_nudges):g}"]
    metrics: dict[str, Any] = {
        "error_transport": table,
        "nudges": list(cfg.transport_nudges),
        "transport_patterns": n,
        "apical_cosine_min_weakest": weakest["apical_cosine_min"],
        "dW_cosine_min_weakest": weakest["dW_cosine_min"],
        "topdown": "tied",
        "loss": "circuit",
        "settle_ms": cfg.settle_ms,
        "wall_seconds_simulation": wall,
        "samples_per_second": n * len(cfg.transport_nudges) / wall if wall > 0 else None,
    }
    first = table[f"{cfg.transport_nudges[0]:g}"]
    curves = {
        key: np.array([table[f"{v:g}"][key] for v in cfg.transport_nudges])
        for key in first
        if key.endswith("_mean")
    }
    record = ErrorTransportRecord(
        pattern_ms=cfg.settle_ms, nudges=np.asarray(cfg.transport_nudges), curves=curves
    )
    return sim, ProtocolResult(metrics=metrics, segments=[], weights=w, data=record)

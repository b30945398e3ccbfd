"""Run values of the layered Hopfield circuit (:mod:`circuits.hopfield`): its named weights and
their run values (``W{k}`` ↔ ``W{k}.w``, ``b{k}`` ↔ ``layer{k}.b``, ``W{k}_back`` ↔ ``W{k}.wb``),
the learning rates and release-failure probabilities per projection, the state carried from one
run into the next and the default recording. :mod:`circuits.hopfield` re-exports every public
name, and :class:`circuits.hopfield.HopfieldCircuit` offers them as methods."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from neurosim.batch import tile_copies
from neurosim.blocks import layer_sizes
from neurosim.connectivity import matrix_to_w, w_to_matrix

RECIPROCAL = ("tied", "untied")


_check_sizes = layer_sizes  # the one check of layered circuits (neurosim.blocks)


def _n_layers(sizes: Sequence[int]) -> int:
    return len(_check_sizes(sizes)) - 1


def _check_reciprocal(reciprocal: str) -> str:
    if reciprocal not in RECIPROCAL:
        raise ValueError(f"reciprocal must be one of {RECIPROCAL}, got {reciprocal!r}")
    return reciprocal


def weight_shapes(sizes: Sequence[int], reciprocal: str = "tied") -> dict[str, tuple[int, ...]]:
    """Every parameter and its shape, as the twin names them: ``W{k}`` (n_k, n_{k−1}) — the
    symmetric weight between layers k−1 and k — and ``b{k}`` (n_k,); with ``reciprocal="untied"``
    also ``W{k}_back`` (n_k, n_{k−1}), k ≥ 2, the backward weights (entry [i, j]: cell i of layer
    k → cell j of layer k−1)."""
    sizes = _check_sizes(sizes)
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(1, len(sizes)):
        shapes[f"W{k}"] = (sizes[k], sizes[k - 1])
    if _check_reciprocal(reciprocal) == "untied":
        for k in range(2, len(sizes)):
            shapes[f"W{k}_back"] = (sizes[k], sizes[k - 1])
    for k in range(1, len(sizes)):
        shapes[f"b{k}"] = (sizes[k],)
    return shapes


def weight_values(
    weights: Mapping[str, Any],
    sizes: Sequence[int] | None = None,
    reciprocal: str = "tied",
    batch: int = 1,
) -> dict[str, np.ndarray]:
    """Named parameters (``W{k}`` matrices, ``b{k}`` vectors, ``W{k}_back`` of an untied circuit;
    numpy or torch) → run values ``{'W1.w': ..., 'layer1.b': ..., 'W2.wb': ...}``. With
    ``sizes``, every shape is checked first; ``batch``: one copy of each per copy of the circuit
    (batch mode)."""
    shapes = weight_shapes(sizes, reciprocal) if sizes is not None else None
    out: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        arr = np.array(value.detach().cpu() if hasattr(value, "detach") else value, dtype=float)
        if shapes is not None:
            if name not in shapes:
                raise ValueError(f"unknown parameter {name!r} for sizes {list(sizes)}")
            if arr.shape != shapes[name]:
                raise ValueError(f"{name} has shape {arr.shape}, expected {shapes[name]}")
        if name.startswith("W") and name.endswith("_back"):
            out[f"{name[: -len('_back')]}.wb"] = matrix_to_w(arr)
        elif name.startswith("W"):
            out[f"{name}.w"] = matrix_to_w(arr)
        elif name.startswith("b"):
            if arr.ndim != 1:
                raise ValueError(f"{name} must be a vector, got shape {arr.shape}")
            out[f"layer{name[1:]}.b"] = arr.copy()
        else:
            raise ValueError(f"unknown parameter {name!r}: names are W1.., b1..")
    return tile_copies(out, batch)


def weights_from_state(
    state: Mapping[str, np.ndarray], sizes: Sequence[int], reciprocal: str = "tied"
) -> dict[str, np.ndarray]:
    """The parameters found in a run's ``state`` (``'W1.w'``, ``'layer1.b'``, ``'W2.wb'``...);
    in batch mode, the first copy's (the copies are kept equal)."""
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(sizes, reciprocal).items():
        if name.endswith("_back"):
            key = f"{name[: -len('_back')]}.wb"
        else:
            key = f"{name}.w" if name.startswith("W") else f"layer{name[1:]}.b"
        if key in state:
            first = np.asarray(state[key], dtype=float)[: math.prod(shape)]
            if name.startswith("W"):
                out[name] = w_to_matrix(first, *shape)
            else:
                out[name] = first.reshape(shape).copy()
    return out


def _per_layer(value: float | Sequence[float], n_layers: int, what: str) -> list[float]:
    values = [float(value)] * n_layers if np.ndim(value) == 0 else [float(v) for v in value]
    if len(values) != n_layers or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} needs one finite value or {n_layers}, got {value!r}")
    return values


def eta_values(
    sizes: Sequence[int],
    *,
    two_phase: float | Sequence[float] | None = None,
    continual: float | Sequence[float] | None = None,
) -> dict[str, float]:
    """Learning rates for ``Simulation.run``: one value, or one per layer k = 1..N (applied to
    ``W{k}`` and ``b{k}``). ``two_phase`` → ``W{k}.eta`` and ``layer{k}.eta_b``, ``continual`` →
    ``W{k}.eta_c`` and ``layer{k}.eta_bc``; a rule left at
    ``None`` is not listed (it must be compiled in for its rate to be given)."""
    n = _n_layers(sizes)
    out: dict[str, float] = {}
    for rule, var, bias_var in ((two_phase, "eta", "eta_b"), (continual, "eta_c", "eta_bc")):
        if rule is None:
            continue
        for k, value in enumerate(_per_layer(rule, n, var), start=1):
            out[f"W{k}.{var}"] = value
            out[f"layer{k}.{bias_var}"] = value
    return out


def back_eta_values(
    sizes: Sequence[int],
    *,
    two_phase: float | Sequence[float] | None = None,
    continual: float | Sequence[float] | None = None,
) -> dict[str, float]:
    """Learning rates of the backward weights of an untied circuit (``reciprocal="untied"``): one
    value, or one per layer k = 1..N (the value for k = 1 is unused: the input is clamped and has
    no backward weights). ``two_phase`` → ``W{k}.eta_back``, ``continual`` → ``W{k}.eta_c_back``,
    k ≥ 2; 0 freezes them."""
    n = _n_layers(sizes)
    out: dict[str, float] = {}
    for rule, var in ((two_phase, "eta_back"), (continual, "eta_c_back")):
        if rule is None:
            continue
        for k, value in enumerate(_per_layer(rule, n, var), start=1):
            if k >= 2:
                out[f"W{k}.{var}"] = value
    return out


def p_fail_values(sizes: Sequence[int], p_fail: float, population: int = 1) -> dict[str, float]:
    """The release-failure probability of every projection (spiking read-out; one cell per
    unit), or of every layer's pool (``population`` > 1: drawn once per spike of its cells)."""
    if population > 1:
        return {f"layer{k}_pool.p_fail": float(p_fail) for k in range(_n_layers(sizes) + 1)}
    return {f"W{k}.p_fail": float(p_fail) for k in range(1, _n_layers(sizes) + 1)}


def state_keys(
    sizes: Sequence[int], *, readout: str = "rate", reciprocal: str = "tied", population: int = 1
) -> tuple[str, ...]:
    """The state carried from one run into the next: states, weights, biases (and spike traces:
    per synapse, or per unit with ``population`` > 1; the backward weights of an untied circuit).

    Rates, sums, latches and accumulators are recomputed or restart at 0 in every run.
    """
    n = _n_layers(sizes)
    keys = [f"layer{k}.s" for k in range(1, n + 1)]
    keys += [f"W{k}.w" for k in range(1, n + 1)]
    keys += [f"layer{k}.b" for k in range(1, n + 1)]
    if _check_reciprocal(reciprocal) == "untied":
        keys += [f"W{k}.wb" for k in range(2, n + 1)]
    if readout == "spiking" and population > 1:
        keys += [f"layer{k}.X" for k in range(n + 1)]
    elif readout == "spiking":
        keys += [f"W{k}.x" for k in range(1, n + 1)]
        keys += [f"W{k}.xb" for k in range(2, n + 1)]
    return tuple(keys)


def spike_counts(
    monitors: Mapping[str, Mapping[str, np.ndarray]], sizes: Sequence[int], batch: int = 1
) -> dict[str, np.ndarray]:
    """Spikes of every cell of every layer in one run of a spiking build (``layer{k}`` → counts):
    from ``counts_layer{k}`` (populations: every cell, cell m of unit u at m·units + u) or
    ``spikes_layer{k}`` (one cell per unit)."""
    out: dict[str, np.ndarray] = {}
    for k, n in enumerate(_check_sizes(sizes)):
        if f"counts_layer{k}" in monitors:
            out[f"layer{k}"] = np.asarray(monitors[f"counts_layer{k}"]["count"], dtype=int)
        else:
            i = np.asarray(monitors[f"spikes_layer{k}"]["i"], dtype=int)
            out[f"layer{k}"] = np.bincount(i, minlength=n * batch)
    return out


def default_record(sizes: Sequence[int]) -> dict[str, tuple[str, ...]]:
    """The states s of layers 1..N."""
    return {f"layer{k}": ("s",) for k in range(1, _n_layers(sizes) + 1)}

"""The steps every consciousness-prior pairing of ``neurosim compare`` shares (issue 17, DESIGN.md
§4.5–§4.6), whatever its circuit: the microcircuit's
(:mod:`protocols.compare_consciousness_microcircuit`) and the Hopfield circuit's
(:mod:`protocols.compare_consciousness_hopfield`).

(a) the world and its transitions as ``neurosim run consciousness-prior`` draws them, and the
    bottleneck model and the baseline trained on them (:func:`train_prior`);
the transitions as an ``npz:`` regression data set for the circuit (:func:`write_dataset`) and the
circuit's output rates back in the variables' units (:func:`rates_to_values`); the linear
reference (:func:`linear_predictor`);
(d) where each predictor looks and how each fares under shift, on the same held-out transitions
    (:func:`looking`, :func:`shift_errors`);
the arrays for :mod:`analysis.compare_consciousness`, the held-out segment, the prior's metrics
and weights, and what a circuit's sizes must fit (:func:`world_problems`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models import consciousness_prior as cp
from neurosim import datasets as ds
from neurosim import latent_world as lw
from neurosim.config import RunConfig
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord
from neurosim.seeding import run_seed, torch_threads
from protocols.consciousness_prior import measures as cp_measures
from protocols.consciousness_prior import training as cp_training
from protocols.consciousness_prior import world as cp_world
from protocols.consciousness_prior.config import ConsciousnessPriorConfig


def train_prior(
    run: RunConfig, cpc: ConsciousnessPriorConfig, progress: Callable[[int, str], None]
) -> tuple[cp_world.Samples, cp_training.Trained, dict[str, Any], Any]:
    """(a) of every consciousness-prior pairing: the world's transitions (seeded by the run's
    seed), the bottleneck model and the baseline trained on them, and their measures."""
    seed = run.seed
    progress(0, "sampling the world")
    samples = cp_world.sample(cpc, seed)
    with torch_threads(cpc.threads):
        trained = cp_training.train_both(cpc, samples, seed, progress)
        cp_out, record = cp_measures.measure(cpc, samples, trained, seed)
    return samples, trained, cp_out, record


def write_dataset(samples: cp_world.Samples, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The pairing's npz data set (x_t → z_{t+1}, training and held-out) at ``path``; returns
    the per-variable range (lo, hi) the npz regression maps onto rates [0.1, 0.8]."""
    x_train = samples.train.x_t.numpy().astype(np.float64)
    np.savez(
        path, x_train=x_train, y_train=samples.z_next_train, x_test=samples.x_test,
        y_test=samples.z_next_test,
    )  # fmt: skip
    both = np.concatenate([samples.z_next_train, samples.z_next_test])
    return both.min(axis=0), both.max(axis=0)


def rates_to_values(rates: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Output rates back into the variables' units (the inverse of the npz target mapping)."""
    span = ds.NPZ_TARGET_SPAN
    return lo + (np.asarray(rates, dtype=float) - ds.NPZ_TARGET_OFF) / span * (hi - lo)


def linear_predictor(x: np.ndarray, z_next: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The linear-regression reference: z_{t+1} from the observations' raw values by least
    squares with an intercept, fitted on (x, z_next); the best a linear read-out of x_t does."""
    design = np.column_stack([np.asarray(x, dtype=float), np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(design, np.asarray(z_next, dtype=float), rcond=None)

    def predict(xo: np.ndarray) -> np.ndarray:
        return np.column_stack([np.asarray(xo, dtype=float), np.ones(len(xo))]) @ coef

    return predict


def shift_errors(
    predict: Callable[[np.ndarray], np.ndarray],
    samples: cp_world.Samples,
    variables: np.ndarray,
    cfg: ConsciousnessPriorConfig,
    seed: int,
) -> dict[str, np.ndarray]:
    """Per output i (predicting variable ``variables[i]``), the normalised error in distribution
    and with that variable's non-parents shifted (as :func:`models.consciousness_prior
    .shift_test`, the same observation-noise draws), for any ``predict`` x → (n, outputs)."""
    world, z_t, z_next = samples.world, samples.z_test, samples.z_next_test
    pred_in = predict(lw.observe(world, z_t, np.random.default_rng(seed)))
    e_in, e_shift = np.zeros(len(variables)), np.zeros(len(variables))
    for i, v in enumerate(np.asarray(variables, dtype=int)):
        zs = lw.shift(
            z_t, lw.non_parents(world, v), offset=cfg.shift_offset, scale=cfg.shift_scale,
            mean=samples.mean, std=samples.std,
        )  # fmt: skip
        pred_s = predict(lw.observe(world, zs, np.random.default_rng(seed)))[:, i]
        var = max(float(z_next[:, v].var()), 1e-12)
        e_in[i] = np.mean((pred_in[:, i] - z_next[:, v]) ** 2) / var
        e_shift[i] = np.mean((pred_s - z_next[:, v]) ** 2) / var
    return {"in": e_in, "shift": e_shift}


def looking(
    circuit: Callable[[np.ndarray], np.ndarray],
    cpc: ConsciousnessPriorConfig,
    samples: cp_world.Samples,
    trained: cp_training.Trained,
    record: Any,
    seed: int,
    references: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """(d) of every pairing: the sensitivities, the errors in distribution and shifted and the
    variable each output predicts, of the circuit (its steady-state predictor ``circuit``, x →
    z_{t+1} in the variables' units), of the ``references`` (named predictors of the same
    kind: the linear and backprop references) and of both consciousness-prior models."""
    variables = np.arange(cpc.n_variables)
    z_sens = samples.z_test[: min(len(samples.z_test), 500)]
    sens: dict[str, np.ndarray] = {}
    errors: dict[str, dict[str, np.ndarray]] = {}
    matches: dict[str, np.ndarray] = {}
    for kind, predict in {"circuit": circuit, **(references or {})}.items():
        sens[kind] = lw.sensitivity(predict, samples.world, z_sens)
        errors[kind] = shift_errors(predict, samples, variables, cpc, run_seed(seed, 6))
        matches[kind] = variables
    for kind, model in trained.models.items():
        values = cp.encode(model, samples.x_test)
        match, _ = cp.match_slots(values, samples.z_test)
        calibration = cp.calibrate(values, samples.z_test, match) if cpc.slots == "found" else None

        def model_predict(xo: np.ndarray, m=model, c=calibration) -> np.ndarray:
            return cp.predict(m, xo, c)

        sens[kind] = lw.sensitivity(model_predict, samples.world, z_sens)
        errors[kind] = {"in": record.errors_in[kind], "shift": record.errors_shift[kind]}
        matches[kind] = match
    return sens, errors, matches


def pairing_data(
    pairing: str,
    readout: str,
    seed: int,
    probe_seed: int,
    samples: cp_world.Samples,
    record: Any,
    looked: tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]],
    circuit: dict[str, Any],
) -> dict[str, Any]:
    """The arrays :mod:`analysis.compare_consciousness` reads: the world's, the prior's, what
    :func:`looking` found, and the circuit's (``circuit_hidden``, ``circuit_hidden_untrained``,
    ``circuit_output``, ``circuit_forward_weights``, ``pattern_ms``)."""
    sens, errors, matches = looked
    return {
        "pairing": pairing,
        "readout": readout,
        "seed": seed,
        "probe_seed": probe_seed,
        "latent": samples.z_test,
        "latent_next": samples.z_next_test,
        "parents": samples.parents,
        "slots_bottleneck": record.slot_values["bottleneck"],
        "slots_baseline": record.slot_values["baseline"],
        "observations": samples.x_test,
        "sensitivity": sens,
        "matches": matches,
        "errors_in": {k: v["in"] for k, v in errors.items()},
        "errors_shift": {k: v["shift"] for k, v in errors.items()},
        "attention_selected": record.selected,
        "mixing": samples.world.mixing,
        **circuit,
    }


def held_out_segments(
    pairing: str,
    readout: str,
    k_hidden: int,
    hidden: np.ndarray,
    out_rates: np.ndarray,
    pattern_ms: float,
    spikes: list[SpikeRecord],
    rate: str = "φ(u)",
) -> list[SegmentRecord]:
    """The held-out pass as one segment: the hidden and output rates (``rate`` says which) at
    the end of each observation, and the hidden spikes of a spiking read-out."""
    signals = [
        SignalRecord(
            name, values, pattern_ms / 1000.0, pattern_ms / 1000.0,
            "dimensionless", {"description": f"{text} at the end of each held-out observation"},
        )
        for name, values, text in (
            (f"hidden_rates_layer{k_hidden}", hidden, f"{rate} of hidden layer {k_hidden}"),
            ("output_rates", out_rates, f"{rate} of the output layer (z_{{t+1}} as rates)"),
        )
    ]  # fmt: skip
    return [
        SegmentRecord(
            "held-out-observations", spikes, signals,
            {"pairing": pairing, "readout": readout, "hidden_layer": k_hidden,
             "plasticity": "off", "nudging": "off"},
        )
    ]  # fmt: skip


def prior_metrics(
    cpc: ConsciousnessPriorConfig, cp_out: dict[str, Any], trained: cp_training.Trained
) -> dict[str, Any]:
    """The consciousness prior's side of a pairing's metrics."""
    return {
        **{f"cp_{k}": v for k, v in cp_out.items()},
        "cp_slots": cpc.slots,
        "cp_n_train": cpc.n_train,
        "cp_n_test": cpc.n_test,
        "cp_train_seconds": trained.train_seconds,
    }


def prior_weights(trained: cp_training.Trained) -> dict[str, np.ndarray]:
    """Both consciousness-prior models' parameters, named ``cp_<kind>/<name>``."""
    return {
        f"cp_{kind}/{k}": v.detach().numpy().copy()
        for kind, model in trained.models.items()
        for k, v in model.state_dict().items()
    }


def world_problems(cpc: ConsciousnessPriorConfig, sizes: list[int], hidden_layer: int) -> list[str]:
    """What every pairing's circuit must fit: 2·obs_dim on/off inputs, one output per variable,
    and a hidden layer to compare (empty if it fits)."""
    problems = []
    n_in = ds.encoded_size(cpc.obs_dim, "on-off")
    if sizes[0] != n_in or sizes[-1] != cpc.n_variables:
        problems.append(
            f"circuit.sizes {sizes} do not fit the world: {n_in} on/off inputs (2 × obs_dim) and "
            f"{cpc.n_variables} outputs (one per variable)."
        )
    if hidden_layer >= len(sizes) - 1:
        problems.append(
            f"protocol.hidden_layer = {hidden_layer}, but the circuit's hidden layers are "
            f"1..{len(sizes) - 2}."
        )
    return problems

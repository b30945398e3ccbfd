"""The ``consciousness-prior-hopfield`` pairing of ``neurosim compare`` (issue 17, DESIGN.md
§4.3, §4.5–§4.6): the Consciousness Prior and the EP Hopfield circuit on the same latent world.

The consciousness prior's side, the world, the shift test, the sensitivities, the arrays and
the segment are the shared steps of every pairing (:mod:`protocols.consciousness_pairing`);
the circuit's side is here:

(b) the Hopfield circuit learns, by Equilibrium Propagation (:class:`protocols.
    equilibrium_propagation.EquilibriumPropagation`, called as it is, its ``[protocol]`` table
    the pairing's ``[protocol.equilibrium_propagation]``), to predict z_{t+1} from the same
    ``n_train`` observations x_t: the pairing's ``npz:`` regression (signed observations through
    the on/off code, each target column mapped onto rates [0.1, 0.8]), the output rates ρ(s_N)
    nudged toward the target rates, scored by their mean squared error;
(c) the trained circuit and its initial weights run on the held-out observations in the
    training's build (the compiled binary is reused), β = 0 and learning rates 0: the rates
    ρ(s) of every layer at the end of each example's free phase, what the protocol reads out;
    with the spiking read-out also the hidden layer's spike trains of the trained pass, which
    :mod:`analysis.compare` turns into rates per example (from ``window_start_ms`` to the
    example's end) with elephant, as in the microcircuit pairing;
(d) the steady-state predictor of the shift test and the sensitivities is the torch twin
    (:func:`models.equilibrium_propagation.relax`) with the trained weights, relaxed for the
    same free phase with the same step from the same zero state: the dynamics the circuit runs,
    so it predicts what the circuit reads out (the agreement is measured and kept in the metrics).

Beside the circuit's normalised error two references on the same held-out transitions: the
training mean of z_{t+1} (about 1) and a least-squares linear map from x_t (with intercept) fit
on the training transitions; a circuit that learns beats the first and should approach the
second (z_{t+1} = tanh(W z_t + b) + noise, and z_t is linear in x_t up to observation noise).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import equilibrium_propagation as ep
from neurosim import datasets as ds
from neurosim import presets, registry
from neurosim.circuit import params_from_table
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.recording import SegmentRecord, SpikeRecord
from neurosim.seeding import run_seed
from protocols import consciousness_pairing as cpair
from protocols.consciousness_prior import world as cp_world
from protocols.consciousness_prior.config import ConsciousnessPriorConfig
from protocols.equilibrium_propagation import (
    BASE_CIRCUIT,
    EquilibriumPropagation,
    EquilibriumPropagationConfig,
    Task,
    _label,
    _train_record,
    hopfield_circuits,
)
from protocols.equilibrium_propagation.simulation import (
    Session,
    plan_of,
    simulation,
    static_values,
)
from protocols.equilibrium_propagation.training import run_chunks

PAIRING = "consciousness-prior-hopfield"

#: the circuit's EP training for this pairing, where ``[protocol.equilibrium_propagation]`` does
#: not say otherwise: the ``npz`` preset's table (20 free / 4 nudged steps of 0.5, β = 0.5, rates
#: × 0.85 per epoch) with symmetric nudging, rates 0.04, 0.02 and initial weights Glorot × 0.5,
#: and without the gradient check, the traced example, the references or the extra pass over the
#: training set. Measured in the twin on this world (seed 1, 3 epochs; README): the preset's
#: two-phase EP at rates 0.1, 0.05 and Glorot × 1 saturates the hidden layer (64 % of states at
#: 0, 28 % at 1) and sticks outputs at 0 or 1, normalised error 11.7 (the mean's 1.0); lower rates
#: alone 8.2, symmetric nudging alone 3.4, both with weights × 0.5: 0.94, and 0.72 after 10 epochs
#: at 0.04, 0.02 (linear map from x_t: 0.66)
TRAINING_PRESET = "npz"
TRAINING_DEFAULTS: dict[str, Any] = {
    "variant": "symmetric",
    "lr": [0.04, 0.02],
    "w_scale": 0.5,
    "grad_check": False,
    "traces": False,
    "references": False,
    "train_eval": False,
}

#: hidden cells of the circuit unless ``circuit.sizes`` is given (the microcircuit pairing's)
HIDDEN_CELLS = 32


def training_table() -> dict[str, Any]:
    """The default ``[protocol.equilibrium_propagation]`` table of the pairing."""
    return {
        **presets.load(EquilibriumPropagation, TRAINING_PRESET)["protocol"],
        **TRAINING_DEFAULTS,
    }


def circuit_sizes(cfg: ConsciousnessPriorConfig, circuit: StrictModel) -> list[int]:
    """``circuit.sizes`` if the user gave them, else 2·obs_dim on/off inputs, HIDDEN_CELLS
    hidden cells and one output per variable."""
    given = getattr(circuit, "sizes", None)
    if "sizes" in circuit.model_fields_set and given:
        return [int(n) for n in given]
    return [ds.encoded_size(cfg.obs_dim, "on-off"), HIDDEN_CELLS, cfg.n_variables]


def circuit_predictor(
    twin: ep.EPParameters,
    weights: dict[str, np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    scale: float,
) -> Callable[[np.ndarray], np.ndarray]:
    """z_{t+1} predicted by the circuit's free phase run in the twin (``twin.free_steps`` steps
    of ``twin.dt`` from 0): x (n, obs_dim) → on/off rates → ρ(s_N) → the variables' units."""
    w = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in weights.items()}

    def predict(x: np.ndarray) -> np.ndarray:
        r0 = torch.as_tensor(ds.encode(x, "on-off", scale), dtype=torch.float64)
        with torch.no_grad():
            s_out = ep.relax(twin, w, r0).state.s[-1]
            rates = twin.rate.rho(s_out).numpy()
        return cpair.rates_to_values(rates, lo, hi)

    return predict


def reference_errors(
    samples: cp_world.Samples, linear: Callable[[np.ndarray], np.ndarray] | None = None
) -> dict[str, float]:
    """The normalised held-out error (mean over variables of MSE/Var of z_{t+1}) of predicting
    the training mean and of the linear reference (``linear``, fitted here unless given:
    :func:`protocols.consciousness_pairing.linear_predictor`, least squares from x_t)."""
    y_tr, x_te, y_te = samples.z_next_train, samples.x_test, samples.z_next_test
    var = np.maximum(y_te.var(axis=0), 1e-12)
    mean = np.mean((y_tr.mean(axis=0) - y_te) ** 2, axis=0) / var
    if linear is None:
        linear = cpair.linear_predictor(samples.train.x_t.numpy(), y_tr)
    error = np.mean((linear(x_te) - y_te) ** 2, axis=0) / var
    return {"mean": float(mean.mean()), "linear": float(error.mean())}


def held_out(
    ep_run: RunConfig,
    task: Task,
    weights: dict[str, dict[str, np.ndarray]],
    seed: int,
    spike_layer: int | None = None,
) -> tuple[dict[str, Any], Session, Any, list[np.ndarray]]:
    """(c): each named weight set through the held-out observations, β = 0 and learning rates 0,
    in a build of the training's structure and label (so the rate read-out's compiled binary is
    reused). Returns the passes (``training.Pass``: free-phase states of every layer), the
    session, the simulation and, for ``spike_layer`` (spiking read-out), that layer's spike
    times (s, from the first pass's start) per cell in the first weight set's pass."""
    hop = registry.circuit(ep_run.circuit or BASE_CIRCUIT)
    params = params_from_table(hop, task.circ)
    ses = Session(ep_run, task, hop, params, plan_of(task))
    plan, cfg = ses.plan, task.cfg
    sim = ses.builds.add(
        simulation(
            hop, plan, params, ep_run.device, n_examples=plan.P,
            record=_train_record(task, plan), record_steps=plan.unit_steps, label=_label(ses),
            p_fail=cfg.p_fail, cuda_seed=run_seed(ep_run.seed, 0),
        )
    )  # fmt: skip
    passes = {}
    cells = task.sizes[spike_layer] if spike_layer is not None else 0
    times: list[list[np.ndarray]] = [[] for _ in range(cells)]
    run_s = plan.P * plan.example_steps * plan.dt_ms / 1000.0  # one run's examples

    def keep_spikes(chunk: int, result: Any) -> None:
        ses.builds.count()
        mon = result.monitors[f"spikes_layer{spike_layer}"]
        for i in range(cells):  # the padded examples of a last run fall beyond the last window
            times[i].append(chunk * run_s + np.sort(mon["t"][mon["i"] == i]))

    for part, (label, w) in enumerate(weights.items(), start=1):
        values = {**ses.weight_values(w, plan.batch), **static_values(hop, plan, cfg.p_fail)}
        on_result = keep_spikes if spike_layer is not None and part == 1 else ses.builds.count
        passes[label] = run_chunks(
            sim, hop, plan, values, task.data.x_test, task.d_test, learn=False,
            seed=run_seed(seed, 77, part), on_result=on_result,
        )  # fmt: skip
    return passes, ses, sim, [np.concatenate(t) if t else np.zeros(0) for t in times]


def run_pairing(
    run: RunConfig,
    cfg: Any,
    circuit: StrictModel,
    progress: Callable[[int, str], None],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray], list[SegmentRecord]]:
    """Train both sides, run them on the held-out transitions: metrics, data (arrays for
    :mod:`analysis.compare_consciousness`), weights, segments."""
    cpc: ConsciousnessPriorConfig = cfg.consciousness_prior
    epc: EquilibriumPropagationConfig = cfg.equilibrium_propagation
    seed = run.seed
    samples, trained, cp_out, record = cpair.train_prior(run, cpc, progress)

    # the circuit, on the same transitions
    with tempfile.TemporaryDirectory(prefix="neurosim-cp-world-") as tmp:
        path = Path(tmp) / "latent_world.npz"
        lo, hi = cpair.write_dataset(samples, path)
        ep_run = _ep_run(run, f"npz:{path}")
        circuit = circuit.model_copy(update={"sizes": circuit_sizes(cpc, circuit)})
        progress(0, "training the circuit")
        ep_trained = EquilibriumPropagation().run(ep_run, epc, circuit, progress)
        progress(0, "the circuit on the held-out observations")
        task = Task(ep_run, epc, circuit)
    end = {k: v for k, v in ep_trained.weights.items() if not k.startswith("initial_")}
    start = {k.removeprefix("initial_"): v for k, v in ep_trained.weights.items()
             if k.startswith("initial_")}  # fmt: skip
    k_hidden, top = cfg.hidden_layer, task.n_layers
    spiking = task.readout == "spiking"
    passes, ses, sim, spike_times = held_out(
        ep_run, task, {"trained": end, "untrained": start}, seed, k_hidden if spiking else None
    )
    hidden = ses.rates_of(passes["trained"].free_states[f"layer{k_hidden}"])
    out_rates = ses.rates_of(passes["trained"].free_states[f"layer{top}"])
    untrained = ses.rates_of(passes["untrained"].free_states[f"layer{k_hidden}"])
    circuit_pred = cpair.rates_to_values(out_rates, lo, hi)

    # where each looks, and the shift test, on the same held-out states
    progress(0, "sensitivities and the shift test")
    scale = float(np.std(samples.train.x_t.numpy()))
    twin = ep.EPParameters.for_circuit(
        ses.params, task.sizes, epc.dt_ms, free_steps=task.free_steps
    )
    predict = circuit_predictor(twin, end, lo, hi, scale)
    linear = cpair.linear_predictor(samples.train.x_t.numpy(), samples.z_next_train)
    looked = cpair.looking(predict, cpc, samples, trained, record, seed, {"linear": linear})
    circuit_in_twin = predict(samples.x_test)
    example_ms = ses.plan.example_steps * ses.plan.dt_ms
    data = cpair.pairing_data(
        PAIRING, task.readout, seed, cfg.probe_seed, samples, record, looked,
        {
            "circuit_hidden": hidden,
            "circuit_hidden_untrained": untrained,
            "circuit_output": out_rates,
            "circuit_forward_weights": [end[f"W{k}"] for k in range(1, top + 1)],
            "pattern_ms": example_ms,
        },
    )  # fmt: skip
    spikes: list[SpikeRecord] = []
    if spiking:  # the hidden rates of the tables from these spikes (elephant, analysis)
        n = len(samples.x_test)
        t_stop = n * example_ms / 1000.0
        spikes = [
            SpikeRecord(f"layer{k_hidden}_{i}", t[t < t_stop], 0.0, t_stop,
                        {"layer": k_hidden, "neuron": i})
            for i, t in enumerate(spike_times)
        ]  # fmt: skip
        data["hidden_spikes"] = {
            "times_s": [r.times_s for r in spikes],
            "n_patterns": n,
            "pattern_ms": example_ms,
            "window_start_ms": cfg.window_start_ms,
            "t_stop_s": t_stop,
        }
    segments = cpair.held_out_segments(
        PAIRING, task.readout, k_hidden, hidden, out_rates, example_ms, spikes, rate="ρ(s)"
    )
    tm = ep_trained.metrics
    var_next = np.maximum(samples.z_next_test.var(axis=0), 1e-12)
    twin_error = np.mean((circuit_in_twin - samples.z_next_test) ** 2, axis=0) / var_next
    brian_error = np.mean((circuit_pred - samples.z_next_test) ** 2, axis=0) / var_next
    refs = reference_errors(samples, linear)
    twin_rates = (circuit_in_twin - lo) / (hi - lo) * ds.NPZ_TARGET_SPAN + ds.NPZ_TARGET_OFF
    metrics: dict[str, Any] = {
        **cpair.prior_metrics(cpc, cp_out, trained),
        "circuit_sizes": task.sizes,
        "circuit_readout": task.readout,
        "circuit_epochs": tm["epochs"],
        "circuit_variant": task.variant,
        "circuit_test_mse": tm["test_mse"],
        "circuit_mse_history": tm["history"]["test_mse"],
        "circuit_backprop_test_mse": tm["backprop_baseline"].get("test_mse"),
        "circuit_error_in_brian2": float(brian_error.mean()),
        "circuit_error_in_twin": float(twin_error.mean()),
        "circuit_twin_output_correlation": float(
            np.corrcoef(circuit_in_twin.ravel(), circuit_pred.ravel())[0, 1]
        ),
        "circuit_twin_max_rate_difference": float(np.max(np.abs(twin_rates - out_rates))),
        "reference_error_in_mean": refs["mean"],
        "reference_error_in_linear": refs["linear"],
        "circuit_dead_units": tm.get("dead_units"),
        "circuit_wall_seconds_training": tm["wall_seconds_training"],
        "circuit_compile_seconds": tm["compile_seconds"] + sim.compile_seconds,
        "circuit_compilations": tm["compilations"] + sim.compilations,
        "pattern_ms": example_ms,
    }
    weights = {f"circuit_{name}": m for name, m in ep_trained.weights.items()}
    weights.update(cpair.prior_weights(trained))
    progress(1, f"circuit: test MSE {tm['test_mse']:.4g}")
    return metrics, data, weights, segments


def _ep_run(run: RunConfig, dataset: str) -> RunConfig:
    """The run table of the circuit's training: the EP protocol on the pairing's data set, same
    seed, device, circuit, read-out and epochs."""
    return run.model_copy(update={"protocol": EquilibriumPropagation.name, "dataset": dataset})


def _stand_in(cpc: ConsciousnessPriorConfig, path: Path) -> None:
    """An npz file of the pairing's shapes (signed observations, one target per variable), for
    the EP protocol's own checks before the world is sampled."""
    rows = np.resize([-1.0, 1.0], (cpc.n_train, cpc.obs_dim))
    test = np.resize([-1.0, 1.0], (cpc.n_test, cpc.obs_dim))
    targets = np.tile(np.linspace(0.0, 1.0, cpc.n_train)[:, None], (1, cpc.n_variables))
    tests = np.tile(np.linspace(0.0, 1.0, cpc.n_test)[:, None], (1, cpc.n_variables))
    np.savez(path, x_train=rows, y_train=targets, x_test=test, y_test=tests)


def check(run: RunConfig, cfg: Any, circuit: StrictModel) -> list[str]:
    """What is wrong with the pairing's tables (empty if nothing): the circuit, sizes against
    the world, the hidden layer, the split, then the EP protocol's own checks of its table."""
    cpc: ConsciousnessPriorConfig = cfg.consciousness_prior
    epc: EquilibriumPropagationConfig = cfg.equilibrium_propagation
    if run.circuit not in hopfield_circuits():
        return [
            f"pairing {PAIRING} runs a Hopfield circuit ({', '.join(hopfield_circuits())}), "
            f"not {run.circuit!r}."
        ]
    sizes = circuit_sizes(cpc, circuit)
    problems = cpair.world_problems(cpc, sizes, cfg.hidden_layer)
    if epc.n_train or epc.n_test:
        problems.append(
            "protocol.equilibrium_propagation.n_train and n_test must stay 0: the circuit learns "
            "the consciousness prior's transitions (set protocol.consciousness_prior.n_train, "
            "n_test)."
        )
    if epc.stage != "train":
        problems.append("protocol.equilibrium_propagation.stage must be 'train'.")
    if run.readout == "spiking":
        example_ms = (epc.free_steps + _nudged_phases(epc) * epc.nudged_steps) * epc.dt_ms
        if cfg.window_start_ms >= example_ms:
            problems.append(
                f"protocol.window_start_ms = {cfg.window_start_ms:g} must be shorter than one "
                f"example ({example_ms:g} ms: free and nudged steps × dt_ms), where the hidden "
                "spikes are counted."
            )
        if (getattr(circuit, "batch", None) or 1) > 1:
            problems.append("circuit.batch must be 1 with --readout spiking (spikes per example).")
    if problems:
        return problems
    with tempfile.TemporaryDirectory(prefix="neurosim-cp-check-") as tmp:
        path = Path(tmp) / "shapes.npz"
        _stand_in(cpc, path)
        sized = circuit.model_copy(update={"sizes": sizes})
        try:
            EquilibriumPropagation().check(_ep_run(run, f"npz:{path}"), epc, sized)
        except ConfigError as exc:  # its table is protocol.equilibrium_propagation here
            return [str(exc).replace("protocol.", "protocol.equilibrium_propagation.")]
    return []


def _nudged_phases(epc: EquilibriumPropagationConfig) -> int:
    """Nudged phases per example: two for the symmetric and stochastic variants."""
    return 2 if epc.variant in ("symmetric", "stochastic") else 1


def total_steps(run: RunConfig, cfg: Any) -> int:
    """Progress steps: both consciousness-prior models, the EP training, the held-out pass."""
    cpc: ConsciousnessPriorConfig = cfg.consciousness_prior
    n_ep = EquilibriumPropagation().total_steps(run, cfg.equilibrium_propagation)
    return 2 * math.ceil(cpc.steps / cpc.log_every) + n_ep + 1

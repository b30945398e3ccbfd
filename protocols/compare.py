"""Side by side: one PyTorch model and one circuit on the same inputs (DESIGN.md §4.6, issue 5).

Three pairings: ``consciousness-prior-microcircuit`` and ``consciousness-prior-hopfield`` (the
Consciousness Prior and the microcircuit, or the EP Hopfield circuit, on the same latent world,
:mod:`protocols.compare_consciousness_microcircuit`,
:mod:`protocols.compare_consciousness_hopfield`, issue 17) and ``icf-microcircuit``, here:

(a) the Independently Controllable Features model (:mod:`models.icf`) trains on the grid world
    (the ``[protocol.icf]`` table, the same settings as ``neurosim run icf``), seeded by the run's
    seed;
(b) the dendritic microcircuit learns to report the square's position on the ``gridworld`` data
    set (noisy copies of the 121 images; targets: (x, y) as two output rates) through the
    supervised stage of :class:`protocols.feedback_cancellation.FeedbackCancellation`, called as
    it is (the ``[protocol.training]`` table is that protocol's table; ``run.epochs`` its epochs);
(c) the trained circuit sees the 121 clean images, one per ``pattern_ms``, with plasticity and
    nudging off, in a build of the same structure (so the compiled binary of (b) is reused). The
    rate read-out keeps the hidden rates φ(u) at each pattern's end; the spiking read-out also
    keeps the hidden layer's spike trains, which :mod:`analysis.compare` turns into rates per
    pattern window with elephant. The same pass with the circuit's initial weights gives an
    untrained control;
(d) the ICF encoder's 32-unit layer and its n features on the same 121 images.

``data`` holds the positions and every representation as (121, units) arrays in
:func:`neurosim.grid_world.all_positions` order; ``metrics`` the two training summaries.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from neurosim import datasets as ds
from neurosim import grid_world as gw
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.protocol import Protocol, ProtocolResult, RunContext
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord
from neurosim.registry import register_protocol
from neurosim.seeding import run_seed, torch_threads
from protocols import compare_consciousness_hopfield as cch
from protocols import compare_consciousness_microcircuit as ccp
from protocols.consciousness_prior.config import ConsciousnessPriorConfig
from protocols.equilibrium_propagation import EquilibriumPropagationConfig, hopfield_circuits
from protocols.feedback_cancellation import (
    FeedbackCancellation,
    FeedbackCancellationConfig,
    Task,
    frozen_pass,
    pattern_ends,
    preset_tables,
    training_circuit,
)
from protocols.icf import ICFConfig, IndependentlyControllableFeatures
from protocols.icf import steps as icf_steps

PAIRINGS = ("icf-microcircuit", ccp.PAIRING, cch.PAIRING)
Pairing = Literal[
    "icf-microcircuit", "consciousness-prior-microcircuit", "consciousness-prior-hopfield"
]
#: the circuit each pairing runs unless ``--circuit`` names another of its kind
PAIRING_CIRCUITS = {
    "icf-microcircuit": "microcircuit",
    ccp.PAIRING: "microcircuit",
    cch.PAIRING: "hopfield",
}
#: the data set the circuit of the ``icf-microcircuit`` pairing learns
CIRCUIT_DATASET = "gridworld"


#: the circuit's supervised training for a comparison, where ``[protocol.training]`` does not
#: say otherwise: the feedback-cancellation preset of CIRCUIT_DATASET without a shallow learner,
#: a backprop baseline or an extra pass over the training set
TRAINING_DEFAULTS: dict[str, Any] = {"shallow": False, "backprop_epochs": 0, "train_eval": False}


def _training_table(pairing: str = "icf-microcircuit") -> dict[str, Any]:
    if pairing == "icf-microcircuit":
        return {**preset_tables(CIRCUIT_DATASET)["protocol"], **TRAINING_DEFAULTS}
    preset = preset_tables(ccp.TRAINING_PRESET)["protocol"]
    return {**preset, **TRAINING_DEFAULTS, **ccp.TRAINING_OVERRIDES}


def _training_defaults() -> FeedbackCancellationConfig:
    return FeedbackCancellationConfig(**_training_table())


class CompareConfig(StrictModel):
    """The ``[protocol]`` table, with the models' tables nested: ``[protocol.icf]`` (as in
    ``neurosim run icf``), ``[protocol.consciousness_prior]`` (as in ``neurosim run
    consciousness-prior``, with the pairing's defaults), ``[protocol.training]`` (as in
    ``neurosim run feedback-cancellation``, supervised stage, from the pairing's preset) and
    ``[protocol.equilibrium_propagation]`` (as in ``neurosim run equilibrium-propagation``, the
    Hopfield pairing's training)."""

    pairing: Pairing = Field(
        "icf-microcircuit", description="which PyTorch model and which circuit"
    )
    icf: ICFConfig = Field(default_factory=ICFConfig, description="the ICF model's training")
    consciousness_prior: ConsciousnessPriorConfig = Field(
        default_factory=lambda: ConsciousnessPriorConfig(**ccp.consciousness_prior_table()),
        description="the consciousness prior's world and training (its pairing)",
    )
    training: FeedbackCancellationConfig = Field(
        default_factory=_training_defaults, description="the circuit's supervised training"
    )
    equilibrium_propagation: EquilibriumPropagationConfig = Field(
        default_factory=lambda: EquilibriumPropagationConfig(**cch.training_table()),
        description="the Hopfield circuit's EP training (consciousness-prior-hopfield)",
    )
    hidden_layer: int = Field(1, ge=1, description="the circuit's hidden layer compared (1..N−1)")
    window_start_ms: float = Field(
        20.0, ge=0, description="spiking: rates count spikes from this long after a pattern starts"
    )
    probe_seed: int = Field(0, ge=0, description="fold split of the ridge probes (analysis)")

    @model_validator(mode="before")
    @classmethod
    def _training_table(cls, data: Any) -> Any:
        """The ``[protocol.training]`` table starts from the pairing's training defaults (its
        preset and TRAINING_DEFAULTS), not from the feedback-cancellation table's own; the
        ``[protocol.consciousness_prior]`` table from the pairing's world defaults."""
        if not isinstance(data, dict):
            return data
        pairing = data.get("pairing", "icf-microcircuit")
        if pairing not in PAIRINGS:
            return data  # refused with the list of pairings by the field
        given = data.get("training", {})
        if isinstance(given, dict) and (given or pairing != "icf-microcircuit"):
            data = {**data, "training": {**_training_table(pairing), **given}}
        given = data.get("consciousness_prior", {})
        if isinstance(given, dict) and given:
            data = {**data, "consciousness_prior": {**ccp.consciousness_prior_table(), **given}}
        given = data.get("equilibrium_propagation", {})
        if isinstance(given, dict) and given:
            data = {**data, "equilibrium_propagation": {**cch.training_table(), **given}}
        return data

    @model_validator(mode="after")
    def _stage(self) -> CompareConfig:
        if self.training.stage != "supervised":
            raise ValueError("training.stage must be 'supervised' (the circuit learns positions)")
        if self.window_start_ms >= self.training.pattern_ms:
            raise ValueError("window_start_ms must be shorter than training.pattern_ms")
        return self


class Compare(Protocol):
    """A PyTorch model and a circuit trained on the same inputs, their representations side by
    side (probes, CKA, RSA in :mod:`analysis.compare`)."""

    name = "compare"
    summary = "a PyTorch model vs a circuit on the same inputs (ICF or Consciousness Prior)"
    datasets = (None,)
    readouts = ("rate", "spiking")
    default_epochs = FeedbackCancellation.default_epochs
    protocol_config = CompareConfig

    @property
    def circuits(self) -> tuple[str, ...]:  # type: ignore[override]
        """The microcircuit, then the Hopfield circuits (a user's neuron model included)."""
        return ("microcircuit", *hopfield_circuits())

    def default_circuit(self, raw: Any) -> str:
        """The pairing's circuit (PAIRING_CIRCUITS)."""
        table = raw.get("protocol", {}) if isinstance(raw, dict) else {}
        pairing = table.get("pairing", "icf-microcircuit") if isinstance(table, dict) else None
        return PAIRING_CIRCUITS.get(pairing, self.circuits[0])

    def circuit_table(self, circuit_name: str) -> type[StrictModel]:
        """The microcircuit's ``[circuit]`` table with the defaults of the feedback-cancellation
        preset of CIRCUIT_DATASET (its sizes and φ); the Hopfield circuit's as it is (the
        Hopfield pairing sizes it from the world)."""
        from pydantic import create_model

        base = super().circuit_table(circuit_name)
        if circuit_name != "microcircuit":
            return base
        fields: dict[str, Any] = {}
        for name, value in preset_tables(CIRCUIT_DATASET)["circuit"].items():
            info = copy.copy(base.model_fields[name])
            info.default = value
            fields[name] = (info.annotation, info)
        return create_model("CompareCircuitTable", __base__=base, **fields)

    def _circuit_run(self, run: RunConfig) -> RunConfig:
        """The run table of the circuit's training: the feedback-cancellation protocol on the
        pairing's data set, same seed, device, read-out and epochs."""
        return run.model_copy(
            update={"protocol": FeedbackCancellation.name, "dataset": CIRCUIT_DATASET}
        )

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        assert isinstance(protocol, CompareConfig)
        if protocol.pairing == cch.PAIRING:
            problems = cch.check(run, protocol, circuit)
            if problems:
                raise ConfigError(problems[0])
            return
        if run.circuit != "microcircuit":
            raise ConfigError(
                f"pairing {protocol.pairing} runs the microcircuit, not {run.circuit!r}."
            )
        if protocol.pairing == ccp.PAIRING:
            if run.readout == "rate" and protocol.training.p_fail > 0:
                raise ConfigError("protocol.training.p_fail > 0 needs --readout spiking.")
            problems = ccp.check(protocol, circuit)
            if problems:
                raise ConfigError(problems[0])
            return
        IndependentlyControllableFeatures().check(
            run.model_copy(update={"epochs": None}), protocol.icf, circuit
        )
        fc_run = self._circuit_run(run)
        FeedbackCancellation().check(fc_run, protocol.training, circuit)
        task = Task(fc_run, protocol.training, circuit)
        n_pos = len(gw.all_positions())
        if len(task.data.x_test) != n_pos or task.P < n_pos:
            raise ConfigError(
                "protocol.training.n_test must stay unset and patterns_per_run, if set, at least "
                f"{n_pos}: the comparison runs the circuit on all {n_pos} positions in one run."
            )
        n_layers = task.n_layers
        if protocol.hidden_layer >= n_layers:
            raise ConfigError(
                f"protocol.hidden_layer = {protocol.hidden_layer}, but the circuit's hidden layers "
                f"are 1..{n_layers - 1}."
            )

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        assert isinstance(protocol, CompareConfig)
        if protocol.pairing == cch.PAIRING:
            return cch.total_steps(run, protocol)
        n_fc = FeedbackCancellation().total_steps(self._circuit_run(run), protocol.training)
        if protocol.pairing == ccp.PAIRING:
            cpc = protocol.consciousness_prior
            return 2 * math.ceil(cpc.steps / cpc.log_every) + n_fc + 1
        n_icf = math.ceil(protocol.icf.steps / protocol.icf.log_every) + 1
        return n_icf + n_fc + 1

    def execute(self, ctx: RunContext) -> ProtocolResult:
        run, protocol, circuit, progress = ctx.run, ctx.protocol, ctx.circuit, ctx.progress
        assert isinstance(protocol, CompareConfig)
        if protocol.pairing in (ccp.PAIRING, cch.PAIRING):
            pairing = ccp if protocol.pairing == ccp.PAIRING else cch
            metrics, data, weights, segments = pairing.run_pairing(run, protocol, circuit, progress)
            return ProtocolResult(
                metrics={"pairing": protocol.pairing, **metrics},
                segments=segments,
                weights=weights,
                data=data,
            )
        model_metrics, model_data, model_weights = self._icf(run, protocol.icf, progress)
        circ_metrics, circ_data, circ_weights, segments = self._circuit(
            run, protocol, circuit, progress
        )
        data: dict[str, Any] = {
            "pairing": protocol.pairing,
            "readout": run.readout,
            "seed": run.seed,
            "probe_seed": protocol.probe_seed,
            "positions": gw.all_positions(),
            **model_data,
            **circ_data,
        }
        metrics: dict[str, Any] = {"pairing": protocol.pairing, **model_metrics, **circ_metrics}
        weights = {**model_weights, **circ_weights}
        return ProtocolResult(metrics=metrics, segments=segments, weights=weights, data=data)

    # ------------------------------------------------------------------ (a), (d): the ICF model
    def _icf(
        self, run: RunConfig, cfg: ICFConfig, progress: Callable[[int, str], None]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
        """Train the ICF model and encode the 121 clean images: its features and 32-unit layer."""
        settings = IndependentlyControllableFeatures.settings(run, cfg)

        def tick(step: int, record: dict[str, float]) -> None:
            progress(1, f"ICF step {step}/{settings.steps}: recon {record['reconstruction']:.3f}")

        progress(0, "training the ICF model")
        trained = icf_steps.train_and_measure(settings, cfg.threads, tick)
        with torch_threads(cfg.threads), torch.no_grad():  # encoded on the threads it trained on
            images = torch.from_numpy(gw.render(gw.all_positions()))[:, None]
            features, hidden = trained.model.encoder(images)
        measures, history = trained.measures, trained.history
        reg = measures["regression"]
        metrics = {
            "icf_steps": settings.steps,
            "icf_variant": settings.variant,
            "icf_feature_r2_best": reg["r2_best"],
            "icf_feature_best_coordinate": reg["best_coordinate"],
            "icf_reconstruction_mse": measures["reconstruction_mse"],
            "icf_matched_diagonal_mass": measures["matched_diagonal_mass"],
            "icf_train_seconds": history["wall_seconds"],
        }
        data = {
            "icf_features": features.numpy().astype(np.float64),
            "icf_hidden": hidden.numpy().astype(np.float64),
        }
        weights = {f"icf_{k}": v for k, v in icf_steps.weights(trained).items()}
        return metrics, data, weights

    # ------------------------------------------------------------------ (b), (c): the circuit
    def _circuit(
        self,
        run: RunConfig,
        cfg: CompareConfig,
        circuit: StrictModel,
        progress: Callable[[int, str], None],
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray], list[SegmentRecord]]:
        """Train the microcircuit on the grid world's positions, then run it on the clean images
        with its trained and with its initial weights (plasticity and nudging off)."""
        fc = FeedbackCancellation()
        fc_run = self._circuit_run(run)
        progress(0, "training the circuit")
        trained = fc.run(fc_run, cfg.training, circuit, progress)
        progress(0, "the circuit on the clean images")
        task = Task(fc_run, cfg.training, circuit)
        tc = training_circuit(fc_run, task)
        sim = tc.sim
        end = {k: v for k, v in trained.weights.items() if not k.startswith("initial_")}
        start = {k.removeprefix("initial_"): v for k, v in trained.weights.items()
                 if k.startswith("initial_")}  # fmt: skip
        n_layers, k = task.n_layers, cfg.hidden_layer
        phi = task.params.phi_numpy
        x = task.data.x_test
        passes = {
            label: frozen_pass(tc, w, x, run_seed(run.seed, 77, part))
            for label, w, part in (("trained", end, 1), ("untrained", start, 2))
        }
        result, n = passes["trained"]
        hidden = phi(pattern_ends(result, f"layer{k}", "u", n))
        out = phi(pattern_ends(result, f"layer{n_layers}", "u", n))
        untrained = phi(pattern_ends(passes["untrained"][0], f"layer{k}", "u", n))
        decoded = ds.gridworld_positions(out)
        truth = gw.all_positions()
        pattern_s = cfg.training.pattern_ms / 1000.0
        data: dict[str, Any] = {
            "circuit_hidden": hidden,
            "circuit_hidden_untrained": untrained,
            "circuit_output": out,
            "circuit_decoded_positions": decoded,
            "pixels": task.data.x_test,
            "pattern_ms": cfg.training.pattern_ms,
        }
        signals = [
            SignalRecord(
                name, values, pattern_s, pattern_s, "dimensionless",
                {"description": f"{text} at the end of each of the 121 clean images"},
            )
            for name, values, text in (
                (f"hidden_rates_layer{k}", hidden, f"φ(u) of hidden layer {k}"),
                ("output_rates", out, "φ(u) of the output layer (x, y)"),
            )
        ]  # fmt: skip
        spikes: list[SpikeRecord] = []
        if tc.readout == "spiking":
            t_stop = sim.duration_ms / 1000.0
            spikes, data["hidden_spikes"] = hidden_spikes(result, k, task.sizes[k], n, t_stop, cfg)
        segments = [
            SegmentRecord(
                "clean-images", spikes, signals,
                {"pairing": cfg.pairing, "readout": tc.readout, "hidden_layer": k,
                 "plasticity": "off", "nudging": "off"},
            )
        ]  # fmt: skip
        tm = trained.metrics
        metrics = {
            "circuit_dataset": CIRCUIT_DATASET,
            "circuit_sizes": task.sizes,
            "circuit_readout": tc.readout,
            "circuit_epochs": tm["epochs"],
            "circuit_test_mse": tm["test_mse"],
            "circuit_mse_history": tm["history"]["circuit"],
            "circuit_position_rmse_cells": float(np.sqrt(np.mean((decoded - truth) ** 2))),
            "circuit_eta_forward": tm["eta_forward"],
            "circuit_wall_seconds_training": tm["wall_seconds_training"],
            "circuit_compile_seconds": tm["compile_seconds"] + sim.compile_seconds,
            "circuit_compilations": tm["compilations"] + sim.compilations,
            "pattern_ms": cfg.training.pattern_ms,
        }
        weights = {f"circuit_{name}": m for name, m in trained.weights.items()}
        progress(1, f"circuit: test MSE {tm['test_mse']:.4g}")
        return metrics, data, weights, segments


def hidden_spikes(
    result: Any, k: int, cells: int, n: int, t_stop: float, cfg: CompareConfig
) -> tuple[list[SpikeRecord], dict[str, Any]]:
    """The spike trains of hidden layer ``k`` in a frozen pass (run length ``t_stop`` s), as
    records and as the arrays :mod:`analysis.compare` turns into rates per pattern window."""
    mon = result.monitors[f"spikes_layer{k}"]
    times = [np.sort(mon["t"][mon["i"] == i]) for i in range(cells)]
    spikes = [
        SpikeRecord(f"layer{k}_{i}", t, 0.0, t_stop, {"layer": k, "neuron": i})
        for i, t in enumerate(times)
    ]
    arrays = {
        "times_s": times,
        "n_patterns": n,
        "pattern_ms": cfg.training.pattern_ms,
        "window_start_ms": cfg.window_start_ms,
        "t_stop_s": t_stop,
    }
    return spikes, arrays


register_protocol(Compare.name, Compare.summary, Compare)

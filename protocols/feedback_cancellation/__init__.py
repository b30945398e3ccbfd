"""Feedback cancellation in dendritic cortical microcircuits (Sacramento et al. 2018; DESIGN.md
§4.2): three stages of one protocol, each in its own file — ``self-predicting``
(:mod:`.self_predicting`), ``supervised`` (:mod:`.supervised`) and the ``error-transport`` check
(:mod:`.error_transport`). The first two run with always-on plasticity (induction terms low-pass
filtered with τ_w) and a learning lag after every pattern change (the ``plastic`` gate is 0 for
the first ``learning_lag_ms`` of each pattern), on one compiled build (:mod:`.simulation`).
Settings per data set and read-out are presets (``presets/*.toml``)."""

from __future__ import annotations

from typing import Any

from neurosim import diagnostics, presets
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.protocol import Protocol, ProtocolResult, RunContext
from neurosim.registry import register_protocol
from protocols.feedback_cancellation.config import STAGES, FeedbackCancellationConfig
from protocols.feedback_cancellation.error_transport import check_error_transport
from protocols.feedback_cancellation.self_predicting import train_self_predicting
from protocols.feedback_cancellation.simulation import (
    TrainingCircuit,
    frozen_pass,
    learning_pass,
    learning_values,
    pattern_ends,
    training_circuit,
)
from protocols.feedback_cancellation.supervised import train_supervised
from protocols.feedback_cancellation.task import CIRCUIT, Task, initial_weights

__all__ = [
    "STAGES",
    "FeedbackCancellation",
    "FeedbackCancellationConfig",
    "Task",
    "TrainingCircuit",
    "frozen_pass",
    "initial_weights",
    "learning_pass",
    "learning_values",
    "pattern_ends",
    "preset_tables",
    "training_circuit",
]


class FeedbackCancellation(Protocol):
    """Sacramento et al. 2018: interneurons cancel top-down feedback; apical errors teach."""

    name = "feedback-cancellation"
    summary = "Sacramento 2018 microcircuit: self-predicting state, supervised learning"
    circuits = (CIRCUIT,)
    datasets = ("digits", "mnist1d", "teacher", "gridworld")
    readouts = ("rate", "spiking")
    default_epochs = 3
    protocol_config = FeedbackCancellationConfig

    def default_preset(self, run: RunConfig) -> str | None:
        """The data set's preset (digits by default), its spiking variant where one exists."""
        dataset = run.dataset or "digits"
        if dataset not in self.datasets:
            return None  # refused with the list of data sets when the tables are resolved
        if run.readout == "spiking" and f"{dataset}-spiking" in presets.available(self):
            return f"{dataset}-spiking"
        return dataset

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        assert isinstance(protocol, FeedbackCancellationConfig)
        if run.readout == "rate" and protocol.p_fail > 0:
            raise ConfigError("protocol.p_fail > 0 needs the spiking read-out (--readout spiking).")
        if protocol.stage == "error-transport":
            if protocol.top_down != "tied":
                raise ConfigError(
                    "stage error-transport compares apical potentials with the backprop error, "
                    "which needs protocol.topdown = 'tied' (B = Wᵀ)."
                )
            if run.readout == "spiking":
                raise ConfigError(
                    "stage error-transport compares settled potentials; it needs --readout rate."
                )
        Task(run, protocol, circuit)  # sizes against the data set and memory, per-layer lists

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        assert isinstance(protocol, FeedbackCancellationConfig)
        if protocol.stage == "self-predicting":
            return 1
        if protocol.stage == "error-transport":
            return len(protocol.transport_nudges)
        epochs = int(run.epochs or self.default_epochs)
        return epochs * (2 if protocol.shallow else 1) + 1

    def execute(self, ctx: RunContext) -> ProtocolResult:
        run, cfg = ctx.run, ctx.protocol
        assert isinstance(cfg, FeedbackCancellationConfig)
        task = Task(run, cfg, ctx.circuit)
        inputs = diagnostics.input_diagnostics(
            task.data.x_train, f"{task.data.name} (input code {task.data.input_code})"
        )
        ctx.progress(0, "building")
        if cfg.stage == "error-transport":
            sim, out = check_error_transport(run, task, ctx.rng, ctx.progress)
            readout, patterns, pattern_ms = "rate", 1, sim.duration_ms
        else:
            tc = training_circuit(run, task)
            sim, readout, patterns, pattern_ms = tc.sim, tc.readout, task.P, cfg.pattern_ms
            if cfg.stage == "self-predicting":
                out = train_self_predicting(run, tc, ctx.rng, ctx.progress)
            else:
                epochs = int(run.epochs or self.default_epochs)
                out = train_supervised(run, tc, ctx.rng, ctx.progress, epochs)
        out.metrics.update(
            {
                "stage": cfg.stage,
                "dataset": task.data.name,
                "input_code": task.data.input_code,
                **inputs,
                "sizes": task.sizes,
                "phi": task.phi,
                "readout": readout,
                "patterns_per_run": patterns,
                "pattern_ms": pattern_ms,
                "learning_lag_ms": cfg.learning_lag_ms,
                "compile_seconds": sim.compile_seconds,
                "compilations": sim.compilations,
                "build_dir": str(sim.build_dir) if sim.build_dir else None,
            }
        )
        return out


def preset_tables(name: str) -> dict[str, Any]:
    """The ``[run]``, ``[protocol]`` and ``[circuit]`` tables of one of the protocol's presets,
    for training the circuit from outside the protocol (experiments, comparisons)."""
    return presets.load(FeedbackCancellation, name)


register_protocol(FeedbackCancellation.name, FeedbackCancellation.summary, FeedbackCancellation)

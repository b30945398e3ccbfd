"""The classic dendritic-prediction experiment of Urbanczik & Senn (2014), DESIGN.md §4.1.

200 inputs replay one frozen 10 Hz Poisson pattern of 200 ms, over and over. A teacher drives the
soma with a sinusoidal excitatory and a constant inhibitory conductance, locked to the pattern.
With plasticity on, the dendritic synapses learn until the dendritic prediction φ(V*_w) follows
the teacher's rate φ(U_M). A test run with the teacher off and plasticity off shows what the
dendrite alone now predicts.

``config.py`` holds the ``[protocol]`` table, ``stimulus.py`` the pattern and the teacher,
``training.py`` the runs, ``records.py`` what a run writes; ``presets/default.toml`` the settings a
run takes when none are given. The circuit is looked up by name in the registry.
"""

from __future__ import annotations

from neurosim.circuit import params_from_table
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.protocol import Protocol, ProtocolResult, RunContext
from neurosim.registry import circuit as registered_circuit
from neurosim.registry import register_protocol
from protocols.dendritic_prediction.config import DendriticPredictionConfig
from protocols.dendritic_prediction.records import result
from protocols.dendritic_prediction.stimulus import initial_weights, make_inputs
from protocols.dendritic_prediction.training import train

__all__ = ["DendriticPrediction", "DendriticPredictionConfig"]


class DendriticPrediction(Protocol):
    """Learning by the dendritic prediction of somatic spiking."""

    name = "dendritic-prediction"
    summary = "Urbanczik & Senn 2014: a dendrite learns to predict its somatic teacher"
    circuits = ("urbanczik-senn",)
    readouts = ("spiking", "rate")
    default_epochs = 4
    protocol_config = DendriticPredictionConfig

    def default_preset(self, run: RunConfig) -> str | None:
        """One preset for both read-outs."""
        return "default"

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        """Enough repetitions to compare the first and the last ``correlation_repetitions``."""
        assert isinstance(protocol, DendriticPredictionConfig)
        total_reps = int(run.epochs or self.default_epochs) * protocol.repetitions_per_epoch
        if total_reps < 2 * protocol.correlation_repetitions:
            raise ConfigError(
                f"{total_reps} repetitions are too few to compare the first and the last "
                f"{protocol.correlation_repetitions} (protocol.correlation_repetitions)."
            )

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        return int(run.epochs or self.default_epochs) + 1  # the epochs and the test run

    def execute(self, ctx: RunContext) -> ProtocolResult:
        """Make the pattern and the teacher, train, test, and put the result together."""
        cfg = ctx.protocol
        assert isinstance(cfg, DendriticPredictionConfig)
        self.check(ctx.run, cfg, ctx.circuit)
        circuit = registered_circuit(ctx.run.circuit or self.circuits[0])
        params = params_from_table(circuit, ctx.circuit)
        readout = ctx.run.readout or self.readouts[0]
        structure = circuit.Structure(
            n_inputs=ctx.circuit.n_inputs,
            readout=readout,
            record_dt_ms=cfg.record_dt_ms,
            weight_record_dt_ms=cfg.pattern_ms,
        )
        timed = make_inputs(ctx.rng, cfg, structure.n_inputs)
        w0 = initial_weights(ctx.rng, cfg, structure.n_inputs)
        training = train(
            circuit,
            structure,
            params,
            cfg,
            timed,
            w0,
            epochs=int(ctx.run.epochs or self.default_epochs),
            device=ctx.run.device,
            seed=ctx.run.seed,
            progress=ctx.progress,
        )
        return result(training, params, cfg, timed, w0, readout)


register_protocol(DendriticPrediction.name, DendriticPrediction.summary, DendriticPrediction)

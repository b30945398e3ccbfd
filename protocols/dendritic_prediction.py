"""The classic dendritic-prediction experiment of Urbanczik & Senn (2014), DESIGN.md §4.1.

200 inputs replay one frozen 10 Hz Poisson pattern of 200 ms, over and over. A teacher drives the
soma with a sinusoidal excitatory and a constant inhibitory conductance, locked to the pattern.
With plasticity on, the dendritic synapses learn until the dendritic prediction φ(V*_w) follows
the teacher's rate φ(U_M). A test run with the teacher off and plasticity off shows what the
dendrite alone now predicts.

Each epoch is one run of the same compiled build (``repetitions_per_epoch`` repetitions); weights
and state flow from one run into the next through ``run_args``, so a run of any number of epochs
compiles at most once, and not at all when the build is cached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from circuits import urbanczik_senn as us
from neurosim.config import RunConfig, StrictModel
from neurosim.engine import RunResult, Simulation
from neurosim.errors import ConfigError
from neurosim.neurons import sigmoid_rate
from neurosim.protocol import Protocol, ProtocolResult
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord
from neurosim.registry import register_protocol
from neurosim.seeding import run_seed, seed_everything


class UrbanczikSennConfig(StrictModel):
    """The ``[circuit]`` table: parameters of the two-compartment neuron (DESIGN.md §4.1)."""

    n_inputs: int = Field(200, ge=1, le=100000)
    g_L: float = Field(0.1, gt=0)
    g_D: float = Field(2.0, gt=0)
    E_E: float = 14.0 / 3.0
    E_I: float = -1.0 / 3.0
    tau_L: float = Field(10.0, gt=0, description="PSP decay time (ms)")
    tau_s: float = Field(3.0, gt=0, description="PSP rise time (ms)")
    phi_max: float = Field(0.15, gt=0, description="maximal rate (1/ms)")
    k: float = Field(0.5, gt=0)
    beta: float = Field(5.0, gt=0)
    theta: float = 1.0
    refractory: float = Field(3.0, ge=0, description="ms")
    tau_delta: float = Field(100.0, gt=0, description="low-pass of the plasticity induction (ms)")

    @model_validator(mode="after")
    def _distinct_time_constants(self) -> UrbanczikSennConfig:
        if self.tau_L == self.tau_s:
            raise ValueError("tau_L and tau_s must differ (the PSP kernel divides by τ_L − τ_s)")
        return self


class DendriticPredictionConfig(StrictModel):
    """The ``[protocol]`` table."""

    dt_ms: float = Field(0.1, gt=0, le=1.0)
    pattern_ms: float = Field(200.0, gt=0)
    input_rate_hz: float = Field(10.0, gt=0, le=1000)
    repetitions_per_epoch: int = Field(26, ge=1)
    eta: float = Field(0.1, ge=0, description="learning rate η, chosen once (README)")
    # Teacher of Fig. 1B (U&S 2014) as NEST's urbanczik_synapse_example reproduces it, in the
    # paper's units: g_E(t) = offset + amplitude·sin(2π·cycles·t/T), g_I constant, so that the
    # matching potential U_M sweeps the rate function's range (about -0.17 to 1.47).
    teacher_gE_offset: float = Field(0.54, ge=0)
    teacher_gE_amplitude: float = Field(0.48, ge=0)
    teacher_cycles_per_pattern: int = Field(2, ge=1)
    teacher_gI: float = Field(1.8, gt=0, description="constant inhibitory teacher conductance")
    w_init_mean: float = 0.25
    w_init_std: float = Field(0.25, ge=0)
    record_dt_ms: float = Field(1.0, gt=0)
    correlation_repetitions: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _grid(self) -> DendriticPredictionConfig:
        for name in ("pattern_ms", "record_dt_ms"):
            ratio = getattr(self, name) / self.dt_ms
            if abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"{name} must be a whole number of time steps dt_ms")
        ratio = self.pattern_ms / self.record_dt_ms
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError("pattern_ms must be a whole number of record_dt_ms")
        if self.teacher_gE_amplitude > self.teacher_gE_offset:
            raise ValueError("teacher_gE_amplitude may not exceed teacher_gE_offset (g_E ≥ 0)")
        return self


def make_pattern(
    rng: np.random.Generator, steps: int, n_inputs: int, rate_hz: float, dt_ms: float
) -> np.ndarray:
    """A frozen Poisson pattern: 1 where input i spikes in step k (probability rate·dt)."""
    return (rng.random((steps, n_inputs)) < rate_hz * 1e-3 * dt_ms).astype(float)


def make_teacher(cfg: DendriticPredictionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Teacher conductances over one pattern: sinusoidal excitation, constant inhibition."""
    steps = int(round(cfg.pattern_ms / cfg.dt_ms))
    t = np.arange(steps) * cfg.dt_ms
    g_E = cfg.teacher_gE_offset + cfg.teacher_gE_amplitude * np.sin(
        2 * np.pi * cfg.teacher_cycles_per_pattern * t / cfg.pattern_ms
    )
    g_I = np.full(steps, cfg.teacher_gI)
    return g_E, g_I


def circuit_params(circuit: UrbanczikSennConfig) -> us.UrbanczikSennParams:
    """The circuit's parameter record from its configuration table."""
    return us.UrbanczikSennParams(**circuit.model_dump())


class DendriticPrediction(Protocol):
    """Learning by the dendritic prediction of somatic spiking."""

    name = "dendritic-prediction"
    summary = "Urbanczik & Senn 2014: a dendrite learns to predict its somatic teacher"
    circuits = (us.NAME,)
    readouts = ("spiking", "rate")
    default_epochs = 4
    protocol_config = DendriticPredictionConfig
    circuit_configs = {us.NAME: UrbanczikSennConfig}

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        assert isinstance(protocol, DendriticPredictionConfig)
        total_reps = int(run.epochs or self.default_epochs) * protocol.repetitions_per_epoch
        if total_reps < 2 * protocol.correlation_repetitions:
            raise ConfigError(
                f"{total_reps} repetitions are too few to compare the first and the last "
                f"{protocol.correlation_repetitions} (protocol.correlation_repetitions)."
            )

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        return int(run.epochs or self.default_epochs) + 1  # the epochs and the test run

    def run(
        self,
        run: RunConfig,
        protocol: StrictModel,
        circuit: StrictModel,
        progress: Callable[[int, str], None] | None = None,
    ) -> ProtocolResult:
        assert isinstance(protocol, DendriticPredictionConfig)
        assert isinstance(circuit, UrbanczikSennConfig)
        cfg, params = protocol, circuit_params(circuit)
        epochs = int(run.epochs or self.default_epochs)
        readout = run.readout or "spiking"
        self.check(run, protocol, circuit)
        total_reps = epochs * cfg.repetitions_per_epoch
        progress = progress or (lambda n, msg: None)
        rng = seed_everything(run.seed)

        steps = int(round(cfg.pattern_ms / cfg.dt_ms))
        g_E, g_I = make_teacher(cfg)
        timed = {
            "stimulus": make_pattern(rng, steps, params.n_inputs, cfg.input_rate_hz, cfg.dt_ms),
            "teacher_gE": g_E,
            "teacher_gI": g_I,
        }
        w0 = rng.normal(cfg.w_init_mean, cfg.w_init_std, params.n_inputs)
        duration_ms = cfg.repetitions_per_epoch * cfg.pattern_ms

        def builder(tv: Any) -> Any:
            return us.build(
                params,
                tv,
                dt_ms=cfg.dt_ms,
                readout=readout,
                record_dt_ms=cfg.record_dt_ms,
                weight_record_dt_ms=cfg.pattern_ms,
            )

        progress(0, "building")
        sim = Simulation(
            builder,
            device=run.device,
            duration_ms=duration_ms,
            dt_ms=cfg.dt_ms,
            initial_timed=timed,
            label=us.NAME,
            cuda_seed=run_seed(run.seed, 0),
        )
        values: dict[str, Any] = {
            "dendritic_synapses.w": w0,
            "dendritic_synapses.Delta": np.zeros(params.n_inputs),
            "dendritic_synapses.eta": cfg.eta,
            "dendritic_synapses.plastic": 1.0,
            "neuron.teacher_on": 1.0,
        }
        runs: list[RunResult] = []
        wall = 0.0
        for epoch in range(epochs):
            result = sim.run(
                values=values, timed=timed, seed=run_seed(run.seed, epoch + 1), read=us.STATE
            )
            values.update(result.state)
            runs.append(result)
            wall += result.wall_seconds
            progress(1, f"epoch {epoch + 1}/{epochs}")
        test_values = {
            **values,
            "dendritic_synapses.eta": 0.0,
            "dendritic_synapses.plastic": 0.0,
            "neuron.teacher_on": 0.0,
        }
        test = sim.run(
            values=test_values, timed=timed, seed=run_seed(run.seed, epochs + 1), read=us.STATE
        )
        wall += test.wall_seconds
        progress(1, "test")

        def prediction(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
            """φ(V*_w) at each sample, and the sample's step within the pattern."""
            soma = result.monitors["soma"]
            v_star = params.g_D / (params.g_L + params.g_D) * soma["V_w"][:, 0]
            rate = sigmoid_rate(v_star, params.phi_max, params.k, params.beta, params.theta)
            step = np.round(soma["t"] * 1000.0 / cfg.dt_ms).astype(np.int64) % steps
            return rate, step

        pred_parts, step_parts = zip(*(prediction(r) for r in runs), strict=True)
        test_pred, test_step = prediction(test)
        weights_t = np.concatenate(
            [r.monitors["weights"]["t"] + k * duration_ms / 1000 for k, r in enumerate(runs)]
        )
        weights_w = np.concatenate([r.monitors["weights"]["w"] for r in runs], axis=0)
        n_spikes = sum(len(r.monitors.get("output_spikes", {"t": []})["t"]) for r in runs)
        simulated = (epochs + 1) * duration_ms / 1000.0
        final_w = values["dendritic_synapses.w"]
        metrics = {
            "readout": readout,
            "epochs": epochs,
            "repetitions": total_reps,
            "wall_seconds_simulation": wall,
            "compile_seconds": sim.compile_seconds,
            "compilations": sim.compilations,
            "simulated_seconds": simulated,
            "simulated_seconds_per_wall_second": simulated / wall if wall > 0 else None,
            "build_dir": str(sim.build_dir) if sim.build_dir else None,
            "learning_rate_eta": cfg.eta,
            "final_mean_weight": float(np.mean(final_w)),
            "output_rate_hz_learning": n_spikes / (epochs * duration_ms / 1000.0),
        }
        data = {
            # φ(V*_w) and the pattern step of every sample; the teacher's conductances over one
            # pattern and the rate function, from which analysis/ computes φ(U_M)
            "prediction": np.concatenate(pred_parts),
            "pattern_step": np.concatenate(step_parts),
            "teacher_gE": g_E,
            "teacher_gI": g_I,
            "reversal": (params.E_E, params.E_I),
            "rate_function": {
                "phi_max": params.phi_max,
                "k": params.k,
                "beta": params.beta,
                "theta": params.theta,
            },
            "samples_per_repetition": int(round(cfg.pattern_ms / cfg.record_dt_ms)),
            "correlation_repetitions": cfg.correlation_repetitions,
            "test_prediction": test_pred,
            "test_pattern_step": test_step,
            "weights_t": weights_t,
            "weights": weights_w,
            "pattern_t_ms": np.arange(int(round(cfg.pattern_ms / cfg.record_dt_ms)))
            * cfg.record_dt_ms,
        }
        segments = [
            self._segment(f"epoch {k + 1}", r, k * duration_ms / 1000, duration_ms, cfg)
            for k, r in enumerate(runs)
        ]
        segments.append(
            self._segment(
                "test", test, epochs * duration_ms / 1000, duration_ms, cfg, params.n_inputs
            )
        )
        # the weight trajectory of the whole learning phase as one signal (neo's NixIO stores
        # every channel as its own data array, so one signal instead of one per epoch)
        segments.append(
            SegmentRecord(
                "weights",
                [],
                [
                    SignalRecord(
                        "w",
                        weights_w,
                        cfg.pattern_ms / 1000,
                        float(weights_t[0]),
                        "dimensionless",
                        {"description": "dendritic weights during learning, one channel each"},
                    )
                ],
                {"description": "weights sampled once per pattern repetition"},
            )
        )

        return ProtocolResult(
            metrics=metrics,
            segments=segments,
            weights={
                "dendritic_w": final_w,
                "initial_dendritic_w": w0,
                "dendritic_w_trajectory": weights_w,
                "trajectory_t_s": weights_t,
            },
            data=data,
        )

    @staticmethod
    def _segment(
        name: str,
        result: RunResult,
        t0_s: float,
        duration_ms: float,
        cfg: DendriticPredictionConfig,
        n_inputs: int = 0,
    ) -> SegmentRecord:
        """One neo segment: output spikes, somatic/dendritic potentials, weights (and inputs)."""
        t_stop = t0_s + duration_ms / 1000.0
        spikes = []
        if "output_spikes" in result.monitors:
            spikes.append(
                SpikeRecord(
                    "output",
                    result.monitors["output_spikes"]["t"] + t0_s,
                    t0_s,
                    t_stop,
                    {"population": "output", "neuron": 0},
                )
            )
        if n_inputs:  # every input's train, including inputs silent in the pattern
            mon = result.monitors["input_spikes"]
            for i in range(n_inputs):
                spikes.append(
                    SpikeRecord(
                        f"input {i}",
                        mon["t"][mon["i"] == i] + t0_s,
                        t0_s,
                        t_stop,
                        {"population": "inputs", "neuron": i},
                    )
                )
        soma = result.monitors["soma"]
        signals = [
            SignalRecord(
                "U",
                soma["U"],
                cfg.record_dt_ms / 1000,
                t0_s + soma["t"][0],
                "dimensionless",
                {"description": "somatic potential"},
            ),
            SignalRecord(
                "V_w",
                soma["V_w"],
                cfg.record_dt_ms / 1000,
                t0_s + soma["t"][0],
                "dimensionless",
                {"description": "dendritic potential"},
            ),
        ]
        return SegmentRecord(name, spikes, signals, {"duration_ms": duration_ms})


register_protocol(DendriticPrediction.name, DendriticPrediction.summary, DendriticPrediction)

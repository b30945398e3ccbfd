"""The data and circuit of one run: the data set, the circuit's structure and parameters, the
chunking into compiled runs, and the initial weights."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurosim import datasets as ds
from neurosim.circuit import check_fits, params_from_table
from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.registry import circuit as registered_circuit
from protocols.feedback_cancellation.config import FeedbackCancellationConfig

CIRCUIT = "microcircuit"


def microcircuit() -> Any:
    """The registered microcircuit (:class:`circuits.microcircuit.MicrocircuitCircuit`)."""
    return registered_circuit(CIRCUIT)


class Task:
    """The data of one run: the data set, the circuit's sizes and parameters, chunking."""

    def __init__(self, run: RunConfig, cfg: FeedbackCancellationConfig, circ: StrictModel):
        data = ds.load(run.dataset, seed=run.seed, code=run.input_code)
        self.data = data.subset(cfg.n_train, cfg.n_test)
        self.circuit = microcircuit()
        sizes = getattr(circ, "sizes", None)
        if sizes is None:
            raise ConfigError("circuit.sizes is not set: give the layer sizes [n0, ..., nN].")
        if len(sizes) < 3 or min(sizes) < 1:
            raise ConfigError(
                "circuit.sizes needs an input, at least one hidden and an output layer."
            )
        if sizes[0] != data.n_inputs or sizes[-1] != data.n_outputs:
            raise ConfigError(
                f"circuit.sizes {list(sizes)} do not fit data set {data.name!r}: it has "
                f"{data.n_inputs} inputs (input code {data.input_code!r}) and {data.n_outputs} "
                f"outputs."
            )
        self.sizes = [int(n) for n in sizes]
        self.params = params_from_table(self.circuit, circ)
        self.phi = self.params.phi
        if self.phi != data.phi:
            raise ConfigError(
                f"the targets of {data.name!r} are potentials of φ = {data.phi}; "
                f"circuit.phi = {self.phi} would nudge toward the wrong rates."
            )
        self.n_layers = len(self.sizes) - 1
        n_ws = len(cfg.w_scale) if cfg.w_scale is not None else self.n_layers
        n_eta = len(cfg.eta_forward) if cfg.stage == "supervised" else self.n_layers
        if n_eta != self.n_layers or n_ws != self.n_layers:
            raise ConfigError(
                f"protocol.eta_forward and w_scale need one value per forward projection "
                f"({self.n_layers} for circuit.sizes {self.sizes})."
            )
        self.P = cfg.patterns_per_run or len(self.data.x_test)
        #: examples side by side per presentation (``circuit.batch``; mini-batch learning)
        self.batch = int(getattr(circ, "batch", None) or 1)
        if self.batch > 1 and cfg.stage != "supervised":
            raise ConfigError(
                f"circuit.batch = {self.batch} is built for the supervised stage only; stage "
                f"{cfg.stage!r} runs one example at a time (circuit.batch = 1)."
            )
        if self.batch > len(self.data.x_train):
            raise ConfigError(
                f"circuit.batch = {self.batch} needs at least {self.batch} training examples; "
                f"the data set has {len(self.data.x_train)}."
            )
        self.cfg = cfg
        self.readout = run.readout or "rate"
        #: spiking cells per unit (``circuit.population``)
        self.population = int(getattr(circ, "population", None) or 1)
        if self.population > 1 and self.readout != "spiking":
            raise ConfigError(
                f"circuit.population = {self.population} is a number of spiking cells per unit: "
                "it needs --readout spiking."
            )
        if self.readout == "spiking" and self.params.max_rate_hz * cfg.dt_ms * 1e-3 > 1.0:
            raise ConfigError(
                f"the spiking read-out fires at most once per step: max_rate_hz·dt = "
                f"{self.params.max_rate_hz * cfg.dt_ms * 1e-3:g} > 1; lower protocol.dt_ms."
            )
        self.evaluation = evaluation_mode(cfg, self.params, self.readout)
        structure = self.circuit.Structure(
            self.sizes, readout=self.readout, topdown=cfg.top_down, batch=self.batch,
            population=self.population,
        )  # fmt: skip
        check_fits(self.circuit, structure)

    @property
    def presentations(self) -> int:
        """Presentations per compiled run: the P patterns, B side by side in batch mode."""
        return -(-self.P // self.batch)


#: presentations after which the rate circuit's output is within 1e-10 of its fixed point
#: (benchmarks/README.md, bench_microcircuit_dt.py): instantaneous cells settle in time, and not
#: at all with Euler steps of 1 ms; prospective cells settle in steps
SETTLED_INSTANTANEOUS_MS = 100.0
SETTLED_INSTANTANEOUS_MAX_DT_MS = 0.5
SETTLED_PROSPECTIVE_STEPS = 200


def evaluation_mode(cfg: FeedbackCancellationConfig, params: Any, readout: str) -> str:
    """How test and training-set passes read the circuit: ``'fixed-point'`` (its settled state,
    solved by the torch twin) or ``'simulation'``. ``auto`` takes the fixed point where the
    simulated pass would read the same state: rate read-out, no noise, and patterns long enough
    to settle."""
    exact = readout == "rate" and params.sigma == 0
    if cfg.evaluation == "fixed-point" and not exact:
        raise ConfigError(
            "protocol.evaluation = 'fixed-point' needs the rate read-out without noise "
            f"(read-out {readout!r}, circuit.sigma = {params.sigma:g}): a spiking or noisy "
            "circuit has no fixed point to solve; use 'simulation' or 'auto'."
        )
    if cfg.evaluation != "auto":
        return cfg.evaluation
    if params.prospective:
        settles = cfg.pattern_ms / cfg.dt_ms >= SETTLED_PROSPECTIVE_STEPS - 1e-9
    else:
        settles = (
            cfg.pattern_ms >= SETTLED_INSTANTANEOUS_MS
            and cfg.dt_ms <= SETTLED_INSTANTANEOUS_MAX_DT_MS
        )
    return "fixed-point" if exact and settles else "simulation"


def forward_scales(task: Task) -> list[float]:
    """U(−a, a) of each W_k. ``w_init`` 'gain': a = w_gain/√n_pre. 'teacher' (one hidden layer):
    the student's initial potentials have the teacher's spread, a_1 = k1/gain_B and
    a_N = k2·√(n_teacher_hidden/n_hidden)/gain."""
    cfg, sizes, p = task.cfg, task.sizes, task.params
    if cfg.w_scale is not None:
        return list(cfg.w_scale)
    if cfg.w_init == "teacher" and task.n_layers == 2:
        return [
            ds.TEACHER_K1 / p.hidden_basal_gain,
            ds.TEACHER_K2 * math.sqrt(ds.TEACHER_SIZES[1] / sizes[1]) / p.output_basal_gain,
        ]
    gain = cfg.w_gain if cfg.w_init == "gain" else 4.0
    return [gain / math.sqrt(sizes[k - 1]) for k in range(1, task.n_layers + 1)]


def initial_weights(task: Task, rng: np.random.Generator, lateral: str) -> dict[str, np.ndarray]:
    """Forward weights U(−a_k, a_k), top-down U(−b, b) (unless tied), lateral weights in the
    closed form (``lateral='closed-form'``) or random of a size ``lateral_scale`` × its."""
    cfg, sizes = task.cfg, task.sizes
    scales = forward_scales(task)
    w: dict[str, np.ndarray] = {}
    for k in range(1, task.n_layers + 1):
        a = scales[k - 1]
        w[f"W{k}"] = rng.uniform(-a, a, (sizes[k], sizes[k - 1]))
    for k in range(1, task.n_layers):
        if cfg.top_down != "tied":
            b = cfg.b_scale or scales[k]
            w[f"B{k}"] = rng.uniform(-b, b, (sizes[k], sizes[k + 1]))
    closed = task.circuit.self_predicting_weights(w, task.params, sizes)
    for name, m in closed.items():
        if lateral == "closed-form":
            w[name] = m.copy()
        else:  # random, with a typical size of lateral_scale × the closed form's entries
            a = cfg.lateral_scale * math.sqrt(3.0) * float(np.sqrt(np.mean(m**2)))
            w[name] = rng.uniform(-a, a, m.shape)
    return w


def gate_rows(
    n_patterns: int, active: np.ndarray, pattern_ms: float, lag_ms: float, dt_ms: float
) -> tuple[np.ndarray, float]:
    """The ``plastic`` gate: 0 for the first ``lag_ms`` of each pattern and in padded patterns."""
    steps_p = int(round(pattern_ms / dt_ms))
    steps_l = int(round(lag_ms / dt_ms))
    g = math.gcd(steps_p, steps_l) if steps_l else steps_p
    per = steps_p // g
    lag_rows = steps_l // g
    row = (np.arange(per) >= lag_rows).astype(float)
    gate = np.tile(row, n_patterns) * np.repeat(active.astype(float), per)
    return gate, g * dt_ms

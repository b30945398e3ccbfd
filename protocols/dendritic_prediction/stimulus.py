"""The experiment's inputs: one frozen Poisson pattern, the teacher locked to it, initial weights.

200 inputs replay one frozen 10 Hz Poisson pattern of 200 ms, over and over; the teacher drives
the soma with a sinusoidal excitatory and a constant inhibitory conductance over the same period.
"""

from __future__ import annotations

import numpy as np

from protocols.dendritic_prediction.config import DendriticPredictionConfig


def make_pattern(
    rng: np.random.Generator, steps: int, n_inputs: int, rate_hz: float, dt_ms: float
) -> np.ndarray:
    """A frozen Poisson pattern: 1 where input i spikes in step k (probability rate·dt)."""
    return (rng.random((steps, n_inputs)) < rate_hz * 1e-3 * dt_ms).astype(float)


def make_teacher(cfg: DendriticPredictionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Teacher conductances over one pattern: sinusoidal excitation, constant inhibition."""
    steps = cfg.pattern_steps
    t = np.arange(steps) * cfg.dt_ms
    g_E = cfg.teacher_gE_offset + cfg.teacher_gE_amplitude * np.sin(
        2 * np.pi * cfg.teacher_cycles_per_pattern * t / cfg.pattern_ms
    )
    g_I = np.full(steps, cfg.teacher_gI)
    return g_E, g_I


def make_inputs(
    rng: np.random.Generator, cfg: DendriticPredictionConfig, n_inputs: int
) -> dict[str, np.ndarray]:
    """The circuit's ``TimedArray`` values: the pattern (drawn from ``rng``) and the teacher."""
    g_E, g_I = make_teacher(cfg)
    return {
        "stimulus": make_pattern(rng, cfg.pattern_steps, n_inputs, cfg.input_rate_hz, cfg.dt_ms),
        "teacher_gE": g_E,
        "teacher_gI": g_I,
    }


def initial_weights(
    rng: np.random.Generator, cfg: DendriticPredictionConfig, n_inputs: int
) -> np.ndarray:
    """Dendritic weights before learning, N(w_init_mean, w_init_std²)."""
    return rng.normal(cfg.w_init_mean, cfg.w_init_std, n_inputs)

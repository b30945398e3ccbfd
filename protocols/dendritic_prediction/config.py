"""The ``[protocol]`` table of the dendritic-prediction experiment (DESIGN.md §4.1).

The ``[circuit]`` table is the circuit's, derived from its parameter record
(:mod:`neurosim.parameters.urbanczik_senn`). The values a run takes when none are given are the
``default`` preset (``presets/default.toml``), which these defaults equal (a test keeps them so).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from neurosim.config import StrictModel


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

    @property
    def pattern_steps(self) -> int:
        """Time steps of one pattern."""
        return int(round(self.pattern_ms / self.dt_ms))

    @property
    def samples_per_repetition(self) -> int:
        """Recorded samples of one pattern."""
        return int(round(self.pattern_ms / self.record_dt_ms))

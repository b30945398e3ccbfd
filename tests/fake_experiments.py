"""Test-local virtual experiments with known effects (no simulation), for the report and the
``predict`` command. They are registered only inside a test, through :func:`register_fakes`.

Each one's per-seed effects are fixed numbers, so the verdict is known in advance:
``fake-silencing`` (every seed positive, as predicted: supported), ``fake-null`` (seeds
alternate in sign: the interval includes zero, not supported), ``fake-opposite`` (every seed
negative against a predicted positive sign), ``fake-rate`` (rates in model units: the effect in Hz
and as percent change), ``fake-dose`` (dose–response curves), ``fake-scatter``
(x/y points), ``fake-failing`` (raises on its second seed) and ``fake-nan`` (a condition
value is NaN, so its statistics fail).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pytest

from neurosim.experiment import (
    EXPERIMENTS,
    ExperimentSettings,
    SeedOutcome,
    VirtualExperiment,
)
from neurosim.recording import SegmentRecord, SignalRecord, SpikeRecord

#: the shared-settings dictionaries every fake saw (one per ``predict`` invocation expected)
SEEN_SHARED: list[int] = []


def fake_recording(seed: int, condition: str, rate_hz: float) -> SegmentRecord:
    """One segment of 0.5 s: 8 Poisson spike trains and one two-channel analog signal."""
    rng = np.random.default_rng([seed, len(condition)])
    spikes = []
    for cell in range(8):
        n = rng.poisson(rate_hz * 0.5)
        spikes.append(SpikeRecord(f"pyr{cell}", np.sort(rng.uniform(0, 0.5, n)), 0.0, 0.5))
    signal = SignalRecord(
        "v_apical", rng.normal(0, 1, size=(50, 2)), sampling_period_s=0.01, t_start_s=0.0
    )
    return SegmentRecord(f"{condition} seed {seed}", spikes=spikes, signals=[signal])


class _Fake(VirtualExperiment):
    """A fake whose per-seed effect is ``EFFECTS[seed]`` and whose conditions differ by it."""

    hypothesis = "Silencing <b>SST</b> interneurons raises |v_A| & exposes top-down input."
    record = "Apical dendrite voltage of L5 pyramidal cells (two-photon voltage imaging)."
    contrast = "silenced minus intact, mean |v_A| over the test stimuli"
    conditions = ("intact", "silenced")
    effect_label = "Δ mean |v_A|"
    effect_units = "mV"
    circuit = "fake-microcircuit"
    EFFECTS: ClassVar[dict[int, float]] = {}

    def run_seed(
        self,
        seed: int,
        settings: ExperimentSettings,
        progress: Callable[[str], None] | None = None,
    ) -> SeedOutcome:
        SEEN_SHARED.append(id(settings.shared))
        if progress is not None:
            progress("measuring")
        effect = self.EFFECTS[seed]
        base = 1.0 + 0.1 * seed
        return SeedOutcome(
            seed=seed,
            effect=effect,
            conditions={"intact": base, "silenced": base + effect},
            recordings={
                c: [fake_recording(seed, c, 20.0 + 10 * i)] for i, c in enumerate(self.conditions)
            },
            extra={"train_accuracy": 0.9 + 0.01 * seed},
        )


class FakeSilencing(_Fake):
    name = "fake-silencing"
    title = "Fake silencing <of SST> & friends"
    EFFECTS = {1: 0.8, 2: 1.1, 3: 0.9, 4: 1.3, 5: 1.0}


class FakeNull(_Fake):
    name = "fake-null"
    title = "Fake null effect"
    EFFECTS = {1: 0.5, 2: -0.6, 3: 0.4, 4: -0.5, 5: 0.1}


class FakeOpposite(_Fake):
    name = "fake-opposite"
    title = "Fake opposite effect"
    EFFECTS = {1: -0.8, 2: -1.1, 3: -0.9, 4: -1.3, 5: -1.0}


class FakeDose(_Fake):
    name = "fake-dose"
    title = "Fake dose-response"
    figure = "dose-response"
    conditions = ("small error", "large error")
    contrast = "slope of apical potential against output error"
    EFFECTS = {1: 0.5, 2: 0.6, 3: 0.55, 4: 0.45, 5: 0.5}

    def run_seed(self, seed, settings, progress=None):
        outcome = super().run_seed(seed, settings, progress)
        outcome.conditions = {"small error": 0.1, "large error": 0.1 + outcome.effect}
        outcome.recordings = {}
        x = np.linspace(0, 1, 11)
        outcome.curves = {"apical": {"x": x, "y": outcome.effect * x + 0.01 * seed}}
        return outcome


class FakeScatter(_Fake):
    name = "fake-scatter"
    title = "Fake scatter"
    figure = "scatter"
    EFFECTS = {1: 0.7, 2: 0.8, 3: 0.75, 4: 0.9, 5: 0.8}

    def run_seed(self, seed, settings, progress=None):
        outcome = super().run_seed(seed, settings, progress)
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, 20)
        outcome.curves = {"weights": {"x": x, "y": outcome.effect * x}}
        return outcome


class FakeRate(_Fake):
    """Conditions are rates in model units (× 1000 Hz), the effect their change from intact."""

    name = "fake-rate"
    title = "Fake rate change"
    effect_label = "Δ output rate"
    effect_units = "model rate"
    change_from = ("intact", "silenced")
    hz_per_unit = 1000.0
    EFFECTS = {1: 0.02, 2: 0.03, 3: 0.025, 4: 0.035, 5: 0.02}


class FakeFailing(_Fake):
    name = "fake-failing"
    title = "Fake failing experiment"
    EFFECTS = {1: 1.0}

    def run_seed(self, seed, settings, progress=None):
        if seed >= 2:
            raise RuntimeError("the fake circuit diverged on purpose")
        return super().run_seed(seed, settings, progress)


class FakeNaNCondition(_Fake):
    name = "fake-nan"
    title = "Fake experiment whose condition value is NaN"
    EFFECTS = {1: 1.0, 2: 1.2, 3: 0.8}

    def run_seed(self, seed, settings, progress=None):
        outcome = super().run_seed(seed, settings, progress)
        outcome.conditions["intact"] = float("nan")
        return outcome


FAKES: tuple[type[VirtualExperiment], ...] = (
    FakeSilencing,
    FakeNull,
    FakeOpposite,
    FakeDose,
    FakeScatter,
    FakeRate,
    FakeFailing,
    FakeNaNCondition,
)


def register_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fakes in :data:`EXPERIMENTS` for one test (undone after it)."""
    for cls in FAKES:
        monkeypatch.setitem(EXPERIMENTS, cls.name, cls)

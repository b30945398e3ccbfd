"""The interface of a virtual experiment: a prediction for a biological test (DESIGN.md §4.7).

A virtual experiment runs a trained circuit, usually with the spiking read-out, under two or more
conditions, the way a lab would run them on an animal (interneurons intact or silenced, a small
or a large output error, ...). Per seed it measures one **effect**: a signed contrast between
conditions whose sign the theory predicts (``expected_sign``). ``neurosim predict`` runs every
registered experiment over several seeds, hands the per-seed outcomes to ``analysis/`` (effect
size, bootstrap interval over seeds, figures) and writes the recordings of each condition as
NIX and NWB files.

This module holds only the neutral parts (what an experiment declares and what one seed of it
returns), so that ``analysis/`` can read outcomes without importing ``protocols/``. The
experiments themselves live in ``protocols/experiments/``, one file each, and register here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurosim.errors import NeurosimError
from neurosim.recording import SegmentRecord

__all__ = [
    "EXPERIMENTS",
    "ExperimentSettings",
    "SeedOutcome",
    "VirtualExperiment",
    "lookup_experiment",
    "register_experiment",
]

#: figure kinds ``analysis/`` knows how to draw for an experiment's outcomes
FIGURE_KINDS = ("conditions", "dose-response", "scatter")


@dataclass
class ExperimentSettings:
    """How ``neurosim predict`` asks an experiment to run one seed.

    ``quick`` asks for the smallest run that still measures the effect (for the tests: seconds to
    a minute per seed); ``device`` is the Brian2 device; ``shared`` is one dictionary for the
    whole ``predict`` invocation, where experiments that need the same trained circuit for the
    same seed may keep it (key it by experiment family and seed) instead of training it again.
    """

    quick: bool = False
    device: str = "cpp_standalone"
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedOutcome:
    """What one seed of a virtual experiment measured.

    - ``effect``: the signed contrast the prediction is about, in ``effect_units`` of the
      experiment (e.g. apical |v_A| silenced minus intact); the theory predicts its sign.
    - ``conditions``: the measured quantity in each condition (keys: the experiment's
      ``conditions``), from which ``effect`` is computed.
    - ``curves``: optional named curves for figures, ``{series: {"x": array, "y": array}}``
      (dose–response: output error against apical potential; a series may be a condition or
      any other name).
    - ``recordings``: per condition, the virtual recording of this seed (spike trains and analog
      signals as :class:`SegmentRecord`; segment names should carry the seed).
    - ``extra``: other scalar measurements worth reporting (training accuracy, rates, ...).
    """

    seed: int
    effect: float
    conditions: dict[str, float]
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    recordings: dict[str, list[SegmentRecord]] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    def check(self, experiment: VirtualExperiment) -> None:
        """Refuse an outcome that does not match its experiment's declaration."""
        if not np.isfinite(self.effect):
            raise NeurosimError(
                f"Experiment {experiment.name!r}, seed {self.seed}: the effect is {self.effect}."
            )
        missing = set(experiment.conditions) - set(self.conditions)
        if missing:
            raise NeurosimError(
                f"Experiment {experiment.name!r}, seed {self.seed}: no value for condition(s) "
                f"{', '.join(sorted(missing))}."
            )
        unknown = set(self.recordings) - set(experiment.conditions)
        if unknown:
            raise NeurosimError(
                f"Experiment {experiment.name!r}, seed {self.seed}: recordings of unknown "
                f"condition(s) "
                f"{', '.join(sorted(unknown))} (declared: {', '.join(experiment.conditions)})."
            )


class VirtualExperiment:
    """Base class: subclasses set the class attributes and implement :meth:`run_seed`.

    The text attributes are written for an experimentalist and go into the report as they are:
    ``hypothesis`` (what the theory predicts, one or two sentences), ``record`` (what to record,
    from which cells, with which method), ``contrast`` (which conditions are compared and how the
    effect is computed from them), ``effect_label`` and ``effect_units``. ``expected_sign`` is +1
    when the theory predicts a positive effect, −1 for a negative one. ``figure`` picks the
    figure ``analysis/`` draws (one of :data:`FIGURE_KINDS`); ``x_label`` and ``y_label`` name
    the axes of its ``curves`` (dose–response and scatter figures).

    In the lab's units: ``change_from = (baseline, changed)`` names two conditions whose
    difference the effect is; the report then gives the effect also as the percent change
    100·(changed − baseline)/|baseline| per seed. ``hz_per_unit``: where the effect and the
    conditions are firing rates in model units, the factor to Hz (e.g. the circuit's
    ``rate_scale_hz``; 1.0 when they are in Hz already); the report then gives them in Hz too.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    hypothesis: ClassVar[str]
    record: ClassVar[str]
    contrast: ClassVar[str]
    conditions: ClassVar[tuple[str, ...]]
    effect_label: ClassVar[str]
    effect_units: ClassVar[str] = "dimensionless"
    expected_sign: ClassVar[int] = 1
    figure: ClassVar[str] = "conditions"
    x_label: ClassVar[str] = "x"
    y_label: ClassVar[str] = "y"
    circuit: ClassVar[str]
    readout: ClassVar[str] = "spiking"
    change_from: ClassVar[tuple[str, str] | None] = None
    hz_per_unit: ClassVar[float | None] = None

    def run_seed(
        self,
        seed: int,
        settings: ExperimentSettings,
        progress: Callable[[str], None] | None = None,
    ) -> SeedOutcome:
        """Train (or fetch from ``settings.shared``) the circuit for ``seed`` and measure."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The experiment's declaration as plain data (for ``predictions.json`` and the report)."""
        return {
            "name": self.name,
            "title": self.title,
            "hypothesis": self.hypothesis,
            "record": self.record,
            "contrast": self.contrast,
            "conditions": list(self.conditions),
            "effect_label": self.effect_label,
            "effect_units": self.effect_units,
            "expected_sign": int(self.expected_sign),
            "figure": self.figure,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "circuit": self.circuit,
            "readout": self.readout,
            "change_from": list(self.change_from) if self.change_from else None,
            "hz_per_unit": self.hz_per_unit,
        }


EXPERIMENTS: dict[str, type[VirtualExperiment]] = {}


def register_experiment(cls: type[VirtualExperiment]) -> type[VirtualExperiment]:
    """Class decorator: register a virtual experiment under its ``name`` (checked for sense)."""
    if cls.expected_sign not in (1, -1):
        raise NeurosimError(f"{cls.__name__}.expected_sign must be +1 or -1.")
    if cls.figure not in FIGURE_KINDS:
        raise NeurosimError(f"{cls.__name__}.figure must be one of {', '.join(FIGURE_KINDS)}.")
    if len(cls.conditions) < 2:
        raise NeurosimError(f"{cls.__name__} must compare at least two conditions.")
    if cls.change_from is not None and (
        len(cls.change_from) != 2 or not set(cls.change_from) <= set(cls.conditions)
    ):
        raise NeurosimError(
            f"{cls.__name__}.change_from must name two of its conditions (baseline, changed), "
            f"got {cls.change_from!r}."
        )
    if cls.hz_per_unit is not None and not (
        isinstance(cls.hz_per_unit, int | float) and cls.hz_per_unit > 0
    ):
        raise NeurosimError(f"{cls.__name__}.hz_per_unit must be a positive number.")
    if cls.name in EXPERIMENTS and EXPERIMENTS[cls.name] is not cls:
        raise NeurosimError(f"Two virtual experiments are registered as {cls.name!r}.")
    EXPERIMENTS[cls.name] = cls
    return cls


def lookup_experiment(name: str) -> type[VirtualExperiment]:
    """The experiment called ``name``, or one clear error listing those that exist."""
    if name not in EXPERIMENTS:
        known = ", ".join(sorted(EXPERIMENTS)) or "none"
        raise NeurosimError(f"Unknown virtual experiment {name!r}; known: {known}.")
    return EXPERIMENTS[name]

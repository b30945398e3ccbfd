"""The spikes of a supervised feedback-cancellation run with the spiking read-out: the spike
trains it records (issue 15, item 3) — a sample of cells of every pyramidal and interneuron group
(:mod:`neurosim.spike_sample`) during the first training patterns of every epoch and the first
test patterns before training and after the last epoch, cut from the runs the training makes
anyway, one neo segment per window, times relative to the window's start — and the firing rates
in Hz it reports (issue 15, item 2; :class:`Firing`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from neurosim.diagnostics import firing_rates
from neurosim.engine import RunResult
from neurosim.recording import SegmentRecord
from neurosim.spike_sample import SpikeSampling, sampled_cells, window_segment

OnResult = Callable[[int, RunResult], None]


def group_sizes(sizes: Sequence[int]) -> dict[str, int]:
    """Cells per group of the microcircuit: layer k has sizes[k], interneuron group k (one per
    pyramidal cell of layer k + 1) sizes[k + 1]."""
    out = {f"layer{k}": int(n) for k, n in enumerate(sizes)}
    out.update({f"inter{k}": int(sizes[k + 1]) for k in range(1, len(sizes) - 1)})
    return out


class SpikeSampler:
    """Collects the recorded windows of one supervised run."""

    def __init__(self, cfg: Any, sizes: Sequence[int], pattern_ms: float, per_run: int) -> None:
        assert isinstance(cfg, SpikeSampling)
        self.cfg = cfg
        self.cells = {g: n for g, n in sampled_cells(cfg, group_sizes(sizes)).items() if n > 0}
        self.pattern_ms, self.per_run = float(pattern_ms), int(per_run)
        self.segments: list[SegmentRecord] = []

    def _count(self, chunk: int, want: int) -> int:
        """How many of the first ``want`` patterns of a pass run in ``chunk`` (from its start)."""
        if not self.cells:
            return 0
        return max(0, min(want - chunk * self.per_run, self.per_run))

    def callback(
        self, name: str, want: int, labels: np.ndarray | None, notes: dict[str, Any],
        then: OnResult | None = None,
    ) -> OnResult:  # fmt: skip
        """An ``on_result`` for one pass that keeps its first ``want`` patterns (``labels``: the
        pass's labels in its order, None for regression) as a segment called ``name``."""

        def on_result(chunk: int, result: RunResult) -> None:
            count = self._count(chunk, want)
            if count:
                first = chunk * self.per_run
                shown = first + np.arange(count)
                annotations = {**notes, "patterns": [int(p) for p in shown]}
                if labels is not None:
                    annotations["labels"] = [int(v) for v in np.asarray(labels)[shown]]
                self.segments.append(
                    window_segment(
                        result.monitors, self.cells,
                        name=name + (f" (run {chunk + 1} of the pass)" if chunk else ""),
                        example_ms=self.pattern_ms,
                        first=0, count=count,
                        annotations={**annotations, "cells": dict(self.cells)},
                    )
                )  # fmt: skip
            if then is not None:
                then(chunk, result)

        return on_result


class Firing:
    """Spike counts of every cell over one pass of a spiking build (a pass starts at its chunk
    0), turned into rates in Hz per group (mean over its cells, most active cell) and spikes per
    example (:func:`neurosim.diagnostics.firing_rates`). Every presentation of a run counts, a
    padded one at the end of a pass too (its rows repeat the last example)."""

    def __init__(self, circuit: Any, sizes: Sequence[int], batch: int, per_run: int) -> None:
        self.circuit, self.sizes, self.batch = circuit, list(sizes), int(batch)
        self.per_run = int(per_run)  # presentations per run (B examples each)
        self.counts: dict[str, np.ndarray] = {}
        self.runs = 0
        self.duration_s = 0.0

    def add(self, chunk: int, result: RunResult) -> None:
        """One run's counts (usable as an ``on_result`` callback); chunk 0 starts a new pass."""
        if chunk == 0:
            self.counts, self.runs = {}, 0
        counts = self.circuit.spike_counts(result.monitors, self.sizes, self.batch)
        for name, c in counts.items():
            self.counts[name] = self.counts.get(name, 0) + c
        self.runs += 1
        self.duration_s = float(result.simulated_seconds)

    def rates(self) -> dict[str, Any]:
        """The last pass's rates per group (``layer{k}``, ``inter{k}``) and in all."""
        examples = self.runs * self.per_run * self.batch
        return firing_rates(self.counts, self.runs * self.duration_s, examples)


def chained(*callbacks: OnResult | None) -> OnResult | None:
    """One ``on_result`` that calls each given callback in turn (None: none given)."""
    given = [c for c in callbacks if c is not None]
    if not given:
        return None

    def on_result(chunk: int, result: RunResult) -> None:
        for callback in given:
            callback(chunk, result)

    return on_result

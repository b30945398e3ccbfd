"""The spike trains a supervised feedback-cancellation run with the spiking read-out records
(issue 15, item 3): a sample of cells of every pyramidal and interneuron group
(:mod:`neurosim.spike_sample`) during the first training patterns of every epoch and the first
test patterns before training and after the last epoch, cut from the runs the training makes
anyway. One neo segment per window; times relative to the window's start."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

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

"""The spike trains an EP run with the spiking read-out records (issue 15, item 3): a sample of
cells (:mod:`neurosim.spike_sample`) during the first training examples of every epoch and the
first test examples before training and after the last epoch, cut from the runs the training
makes anyway. One neo segment per window; times relative to the window's start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neurosim.engine import RunResult
from neurosim.recording import SegmentRecord
from neurosim.spike_sample import sampled_cells, window_segment


def _part(chunk: int) -> str:
    """The name's suffix of a window continued in a pass's later run (its windows are one
    segment per run)."""
    return f" (run {chunk + 1} of the pass)" if chunk else ""


class SpikeSampler:
    """Collects the recorded windows of one training run (``ses``: the protocol's Session)."""

    def __init__(self, ses: Any) -> None:
        cfg, plan = ses.task.cfg, ses.plan
        self.cfg, self.plan, self.task = cfg, plan, ses.task
        groups = {f"layer{k}": n for k, n in enumerate(plan.sizes)}
        self.cells = {g: n for g, n in sampled_cells(cfg, groups).items() if n > 0}
        self.example_ms = plan.example_steps * plan.dt_ms
        self.segments: list[SegmentRecord] = []
        self._pending: list[tuple[int, RunResult]] = []

    @property
    def active(self) -> bool:
        return bool(self.cells)

    def _count(self, chunk: int, want: int) -> int:
        """How many of the first ``want`` presentations of a pass run in ``chunk`` (they start
        at the run's start: a pass fills its runs from the first presentation on)."""
        return max(0, min(want - chunk * self.plan.P, self.plan.P)) if self.active else 0

    def training_callback(
        self, then: Callable[[int, RunResult], None]
    ) -> Callable[[int, RunResult], None]:
        """An ``on_result`` for :func:`~.training.train` that keeps the runs holding the first
        ``spike_train_examples`` presentations of the epoch, then calls ``then``."""

        def on_result(chunk: int, result: RunResult) -> None:
            if self._count(chunk, self.cfg.spike_train_examples):
                self._pending.append((chunk, result))
            then(chunk, result)

        return on_result

    def end_epoch(self, epoch: int, perm: np.ndarray) -> None:
        """Turn the kept training runs of ``epoch`` (0-based) into segments, labelled from the
        epoch's order ``perm`` (presentation p shows example perm[p·B] to copy 0)."""
        for chunk, result in self._pending:
            first = chunk * self.plan.P
            wanted = self._count(chunk, self.cfg.spike_train_examples)
            examples = self._examples(first, wanted, len(perm))
            count = len(examples)
            if not count:
                continue
            examples = perm[examples]
            self.segments.append(
                window_segment(
                    result.monitors, self.cells,
                    name=f"epoch {epoch + 1}: training examples{_part(chunk)}",
                    example_ms=self.example_ms, first=0, count=count,
                    annotations=self._notes(
                        "training", epoch + 1, examples, self._labels("train", examples),
                        self.plan.beta, first,
                    ),
                )
            )  # fmt: skip
        self._pending = []

    def test_callback(
        self, epoch: int, then: Callable[[int, RunResult], None]
    ) -> Callable[[int, RunResult], None]:
        """An ``on_result`` for the test pass after ``epoch`` epochs (0: untrained) that keeps
        the first ``spike_test_examples`` test examples, then calls ``then``."""

        def on_result(chunk: int, result: RunResult) -> None:
            first = chunk * self.plan.P
            examples = self._examples(
                first, self._count(chunk, self.cfg.spike_test_examples),
                len(self.task.data.x_test),
            )  # fmt: skip
            count = len(examples)
            if count:
                stage = "untrained" if epoch == 0 else f"after epoch {epoch}"
                self.segments.append(
                    window_segment(
                        result.monitors, self.cells, name=f"test examples, {stage}{_part(chunk)}",
                        example_ms=self.example_ms, first=0, count=count,
                        annotations=self._notes(
                            "test", epoch, examples, self._labels("test", examples), 0.0,
                            first,
                        ),
                    )
                )  # fmt: skip
            then(chunk, result)

        return on_result

    def _examples(self, first: int, count: int, n: int) -> np.ndarray:
        """Indices in the pass of the examples copy 0 shows in presentations first.. first +
        count − 1 (every B-th in batch mode), those that exist (a padded pass shows fewer)."""
        index = (first + np.arange(count)) * self.plan.batch
        return index[index < n]

    def _labels(self, part: str, examples: np.ndarray) -> np.ndarray | None:
        """The examples' labels (None for a regression, which has none)."""
        labels = getattr(self.task.data, f"labels_{part}")
        return None if labels is None else labels[examples]

    def _notes(
        self, kind: str, epoch: int, examples: np.ndarray, labels: np.ndarray | None, beta: float,
        first: int,
    ) -> dict[str, Any]:  # fmt: skip
        plan = self.plan
        return {
            "kind": kind,
            "epoch": int(epoch),
            "examples": [int(e) for e in examples],
            "labels": None if labels is None else [int(v) for v in labels],
            "variant": plan.variant,
            "beta": float(beta),
            "free_ms": plan.free_steps * plan.dt_ms,
            "nudged_ms": plan.nudged_steps * plan.dt_ms,
            "presentation_in_pass": int(first),
            "learning": kind == "training",
            "cells": {g: int(n) for g, n in self.cells.items()},
        }

"""Spike trains of a sample of cells for a few examples, for the recording of a spiking run.

A spiking run's ``recording.nix`` holds the spike trains of the first ``spike_cells`` cells of
every spiking group, for the first ``spike_train_examples`` training examples of every epoch
and for ``spike_test_examples`` test examples (settings: :class:`SpikeSampling`, part of the
``[protocol]`` table of the protocols that train a spiking circuit), so that ``neurosim
analyze`` and elephant run on what the circuit did (issue 15, item 3).

Cost: the windows are cut from the training and test runs the protocol makes anyway (no extra
run). :func:`sampled_spike_monitors` replaces a circuit's spike monitors of whole groups
(``spikes_<group>``) by monitors of the sampled cells only, so a build records a few cells'
spikes and no others (EP's training build); a build shared with code that reads every cell's
spikes (the microcircuit's, used by the comparisons and the virtual experiments) keeps its
whole-group monitors and the sample is cut from them. The cells are the first ones of each group
(in batch mode: of copy 0), not a random sample: the hidden units of a freshly initialised
circuit are exchangeable, and the first output cells are the first classes.

:func:`window_segment` cuts a window of consecutive examples out of one run's spike monitors
into a :class:`~neurosim.recording.SegmentRecord`: one spike train per sampled cell, times
relative to the window's start (t_start 0, t_stop the window's length), annotated with its group
and cell; the segment carries the examples' onsets and whatever the protocol annotates (labels,
phases, epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from brian2 import SpikeMonitor
from pydantic import Field

from neurosim.config import StrictModel
from neurosim.engine import Builder, CircuitBuild
from neurosim.recording import SegmentRecord, SpikeRecord

__all__ = [
    "SPIKE_MONITOR_PREFIX",
    "SpikeSampling",
    "sampled_cells",
    "sampled_spike_monitors",
    "window_segment",
]

#: the name circuits give their spike monitor of group g: ``spikes_<g>``
SPIKE_MONITOR_PREFIX = "spikes_"
#: the name of a monitor of every cell's spike count of group g, without spike times
COUNT_MONITOR_PREFIX = "counts_"
#: the most cells per group and examples per window a recording holds (a sample, not a dump)
MAX_SAMPLE = 1000


class SpikeSampling(StrictModel):
    """The recorded sample of a spiking run (``[protocol]`` keys; the rate read-out ignores
    them)."""

    spike_cells: int = Field(
        10, ge=0, le=MAX_SAMPLE,
        description="spiking read-out: spike trains recorded per group, at most (its first "
        "cells; copy 0 in batch mode; a smaller group: all its cells); 0 records none",
    )  # fmt: skip
    spike_train_examples: int = Field(
        3, ge=0, le=MAX_SAMPLE,
        description="spiking read-out: training examples recorded per epoch, at most (the first "
        "of the epoch's order)",
    )  # fmt: skip
    spike_test_examples: int = Field(
        5, ge=0, le=MAX_SAMPLE,
        description="spiking read-out: test examples recorded before training and after the "
        "last epoch, at most (the first of the test set)",
    )  # fmt: skip


def sampled_cells(sampling: SpikeSampling, group_sizes: Mapping[str, int]) -> dict[str, int]:
    """Cells recorded per group: ``spike_cells``, or all of a smaller group."""
    return {name: min(sampling.spike_cells, int(n)) for name, n in group_sizes.items()}


def sampled_spike_monitors(builder: Builder, cells: Mapping[str, int]) -> Builder:
    """``builder`` whose spike monitors ``spikes_<g>`` of whole groups are switched off and, where
    ``cells[g]`` > 0, joined by a monitor of the first ``cells[g]`` cells of group g. Every cell's
    spike count stays, in ``counts_<g>`` (a monitor without spike times, added where the circuit
    has none), so rates in Hz are still those of the whole group.

    The sample monitor takes the key ``spikes_<g>`` in :attr:`CircuitBuild.monitors` (its ``i``
    counts from the group's first cell, so it is the cell's index) and is named
    ``sample_spikes_<g>``. The whole-group monitor stays among the objects, inactive (Brian2
    leaves inactive objects out of the run loop; the engine puts ``active`` into the build key):
    on a standalone device its arrays exist from its creation on, and removing the object would
    leave the device holding arrays of a dead owner.
    """

    def build(timed: Mapping[str, np.ndarray]) -> CircuitBuild:
        circuit = builder(timed)
        for key, mon in list(circuit.monitors.items()):
            if not (isinstance(mon, SpikeMonitor) and key.startswith(SPIKE_MONITOR_PREFIX)):
                continue
            mon.active = False
            del circuit.monitors[key]
            # the group by the monitor's key: with populations the source is the units' first
            # cells (a subgroup of the cells, named after them), still indexed as the units
            name, group = key[len(SPIKE_MONITOR_PREFIX) :], mon.source
            # every cell's spike count stays (no spike times: cheap), for the firing rates in Hz
            counts = COUNT_MONITOR_PREFIX + name
            if counts not in circuit.monitors:
                counter = SpikeMonitor(group, record=False, name=counts)
                circuit.monitors[counts] = counter
                circuit.objects.append(counter)
            n = min(int(cells.get(name, 0)), len(group))
            if n > 0:
                sample = SpikeMonitor(group[:n], name=f"sample_{key}")
                circuit.monitors[key] = sample
                circuit.objects.append(sample)
        return circuit

    return build


def window_segment(
    monitors: Mapping[str, Mapping[str, np.ndarray]],
    cells: Mapping[str, int],
    *,
    name: str,
    example_ms: float,
    first: int,
    count: int,
    annotations: Mapping[str, Any] | None = None,
) -> SegmentRecord:
    """The spike trains of the sampled cells during examples ``first`` .. ``first + count − 1``
    of one run (example p lasts [p·example_ms, (p+1)·example_ms)), one train per group and cell,
    times relative to the window's start. ``monitors``: the run's monitors (``spikes_<g>``:
    ``t`` in s, ``i`` the cell); ``cells``: cells per group, as given to
    :func:`sampled_spike_monitors`."""
    if count < 1 or first < 0:
        raise ValueError(f"a window needs at least one example from 0 on, got {first}+{count}")
    start_s = first * example_ms / 1000.0
    length_s = count * example_ms / 1000.0
    spikes: list[SpikeRecord] = []
    for group, n in cells.items():
        if n <= 0:
            continue
        mon = monitors[SPIKE_MONITOR_PREFIX + group]
        t = np.asarray(mon["t"], dtype=float) - start_s
        i = np.asarray(mon["i"], dtype=int)
        # half-open windows: a spike at an example's end belongs to the next example
        inside = (t >= -1e-12) & (t < length_s - 1e-12)
        for cell in range(n):
            times = np.clip(t[inside & (i == cell)], 0.0, length_s)
            spikes.append(
                SpikeRecord(f"{group}_{cell}", times, 0.0, length_s, {"group": group, "cell": cell})
            )
    onsets = (np.arange(count) * example_ms / 1000.0).tolist()
    notes = {
        "example_ms": float(example_ms),
        "example_onsets_s": onsets,
        "first_example_in_run": int(first),
        **(annotations or {}),
    }
    return SegmentRecord(name, spikes, [], notes)

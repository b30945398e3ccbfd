"""Where a Brian2 code object runs within a time step (DESIGN.md §3: Brian2's default order is
wrong for learning rules that read this step's derivatives, so circuits set slots explicitly)."""

from __future__ import annotations

from typing import Any

#: Brian2's default schedule
SLOTS = ("start", "groups", "thresholds", "synapses", "resets", "end")


def set_slot(obj: Any, slot: tuple[str, int]) -> None:
    """Run ``obj`` at ``slot = (when, order)``."""
    obj.when, obj.order = slot


def slot_rank(when: str) -> float:
    """Position of a schedule slot in Brian2's default schedule (``before_``/``after_`` ±⅓)."""
    for prefix, shift in (("before_", -1 / 3), ("after_", 1 / 3)):
        if when.startswith(prefix):
            return SLOTS.index(when[len(prefix) :]) + shift
    return float(SLOTS.index(when))


#: the code objects of groups and synapses by role, as named by Brian2 (``<owner>_<role>``)
RUNNER_ROLES = ("apply", "restart", "rate", "dynamics", "update", "factors")


def execution_order(objects: Any) -> list[tuple[str, str, str, int]]:
    """The code objects of a circuit in execution order within one step:
    ``(kind, name, when, order)``, kind one of ``RUNNER_ROLES`` (``run_regularly`` code named
    ``<owner>_<role>``; ``'rate'`` also for a group's ``(constant over dt)`` rates),
    ``'neuron_update'``, ``'threshold'``, ``'summed'``, ``'synapse_update'``,
    ``'spikes'`` or ``'monitor'``. Ties of (when, order) break by name in Brian2; a circuit
    should never rely on them (DESIGN.md §3). This is the one place that reads Brian2's internals
    for it."""
    from brian2 import NeuronGroup, StateMonitor, Synapses

    rows: list[tuple[str, Any]] = []
    for obj in objects:
        if isinstance(obj, NeuronGroup | Synapses):
            for runner in obj.contained_objects:
                kind = runner.name.rsplit("_", 1)[-1]
                if kind in RUNNER_ROLES:
                    rows.append((kind, runner))
        if isinstance(obj, NeuronGroup):
            if getattr(obj, "state_updater", None) is not None:
                rows.append(("neuron_update", obj.state_updater))
            if getattr(obj, "subexpression_updater", None) is not None:
                rows.append(("rate", obj.subexpression_updater))  # `(constant over dt)` rates
            if getattr(obj, "thresholder", None):
                rows += [("threshold", t) for t in obj.thresholder.values()]
        elif isinstance(obj, Synapses):
            rows += [("summed", u) for u in obj.summed_updaters.values()]
            if obj.state_updater is not None:
                rows.append(("synapse_update", obj.state_updater))
            rows += [("spikes", p) for p in obj._pathways]
        elif isinstance(obj, StateMonitor):
            rows.append(("monitor", obj))
    table = [(kind, o.name, o.when, int(o.order)) for kind, o in rows]
    return sorted(table, key=lambda row: (slot_rank(row[2]), row[3], row[1]))


def on_own_clock(updater: Any, dt: Any, name: str) -> None:
    """Run a summed updater on a clock of its own (for a sum that is constant between events,
    e.g. an input drive computed once per example). Brian2 puts summed updaters on the target's
    clock and offers no public way to change it, hence the private attribute, kept here."""
    from brian2 import Clock

    updater._clock = Clock(dt=dt, name=name)

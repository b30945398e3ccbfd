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

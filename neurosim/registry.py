"""Circuits, protocols and data sets found by name (DESIGN.md §2).

A new circuit is one file in ``circuits/`` that calls :func:`register_circuit` with an instance of
its :class:`neurosim.circuit.Circuit` subclass (checked against the interface here); a new
protocol one small package in ``protocols/`` that calls :func:`register_protocol`. The command
line and the Python API import those packages, which fills these tables; protocols look their
circuits up by name with :func:`circuit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neurosim.errors import NeurosimError


@dataclass(frozen=True)
class Entry:
    """A named item with a one-line description and the object that implements it."""

    name: str
    summary: str
    target: Any


CIRCUITS: dict[str, Entry] = {}
PROTOCOLS: dict[str, Entry] = {}
DATASETS: dict[str, Entry] = {}


def _register(table: dict[str, Entry], kind: str, name: str, summary: str, target: Any) -> None:
    if name in table and table[name].target is not target:
        raise NeurosimError(f"Two {kind}s are registered under the name {name!r}.")
    table[name] = Entry(name, summary, target)


def register_circuit(circuit: Any, summary: str | None = None, target: Any = None) -> Any:
    """Register a circuit (an instance of a :class:`neurosim.circuit.Circuit` subclass, checked
    against the interface) under its name; returns it. The older form ``(name, summary, target)``
    is still taken while circuits move to the interface."""
    if isinstance(circuit, str):
        _register(CIRCUITS, "circuit", circuit, summary or "", target)
        return target
    from neurosim.circuit import check_circuit

    check_circuit(circuit)
    _register(CIRCUITS, "circuit", circuit.name, circuit.summary, circuit)
    return circuit


def register_protocol(name: str, summary: str, target: Any) -> None:
    """Register a protocol class under ``name``."""
    _register(PROTOCOLS, "protocol", name, summary, target)


def register_dataset(name: str, summary: str, target: Any) -> None:
    """Register a data-set loader under ``name``."""
    _register(DATASETS, "dataset", name, summary, target)


def circuit(name: str) -> Any:
    """The registered circuit called ``name`` (one clear error listing the known ones)."""
    return lookup(CIRCUITS, "circuit", name).target


def lookup(table: dict[str, Entry], kind: str, name: str) -> Entry:
    """The entry called ``name``, or one clear error listing what exists."""
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise NeurosimError(f"Unknown {kind} {name!r}; known {kind}s: {known}.")
    return table[name]

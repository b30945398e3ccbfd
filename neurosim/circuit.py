"""The circuit interface: what a circuit is, written down and checked (DESIGN.md §2).

After Brian2's ``Device`` base class: one written interface, so that protocols, the engine and the
command line handle every circuit alike and never reach into one circuit's module. A circuit is a
subclass of :class:`Circuit` that declares

* ``name`` and ``summary``;
* ``Params``: one frozen dataclass, the single source of the circuit's physical parameters — the
  Brian2 circuit, its torch twin (which imports the same record) and the ``[circuit]``
  configuration table (derived from it by :func:`config_model`) all read it;
* ``Structure``: one frozen dataclass of everything that changes the generated code (sizes,
  read-out, plasticity switches, recording); the build key is made from what it builds;
* ``schedule``: the slots ``(when, order)`` of its code objects by role, as data;
* :meth:`Circuit.build`, returning a :class:`~neurosim.engine.CircuitBuild`;
* the mapping between named weight matrices and ``run_args`` (:meth:`Circuit.weight_values`,
  :meth:`Circuit.weights_from_state`), by default dense projections ``name -> name.w``;
* :meth:`Circuit.cost`: neurons, synapses and the memory a build will take, from the structure
  alone, so a build that cannot fit is refused before anything is built (:func:`check_fits`).

The registry (:func:`neurosim.registry.register_circuit`) checks a circuit against this interface
and hands it out by name.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurosim.connectivity import matrix_to_w, w_to_matrix
from neurosim.errors import ConfigError, NeurosimError

#: a schedule slot: (Brian2 ``when``, ``order``)
Slot = tuple[str, int]

#: bytes per stored value in a build (float64), and a factor for Brian2's own copies while it
#: builds (the Python objects, the connectivity arrays, the generated static arrays)
_BYTES_PER_VALUE = 8
_BUILD_OVERHEAD = 6


def param(default: Any, description: str = "", **constraints: Any) -> Any:
    """A field of a ``Params`` record with its description and pydantic constraints
    (``gt``, ``ge``, ``le``, ``lt``), which the derived ``[circuit]`` table enforces."""
    return field(default=default, metadata={"description": description, **constraints})


@dataclass(frozen=True)
class Cost:
    """What a build of one structure holds, estimated before it is built."""

    neurons: int
    synapses: int
    #: state values stored per step (one per neuron or synapse variable)
    values: int
    #: values held by monitors over one run
    recorded: int = 0

    @property
    def bytes(self) -> int:
        """Memory the build is expected to need while it is built and run."""
        return int((self.values * _BUILD_OVERHEAD + self.recorded) * _BYTES_PER_VALUE)

    def describe(self) -> str:
        """One line for messages: counts and memory."""
        return (
            f"{self.neurons:,} neurons, {self.synapses:,} synapses, about "
            f"{self.bytes / 2**30:.2f} GiB"
        )


def available_memory_bytes() -> int:
    """Memory this machine can still give (``MemAvailable``), or a large number where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_fits(circuit: Circuit, structure: Any, memory_bytes: int | None = None) -> Cost:
    """Refuse, in one sentence with the estimate, a build that will not fit in memory."""
    cost = circuit.cost(structure)
    limit = available_memory_bytes() if memory_bytes is None else memory_bytes
    if cost.bytes > limit:
        raise ConfigError(
            f"A {circuit.name} circuit of this size will not fit: {cost.describe()} needed, "
            f"{limit / 2**30:.2f} GiB available; make it smaller."
        )
    return cost


def dense_cost(
    groups: Mapping[str, tuple[int, int]],
    projections: Mapping[str, tuple[int, int, int]],
    recorded: int = 0,
) -> Cost:
    """The cost of groups ``name -> (cells, variables)`` and dense projections
    ``name -> (n_pre, n_post, variables)`` (the connectivity's two indices count as values)."""
    neurons = sum(n for n, _ in groups.values())
    synapses = sum(a * b for a, b, _ in projections.values())
    values = sum(n * v for n, v in groups.values())
    values += sum(a * b * (v + 2) for a, b, v in projections.values())
    return Cost(neurons=neurons, synapses=synapses, values=values, recorded=recorded)


class Circuit:
    """Base class of every circuit; subclasses set the class attributes and implement
    :meth:`build`, :meth:`weight_shapes` and :meth:`cost`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type]
    Structure: ClassVar[type]
    #: role of a code object -> its slot in the step (DESIGN.md §3: set orders explicitly)
    schedule: ClassVar[Mapping[str, Slot]] = {}
    #: fields of ``Structure`` the ``[circuit]`` table also carries (for example ``sizes``)
    configurable: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ to implement
    def build(
        self, structure: Any, params: Any, timed: Mapping[str, np.ndarray], *, dt_ms: float
    ) -> Any:
        """Create the Brian2 objects of one circuit; returns a ``CircuitBuild``."""
        raise NotImplementedError

    def weight_shapes(self, structure: Any) -> dict[str, tuple[int, ...]]:
        """Named weight matrices (post × pre) of a structure, with their shapes."""
        raise NotImplementedError

    def cost(self, structure: Any) -> Cost:
        """Neurons, synapses and memory of a build of ``structure``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ defaults
    def slot(self, role: str) -> Slot:
        """The slot of a code object by its role; an unknown role is a programming error."""
        try:
            return self.schedule[role]
        except KeyError:
            raise NeurosimError(
                f"Circuit {self.name!r} declares no schedule slot {role!r}."
            ) from None

    def weight_values(
        self, structure: Any, weights: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Named matrices -> ``run_args`` values (``'W1.w'``: flat, post-major), shapes checked."""
        shapes = self.weight_shapes(structure)
        out: dict[str, np.ndarray] = {}
        for name, matrix in weights.items():
            if name not in shapes:
                raise NeurosimError(
                    f"Circuit {self.name!r} has no weight {name!r}; it has {sorted(shapes)}."
                )
            arr = np.asarray(matrix, dtype=float)
            if arr.shape != shapes[name]:
                raise NeurosimError(
                    f"Weight {name!r} has shape {arr.shape}, the circuit needs {shapes[name]}."
                )
            out[f"{name}.w"] = matrix_to_w(arr) if arr.ndim == 2 else arr
        return out

    def weights_from_state(
        self, structure: Any, state: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """``run_args``-style state (``'W1.w'``) -> named matrices (the inverse of
        :meth:`weight_values`)."""
        out: dict[str, np.ndarray] = {}
        for name, shape in self.weight_shapes(structure).items():
            key = f"{name}.w"
            if key in state:
                flat = np.asarray(state[key], dtype=float)
                out[name] = w_to_matrix(flat, shape[0], shape[1]) if len(shape) == 2 else flat
        return out

    def timed_names(self, structure: Any) -> tuple[str, ...]:
        """Names of the circuit's ``TimedArray`` inputs for ``structure``."""
        return ()

    def builder(self, structure: Any, params: Any, dt_ms: float) -> Callable[..., Any]:
        """The function the engine calls with the TimedArray values to build the circuit."""

        def build(timed: Mapping[str, np.ndarray]) -> Any:
            return self.build(structure, params, timed, dt_ms=dt_ms)

        return build


# ---------------------------------------------------------------------- checks and derivations
def check_circuit(circuit: Circuit) -> None:
    """Check a circuit against the interface; one clear error naming what is missing."""
    label = getattr(circuit, "name", type(circuit).__name__)
    if not isinstance(circuit, Circuit):
        raise NeurosimError(f"Circuit {label!r} must be an instance of neurosim.circuit.Circuit.")
    for attr in ("name", "summary", "Params", "Structure"):
        if not hasattr(circuit, attr):
            raise NeurosimError(f"Circuit {label!r} does not declare {attr!r}.")
    for attr in ("Params", "Structure"):
        record = getattr(circuit, attr)
        if not (dataclasses.is_dataclass(record) and record.__dataclass_params__.frozen):
            raise NeurosimError(f"Circuit {label!r}: {attr} must be a frozen dataclass.")
    fields = {f.name for f in dataclasses.fields(circuit.Structure)}
    missing = set(circuit.configurable) - fields
    if missing:
        raise NeurosimError(
            f"Circuit {label!r}: configurable {sorted(missing)} are not fields of its Structure."
        )
    for method in ("build", "weight_shapes", "cost"):
        if getattr(type(circuit), method) is getattr(Circuit, method):
            raise NeurosimError(f"Circuit {label!r} does not implement {method}().")
    for role, slot in circuit.schedule.items():
        if not (isinstance(slot, tuple) and len(slot) == 2 and isinstance(slot[1], int)):
            raise NeurosimError(f"Circuit {label!r}: schedule slot {role!r} must be (when, order).")


@functools.cache
def config_model(circuit: Circuit) -> type:
    """The ``[circuit]`` table as a strict pydantic model, derived from ``Params`` (and the
    configurable structure fields): same names, types, defaults, descriptions and bounds, and the
    record's own cross-field checks (its ``__post_init__``: a ``ValueError`` there is one
    configuration error). One model per circuit, so tables of one circuit compare equal."""
    from pydantic import Field, create_model, model_validator

    from neurosim.config import StrictModel

    names = [f.name for f in dataclasses.fields(circuit.Params)]

    class CheckedTable(StrictModel):
        #: former key -> its new name (the record's ``renamed``), for the error on an old key
        renamed: ClassVar[dict[str, str]] = dict(getattr(circuit.Params, "renamed", {}))

        @model_validator(mode="after")
        def _params_record_checks(self) -> Any:
            circuit.Params(**{name: getattr(self, name) for name in names})
            return self

    specs: dict[str, Any] = {}
    hints = _field_types(circuit.Params)
    for f in dataclasses.fields(circuit.Params):
        meta = dict(f.metadata)
        description = meta.pop("description", "")
        specs[f.name] = (hints[f.name], Field(f.default, description=description, **meta))
    s_hints = _field_types(circuit.Structure)
    s_fields = {f.name: f for f in dataclasses.fields(circuit.Structure)}
    for name in circuit.configurable:
        f = s_fields[name]
        meta = dict(f.metadata)
        description = meta.pop("description", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        # TOML gives lists: a tuple- or sequence-typed field is a list in the table (strict
        # still: no ``true`` for a size); the structure record takes the list
        specs[name] = (
            _as_list_type(s_hints[name]) | None,
            Field(default, description=description, **meta),
        )
    model_name = "".join(part.title() for part in circuit.name.replace("-", "_").split("_"))
    return create_model(f"{model_name}CircuitTable", __base__=CheckedTable, **specs)


def _as_list_type(hint: Any) -> Any:
    """``tuple[int, ...]`` or ``Sequence[int]`` -> ``list[int]`` (also inside a union)."""
    import collections.abc
    import functools
    import operator
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = list(dict.fromkeys(_as_list_type(arg) for arg in typing.get_args(hint)))
        return functools.reduce(operator.or_, args)
    if origin in (list, tuple, collections.abc.Sequence):
        return list[typing.get_args(hint)[0]] if typing.get_args(hint) else list
    return hint


def _field_types(record: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(record)


def params_from_table(circuit: Circuit, table: Any) -> Any:
    """The circuit's ``Params`` record from a validated ``[circuit]`` table (extra structure
    fields of the table are left out)."""
    names = {f.name for f in dataclasses.fields(circuit.Params)}
    values = table.model_dump() if hasattr(table, "model_dump") else dict(table)
    return circuit.Params(**{k: v for k, v in values.items() if k in names})

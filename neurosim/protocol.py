"""The small interface every protocol shares, so the command line, sweeps and comparisons treat
all of them alike (DESIGN.md §2, after scikit-learn's one interface for many algorithms).

A protocol declares its configuration table (a pydantic model), the circuits it accepts (looked up
by name in the registry; their ``[circuit]`` tables derive from the circuits' parameter records),
its presets (``presets/*.toml`` beside it, :mod:`neurosim.presets`) and its steps in
:meth:`Protocol.execute`. The base class's :meth:`Protocol.run` does the common work once — type
checks, seeding, the progress callback — and returns a :class:`ProtocolResult`: run metrics, the
recording as neo-ready segments, final weights, and the protocol's result record, from which
``analysis/`` computes the protocol's statistics and figures. Putting those together and writing
them to disk is the pipeline's job (:mod:`neurosim.cli.pipeline`, used by :mod:`neurosim.api`),
since only it may import ``analysis/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError, NeurosimError
from neurosim.recording import SegmentRecord
from neurosim.seeding import seed_everything


@dataclass
class ProtocolResult:
    """Everything a run produced, before it is written to the results folder."""

    metrics: dict[str, Any]
    segments: list[SegmentRecord] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    #: the protocol's typed result record (``neurosim/records/``), read by its ``analysis/`` module
    data: Any = field(default_factory=dict)


@dataclass
class RunContext:
    """What a protocol's steps receive: the validated tables, a seeded generator and progress."""

    run: RunConfig
    protocol: Any
    circuit: Any
    rng: np.random.Generator
    progress: Callable[[int, str], None]


def _no_progress(n: int, message: str) -> None:
    """Progress callback that reports nothing."""


class Protocol:
    """Base class: subclasses set the class attributes and implement :meth:`execute` (older
    protocols override :meth:`run` itself)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    circuits: ClassVar[tuple[str, ...]]
    datasets: ClassVar[tuple[str | None, ...]] = (None,)
    readouts: ClassVar[tuple[str, ...]] = ("spiking",)
    default_epochs: ClassVar[int] = 1
    protocol_config: ClassVar[type[StrictModel]]

    circuit_configs: ClassVar[dict[str, type[StrictModel]]] = {}

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        """Checks across configuration tables, made before anything is built or written."""

    def default_preset(self, run: RunConfig) -> str | None:
        """The preset taken when none is named (by data set and read-out); None: no presets."""
        return None

    def preset_for(self, run: RunConfig, raw: Any) -> str | None:
        """The preset taken when none is named, seen with the whole raw configuration (a protocol
        whose presets also follow its own table, e.g. a variant, overrides this)."""
        return self.default_preset(run)

    def default_circuit(self, raw: Mapping[str, Any]) -> str:
        """The circuit a run uses unless it names one (``raw``: the run's raw tables)."""
        del raw
        return self.circuits[0]

    def circuit_table(self, circuit_name: str) -> type[StrictModel]:
        """The ``[circuit]`` table of a circuit this protocol runs: derived from the circuit's
        parameter record (:func:`neurosim.circuit.config_model`) unless the protocol names one."""
        if circuit_name in self.circuit_configs:
            return self.circuit_configs[circuit_name]
        from neurosim.circuit import config_model
        from neurosim.registry import circuit

        return config_model(circuit(circuit_name))

    def run(
        self,
        run: RunConfig,
        protocol: StrictModel,
        circuit: StrictModel,
        progress: Callable[[int, str], None] | None = None,
    ) -> ProtocolResult:
        """Run the protocol: check the tables' types, seed numpy, torch and Python from the run's
        seed, and call :meth:`execute`; ``progress(n, message)`` advances a progress bar."""
        if not isinstance(protocol, self.protocol_config):
            raise NeurosimError(
                f"Protocol {self.name!r} needs a {self.protocol_config.__name__} table, got "
                f"{type(protocol).__name__}."
            )
        rng = seed_everything(run.seed)
        ctx = RunContext(run, protocol, circuit, rng, progress or _no_progress)
        return self.execute(ctx)

    def execute(self, ctx: RunContext) -> ProtocolResult:
        """The protocol's own steps (training, checks, records)."""
        raise NotImplementedError

    def total_steps(self, run: RunConfig, protocol: StrictModel) -> int:
        """How many progress steps :meth:`run` reports (for the progress bar)."""
        return int(run.epochs or self.default_epochs)


class TorchModelProtocol(Protocol):
    """Base for protocols that train a PyTorch model and run no circuit (``neurosim run icf``):
    no circuit, no data set (they make their own worlds), no Brian2 device, and training measured
    in optimiser steps, so ``--epochs`` other than 1 is refused with a hint."""

    circuits: ClassVar[tuple[str, ...]] = ()
    circuit_configs: ClassVar[dict[str, type[StrictModel]]] = {}
    datasets: ClassVar[tuple[str | None, ...]] = (None,)
    readouts: ClassVar[tuple[str, ...]] = ("rate",)
    default_epochs: ClassVar[int] = 1

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        """Refuse ``--epochs`` (the model trains for ``protocol.steps`` optimiser steps)."""
        if run.epochs not in (None, 1):
            steps = getattr(protocol, "steps", None)
            hint = f" and set e.g. --set protocol.steps={steps * run.epochs}" if steps else ""
            raise ConfigError(
                f"Protocol {self.name!r} trains for protocol.steps optimiser steps, not epochs; "
                f"drop --epochs {run.epochs}{hint}."
            )

"""The small interface every protocol shares, so the command line, sweeps and comparisons treat
all of them alike (DESIGN.md §2, after scikit-learn's one interface for many algorithms).

A protocol declares its configuration tables (pydantic models), the circuits it accepts, and a
``run`` that returns a :class:`ProtocolResult`: run metrics, the recording as neo-ready segments,
final weights, and the arrays from which ``analysis/`` computes the protocol's statistics and
figures. Putting those together and writing them to disk is the command line's job
(:mod:`neurosim.cli.pipeline`), since only it may import ``analysis/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurosim.config import RunConfig, StrictModel
from neurosim.errors import ConfigError
from neurosim.recording import SegmentRecord


@dataclass
class ProtocolResult:
    """Everything a run produced, before it is written to the results folder."""

    metrics: dict[str, Any]
    segments: list[SegmentRecord] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


class Protocol:
    """Base class: subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    circuits: ClassVar[tuple[str, ...]]
    datasets: ClassVar[tuple[str | None, ...]] = (None,)
    readouts: ClassVar[tuple[str, ...]] = ("spiking",)
    default_epochs: ClassVar[int] = 1
    protocol_config: ClassVar[type[StrictModel]]
    circuit_configs: ClassVar[dict[str, type[StrictModel]]]

    def check(self, run: RunConfig, protocol: StrictModel, circuit: StrictModel) -> None:
        """Checks across configuration tables, made before anything is built or written."""

    def run(
        self,
        run: RunConfig,
        protocol: StrictModel,
        circuit: StrictModel,
        progress: Callable[[int, str], None] | None = None,
    ) -> ProtocolResult:
        """Run the protocol; ``progress(n, message)`` advances a progress bar by ``n`` steps."""
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

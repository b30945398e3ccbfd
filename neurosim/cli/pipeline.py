"""Run a protocol end to end: resolve and validate the configuration, run, analyse, write results.

This is the one place (with the argument parser) that may import every package (DESIGN.md §2):
protocols produce arrays and recordings, ``analysis/`` turns them into statistics and figures,
and :mod:`neurosim.results` writes each file atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import circuits  # noqa: F401  (registers the circuits)
import protocols  # noqa: F401  (registers the protocols)
from analysis import compare as acmp
from analysis import consciousness_prior as acp
from analysis import dendritic_prediction as adp
from analysis import equilibrium_propagation as aep
from analysis import icf as aicf
from analysis import microcircuit as amc
from neurosim import datasets, presets, recording, results
from neurosim.config import RunConfig, StrictModel, check_sections, merge, validate_table
from neurosim.devices import resolve_device
from neurosim.engine import default_threads
from neurosim.errors import ConfigError
from neurosim.protocol import Protocol, ProtocolResult
from neurosim.registry import CIRCUITS, PROTOCOLS, lookup


class NoCircuit(StrictModel):
    """The (empty) circuit table of a protocol that runs no circuit: any key is an error."""


@dataclass
class ResolvedConfig:
    """A validated configuration: the run table, the protocol's and the circuit's."""

    protocol_obj: Protocol
    run: RunConfig
    protocol: StrictModel
    circuit: StrictModel

    def as_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain data (written as ``config.toml``)."""
        return {
            "run": self.run.model_dump(),
            "protocol": self.protocol.model_dump(),
            "circuit": self.circuit.model_dump(),
        }


def with_preset(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The raw configuration on top of its preset: the one named in ``run.preset``, or the
    protocol's default for the data set and read-out asked for. A preset made for another data
    set or read-out than the one asked for is refused."""
    check_sections(raw, ("run", "protocol", "circuit"))
    run = validate_table(RunConfig, raw.get("run", {}), "run")
    assert isinstance(run, RunConfig)
    proto: Protocol = lookup(PROTOCOLS, "protocol", run.protocol).target()
    name = run.preset or proto.preset_for(run, raw)
    if name is None:
        return dict(raw)
    tables = presets.load(proto, name)
    fixed = tables.get("run", {})
    for key in ("protocol", "dataset", "readout", "circuit"):
        asked = getattr(run, key)
        if key in fixed and asked is not None and fixed[key] != asked:
            raise ConfigError(
                f"Preset {name!r} of {proto.name!r} is made for {key} {fixed[key]!r}, not "
                f"{asked!r}; choose another preset (`neurosim list`) or leave --preset out."
            )
    return merge(merge(tables, raw), {"run": {"preset": name}})


def resolve(raw: Mapping[str, Any]) -> ResolvedConfig:
    """Validate a raw configuration (preset, file and overrides) into a
    :class:`ResolvedConfig`."""
    raw = with_preset(raw)
    run = validate_table(RunConfig, raw.get("run", {}), "run")
    assert isinstance(run, RunConfig)
    proto_cls = lookup(PROTOCOLS, "protocol", run.protocol).target
    proto: Protocol = proto_cls()
    if not proto.circuits:  # a PyTorch model trained on its own (no Brian2 circuit)
        if run.circuit is not None:
            raise ConfigError(
                f"Protocol {proto.name!r} trains a PyTorch model and runs no circuit; "
                f"drop --circuit {run.circuit}."
            )
        if run.device is not None:
            raise ConfigError(
                f"Protocol {proto.name!r} trains a PyTorch model on the CPU; it takes no Brian2 "
                f"device (drop --device {run.device})."
            )
        return _resolve_rest(proto, run, raw, None)
    circuit_name = run.circuit or proto.default_circuit(raw)
    lookup(CIRCUITS, "circuit", circuit_name)
    if circuit_name not in proto.circuits:
        raise ConfigError(
            f"Protocol {proto.name!r} does not run circuit {circuit_name!r}; it runs: "
            f"{', '.join(proto.circuits)}."
        )
    return _resolve_rest(proto, run, raw, circuit_name)


def _resolve_rest(
    proto: Protocol, run: RunConfig, raw: Mapping[str, Any], circuit_name: str | None
) -> ResolvedConfig:
    """Data set, read-out, device and the protocol's and circuit's tables (``circuit_name`` None:
    the protocol runs no circuit and its ``[circuit]`` table must stay empty)."""
    if datasets.kind(run.dataset) not in proto.datasets:
        allowed = (
            ", ".join("npz:PATH" if d == "npz" else d for d in proto.datasets if d)
            or "no data set (it makes its inputs)"
        )
        raise ConfigError(
            f"Protocol {proto.name!r} does not take data set {run.dataset!r}; it takes: {allowed}."
        )
    readout = run.readout or proto.readouts[0]
    if readout not in proto.readouts:
        raise ConfigError(
            f"Protocol {proto.name!r} has no {readout!r} read-out; "
            f"choose {', '.join(proto.readouts)}."
        )
    if run.dataset is None and run.input_code is not None:
        raise ConfigError(
            f"Protocol {proto.name!r} takes no data set; input_code {run.input_code!r} has "
            "nothing to encode."
        )
    run = run.model_copy(
        update={
            "input_code": datasets.default_code(run.dataset)
            if run.dataset is not None and run.input_code is None
            else run.input_code,
            "circuit": circuit_name,
            "readout": readout,
            "epochs": run.epochs or proto.default_epochs,
            "device": resolve_device(run.device) if circuit_name else None,
        }
    )
    protocol_cfg = validate_table(proto.protocol_config, raw.get("protocol", {}), "protocol")
    circuit_cls = proto.circuit_table(circuit_name) if circuit_name else NoCircuit
    circuit_cfg = validate_table(circuit_cls, raw.get("circuit", {}), "circuit")
    if run.threads and run.device != "cpp_standalone":
        raise ConfigError(
            f"threads = {run.threads} sets the OpenMP threads of cpp_standalone builds, but this "
            f"run uses {run.device or 'no Brian2 device'}; drop --threads or use "
            "--device cpp_standalone."
        )
    proto.check(run, protocol_cfg, circuit_cfg)
    return ResolvedConfig(proto, run, protocol_cfg, circuit_cfg)


def build_raw(
    file_config: Mapping[str, Any] | None, cli_run: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """File < command-line options (``--seed`` etc.) < ``--set`` overrides."""
    raw = merge(file_config or {}, {"run": {k: v for k, v in cli_run.items() if v is not None}})
    return merge(raw, overrides)


#: each protocol's statistics and figures, computed by ``analysis/`` from the protocol's arrays
ANALYSES: dict[str, Callable[[ProtocolResult, Path], dict[str, Any]]] = {
    "compare": lambda result, figures: acmp.analyse(result.data, figures),
    "consciousness-prior": lambda result, figures: acp.analyse(result.data, figures),
    "dendritic-prediction": lambda result, figures: adp.analyse(result.data, figures),
    "equilibrium-propagation": lambda result, figures: aep.analyse(result.data, figures),
    "feedback-cancellation": lambda result, figures: amc.analyse(
        result.data, float(result.metrics["pattern_ms"]), figures
    ),
    "icf": lambda result, figures: aicf.analyse(result.data, figures),
}


def analyse(protocol_name: str, result: ProtocolResult, figures_dir: Path) -> dict[str, Any]:
    """The protocol's statistics (into metrics) and figures, computed by ``analysis/``."""
    analysis = ANALYSES.get(protocol_name)
    return analysis(result, figures_dir) if analysis else {}


def execute(
    resolved: ResolvedConfig,
    figures_dir: Path,
    progress: Callable[[int, str], None] | None = None,
) -> Any:
    """Run one configured experiment and analyse it (figures into ``figures_dir``); returns a
    :class:`neurosim.api.RunResult` held in memory."""
    from neurosim.api import RunResult

    start = time.perf_counter()
    with default_threads(resolved.run.threads):  # every Simulation the protocol builds
        result = resolved.protocol_obj.run(
            resolved.run, resolved.protocol, resolved.circuit, progress
        )
    metrics: dict[str, Any] = {
        "protocol": resolved.run.protocol,
        "circuit": resolved.run.circuit,
        "device": resolved.run.device,
        "seed": resolved.run.seed,
        **result.metrics,
    }
    if progress is not None:
        progress(0, "analysis, figures and recording")
    metrics.update(analyse(resolved.run.protocol, result, figures_dir))
    block = recording.to_block(
        result.segments,
        name=f"{resolved.run.protocol} / {resolved.run.circuit}",
        annotations={"protocol": resolved.run.protocol, "seed": resolved.run.seed},
    )
    provenance = {"seed": resolved.run.seed, "versions": results.versions()}
    figures = {p.stem: p for p in sorted(figures_dir.glob("*.png"))} if figures_dir.is_dir() else {}
    metrics["wall_seconds"] = time.perf_counter() - start
    return RunResult(
        metrics=metrics,
        weights=dict(result.weights),
        block=block,
        figures=figures,
        config={**resolved.as_dict(), "provenance": provenance},
    )


def run_experiment(
    resolved: ResolvedConfig,
    out_dir: str | Path,
    progress: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Run one configured experiment and write its results folder; returns the metrics."""
    out = results.prepare_output_dir(out_dir)
    result = execute(resolved, out / "figures", progress)
    result.save(out)
    return result.metrics

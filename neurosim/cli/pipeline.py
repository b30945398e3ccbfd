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
from analysis import dendritic_prediction as adp
from analysis import microcircuit as amc
from neurosim import recording, results
from neurosim.config import RunConfig, StrictModel, check_sections, merge, validate_table
from neurosim.devices import resolve_device
from neurosim.errors import ConfigError
from neurosim.protocol import Protocol, ProtocolResult
from neurosim.registry import CIRCUITS, PROTOCOLS, lookup


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


def resolve(raw: Mapping[str, Any]) -> ResolvedConfig:
    """Validate a raw configuration (file merged with overrides) into a :class:`ResolvedConfig`."""
    check_sections(raw, ("run", "protocol", "circuit"))
    run = validate_table(RunConfig, raw.get("run", {}), "run")
    assert isinstance(run, RunConfig)
    proto_cls = lookup(PROTOCOLS, "protocol", run.protocol).target
    proto: Protocol = proto_cls()
    circuit_name = run.circuit or proto.circuits[0]
    lookup(CIRCUITS, "circuit", circuit_name)
    if circuit_name not in proto.circuits:
        raise ConfigError(
            f"Protocol {proto.name!r} does not run circuit {circuit_name!r}; it runs: "
            f"{', '.join(proto.circuits)}."
        )
    if run.dataset not in proto.datasets:
        allowed = ", ".join(d for d in proto.datasets if d) or "no data set (it makes its inputs)"
        raise ConfigError(
            f"Protocol {proto.name!r} does not take data set {run.dataset!r}; it takes: {allowed}."
        )
    readout = run.readout or proto.readouts[0]
    if readout not in proto.readouts:
        raise ConfigError(
            f"Protocol {proto.name!r} has no {readout!r} read-out; "
            f"choose {', '.join(proto.readouts)}."
        )
    run = run.model_copy(
        update={
            "circuit": circuit_name,
            "readout": readout,
            "epochs": run.epochs or proto.default_epochs,
            "device": resolve_device(run.device),
        }
    )
    protocol_cfg = validate_table(proto.protocol_config, raw.get("protocol", {}), "protocol")
    circuit_cfg = validate_table(
        proto.circuit_configs[circuit_name], raw.get("circuit", {}), "circuit"
    )
    proto.check(run, protocol_cfg, circuit_cfg)
    return ResolvedConfig(proto, run, protocol_cfg, circuit_cfg)


def build_raw(
    file_config: Mapping[str, Any] | None, cli_run: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """File < command-line options (``--seed`` etc.) < ``--set`` overrides."""
    raw = merge(file_config or {}, {"run": {k: v for k, v in cli_run.items() if v is not None}})
    return merge(raw, overrides)


def analyse(protocol_name: str, result: ProtocolResult, figures_dir: Path) -> dict[str, Any]:
    """The protocol's statistics (into metrics) and figures, computed by ``analysis/``."""
    if protocol_name == "feedback-cancellation":
        return amc.analyse(result.data, float(result.metrics["pattern_ms"]), figures_dir)
    if protocol_name != "dendritic-prediction":
        return {}
    data = result.data
    rate = adp.teacher_rate(
        data["teacher_gE"], data["teacher_gI"], data["reversal"], data["rate_function"]
    )
    target = rate[data["pattern_step"]]
    n = data["samples_per_repetition"] * data["correlation_repetitions"]
    per_rep = adp.correlation_per_repetition(
        data["prediction"], target, data["samples_per_repetition"]
    )
    test_corr = adp.pearson(data["test_prediction"], rate[data["test_pattern_step"]])
    stats = {
        "rate_correlation_start": adp.pearson(data["prediction"][:n], target[:n]),
        "rate_correlation_end": adp.pearson(data["prediction"][-n:], target[-n:]),
        "rate_correlation_test": test_corr,
        "rate_correlation_per_repetition": per_rep,
    }
    s = data["samples_per_repetition"]
    adp.plot_learning_curve(per_rep, figures_dir / "learning_curve.png", test_corr)
    adp.plot_prediction_traces(
        data["pattern_t_ms"],
        data["prediction"][:s],
        data["prediction"][-s:],
        target[:s],
        figures_dir / "prediction_traces.png",
    )
    adp.plot_weights(data["weights_t"], data["weights"], figures_dir / "weights.png")
    return stats


def run_experiment(
    resolved: ResolvedConfig,
    out_dir: str | Path,
    progress: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Run one configured experiment and write its results folder; returns the metrics."""
    out = results.prepare_output_dir(out_dir)
    start = time.perf_counter()
    result = resolved.protocol_obj.run(resolved.run, resolved.protocol, resolved.circuit, progress)
    metrics: dict[str, Any] = {
        "protocol": resolved.run.protocol,
        "circuit": resolved.run.circuit,
        "device": resolved.run.device,
        "seed": resolved.run.seed,
        **result.metrics,
    }
    if progress is not None:
        progress(0, "analysis, figures and recording")
    metrics.update(analyse(resolved.run.protocol, result, out / "figures"))
    block = recording.to_block(
        result.segments,
        name=f"{resolved.run.protocol} / {resolved.run.circuit}",
        annotations={"protocol": resolved.run.protocol, "seed": resolved.run.seed},
    )
    recording.write_nix(block, out / "recording.nix")
    results.write_npz(out / "weights.npz", result.weights)
    provenance = {"seed": resolved.run.seed, "versions": results.versions()}
    results.write_toml(out / "config.toml", {**resolved.as_dict(), "provenance": provenance})
    metrics["wall_seconds"] = time.perf_counter() - start
    results.write_json(out / "metrics.json", metrics)
    return metrics

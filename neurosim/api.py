"""The Python API: what the ``neurosim`` command does, as functions that return result objects
(DESIGN.md §2). The command line is a thin layer over these.

>>> import neurosim
>>> result = neurosim.run("equilibrium-propagation", dataset="digits", epochs=2,
...                       protocol={"n_train": 200, "n_test": 100})
>>> result.metrics["test_accuracy"], result.figures
>>> result.save("results/ep")

Settings come as in the command line: a preset (``preset=``, default by data set and read-out),
a configuration (``config=``: a TOML path or a mapping of tables), the run table's keys as keyword
arguments (``dataset``, ``readout``, ``circuit``, ``device``, ``seed``, ``epochs``,
``threads``), the ``[protocol]`` table's keys as ``protocol={...}``, and any dotted key as
``overrides={"circuit.sizes": [64, 50, 10]}`` (``--set``). Unknown keys and bad values are one clear
:class:`~neurosim.errors.ConfigError` before anything runs.

This module and :mod:`neurosim.cli` are the only parts of ``neurosim`` that import the packages
above it (circuits, protocols, analysis); ``import neurosim`` imports it lazily.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurosim import recording, results
from neurosim.config import load_toml, merge, parse_overrides
from neurosim.errors import ConfigError

Progress = Callable[[int, str], None]


@dataclass
class RunResult:
    """What :func:`run` produced: metrics, final weights, the recording, figures, the resolved
    configuration, and the folder it was written to (None until :meth:`save`)."""

    metrics: dict[str, Any]
    weights: dict[str, np.ndarray]
    block: Any  # neo.Block
    figures: dict[str, Path]
    config: dict[str, Any]
    out: Path | None = None
    #: the temporary folder holding the figures of a run not yet saved (removed by :meth:`save`)
    workdir: Path | None = field(default=None, repr=False)

    def save(self, directory: str | Path) -> Path:
        """Write the results folder (metrics.json, weights.npz, recording.nix, config.toml,
        figures/), each file atomically; returns the folder."""
        out = results.prepare_output_dir(directory)
        if self.out is not None and Path(self.out).resolve() == out.resolve():
            return out
        figures: dict[str, Path] = {}
        for name, src in self.figures.items():
            dest = out / "figures" / Path(src).name
            if Path(src).resolve() != dest.resolve():
                results.atomic_write(dest, lambda tmp, s=src: shutil.copyfile(s, tmp))
            figures[name] = dest
        _write_run_files(self, out)
        self.figures, self.out = figures, out
        if self.workdir is not None:  # the figures now live in ``out``
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        return out


def _write_run_files(result: RunResult, out: Path) -> None:
    recording.write_nix(result.block, out / "recording.nix")
    results.write_npz(out / "weights.npz", result.weights)
    results.write_toml(out / "config.toml", result.config)
    results.write_json(out / "metrics.json", result.metrics)


def _tables(
    protocol_name: str,
    config: str | Path | Mapping[str, Any] | None,
    run_keys: Mapping[str, Any],
    protocol: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | Sequence[str] | None,
) -> dict[str, Any]:
    """The raw configuration: file < keyword arguments < ``protocol`` table < dotted overrides."""
    from neurosim.cli import pipeline

    file_config = load_toml(config) if isinstance(config, str | Path) else dict(config or {})
    cli_run = {"protocol": protocol_name, **run_keys}
    extra: dict[str, Any] = {"protocol": dict(protocol)} if protocol else {}
    if isinstance(overrides, Mapping):
        extra = merge(extra, nest(overrides))
    elif overrides:
        extra = merge(extra, parse_overrides(overrides))
    return pipeline.build_raw(file_config, cli_run, extra)


def nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"circuit.sizes": [..], "seed": 2}`` -> ``{"circuit": {"sizes": [..]}, "run":
    {"seed": 2}}`` (undotted keys belong to the run table, as with ``--set``)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".") if "." in key else ["run", key]
        if not all(parts):
            raise ConfigError(f"Override key {key!r} has an empty part.")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override key {key!r} conflicts with another override.")
        node[parts[-1]] = value
    return out


@contextmanager
def _progress_bar(total: int, desc: str, show: bool | Progress):
    """A tqdm bar as a ``progress(n, message)`` callback (or the caller's own callback)."""
    if callable(show):
        yield show
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, disable=not show, unit="run") as bar:

        def advance(n: int, message: str) -> None:
            bar.set_postfix_str(message)
            if n:
                bar.update(n)

        yield advance


def run(
    protocol_name: str,
    /,
    *,
    preset: str | None = None,
    circuit: str | None = None,
    dataset: str | None = None,
    readout: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    epochs: int | None = None,
    threads: int | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    protocol: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    out: str | Path | None = None,
    progress: bool | Progress = True,
) -> RunResult:
    """Run a protocol (``neurosim run``) and return its :class:`RunResult`; with ``out`` the
    results folder is written as the run ends, otherwise call ``.save(dir)``."""
    from neurosim.cli import pipeline

    run_keys = {
        "preset": preset, "circuit": circuit, "dataset": dataset, "readout": readout,
        "device": device, "seed": seed, "epochs": epochs, "threads": threads,
    }  # fmt: skip
    raw = _tables(protocol_name, config, run_keys, protocol, overrides)
    resolved = pipeline.resolve(raw)
    target = results.prepare_output_dir(out) if out is not None else None
    work = target or Path(tempfile.mkdtemp(prefix="neurosim-run-"))
    total = resolved.protocol_obj.total_steps(resolved.run, resolved.protocol)
    with _progress_bar(total, resolved.run.protocol, progress) as advance:
        result = pipeline.execute(resolved, work / "figures", advance)
    if target is not None:
        _write_run_files(result, target)
        result.out = target
    else:
        result.workdir = work
    return result


@dataclass
class AnalysisResult:
    """What :func:`analyze` produced: the spike-train statistics, figures and the folder."""

    statistics: dict[str, Any]
    figures: dict[str, Path]
    out: Path


def analyze(
    path: str | Path, *, out: str | Path | None = None, bin_size_s: float = 0.05
) -> AnalysisResult:
    """Spike-train statistics and figures of a NIX or NWB recording (``neurosim analyze``);
    written to ``out`` (default: a folder beside the file, e.g. ``a.nwb`` -> ``a-nwb-analysis``)."""
    from analysis.spiketrains import analyze_file

    path = Path(path)
    default = path.resolve().parent / f"{path.stem}-{path.suffix.lstrip('.').lower()}-analysis"
    folder = Path(out) if out is not None else default
    stats = analyze_file(path, folder, bin_size_s=bin_size_s)
    figures = {Path(name).stem: folder / "figures" / name for name in stats.get("figures", [])}
    return AnalysisResult(statistics=stats, figures=figures, out=folder)


@dataclass
class PredictResult:
    """What :func:`predict` produced: per experiment its summary (effect, interval, verdict),
    the run's information, the report and the folder."""

    experiments: dict[str, dict[str, Any]]
    info: dict[str, Any]
    report: Path
    out: Path

    @property
    def failed(self) -> list[str]:
        """Experiments that raised."""
        return [n for n, s in self.experiments.items() if s.get("status") != "ok"]


def predict(
    only: Sequence[str] = (),
    *,
    seeds: int | None = None,
    min_seeds: int | None = None,
    quick: bool = False,
    device: str | None = None,
    out: str | Path | None = None,
    progress: bool | Progress = True,
    command: str = "neurosim.predict(...)",
) -> PredictResult:
    """Run the virtual experiments over seeds (``neurosim predict``) and write predictions.json,
    recordings, figures and report.html into ``out`` (default results/predict-TIMESTAMP);
    below ``min_seeds`` seeds (default 5) every verdict is "too few seeds to judge"."""
    from neurosim.cli import predict as cli_predict

    names, n_seeds, device = cli_predict.selection(only, seeds, device)
    cli_predict.min_seeds_of(min_seeds)  # checked before anything runs
    folder = results.prepare_output_dir(out or f"results/predict-{time.strftime('%Y%m%d-%H%M%S')}")
    with _progress_bar(len(names) * n_seeds, "predict", progress) as advance:
        info, summaries = cli_predict.run_all(
            names, n_seeds, quick=quick, device=device, out=folder, advance=advance,
            command=command, min_seeds=min_seeds,
        )  # fmt: skip
    return PredictResult(
        experiments={s["name"]: s for s in summaries},
        info=info,
        report=folder / "report.html",
        out=folder,
    )


@dataclass
class SweepResult:
    """What :func:`sweep` produced: one row per run, the totals and the folder."""

    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    out: Path
    figure: Path | None = None
    #: why the summary figure is missing, where it is
    note: str | None = None
    plan: Any = field(default=None, repr=False)


def sweep(
    config: str | Path,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """A grid of runs on a Dask cluster (``neurosim sweep``), resumable; see the sweep file
    format in ``neurosim sweep --help``."""
    from neurosim.cli import sweep as cli_sweep

    return cli_sweep.run_sweep(
        Path(config), out=out, workers=workers, scheduler=scheduler, progress=progress
    )

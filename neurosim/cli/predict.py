"""``neurosim predict``: run the virtual experiments over seeds and write predictions for the lab.

``neurosim predict [--only NAME]... [--seeds N] [--min-seeds M] [--quick] [--device D]
[--out DIR]`` runs every registered virtual experiment (``protocols/experiments/``; or those named
with ``--only``) on seeds 1..N (default 5) and writes into ``DIR`` (below M seeds, default 5,
every verdict reads "too few seeds to judge"):

- ``recordings/<experiment>/<condition>.nix`` and ``.nwb``: one file per condition, one neo
  segment per recorded seed (annotated with its seed and condition);
- ``figures/<experiment>.png`` (and ``-raster.png``): the figures of :mod:`analysis.predictions`;
- ``predictions.json``: per experiment its declaration, the effect (mean, sd, Cohen's d_z,
  bootstrap 95 % interval, share of seeds with the predicted sign, seeds needed for 80 % power,
  verdict), in percent change and Hz where the experiment declares them, the conditions'
  statistics, the per-seed values and the paths of its figures and recordings;
- ``report.html``: the self-contained report of :mod:`analysis.report`.

One :class:`ExperimentSettings` serves the whole invocation, so experiments that share a trained
circuit train it once per seed. An experiment that raises is recorded as failed (its error and
the seeds that finished go into ``predictions.json`` and the report) and the others go on; the
exit status is then 1. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neurosim.errors import NeurosimError

#: seeds per experiment when ``--seeds`` is not given
DEFAULT_SEEDS = 5


def _safe(name: str) -> str:
    """A file-name-safe form of an experiment or condition name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "unnamed"


def _selected(only: Sequence[str], known: Sequence[str]) -> list[str]:
    """The experiments to run, in the order given (default: all, sorted), or one clear error."""
    if not only:
        if not known:
            raise NeurosimError("No virtual experiments are registered in protocols/experiments.")
        return sorted(known)
    unknown = [name for name in only if name not in known]
    if unknown:
        listed = ", ".join(repr(n) for n in dict.fromkeys(unknown))
        raise NeurosimError(
            f"Unknown virtual experiment(s) {listed}; known: {', '.join(sorted(known)) or 'none'}."
        )
    return list(dict.fromkeys(only))


def _write_recordings(
    name: str,
    conditions: Sequence[str],
    outcomes: Sequence[Any],
    out: Path,
    run_annotations: dict[str, Any],
) -> dict[str, dict[str, str]]:
    """Write one NIX and one NWB file per condition (one segment per recorded seed segment);
    returns ``{condition: {"nix": path, "nwb": path}}`` with paths relative to ``out``."""
    from neurosim import recording

    folder = out / "recordings" / _safe(name)
    stems = {condition: _safe(condition) for condition in conditions}
    if len(set(stems.values())) != len(stems):
        raise NeurosimError(
            f"Experiment {name!r} has conditions whose file names collide: {', '.join(conditions)}."
        )
    written: dict[str, dict[str, str]] = {}
    for condition in conditions:
        segments = []
        for outcome in sorted(outcomes, key=lambda o: o.seed):
            for segment in outcome.recordings.get(condition, []):
                annotations = {
                    **segment.annotations,
                    "seed": int(outcome.seed),
                    "condition": condition,
                    "experiment": name,
                }
                segments.append(dataclasses.replace(segment, annotations=annotations))
        if not segments:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        block = recording.to_block(
            segments,
            name=f"{name}: {condition}",
            annotations={
                **run_annotations,
                "experiment": name,
                "condition": condition,
                "seeds": sorted({int(o.seed) for o in outcomes}),
            },
        )
        files = {}
        for fmt, writer in (("nix", recording.write_nix), ("nwb", recording.write_nwb)):
            path = folder / f"{stems[condition]}.{fmt}"
            writer(block, path)
            files[fmt] = path.relative_to(out).as_posix()
        written[condition] = files
    return written


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, NeurosimError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _run_experiment(
    name: str,
    n_seeds: int,
    settings: Any,
    out: Path,
    run_annotations: dict[str, Any],
    advance: Callable[[int, str], None],
    min_seeds: int,
) -> dict[str, Any]:
    """Run one experiment over seeds 1..n_seeds and write its recordings and figures; returns its
    summary. Any exception is caught and recorded in the summary (``status: failed``)."""
    from analysis.predictions import draw_figures, summarize_experiment
    from neurosim.experiment import lookup_experiment

    outcomes: list[Any] = []
    declaration: dict[str, Any] = {"name": name}
    error: str | None = None
    trace: str | None = None
    stage = "setting the experiment up"
    try:
        experiment = lookup_experiment(name)()
        declaration = experiment.describe()
        for seed in range(1, n_seeds + 1):
            stage = f"seed {seed}"
            advance(0, f"{name}, seed {seed}")

            def progress(message: str, seed: int = seed) -> None:
                advance(0, f"{name}, seed {seed}: {message}")

            outcome = experiment.run_seed(seed, settings, progress)
            if outcome.seed != seed:
                raise NeurosimError(
                    f"Experiment {name!r} returned an outcome for seed {outcome.seed} "
                    f"when asked for seed {seed}."
                )
            outcome.check(experiment)
            outcomes.append(outcome)
            advance(1, f"{name}, seed {seed} done")
    except Exception as exc:  # recorded, never lost: the other experiments go on
        error = f"{stage} failed: {_error_text(exc)}"
        trace = traceback.format_exc()
        advance(n_seeds - len(outcomes), f"{name} failed")

    for key, default in (("title", name), ("conditions", []), ("expected_sign", 1)):
        declaration.setdefault(key, default)
    try:
        summary = summarize_experiment(declaration, outcomes, error=error, min_seeds=min_seeds)
    except Exception as exc:  # e.g. a non-finite condition value: keep the per-seed values
        error = "; ".join(filter(None, [error, f"the statistics failed: {_error_text(exc)}"]))
        trace = (trace or "") + traceback.format_exc()
        summary = summarize_experiment(declaration, outcomes, error=error, min_seeds=min_seeds)
    problems = [error] if error else []
    try:
        if outcomes:
            summary["recordings"] = _write_recordings(
                name, declaration["conditions"], outcomes, out, run_annotations
            )
    except Exception as exc:
        problems.append(f"writing the recordings failed: {_error_text(exc)}")
        trace = (trace or "") + traceback.format_exc()
    try:
        figures = draw_figures(summary, outcomes, out / "figures", _safe(name))
        summary["figures"] = [
            {"path": f.path.relative_to(out).as_posix(), "caption": f.caption} for f in figures
        ]
    except Exception as exc:
        problems.append(f"drawing the figures failed: {_error_text(exc)}")
        trace = (trace or "") + traceback.format_exc()
    if problems:
        summary["status"] = "failed"
        summary["error"] = "; ".join(problems)
        summary["traceback"] = trace
    return summary


def _table(summaries: Sequence[dict[str, Any]]) -> str:
    """The closing table: experiment, effect, interval, percent change, seeds for 80 % power,
    verdict."""
    rows = [("experiment", "effect (mean)", "95% interval", "change", "n for 80% power", "verdict")]
    for s in summaries:
        effect = s.get("effect")
        units = s.get("effect_units") or ""
        units = "" if units == "dimensionless" else f" {units}"
        if effect is None:
            rows.append((s["name"], "-", "-", "-", "-", "FAILED"))
            continue
        verdict = effect["verdict"] + (" (but FAILED afterwards)" if s["status"] != "ok" else "")
        change = s.get("percent_change") or {}
        needed = effect.get("seeds_for_power")
        rows.append(
            (
                s["name"],
                f"{effect['mean']:+.4g}{units}",
                f"[{effect['ci_low']:.4g}, {effect['ci_high']:.4g}]",
                f"{change['mean']:+.3g} %" if "mean" in change else "-",
                "-" if needed is None else str(needed),
                verdict,
            )
        )
    last = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < last else cell for i, cell in enumerate(row))
        for row in rows
    )


def _command(args: argparse.Namespace) -> str:
    """The invocation, rebuilt from the parsed options (for the report's header)."""
    words = ["neurosim", "predict"]
    for name in args.only or []:
        words += ["--only", name]
    if args.seeds is not None:
        words += ["--seeds", str(args.seeds)]
    if args.min_seeds is not None:
        words += ["--min-seeds", str(args.min_seeds)]
    if args.quick:
        words.append("--quick")
    if args.device:
        words += ["--device", args.device]
    if args.out:
        words += ["--out", args.out]
    return shlex.join(words)


def _write_predictions(
    out: Path,
    run_info: dict[str, Any],
    summaries: Sequence[dict[str, Any]],
    started: float,
    *,
    complete: bool,
) -> None:
    """Write ``predictions.json`` (atomically) with the experiments finished so far."""
    from neurosim import results

    run_info["wall_seconds"] = time.time() - started
    run_info["complete"] = complete
    run_info["failed"] = [s["name"] for s in summaries if s["status"] != "ok"]
    results.write_json(
        out / "predictions.json",
        {"run": run_info, "experiments": {s["name"]: s for s in summaries}},
    )


def selection(
    only: Sequence[str], seeds: int | None, device: str | None
) -> tuple[list[str], int, str]:
    """The experiments, the number of seeds and the device of an invocation, checked."""
    import protocols.experiments  # noqa: F401  (registers the experiments)
    from neurosim.devices import resolve_device
    from neurosim.experiment import EXPERIMENTS

    names = _selected(list(only or []), list(EXPERIMENTS))
    n_seeds = DEFAULT_SEEDS if seeds is None else seeds
    if n_seeds < 2:
        raise NeurosimError(
            f"--seeds must be at least 2 (an interval over seeds needs two), got {n_seeds}."
        )
    return names, n_seeds, resolve_device(device)


def min_seeds_of(min_seeds: int | None) -> int:
    """The fewest seeds on which a verdict is given (default :data:`analysis.effects.MIN_SEEDS`),
    checked."""
    from analysis.effects import MIN_SEEDS, check_min_seeds

    try:
        return check_min_seeds(MIN_SEEDS if min_seeds is None else min_seeds)
    except NeurosimError as exc:
        raise NeurosimError(f"--min-seeds: {exc}") from None


def run_all(
    names: Sequence[str],
    n_seeds: int,
    *,
    quick: bool,
    device: str,
    out: Path,
    advance: Callable[[int, str], None],
    command: str,
    min_seeds: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the experiments on seeds 1..n_seeds into ``out`` (predictions.json after each,
    report.html at the end); returns the run's information and the experiments' summaries."""
    from analysis.report import write_report
    from neurosim import results
    from neurosim.experiment import ExperimentSettings

    settings = ExperimentSettings(quick=bool(quick), device=device)
    minimum = min_seeds_of(min_seeds)
    started = time.time()
    run_info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "command": command,
        "experiments": list(names),
        "seeds": list(range(1, n_seeds + 1)),
        "min_seeds": minimum,
        "quick": bool(quick),
        "device": device,
        "versions": results.versions(),
    }
    run_annotations = {"quick": bool(quick), "device": device}
    summaries: list[dict[str, Any]] = []
    for name in names:
        summaries.append(
            _run_experiment(name, n_seeds, settings, out, run_annotations, advance, minimum)
        )
        # after every experiment, so an interrupted run keeps what it measured
        _write_predictions(out, run_info, summaries, started, complete=False)
    _write_predictions(out, run_info, summaries, started, complete=True)
    write_report(out / "report.html", run_info, summaries)
    return run_info, summaries


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``neurosim predict``; returns the exit status (1 when an experiment failed)."""
    from neurosim import api

    result = api.predict(
        args.only or (),
        seeds=args.seeds,
        min_seeds=args.min_seeds,
        quick=bool(args.quick),
        device=args.device,
        out=args.out,
        progress=not args.no_progress,
        command=_command(args),
    )
    summaries = list(result.experiments.values())
    print(_table(summaries))
    for summary in summaries:
        if summary["status"] != "ok":
            print(f"{summary['name']}: FAILED: {summary['error']}")
    print(
        f"wall time {result.info['wall_seconds']:.1f} s; results written to {result.out.resolve()}"
    )
    return 1 if result.failed else 0

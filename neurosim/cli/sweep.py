"""``neurosim sweep CONFIG``: a grid or list of runs executed as Dask tasks, resumable.

The sweep file is a ``neurosim run --config`` file (``[run]``, ``[protocol]``, ``[circuit]``: the
base configuration every run starts from) plus a ``[sweep]`` table::

    [sweep]
    name = "eta"                       # results/sweep-eta unless --out (default: the file's stem)
    seeds = [1, 2, 3]                  # every point runs once per seed (default: [run] seed or 1)
    protocols = ["dendritic-prediction"]   # optional: several protocols (default: [run] protocol)
    metric = "rate_correlation_test"   # optional: the summary figure's y (default: see below)
    x = "protocol.eta"                 # optional: its x (default: the first grid key)

    [sweep.grid]                       # every combination of these values (dotted config keys;
    "protocol.eta" = [0.05, 0.2]       # a key without a dot is a [run] key, e.g. "epochs")

    [[sweep.runs]]                     # optional explicit runs, each crossed with the grid
    name = "wide"                      # optional folder label
    "circuit.n_inputs" = 40

    [sweep.base.feedback-cancellation] # optional: the [protocol]/[circuit]/[run] tables of a
    protocol = { pattern_ms = 50.0 }   # protocol in ``protocols`` other than [run] protocol

Runs = protocols × grid combinations × explicit runs × seeds. The top-level ``[protocol]`` and
``[circuit]`` tables belong to ``[run] protocol``; the other ``[run]`` keys are shared by all.
Every run is resolved (validated) before anything is submitted; an invalid one is one error
naming the run.

Results (``--out DIR``, default ``results/sweep-NAME``):

* ``DIR/runs/NAME/``: one ``neurosim run`` results folder per run, named from its seed and the
  parameters that vary (``seed=1,protocol.eta=0.05``). A run is complete when its
  ``metrics.json`` exists (``run_experiment`` writes it last, atomically): a second invocation of
  the same sweep skips complete runs and redoes half-done folders, so a stopped sweep resumes.
* ``DIR/sweep.csv``: one row per run (run, status ``ok``/``failed``/``skipped`` (complete
  before this invocation), seed, swept parameters, ``wall_seconds``, ``compilations``,
  ``build_dirs``, ``error``, then the run's scalar metrics), rewritten atomically as each run
  finishes, so a sweep killed mid-way leaves a valid table.
* ``DIR/sweep.json``: totals (runs, ok, failed, skipped, compilations in this invocation and in
  all rows, distinct structures = distinct compiled build folders, wall time).
* ``DIR/summary.png``: ``[sweep] metric`` against ``[sweep] x``, mean ± sd over seeds, one line
  per combination of the other swept keys (:mod:`analysis.sweep`). Default x: the first swept key
  whose values are numbers; default metric: the last numeric outcome in ``metrics.json`` (the
  analysis's measures come last; times, compilations and echoes of swept values are passed over).

Execution: each run is one Dask task (``dask.distributed``) on a ``LocalCluster`` of ``--workers``
processes (default 2), or on the cluster behind ``--scheduler ADDRESS``. Brian2's device is global
to a process and not thread-safe, so every worker must run **one thread**: the local cluster is
started with ``threads_per_worker=1``; start external workers with ``dask worker ADDRESS
--nthreads 1`` (a task on a multi-threaded worker refuses to run and says so). Workers share
compiled builds through the on-disk build cache (``$NEUROSIM_CACHE``, locked per structure): the
client sends its absolute cache folder and absolute run folders with every task, so a worker
started elsewhere (another folder or environment, same file system) compiles each structure once
for the whole sweep. A failed run is recorded with its error (type and message, traceback in
``runs/NAME/error.txt``) and the others go on; the exit status is 1 when any run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from neurosim import build_cache, results
from neurosim.config import load_toml, merge
from neurosim.errors import ConfigError, NeurosimError

#: keys of the ``[sweep]`` table
SWEEP_KEYS = ("name", "seeds", "grid", "runs", "protocols", "base", "metric", "x")
#: fixed columns of ``sweep.csv`` before the swept parameters and the metrics
LEAD_COLUMNS = ("run", "status", "seed")
TAIL_COLUMNS = ("wall_seconds", "compilations", "build_dirs", "error")
#: metrics that describe the run's bookkeeping rather than its outcome (never the default metric)
_BOOKKEEPING = re.compile(r"(seconds|compil|wall|simulated|epochs|repetitions|^seed$|dt_ms|^n_)")
DEFAULT_WORKERS = 2
#: ``neurosim sweep --help``: the sweep file and what the command writes
SWEEP_HELP = """\
Run a grid or list of runs as Dask tasks (one `neurosim run` results folder each).

CONFIG is a `neurosim run --config` file ([run], [protocol], [circuit]: the base of every run)
plus a [sweep] table:

  [sweep]
  name = "eta"                      # default --out: results/sweep-NAME (default: file stem)
  seeds = [1, 2, 3]                 # each point runs once per seed
  protocols = ["dendritic-prediction"]  # optional; other protocols' tables in [sweep.base.NAME]
  metric = "rate_correlation_test"  # optional: y of summary.png
  x = "protocol.eta"                # optional: x of summary.png
  [sweep.grid]                      # every combination (dotted keys; no dot = a [run] key)
  "protocol.eta" = [0.05, 0.2]
  [[sweep.runs]]                    # optional explicit runs, crossed with the grid
  name = "wide"
  "circuit.n_inputs" = 40

Writes DIR/runs/NAME/ per run (e.g. runs/seed=1,protocol.eta=0.05/), DIR/sweep.csv (one row per
run: status ok/failed/skipped, parameters, metrics, wall time, compilations, error), DIR/sweep.json
(totals) and DIR/summary.png (metric vs x, mean +- sd over seeds). Running the same command again
skips runs whose metrics.json exists and redoes half-done ones. Exit status 1 if a run failed.

Brian2's device is global to a process: workers must run ONE thread each. The local cluster does;
start external workers with `dask worker ADDRESS --nthreads 1`. Compiled builds are shared through
$NEUROSIM_CACHE (the client's cache folder is sent with every task).
"""


@dataclass
class RunSpec:
    """One run of the sweep: its folder name, the values that vary, and its raw configuration."""

    name: str
    seed: int
    params: dict[str, Any]
    raw: dict[str, Any]
    row: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepPlan:
    """The validated sweep: its runs, where its results go, and what the summary shows."""

    name: str
    runs: list[RunSpec]
    param_keys: list[str]
    metric: str | None
    x: str | None


# ---------------------------------------------------------------------------- the sweep file
def _dotted(key: str) -> str:
    key = str(key).strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"Sweep key {key!r} is not a dotted configuration key like protocol.eta.")
    return key if "." in key else f"run.{key}"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"protocol": {"eta": 1}, "circuit.n": 2}`` → ``{"protocol.eta": 1, "circuit.n": 2}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, full))
        else:
            out[full] = value
    return out


def _nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"protocol.eta": 1}`` → ``{"protocol": {"eta": 1}}`` (keys already normalised)."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Sweep key {key!r} conflicts with another key of the same run.")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"Sweep key {key!r} conflicts with another key of the same run.")
        node[parts[-1]] = value
    return nested


def format_value(value: Any) -> str:
    """A parameter value as it appears in folder names and the table (``0.1``, ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def run_name(parts: Sequence[tuple[str, Any]], label: str | None = None) -> str:
    """A stable, readable folder name: ``seed=1,protocol.eta=0.1`` (unsafe characters → ``_``)."""
    text = ",".join(([label] if label else []) + [f"{k}={format_value(v)}" for k, v in parts])
    text = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
    if len(text) > 150:  # keep folder names short enough for every file system
        text = f"{text[:130]}~{build_cache.structure_key({'name': text})[:12]}"
    return text


def _seeds(value: Any, default: int) -> list[int]:
    if value is None:
        return [default]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    ):
        raise ConfigError(f"[sweep] seeds must be a non-empty list of integers ≥ 0, got {value!r}.")
    if len(set(value)) != len(value):
        raise ConfigError(f"[sweep] seeds lists a seed twice: {value!r}.")
    return list(value)


def _grid(value: Any) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("[sweep.grid] must be a table of dotted keys, each a list of values.")
    grid: dict[str, list[Any]] = {}
    for key, values in _flatten(value).items():
        dotted = _dotted(key)
        if dotted in ("run.seed", "run.protocol"):
            what = "seeds" if dotted == "run.seed" else "protocols"
            raise ConfigError(
                f"Sweep the {dotted!r} key with [sweep] {what} = [...], not the grid."
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[sweep.grid] {key!r} must be a non-empty list of values.")
        if len({format_value(v) for v in values}) != len(values):
            raise ConfigError(f"[sweep.grid] {key!r} lists a value twice: {values!r}.")
        if dotted in grid:
            raise ConfigError(f"[sweep.grid] sets {dotted!r} twice.")
        grid[dotted] = values
    return grid


def _explicit_runs(value: Any) -> list[tuple[str | None, dict[str, Any]]]:
    if value is None:
        return [(None, {})]
    if not isinstance(value, list) or not value or not all(isinstance(r, Mapping) for r in value):
        raise ConfigError("[[sweep.runs]] must be a non-empty list of tables of dotted keys.")
    out = []
    for k, entry in enumerate(value, start=1):
        label = entry.get("name")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise ConfigError(f"[[sweep.runs]] entry {k}: name must be a non-empty string.")
        keys = {_dotted(key): v for key, v in _flatten({**entry, "name": None}).items()}
        keys.pop("run.name")
        if "run.seed" in keys:
            raise ConfigError(f"[[sweep.runs]] entry {k}: set seeds in [sweep] seeds, not per run.")
        if not keys and label is None:
            raise ConfigError(f"[[sweep.runs]] entry {k} is empty.")
        out.append((label, keys))
    return out


def plan_sweep(config: Mapping[str, Any], default_name: str) -> SweepPlan:
    """Expand and validate a sweep file's contents; raises one :class:`ConfigError` naming the run
    (or the ``[sweep]`` key) that is wrong, before anything is submitted."""
    from neurosim.cli import pipeline
    from neurosim.config import RunConfig

    sweep = config.get("sweep")
    if not isinstance(sweep, Mapping):
        raise ConfigError("The sweep file has no [sweep] table (seeds, grid, runs or protocols).")
    unknown = sorted(set(sweep) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(
            f"Unknown [sweep] key {unknown[0]!r}; allowed keys: {', '.join(SWEEP_KEYS)}."
        )
    base = {k: v for k, v in config.items() if k != "sweep"}
    base_run = base.get("run", {})
    if not isinstance(base_run, Mapping):
        raise ConfigError("Configuration section [run] must be a table of keys.")
    default_protocol = base_run.get("protocol", RunConfig.model_fields["protocol"].default)
    name = sweep.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise ConfigError(f"[sweep] name must be letters, digits, '.', '_', '+' or '-': {name!r}.")
    seeds = _seeds(sweep.get("seeds"), base_run.get("seed", 1))
    grid = _grid(sweep.get("grid"))
    explicit = _explicit_runs(sweep.get("runs"))
    protocols = sweep.get("protocols", [default_protocol])
    if (
        not isinstance(protocols, list)
        or not protocols
        or not all(isinstance(p, str) for p in protocols)
        or len(set(protocols)) != len(protocols)
    ):
        raise ConfigError(f"[sweep] protocols must be a list of distinct names, got {protocols!r}.")
    per_protocol = sweep.get("base", {})
    if not isinstance(per_protocol, Mapping) or not all(
        isinstance(v, Mapping) for v in per_protocol.values()
    ):
        raise ConfigError("[sweep.base] must hold one table per protocol, e.g. [sweep.base.NAME].")
    for proto in per_protocol:
        if proto not in protocols:
            raise ConfigError(
                f"[sweep.base] has tables for {proto!r}, which is not in [sweep] protocols."
            )

    param_keys = (["run.protocol"] if len(protocols) > 1 else []) + list(grid)
    for _, keys in explicit:
        param_keys += [k for k in keys if k not in param_keys]
    runs: list[RunSpec] = []
    seen: dict[str, int] = {}
    for proto in protocols:
        if proto == default_protocol:
            proto_base = merge(base, {"run": {"protocol": proto}})
        else:  # the top-level [protocol]/[circuit] tables belong to the default protocol
            shared = {k: v for k, v in base_run.items() if k not in ("protocol", "circuit")}
            proto_base = {"run": {**shared, "protocol": proto}}
        proto_base = merge(proto_base, per_protocol.get(proto, {}))
        for combo in product(*grid.values()):
            point = dict(zip(grid, combo, strict=True))
            for label, keys in explicit:
                overlap = sorted(set(point) & set(keys))
                if overlap:
                    raise ConfigError(
                        f"Sweep key {overlap[0]!r} is set both in [sweep.grid] and [[sweep.runs]]."
                    )
                for seed in seeds:
                    varying = {"run.protocol": proto} if len(protocols) > 1 else {}
                    varying.update(point)
                    shown = list(varying.items()) + ([] if label else list(keys.items()))
                    rname = run_name([("seed", seed), *shown], label)
                    params = {**varying, **keys}
                    raw = merge(proto_base, _nest(params))
                    raw = merge(raw, {"run": {"seed": seed}})
                    runs.append(RunSpec(rname, seed, params, raw))
                    seen[rname] = seen.get(rname, 0) + 1
    duplicates = [n for n, c in seen.items() if c > 1]
    if duplicates:
        raise ConfigError(f"Two runs of the sweep would share the folder {duplicates[0]!r}.")
    for spec in runs:
        try:
            resolved = pipeline.resolve(spec.raw)
        except NeurosimError as exc:
            raise ConfigError(f"Sweep run {spec.name!r} is invalid: {exc}") from None
        if resolved.run.device is not None:  # the client decides the device, not each worker
            spec.raw = merge(spec.raw, {"run": {"device": resolved.run.device}})
    metric = sweep.get("metric")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ConfigError(f"[sweep] metric must be a metric name, got {metric!r}.")
    x = sweep.get("x")
    if x is not None:
        if not isinstance(x, str) or (_dotted(x) not in param_keys and x != "seed"):
            raise ConfigError(
                f"[sweep] x must be one of the swept keys ({', '.join(param_keys) or 'seed'}), "
                f"got {x!r}."
            )
        x = x if x == "seed" else _dotted(x)
    return SweepPlan(name, runs, param_keys, metric, x)


# ---------------------------------------------------------------------------- the worker's task
def _worker_threads() -> int | None:
    """Threads of the Dask worker running this task (None outside a worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return int(worker.state.nthreads)


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, (bool, int, float, str)) and k not in ("build_dir", "wall_seconds")
    }


def _build_dirs(value: Any) -> set[str]:
    """Every ``build_dir`` named anywhere in a run's metrics (one per compiled structure used)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "build_dir" and isinstance(item, str):
                found.add(item)
            else:
                found |= _build_dirs(item)
    elif isinstance(value, list):
        for item in value:
            found |= _build_dirs(item)
    return found


def row_from_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The table's view of a finished run: scalar metrics, compilations, build folders."""
    compilations = metrics.get("compilations", metrics.get("circuit_compilations"))
    return {
        "metrics": _scalar_metrics(metrics),
        "compilations": compilations,
        "build_dirs": sorted(_build_dirs(metrics)),
        "wall_seconds": metrics.get("wall_seconds"),
    }


def run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one sweep run in a worker process and return its table row; never raises for a
    failure of the run itself (its error is in the row and in ``RUN_DIR/error.txt``)."""
    start = time.perf_counter()
    run_dir = Path(task["run_dir"])
    old_cache = os.environ.get("NEUROSIM_CACHE")
    try:
        threads = _worker_threads()
        if threads is not None and threads != 1:
            raise NeurosimError(
                f"This Dask worker runs {threads} threads, but Brian2's device is global to a "
                "process: start workers with `dask worker ADDRESS --nthreads 1`."
            )
        os.environ["NEUROSIM_CACHE"] = task["cache"]
        done = run_dir / "metrics.json"
        if done.is_file():  # finished after the client looked (e.g. by another sweep)
            return {"status": "skipped", **row_from_metrics(json.loads(done.read_text()))}
        if run_dir.is_dir():  # a half-done folder of an interrupted invocation: redo it
            shutil.rmtree(run_dir)
        elif run_dir.exists():
            raise NeurosimError(f"{str(run_dir)!r} is in the way of the run's results folder.")
        from neurosim.cli import pipeline

        metrics = pipeline.run_experiment(pipeline.resolve(task["raw"]), run_dir)
        row = {"status": "ok", **row_from_metrics(metrics)}
    except Exception as exc:  # noqa: BLE001 -- any failure of one run is reported, not raised
        message = " ".join(str(exc).split()) or "(no message)"
        row = {"status": "failed", "error": f"{type(exc).__name__}: {message}", "metrics": {}}
        with contextlib.suppress(OSError):
            if run_dir.is_dir():
                results.atomic_write(
                    run_dir / "error.txt", lambda tmp: tmp.write_text(traceback.format_exc())
                )
    finally:
        if old_cache is None:
            os.environ.pop("NEUROSIM_CACHE", None)
        else:
            os.environ["NEUROSIM_CACHE"] = old_cache
    row["wall_seconds"] = time.perf_counter() - start
    return row


# ---------------------------------------------------------------------------- the table
def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, (list, dict, bool)):
        return format_value(value)
    return value


def table_rows(plan: SweepPlan) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of ``sweep.csv`` (runs not finished yet have status ``pending``)."""
    metric_cols: list[str] = []
    for spec in plan.runs:
        metric_cols += [k for k in spec.row.get("metrics", {}) if k not in metric_cols]
    fixed = set(LEAD_COLUMNS) | set(TAIL_COLUMNS) | set(plan.param_keys)
    metric_cols = [c for c in metric_cols if c not in fixed]
    columns = [*LEAD_COLUMNS, *plan.param_keys, *TAIL_COLUMNS, *metric_cols]
    rows = []
    for spec in plan.runs:
        row = spec.row
        out = {
            "run": spec.name,
            "status": row.get("status", "pending"),
            "seed": spec.seed,
            **{k: spec.params.get(k) for k in plan.param_keys},
            "wall_seconds": row.get("wall_seconds"),
            "compilations": row.get("compilations"),
            "build_dirs": ";".join(row.get("build_dirs", [])),
            "error": row.get("error", ""),
        }
        for col in metric_cols:
            out[col] = row.get("metrics", {}).get(col)
        rows.append(out)
    return columns, rows


def write_table(plan: SweepPlan, path: Path) -> None:
    """Write ``sweep.csv`` atomically."""
    columns, rows = table_rows(plan)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    text = buffer.getvalue()
    results.atomic_write(path, lambda tmp: tmp.write_text(text))


def totals(plan: SweepPlan, wall_seconds: float, finished: bool) -> dict[str, Any]:
    """The numbers of ``sweep.json``."""
    rows = [spec.row for spec in plan.runs]
    count = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "failed", "skipped")}
    builds = {b for r in rows if r.get("status") in ("ok", "skipped") for b in r["build_dirs"]}
    return {
        "name": plan.name,
        "finished": finished,
        "runs": len(rows),
        **count,
        "pending": len(rows) - sum(count.values()),
        "compilations": sum(r.get("compilations") or 0 for r in rows if r.get("status") == "ok"),
        "compilations_including_skipped": sum(
            r.get("compilations") or 0 for r in rows if r.get("status") in ("ok", "skipped")
        ),
        "distinct_structures": len(builds),
        "build_dirs": sorted(builds),
        "wall_seconds": wall_seconds,
        "run_seconds_sum": sum(r.get("wall_seconds") or 0 for r in rows if r.get("status") == "ok"),
        "swept": plan.param_keys,
        "failed_runs": {
            spec.name: spec.row.get("error")
            for spec in plan.runs
            if spec.row.get("status") == "failed"
        },
    }


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def default_metric(plan: SweepPlan, done: Sequence[RunSpec]) -> str | None:
    """The last numeric metric of the first finished run that is an outcome: not bookkeeping
    (times, compilations, sizes), not an echo of a swept parameter, not the same in every run.
    ``run_experiment`` puts the analysis's measures last, so they are preferred."""

    def values(key: str) -> list[Any]:
        return [s.row["metrics"].get(key) for s in done]

    for key in reversed(list(done[0].row["metrics"])):
        column = values(key)
        numeric = [v for v in column if v is not None]
        if not numeric or not all(_numeric(v) for v in numeric) or _BOOKKEEPING.search(key):
            continue
        if any(column == [s.params.get(p) for s in done] for p in plan.param_keys):
            continue
        if len(done) > 1 and len(set(column)) == 1:
            continue
        return key
    return None


def write_summary_figure(plan: SweepPlan, path: Path) -> str | None:
    """``summary.png``: the metric against the swept key, mean ± sd over seeds, one line per
    combination of the other swept keys. Returns why no figure was drawn, or None."""
    from analysis.sweep import plot_summary, summary_statistics

    done = [s for s in plan.runs if s.row.get("status") in ("ok", "skipped")]
    if not done:
        return "no run finished"
    metric = plan.metric
    if metric is None:
        metric = default_metric(plan, done)
        if metric is None:
            return "the runs report no numeric outcome metric (set [sweep] metric)"
    if not any(_numeric(s.row["metrics"].get(metric)) for s in done):
        return f"no finished run reports a numeric {metric!r}"
    x_key = plan.x or next(
        (k for k in plan.param_keys if all(_numeric(s.params.get(k)) for s in done)),
        plan.param_keys[0] if plan.param_keys else "seed",
    )

    def x_of(spec: RunSpec) -> Any:
        return spec.seed if x_key == "seed" else spec.params.get(x_key)

    others = [k for k in plan.param_keys if k != x_key]
    series = [
        ", ".join(f"{k}={format_value(s.params.get(k))}" for k in others if k in s.params)
        for s in done
    ]
    points = summary_statistics(
        [x_of(s) for s in done], [s.row["metrics"].get(metric) for s in done], series
    )
    if not points:
        return f"no finished run reports a finite {metric!r}"
    plot_summary(points, x_key, metric, path)
    return None


# ---------------------------------------------------------------------------- the cluster
@contextlib.contextmanager
def _client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler`` or on a fresh one-thread-per-worker
    ``LocalCluster``; closed (and the local workers stopped) on the way out."""
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            yield stack.enter_context(Client(cluster))
            return
        try:
            client = stack.enter_context(Client(scheduler, timeout="20s"))
        except (OSError, TimeoutError, ValueError) as exc:
            raise NeurosimError(
                f"Cannot reach the Dask scheduler at {scheduler!r} ({type(exc).__name__}: {exc})."
            ) from None
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            raise NeurosimError(
                f"The Dask scheduler at {scheduler!r} has no worker after 60 s; start one with "
                f"`dask worker {scheduler} --nthreads 1`."
            ) from None
        threaded = {addr: n for addr, n in client.nthreads().items() if n != 1}
        if threaded:
            addr, n = next(iter(threaded.items()))
            raise NeurosimError(
                f"Dask worker {addr} runs {n} threads, but Brian2's device is global to a "
                f"process: start workers with `dask worker {scheduler} --nthreads 1`."
            )
        yield client


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so a terminated sweep still stops its local workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_summary(plan: SweepPlan, tot: Mapping[str, Any], out: Path, note: str | None) -> None:
    print(
        f"sweep {plan.name}: {tot['runs']} runs: {tot['ok']} ok, {tot['failed']} failed, "
        f"{tot['skipped']} skipped (complete before); {tot['compilations']} compilation(s), "
        f"{tot['distinct_structures']} distinct structure(s); {tot['wall_seconds']:.1f} s"
    )
    for spec in plan.runs:
        if spec.row.get("status") == "failed":
            print(f"  failed {spec.name}: {spec.row.get('error')}")
    if note:
        print(f"no summary figure: {note}")
    print(f"results written to {out}")


def _execute(
    client: Any,
    todo: Sequence[RunSpec],
    runs_dir: Path,
    cache: str,
    save: Callable[[bool], dict[str, Any]],
    bar: Any,
) -> None:
    """Submit one task per run and record each row as it comes back (a task that dies with its
    worker becomes a failed row); the table is rewritten after every run."""
    from distributed import as_completed

    futures = {}
    for spec in todo:
        task = {"raw": spec.raw, "run_dir": str(runs_dir / spec.name), "cache": cache}
        key = f"neurosim-sweep-{spec.name}-{time.time_ns()}"
        futures[client.submit(run_task, task, key=key, pure=False)] = spec
    for future in as_completed(futures):
        spec = futures[future]
        try:
            spec.row = future.result()
        except Exception as exc:  # noqa: BLE001 -- e.g. the worker died under the task
            message = " ".join(str(exc).split())
            spec.row = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {message}",
                "metrics": {},
            }
        save(False)
        bar.set_postfix_str(f"{spec.name}: {spec.row['status']}")
        bar.update(1)


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by the user, after saving what finished."""

    def __init__(self, totals: Mapping[str, Any], out: Path) -> None:
        super().__init__()
        self.totals, self.out = dict(totals), out


def run_sweep(
    config_path: Path,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> Any:
    """Validate, skip complete runs, run the rest as Dask tasks, tabulate; returns a
    :class:`neurosim.api.SweepResult` (raises :class:`SweepInterrupted` on Ctrl-C, after saving)."""
    from tqdm import tqdm

    from neurosim.api import SweepResult

    start = time.perf_counter()
    if workers is not None and workers < 1:
        raise NeurosimError(f"--workers must be at least 1, got {workers}.")
    if workers is not None and scheduler:
        raise NeurosimError("--workers sizes the local cluster; it cannot go with --scheduler.")
    config = load_toml(config_path)
    plan = plan_sweep(config, re.sub(r"[^A-Za-z0-9._+-]", "_", config_path.stem))
    folder = Path(out or f"results/sweep-{plan.name}").resolve()
    runs_dir = folder / "runs"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeurosimError(
            f"The output folder {str(folder)!r} cannot be written ({exc})."
        ) from None
    cache = str(build_cache.cache_root().parent.resolve())
    todo = []
    for spec in plan.runs:
        done = runs_dir / spec.name / "metrics.json"
        if done.is_file():
            spec.row = {"status": "skipped", **row_from_metrics(json.loads(done.read_text()))}
        else:
            todo.append(spec)

    def save(finished: bool) -> dict[str, Any]:
        write_table(plan, folder / "sweep.csv")
        tot = totals(plan, time.perf_counter() - start, finished)
        results.write_json(folder / "sweep.json", {**tot, "config": str(config_path.resolve())})
        return tot

    save(False)
    try:
        with _sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            # connect first: a scheduler that cannot be used is one error, before any progress bar
            client = (
                stack.enter_context(_client(scheduler, workers or DEFAULT_WORKERS))
                if todo
                else None
            )
            bar = stack.enter_context(
                tqdm(
                    total=len(plan.runs),
                    initial=len(plan.runs) - len(todo),
                    desc=f"sweep {plan.name}",
                    unit="run",
                    disable=not progress,
                )
            )
            if client is not None:
                _execute(client, todo, runs_dir, cache, save, bar)
    except KeyboardInterrupt:
        raise SweepInterrupted(save(False), folder) from None
    note = write_summary_figure(plan, folder / "summary.png")
    tot = save(True)
    _, rows = table_rows(plan)
    figure = folder / "summary.png" if (folder / "summary.png").is_file() else None
    return SweepResult(rows=rows, totals=tot, out=folder, figure=figure, note=note, plan=plan)


def cmd_sweep(args: argparse.Namespace) -> int:
    """``neurosim sweep``: a thin layer over :func:`neurosim.api.sweep`."""
    from neurosim import api

    try:
        result = api.sweep(
            args.config,
            out=args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=not args.no_progress,
        )
    except SweepInterrupted as stop:
        tot = stop.totals
        print(
            f"neurosim: sweep interrupted with {tot['ok'] + tot['skipped']} of {tot['runs']} runs "
            f"complete; run the same command again to finish the others "
            f"({stop.out / 'sweep.csv'})",
            file=sys.stderr,
        )
        return 130
    _print_summary(result.plan, result.totals, result.out, result.note)
    return 1 if result.totals["failed"] else 0

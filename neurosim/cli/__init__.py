"""The ``neurosim`` command: ``list``, ``run``, ``compare``, ``predict``, ``analyze`` and ``sweep``.

Every error a user can fix is printed as one sentence (``neurosim: error: ...``) with a non-zero
exit status; no traceback, no half-written results.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from neurosim.errors import NeurosimError

#: the pairings of ``neurosim compare`` (protocols.compare.PAIRINGS; a test keeps them equal)
PAIRINGS = ("icf-microcircuit", "consciousness-prior-microcircuit", "consciousness-prior-hopfield")


def _add_run_options(parser: argparse.ArgumentParser, set_example: str, out_default: str) -> None:
    """The options ``run`` and ``compare`` share: device, seed, configuration, results folder."""
    parser.add_argument("--device", help="runtime, cpp_standalone (default) or cuda_standalone")
    parser.add_argument("--seed", type=int, help="one seed for numpy, Brian2 and torch")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a configuration value, e.g. {set_example} (repeatable)",
    )
    parser.add_argument("--out", help=f"results folder (default: {out_default})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurosim",
        description="Spiking cortical circuits trained by local plasticity, in Brian2.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="circuits, protocols, data sets and devices")

    run = sub.add_parser("run", help="run a protocol and write a results folder")
    run.add_argument("protocol", help="protocol name (see `neurosim list`)")
    run.add_argument(
        "--preset",
        help="named settings of the protocol (see `neurosim list`; default: by data set and "
        "read-out)",
    )
    run.add_argument("--circuit", help="circuit name (default: the protocol's first)")
    run.add_argument(
        "--dataset",
        help="data set name (or npz:PATH, your own arrays), for protocols that take one",
    )
    run.add_argument("--readout", choices=("rate", "spiking"), help="rate or spiking read-out")
    run.add_argument("--epochs", type=int, help="number of epochs (one simulation run each)")
    run.add_argument(
        "--threads",
        type=int,
        help="OpenMP threads of cpp_standalone builds (default 0: one core, no OpenMP)",
    )
    _add_run_options(run, "protocol.eta=0.1", "results/PROTOCOL-TIMESTAMP")

    compare = sub.add_parser(
        "compare", help="a PyTorch model and a circuit on the same inputs: probes, CKA, RSA"
    )
    compare.add_argument(
        "--pairing",
        choices=PAIRINGS,
        help="which pair: " + ", ".join(PAIRINGS) + " (default icf-microcircuit)",
    )
    compare.add_argument("--readout", choices=("rate", "spiking"), help="the circuit's read-out")
    compare.add_argument("--epochs", type=int, help="the circuit's training epochs")
    _add_run_options(compare, "protocol.icf.steps=500", "results/compare-TIMESTAMP")

    predict = sub.add_parser(
        "predict", help="virtual experiments on trained circuits: predictions for the lab"
    )
    predict.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this virtual experiment (repeatable; see `neurosim list`)",
    )
    predict.add_argument("--seeds", type=int, help="seeds per experiment (default 5)")
    predict.add_argument(
        "--min-seeds",
        type=int,
        help="fewest seeds for a verdict; below it: 'too few seeds to judge' (default 5)",
    )
    predict.add_argument("--quick", action="store_true", help="smallest runs (for tests)")
    predict.add_argument("--device", help="runtime, cpp_standalone (default) or cuda_standalone")
    predict.add_argument("--out", help="results folder (default: results/predict-TIMESTAMP)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")

    from neurosim.cli.sweep import SWEEP_HELP

    sweep = sub.add_parser(
        "sweep",
        help="a grid of runs (seeds, parameters) on a Dask cluster",
        description=SWEEP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("config", help="TOML file describing the sweep")
    sweep.add_argument(
        "--scheduler", help="address of a running Dask scheduler (default: a local cluster)"
    )
    sweep.add_argument("--workers", type=int, help="workers of the local cluster (default 2)")
    sweep.add_argument("--out", help="results folder (default: results/sweep-NAME)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")

    analyze = sub.add_parser(
        "analyze",
        help="spike-train statistics and figures of a NIX or NWB recording (simulated or real)",
    )
    analyze.add_argument(
        "file", help="a .nix (neo) or .nwb (Neurodata Without Borders) file, neurosim's or anyone's"
    )
    analyze.add_argument(
        "--out",
        help="output folder (default: beside FILE, e.g. a.nwb -> a-nwb-analysis/)",
    )
    analyze.add_argument("--bin-size", type=float, default=0.05, help="Fano-factor window (s)")
    return parser


def _cmd_list() -> int:
    from neurosim import presets
    from neurosim.cli import pipeline  # registers circuits and protocols
    from neurosim.devices import DEVICE_HELP
    from neurosim.registry import CIRCUITS, DATASETS, PROTOCOLS

    del pipeline
    for title, table in (("circuits", CIRCUITS), ("protocols", PROTOCOLS), ("datasets", DATASETS)):
        print(f"{title}:")
        if not table:
            print("  (none yet)")
        for name, entry in sorted(table.items()):
            print(f"  {name:24s} {entry.summary}")
            if title == "protocols":
                for preset, description in presets.available(entry.target).items():
                    print(f"    --preset {preset}")
                    for line in textwrap.wrap(description, 92):
                        print(f"        {line}")
    import protocols.experiments  # noqa: F401  (registers the virtual experiments)
    from neurosim.experiment import EXPERIMENTS

    print("virtual experiments (neurosim predict):")
    if not EXPERIMENTS:
        print("  (none yet)")
    for name, experiment in sorted(EXPERIMENTS.items()):
        print(f"  {name:24s} {experiment.title}")
    print("devices:")
    for name, text in DEVICE_HELP.items():
        print(f"  {name:24s} {text}")
    return 0


def _default_out(protocol: str, out_arg: str | None) -> str:
    return out_arg or f"results/{protocol}-{time.strftime('%Y%m%d-%H%M%S')}"


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from neurosim import api

    if args.epochs is not None and args.epochs < 1:
        raise NeurosimError(f"--epochs must be at least 1, got {args.epochs}.")
    result = api.run(
        args.protocol,
        preset=args.preset,
        circuit=args.circuit,
        dataset=args.dataset,
        readout=args.readout,
        device=args.device,
        seed=args.seed,
        epochs=args.epochs,
        threads=args.threads,
        config=args.config,
        overrides=args.overrides,
        out=_default_out(args.protocol, args.out),
        progress=not args.no_progress,
    )
    shown = {  # scalars only: series, tables and paths are in metrics.json
        k: v
        for k, v in result.metrics.items()
        if not isinstance(v, Mapping) and np.ndim(v) == 0 and k != "build_dir"
    }
    print(json.dumps(shown, indent=2, default=lambda v: getattr(v, "item", lambda: str(v))()))
    print(f"results written to {Path(result.out).resolve()}")
    return 0


#: the headline numbers ``neurosim compare`` prints under its table
COMPARE_SHOWN = (
    "cp_parent_precision",
    "circuit_error_in_brian2",
    "circuit_error_in_twin",
    "circuit_test_mse",
    "circuit_position_rmse_cells",
    "icf_reconstruction_mse",
    "wall_seconds",
)


def _cmd_compare(args: argparse.Namespace) -> int:
    from neurosim import api

    if args.epochs is not None and args.epochs < 1:
        raise NeurosimError(f"--epochs must be at least 1, got {args.epochs}.")
    result = api.run(
        "compare",
        device=args.device,
        readout=args.readout,
        epochs=args.epochs,
        seed=args.seed,
        config=args.config,
        protocol={"pairing": args.pairing} if args.pairing else None,
        overrides=args.overrides,
        out=_default_out("compare", args.out),
        progress=not args.no_progress,
    )
    metrics = result.metrics
    print(metrics["comparison_table"], end="")
    for key in COMPARE_SHOWN:
        if metrics.get(key) is not None:
            print(f"{key}: {metrics[key]:.4g}")
    print(f"results written to {Path(result.out).resolve()}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from neurosim import api

    result = api.analyze(args.file, out=args.out, bin_size_s=args.bin_size)
    stats = result.statistics
    segments = stats.get("segments", [])
    n_trains = len(stats.get("spike_trains", []))
    n_pairs = sum(len(segment.get("pairs", {}).get("pairs", [])) for segment in segments)
    print(f"analysed {n_trains} spike trains in {len(segments)} segments ({n_pairs} pairs)")
    print(f"results written to {result.out.resolve()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neurosim`` console script."""
    # Brian2 2.8 calls pyparsing names that pyparsing 3.3 deprecates, and Brian2's logger prints
    # captured warnings: one WARNING per equation parsed, nothing a user can act on. A filter on
    # the logger, because elephant's import puts a 'once' filter for UserWarning (which these
    # also are) in front of any warnings filter set here.
    logging.getLogger("py.warnings").addFilter(
        lambda record: "PyparsingDeprecationWarning" not in record.getMessage()
    )
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "predict":
            from neurosim.cli.predict import cmd_predict

            return cmd_predict(args)
        if args.command == "analyze":
            return _cmd_analyze(args)
        if args.command == "sweep":
            from neurosim.cli.sweep import cmd_sweep

            return cmd_sweep(args)
    except NeurosimError as exc:
        print(f"neurosim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurosim: interrupted; no results were written under final names", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())

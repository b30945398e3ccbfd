"""The ``neurosim`` command: ``list``, ``run`` and ``analyze``.

Every error a user can fix is printed as one sentence (``neurosim: error: ...``) with a non-zero
exit status; no traceback, no half-written results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from neurosim.errors import NeurosimError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurosim",
        description="Spiking cortical circuits trained by local plasticity, in Brian2.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="circuits, protocols, data sets and devices")

    run = sub.add_parser("run", help="run a protocol and write a results folder")
    run.add_argument("protocol", help="protocol name (see `neurosim list`)")
    run.add_argument("--circuit", help="circuit name (default: the protocol's first)")
    run.add_argument("--dataset", help="data set name, for protocols that take one")
    run.add_argument("--device", help="runtime, cpp_standalone (default) or cuda_standalone")
    run.add_argument("--readout", choices=("rate", "spiking"), help="rate or spiking read-out")
    run.add_argument("--epochs", type=int, help="number of epochs (one simulation run each)")
    run.add_argument("--seed", type=int, help="one seed for numpy, Brian2 and torch")
    run.add_argument("--config", help="TOML configuration file")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration value, e.g. protocol.eta=0.1 (repeatable)",
    )
    run.add_argument("--out", help="results folder (default: results/PROTOCOL-TIMESTAMP)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    analyze = sub.add_parser("analyze", help="spike-train statistics of a neo NIX file")
    analyze.add_argument("file", help="a .nix file written by neo (neurosim's or anyone's)")
    analyze.add_argument("--out", help="output folder (default: FILE's folder/analysis)")
    analyze.add_argument("--bin-size", type=float, default=0.05, help="Fano-factor window (s)")
    return parser


def _cmd_list() -> int:
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
    print("devices:")
    for name, text in DEVICE_HELP.items():
        print(f"  {name:24s} {text}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from neurosim import results
    from neurosim.cli import pipeline
    from neurosim.config import load_toml, parse_overrides

    if args.epochs is not None and args.epochs < 1:
        raise NeurosimError(f"--epochs must be at least 1, got {args.epochs}.")
    file_config = load_toml(args.config) if args.config else None
    cli_run = {
        "protocol": args.protocol,
        "circuit": args.circuit,
        "dataset": args.dataset,
        "device": args.device,
        "readout": args.readout,
        "epochs": args.epochs,
        "seed": args.seed,
    }
    raw = pipeline.build_raw(file_config, cli_run, parse_overrides(args.overrides))
    resolved = pipeline.resolve(raw)
    out = args.out or f"results/{resolved.run.protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    results.prepare_output_dir(out)  # fail before the progress bar, not after
    total = resolved.protocol_obj.total_steps(resolved.run, resolved.protocol)
    with tqdm(total=total, desc=resolved.run.protocol, disable=args.no_progress, unit="run") as bar:

        def progress(n: int, message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(n)

        metrics = pipeline.run_experiment(resolved, out, progress)
    shown = {  # scalars only: series and paths are in metrics.json
        k: v for k, v in metrics.items() if np.ndim(v) == 0 and k != "build_dir"
    }
    print(json.dumps(shown, indent=2, default=lambda v: getattr(v, "item", lambda: str(v))()))
    print(f"results written to {Path(out).resolve()}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from analysis.spiketrains import analyze_file

    path = Path(args.file)
    out = Path(args.out) if args.out else path.resolve().parent / "analysis"
    stats = analyze_file(path, out, bin_size_s=args.bin_size)
    n_trains = len(stats.get("spike_trains", []))
    print(f"analysed {n_trains} spike trains in {len(stats.get('segments', []))} segments")
    print(f"results written to {out.resolve()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neurosim`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "analyze":
            return _cmd_analyze(args)
    except NeurosimError as exc:
        print(f"neurosim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurosim: interrupted; no results were written under final names", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())

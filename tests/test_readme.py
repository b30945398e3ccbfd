"""The README cannot drift from the code: every ``neurosim ...`` command and every TOML example in
its code blocks is checked as written.

Every command is parsed by the real argument parser and its configuration resolved (for ``run``
and ``compare`` the whole configuration, presets included; for ``sweep`` every run of the README's
sweep file; for ``predict`` the experiment names), with and without the quick settings the table
below appends. Commands then run for real, shortened by those settings: the cheap ones in the
default tier, the rest in the ``slow`` tier. A README command missing from the table fails, so a
new command in the README needs its line here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT_S = 1800


@dataclass(frozen=True)
class Quick:
    """How a README command is shortened (``extra`` appended to it as written) and where it runs:
    ``"default"`` (the default tier), ``"slow"`` (the slow tier) or ``"resolve"`` (only parsed and
    resolved, with ``reason``)."""

    extra: tuple[str, ...] = ()
    tier: str = "slow"
    reason: str = ""
    #: the README documents it ahead of the code: expected to fail (strictly) until it lands
    pending: str = ""


def _sets(*pairs: str) -> tuple[str, ...]:
    return tuple(item for pair in pairs for item in ("--set", pair))


DP_QUICK = (
    "--epochs",
    "1",
    *_sets(
        "protocol.repetitions_per_epoch=2",
        "protocol.correlation_repetitions=1",
        "protocol.pattern_ms=50",
    ),
)
FC_QUICK = ("--epochs", "1", *_sets("protocol.n_train=20", "protocol.n_test=10"))
EP_QUICK = (
    "--epochs",
    "1",
    *_sets(
        "protocol.n_train=20",
        "protocol.n_test=10",
        "protocol.examples_per_run=10",
        "protocol.backprop_epochs=0",
    ),
)
EP_GRAD = _sets("protocol.grad_examples=2", "protocol.grad_free_ms=40.0")
ICF_QUICK = _sets("protocol.steps=30", "protocol.log_every=10", "protocol.batch=8")
CP_QUICK = _sets(
    "protocol.n_variables=6",
    "protocol.n_parents=2",
    "protocol.n_train=400",
    "protocol.n_test=200",
    "protocol.steps=30",
    "protocol.batch=32",
)
COMPARE_QUICK = (
    "--epochs",
    "1",
    *_sets(
        "protocol.icf.steps=20",
        "protocol.icf.log_every=10",
        "protocol.training.n_train=20",
    ),
)
#: the consciousness-prior pairings on a tiny world (4 variables, 8 observed dimensions: 16-32-4)
CP_COMPARE_QUICK = (
    "--epochs",
    "1",
    *_sets(
        "protocol.consciousness_prior.n_variables=4",
        "protocol.consciousness_prior.n_parents=2",
        "protocol.consciousness_prior.k=2",
        "protocol.consciousness_prior.obs_dim=8",
        "protocol.consciousness_prior.n_train=30",
        "protocol.consciousness_prior.n_test=20",
        "protocol.consciousness_prior.steps=20",
        "protocol.consciousness_prior.log_every=10",
    ),
)
PREDICT_QUICK = ("--quick", "--seeds", "2")

#: why a command is resolved but not run: CI has 90 minutes for both tiers, and these take the code
#: path of a neighbouring command that runs (another variant, data set or epoch count), which
#: their own test files run too
SAME_PATH = "the same code path as a README command that runs here, with other settings"

#: every command of the README, as written there (comments dropped, spaces normalised)
COMMANDS: dict[str, Quick] = {
    # feedback cancellation
    "neurosim run feedback-cancellation --dataset teacher --set protocol.stage=self-predicting": (
        Quick(FC_QUICK)
    ),
    "neurosim run feedback-cancellation --dataset digits --set protocol.stage=error-transport": (
        Quick(FC_QUICK + _sets("protocol.transport_patterns=2"))
    ),
    "neurosim run feedback-cancellation --dataset digits --epochs 15": Quick(
        tier="resolve", reason=SAME_PATH
    ),
    "neurosim run feedback-cancellation --dataset teacher --epochs 3": Quick(
        tier="resolve", reason=SAME_PATH
    ),
    "neurosim run feedback-cancellation --preset digits-prospective --epochs 15": Quick(FC_QUICK),
    "neurosim run feedback-cancellation --preset digits-prospective-batch32": Quick(
        FC_QUICK + _sets("circuit.batch=4", "protocol.shallow=false", "protocol.backprop_epochs=0")
    ),
    "neurosim run feedback-cancellation --preset mnist1d-prospective --epochs 8 --set "
    "protocol.shallow=false": Quick(tier="resolve", reason=SAME_PATH),
    # equilibrium propagation
    "neurosim run equilibrium-propagation --circuit hopfield --dataset digits": Quick(EP_QUICK),
    "neurosim run equilibrium-propagation --dataset digits --set protocol.variant=symmetric": (
        Quick(tier="resolve", reason=SAME_PATH)
    ),
    "neurosim run equilibrium-propagation --dataset digits --set protocol.variant=continual "
    "--epochs 40": Quick(EP_QUICK),
    "neurosim run equilibrium-propagation --dataset digits --set protocol.variant=stochastic": (
        Quick(EP_QUICK)
    ),
    "neurosim run equilibrium-propagation --dataset digits --set protocol.stage=gradient-check": (
        Quick(EP_QUICK + EP_GRAD)
    ),
    "neurosim run equilibrium-propagation --dataset digits --set protocol.stage=gradient-check "
    "--set circuit.activation=smooth_sigmoid": Quick(
        EP_QUICK + EP_GRAD + _sets("protocol.continual_dts=[0.5]")
    ),
    "neurosim run equilibrium-propagation --dataset mnist1d --set protocol.variant=symmetric": (
        Quick(tier="resolve", reason=SAME_PATH)
    ),
    "neurosim run equilibrium-propagation --dataset mnist1d": Quick(
        tier="resolve", reason=SAME_PATH
    ),
    # PyTorch models and the comparison
    "neurosim run icf": Quick(ICF_QUICK),
    "neurosim run icf --set protocol.variant=continuous": Quick(tier="resolve", reason=SAME_PATH),
    "neurosim run consciousness-prior": Quick(CP_QUICK),
    "neurosim run consciousness-prior --set protocol.slots=found": Quick(CP_QUICK),
    "neurosim compare": Quick(COMPARE_QUICK),
    "neurosim compare --readout spiking": Quick(tier="resolve", reason=SAME_PATH),
    "neurosim compare --pairing consciousness-prior-microcircuit --epochs 10": Quick(
        CP_COMPARE_QUICK
    ),
    "neurosim compare --pairing consciousness-prior-hopfield --epochs 10": Quick(CP_COMPARE_QUICK),
    # predictions and the analysis of their recordings (run in this order: analyze reads
    # what the first predict wrote; its --only keeps it to the experiment analyze reads)
    "neurosim predict --out results/predict": Quick(
        (*PREDICT_QUICK, "--only", "interneuron-silencing")
    ),
    "neurosim predict --only interneuron-silencing --seeds 8": Quick(
        tier="resolve",
        reason="the same experiment as the line above, which runs; more seeds only repeat it",
    ),
    "neurosim predict --quick --seeds 2": Quick(
        tier="resolve",
        reason="every experiment's quick outcome is computed by tests/test_experiments_*.py and "
        "the predict command by tests/test_predict.py; CI has 90 minutes in all",
    ),
    "neurosim predict --quick --seeds 3 --min-seeds 3": Quick(
        tier="resolve",
        reason="the line above with verdicts from 3 seeds; tests/test_predict.py runs --min-seeds",
    ),
    "neurosim analyze results/predict/recordings/interneuron-silencing/predicted-intact.nwb": (
        Quick()
    ),
    # sweeps (sweep.toml: the README's sweep file; sweep has no flag to shorten it)
    "neurosim sweep sweep.toml --workers 2 --out results/sweep-eta": Quick(),
    "neurosim sweep sweep.toml --scheduler tcp://127.0.0.1:8786": Quick(
        tier="resolve",
        reason="needs the dask scheduler and worker of the lines above "
        "(tests/test_sweep.py runs a sweep through them)",
    ),
    # presets
    "neurosim list": Quick(tier="default"),
    "neurosim run equilibrium-propagation --preset digits-spiking": Quick(EP_QUICK),
    "neurosim run equilibrium-propagation --preset digits-spiking --set circuit.population=64 "
    "--set circuit.max_rate_hz=100.0": Quick(EP_QUICK),
    "neurosim run equilibrium-propagation --preset digits-spiking "
    "--set protocol.plasticity=spike-traces": Quick(EP_QUICK),
    "neurosim run equilibrium-propagation --preset digits-spiking-100hz": Quick(EP_QUICK),
    # configuration
    "neurosim run dendritic-prediction --seed 2 --set protocol.eta=0.05 "
    "--set circuit.n_inputs=400": Quick(DP_QUICK, tier="default"),
}

#: the TOML example without a protocol of its own is the dendritic-prediction table listing
CONFIG_EXAMPLE_COMMAND = ("neurosim", "run", "dendritic-prediction", "--config", "example.toml")


# ---------------------------------------------------------------------------------- the README
def code_blocks(text: str | None = None) -> list[tuple[str, str]]:
    """The fenced code blocks of the README: (language, body)."""
    text = README.read_text() if text is None else text
    return [
        (m[1].strip(), m[2]) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)
    ]


def readme_commands() -> list[str]:
    """Every ``neurosim`` command line of the README's shell blocks, as written (comments
    dropped, whitespace normalised)."""
    commands = []
    for lang, body in code_blocks():
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["neurosim"]:
                commands.append(" ".join(words))
    return commands


def toml_examples() -> list[str]:
    """The README's TOML blocks."""
    return [body for lang, body in code_blocks() if lang == "toml"]


def sweep_example() -> str:
    """The README's sweep file (the TOML block with a [sweep] table)."""
    (body,) = [b for b in toml_examples() if "[sweep]" in b]
    return body


def config_example() -> str:
    """The README's configuration file example (the TOML block without a [sweep] table)."""
    (body,) = [b for b in toml_examples() if "[sweep]" not in b]
    return body


def synopsis() -> str:
    """The command reference: the unlabelled block that begins with ``neurosim list``."""
    (body,) = [b for lang, b in code_blocks() if not lang and b.startswith("neurosim list")]
    return body


# ---------------------------------------------------------------------------------- resolving
def _prepare(tmp: Path) -> None:
    """The files the README's commands name: its sweep file and its configuration example."""
    (tmp / "sweep.toml").write_text(sweep_example())
    (tmp / "example.toml").write_text(config_example())


def resolve_command(argv: list[str], cwd: Path) -> Any:
    """Parse a command with the real parser and resolve what it would run, without running it."""
    from neurosim.cli import _parser, pipeline
    from neurosim.config import load_toml, merge, parse_overrides

    assert argv[0] == "neurosim", argv
    args = _parser().parse_args(argv[1:])
    if args.command in ("run", "compare"):
        config = load_toml(cwd / args.config) if getattr(args, "config", None) else None
        keys = ("circuit", "dataset", "preset", "device", "readout", "epochs", "seed", "threads")
        cli_run = {key: getattr(args, key, None) for key in keys}
        cli_run["protocol"] = args.protocol if args.command == "run" else "compare"
        overrides = parse_overrides(args.overrides)
        if args.command == "compare" and args.pairing:
            overrides = merge({"protocol": {"pairing": args.pairing}}, overrides)
        return pipeline.resolve(pipeline.build_raw(config, cli_run, overrides))
    if args.command == "sweep":
        from neurosim.cli.sweep import plan_sweep

        return plan_sweep(load_toml(cwd / args.config), Path(args.config).stem)
    if args.command == "predict":
        import protocols.experiments  # noqa: F401  (registers the experiments)
        from neurosim.cli.predict import _selected
        from neurosim.experiment import EXPERIMENTS

        return _selected(args.only or [], list(EXPERIMENTS))
    return args  # list, analyze: parsed (analyze reads a file a predict run writes)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a command as a user would, in ``cwd``, on this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "neurosim", *argv[1:]]
    if argv[1] in ("run", "compare", "predict", "sweep"):
        cmd.append("--no-progress")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _check_ran(argv: list[str], proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-3000:]}"
    )


# ---------------------------------------------------------------------------------- the tests
def test_every_readme_command_has_an_entry() -> None:
    """A new command in the README needs its line in COMMANDS (how it is shortened, which tier);
    a line whose command left the README goes too."""
    found = readme_commands()
    assert found, "no neurosim commands found in README.md"
    missing = [c for c in found if c not in COMMANDS]
    assert not missing, f"README commands without an entry in tests/test_readme.py: {missing}"
    stale = [c for c in COMMANDS if c not in found]
    assert not stale, f"entries of tests/test_readme.py no longer in README.md: {stale}"
    for command, quick in COMMANDS.items():
        assert quick.tier in ("default", "slow", "resolve"), command
        assert quick.tier != "resolve" or quick.reason, f"{command}: say why it is not run"


def _params(commands: list[str]) -> list[Any]:
    """Commands as test parameters; a pending one is expected to fail until it lands."""
    return [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=COMMANDS[c].pending))
        if COMMANDS[c].pending
        else c
        for c in commands
    ]


@pytest.mark.parametrize("command", _params(sorted(COMMANDS)))
def test_readme_command_resolves_as_written_and_shortened(command: str, tmp_path: Path) -> None:
    _prepare(tmp_path)
    argv = shlex.split(command)
    resolve_command(argv, tmp_path)
    if COMMANDS[command].extra:
        resolve_command([*argv, *COMMANDS[command].extra], tmp_path)


def test_readme_configuration_example_resolves() -> None:
    from neurosim.cli import pipeline

    config = tomllib.loads(config_example())
    resolved = pipeline.resolve(
        pipeline.build_raw(config, {"protocol": "dendritic-prediction"}, {})
    )
    for table in ("run", "protocol", "circuit"):
        for key, value in config.get(table, {}).items():
            assert getattr(getattr(resolved, table), key) == value, f"{table}.{key}"


def test_readme_sweep_example_is_accepted_as_written(tmp_path: Path) -> None:
    """Every run of the README's sweep file resolves (it was refused: too few repetitions)."""
    from neurosim.cli.sweep import plan_sweep

    plan = plan_sweep(tomllib.loads(sweep_example()), "sweep")
    assert len(plan.runs) == 6


def test_readme_command_reference_matches_the_parser() -> None:
    """The synopsis names every subcommand and exactly the options each one takes."""
    import argparse

    from neurosim.cli import _parser

    parser = _parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    text = synopsis()
    entries = re.split(r"^(?=neurosim )", text, flags=re.M)
    documented: dict[str, set[str]] = {}
    for entry in filter(None, (e.strip() for e in entries)):
        name = entry.split()[1]
        documented[name] = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", entry))
    assert set(documented) == set(sub.choices), "subcommands of the synopsis"
    for name, subparser in sub.choices.items():
        options = {
            opt
            for action in subparser._actions
            for opt in action.option_strings
            if opt.startswith("--") and opt != "--help"
        }
        assert documented[name] == options, f"neurosim {name}: synopsis vs parser"


def test_readme_python_examples_compile() -> None:
    """The Python blocks are at least valid Python (examples/ holds the scripts the tests run)."""
    blocks = [body for lang, body in code_blocks() if lang == "python"]
    for body in blocks:
        compile(body, "README.md", "exec")


DEFAULT_TIER = [c for c, q in COMMANDS.items() if q.tier == "default"]
#: in README order (analyze reads what the predict before it wrote)
SLOW_TIER = [
    c
    for c in readme_commands()
    if c in COMMANDS and COMMANDS[c].tier == "slow" and not COMMANDS[c].pending
]


@pytest.mark.parametrize("command", _params(DEFAULT_TIER))
def test_readme_command_runs(command: str, tmp_path: Path) -> None:
    _prepare(tmp_path)
    argv = [*shlex.split(command), *COMMANDS[command].extra]
    _check_ran(argv, _run(argv, tmp_path))


@pytest.mark.slow
def test_readme_commands_run_slow_tier(tmp_path: Path) -> None:
    """The rest, shortened, in README order in one folder (analyze reads what predict wrote)."""
    _prepare(tmp_path)
    failures = []
    for command in SLOW_TIER:
        argv = [*shlex.split(command), *COMMANDS[command].extra]
        proc = _run(argv, tmp_path)
        if proc.returncode != 0:
            failures.append(f"{shlex.join(argv)}: {proc.stderr.strip()[-1500:]}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_readme_configuration_example_runs(tmp_path: Path) -> None:
    _prepare(tmp_path)
    argv = [*CONFIG_EXAMPLE_COMMAND, *DP_QUICK]
    _check_ran(argv, _run(argv, tmp_path))

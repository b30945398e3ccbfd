"""Configuration: a TOML file plus ``--set key=value`` overrides, validated before anything runs.

A configuration has a ``[run]`` table (protocol, circuit, dataset, device, read-out, seed, epochs,
threads)
and one table per protocol and circuit holding their parameters, e.g. ``[protocol]`` and
``[circuit]``. Every table is checked against a pydantic model that forbids unknown keys, so a
typo, a wrong type or an out-of-range value is one :class:`ConfigError` naming the key and what is
allowed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neurosim.errors import ConfigError


class StrictModel(BaseModel):
    """Base for configuration tables: unknown keys are errors, types are strict (no ``true`` for a
    number, no ``"3"`` for an integer), NaN and infinity are refused."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False
    )


class RunConfig(StrictModel):
    """What to run, where, and with which seed."""

    protocol: str = "dendritic-prediction"
    preset: str | None = None
    circuit: str | None = None
    dataset: str | None = None
    #: how the data set's values become input rates (neurosim.datasets.encode); None: the data
    #: set's default, resolved before the run and written into config.toml
    input_code: Literal["identity", "on-off", "offset"] | None = None
    device: Literal["runtime", "cpp_standalone", "cuda_standalone"] | None = None
    readout: Literal["rate", "spiking"] | None = None
    seed: int = Field(1, ge=0, le=2**31 - 1)
    epochs: int | None = Field(None, ge=1, le=100000)
    #: OpenMP threads of the cpp_standalone builds (0: one core, no OpenMP)
    threads: int = Field(0, ge=0, le=1024)


def parse_value(text: str) -> Any:
    """Parse the right-hand side of ``--set key=value`` as a TOML value (bare words are strings)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["protocol.eta=0.1", "seed=3"]`` into a nested dict of overrides."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}.")
        parts = key.split(".")
        if len(parts) == 1:
            parts = ["run", parts[0]]
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set key {key!r} conflicts with another override.")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"--set key {key!r} conflicts with another override.")
        node[parts[-1]] = parse_value(value.strip())
    return nested


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a configuration file; a missing or malformed file is one clear error."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Configuration file {str(p)!r} does not exist.")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Configuration file {str(p)!r} is not valid TOML ({exc}).") from exc


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into ``base`` (override wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def validate_table(model: type[StrictModel], table: Mapping[str, Any], section: str) -> StrictModel:
    """Validate one table, turning the first pydantic error into one sentence naming the key."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"Configuration section [{section}] must be a table of keys.")
    try:
        return model.model_validate(dict(table))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(part) for part in err["loc"])
        key = f"{section}.{loc}" if loc else section
        new_name = getattr(model, "renamed", {}).get(loc)
        if err["type"] == "extra_forbidden" and new_name:
            raise ConfigError(
                f"Configuration key {key!r} was renamed {section}.{new_name}; use that name."
            ) from None
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields))
            raise ConfigError(
                f"Unknown configuration key {key!r}; allowed keys in [{section}]: {allowed}."
            ) from None
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        if not loc:  # a rule across several keys of the table
            raise ConfigError(f"Invalid configuration in [{section}]: {msg}.") from None
        got = err.get("input")
        raise ConfigError(f"Invalid value {got!r} for {key!r}: {msg}.") from None


def check_sections(config: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Reject unknown top-level tables."""
    allowed = list(allowed)
    for key in config:
        if key not in allowed:
            raise ConfigError(
                f"Unknown configuration section {key!r}; allowed sections: {', '.join(allowed)}."
            )

"""Presets: complete, explicit, named settings of a protocol, shipped as TOML files.

A protocol package keeps its presets in ``presets/<name>.toml`` beside its code. A preset holds a
``[preset]`` table (``description``) and the ``[run]``, ``[protocol]`` and ``[circuit]`` values it
fixes; the user's configuration file, command-line options and ``--set`` overrides go on top
(:func:`neurosim.cli.pipeline.build_raw`), and the resolved result is written into every run's
``config.toml``. Defaults live here, in one file per setting, not in code.
"""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path
from typing import Any

from neurosim.errors import ConfigError

#: tables a preset may hold
TABLES = ("preset", "run", "protocol", "circuit")


def preset_dir(protocol: Any) -> Path:
    """The folder of a protocol's presets: ``presets/`` beside the module defining its class."""
    cls = protocol if inspect.isclass(protocol) else type(protocol)
    return Path(inspect.getfile(cls)).parent / "presets"


def available(protocol: Any) -> dict[str, str]:
    """The protocol's presets, name -> description."""
    folder = preset_dir(protocol)
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.toml")):
        out[path.stem] = str(_read(path).get("preset", {}).get("description", ""))
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Preset file {str(path)!r} is not valid TOML ({exc}).") from exc
    unknown = set(data) - set(TABLES)
    if unknown:
        raise ConfigError(
            f"Preset file {str(path)!r} has unknown tables {sorted(unknown)}; allowed: "
            f"{', '.join(TABLES)}."
        )
    return data


def load(protocol: Any, name: str) -> dict[str, Any]:
    """The tables of preset ``name`` of ``protocol`` (without the ``[preset]`` table)."""
    names = available(protocol)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        pname = getattr(protocol, "name", "?")
        raise ConfigError(f"Protocol {pname!r} has no preset {name!r}; its presets: {known}.")
    data = _read(preset_dir(protocol) / f"{name}.toml")
    data.pop("preset", None)
    return data

"""Plasticity protocols: phases, nudging, learning rules, training loops, virtual experiments.

Each protocol is a module or a small package here that registers itself; every one is imported
here (the virtual experiments in ``protocols/experiments`` register through their own package),
so a new protocol is its own files and nothing else."""

import importlib
import pkgutil

import circuits  # noqa: F401  (registers the circuits, which protocols look up by name)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "experiments":
        importlib.import_module(f"{__name__}.{_module.name}")

"""Circuit builders: each module defines one circuit (a :class:`neurosim.circuit.Circuit`) and
registers it. Every module in this package is imported here, so a new circuit is one new file."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

"""Virtual experiments (DESIGN.md §4.7): one file each, registered with
:func:`neurosim.experiment.register_experiment`; every module in this package is imported here,
so a new experiment is one new file."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

"""neurosim: spiking cortical circuits trained by local plasticity, in Brian2 (DESIGN.md).

The engine lives here; circuits, protocols, models and analysis are the packages beside it.
"""

import warnings

# Brian2 2.8 imports setuptools' MSVC helpers on every platform, which warns on each start-up;
# keep the command line's stderr for messages that concern the user.
warnings.filterwarnings("ignore", message="_get_vc_env is private", category=UserWarning)

__version__ = "0.1.0"

#: the Python API (:mod:`neurosim.api`), imported on first use so that ``import neurosim`` stays
#: light: ``neurosim.run``, ``neurosim.analyze``, ``neurosim.predict``, ``neurosim.sweep``
_API = ("run", "analyze", "predict", "sweep", "RunResult")


def __getattr__(name: str):  # noqa: ANN202
    if name in _API:
        from neurosim import api

        return getattr(api, name)
    raise AttributeError(f"module 'neurosim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])

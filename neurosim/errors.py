"""Errors a user can act on.

Every failure the user can fix (bad configuration, unknown name, missing or corrupt file, no GPU)
is raised as a :class:`NeurosimError` whose message is one clear sentence; the command line prints
that sentence and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class NeurosimError(Exception):
    """A user-facing error: its message is one sentence that says what is wrong and what to do."""


class ConfigError(NeurosimError):
    """A configuration key, type or value is not allowed."""


class NoGPUError(NeurosimError):
    """The CUDA code was generated and compiled, but there is no GPU to run it on."""


class SimulationError(NeurosimError):
    """The dynamics produced NaN or infinite values, or the simulation binary failed."""

"""Which Brian2 device runs a circuit: ``runtime``, ``cpp_standalone`` or ``cuda_standalone``.

Circuits never name a device (DESIGN.md §2-3); the engine picks one by name here. Where no C++
compiler is found the default (``cpp_standalone``) falls back to ``runtime`` with one warning.
"""

from __future__ import annotations

import shutil
import sys
from functools import lru_cache

from neurosim.errors import NeurosimError

DEVICES: tuple[str, ...] = ("runtime", "cpp_standalone", "cuda_standalone")
DEFAULT_DEVICE = "cpp_standalone"
STANDALONE_DEVICES = frozenset({"cpp_standalone", "cuda_standalone"})

DEVICE_HELP = {
    "runtime": "Brian2's runtime target (cython/numpy): slow, for debugging and tiny runs",
    "cpp_standalone": "C++ standalone: compiled once per circuit structure, then re-run (default)",
    "cuda_standalone": "brian2cuda: CUDA code compiled once, run on an NVIDIA GPU",
}


@lru_cache(maxsize=1)
def has_cxx_compiler() -> bool:
    """True when a C++ compiler that Brian2's standalone mode can call is on the PATH."""
    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


def resolve_device(name: str | None) -> str:
    """Return the device to use for ``name`` (None means the default), checking it exists.

    The default falls back to ``runtime`` when there is no C++ compiler, with one warning line on
    stderr; asking for a standalone device explicitly without a compiler is an error.
    """
    if name is None or name == "default":
        if has_cxx_compiler():
            return DEFAULT_DEVICE
        print(
            "neurosim: warning: no C++ compiler found, falling back to the (slow) runtime device",
            file=sys.stderr,
        )
        return "runtime"
    if name not in DEVICES:
        raise NeurosimError(f"Unknown device {name!r}; choose one of {', '.join(DEVICES)}.")
    if name in STANDALONE_DEVICES and not has_cxx_compiler():
        raise NeurosimError(
            f"Device {name!r} needs a C++ compiler (g++ or clang++) and none was found on the PATH."
        )
    return name

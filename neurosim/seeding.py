"""One seed fixes numpy, torch and Brian2 (DESIGN.md §3 "Reproducibility").

numpy and torch are seeded here; Brian2's random numbers are seeded per run by the engine (a
standalone build takes the seed as a run-time value, see :mod:`neurosim.engine`), from seeds that
:func:`run_seed` derives from the user's seed, so every epoch draws fresh but reproducible noise.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch (if installed); return a numpy Generator for this run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # torch is optional for the Brian2-only protocols
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def run_seed(seed: int, *parts: int) -> int:
    """A reproducible 31-bit seed for one simulation run, derived from the user's seed."""
    seq = np.random.SeedSequence([seed, *parts])
    return int(seq.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch CPU threads (1: results repeat bit for bit, and small
    problems do not spin on a shared machine), then restore the caller's thread count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

"""Saving figures safely: matplotlib ``Figure`` objects (no pyplot state), written atomically."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from neurosim.results import atomic_write


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Save ``figure`` under a temporary name beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format=fmt, dpi=dpi))

"""Saving figures safely: matplotlib ``Figure`` objects (no pyplot state), written atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from matplotlib.figure import Figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Save ``figure`` under a temporary name beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        figure.savefig(temporary, format=fmt, dpi=dpi)
        os.replace(temporary, path)
    except Exception:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return path

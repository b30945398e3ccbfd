"""The dense weight layout every circuit shares: an all-to-all projection as one ``Synapses``
object whose synapses are in row-major (post, pre) order, so that the synaptic array ``w`` is a
(post, pre) weight matrix read row by row (DESIGN.md §3: one weight per pair, named matrices in
the bridge's neutral format)."""

from __future__ import annotations

import numpy as np


def dense_connectivity(n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of an all-to-all projection in row-major (post, pre) order: s = post*n_pre + pre."""
    i = np.tile(np.arange(n_pre, dtype=np.int32), n_post)
    j = np.repeat(np.arange(n_post, dtype=np.int32), n_pre)
    return i, j


def batched_connectivity(n_pre: int, n_post: int, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of ``batch`` copies of an all-to-all projection between groups of ``batch`` copies
    (copy b of a group holds cells b·n .. (b+1)·n − 1): copy b's synapses follow copy b − 1's,
    each copy in :func:`dense_connectivity`'s order, so the synaptic array is ``batch`` weight
    arrays one after the other (B·n_pre·n_post synapses: no synapse between copies)."""
    i, j = dense_connectivity(n_pre, n_post)
    copies = np.arange(batch, dtype=np.int32)[:, None]
    return (i + copies * n_pre).reshape(-1), (j + copies * n_post).reshape(-1)


def matrix_to_w(matrix: np.ndarray) -> np.ndarray:
    """A (post, pre) weight matrix as the synaptic array ``w`` of :func:`dense_connectivity`."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"a weight matrix must be 2-D, got shape {m.shape}")
    return m.reshape(-1).copy()


def w_to_matrix(w: np.ndarray, n_post: int, n_pre: int) -> np.ndarray:
    """The inverse of :func:`matrix_to_w`: ``w.reshape(n_post, n_pre)``."""
    arr = np.asarray(w, dtype=float)
    if arr.size != n_post * n_pre:
        raise ValueError(f"{arr.size} weights cannot form a {n_post}×{n_pre} matrix")
    return arr.reshape(n_post, n_pre)

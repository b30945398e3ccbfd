"""The grid world of Independently Controllable Features (DESIGN.md §4.4), pure numpy.

A 2×2 square of ones on a 12×12 canvas of zeros. A state is the position (x, y) of the square's
top-left corner, x the column and y the row, both in 0..10, so the square always lies fully on the
canvas. Four actions move it by one cell: 0 up (y − 1), 1 down (y + 1), 2 left (x − 1), 3 right
(x + 1); a move that would leave the canvas leaves the square where it is (clipped at the border).
The world is deterministic: each (state, action) has exactly one next state.

The positions are the ground-truth factors of the observations: :func:`render` turns them into
images (or, flattened, into the 144-dimensional inputs a circuit sees), and the measures of a
trained model regress its features on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CANVAS = 12
SQUARE = 2
#: the largest coordinate of the top-left corner (0..MAX_POS)
MAX_POS = CANVAS - SQUARE
ACTIONS = ("up", "down", "left", "right")
N_ACTIONS = len(ACTIONS)
UP, DOWN, LEFT, RIGHT = range(N_ACTIONS)
#: (dx, dy) of each action
MOVES = np.array([[0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)


def check_positions(positions: np.ndarray | Sequence) -> np.ndarray:
    """``positions`` as an int64 array of shape (n, 2) of (x, y), or a ValueError saying why."""
    p = np.asarray(positions)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"positions must have shape (n, 2) of (x, y); got shape {p.shape}.")
    if p.size and not np.issubdtype(p.dtype, np.integer):
        if not np.issubdtype(p.dtype, np.floating) or not np.all(p == np.round(p)):
            raise ValueError("positions must be whole numbers (cell coordinates).")
    p = p.astype(np.int64)
    if p.size and (p.min() < 0 or p.max() > MAX_POS):
        bad = p[np.any((p < 0) | (p > MAX_POS), axis=1)][0]
        raise ValueError(
            f"position {tuple(int(v) for v in bad)} is off the grid: x and y must lie in "
            f"0..{MAX_POS} (the {SQUARE}×{SQUARE} square stays on the {CANVAS}×{CANVAS} canvas)."
        )
    return p


def check_actions(actions: np.ndarray | Sequence | int, n: int | None = None) -> np.ndarray:
    """``actions`` as an int64 array of shape (n,) with values in 0..3, or a ValueError."""
    a = np.asarray(actions)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"actions must be integers 0..{N_ACTIONS - 1}; got dtype {a.dtype}.")
    a = a.astype(np.int64).reshape(-1) if a.ndim == 0 else a.astype(np.int64)
    if a.ndim != 1:
        raise ValueError(f"actions must be one-dimensional; got shape {a.shape}.")
    if n is not None and len(a) != n:
        raise ValueError(f"got {len(a)} actions for {n} positions; give one action per position.")
    if a.size and (a.min() < 0 or a.max() >= N_ACTIONS):
        raise ValueError(
            f"actions must lie in 0..{N_ACTIONS - 1} ({', '.join(ACTIONS)}); got {int(a.min())}"
            f"..{int(a.max())}."
        )
    return a


def all_positions() -> np.ndarray:
    """Every state, shape (121, 2): (x, y) with y the slow index (row-major, like the canvas)."""
    ys, xs = np.meshgrid(np.arange(MAX_POS + 1), np.arange(MAX_POS + 1), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)


def position_index(positions: np.ndarray | Sequence) -> np.ndarray:
    """The row of each position in :func:`all_positions` (y · 11 + x)."""
    p = check_positions(positions)
    return p[:, 1] * (MAX_POS + 1) + p[:, 0]


def render(positions: np.ndarray | Sequence) -> np.ndarray:
    """Images of the states, shape (n, 12, 12) float32: ones on the square, zeros elsewhere."""
    p = check_positions(positions)
    images = np.zeros((len(p), CANVAS, CANVAS), dtype=np.float32)
    for dy in range(SQUARE):
        for dx in range(SQUARE):
            images[np.arange(len(p)), p[:, 1] + dy, p[:, 0] + dx] = 1.0
    return images


def step(positions: np.ndarray | Sequence, actions: np.ndarray | Sequence | int) -> np.ndarray:
    """The next positions, shape (n, 2): each moved by its action, clipped to the canvas. One
    action (an int) applies to every position."""
    p = check_positions(positions)
    a = check_actions(actions)
    if a.shape == (1,) and np.ndim(actions) == 0:
        a = np.full(len(p), a[0], dtype=np.int64)
    a = check_actions(a, len(p))
    return np.clip(p + MOVES[a], 0, MAX_POS)


def next_states(positions: np.ndarray | Sequence) -> np.ndarray:
    """All next positions, shape (n, 4, 2): ``[:, a]`` is where action ``a`` leads. The world is
    deterministic, so these four are the whole distribution of s' given s."""
    p = check_positions(positions)
    return np.clip(p[:, None, :] + MOVES[None, :, :], 0, MAX_POS)


def moved(positions: np.ndarray | Sequence) -> np.ndarray:
    """Shape (n, 4) bool: whether action ``a`` changes the state (False where it hits the border,
    where the action cannot be told from the observations)."""
    p = check_positions(positions)
    return np.any(next_states(p) != p[:, None, :], axis=2)


class GridWorld:
    """A seeded sampler of states and actions over the grid world (``numpy.random.Generator``)."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def sample_positions(self, n: int) -> np.ndarray:
        """``n`` positions drawn uniformly over the 121 states, shape (n, 2)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}.")
        return self.rng.integers(0, MAX_POS + 1, size=(n, 2), dtype=np.int64)

    def sample_actions(self, n: int) -> np.ndarray:
        """``n`` actions drawn uniformly, shape (n,)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}.")
        return self.rng.integers(0, N_ACTIONS, size=n, dtype=np.int64)

    def sample_transitions(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` random transitions: positions, actions and next positions."""
        p, a = self.sample_positions(n), self.sample_actions(n)
        return p, a, step(p, a)

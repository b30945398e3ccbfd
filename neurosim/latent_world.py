"""A world of many latent variables, each driven by a few others, seen through a random mixture
(the test world of the Consciousness Prior, DESIGN.md §4.5, issue 5). Pure numpy.

* Graph: every variable i has exactly ``n_parents`` parents pa(i), drawn without replacement from
  the other variables (no self-loops) by a seeded generator. ``parents`` is an integer array
  (n_variables, n_parents); :func:`parent_matrix` gives the boolean adjacency A[i, j] = (j ∈ pa(i)).
* Dynamics (one step): z_{t+1, i} = tanh(Σ_{j ∈ pa(i)} W_ij z_{t, j} + b_i) + σ_z ε, ε ~ N(0, 1).
  |W_ij| ~ U(gain/2, gain) with a random sign, b_i ~ U(−0.5, 0.5). tanh keeps every variable in
  (−1 − noise, 1 + noise): the chain cannot blow up for any gain, and σ_z > 0 keeps it mixing.
* Observation: x_t = M z_t + σ_x η, with a fixed M (obs_dim, n_variables), entries N(0, 1/n),
  so each observed dimension is a mixture of all variables (obs_dim ≫ n_variables).
* Shift (:func:`shift`): a change of the distribution of chosen variables at one time step,
  z_j ← μ_j + scale (z_j − μ_j) + offset σ_j, for the chosen j only. Shifting the non-parents of i
  at time t leaves the law of z_{t+1, i} given its parents unchanged: a model that reads only the
  parents is unaffected, one that reads other variables is not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatentWorld:
    """The fixed parameters of one world (made by :func:`make_world`)."""

    parents: np.ndarray  # (n_variables, n_parents) int: the parents of each variable
    weights: np.ndarray  # (n_variables, n_variables): W_ij, 0 unless j is a parent of i
    bias: np.ndarray  # (n_variables,)
    mixing: np.ndarray  # (obs_dim, n_variables): M
    latent_noise: float
    obs_noise: float

    @property
    def n_variables(self) -> int:
        """Number of latent variables."""
        return int(self.weights.shape[0])

    @property
    def obs_dim(self) -> int:
        """Dimension of an observation x."""
        return int(self.mixing.shape[0])


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_nonnegative(name: str, value: float) -> None:
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")


def make_world(
    n_variables: int,
    n_parents: int,
    obs_dim: int,
    *,
    latent_noise: float = 0.4,
    obs_noise: float = 0.3,
    gain: float = 1.0,
    seed: int = 0,
) -> LatentWorld:
    """A world with a sparse random parent graph, its mechanisms and mixture, all from ``seed``."""
    _check_positive_int("n_variables", n_variables)
    _check_positive_int("n_parents", n_parents)
    _check_positive_int("obs_dim", obs_dim)
    if n_variables < 2:
        raise ValueError("n_variables must be at least 2 (a variable's parents are others)")
    if n_parents >= n_variables:
        raise ValueError(
            f"n_parents ({n_parents}) must be smaller than n_variables ({n_variables}): "
            "parents are drawn from the other variables"
        )
    _check_nonnegative("latent_noise", latent_noise)
    _check_nonnegative("obs_noise", obs_noise)
    if not np.isfinite(gain) or gain <= 0:
        raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    parents = np.empty((n_variables, n_parents), dtype=np.int64)
    weights = np.zeros((n_variables, n_variables))
    for i in range(n_variables):
        others = np.delete(np.arange(n_variables), i)
        pa = np.sort(rng.choice(others, size=n_parents, replace=False))
        parents[i] = pa
        magnitude = rng.uniform(gain / 2, gain, size=n_parents)
        weights[i, pa] = magnitude * rng.choice([-1.0, 1.0], size=n_parents)
    bias = rng.uniform(-0.5, 0.5, size=n_variables)
    mixing = rng.normal(0.0, 1.0 / np.sqrt(n_variables), size=(obs_dim, n_variables))
    for arr in (parents, weights, bias, mixing):
        arr.setflags(write=False)
    return LatentWorld(parents, weights, bias, mixing, float(latent_noise), float(obs_noise))


def parent_matrix(world: LatentWorld) -> np.ndarray:
    """Boolean adjacency A (n, n): A[i, j] is True when j is a parent of i."""
    a = np.zeros((world.n_variables, world.n_variables), dtype=bool)
    a[np.arange(world.n_variables)[:, None], world.parents] = True
    return a


def non_parents(world: LatentWorld, i: int) -> np.ndarray:
    """The variables that are not parents of ``i`` (``i`` itself included: it is not its own)."""
    if not 0 <= int(i) < world.n_variables:
        raise ValueError(f"variable index {i} is outside 0..{world.n_variables - 1}")
    return np.flatnonzero(~parent_matrix(world)[int(i)])


def _check_states(world: LatentWorld, z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    if z.ndim < 1 or z.shape[-1] != world.n_variables:
        raise ValueError(
            f"states must have {world.n_variables} variables in the last axis, got shape {z.shape}"
        )
    return z


def step(world: LatentWorld, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One step of the dynamics for states ``z`` (..., n_variables)."""
    z = _check_states(world, z)
    mean = np.tanh(z @ world.weights.T + world.bias)
    return mean + world.latent_noise * rng.standard_normal(mean.shape)


def sample_trajectories(
    world: LatentWorld, n_chains: int, n_steps: int, *, seed: int = 0, burn_in: int = 50
) -> np.ndarray:
    """Independent chains started at N(0, 1) and run ``burn_in`` steps before recording:
    array (n_chains, n_steps, n_variables)."""
    _check_positive_int("n_chains", n_chains)
    _check_positive_int("n_steps", n_steps)
    if isinstance(burn_in, bool) or not isinstance(burn_in, (int, np.integer)) or burn_in < 0:
        raise ValueError(f"burn_in must be a non-negative integer, got {burn_in!r}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_chains, world.n_variables))
    for _ in range(burn_in):
        z = step(world, z, rng)
    out = np.empty((n_chains, n_steps, world.n_variables))
    for t in range(n_steps):
        out[:, t] = z
        z = step(world, z, rng)
    return out


def sample_pairs(
    world: LatentWorld, n: int, *, seed: int = 0, steps_per_chain: int = 10, burn_in: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` transitions (z_t, z_{t+1}) from the stationary regime, each (n, n_variables):
    ⌈n / steps_per_chain⌉ chains, consecutive pairs of each, shuffled."""
    _check_positive_int("n", n)
    _check_positive_int("steps_per_chain", steps_per_chain)
    chains = -(-n // steps_per_chain)
    traj = sample_trajectories(world, chains, steps_per_chain + 1, seed=seed, burn_in=burn_in)
    z_t = traj[:, :-1].reshape(-1, world.n_variables)
    z_next = traj[:, 1:].reshape(-1, world.n_variables)
    order = np.random.default_rng([seed, 1]).permutation(len(z_t))[:n]
    return z_t[order], z_next[order]


def observe(world: LatentWorld, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Observations x = M z + σ_x η of states ``z`` (..., n_variables): (..., obs_dim)."""
    z = _check_states(world, z)
    x = z @ world.mixing.T
    return x + world.obs_noise * rng.standard_normal(x.shape)


def shift(
    z: np.ndarray,
    variables: Sequence[int] | np.ndarray,
    *,
    offset: float = 0.0,
    scale: float = 1.0,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``z`` (..., n) with the chosen variables moved: z_j ← μ_j + scale (z_j − μ_j) +
    offset σ_j (μ, σ: the given reference mean and std per variable, default the mean and std of
    ``z`` over all leading axes). The other variables are returned unchanged."""
    z = np.asarray(z, dtype=float)
    if z.ndim < 1:
        raise ValueError("z must have a variable axis")
    n = z.shape[-1]
    idx = np.asarray(variables, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"variables to shift must lie in 0..{n - 1}, got {idx.tolist()}")
    if not (np.isfinite(offset) and np.isfinite(scale)):
        raise ValueError("offset and scale must be finite")
    flat = z.reshape(-1, n)
    mu = flat.mean(axis=0) if mean is None else np.asarray(mean, dtype=float)
    sd = flat.std(axis=0) if std is None else np.asarray(std, dtype=float)
    if mu.shape != (n,) or sd.shape != (n,):
        raise ValueError(f"mean and std must have shape ({n},)")
    out = z.copy()
    out[..., idx] = mu[idx] + scale * (z[..., idx] - mu[idx]) + offset * sd[idx]
    return out


def sensitivity(
    predict: Callable[[np.ndarray], np.ndarray],
    world: LatentWorld,
    z: np.ndarray,
    eps: float = 1e-2,
) -> np.ndarray:
    """How strongly each output of ``predict`` (observations (n, obs_dim) → (n, outputs))
    depends on each latent variable: mean |∂ŷ_i/∂z_j| over the states ``z`` (n, n_variables),
    by central differences of step ``eps`` through the noise-free observation M z. Returns
    (outputs, n_variables)."""
    z = _check_states(world, z)
    if z.ndim != 2:
        raise ValueError(f"z must be (n, {world.n_variables}), got shape {z.shape}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be finite and > 0, got {eps}")
    columns = []
    for j in range(world.n_variables):
        up, down = z.copy(), z.copy()
        up[:, j] += eps
        down[:, j] -= eps
        diff = np.asarray(predict(up @ world.mixing.T)) - np.asarray(predict(down @ world.mixing.T))
        columns.append(np.mean(np.abs(diff), axis=0) / (2 * eps))
    return np.stack(columns, axis=1)

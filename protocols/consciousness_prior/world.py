"""Step 1 of a run: the latent world and its training and held-out transitions, each drawn from
its own seed derived from the run's (:func:`neurosim.seeding.run_seed` with parts 1–5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models import consciousness_prior as cp
from neurosim import latent_world as lw
from neurosim.seeding import run_seed
from protocols.consciousness_prior.config import ConsciousnessPriorConfig


@dataclass(frozen=True)
class Samples:
    """The world, its parent graph, the training transitions and the held-out ones (latent
    z_t, z_{t+1} and observed x_t), the training latents' mean and std (for the shift), and the
    training transitions' next states z_{t+1} (the targets of a circuit that learns them)."""

    world: lw.LatentWorld
    world_seed: int
    parents: np.ndarray
    train: cp.TrainData
    z_test: np.ndarray
    z_next_test: np.ndarray
    x_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    z_next_train: np.ndarray


def sample(cfg: ConsciousnessPriorConfig, seed: int) -> Samples:
    """The world (from ``cfg.world_seed`` if set) and its transitions, all from the run's seed."""
    world_seed = cfg.world_seed if cfg.world_seed is not None else run_seed(seed, 1)
    world = lw.make_world(
        cfg.n_variables, cfg.n_parents, cfg.obs_dim, latent_noise=cfg.latent_noise,
        obs_noise=cfg.obs_noise, gain=cfg.gain, seed=world_seed,
    )  # fmt: skip
    parents = lw.parent_matrix(world)
    z_t, z_next = lw.sample_pairs(world, cfg.n_train, seed=run_seed(seed, 2))
    obs_rng = np.random.default_rng(run_seed(seed, 3))
    train = cp.TrainData.from_arrays(
        lw.observe(world, z_t, obs_rng), lw.observe(world, z_next, obs_rng), z_t
    )
    zt_test, zn_test = lw.sample_pairs(world, cfg.n_test, seed=run_seed(seed, 4))
    x_test = lw.observe(world, zt_test, np.random.default_rng(run_seed(seed, 5)))
    return Samples(
        world, int(world_seed), parents, train, zt_test, zn_test, x_test,
        z_t.mean(axis=0), z_t.std(axis=0), z_next,
    )  # fmt: skip

"""Training of :mod:`models.icf`: Adam on the model and its heads, seeded by the settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from models.icf.model import ContinuousICF, DiscreteICF, ICFSettings, build_model
from models.icf.objective import WorldTensors, heads_loss, icf_loss, sample_factors
from neurosim import grid_world as gw


def train(
    settings: ICFSettings,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[DiscreteICF | ContinuousICF, dict[str, Any]]:
    """Train a model from scratch; returns it and its history (every ``log_every`` steps: the
    loss and its parts, averaged over those steps). ``callback(steps_done, record)`` is called at
    each record. Reproducible by ``settings.seed`` (torch and numpy generators)."""
    model = build_model(settings)
    world = WorldTensors()
    train_idx, test_idx = world.split(settings.holdout, settings.seed)
    train_mask = torch.zeros(len(world.positions), dtype=torch.bool)
    train_mask[torch.from_numpy(train_idx)] = True
    sampler = gw.GridWorld(np.random.default_rng([settings.seed, 1]))
    phi_gen = torch.Generator().manual_seed(settings.seed + 7919)
    head_params = list(model.heads.parameters())
    head_ids = {id(p) for p in head_params}
    main_params = [p for p in model.parameters() if id(p) not in head_ids]
    opt = torch.optim.Adam(
        [{"params": main_params, "lr": settings.lr}, {"params": head_params,
                                                        "lr": settings.heads_lr}]
    )  # fmt: skip
    keys = ("loss", "reconstruction", "selectivity", "transition", "inverse")
    history: dict[str, Any] = {"step": [], **{k: [] for k in keys}, "settings": asdict(settings)}
    sums = dict.fromkeys(keys, 0.0)
    count = 0
    start = time.perf_counter()
    for step in range(1, settings.steps + 1):
        idx = torch.from_numpy(gw.position_index(sampler.sample_positions(settings.batch)))
        phi = None
        if settings.variant == "continuous":
            phi = sample_factors(settings.n_features, settings.n_phi, phi_gen)
        lam = settings.lam * min(1.0, step / settings.warmup) if settings.warmup else None
        loss, parts = icf_loss(model, world, idx, settings, phi, lam)
        in_train = train_mask[idx]
        t_loss, i_loss = heads_loss(
            model, world, idx[in_train], parts["h"][in_train], parts["h_next"][in_train],
            parts["pi"][in_train], phi,
        )  # fmt: skip
        opt.zero_grad(set_to_none=True)
        (loss + t_loss + i_loss).backward()
        opt.step()
        vals = {"loss": loss, "transition": t_loss, "inverse": i_loss}
        vals.update({k: parts[k] for k in ("reconstruction", "selectivity")})
        for k, v in vals.items():
            sums[k] += float(v.detach())
        count += 1
        if step % settings.log_every == 0 or step == settings.steps:
            record = {k: sums[k] / count for k in keys}
            history["step"].append(step)
            for k in keys:
                history[k].append(record[k])
            sums, count = dict.fromkeys(keys, 0.0), 0
            if callback is not None:
                callback(step, record)
    wall = time.perf_counter() - start
    history["wall_seconds"] = wall
    history["samples_per_second"] = settings.steps * settings.batch / wall
    model.eval()
    return model, history

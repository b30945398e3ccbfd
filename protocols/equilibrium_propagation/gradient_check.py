"""The gradient check (Ernoult et al. 2019; DESIGN.md §4.3): the circuit's EP update against minus
the loss gradient of the torch twin at the free fixed point, per parameter and β, for one-sided
and symmetric nudging; the continual rule against the end-point update per time step; and the
``gradient-check`` stage that runs both on fixed weights."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models import equilibrium_propagation as ep
from neurosim.engine import Simulation
from neurosim.protocol import ProtocolResult
from neurosim.records.equilibrium_propagation import EPRecord
from neurosim.seeding import run_seed
from protocols.equilibrium_propagation.config import SETTLED_TOLERANCE
from protocols.equilibrium_propagation.layout import padded, timed_layout
from protocols.equilibrium_propagation.simulation import Session, rule_values, static_values


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float("nan")


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖."""
    den = np.linalg.norm(np.ravel(b))
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / den) if den > 0 else float("nan")


def correlations(rates: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """ρ_k ρ_{k−1}ᵀ (``W{k}``) and ρ_k (``b{k}``) of one state, ``rates`` = [ρ0, ρ1, ..., ρN]."""
    out = {f"W{k}": np.outer(rates[k], rates[k - 1]) for k in range(1, len(rates))}
    out.update({f"b{k}": np.asarray(rates[k], dtype=float) for k in range(1, len(rates))})
    return out


def rates_of(ses: Session) -> Any:
    """ρ of layers 1..N as a numpy function, from the circuit's ``activation`` (the input's rate
    is clip(x, 0, 1) whatever it is)."""
    if ses.params.activation == "smooth_sigmoid":
        return lambda s: 1.0 / (1.0 + np.exp(-4.0 * (np.asarray(s) - 0.5)))
    return lambda s: np.clip(s, 0, 1)


def weakest(row: Mapping[str, Any]) -> dict[str, Any]:
    """The weakest per-parameter numbers of one (estimator, β) row, each with its parameter."""
    cos, rel = row["cosine"], row["relative_error"]
    low, high = min(cos, key=cos.get), max(rel, key=rel.get)
    return {
        "cosine_min": cos[low],
        "cosine_min_parameter": low,
        "relative_error_max": rel[high],
        "relative_error_max_parameter": high,
    }


def summary(table: Mapping[str, Any], betas: Sequence[float]) -> list[dict[str, Any]]:
    """One row per estimator and β: the weakest cosine and the largest relative error over the
    parameters, naming the estimator, β and parameter they belong to."""
    return [
        {"estimator": mode, "beta": float(b), **weakest(table[mode][f"{b:g}"])}
        for mode in ("one-sided", "symmetric")
        for b in betas
    ]


def _torch_weights(w: Mapping[str, np.ndarray]) -> dict[str, Any]:
    import torch

    return {k: torch.tensor(v) for k, v in w.items()}


def examples_with_loss(
    ses: Session, w: Mapping[str, np.ndarray], n: int
) -> tuple[np.ndarray, float]:
    """The first ``n`` test examples whose loss *gradient* at the free fixed point is not 0
    (twin), and the share of test examples with zero loss. A trained hard-sigmoid circuit puts
    most outputs exactly on their 0/1 targets: loss, gradient and EP update are then exactly 0.
    An output clipped at 0 or 1 on the wrong side of its target has a loss but passes no gradient
    (ρ' = 0 there), so examples whose loss sits only on clipped outputs are left out too. Returns
    no example at all when every gradient vanishes (then the check is undefined)."""
    params, tw = ses.twin(), _torch_weights(w)
    x, d = ses.task.data.x_test, ses.task.d_test
    try:
        state = ep.fixed_point(params, tw, x).state
    except RuntimeError:  # no converged fixed point for some example: keep the order
        return np.arange(min(n, len(x))), float("nan")
    loss = ep.cost(params, state, d).numpy()
    chosen: list[int] = []
    for i in np.flatnonzero(loss > 1e-12):
        free = ep.HopfieldState(tuple(s[i : i + 1] for s in state.s))  # solved above
        g = ep.loss_gradient(params, tw, x[i : i + 1], d[i : i + 1], free=free).grads
        if max(float(v.abs().max()) for v in g.values()) > 1e-12:
            chosen.append(int(i))
            if len(chosen) == n:
                break
    return np.array(chosen, dtype=int), float(np.mean(loss <= 1e-12))


def references(ses: Session, w: Mapping[str, np.ndarray], x: np.ndarray, d: np.ndarray) -> list:
    """The twin's per-example loss gradients at the free fixed point, and fixed points."""
    params, tw = ses.twin(), _torch_weights(w)
    return [ep.loss_gradient(params, tw, x[i : i + 1], d[i : i + 1]) for i in range(len(x))]


def training_layout_check(
    ses: Session, sim: Simulation, w: Mapping[str, np.ndarray], x: np.ndarray, d: np.ndarray
) -> dict[str, Any]:
    """The update training makes, with the weights held fixed: the training build with its own
    phases at the protocol's β and learning rates 0; each example's end-point update from the
    recorded states (what the latch applies; the continual rule's centred sum), against −∇L of
    the twin at the free fixed point."""
    plan, P, B = ses.plan, ses.plan.P, ses.plan.batch
    n = min(len(x), P * B)
    x, d = x[:n], d[:n]
    betas = np.zeros(P)
    betas[: -(-n // B)] = plan.beta
    tv, _, _ = timed_layout(ses.circuit, plan, padded(x, P * B), padded(d, P * B), betas)
    values = {
        **ses.weight_values(w, B),
        **static_values(ses.circuit, plan, ses.task.cfg.p_fail),
        **rule_values(ses.circuit, plan, 0.0),
    }
    result = sim.run(values=values, timed=tv, seed=run_seed(ses.run.seed, 6))
    ses.builds.count()
    unit = plan.unit_steps
    e_units = plan.example_steps // unit
    f_units, n_units = plan.free_steps // unit, plan.nudged_steps // unit
    symmetric = plan.variant == "symmetric"
    rho = rates_of(ses)
    # one row block per example: presentation i // B, copy i % B (batch mode)
    mons = [
        ses.circuit.unbatch_rows(result.monitors[f"layer{k}"]["s"], B).reshape(-1, B, n_k)
        for k, n_k in enumerate(plan.sizes[1:], start=1)
    ]
    grads = [{k: v.numpy() for k, v in r.grads.items()} for r in references(ses, w, x, d)]
    updates = []
    for i in range(n):
        start = (i // B) * e_units

        def rates(idx: int, i: int = i) -> list[np.ndarray]:
            return [np.clip(x[i], 0, 1)] + [rho(m[idx, i % B]) for m in mons]

        low = rates(start + f_units + (n_units if symmetric else 0))
        high = rates(start + e_units)
        c_hi, c_lo = correlations(high), correlations(low)
        denom = 2 * plan.beta if symmetric else plan.beta
        updates.append({k: (c_hi[k] - c_lo[k]) / denom for k in c_hi})
    mean_u = {k: np.mean([u[k] for u in updates], axis=0) for k in grads[0]}
    mean_g = {k: np.mean([g[k] for g in grads], axis=0) for k in grads[0]}
    agree = ep.gradient_agreement(mean_u, mean_g)
    per = {
        k: float(np.nanmean([cosine(u[k], -g[k]) for u, g in zip(updates, grads, strict=True)]))
        for k in mean_g
    }
    return {
        "grad_estimator": "symmetric" if symmetric else "one-sided",
        "grad_beta": plan.beta,
        "grad_cosine": {k: a.cosine for k, a in agree.items()},
        "grad_relative_error": {k: a.relative_error for k, a in agree.items()},
        "grad_sign_agreement": {k: a.sign_agreement for k, a in agree.items()},
        "grad_cosine_per_example_mean": per,
        "grad_examples": n,
        "grad_phases": "training (free_steps, nudged_steps)",
    }


def grad_simulation(
    ses: Session, dt: float, n_examples: int, phases: int
) -> tuple[Simulation, dict[str, Any]]:
    """Long, settled phases; continual rule in ``measure`` mode (accumulators), weights held
    fixed; every layer's state recorded at the phase boundaries."""
    cfg, circuit, sizes = ses.task.cfg, ses.circuit, ses.plan.sizes
    free_ms, nudged_ms = cfg.grad_free_ms, cfg.grad_nudged_ms
    names = circuit.timed_names(
        circuit.Structure(sizes=sizes, plasticity=("continual",), example_ms=1.0)
    )
    timed, timed_dt, example_ms = circuit.example_timed(
        np.zeros((n_examples, sizes[0])), np.zeros((n_examples, sizes[-1])), 0.0,
        free_ms=free_ms, nudged_ms=nudged_ms, dt_ms=dt, phases=phases, names=names,
    )  # fmt: skip
    unit_ms = math.gcd(round(free_ms / dt), round(nudged_ms / dt)) * dt
    structure = circuit.Structure(
        sizes=sizes, plasticity=("continual",), example_ms=example_ms, measure=True,
        record={f"layer{k}": ("s",) for k in range(1, len(sizes))}, record_dt_ms=unit_ms,
        timed_dt_ms=timed_dt, examples=n_examples,
    )  # fmt: skip
    sim = Simulation(
        circuit.builder(structure, ses.params, dt),
        device=ses.run.device,
        duration_ms=circuit.duration_ms(n_examples, example_ms, dt),
        dt_ms=dt,
        initial_timed=timed,
        label=f"{circuit.name}-gradcheck-{phases}-dt{dt:g}",
    )
    layout = {
        "free_ms": free_ms,
        "nudged_ms": nudged_ms,
        "phases": phases,
        "names": names,
        "unit_ms": unit_ms,
        "example_ms": example_ms,
    }
    return sim, layout


def measure(
    ses: Session,
    sim: Simulation,
    layout: Mapping[str, Any],
    w: Mapping[str, np.ndarray],
    x: np.ndarray,
    d: np.ndarray,
    beta: float,
    symmetric: bool,
    centred: float,
    seed: int,
) -> dict[str, Any]:
    """One run of the gradient-check build: the accumulated update (summed over the examples)
    and, from the recorded states, each example's end-point update and free state."""
    free_ms, nudged_ms, phases = layout["free_ms"], layout["nudged_ms"], layout["phases"]
    unit_ms, example_ms = layout["unit_ms"], layout["example_ms"]
    circuit, dt, sizes = ses.circuit, sim.dt_ms, ses.plan.sizes
    N = len(sizes) - 1
    timed, _, _ = circuit.example_timed(
        x, d, beta, free_ms=free_ms, nudged_ms=nudged_ms, dt_ms=dt, symmetric=symmetric,
        phases=phases, names=layout["names"],
    )  # fmt: skip
    values = {
        **ses.weight_values(w),
        **circuit.eta_values(sizes, continual=0.0),
        **{f"W{k}.centred": float(centred) for k in range(1, N + 1)},
    }
    read = tuple(f"W{k}.dW" for k in range(1, N + 1))
    read += tuple(f"layer{k}.db" for k in range(1, N + 1))
    result = sim.run(values=values, timed=timed, seed=seed, read=read)
    ses.builds.count()
    acc: dict[str, np.ndarray] = {}
    for name, shape in circuit.weight_shapes(circuit.Structure(sizes=sizes)).items():
        if name.startswith("W"):
            acc[name] = ep_matrix(result.state[f"{name}.dW"], shape)
        else:
            acc[name] = np.asarray(result.state[f"layer{name[1:]}.db"])
    per_unit = round(unit_ms / dt)
    e_units = round(example_ms / dt) // per_unit
    f_units = round(free_ms / dt) // per_unit
    n_units = round(nudged_ms / dt) // per_unit
    per_example, free_states = [], []
    rho = rates_of(ses)
    for i in range(len(x)):
        start = i * e_units

        def state(idx: int, i: int = i) -> list[np.ndarray]:
            return [np.clip(x[i], 0, 1)] + [
                rho(result.monitors[f"layer{k}"]["s"][idx]) for k in range(1, N + 1)
            ]

        def raw(idx: int) -> list[np.ndarray]:
            return [result.monitors[f"layer{k}"]["s"][idx] for k in range(1, N + 1)]

        free = state(start + f_units)
        low = state(start + f_units + n_units) if symmetric else free
        high = state(start + e_units)
        denom = 2 * beta if symmetric else beta
        c_hi, c_lo = correlations(high), correlations(low)
        per_example.append({k: (c_hi[k] - c_lo[k]) / denom for k in c_hi})
        free_states.append(raw(start + f_units))
    return {"accumulated": acc, "per_example": per_example, "free": free_states, "run": result}


def ep_matrix(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A synaptic variable in connection order (post-major) as a (post, pre) matrix."""
    from neurosim.connectivity import w_to_matrix

    return w_to_matrix(flat, *shape)


def grad_curves(
    ses: Session,
    sim: Simulation,
    layout: Mapping[str, Any],
    w: Mapping[str, np.ndarray],
    x: np.ndarray,
    d: np.ndarray,
    betas: Sequence[float],
    progress: Any,
) -> dict[str, Any]:
    """Per nudging mode and β: the circuit's EP update against −∇L of the twin."""
    refs = references(ses, w, x, d)
    grads = [{k: v.numpy() for k, v in r.grads.items()} for r in refs]
    mean_grad = {k: np.mean([g[k] for g in grads], axis=0) for k in grads[0]}
    # the smooth sigmoid has no bounds: no margin
    margins = np.array([float(r.margin[0]) if r.margin is not None else np.nan for r in refs])
    table: dict[str, Any] = {}
    fp_error = 0.0
    for mode in ("one-sided", "symmetric"):
        rows: dict[str, Any] = {}
        for j, beta in enumerate(betas):
            m = measure(
                ses, sim, layout, w, x, d, beta, mode == "symmetric", 1.0,
                run_seed(ses.run.seed, 7, j, int(mode == "symmetric")),
            )  # fmt: skip
            errors = np.array(
                [
                    max(
                        float(np.abs(m["free"][i][k] - ref.free.s[k].numpy()[0]).max())
                        for k in range(ses.plan.n_layers)
                    )
                    for i, ref in enumerate(refs)
                ]
            )
            fp_error = max(fp_error, float(errors.max()))
            rows[f"{beta:g}"] = _curve_row(m, grads, mean_grad, errors, beta)
            progress(0, f"gradient check {mode} β={beta:g}")
        table[mode] = rows
    table["free_fixed_point_error"] = fp_error  # max over examples: circuit vs twin
    table["examples"] = len(x)
    smooth = np.isnan(margins).all()  # no kinks: no margin to report
    table["margin_min"] = None if smooth else float(np.min(margins))
    table["margin_median"] = None if smooth else float(np.median(margins))
    table["loss"] = float(np.mean([r.loss for r in refs]))
    table["free_ms"], table["nudged_ms"] = ses.task.cfg.grad_free_ms, ses.task.cfg.grad_nudged_ms
    return table


def _curve_row(
    m: Mapping[str, Any],
    grads: Sequence[Mapping[str, np.ndarray]],
    mean_grad: Mapping[str, np.ndarray],
    errors: np.ndarray,
    beta: float,
) -> dict[str, Any]:
    """One β of the gradient check: agreement of the mean update over the settled examples (an
    example whose free phase has not reached the twin's fixed point has no gradient to compare
    with: it is left out of the means and counted) and per example."""
    settled = np.flatnonzero(errors <= SETTLED_TOLERANCE)
    use = settled if len(settled) else np.arange(len(errors))
    update = {k: np.mean([m["per_example"][i][k] for i in use], axis=0) for k in mean_grad}
    target = {k: np.mean([grads[i][k] for i in use], axis=0) for k in mean_grad}
    agree = ep.gradient_agreement(update, target)
    per_cos = {k: [cosine(m["per_example"][i][k], -grads[i][k]) for i in use] for k in mean_grad}
    states_sum = {k: np.sum([u[k] for u in m["per_example"]], axis=0) for k in update}
    consistency = max(relative_error(states_sum[k], m["accumulated"][k]) for k in update)
    return {
        "beta": beta,
        "cosine": {k: a.cosine for k, a in agree.items()},
        "relative_error": {k: a.relative_error for k, a in agree.items()},
        "sign_agreement": {k: a.sign_agreement for k, a in agree.items()},
        "cosine_per_example_mean": {k: float(np.nanmean(v)) for k, v in per_cos.items()},
        "cosine_per_example_min": {k: float(np.nanmin(v)) for k, v in per_cos.items()},
        "accumulator_vs_states": consistency,
        "unsettled_examples": len(errors) - len(settled),
    }


def continual_vs_dt(
    ses: Session, w: Mapping[str, np.ndarray], x: np.ndarray, d: np.ndarray, progress: Any
) -> dict[str, Any]:
    """Per step dt: the continual (ds/dt) rule integrated by the circuit (product rule,
    centred = 0) against the end-point two-phase update of the same phases (centred = 1) and
    the twin's exact two-phase update; weights held fixed."""
    cfg = ses.task.cfg
    beta = cfg.beta
    out: dict[str, Any] = {}
    # the projected dynamics' fixed points, and so the exact update, do not depend on dt
    params, tw = ses.twin(), _torch_weights(w)
    exact = {
        k: np.mean([
            ep.ep_update(params, tw, x[i : i + 1], d[i : i + 1], beta=beta).update[k].numpy()
            for i in range(len(x))
        ], axis=0)
        for k in w
    }  # fmt: skip
    fixed = [ep.fixed_point(params, tw, x[i : i + 1]).state for i in range(len(x))]
    for dt in cfg.continual_dts:
        sim, layout = grad_simulation(ses, dt, len(x), 2)
        ses.builds.add(sim)
        seed = run_seed(ses.run.seed, 5)
        prod = measure(ses, sim, layout, w, x, d, beta, False, 0.0, seed)
        tele = measure(ses, sim, layout, w, x, d, beta, False, 1.0, seed)
        p = {k: v / len(x) for k, v in prod["accumulated"].items()}
        t = {k: v / len(x) for k, v in tele["accumulated"].items()}
        fp = max(
            float(np.abs(prod["free"][i][k] - fixed[i].s[k].numpy()[0]).max())
            for i in range(len(x))
            for k in range(ses.plan.n_layers)
        )
        row = {
            "dt": dt,
            "continual_vs_two_phase": {k: relative_error(p[k], t[k]) for k in p},
            "continual_vs_exact": {k: relative_error(p[k], exact[k]) for k in p},
            "two_phase_vs_exact": {k: relative_error(t[k], exact[k]) for k in p},
            "free_fixed_point_error": fp,
            "wall_seconds": prod["run"].wall_seconds + tele["run"].wall_seconds,
            "compile_seconds": sim.compile_seconds,
        }
        row["continual_vs_two_phase_max"] = max(row["continual_vs_two_phase"].values())
        row["continual_vs_exact_max"] = max(row["continual_vs_exact"].values())
        out[f"{dt:g}"] = row
        progress(1, f"continual dt={dt:g}: {row['continual_vs_two_phase_max']:.2e}")
    return out


def check_trained(
    ses: Session,
    sim: Simulation,
    w_end: Mapping[str, np.ndarray],
    w0: Mapping[str, np.ndarray],
    progress: Any,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The training stage's gradient check on the trained weights (on the initial ones where
    every loss gradient vanishes at the trained weights): metrics, and the curve against β."""
    cfg, task = ses.task.cfg, ses.task
    w_check, checked_on = w_end, "trained"
    chosen, zero_share = examples_with_loss(ses, w_end, cfg.grad_examples)
    if len(chosen) == 0:
        # every loss gradient vanishes at the trained weights (outputs on their targets or
        # clipped): the update's direction is then compared on the initial weights
        w_check, checked_on = w0, "initial"
        chosen, _ = examples_with_loss(ses, w0, cfg.grad_examples)
    if len(chosen) == 0:
        progress(1, "gradient check skipped: every gradient vanishes")
        return {
            "grad_zero_loss_share": zero_share,
            "grad_check_skipped": "every test example's loss gradient vanishes at the trained "
            "and at the initial weights: no direction to compare",
        }, None
    n_grad = len(chosen)
    grad_sim, layout = grad_simulation(ses, cfg.dt_ms, n_grad, 3)
    ses.builds.add(grad_sim)
    betas = sorted(set(cfg.grad_betas) | {cfg.beta}, reverse=True)
    x, d = task.data.x_test[chosen], task.d_test[chosen]
    own = "symmetric" if task.variant in ("symmetric", "stochastic") else "one-sided"
    table = grad_curves(ses, grad_sim, layout, w_check, x, d, betas, progress)
    at = table[own][f"{cfg.beta:g}"]
    grad: dict[str, Any] = {
        "grad_test_examples": [int(i) for i in chosen],
        "grad_zero_loss_share": zero_share,
        "grad_check_weights": checked_on,
        "grad_nudging": own,
        "grad_check": table,
        "grad_cosine_settled": at["cosine"],
        "grad_weakest": summary(table, betas),
    }
    if task.variant != "stochastic":
        grad.update(training_layout_check(ses, sim, w_check, x, d))
    else:  # time averages are not end points: the settled, noiseless check stands in
        grad.update(
            {
                "grad_estimator": own,
                "grad_beta": cfg.beta,
                "grad_cosine": at["cosine"],
                "grad_relative_error": at["relative_error"],
                "grad_sign_agreement": at["sign_agreement"],
                "grad_cosine_per_example_mean": at["cosine_per_example_mean"],
                "grad_examples": n_grad,
                "grad_phases": "settled (grad_free_ms, grad_nudged_ms), no noise",
            }
        )
    progress(1, f"gradient check: cosine {grad.get('grad_cosine', at['cosine'])}")
    return grad, curve_arrays(table, betas)


def gradient_check_stage(ses: Session, progress: Any) -> ProtocolResult:
    """No learning: the gradient check at every β (``grad_betas`` and the training β) and the
    continual rule at every step, on initial weights (Glorot × ``w_scale``) and the first
    ``grad_examples`` test digits. Summary values name their estimator, β and parameter
    (``grad_weakest``, ``grad_at_training_beta``, ``grad_at_smallest_beta``)."""
    cfg, task, run = ses.task.cfg, ses.task, ses.run
    w = {
        name: v.numpy().copy()
        for name, v in ep.init_weights(
            task.sizes, seed=run.seed, scale=cfg.w_scale, bias_scale=cfg.bias_scale
        ).items()
    }
    n = min(cfg.grad_examples, len(task.data.x_test))
    x, d = task.data.x_test[:n], task.d_test[:n]
    sim, layout = grad_simulation(ses, cfg.dt_ms, n, 3)
    ses.builds.add(sim)
    betas = sorted(set(cfg.grad_betas) | {cfg.beta}, reverse=True)
    table = grad_curves(ses, sim, layout, w, x, d, betas, progress)
    progress(2 * len(betas), "continual against two-phase")
    m = min(cfg.continual_examples, n)
    dts = continual_vs_dt(ses, w, x[:m], d[:m], progress)
    finest = dts[f"{min(cfg.continual_dts):g}"]

    def at(beta: float) -> dict[str, Any]:
        return {"beta": beta} | {
            mode: weakest(table[mode][f"{beta:g}"]) for mode in ("one-sided", "symmetric")
        }

    metrics: dict[str, Any] = {
        "activation": ses.params.activation,
        "grad_check": table,
        "grad_weakest": summary(table, betas),
        "grad_at_training_beta": at(cfg.beta),
        "grad_at_smallest_beta": at(min(betas)),
        "smallest_beta": min(betas),
        "free_fixed_point_error": table["free_fixed_point_error"],
        "w_scale": cfg.w_scale,
        "continual_vs_dt": dts,
        "continual_vs_two_phase_finest_dt": finest["continual_vs_two_phase_max"],
        "continual_vs_exact_finest_dt": finest["continual_vs_exact_max"],
        "continual_examples": m,
    }

    def per_dt(measure_name: str) -> dict[str, np.ndarray]:
        return {
            name: np.array([dts[f"{v:g}"][measure_name][name] for v in cfg.continual_dts])
            for name in w
        }

    record = EPRecord(
        stage="gradient-check",
        grad_curve=curve_arrays(table, betas),
        dts=np.asarray(cfg.continual_dts, dtype=float),
        continual_error=per_dt("continual_vs_two_phase"),
        continual_error_exact=per_dt("continual_vs_exact"),
    )
    return ProtocolResult(metrics=metrics, segments=[], weights=w, data=record)


def curve_arrays(table: Mapping[str, Any], betas: Sequence[float]) -> dict[str, Any]:
    """The gradient check as arrays against β, per mode and measure and parameter."""
    out: dict[str, Any] = {"betas": np.asarray(betas, dtype=float)}
    for mode in ("one-sided", "symmetric"):
        if mode not in table:
            continue
        rows = [table[mode][f"{b:g}"] for b in betas]
        for name in ("cosine", "relative_error", "sign_agreement"):
            out[f"{mode}/{name}"] = {p: np.array([r[name][p] for r in rows]) for p in rows[0][name]}
    return out

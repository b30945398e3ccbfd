"""EP's one-sided and symmetric gradient estimators against the true gradient, per activation and
β, and why the symmetric one loses on the hard sigmoid (issue 16, item 6).

    PYTHONPATH=. .venv/bin/python benchmarks/ep_gradient_estimators.py            # ~1-2 min
    PYTHONPATH=. .venv/bin/python benchmarks/ep_gradient_estimators.py --epochs 0  # initial only

On the torch twin (its exact fixed points: the circuit's settled states equal them to ~1e-12,
README), digits 64-100-10, seed 1, the first ``--examples`` test digits whose loss gradient is
not 0, for the hard sigmoid and the smooth sigmoid (Laborieux et al. 2021), on two weight sets:
``initial`` (Glorot × 0.5, the gradient-check stage's) and ``trained`` (Glorot × 1 trained by
two-phase EP with the training preset's phases and rates, batch 1, ``--epochs`` epochs).

For every β it reports, per estimator (one-sided: (ρ^β ρ^β − ρ⁰ ρ⁰)/β; symmetric:
(ρ^β ρ^β − ρ^{−β} ρ^{−β})/2β) and parameter, the cosine and relative error of the mean update
against minus the mean loss gradient at the free fixed point (implicit differentiation), and
the slope of log(error) against log(β). On the hard sigmoid it counts the *kink crossings*: units
whose side of the clip (drive u = s − ∂F/∂s below 0, inside (0, 1), above 1) in the +β or −β
phase differs from the free phase, and recomputes the errors on the examples where no unit
crosses in either phase. Writes ``estimators.json`` and ``estimators.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from analysis.figures import save_figure
from models import equilibrium_propagation as ep
from neurosim import datasets as ds

SIZES = (64, 100, 10)
BETAS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 5e-3, 2e-3, 1e-3)
ESTIMATORS = ("one-sided", "symmetric")


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(SIZES[-1])[np.asarray(labels, dtype=int)]


def train(params: ep.EPParameters, w: ep.Weights, x: np.ndarray, d: np.ndarray, epochs: int):
    """Two-phase EP as the training preset runs it: batch 1, 20 free / 4 nudged steps of 0.5,
    β 0.5, rates (0.1, 0.05) × 0.85 per epoch."""
    xt, dt = torch.tensor(x), torch.tensor(d)
    lr = np.array([0.1, 0.05])
    for _ in range(epochs):
        for i in range(len(x)):
            w, _ = ep.train_batch(params, w, xt[i : i + 1], dt[i : i + 1], list(lr))
        lr = lr * 0.85
    return w


def chosen_examples(params, w, x, d, n) -> np.ndarray:
    """The first ``n`` examples whose loss gradient at the free fixed point is not 0."""
    out = []
    for i in range(len(x)):
        g = ep.loss_gradient(params, w, x[i : i + 1], d[i : i + 1]).grads
        if max(float(v.abs().max()) for v in g.values()) > 1e-12:
            out.append(i)
            if len(out) == n:
                break
    return np.array(out, dtype=int)


def correlations(x: torch.Tensor, s: ep.HopfieldState, rate: ep.RateFunction) -> dict:
    """Per example ρ_k ρ_{k−1}ᵀ and ρ_k, (batch, ...)."""
    r = [ep.rho(x)] + [rate.rho(v) for v in s.s]
    out = {f"W{k}": r[k][:, :, None] * r[k - 1][:, None, :] for k in range(1, len(r))}
    out.update({f"b{k}": r[k] for k in range(1, len(r))})
    return out


def sides(params, w, s: ep.HopfieldState, x, d, beta) -> torch.Tensor:
    """Side of the clip of every unit at a fixed point: −1 (drive ≤ 0), 0 inside, +1 (≥ 1)."""
    g = ep.gradient(params, w, s, x, d if beta else None, beta)
    u = torch.cat([v - gv for v, gv in zip(s.s, g.s, strict=True)], dim=1)
    return (u >= 1.0).long() - (u <= 0.0).long()


def crossing_details(free, side0, cross_p, cross_m, d) -> list[dict[str, Any]]:
    """Each unit that crosses a kink in a nudged phase: example, layer, unit, its free state and
    side, the phase(s) it crosses in and, for an output unit, its target."""
    s0 = torch.cat(list(free.s), dim=1)
    out = []
    for i, j in torch.nonzero(cross_p | cross_m).tolist():
        layer = 1 if j < SIZES[1] else 2
        unit = j if layer == 1 else j - SIZES[1]
        item = {
            "example": i, "layer": layer, "unit": unit, "free_state": float(s0[i, j]),
            "free_side": int(side0[i, j]), "plus": bool(cross_p[i, j]),
            "minus": bool(cross_m[i, j]),
        }  # fmt: skip
        if layer == 2:
            item["target"] = float(d[i, unit])
        out.append(item)
    return out


def agreement(update: dict, grad: dict, use: np.ndarray) -> dict[str, dict[str, float]]:
    """Per parameter: cosine and relative error of the mean update over ``use`` against −∇L."""
    if len(use) == 0:
        return {}
    u = {k: v[use].mean(0) for k, v in update.items()}
    g = {k: v[use].mean(0) for k, v in grad.items()}
    a = ep.gradient_agreement(u, g)
    return {k: {"cosine": v.cosine, "relative_error": v.relative_error} for k, v in a.items()}


def case(activation: str, w: ep.Weights, x: np.ndarray, d: np.ndarray) -> dict[str, Any]:
    """Every β and estimator on one activation and weight set."""
    params = ep.EPParameters(SIZES, activation=activation)
    xt, dt = torch.tensor(x), torch.tensor(d)
    refs = [ep.loss_gradient(params, w, xt[i : i + 1], dt[i : i + 1]) for i in range(len(x))]
    grad = {k: torch.stack([r.grads[k] for r in refs]) for k in refs[0].grads}
    free = ep.fixed_point(params, w, xt).state
    hard = activation == "hard_sigmoid"
    side0 = sides(params, w, free, xt, dt, 0.0) if hard else None
    rows, everyone = [], np.arange(len(x))
    for beta in BETAS:
        plus = ep.fixed_point(params, w, xt, dt, beta, state=free).state
        minus = ep.fixed_point(params, w, xt, dt, -beta, state=free).state
        c0, cp, cm = (correlations(xt, s, params.rate) for s in (free, plus, minus))
        updates = {
            "one-sided": {k: (cp[k] - c0[k]) / beta for k in c0},
            "symmetric": {k: (cp[k] - cm[k]) / (2 * beta) for k in c0},
        }
        row: dict[str, Any] = {"beta": beta}
        for name in ESTIMATORS:
            row[name] = agreement(updates[name], grad, everyone)
        # a linear response moves the state about as far under −β as under +β; a ratio far
        # from 1 means one phase left the free state's branch (a kink, or a fold of F − βC)
        move_p, move_m = (
            torch.cat([a - b for a, b in zip(s.s, free.s, strict=True)], 1).abs().amax(1)
            for s in (plus, minus)
        )
        ratio = (move_m / move_p.clamp_min(1e-300)).numpy()
        lopsided = (ratio > 3) | (ratio < 1 / 3)
        worst_i = int(np.argmax(np.abs(np.log(ratio))))
        row["response"] = {
            "examples_lopsided": int(lopsided.sum()),
            "largest_move_minus": float(move_m.max()),
            "largest_move_plus": float(move_p.max()),
            "most_lopsided_example": worst_i,
            "its_moves_plus_minus": [float(move_p[worst_i]), float(move_m[worst_i])],
        }
        balanced = np.flatnonzero(~lopsided)
        row["without_lopsided"] = {n: agreement(updates[n], grad, balanced) for n in ESTIMATORS}
        if not hard:
            row["response"]["hessian_min_free"] = float(
                torch.linalg.eigvalsh(ep.hessian(params, w, free, xt))[:, 0][worst_i]
            )
            row["response"]["hessian_min_minus"] = float(
                torch.linalg.eigvalsh(ep.hessian(params, w, minus, xt, dt, -beta))[:, 0].min()
            )
        if hard:
            cross_p = sides(params, w, plus, xt, dt, beta) != side0
            cross_m = sides(params, w, minus, xt, dt, -beta) != side0
            n_hidden = SIZES[1]
            clean = np.flatnonzero(~(cross_p | cross_m).any(1).numpy())
            row["kinks"] = {
                "units_crossing_plus": int(cross_p.sum()),
                "units_crossing_minus": int(cross_m.sum()),
                "examples_crossing_plus": int(cross_p.any(1).sum()),
                "examples_crossing_minus": int(cross_m.any(1).sum()),
                "hidden_crossing_minus": int(cross_m[:, :n_hidden].sum()),
                "output_crossing_minus": int(cross_m[:, n_hidden:].sum()),
                # where the −β phase sends the units it moves across a kink
                "minus_into_box": int((cross_m & (side0 != 0)).sum()),
                "minus_out_of_box": int((cross_m & (side0 == 0)).sum()),
                "plus_into_box": int((cross_p & (side0 != 0)).sum()),
                "plus_out_of_box": int((cross_p & (side0 == 0)).sum()),
                "examples_without_crossing": len(clean),
            }
            row["without_crossing"] = {n: agreement(updates[n], grad, clean) for n in ESTIMATORS}
            if beta <= 0.01:  # the few crossings of small β, one by one
                row["crossings"] = crossing_details(free, side0, cross_p, cross_m, d)
        rows.append(row)
    out: dict[str, Any] = {"examples": len(x), "rows": rows, "slopes": {}}
    margins = [float(r.margin[0]) for r in refs if r.margin is not None]
    if margins:
        out["margin_min"], out["margin_median"] = min(margins), float(np.median(margins))
    for name in ESTIMATORS:
        out["slopes"][name] = {
            "all": slope(rows, name, BETAS),
            "beta<=0.05": slope(rows, name, [b for b in BETAS if b <= 0.05]),
        }
    return out


def worst(row_part: dict[str, dict[str, float]]) -> tuple[float, float]:
    """(largest relative error, smallest cosine) over the parameters."""
    if not row_part:
        return float("nan"), float("nan")
    return (
        max(v["relative_error"] for v in row_part.values()),
        min(v["cosine"] for v in row_part.values()),
    )


def slope(rows: list[dict], name: str, betas) -> float:
    """Least-squares slope of log(largest relative error) against log β."""
    pick = [(r["beta"], worst(r[name])[0]) for r in rows if r["beta"] in betas]
    b, e = np.log([p[0] for p in pick]), np.log([p[1] for p in pick])
    return float(np.polyfit(b, e, 1)[0])


def table(result: dict[str, Any]) -> str:
    """Markdown: per case and β, the largest relative error and smallest cosine over the
    parameters per estimator, and the hard sigmoid's kink counts."""
    lines = []
    for key, c in result["cases"].items():
        lines.append(f"\n### {key} ({c['examples']} examples)\n")
        hard = "kinks" in c["rows"][0]
        head = "| β | one-sided rel. err | symmetric rel. err | one-sided cos | symmetric cos |"
        if not hard:
            head += " lopsided ±β response (examples) | without them: one / sym |"
        if hard:
            head += " crossing +β / −β (units; examples) | no-crossing rel. err one / sym (n) |"
        lines.append(head)
        lines.append("|" + "---|" * (head.count("|") - 1))
        for r in c["rows"]:
            (e1, c1), (e2, c2) = worst(r["one-sided"]), worst(r["symmetric"])
            line = f"| {r['beta']:g} | {e1:.3g} | {e2:.3g} | {c1:.4f} | {c2:.4f} |"
            if not hard:
                (f1, _), (f2, _) = (worst(r["without_lopsided"][n]) for n in ESTIMATORS)
                line += f" {r['response']['examples_lopsided']} | {f1:.3g} / {f2:.3g} |"
            if hard:
                k = r["kinks"]
                (f1, _), (f2, _) = (
                    worst(r["without_crossing"]["one-sided"]),
                    worst(r["without_crossing"]["symmetric"]),
                )
                line += (
                    f" {k['units_crossing_plus']} / {k['units_crossing_minus']}; "
                    f"{k['examples_crossing_plus']} / {k['examples_crossing_minus']} |"
                    f" {f1:.3g} / {f2:.3g} ({k['examples_without_crossing']}) |"
                )
            lines.append(line)
        s = c["slopes"]
        lines.append(
            f"\nlog-log slope of the largest relative error: one-sided {s['one-sided']['all']:.2f}"
            f" (β ≤ 0.05: {s['one-sided']['beta<=0.05']:.2f}), symmetric "
            f"{s['symmetric']['all']:.2f} (β ≤ 0.05: {s['symmetric']['beta<=0.05']:.2f})"
        )
    return "\n".join(lines)


def figure(result: dict[str, Any], path: Path) -> Path:
    """Largest relative error against β per case, both estimators (the hard sigmoid's also on
    the examples without a kink crossing), and the kink crossings against β."""
    cases = result["cases"]
    fig = Figure(figsize=(12, 3.6 * 2), layout="constrained")
    axes = fig.subplots(2, len(cases) // 2 + 1, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (key, c) in zip(flat, cases.items(), strict=False):
        betas = [r["beta"] for r in c["rows"]]
        for name, style, color in (("one-sided", "--s", "C0"), ("symmetric", "-o", "C3")):
            ax.plot(
                betas, [worst(r[name])[0] for r in c["rows"]], style, ms=3, color=color,
                label=name,
            )  # fmt: skip
            if "without_crossing" in c["rows"][0]:
                ax.plot(
                    betas, [worst(r["without_crossing"][name])[0] for r in c["rows"]],
                    style, ms=3, color=color, alpha=0.35,
                    label=f"{name}, examples without a kink crossed",
                )  # fmt: skip
        b = np.array(betas)
        ax.plot(b, 0.5 * b / b.max(), ":", color="grey", lw=0.8, label="∝ β")
        ax.plot(b, 0.5 * (b / b.max()) ** 2, "-.", color="grey", lw=0.8, label="∝ β²")
        ax.set(xscale="log", yscale="log", xlabel="β", title=key)
        ax.set_ylabel("largest relative error over W, b")
    flat[0].legend(fontsize=7)
    ax = flat[len(cases)]
    for key, c in cases.items():
        if "kinks" not in c["rows"][0]:
            continue
        betas = [r["beta"] for r in c["rows"]]
        for sign, style in (("plus", "--s"), ("minus", "-o")):
            ax.plot(
                betas, [r["kinks"][f"units_crossing_{sign}"] for r in c["rows"]], style, ms=3,
                label=f"{key}: {'+' if sign == 'plus' else '−'}β",
            )  # fmt: skip
    ax.set(xscale="log", xlabel="β", ylabel="units crossing a kink (all examples)")
    ax.set_title("hard sigmoid: kink crossings against the free phase")
    ax.legend(fontsize=7)
    for extra in flat[len(cases) + 1 :]:
        extra.set_visible(False)
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/ep_gradient_estimators")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1, help="0: initial weights only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = ds.load("digits", seed=args.seed)
    x_test, d_test = data.x_test, one_hot(data.labels_test)
    start = time.perf_counter()
    weights = {"initial": ep.init_weights(SIZES, seed=args.seed, scale=0.5)}
    result: dict[str, Any] = {"sizes": SIZES, "betas": BETAS, "seed": args.seed, "cases": {}}
    for activation in ep.RATE_FUNCTIONS:
        sets = dict(weights)
        if args.epochs:
            params = ep.EPParameters(SIZES, activation=activation)
            w0 = ep.init_weights(SIZES, seed=args.seed, scale=1.0)
            sets["trained"] = train(
                params, w0, data.x_train, one_hot(data.labels_train), args.epochs
            )
        for label, w in sets.items():
            params = ep.EPParameters(SIZES, activation=activation)
            use = chosen_examples(params, w, x_test, d_test, args.examples)
            key = f"{activation}, {label}"
            result["cases"][key] = case(activation, w, x_test[use], d_test[use])
            result["cases"][key]["test_examples"] = use.tolist()
            print(f"{key}: done at {time.perf_counter() - start:.0f} s", flush=True)
    result["wall_seconds"] = time.perf_counter() - start
    result["epochs"] = args.epochs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimators.json").write_text(json.dumps(result, indent=1))
    figure(result, out / "estimators.png")
    print(table(result))
    print(f"\nwall {result['wall_seconds']:.0f} s; wrote {out}/estimators.json, estimators.png")


if __name__ == "__main__":
    main()

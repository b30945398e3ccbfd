"""The tables and figures of the ``consciousness-prior-microcircuit`` pairing of ``neurosim
compare`` (issue 17, DESIGN.md §4.5–§4.6), from plain arrays.

Two tables, both written to ``comparison.md``:

1. **Representations** of the same held-out observations x_t: the bottleneck model's slots, the
   baseline's slots, the circuit's hidden rates and output, and the controls (the circuit's
   hidden rates with its initial weights, a random Gaussian representation of its width, the
   observations themselves, and the circuit's hidden rates probed against the true variables
   with their rows shuffled), and the hidden rates of backprop on the circuit's architecture (a
   reference: what the circuit's hidden layer would hold had it learned by backprop). Columns:
   the mean over variables of the cross-validated ridge-probe R² of the true z_t, linear CKA
   (unbiased HSIC) with z_t, with the circuit's hidden rates and with the bottleneck's slots,
   RSA (correlation RDMs, Spearman) with the same two.
2. **Where each looks, and shift**: for the circuit, the bottleneck model and the baseline, the
   parent share of each prediction's sensitivity to the true variables
   (:func:`analysis.representations.parent_share`, against its chance, the parent fraction), the
   bottleneck's attention parent precision, and the normalised error of the next value in
   distribution and with the predicted variable's non-parents shifted, with their ratio; and the
   same for the circuit's references, what it could reach: backprop on its architecture
   (``circuit_backprop``) and a linear regression from the raw observations (``linear``). For the
   circuit also the parent share of its weights traced from the variables to the outputs,
   |W_N| ··· |W_1| |M_on/off| (:func:`analysis.representations.traced_weights`; the on and off
   channel of an observed dimension both carry |M|), which ignores the rate slopes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.compare import _safe, plot_rdms, reference_similarities, spike_rates
from analysis.figures import save_figure
from analysis.representations import linear_cka, parent_share, ridge_probe, traced_weights
from neurosim.results import atomic_write

#: the representations the CKA and RSA columns compare every row with
REFERENCES = ("circuit_hidden", "slots_bottleneck")
LABELS = {
    "slots_bottleneck": "CP bottleneck slots",
    "slots_baseline": "CP baseline slots",
    "circuit_hidden": "circuit hidden rates",
    "circuit_output": "circuit output (z_{t+1} rates)",
    "backprop_hidden": "reference: backprop hidden rates (circuit's architecture)",
    "observations": "control: observations x_t",
    "circuit_hidden_untrained": "control: circuit hidden, untrained",
    "random": "control: random Gaussian",
    "circuit_hidden_shuffled": "control: circuit hidden, shuffled variables",
}
#: held-out transitions drawn in the RDM figure
RDM_SAMPLES = 100
#: the predictors of the second table, in its order: the circuit, the consciousness prior's
#: two models, and the circuit's references (backprop on its architecture, linear regression)
PREDICTORS = ("circuit", "bottleneck", "baseline", "circuit_backprop", "linear")


def representations(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The rows of the first table as (samples, units) arrays; the circuit's hidden rates from
    its spikes with the spiking read-out; the random control seeded by ``data['seed']``."""
    names = ("slots_bottleneck", "slots_baseline", "circuit_hidden", "circuit_output",
             "backprop_hidden", "observations", "circuit_hidden_untrained")  # fmt: skip
    reps = {name: np.asarray(data[name], dtype=float) for name in names if name in data}
    spikes = data.get("hidden_spikes")
    if spikes is not None:
        reps["circuit_hidden"] = spike_rates(
            spikes["times_s"], int(spikes["n_patterns"]), float(spikes["pattern_ms"]),
            float(spikes["window_start_ms"]), spikes.get("t_stop_s"),
        )  # fmt: skip
    n, width = reps["circuit_hidden"].shape
    reps["random"] = np.random.default_rng([int(data.get("seed", 0)), 5]).standard_normal(
        (n, width)
    )
    return reps


def representation_table(
    latent: np.ndarray, reps: Mapping[str, np.ndarray], probe_seed: int = 0, shuffle_seed: int = 0
) -> list[dict[str, Any]]:
    """One row per representation (module docstring, table 1)."""
    z = np.asarray(latent, dtype=float)
    rows = []
    for name, rep in reps.items():
        r2 = ridge_probe(rep, z, seed=probe_seed).r2
        row: dict[str, Any] = {
            "name": name,
            "label": LABELS.get(name, name),
            "units": int(rep.shape[1]),
            "probe_r2": float(np.mean(r2)),
            "probe_r2_per_variable": r2,
            "cka_latent": _safe(linear_cka, rep, z),
        }
        row.update(reference_similarities(rep, reps, REFERENCES))
        rows.append(row)
    if "circuit_hidden" in reps:
        shuffled = z[np.random.default_rng([shuffle_seed, 7]).permutation(len(z))]
        r2 = ridge_probe(reps["circuit_hidden"], shuffled, seed=probe_seed).r2
        rows.append(
            {
                "name": "circuit_hidden_shuffled",
                "label": LABELS["circuit_hidden_shuffled"],
                "units": int(reps["circuit_hidden"].shape[1]),
                "probe_r2": float(np.mean(r2)),
                "probe_r2_per_variable": r2,
            }
        )
    return rows


def looking_table(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per predictor (module docstring, table 2). Output i of a consciousness-prior
    model predicts variable ``matches[kind][i]``; the circuit's output i variable i."""
    parents = np.asarray(data["parents"], dtype=bool)
    rows = []
    for kind in PREDICTORS:
        if kind not in data["sensitivity"]:
            continue
        match = np.asarray(data["matches"][kind], dtype=int)
        share = parent_share(np.asarray(data["sensitivity"][kind]), parents[match])
        e_in = np.asarray(data["errors_in"][kind], dtype=float)
        e_shift = np.asarray(data["errors_shift"][kind], dtype=float)
        rows.append(
            {
                "name": kind,
                "parent_share": share["mean"],
                "parent_share_chance": share["chance"],
                "parent_share_per_output": share["per_output"],
                "error_in": float(e_in.mean()),
                "error_shift": float(e_shift.mean()),
                "shift_error_ratio": float(e_shift.mean() / e_in.mean()),
            }
        )
    if "circuit_forward_weights" in data and "mixing" in data:
        mix = np.abs(np.asarray(data["mixing"], dtype=float))
        on_off = np.concatenate([mix, mix])  # inputs: the on channels, then the off channels
        traced = traced_weights([on_off, *data["circuit_forward_weights"]])
        for row in rows:
            if row["name"] == "circuit":
                row["parent_share_traced"] = parent_share(traced, parents)["mean"]
    if "attention_selected" in data:
        sel = np.asarray(data["attention_selected"], dtype=bool)
        precision = float((sel & parents).sum() / max(sel.sum(), 1))
        for row in rows:
            if row["name"] == "bottleneck":
                row["attention_precision"] = precision
    return rows


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def markdown_tables(rep_rows: Sequence[Mapping[str, Any]], look_rows: Sequence[Mapping]) -> str:
    """Both tables as markdown; an empty cell where a measure does not apply."""
    cols1 = (("units", "units"), ("probe_r2", "probe R² of z_t (mean)"),
             ("cka_latent", "CKA z_t"), ("cka_circuit_hidden", "CKA circuit hidden"),
             ("rsa_circuit_hidden", "RSA circuit hidden"),
             ("cka_slots_bottleneck", "CKA bottleneck slots"),
             ("rsa_slots_bottleneck", "RSA bottleneck slots"))  # fmt: skip
    cols2 = (("parent_share", "parent share"), ("parent_share_traced", "traced weights"),
             ("parent_share_chance", "chance"),
             ("attention_precision", "attention precision"), ("error_in", "error in"),
             ("error_shift", "error shifted"), ("shift_error_ratio", "ratio"))  # fmt: skip
    lines = ["| representation | " + " | ".join(t for _, t in cols1) + " |",
             "|---|" + "---:|" * len(cols1)]  # fmt: skip
    lines += [f"| {r['label']} | " + " | ".join(_cell(r.get(k)) for k, _ in cols1) + " |"
              for r in rep_rows]  # fmt: skip
    lines += ["", "| predictor | " + " | ".join(t for _, t in cols2) + " |",
              "|---|" + "---:|" * len(cols2)]  # fmt: skip
    lines += [f"| {r['name']} | " + " | ".join(_cell(r.get(k)) for k, _ in cols2) + " |"
              for r in look_rows]  # fmt: skip
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ figures
def plot_sensitivity(data: Mapping[str, Any], path: Path) -> Path:
    """The true parents beside each predictor's sensitivity to the variables (rows: predicted
    variable, in variable order; each row divided by its sum)."""
    parents = np.asarray(data["parents"], dtype=bool)
    kinds = [k for k in PREDICTORS if k in data["sensitivity"]]
    fig = Figure(figsize=(3.2 * (len(kinds) + 1), 3.4), layout="constrained")
    ax = fig.add_subplot(1, len(kinds) + 1, 1)
    ax.imshow(parents, cmap="Greys", vmin=0, vmax=1)
    ax.set_title("true parents", fontsize=9)
    for c, kind in enumerate(kinds):
        match = np.asarray(data["matches"][kind], dtype=int)
        sens = np.abs(np.asarray(data["sensitivity"][kind], dtype=float))
        rows = np.zeros_like(sens)
        rows[match] = sens / np.maximum(sens.sum(axis=1, keepdims=True), 1e-12)
        share = parent_share(sens, parents[match])["mean"]
        ax = fig.add_subplot(1, len(kinds) + 1, c + 2)
        ax.imshow(rows, cmap="viridis")
        ax.set_title(f"{kind}: parent share {share:.2f}", fontsize=9)
    for ax in fig.axes:
        ax.set_xlabel("variable z_j at t", fontsize=8)
        ax.set_ylabel("predicted variable at t+1", fontsize=8)
    return save_figure(fig, path)


def plot_shift(look_rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Mean normalised error in distribution and with the non-parents shifted, per predictor."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(look_rows))
    ax.bar(x - 0.2, [r["error_in"] for r in look_rows], 0.4, label="in distribution", alpha=0.5)
    ax.bar(x + 0.2, [r["error_shift"] for r in look_rows], 0.4, label="non-parents shifted")
    ax.set_xticks(x, [f"{r['name']}\n×{r['shift_error_ratio']:.2f}" for r in look_rows])
    ax.set_ylabel("MSE / Var of z_{t+1}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------ entry point
def analyse(data: Mapping[str, Any], figures_dir: str | Path) -> dict[str, Any]:
    """Both tables (``comparison.md`` beside ``figures_dir``) and the figures; returns the
    tables' numbers for the metrics."""
    figures = Path(figures_dir)
    reps = representations(data)
    rep_rows = representation_table(data["latent"], reps, int(data.get("probe_seed", 0)))
    look_rows = looking_table(data)
    table = markdown_tables(rep_rows, look_rows)
    out = figures.parent / "comparison.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(table))
    plot_sensitivity(data, figures / "sensitivity.png")
    plot_shift(look_rows, figures / "shift_errors.png")
    # the first RDM_SAMPLES held-out transitions, ordered by variable 0: a readable picture
    order = np.argsort(np.asarray(data["latent"])[:RDM_SAMPLES, 0])
    shown = [n for n in ("slots_bottleneck", "slots_baseline", "circuit_hidden") if n in reps]
    plot_rdms({n: reps[n][:RDM_SAMPLES][order] for n in shown}, shown, figures / "rdms.png",
              xlabel="held-out transition (ordered by z_0)", labels=LABELS)  # fmt: skip
    metrics: dict[str, Any] = {
        "comparison_table": table,
        "probe_r2": {r["name"]: r["probe_r2"] for r in rep_rows},
        "cka": {
            ref: {r["name"]: r[f"cka_{ref}"] for r in rep_rows if f"cka_{ref}" in r}
            for ref in (*REFERENCES, "latent")
        },  # fmt: skip
        "rsa": {
            ref: {r["name"]: r[f"rsa_{ref}"] for r in rep_rows if f"rsa_{ref}" in r}
            for ref in REFERENCES
        },  # fmt: skip
    }
    for row in look_rows:
        for key in ("parent_share", "parent_share_traced", "error_in", "error_shift",
                    "shift_error_ratio"):  # fmt: skip
            if key in row:
                metrics[f"{key}_{row['name']}"] = row[key]
        metrics["parent_share_chance"] = row["parent_share_chance"]
    return metrics

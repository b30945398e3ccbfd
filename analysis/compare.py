"""The comparison table and figures of ``neurosim compare`` (DESIGN.md §4.6), from plain arrays.

Rows are representations of the same 121 grid-world images (in
:func:`neurosim.grid_world.all_positions` order): the ICF model's n features and its 32-unit
layer, the circuit's hidden rates and its output, and three controls that say how to read the
numbers: the circuit's hidden rates before training, a random Gaussian representation of the
circuit's width, and the circuit's hidden rates probed against shuffled positions. Columns:

* cross-validated ridge-probe R² for the square's x and for its y
  (:func:`analysis.representations.ridge_probe`; 1 = decodable, ≤ 0 = not);
* linear CKA with the unbiased HSIC estimator (:func:`analysis.representations.linear_cka`)
  with the true positions (x, y), with the circuit's hidden rates and with the ICF 32-unit layer;
* RSA (:func:`analysis.representations.rsa`: correlation-distance RDMs compared by Spearman's ρ)
  with the circuit's hidden rates and with the ICF 32-unit layer. RSA needs at least 3 units:
  with 2 (the output) a correlation distance can only be 0 or 2; such cells stay empty.

With the spiking read-out the circuit's hidden rates are the hidden spike trains counted per image
window with elephant (:func:`spike_rates`), not the potentials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.figures import save_figure
from analysis.representations import linear_cka, rdm, ridge_probe, rsa
from neurosim.results import atomic_write

#: the representations every other one is compared with (CKA and RSA columns)
REFERENCES = ("circuit_hidden", "icf_hidden")
LABELS = {
    "icf_features": "ICF features",
    "icf_hidden": "ICF 32-unit layer",
    "circuit_hidden": "circuit hidden rates",
    "circuit_output": "circuit output (x, y)",
    "pixels": "input pixels",
    "circuit_hidden_untrained": "control: circuit hidden, untrained",
    "random": "control: random Gaussian",
    "circuit_hidden_shuffled": "control: circuit hidden, shuffled positions",
}


def spike_rates(
    times_s: Sequence[np.ndarray],
    n_patterns: int,
    pattern_ms: float,
    window_start_ms: float = 0.0,
    t_stop_s: float | None = None,
) -> np.ndarray:
    """Mean firing rates (Hz), shape (n_patterns, neurons): neuron i's spikes in the window
    [p·T + window_start, (p + 1)·T) of pattern p (T = ``pattern_ms``), counted by
    ``elephant.statistics.mean_firing_rate`` on neo spike trains. The start skips the settling
    after each change of image."""
    import neo
    import quantities as pq
    from elephant.statistics import mean_firing_rate

    if not 0 <= window_start_ms < pattern_ms:
        raise ValueError(f"window_start_ms must lie in [0, pattern_ms = {pattern_ms}).")
    period = pattern_ms / 1000.0
    stop = n_patterns * period if t_stop_s is None else max(t_stop_s, n_patterns * period)
    trains = [neo.SpikeTrain(np.asarray(t, dtype=float), t_stop=stop, units="s") for t in times_s]
    rates = np.empty((n_patterns, len(trains)))
    for p in range(n_patterns):
        start = (p * period + window_start_ms / 1000.0) * pq.s
        end = (p + 1) * period * pq.s
        for i, train in enumerate(trains):
            rate = mean_firing_rate(train, t_start=start, t_stop=end)
            rates[p, i] = float(rate.rescale(pq.Hz).magnitude)
    return rates


def reference_similarities(
    rep: np.ndarray, reps: Mapping[str, np.ndarray], references: Sequence[str]
) -> dict[str, float | None]:
    """CKA and RSA of ``rep`` with each reference representation present in ``reps``."""
    out: dict[str, float | None] = {}
    for ref in references:
        if ref in reps:
            out[f"cka_{ref}"] = _safe(linear_cka, rep, reps[ref])
            out[f"rsa_{ref}"] = _rsa(rep, reps[ref])
    return out


def _safe(fn: Any, *args: Any) -> float:
    """A similarity, or NaN where it is undefined (a constant representation, a flat RDM row)."""
    try:
        return float(fn(*args))
    except ValueError:
        return float("nan")


def _rsa(x: np.ndarray, y: np.ndarray) -> float:
    if x.shape[1] < 3 or y.shape[1] < 3:
        return float("nan")
    return _safe(lambda a, b: rsa(a, b, "correlation", "spearman").similarity, x, y)


def representations(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The rows of the table as (121, units) arrays, the circuit's hidden rates from its spikes
    with the spiking read-out, plus the random control (seeded by ``data['seed']``)."""
    reps = {
        name: np.asarray(data[name], dtype=float)
        for name in ("icf_features", "icf_hidden", "circuit_hidden", "circuit_output", "pixels",
                     "circuit_hidden_untrained")
        if name in data
    }  # fmt: skip
    spikes = data.get("hidden_spikes")
    if spikes is not None:
        reps["circuit_hidden"] = spike_rates(
            spikes["times_s"],
            int(spikes["n_patterns"]),
            float(spikes["pattern_ms"]),
            float(spikes["window_start_ms"]),
            spikes.get("t_stop_s"),
        )
    n, width = reps["circuit_hidden"].shape
    rng = np.random.default_rng([int(data.get("seed", 0)), 5])
    reps["random"] = rng.standard_normal((n, width))
    return reps


def comparison_table(
    positions: np.ndarray,
    reps: Mapping[str, np.ndarray],
    probe_seed: int = 0,
    shuffle_seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per representation (module docstring): probe R² for x and y, CKA with the
    positions and with each of :data:`REFERENCES`, RSA with each of :data:`REFERENCES`."""
    pos = np.asarray(positions, dtype=float)
    rows = []
    for name, rep in reps.items():
        probe = ridge_probe(rep, pos, seed=probe_seed)
        row: dict[str, Any] = {
            "name": name,
            "label": LABELS.get(name, name),
            "units": int(rep.shape[1]),
            "probe_r2_x": float(probe.r2[0]),
            "probe_r2_y": float(probe.r2[1]),
            "predictions": probe.predictions,
            "cka_positions": _safe(linear_cka, rep, pos),
        }
        row.update(reference_similarities(rep, reps, REFERENCES))
        rows.append(row)
    if "circuit_hidden" in reps:
        shuffled = pos[np.random.default_rng([shuffle_seed, 7]).permutation(len(pos))]
        probe = ridge_probe(reps["circuit_hidden"], shuffled, seed=probe_seed)
        rows.append(
            {
                "name": "circuit_hidden_shuffled",
                "label": LABELS["circuit_hidden_shuffled"],
                "units": int(reps["circuit_hidden"].shape[1]),
                "probe_r2_x": float(probe.r2[0]),
                "probe_r2_y": float(probe.r2[1]),
                "predictions": probe.predictions,
            }
        )
    return rows


COLUMNS = (
    ("units", "units"),
    ("probe_r2_x", "R² x"),
    ("probe_r2_y", "R² y"),
    ("cka_positions", "CKA (x, y)"),
    ("cka_circuit_hidden", "CKA circuit hidden"),
    ("rsa_circuit_hidden", "RSA circuit hidden"),
    ("cka_icf_hidden", "CKA ICF 32-unit"),
    ("rsa_icf_hidden", "RSA ICF 32-unit"),
)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The table as markdown; an empty cell where a measure does not apply or is undefined."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return "—"
        return str(value) if isinstance(value, int) else f"{value:.3f}"

    head = "| representation | " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    body = [
        f"| {row['label']} | " + " | ".join(cell(row.get(key)) for key, _ in COLUMNS) + " |"
        for row in rows
    ]
    return "\n".join([head, rule, *body]) + "\n"


# ------------------------------------------------------------------------------ figures
def unit_maps(rep: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Each unit's activity laid out over the positions: (units, 11, 11), ``[u, y, x]``."""
    p = np.asarray(positions, dtype=int)
    maps = np.full((rep.shape[1], int(p[:, 1].max()) + 1, int(p[:, 0].max()) + 1), np.nan)
    maps[:, p[:, 1], p[:, 0]] = np.asarray(rep, dtype=float).T
    return maps


def plot_unit_maps(rep: np.ndarray, positions: np.ndarray, path: Path, title: str) -> Path:
    """Every unit as a heat map over the square's 11×11 positions (x across, y down)."""
    maps = unit_maps(rep, positions)
    cols = min(8, len(maps))
    rows = -(-len(maps) // cols)
    fig = Figure(figsize=(1.4 * cols, 1.4 * rows + 0.5), layout="constrained")
    for u, m in enumerate(maps):
        ax = fig.add_subplot(rows, cols, u + 1)
        ax.imshow(m, cmap="viridis")
        ax.set_title(f"{u}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_rdms(
    reps: Mapping[str, np.ndarray],
    names: Sequence[str],
    path: Path,
    xlabel: str = "image (y·11 + x)",
    labels: Mapping[str, str] = LABELS,
) -> Path:
    """Correlation-distance RDMs side by side, conditions in the rows' order (the ICF pairing:
    position order)."""
    fig = Figure(figsize=(3.2 * len(names), 3.2), layout="constrained")
    for k, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), k + 1)
        try:
            ax.imshow(rdm(reps[name], "correlation"), cmap="magma")
        except ValueError as exc:  # a constant pattern somewhere: the RDM is undefined
            ax.text(0.5, 0.5, str(exc)[:60], ha="center", va="center", fontsize=6, wrap=True)
        ax.set_title(labels.get(name, name), fontsize=9)
        ax.set_xlabel(xlabel)
    return save_figure(fig, path)


def plot_probes(rows: Sequence[Mapping[str, Any]], positions: np.ndarray, path: Path) -> Path:
    """Out-of-fold probe predictions against the true x and y, one column per representation."""
    pos = np.asarray(positions, dtype=float)
    fig = Figure(figsize=(2.6 * len(rows), 5.0), layout="constrained")
    for c, row in enumerate(rows):
        for r, axis in enumerate("xy"):
            ax = fig.add_subplot(2, len(rows), r * len(rows) + c + 1)
            ax.plot([0, pos.max()], [0, pos.max()], color="0.7", lw=1)
            ax.scatter(pos[:, r], row["predictions"][:, r], s=6)
            ax.set_title(f"{row['label']}\nR² {axis} = {row[f'probe_r2_{axis}']:.3f}", fontsize=7)
            ax.set_xlabel(f"true {axis}", fontsize=7)
            ax.set_ylabel(f"probe {axis}", fontsize=7)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------ entry point
def analyse(data: Mapping[str, Any], figures_dir: str | Path) -> dict[str, Any]:
    """The comparison table (written as ``comparison.md`` beside ``figures_dir``) and figures
    (the consciousness-prior pairings': :mod:`analysis.compare_consciousness`); returns the
    table's numbers for the metrics: ``probe_r2``, ``cka``, ``rsa`` per representation, and the
    headline scalars."""
    if str(data.get("pairing", "")).startswith("consciousness-prior-"):
        from analysis import compare_consciousness

        return compare_consciousness.analyse(data, figures_dir)
    figures = Path(figures_dir)
    positions = np.asarray(data["positions"], dtype=float)
    reps = representations(data)
    rows = comparison_table(positions, reps, int(data.get("probe_seed", 0)))
    table = markdown_table(rows)
    out = figures.parent / "comparison.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(table))
    main = [r for r in rows if r["name"] in ("icf_features", "icf_hidden", "circuit_hidden",
                                             "circuit_output")]  # fmt: skip
    plot_probes(main, positions, figures / "probe_predictions.png")
    plot_rdms(reps, [n for n in ("icf_features", "icf_hidden", "circuit_hidden") if n in reps],
              figures / "rdms.png")  # fmt: skip
    plot_unit_maps(reps["circuit_hidden"], positions, figures / "circuit_hidden_maps.png",
                   "circuit hidden rates over the square's position")  # fmt: skip
    if "icf_hidden" in reps:
        plot_unit_maps(reps["icf_hidden"], positions, figures / "icf_hidden_maps.png",
                       "ICF 32-unit layer over the square's position")  # fmt: skip

    def per(key: str) -> dict[str, float]:
        return {r["name"]: r[key] for r in rows if key in r}

    metrics: dict[str, Any] = {
        "comparison_table": table,
        "probe_r2": {r["name"]: {"x": r["probe_r2_x"], "y": r["probe_r2_y"]} for r in rows},
        "cka": {ref: per(f"cka_{ref}") for ref in (*REFERENCES, "positions")},
        "rsa": {ref: per(f"rsa_{ref}") for ref in REFERENCES},
    }
    by_name = {r["name"]: r for r in rows}
    for name in ("icf_features", "icf_hidden", "circuit_hidden", "circuit_output"):
        if name in by_name:
            metrics[f"probe_r2_x_{name}"] = by_name[name]["probe_r2_x"]
            metrics[f"probe_r2_y_{name}"] = by_name[name]["probe_r2_y"]
    if "icf_hidden" in by_name and "cka_circuit_hidden" in by_name["icf_hidden"]:
        for name in ("icf_hidden", "icf_features"):
            metrics[f"cka_{name}_circuit_hidden"] = by_name[name]["cka_circuit_hidden"]
            metrics[f"rsa_{name}_circuit_hidden"] = by_name[name]["rsa_circuit_hidden"]
    return metrics

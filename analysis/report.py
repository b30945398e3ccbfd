"""The self-contained HTML report of ``neurosim predict`` (``DIR/report.html``).

One file that opens anywhere, offline: the figures are embedded as base64 PNG ``data:`` URIs, the
style sheet is inline, and there are no scripts and no external resources. Every text that comes
from an experiment, an outcome or an error is HTML-escaped. The report has a header (date,
versions, seeds, quick or not, wall time), a summary table, a note on the statistics, and one
section per prediction: title, hypothesis, what to record, contrast, the effect with its units,
Cohen's d_z, the 95 % interval, the number of seeds and the per-seed values, the effect in the
lab's units where the experiment declares them (percent change from baseline, Hz), the seeds
(animals) needed for 80 % power, the verdict in plain words (too few seeds to judge below the
minimum; a prediction that fails in simulation is shown as failed, prominently), the figures and
relative links to the recordings. An experiment that stopped with an error has a section that
says so, with the error and whatever seeds finished.
"""

from __future__ import annotations

import base64
import html
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis.effects import DZ_DEFINITION, SEEDS_FOR_POWER_METHOD, TOO_FEW
from neurosim.results import atomic_write

__all__ = ["render_report", "verdict_sentence", "write_report"]

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; }
h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-family: monospace; }
dt { font-weight: bold; margin-top: 0.5em; }
dd { margin-left: 1.5em; }
.verdict { padding: 0.7em 1em; margin: 1em 0; border-radius: 4px; font-size: 1.1em;
           font-weight: bold; border: 2px solid; }
.supported { background: #e6f4e6; border-color: #2e7d32; color: #1b5e20; }
.not-supported { background: #fff3cd; border-color: #b26a00; color: #7a4a00; }
.opposite { background: #fde2e2; border-color: #c62828; color: #8e0000; }
.failed { background: #fde2e2; border-color: #c62828; color: #8e0000; }
.too-few { background: #eeeeee; border-color: #666; color: #333; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
"""

#: CSS class of each verdict (and of a failed run)
_CLASSES = {
    "supported": "supported",
    "not supported": "not-supported",
    "opposite": "opposite",
    TOO_FEW: "too-few",
    "failed": "failed",
}


def _e(value: Any) -> str:
    """HTML-escape any value's text (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return "undefined"
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _interval(effect: Mapping[str, Any]) -> str:
    return f"[{_num(effect['ci_low'])}, {_num(effect['ci_high'])}]"


def _units(summary: Mapping[str, Any]) -> str:
    units = summary.get("effect_units") or "dimensionless"
    return "" if units == "dimensionless" else f" {units}"


def verdict_sentence(summary: Mapping[str, Any]) -> str:
    """The verdict in plain words (text, not yet escaped)."""
    if summary.get("effect") is None:
        return (
            "FAILED: the experiment did not finish, so this prediction was not tested "
            f"({summary.get('error') or 'no error message'})."
        )
    effect = summary["effect"]
    sign = "positive" if effect["expected_sign"] == 1 else "negative"
    measured = (
        f"mean effect {_num(effect['mean'])}{_units(summary)}, 95% interval "
        f"{_interval(effect)} over {effect['n']} seeds"
    )
    if effect["verdict"] == TOO_FEW:
        return (
            f"Too few seeds to judge: {measured}, fewer than the {effect['min_seeds']} seeds a "
            f"verdict needs (the interval alone would say: {effect['interval_verdict']}); "
            f"{_power_words(effect)}"
        )
    if effect["verdict"] == "supported":
        return (
            f"Prediction supported in simulation: {measured}; the interval excludes zero on the "
            f"predicted ({sign}) side."
        )
    if effect["verdict"] == "not supported":
        return (
            f"Prediction not supported in simulation: the 95% interval includes zero "
            f"({measured}), so these seeds do not show the predicted {sign} effect."
        )
    return (
        f"Prediction contradicted in simulation (opposite): {measured}; the interval excludes "
        f"zero on the wrong side, the effect has the opposite sign of the predicted {sign} one."
    )


def _power_words(effect: Mapping[str, Any]) -> str:
    """The seeds needed for 80 % power, in words."""
    needed = effect.get("seeds_for_power")
    if needed is None:
        return "the measured d_z gives no number of seeds for 80% power (it is 0 or undefined)."
    return f"an effect of this d_z needs {needed} seeds for 80% power (paired t, alpha 0.05)."


def _seeds_needed(effect: Mapping[str, Any]) -> str:
    needed = effect.get("seeds_for_power")
    return "undefined" if needed is None else str(needed)


def _lab_units(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows of the effect in the lab's units: percent change and Hz, where declared."""
    rows: list[tuple[str, str]] = []
    change = summary.get("percent_change")
    if change:
        label = f"percent change, {change['changed']} vs {change['baseline']}"
        if "mean" in change:
            rows.append(
                (label, f"{_num(change['mean'])} ± {_num(change['sd'])} %, 95% interval "
                 f"{_interval(change)} %")
            )  # fmt: skip
        else:
            rows.append((label, f"not computed: {change.get('note', '')}"))
    hz = summary.get("effect_hz")
    if hz:
        effect = hz["effect"]
        rows.append(
            ("effect in Hz", f"{_num(effect['mean'])} ± {_num(effect['sd'])} Hz, 95% interval "
             f"{_interval(effect)} Hz (model units × {_num(hz['factor'])})")
        )  # fmt: skip
    return rows


def _verdict_class(summary: Mapping[str, Any]) -> str:
    if summary.get("effect") is None:
        return _CLASSES["failed"]
    return _CLASSES[summary["effect"]["verdict"]]


def _href(relative: str) -> str:
    return _e(urllib.parse.quote(relative))


def _header(run_info: Mapping[str, Any]) -> list[str]:
    rows = [
        ("date (UTC)", run_info.get("date", "")),
        ("command", run_info.get("command", "")),
        ("seeds", ", ".join(str(s) for s in run_info.get("seeds", []))),
        ("quick", "yes (smallest runs, for tests)" if run_info.get("quick") else "no"),
        ("device", run_info.get("device", "")),
        ("wall time", f"{_num(run_info.get('wall_seconds'))} s"),
    ]
    versions = run_info.get("versions", {})
    parts = ["<table>"]
    parts += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows]
    parts.append(
        "<tr><th>versions</th><td>"
        + ", ".join(f"{_e(name)} {_e(version)}" for name, version in versions.items())
        + "</td></tr>"
    )
    parts.append("</table>")
    return parts


def _summary_table(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    parts = [
        "<table><tr><th>experiment</th><th>effect (mean)</th><th>95% interval</th>"
        "<th>percent change</th><th>d_z</th><th>seeds</th><th>seeds for 80% power</th>"
        "<th>verdict</th></tr>"
    ]
    for summary in summaries:
        effect = summary.get("effect")
        if effect is None:
            cells = ["", "", "", "", str(summary.get("n_seeds", 0)), "", "FAILED"]
        else:
            change = summary.get("percent_change") or {}
            cells = [
                f"{_num(effect['mean'])}{_units(summary)}",
                _interval(effect),
                f"{_num(change['mean'])} %" if "mean" in change else "",
                _num(effect["d_z"]),
                str(effect["n"]),
                _seeds_needed(effect),
                effect["verdict"] + ("; then FAILED" if summary.get("status") != "ok" else ""),
            ]
        parts.append(
            f'<tr><td><a href="#{_e(summary["name"])}">{_e(summary["name"])}</a></td>'
            + "".join(f'<td class="num">{_e(c)}</td>' for c in cells[:-1])
            + f'<td class="{_verdict_class(summary)}">{_e(cells[-1])}</td></tr>'
        )
    parts.append("</table>")
    return parts


def _statistics_note(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    effects = [s["effect"] for s in summaries if s.get("effect") is not None]
    parts = ["<h2>How to read the numbers</h2>", '<p class="note">']
    parts.append(
        "Each experiment measures one signed effect per seed; the theory predicts its sign. "
        f"{_e(DZ_DEFINITION)}. "
    )
    if effects:
        parts.append(f"The interval is the {_e(effects[0]['method'])}. ")
        notes = {e["note"] for e in effects if e.get("note")}
        parts.extend(f"{_e(n)} " for n in sorted(notes))
    parts.append(f"Seeds for 80% power: {_e(SEEDS_FOR_POWER_METHOD)}. ")
    minimum = effects[0].get("min_seeds") if effects else None
    parts.append(
        "Verdicts: <b>supported</b> when the interval excludes zero on the predicted side, "
        "<b>not supported</b> when it includes zero, <b>opposite</b> when it excludes zero on "
        "the wrong side; <b>too few seeds to judge</b> with fewer seeds than the minimum"
        + (f" ({_e(minimum)}, --min-seeds)" if minimum is not None else "")
        + ", whatever the interval says.</p>"
    )
    return parts


def _per_seed_table(summary: Mapping[str, Any]) -> list[str]:
    per_seed = summary.get("per_seed") or []
    if not per_seed:
        return ["<p>No seed finished.</p>"]
    conditions = list(summary.get("conditions", []))
    head = ["seed", f"effect{_units(summary)}", *conditions]
    parts = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in per_seed:
        cells = [row["seed"], _num(row["effect"])]
        cells += [_num(row["conditions"].get(c)) for c in conditions]
        parts.append("<tr>" + "".join(f'<td class="num">{_e(c)}</td>' for c in cells) + "</tr>")
    parts.append("</table>")
    return parts


def _conditions_table(summary: Mapping[str, Any]) -> list[str]:
    stats = summary.get("conditions_summary")
    if not stats:
        return []
    parts = [
        "<h3>Conditions</h3><table><tr><th>condition</th><th>mean ± sd</th>"
        "<th>95% interval</th></tr>"
    ]
    for name, value in stats.items():
        parts.append(
            f"<tr><td>{_e(name)}</td>"
            f'<td class="num">{_e(_num(value["mean"]))} ± {_e(_num(value["sd"]))}</td>'
            f'<td class="num">{_e(_interval(value))}</td></tr>'
        )
    parts.append("</table>")
    return parts


def _effect_table(summary: Mapping[str, Any]) -> list[str]:
    effect = summary.get("effect")
    if effect is None:
        return []
    sign = "> 0" if effect["expected_sign"] == 1 else "< 0"
    rows = [
        ("effect", f"{summary['effect_label']} (predicted {sign})"),
        ("mean ± sd", f"{_num(effect['mean'])} ± {_num(effect['sd'])}{_units(summary)}"),
        ("units", summary.get("effect_units") or "dimensionless"),
        ("Cohen's d_z", _num(effect["d_z"])),
        ("95% interval", f"{_interval(effect)}{_units(summary)}"),
        *_lab_units(summary),
        ("seeds", str(effect["n"])),
        ("seeds for 80% power (paired t, alpha 0.05)", _seeds_needed(effect)),
        ("share of seeds with the predicted sign", f"{effect['share_predicted_sign']:.0%}"),
    ]
    parts = ["<h3>Effect</h3><table>"]
    parts += [f'<tr><th>{_e(k)}</th><td class="num">{_e(v)}</td></tr>' for k, v in rows]
    parts.append("</table>")
    return parts


def _extra_table(summary: Mapping[str, Any]) -> list[str]:
    """The extra measurements: one row each, mean ± sd (where every seed has one) and per seed."""
    per_seed = summary.get("per_seed") or []
    keys: list[str] = []
    for row in per_seed:
        keys.extend(k for k in row["extra"] if k not in keys)
    if not keys:
        return []
    stats = summary.get("extra_summary") or {}
    head = ["measure", "mean ± sd", *(f"seed {row['seed']}" for row in per_seed)]
    parts = [
        "<h3>Other measurements</h3><table><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr>"
    ]
    for key in keys:
        value = stats.get(key, {})
        spread = f"{_num(value['mean'])} ± {_num(value['sd'])}" if "mean" in value else ""
        cells = [spread, *(_num(row["extra"].get(key)) for row in per_seed)]
        parts.append(
            f"<tr><td>{_e(key)}</td>"
            + "".join(f'<td class="num">{_e(c)}</td>' for c in cells)
            + "</tr>"
        )
    parts.append("</table>")
    return parts


def _figures(summary: Mapping[str, Any], base: Path) -> list[str]:
    parts: list[str] = []
    for entry in summary.get("figures") or []:
        path = base / entry["path"]
        caption = entry.get("caption", "")
        if not path.is_file():
            parts.append(f'<p class="failed">Figure {_e(entry["path"])} is missing.</p>')
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    return parts


def _recordings(summary: Mapping[str, Any]) -> list[str]:
    recordings = summary.get("recordings") or {}
    if not recordings:
        return ["<p>No recordings were written for this experiment.</p>"]
    parts = ["<h3>Recordings</h3><ul>"]
    for condition, files in recordings.items():
        links = ", ".join(
            f'<a href="{_href(rel)}">{_e(fmt.upper())}</a>' for fmt, rel in files.items()
        )
        parts.append(f"<li>{_e(condition)}: {links}</li>")
    parts.append("</ul>")
    return parts


def _section(summary: Mapping[str, Any], base: Path) -> list[str]:
    parts = [f'<section id="{_e(summary["name"])}">']
    parts.append(f"<h2>{_e(summary['title'])} <small>({_e(summary['name'])})</small></h2>")
    parts.append(
        f'<p class="verdict {_verdict_class(summary)}">{_e(verdict_sentence(summary))}</p>'
    )
    parts.append("<dl>")
    for label, key in (
        ("Hypothesis", "hypothesis"),
        ("What to record", "record"),
        ("Condition contrast", "contrast"),
    ):
        parts.append(f"<dt>{label}</dt><dd>{_e(summary.get(key, ''))}</dd>")
    parts.append(
        f"<dt>Circuit and read-out</dt><dd>{_e(summary.get('circuit', ''))}, "
        f"{_e(summary.get('readout', ''))} read-out</dd></dl>"
    )
    if summary.get("error"):
        parts.append(f'<h3>Error</h3><pre class="failed">{_e(summary["error"])}</pre>')
    parts += _effect_table(summary)
    parts.append("<h3>Per-seed values</h3>")
    parts += _per_seed_table(summary)
    parts += _conditions_table(summary)
    parts += _extra_table(summary)
    parts += _figures(summary, base)
    parts += _recordings(summary)
    parts.append("</section>")
    return parts


def render_report(
    run_info: Mapping[str, Any],
    summaries: Sequence[Mapping[str, Any]],
    base: str | Path,
) -> str:
    """The report as one HTML string; figure paths in the summaries are relative to ``base``."""
    base = Path(base)
    n_failed = sum(1 for s in summaries if s.get("status") != "ok")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>neurosim predictions</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>neurosim predictions for biological tests</h1>",
    ]
    parts += _header(run_info)
    if n_failed:
        parts.append(
            f'<p class="verdict failed">{n_failed} of {len(summaries)} experiment(s) failed; '
            "their sections say why.</p>"
        )
    parts.append("<h2>Summary</h2>")
    parts += _summary_table(summaries)
    parts += _statistics_note(summaries)
    for summary in summaries:
        parts += _section(summary, base)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    path: str | Path,
    run_info: Mapping[str, Any],
    summaries: Sequence[Mapping[str, Any]],
) -> Path:
    """Write ``report.html`` atomically; figure and recording paths are relative to its folder."""
    path = Path(path)
    text = render_report(run_info, summaries, path.parent)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

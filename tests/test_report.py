"""The prediction summaries, figures and the self-contained HTML report (``analysis/``).

Built from the test-local fake experiments (known effects, no simulation). The browser test
opens the report in headless Chromium (Debian package ``chromium``) through Playwright's Python
client with ``executable_path`` (Playwright never downloads a browser here): Playwright reports
console messages, page errors and failed requests as events and can ask the page whether each
image decoded, which the bare ``chromium --headless --screenshot`` command cannot.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.predictions import draw_figures, summarize_experiment
from analysis.report import render_report, verdict_sentence, write_report
from neurosim.errors import NeurosimError
from neurosim.experiment import ExperimentSettings, VirtualExperiment, register_experiment
from tests.fake_experiments import (
    FakeDose,
    FakeNull,
    FakeOpposite,
    FakeRate,
    FakeScatter,
    FakeSilencing,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = (1, 2, 3, 4, 5)


def _summaries(out: Path) -> list[dict]:
    """Summaries with figures of the five fakes that finish, as ``neurosim predict`` makes."""
    settings = ExperimentSettings(quick=True)
    summaries = []
    for cls in (FakeSilencing, FakeNull, FakeOpposite, FakeDose, FakeScatter):
        experiment = cls()
        outcomes = [experiment.run_seed(seed, settings) for seed in SEEDS]
        for outcome in outcomes:
            outcome.check(experiment)
        summary = summarize_experiment(experiment.describe(), outcomes)
        files = draw_figures(summary, outcomes, out / "figures", cls.name)
        summary["figures"] = [
            {"path": f.path.relative_to(out).as_posix(), "caption": f.caption} for f in files
        ]
        summary["recordings"] = {
            c: {"nix": f"recordings/{cls.name}/{c}.nix"} for c in experiment.conditions
        }
        summaries.append(summary)
    failed = summarize_experiment(
        {**FakeSilencing().describe(), "name": "broken", "title": "Broken <experiment>"},
        [],
        error="RuntimeError: <diverged> at seed 1",
    )
    return [*summaries, failed]


RUN_INFO = {
    "date": "2026-11-26 20:00:00",
    "command": "neurosim predict --quick",
    "seeds": list(SEEDS),
    "quick": True,
    "device": "cpp_standalone",
    "wall_seconds": 12.5,
    "versions": {"neurosim": "0.1.0", "brian2": "2.8.0"},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], str]:
    out = tmp_path_factory.mktemp("report")
    summaries = _summaries(out)
    path = write_report(out / "report.html", RUN_INFO, summaries)
    return path, summaries, path.read_text(encoding="utf-8")


def test_summary_statistics(report: tuple[Path, list[dict], str]) -> None:
    _, summaries, _ = report
    by_name = {s["name"]: s for s in summaries}
    silencing = by_name["fake-silencing"]
    assert silencing["status"] == "ok"
    assert silencing["effect"]["values"] == [0.8, 1.1, 0.9, 1.3, 1.0]
    assert silencing["effect"]["mean"] == pytest.approx(1.02)
    assert silencing["effect"]["verdict"] == "supported"
    assert by_name["fake-null"]["effect"]["verdict"] == "not supported"
    assert by_name["fake-opposite"]["effect"]["verdict"] == "opposite"
    intact = silencing["conditions_summary"]["intact"]
    assert intact["mean"] == pytest.approx(1.3)  # 1 + 0.1 * mean(seed)
    assert intact["ci_low"] <= intact["mean"] <= intact["ci_high"]
    assert silencing["extra_summary"]["train_accuracy"]["mean"] == pytest.approx(0.93)
    assert [row["seed"] for row in silencing["per_seed"]] == list(SEEDS)
    broken = by_name["broken"]
    assert broken["status"] == "failed" and broken["effect"] is None


def test_figures_are_pngs(report: tuple[Path, list[dict], str]) -> None:
    path, summaries, _ = report
    by_name = {s["name"]: s for s in summaries}
    # a main figure per experiment; a raster where recordings hold spike trains
    assert len(by_name["fake-silencing"]["figures"]) == 2
    assert len(by_name["fake-dose"]["figures"]) == 1  # the dose fake records nothing
    assert "bootstrap band" in by_name["fake-dose"]["figures"][0]["caption"]
    assert "x/y points" in by_name["fake-scatter"]["figures"][0]["caption"]
    for summary in summaries:
        for figure in summary["figures"]:
            assert (path.parent / figure["path"]).read_bytes().startswith(PNG_MAGIC)


def test_report_has_every_section(report: tuple[Path, list[dict], str]) -> None:
    _, summaries, text = report
    assert text.count("<section ") == len(summaries)
    for summary in summaries:
        assert f'<section id="{summary["name"]}">' in text
    for fragment in (
        "Hypothesis",
        "What to record",
        "Condition contrast",
        "Cohen&#x27;s d_z",
        "95% interval",
        "Per-seed values",
        "Other measurements",
        "train_accuracy",
        "share of seeds with the predicted sign",
        "2026-11-26 20:00:00",
        "brian2 2.8.0",
        "12.5 s",
        "yes (smallest runs, for tests)",
        "percentile bootstrap",
        "coarse",
        'href="recordings/fake-silencing/intact.nix"',
        "mV",
    ):
        assert fragment in text, fragment
    assert "Prediction supported in simulation" in text


def test_failures_are_said_plainly(report: tuple[Path, list[dict], str]) -> None:
    _, summaries, text = report
    by_name = {s["name"]: s for s in summaries}
    null_sentence = verdict_sentence(by_name["fake-null"])
    assert null_sentence.startswith("Prediction not supported in simulation")
    assert "includes zero" in null_sentence
    assert '<p class="verdict not-supported">Prediction not supported' in text
    assert "Prediction contradicted in simulation (opposite)" in text
    assert '<p class="verdict failed">FAILED' in text
    assert "1 of 6 experiment(s) failed" in text
    # the summary table marks them too
    assert re.search(r'<td class="not-supported">not supported</td>', text)
    assert re.search(r'<td class="failed">FAILED</td>', text)


def test_report_escapes_html(report: tuple[Path, list[dict], str]) -> None:
    _, _, text = report
    assert "<b>SST</b>" not in text
    assert "&lt;b&gt;SST&lt;/b&gt;" in text
    assert "<of SST>" not in text and "&lt;of SST&gt; &amp; friends" in text
    assert "<diverged>" not in text and "&lt;diverged&gt;" in text
    assert "Broken &lt;experiment&gt;" in text


def test_report_is_self_contained(report: tuple[Path, list[dict], str]) -> None:
    _, summaries, text = report
    assert "<script" not in text.lower()
    assert "<link" not in text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == sum(len(s["figures"]) for s in summaries)
    for source in sources:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        assert base64.b64decode(source[len(prefix) :]).startswith(PNG_MAGIC)


def test_missing_figure_is_reported_not_broken(tmp_path: Path) -> None:
    summary = summarize_experiment(FakeSilencing().describe(), [])
    summary["figures"] = [{"path": "figures/gone.png", "caption": "gone"}]
    text = render_report(RUN_INFO, [summary], tmp_path)
    assert "<img" not in text and "figures/gone.png is missing" in text


def test_output_failure_after_the_statistics_keeps_the_verdict(tmp_path: Path) -> None:
    experiment = FakeSilencing()
    outcomes = [experiment.run_seed(seed, ExperimentSettings()) for seed in (1, 2, 3)]
    summary = summarize_experiment(experiment.describe(), outcomes, min_seeds=3)
    summary.update(status="failed", error="writing the recordings failed: <disk full>")
    text = render_report(RUN_INFO, [summary], tmp_path)
    assert "Prediction supported in simulation" in text
    assert "supported; then FAILED" in text
    assert "writing the recordings failed: &lt;disk full&gt;" in text
    assert "1 of 1 experiment(s) failed" in text


def _screenshot_stats(path: Path) -> tuple[float, float]:
    from matplotlib.image import imread

    pixels = imread(path)[..., :3].astype(float)
    non_white = float(np.mean(np.any(pixels < 0.95, axis=-1)))
    return float(pixels.std()), non_white


def test_report_renders_in_headless_chromium(
    report: tuple[Path, list[dict], str], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed; install it with `apt-get install -y chromium`.")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is missing; pip install -e '.[dev]'"
    )
    path, summaries, _ = report
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(path.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images)"
                ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
            )
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert len(images) == sum(len(s["figures"]) for s in summaries) > 0
    broken = [i for i, (complete, width, height) in enumerate(images) if not (complete and width)]
    assert broken == [], f"images that did not decode: {broken}"
    assert all(height > 100 for _, _, height in images)
    spread, non_white = _screenshot_stats(shot)
    assert spread > 0.05, f"the screenshot is nearly uniform (pixel sd {spread:.3f})"
    assert non_white > 0.05, f"only {non_white:.1%} of the screenshot is not white"


def test_effect_in_hz_and_percent_change(tmp_path: Path) -> None:
    experiment = FakeRate()
    outcomes = [experiment.run_seed(seed, ExperimentSettings()) for seed in SEEDS]
    summary = summarize_experiment(experiment.describe(), outcomes)
    effects = np.array([FakeRate.EFFECTS[s] for s in SEEDS])
    base = np.array([1.0 + 0.1 * s for s in SEEDS])  # the fakes' intact condition
    change = summary["percent_change"]
    assert change["baseline"] == "intact" and change["changed"] == "silenced"
    assert change["values"] == pytest.approx(list(100 * effects / base))
    assert change["mean"] == pytest.approx(np.mean(100 * effects / base))
    assert change["ci_low"] < change["mean"] < change["ci_high"]
    hz = summary["effect_hz"]
    assert hz["factor"] == 1000.0
    assert hz["effect"]["mean"] == pytest.approx(1000 * effects.mean())
    assert hz["effect"]["ci_low"] == pytest.approx(1000 * summary["effect"]["ci_low"])
    assert hz["conditions"]["intact"]["mean"] == pytest.approx(1000 * base.mean())
    text = render_report(RUN_INFO, [summary], tmp_path)
    assert "percent change, silenced vs intact" in text and "effect in Hz" in text
    assert f"{_num(1000 * effects.mean())} ± " in text
    # experiments that declare neither get neither
    plain = summarize_experiment(
        FakeSilencing().describe(),
        [FakeSilencing().run_seed(s, ExperimentSettings()) for s in SEEDS],
    )
    assert plain["percent_change"] is None and plain["effect_hz"] is None


def _num(value: float) -> str:
    return f"{value:.4g}"


def test_seeds_for_power_and_too_few_seeds_in_the_report(tmp_path: Path) -> None:
    experiment = FakeSilencing()
    outcomes = [experiment.run_seed(seed, ExperimentSettings()) for seed in (1, 2, 3)]
    summary = summarize_experiment(experiment.describe(), outcomes)  # minimum 5 seeds
    effect = summary["effect"]
    assert effect["verdict"] == "too few seeds to judge"
    assert effect["interval_verdict"] == "supported"
    assert effect["seeds_for_power"] >= 2
    sentence = verdict_sentence(summary)
    assert sentence.startswith("Too few seeds to judge") and "fewer than the 5 seeds" in sentence
    assert f"needs {effect['seeds_for_power']} seeds for 80% power" in sentence
    text = render_report(RUN_INFO, [summary], tmp_path)
    assert '<p class="verdict too-few">Too few seeds to judge' in text
    assert "Prediction supported" not in text
    assert "seeds for 80% power (paired t, alpha 0.05)" in text


def test_lab_unit_declarations_are_checked() -> None:
    class Bad(VirtualExperiment):
        name = "bad-change"
        conditions = ("a", "b")
        change_from = ("a", "c")

    with pytest.raises(NeurosimError, match="change_from must name two of its conditions"):
        register_experiment(Bad)

    class BadHz(VirtualExperiment):
        name = "bad-hz"
        conditions = ("a", "b")
        hz_per_unit = -1.0

    with pytest.raises(NeurosimError, match="hz_per_unit must be a positive number"):
        register_experiment(BadHz)

"""The on-disk cache of results (:mod:`neurosim.result_cache`): a result is found again only for
the same inputs, the same code and the same host, and a write never leaves a half file."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from neurosim import result_cache

CODE = ["neurosim.result_cache"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(result_cache.ENV_SWITCH, raising=False)


def test_same_inputs_hit_and_any_change_misses() -> None:
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"history": [0.1, 0.5 + len(calls)]}

    inputs = {"x": np.arange(6.0).reshape(2, 3), "seed": 1, "cfg": {"lr": 0.1}}
    first, hit = result_cache.cached("demo", inputs, compute, CODE)
    assert not hit and first == {"history": [0.1, 1.5]}
    again, hit = result_cache.cached("demo", inputs, compute, CODE)
    assert hit and again == first and len(calls) == 1
    changed = [
        {**inputs, "x": inputs["x"] + 1e-12},  # one array entry
        {**inputs, "x": inputs["x"].reshape(3, 2)},  # its shape
        {**inputs, "seed": 2},
        {**inputs, "cfg": {"lr": 0.2}},
    ]
    for other in changed:
        assert result_cache.cached("demo", other, compute, CODE)[1] is False
    # another kind, or other code, is another result
    assert result_cache.cached("other", inputs, compute, CODE)[1] is False
    assert result_cache.cached("demo", inputs, compute, ["neurosim.build_cache"])[1] is False
    assert len(calls) == 1 + len(changed) + 2


def test_code_fingerprint_follows_the_source(tmp_path, monkeypatch) -> None:
    mod = tmp_path / "rc_probe_mod.py"
    mod.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import rc_probe_mod

    before = result_cache.code_fingerprint([rc_probe_mod])
    mod.write_text("X = 2\n")
    assert result_cache.code_fingerprint([rc_probe_mod]) != before
    # by name, also before anything imported it (a run that never needed that module)
    other = tmp_path / "rc_probe_unimported.py"
    other.write_text("Y = 1\n")
    assert "rc_probe_unimported" not in sys.modules
    assert result_cache.code_fingerprint(["rc_probe_unimported"])


def test_switched_off_and_damaged_entries_compute_again(monkeypatch) -> None:
    path = result_cache.save("demo", {"a": 1}, {"v": 1}, CODE)
    assert path is not None and json.loads(path.read_text())["result"] == {"v": 1}
    assert not list(path.parent.glob("*.tmp"))  # written under a temporary name, then renamed
    assert result_cache.load("demo", {"a": 1}, CODE) == {"v": 1}
    path.write_text("{half")  # a file cut short by a crash elsewhere
    assert result_cache.load("demo", {"a": 1}, CODE) is None
    assert result_cache.cached("demo", {"a": 1}, lambda: {"v": 3}, CODE) == ({"v": 3}, False)
    monkeypatch.setenv(result_cache.ENV_SWITCH, "0")
    assert result_cache.save("demo", {"a": 1}, {"v": 2}, CODE) is None
    assert result_cache.load("demo", {"a": 1}, CODE) is None
    assert result_cache.cached("demo", {"a": 1}, lambda: {"v": 4}, CODE) == ({"v": 4}, False)


def test_arrays_are_stored_once_read_back_exactly_and_recomputed_when_damaged() -> None:
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"x": np.linspace(0.0, 1.0, 7).reshape(7, 1) / 3.0, "labels": np.arange(7)}

    key = {"dataset": "demo", "version": "1"}
    first, hit = result_cache.cached_arrays("arrays", key, compute, CODE)
    assert not hit and len(calls) == 1
    again, hit = result_cache.cached_arrays("arrays", key, compute, CODE)
    assert hit and len(calls) == 1
    for name in ("x", "labels"):  # bit for bit, dtype and shape kept
        assert again[name].dtype == first[name].dtype
        np.testing.assert_array_equal(again[name], first[name])
    path = result_cache.entry_path("arrays", key, CODE).with_suffix(".npz")
    assert path.is_file() and not list(path.parent.glob("*.tmp*"))
    path.write_bytes(b"not a zip file")  # a damaged entry is computed again, not an error
    _, hit = result_cache.cached_arrays("arrays", key, compute, CODE)
    assert not hit and len(calls) == 2
    assert result_cache.cached_arrays("arrays", {**key, "version": "2"}, compute, CODE)[1] is False


def test_arrays_switch_off(monkeypatch) -> None:
    monkeypatch.setenv(result_cache.ENV_SWITCH, "0")
    compute = lambda: {"x": np.ones(3)}  # noqa: E731
    assert result_cache.cached_arrays("arrays", {"k": 1}, compute, CODE)[1] is False
    assert result_cache.cached_arrays("arrays", {"k": 1}, compute, CODE)[1] is False
    assert not (result_cache.results_root() / "arrays").exists()

"""Tests of neurosim.recording (records -> neo -> NIX and back) and analysis.spiketrains."""

from __future__ import annotations

import json
import os
from pathlib import Path

import neo
import numpy as np
import pytest
import quantities as pq
from neo.io import NixIO

from analysis.spiketrains import analyze_file, spike_train_statistics
from neurosim.errors import NeurosimError
from neurosim.recording import (
    SegmentRecord,
    SignalRecord,
    SpikeRecord,
    read_nix,
    to_block,
    write_nix,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _records() -> list[SegmentRecord]:
    rng = np.random.default_rng(1)
    free = SegmentRecord(
        name="free",
        spikes=[
            SpikeRecord("pyr0", np.array([0.0011, 0.0203, 0.2999]), 0.0, 0.3, {"layer": 1}),
            SpikeRecord("pyr1", np.array([], dtype=float), 0.0, 0.3, {}),
        ],
        signals=[
            SignalRecord(
                "u_soma",
                rng.normal(size=(300, 4)),
                1e-3,
                0.0,
                "dimensionless",
                {"layer": 1},
            ),
            SignalRecord("v_apical", rng.normal(size=(300, 2)) * 5, 1e-4, 0.0, "mV", {}),
        ],
        annotations={"phase": "free", "beta": 0.0},
    )
    nudged = SegmentRecord(
        name="nudged",
        spikes=[
            SpikeRecord(
                "pyr0",
                np.array([0.3, 0.31234567891234, 0.5999999]),
                0.3,
                0.6,
                {"layer": np.int64(1), "rate_hz": np.float32(2.5), "missing": None},
            )
        ],
        signals=[SignalRecord("w_01", rng.normal(size=(30, 6)), 1e-2, 0.3, "dimensionless", {})],
        annotations={"phase": "nudged", "beta": np.float64(0.5), "ids": [1, 2.5, 3]},
    )
    return [free, nudged]


def _nix_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------------


def test_round_trip_preserves_spikes_signals_and_names(tmp_path: Path) -> None:
    records = _records()
    block = to_block(records, name="run-1", annotations={"seed": np.int64(7), "note": None})
    path = write_nix(block, tmp_path / "run.nix")
    assert path == tmp_path / "run.nix"

    loaded = read_nix(path)
    assert loaded.name == "run-1"
    assert loaded.annotations["seed"] == 7
    assert "note" not in loaded.annotations
    assert [s.name for s in loaded.segments] == ["free", "nudged"]
    assert loaded.segments[1].annotations["beta"] == pytest.approx(0.5)
    assert list(loaded.segments[1].annotations["ids"]) == pytest.approx([1.0, 2.5, 3.0])

    for record, segment in zip(records, loaded.segments, strict=True):
        assert [t.name for t in segment.spiketrains] == [r.name for r in record.spikes]
        for spike_record, train in zip(record.spikes, segment.spiketrains, strict=True):
            assert train.units == pq.s
            np.testing.assert_allclose(
                train.times.rescale(pq.s).magnitude,
                spike_record.times_s,
                rtol=0,
                atol=1e-12,
            )
            assert float(train.t_start.rescale(pq.s)) == pytest.approx(spike_record.t_start_s)
            assert float(train.t_stop.rescale(pq.s)) == pytest.approx(spike_record.t_stop_s)
        assert [s.name for s in segment.analogsignals] == [r.name for r in record.signals]
        for signal_record, signal in zip(record.signals, segment.analogsignals, strict=True):
            assert signal.shape == signal_record.values.shape
            np.testing.assert_allclose(signal.magnitude, signal_record.values, rtol=0, atol=1e-12)
            assert float(signal.sampling_period.rescale(pq.s)) == pytest.approx(
                signal_record.sampling_period_s, rel=1e-12
            )
            assert float(signal.t_start.rescale(pq.s)) == pytest.approx(signal_record.t_start_s)
            assert signal.units == pq.Quantity(1.0, signal_record.units).units

    # The segment that starts at 0.3 s keeps its window.
    nudged_train = loaded.segments[1].spiketrains[0]
    assert float(nudged_train.t_start.rescale(pq.s)) == pytest.approx(0.3)
    assert float(nudged_train.t_stop.rescale(pq.s)) == pytest.approx(0.6)
    assert nudged_train.annotations["layer"] == 1
    assert nudged_train.annotations["rate_hz"] == pytest.approx(2.5)
    assert "missing" not in nudged_train.annotations
    assert float(loaded.segments[1].analogsignals[0].t_start.rescale(pq.s)) == pytest.approx(0.3)


def test_to_block_rejects_spike_outside_window() -> None:
    late = SegmentRecord("s", spikes=[SpikeRecord("n", np.array([0.1, 0.7]), 0.0, 0.5, {})])
    with pytest.raises(ValueError, match="outside its window"):
        to_block([late], name="b")
    early = SegmentRecord("s", spikes=[SpikeRecord("n", np.array([0.05]), 0.1, 0.5, {})])
    with pytest.raises(ValueError, match="outside its window"):
        to_block([early], name="b")


def test_to_block_one_dimensional_signal_is_one_channel() -> None:
    segment = SegmentRecord("s", signals=[SignalRecord("r", np.arange(5.0), 1e-3, 0.0, "Hz", {})])
    signal = to_block([segment], name="b").segments[0].analogsignals[0]
    assert signal.shape == (5, 1)


# ---------------------------------------------------------------------------------------------
# Atomic writing
# ---------------------------------------------------------------------------------------------


def test_successful_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_nix(to_block(_records(), name="b"), tmp_path / "a.nix")
    write_nix(to_block(_records(), name="b"), tmp_path / "a.nix")  # overwrite
    assert _nix_files(tmp_path) == ["a.nix"]


def test_write_into_missing_folder_raises_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "does-not-exist" / "run.nix"
    with pytest.raises(NeurosimError, match="does not exist"):
        write_nix(to_block(_records(), name="b"), target)
    assert _nix_files(tmp_path) == []


def test_write_where_folder_is_a_file_raises(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(NeurosimError):
        write_nix(to_block(_records(), name="b"), tmp_path / "plain" / "run.nix")
    assert _nix_files(tmp_path) == ["plain"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions"
)
def test_write_into_read_only_folder_raises(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(NeurosimError):
            write_nix(to_block(_records(), name="b"), folder / "run.nix")
        assert _nix_files(folder) == []
    finally:
        folder.chmod(0o755)


def test_failure_while_writing_keeps_old_file_and_removes_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run.nix"
    write_nix(to_block(_records(), name="old"), target)
    before = target.read_bytes()

    def broken_write(self: NixIO, block: neo.Block) -> None:  # writes part, then fails
        self.nix_file.create_block("partial", "neo.block")
        raise OSError("disk full")

    monkeypatch.setattr(NixIO, "write_block", broken_write)
    with pytest.raises(NeurosimError, match="disk full"):
        write_nix(to_block(_records(), name="new"), target)
    assert _nix_files(tmp_path) == ["run.nix"]
    assert target.read_bytes() == before
    monkeypatch.undo()
    assert read_nix(target).name == "old"


# ---------------------------------------------------------------------------------------------
# Reading bad files
# ---------------------------------------------------------------------------------------------


def test_read_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(NeurosimError, match="does not exist"):
        read_nix(tmp_path / "nope.nix")


def test_read_random_bytes_raises(tmp_path: Path) -> None:
    path = tmp_path / "random.nix"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(NeurosimError, match="random.nix"):
        read_nix(path)


@pytest.mark.parametrize("fraction", [0.5, 0.98])
def test_read_truncated_file_raises(tmp_path: Path, fraction: float) -> None:
    good = write_nix(to_block(_records(), name="b"), tmp_path / "good.nix")
    data = good.read_bytes()
    bad = tmp_path / "truncated.nix"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(NeurosimError, match="truncated.nix"):
        read_nix(bad)
    # The failed read released the file: it can be replaced and read again.
    bad.write_bytes(data)
    assert read_nix(bad).name == "b"


def test_read_hdf5_file_that_is_not_nix_raises(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as handle:
        handle["x"] = np.arange(3)
    with pytest.raises(NeurosimError, match="plain.h5"):
        read_nix(path)


# ---------------------------------------------------------------------------------------------
# Analysis of a NIX file written by plain neo
# ---------------------------------------------------------------------------------------------


def _plain_neo_file(path: Path) -> None:
    rng = np.random.default_rng(12345)
    block = neo.Block(name="lab recording", animal="m1")

    seg0 = neo.Segment(name="baseline")
    regular = neo.SpikeTrain(
        np.arange(50.0, 20_000.0, 100.0),
        units="ms",
        t_start=0 * pq.ms,
        t_stop=20_000 * pq.ms,
    )
    regular.name = "regular"
    regular.annotate(channel=3, quality=np.float64(0.9))
    poisson_times = np.sort(rng.uniform(0.0, 200_000.0, rng.poisson(20.0 * 200.0)))
    poisson = neo.SpikeTrain(
        poisson_times,
        units="ms",
        t_start=0 * pq.ms,
        t_stop=200_000 * pq.ms,
        name="poisson",
    )
    silent = neo.SpikeTrain([], units="ms", t_stop=20_000 * pq.ms, name="silent")
    seg0.spiketrains.extend([regular, poisson, silent])
    seg0.analogsignals.append(
        neo.AnalogSignal(
            rng.normal(size=(1000, 3)), units="mV", sampling_rate=1 * pq.kHz, name="lfp"
        )
    )

    seg1 = neo.Segment(name="stimulus")
    shifted = neo.SpikeTrain(
        [5001.0, 5002.5],
        units="ms",
        t_start=5000 * pq.ms,
        t_stop=6000 * pq.ms,
        name="sparse",
    )
    seg1.spiketrains.append(shifted)

    block.segments.extend([seg0, seg1])
    io = NixIO(str(path), "ow")
    try:
        io.write_block(block)
    finally:
        io.close()


def _assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC


def test_analyze_file_on_plain_neo_file(tmp_path: Path) -> None:
    source = tmp_path / "lab.nix"
    _plain_neo_file(source)
    out = tmp_path / "out"

    stats = analyze_file(source, out)

    written = json.loads((out / "analysis.json").read_text())
    assert written == json.loads(json.dumps(stats))
    for name in ("raster.png", "instantaneous_rate.png", "rate_map.png", "cross_correlograms.png"):
        _assert_png(out / "figures" / name)
    assert stats["figures"] == [
        "figures/raster.png",
        "figures/instantaneous_rate.png",
        "figures/rate_map.png",
        "figures/cross_correlograms.png",
    ]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]

    trains = {t["name"]: t for t in stats["spike_trains"]}
    assert set(trains) == {"regular", "poisson", "silent", "sparse"}

    regular = trains["regular"]
    assert regular["segment_name"] == "baseline"
    assert regular["n_spikes"] == 200
    assert regular["duration_s"] == pytest.approx(20.0)
    assert regular["mean_rate_hz"] == pytest.approx(10.0, rel=1e-9)
    assert regular["cv_isi"] == pytest.approx(0.0, abs=1e-9)
    assert regular["lv"] == pytest.approx(0.0, abs=1e-9)
    assert regular["annotations"]["channel"] == 3
    assert "nix_name" not in regular["annotations"]

    poisson = trains["poisson"]
    assert poisson["mean_rate_hz"] == pytest.approx(20.0, rel=0.1)
    assert poisson["cv_isi"] == pytest.approx(1.0, abs=0.15)
    assert poisson["lv"] == pytest.approx(1.0, abs=0.1)
    assert poisson["fano_factor"] == pytest.approx(1.0, abs=0.3)

    silent = trains["silent"]
    assert silent["n_spikes"] == 0
    assert silent["mean_rate_hz"] == 0.0
    assert silent["cv_isi"] is None
    assert silent["fano_factor"] is None

    sparse = trains["sparse"]
    assert sparse["t_start_s"] == pytest.approx(5.0)
    assert sparse["duration_s"] == pytest.approx(1.0)
    assert sparse["mean_rate_hz"] == pytest.approx(2.0)
    assert sparse["cv_isi"] is None

    baseline, stimulus = stats["segments"]
    assert baseline["population"]["n_spike_trains"] == 3
    assert baseline["population"]["n_spikes"] == 200 + poisson["n_spikes"]
    assert baseline["analog_signals"][0]["shape"] == [1000, 3]
    assert stimulus["population"]["mean_rate_hz"] == pytest.approx(2.0)
    # the one pair with spikes on both sides, on the 20 s the regular and Poisson trains share
    (pair,) = baseline["pairs"]["pairs"]
    assert (pair["name_i"], pair["name_j"]) == ("regular", "poisson")
    assert pair["shared_window_s"] == [0.0, 20.0]
    assert abs(pair["sttc"]) < 0.1  # independent trains
    assert stimulus["pairs"]["pairs"] == []
    rate = baseline["instantaneous_rate"]
    assert rate["kernel_sigma_s"] == 0.05 and "Gaussian" in rate["method"]
    assert rate["population_peak_hz"] >= baseline["population"]["mean_rate_hz"]


def test_statistics_and_figures_of_block_without_spike_trains(tmp_path: Path) -> None:
    block = neo.Block(name="empty")
    segment = neo.Segment(name="only signals")
    segment.analogsignals.append(
        neo.AnalogSignal(np.zeros((10, 2)), units="mV", sampling_rate=1 * pq.kHz)
    )
    block.segments.append(segment)
    stats = spike_train_statistics(block)
    assert stats["spike_trains"] == []
    assert stats["segments"][0]["spike_trains"] == []
    json.dumps(stats, allow_nan=False)

    source = write_nix(block, tmp_path / "empty.nix")
    analyze_file(source, tmp_path / "out")
    _assert_png(tmp_path / "out" / "figures" / "raster.png")
    _assert_png(tmp_path / "out" / "figures" / "instantaneous_rate.png")


def test_analyze_file_on_corrupt_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad.nix"
    path.write_bytes(b"not a nix file at all")
    with pytest.raises(NeurosimError):
        analyze_file(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()

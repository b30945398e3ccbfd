"""NWB recordings: neurosim's layout, files from neo and from plain pynwb, and their analysis."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import h5py
import neo
import numpy as np
import pytest
import quantities as pq
from neo.io import NixIO
from pynwb import NWBHDF5IO, NWBFile

from analysis.spiketrains import analyze_file
from neurosim.cli import main
from neurosim.errors import NeurosimError
from neurosim.recording import (
    SegmentRecord,
    SignalRecord,
    SpikeRecord,
    read_nix,
    read_nwb,
    read_recording,
    to_block,
    write_nix,
    write_nwb,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("raster.png", "instantaneous_rate.png", "rate_map.png", "cross_correlograms.png")
START = datetime.datetime(2024, 5, 17, 9, 30, tzinfo=datetime.UTC)


def _poisson(rng: np.random.Generator, rate_hz: float, t_start: float, t_stop: float) -> np.ndarray:
    n = rng.poisson(rate_hz * (t_stop - t_start))
    return np.sort(rng.uniform(t_start, t_stop, n))


def _simulated_block() -> neo.Block:
    """A block shaped like a neurosim run: phases of Poisson trains, signals, a signals-only one."""
    rng = np.random.default_rng(2024)
    segments = []
    for k, (phase, beta) in enumerate((("free", 0.0), ("nudged", 0.5))):
        t0, t1 = 2.0 * k, 2.0 * k + 2.0
        driver = _poisson(rng, 30.0, t0, t1)
        spikes = [
            SpikeRecord(f"pyr{n}", _poisson(rng, 5.0 + 4.0 * n, t0, t1), t0, t1, {"layer": 1})
            for n in range(5)
        ]
        # a follower firing 4 ms after the driver: a CCH peak and a high STTC
        follower = driver[driver + 0.004 < t1] + 0.004
        spikes += [
            SpikeRecord("driver", driver, t0, t1, {"layer": 0, "kind": "input"}),
            SpikeRecord("follower", follower, t0, t1, {"gain": np.float64(1.5)}),
            SpikeRecord("silent", np.array([]), t0, t1, {}),
        ]
        signals = [
            SignalRecord("u_soma", rng.normal(size=(2000, 3)), 1e-3, t0, "dimensionless"),
            SignalRecord("v_apical", rng.normal(size=(200, 2)), 1e-2, t0, "mV", {"layer": 1}),
        ]
        annotations = {"phase": phase, "beta": beta, "ids": [1, 2, 3]}
        segments.append(SegmentRecord(phase, spikes, signals, annotations))
    segments.append(
        SegmentRecord("weights", signals=[SignalRecord("w", rng.normal(size=(6, 4)), 0.05, 0.0)])
    )
    segments.append(SegmentRecord("empty", annotations={"note": "nothing recorded"}))
    return to_block(segments, "dendritic_prediction run", {"seed": 7, "config": {"n": 8}})


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A neurosim recording as NIX, and its NIX -> NWB copy."""
    folder = tmp_path_factory.mktemp("recordings")
    nix = write_nix(_simulated_block(), folder / "control.nix")
    nwb = write_nwb(read_nix(nix), folder / "control.nwb")
    return nix, nwb


# ---------------------------------------------------------------------------------------------
# neurosim's layout
# ---------------------------------------------------------------------------------------------


def test_nix_to_nwb_copy_gives_identical_statistics(
    copies: tuple[Path, Path], tmp_path: Path
) -> None:
    nix, nwb = copies
    rc_nix = main(["analyze", str(nix), "--out", str(tmp_path / "nix")])
    rc_nwb = main(["analyze", str(nwb), "--out", str(tmp_path / "nwb")])
    assert rc_nix == rc_nwb == 0
    from_nix = json.loads((tmp_path / "nix" / "analysis.json").read_text())
    from_nwb = json.loads((tmp_path / "nwb" / "analysis.json").read_text())
    assert from_nix.pop("source") == str(nix)
    assert from_nwb.pop("source") == str(nwb)
    assert from_nwb == from_nix  # every number equal, not approximately equal

    # and the statistics are not trivially empty
    assert [s["name"] for s in from_nwb["segments"]] == ["free", "nudged", "weights", "empty"]
    free = from_nwb["segments"][0]
    assert free["population"]["n_spike_trains"] == 8
    assert free["annotations"] == {"phase": "free", "beta": 0.0, "ids": [1, 2, 3]}
    assert free["analog_signals"][1]["units"] == "mV"
    assert free["pairs"]["n_pairs"] == 21  # the 7 trains with spikes: 7 * 6 / 2 <= 28
    pair = next(
        p for p in free["pairs"]["pairs"] if {p["name_i"], p["name_j"]} == {"driver", "follower"}
    )
    lag = 0.004 if pair["name_i"] == "driver" else -0.004
    assert pair["cch_peak_lag_s"] == pytest.approx(lag)
    assert pair["sttc"] > 0.9
    driver = next(t for t in from_nwb["spike_trains"] if t["name"] == "driver")
    assert driver["annotations"] == {"layer": 0, "kind": "input"}
    assert driver["lv"] == pytest.approx(1.0, abs=0.25)
    for name in FIGURES:
        assert (tmp_path / "nwb" / "figures" / name).read_bytes()[:8] == PNG_MAGIC


def test_nwb_copy_keeps_the_block(copies: tuple[Path, Path]) -> None:
    nix, nwb = copies
    original, copy = read_recording(nix), read_recording(nwb)
    assert copy.name == original.name == "dendritic_prediction run"
    assert copy.annotations["seed"] == 7
    assert [s.name for s in copy.segments] == [s.name for s in original.segments]
    for seg_a, seg_b in zip(original.segments, copy.segments, strict=True):
        assert [t.name for t in seg_b.spiketrains] == [t.name for t in seg_a.spiketrains]
        for a, b in zip(seg_a.spiketrains, seg_b.spiketrains, strict=True):
            np.testing.assert_array_equal(b.times.rescale(pq.s).magnitude, a.magnitude)
            assert float(b.t_start.rescale(pq.s)) == float(a.t_start.rescale(pq.s))
            assert float(b.t_stop.rescale(pq.s)) == float(a.t_stop.rescale(pq.s))
        assert [s.name for s in seg_b.analogsignals] == [s.name for s in seg_a.analogsignals]
        for a, b in zip(seg_a.analogsignals, seg_b.analogsignals, strict=True):
            np.testing.assert_array_equal(b.magnitude, a.magnitude)
            assert b.units == a.units
            assert float(b.sampling_period.rescale(pq.s)) == float(a.sampling_period.rescale(pq.s))
            assert float(b.t_start.rescale(pq.s)) == float(a.t_start.rescale(pq.s))


def test_recordings_open_in_neo_and_pynwb(copies: tuple[Path, Path]) -> None:
    nix, nwb = copies
    block = _simulated_block()
    expected_counts = [len(t) for s in block.segments for t in s.spiketrains]

    io = NixIO(str(nix), mode="ro")
    try:
        from_nix = io.read_block()
    finally:
        io.close()
    assert [len(t) for s in from_nix.segments for t in s.spiketrains] == expected_counts

    with NWBHDF5IO(str(nwb), mode="r") as io:
        nwbfile = io.read()
        units = nwbfile.units
        assert units is not None and len(units) == len(expected_counts) == 16
        counts = [len(units.get_unit_spike_times(row)) for row in range(len(units))]
        assert counts == expected_counts
        assert list(units["_name"][:8]) == [t.name for t in block.segments[0].spiketrains]
        assert list(units["segment_index"][:]) == [0] * 8 + [1] * 8
        np.testing.assert_array_equal(units.get_unit_obs_intervals(8), [[2.0, 4.0]])
        epochs = nwbfile.epochs
        assert list(epochs["_name"][:]) == ["free", "nudged", "weights", "empty"]
        assert list(epochs["start_time"][:2]) == [0.0, 2.0]
        assert list(epochs["stop_time"][:2]) == [2.0, 4.0]
        assert len(nwbfile.acquisition) == 5
        series = nwbfile.acquisition["segment001 signal001 v_apical"]
        assert series.data.shape == (200, 2) and series.unit == "mV" and series.rate == 100.0

    # neo's own NWB reader reads the layout too (segments with data, by name)
    reader = neo.io.NWBIO(str(nwb), mode="r")
    try:
        by_neo = reader.read_all_blocks()[0]
    finally:
        reader.close()
    segments = {s.name: s for s in by_neo.segments}
    assert {"free", "nudged", "weights"} <= set(segments)
    assert [len(t) for t in segments["nudged"].spiketrains] == expected_counts[8:]


# ---------------------------------------------------------------------------------------------
# Files written by other tools
# ---------------------------------------------------------------------------------------------


def _pynwb_units_file(path: Path, with_obs_intervals: bool = False) -> dict[str, np.ndarray]:
    """An NWB file as a spike sorter writes it: a units table with spike times, nothing else."""
    rng = np.random.default_rng(5)
    trains = {
        "regular": np.arange(0.05, 30.0, 0.1),  # 10 Hz, perfectly regular
        "poisson": _poisson(rng, 20.0, 0.0, 40.0),
        "sparse": np.array([1.0, 1.5]),
    }
    nwbfile = NWBFile(
        session_description="sorted units", identifier="lab-1", session_start_time=START
    )
    nwbfile.add_unit_column("quality", "sorting quality")
    for times in trains.values():
        if with_obs_intervals:
            nwbfile.add_unit(spike_times=times, obs_intervals=[[0.0, 50.0]], quality="good")
        else:
            nwbfile.add_unit(spike_times=times, quality="good")
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return trains


def test_analyze_cli_on_a_pynwb_units_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sorted.nwb"
    trains = _pynwb_units_file(path)
    out = tmp_path / "analysis"
    rc = main(["analyze", str(path), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "analysed 3 spike trains in 1 segments (3 pairs)" in captured.out
    stats = json.loads((out / "analysis.json").read_text())
    (segment,) = stats["segments"]
    assert segment["name"] == "units"
    by_name = {t["name"]: t for t in stats["spike_trains"]}
    assert set(by_name) == {"unit 0", "unit 1", "unit 2"}
    session_end = float(trains["poisson"].max())  # no obs_intervals: 0 .. the last spike
    for name, times in zip(("unit 0", "unit 1", "unit 2"), trains.values(), strict=True):
        train = by_name[name]
        assert train["n_spikes"] == len(times)
        assert train["t_start_s"] == 0.0 and train["t_stop_s"] == session_end
        assert train["mean_rate_hz"] == pytest.approx(len(times) / session_end, rel=1e-12)
        assert train["annotations"]["quality"] == "good"
    regular = by_name["unit 0"]
    assert regular["cv_isi"] == pytest.approx(0.0, abs=1e-9)
    assert regular["lv"] == pytest.approx(0.0, abs=1e-9)
    assert by_name["unit 1"]["lv"] == pytest.approx(1.0, abs=0.15)
    assert by_name["unit 2"]["lv"] is None
    for name in FIGURES:
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC


def test_read_pynwb_file_with_obs_intervals(tmp_path: Path) -> None:
    path = tmp_path / "sorted.nwb"
    trains = _pynwb_units_file(path, with_obs_intervals=True)
    block = read_nwb(path)
    assert block.name == "sorted" and block.description == "sorted units"
    (segment,) = block.segments
    assert [len(t) for t in segment.spiketrains] == [len(t) for t in trains.values()]
    for train in segment.spiketrains:
        assert float(train.t_start) == 0.0 and float(train.t_stop) == 50.0
        assert train.annotations["quality"] == "good"


@pytest.mark.filterwarnings("ignore:validate:FutureWarning")
def test_read_file_written_by_neo_nwbio(tmp_path: Path) -> None:
    block = neo.Block(name="lab block", session_start_time=START)
    for k in range(2):
        segment = neo.Segment(name=f"trial {k}")
        for j in range(2):
            train = neo.SpikeTrain(
                np.arange(10.0 * k + 1.0 + j, 10.0 * k + 9.0, 0.5),
                units="s",
                t_start=10.0 * k * pq.s,
                t_stop=(10.0 * k + 10.0) * pq.s,
                name=f"cell {j}",
            )
            train.segment = segment
            segment.spiketrains.append(train)
        signal = neo.AnalogSignal(
            np.ones((100, 2)) * k, units="mV", sampling_rate=10 * pq.Hz, t_start=10.0 * k * pq.s
        )
        signal.name = "lfp"
        signal.segment = segment
        segment.analogsignals.append(signal)
        segment.block = block
        block.segments.append(segment)
    path = tmp_path / "neo.nwb"
    neo.io.NWBIO(str(path), mode="w").write_all_blocks([block])

    loaded = read_recording(path)
    assert loaded.name == "lab block"
    assert [s.name for s in loaded.segments] == ["trial 0", "trial 1"]
    for k, segment in enumerate(loaded.segments):
        assert [t.name for t in segment.spiketrains] == ["cell 0", "cell 1"]
        assert [len(t) for t in segment.spiketrains] == [16, 14]
        assert float(segment.spiketrains[0].t_start) == 10.0 * k
        assert float(segment.spiketrains[0].t_stop) == 10.0 * k + 10.0
        (signal,) = segment.analogsignals
        assert signal.shape == (100, 2) and signal.units == pq.mV
        assert float(signal.magnitude.mean()) == k


# ---------------------------------------------------------------------------------------------
# Errors and atomic writing
# ---------------------------------------------------------------------------------------------


def _errors(tmp_path: Path, copies: tuple[Path, Path]) -> list[tuple[Path, str]]:
    _, nwb = copies
    random_bytes = tmp_path / "random.nwb"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.nwb"
    data = nwb.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    plain_hdf5 = tmp_path / "plain.nwb"
    with h5py.File(plain_hdf5, "w") as handle:
        handle["x"] = np.arange(3)
    nix_as_nwb = tmp_path / "renamed.nwb"
    nix_as_nwb.write_bytes(copies[0].read_bytes())
    unknown = tmp_path / "spikes.csv"
    unknown.write_text("0.1,0.2\n")
    return [
        (random_bytes, "is not a valid NWB file"),
        (truncated, "NWB file"),
        (plain_hdf5, "NWB file"),
        (nix_as_nwb, "NWB file"),
        (tmp_path / "missing.nwb", "does not exist"),
        (tmp_path / "missing.nix", "does not exist"),
        (unknown, "must be a NIX (.nix) or NWB (.nwb) file"),
        (tmp_path / "no_suffix", "without a suffix"),
    ]


def test_bad_files_give_one_clear_error(tmp_path: Path, copies: tuple[Path, Path]) -> None:
    for path, fragment in _errors(tmp_path, copies):
        with pytest.raises(NeurosimError) as info:
            read_recording(path)
        message = str(info.value)
        assert str(path) in message and fragment in message, message
        with pytest.raises(NeurosimError):
            analyze_file(path, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_cli_on_corrupt_nwb_prints_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "corrupt.nwb"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(500))
    rc = main(["analyze", str(path), "--out", str(tmp_path / "analysis")])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("neurosim: error: ")
    assert str(path) in lines[0] and "Traceback" not in captured.err
    assert not (tmp_path / "analysis").exists()


def test_write_nwb_is_atomic_and_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    block = _simulated_block()
    with pytest.raises(NeurosimError, match="does not exist"):
        write_nwb(block, tmp_path / "missing" / "x.nwb")
    path = write_nwb(block, tmp_path / "x.nwb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nwb"]

    block.segments[0].events.append(neo.Event([1.0] * pq.s, labels=["stim"]))
    before = path.read_bytes()
    with pytest.raises(NeurosimError, match="1 events"):
        write_nwb(block, path)
    assert path.read_bytes() == before  # the old file is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nwb"]


def test_analyze_default_folders_keep_a_nix_file_and_its_nwb_copy_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --out each file's analysis lands beside it in a folder named after the file, so
    ``control.nix`` and ``control.nwb`` (as ``neurosim predict`` writes them) keep both."""
    block = _simulated_block()
    write_nix(block, tmp_path / "control.nix")
    write_nwb(_simulated_block(), tmp_path / "control.nwb")
    assert main(["analyze", str(tmp_path / "control.nix")]) == 0
    assert main(["analyze", str(tmp_path / "control.nwb")]) == 0
    capsys.readouterr()
    nix_stats = json.loads((tmp_path / "control-nix-analysis" / "analysis.json").read_text())
    nwb_stats = json.loads((tmp_path / "control-nwb-analysis" / "analysis.json").read_text())
    assert nix_stats["source"].endswith("control.nix")
    assert nwb_stats["source"].endswith("control.nwb")
    assert not (tmp_path / "analysis").exists()

"""Analyse an NWB recording with the experimenter's spike-train statistics (elephant).

    python examples/analyze_nwb.py [PATH.nwb] [--out FOLDER]

Without a path it first writes a small stand-in for a lab recording — 12 units, two trials of 2 s,
Poisson spike trains at 5–40 Hz with a shared rate modulation — as NWB, the way any acquisition
system's export would arrive, and then analyses it. ``neurosim analyze PATH.nwb`` does the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import neo
import numpy as np
import quantities as pq

import neurosim
from neurosim.recording import write_nwb


def stand_in_recording(path: Path, seed: int = 0) -> Path:
    """Two trials of 12 units whose rates share a slow modulation (so pairs correlate)."""
    rng = np.random.default_rng(seed)
    block = neo.Block(name="stand-in recording")
    t_stop, dt = 2.0, 1e-3
    t = np.arange(0.0, t_stop, dt)
    for trial in range(2):
        segment = neo.Segment(name=f"trial {trial + 1}")
        common = 1.0 + 0.8 * np.sin(2 * np.pi * 1.5 * t + rng.uniform(0, 2 * np.pi))
        for unit in range(12):
            rate_hz = rng.uniform(5, 40) * common
            spikes = t[rng.random(t.size) < rate_hz * dt]
            segment.spiketrains.append(
                neo.SpikeTrain(spikes * pq.s, t_stop=t_stop * pq.s, name=f"unit {unit}")
            )
        block.segments.append(segment)
    return write_nwb(block, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="an .nwb (or .nix) file; default: a stand-in")
    parser.add_argument("--out", default=None, help="output folder (default: beside the file)")
    args = parser.parse_args()

    path = Path(args.path) if args.path else stand_in_recording(Path("stand-in-recording.nwb"))
    result = neurosim.analyze(path, out=args.out)
    stats = result.statistics
    trains = stats["spike_trains"]
    rates = [s["mean_rate_hz"] for s in trains]
    print(f"{len(trains)} spike trains in {len(stats['segments'])} segments of {path}")
    print(f"mean rates {min(rates):.1f}–{max(rates):.1f} Hz")
    print(f"figures: {', '.join(sorted(result.figures))}")
    print(f"results written to {result.out}")


if __name__ == "__main__":
    main()

"""Build settings that reach the compiled code: flush-to-zero link flags and OpenMP threads.

Both change the binary, so both must change the build key (a build made without them is never
reused for a run that asks for them). No timings here: speed is measured in ``benchmarks/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurosim import engine
from neurosim.cli import main
from neurosim.errors import NeurosimError
from tests.test_engine_cache import _leaky_builder

#: 40 Euler steps of dv/dt = -v/(2 ms) at dt 0.1 ms multiply v by 0.95**40 = 0.1285
DECAY = 0.95**40
#: a normal double that this decay takes into the subnormal range (below 2.2e-308)
START = 1e-307


def _decayed(threads: int | None = None) -> tuple[float, engine.Simulation]:
    """Run three silent leaky units from ``START``; the first unit's final value and the run."""
    sim = engine.Simulation(
        _leaky_builder(3),
        device="cpp_standalone",
        duration_ms=4.0,
        dt_ms=0.1,
        initial_timed={"drive": np.zeros((4, 3))},
        label="leaky3",
        threads=threads,
    )
    result = sim.run(values={"cells.v": np.full(3, START)}, read=("cells.v",))
    return float(result.state["cells.v"][0]), sim


def _link_line(build_dir: Path) -> str:
    return next(
        line
        for line in (build_dir / "makefile").read_text().splitlines()
        if line.startswith("LFLAGS")
    )


def test_standalone_builds_link_with_fast_math_and_flush_subnormals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linking with -ffast-math turns flush-to-zero on: a value decaying below the smallest
    normal double becomes 0. Without the flag (as Brian2 links by default) it stays subnormal,
    and that build has another key."""
    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    flushed, sim = _decayed()
    assert "-ffast-math" in _link_line(sim.build_dir).split()
    assert flushed == 0.0

    monkeypatch.setattr(engine, "CPP_LINK_FLAGS", ())
    kept, plain = _decayed()
    assert "-ffast-math" not in _link_line(plain.build_dir).split()
    assert plain.build_dir != sim.build_dir and plain.compilations == 1
    assert 0.0 < kept < np.finfo(float).tiny
    np.testing.assert_allclose(kept, START * DECAY, rtol=1e-3)  # subnormals keep few digits


def test_link_args_keep_the_users_and_swap_the_devices() -> None:
    user = ["-Wl,-O1"]
    assert engine._link_args("cpp_standalone", user) == ["-Wl,-O1", *engine.CPP_LINK_FLAGS]
    cuda = engine._link_args("cuda_standalone", engine._link_args("cpp_standalone", user))
    assert cuda == ["-Wl,-O1", *engine.CUDA_LINK_FLAGS]  # nvcc refuses a bare -ffast-math
    # runtime's Cython extensions are loaded into this process: no flush-to-zero for all of it
    assert engine._link_args("runtime", cuda) == ["-Wl,-O1"]


def test_openmp_threads_reach_the_build_and_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """threads = 2 compiles with OpenMP and sets two threads in the generated main; it is another
    build; the numbers are those of one core (these units do not interact)."""
    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    one, single = _decayed(threads=0)
    with engine.default_threads(2):  # what `neurosim run --threads 2` sets around the protocol
        two, threaded = _decayed()
    assert threaded.threads == 2 and single.threads == 0
    assert threaded.build_dir != single.build_dir and threaded.compilations == 1
    assert "-fopenmp" in _link_line(threaded.build_dir)
    assert "-fopenmp" not in _link_line(single.build_dir)
    assert "omp_set_num_threads(2)" in (threaded.build_dir / "main.cpp").read_text()
    assert two == one
    assert engine._default_threads[0] == 0  # the block restores the default


@pytest.mark.parametrize("bad", [-1, 2.0, "2", True, 5000])
def test_bad_thread_counts_are_refused(bad: object) -> None:
    with pytest.raises(NeurosimError, match="threads must be"):
        engine.check_threads(bad)


def test_threads_on_the_command_line_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--threads is a run-table key: a negative count and threads on a device without OpenMP
    builds are one clear error before anything runs."""
    base = ["run", "dendritic-prediction", "--no-progress", "--out", str(tmp_path / "r")]
    assert main([*base, "--threads", "-1"]) == 2
    assert "'run.threads'" in capsys.readouterr().err
    assert main([*base, "--threads", "2", "--device", "runtime"]) == 2
    assert "OpenMP threads of cpp_standalone builds" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_threads_of_a_run_reach_its_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`neurosim run --threads 2` compiles the run's build with two OpenMP threads and records
    the setting in config.toml."""
    import json
    import tomllib

    from tests.conftest import SMALL_RUN

    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    argv = ["run", "dendritic-prediction", "--no-progress", *SMALL_RUN, "--epochs", "1"]
    assert main([*argv, "--threads", "2", "--out", str(out)]) == 0
    build_dir = Path(json.loads((out / "metrics.json").read_text())["build_dir"])
    assert "omp_set_num_threads(2)" in (build_dir / "main.cpp").read_text()
    assert tomllib.loads((out / "config.toml").read_text())["run"]["threads"] == 2
    assert engine._default_threads[0] == 0  # the run's setting does not outlive it

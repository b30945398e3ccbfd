"""The engine: build a circuit once, compile it once per structure, run it many times.

A circuit is described by a *builder*, a function that creates the Brian2 objects of one circuit
from the values of its ``TimedArray`` inputs and returns them as a :class:`CircuitBuild`. The
engine decides how it is executed (DESIGN.md §3):

* ``cpp_standalone`` / ``cuda_standalone``: the builder runs once, the project is generated and
  compiled once per structure (:mod:`neurosim.build_cache`) and every :meth:`Simulation.run`
  re-runs the binary with new state, parameters, TimedArray contents and seed through
  ``device.run(run_args=...)``. A build cached by an earlier process is reused without compiling.
* ``runtime``: the builder runs afresh for every run (debugging and tiny runs only).

Every value that differs between runs must be handed to :meth:`Simulation.run`: values set inside
the builder are the compiled defaults.

The seed of a run is a run argument too (``neurosim_rng.run_seed``), so a new seed needs no new
compilation. On ``cpp_standalone`` a ``run_regularly`` at the start of the run re-seeds Brian2's
random generators from it. On ``cuda_standalone`` host code inserted just before the network runs
reads it from the command line and calls ``random_number_buffer.set_seed``, which re-seeds the
cuRAND generator (``rand()``, ``randn()``, ``xi``) and re-initialises the device-API states.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brian2
import numpy as np
from brian2 import (
    Function,
    Network,
    NeuronGroup,
    SpikeMonitor,
    StateMonitor,
    TimedArray,
    check_units,
    implementation,
    ms,
    second,
)

from neurosim import build_cache
from neurosim.devices import STANDALONE_DEVICES, resolve_device
from neurosim.errors import NeurosimError, NoGPUError, SimulationError

Builder = Callable[[Mapping[str, np.ndarray]], "CircuitBuild"]

#: link flags of every cpp_standalone build. Brian2 compiles with -ffast-math but links without
#: it, so crtfastmath.o, which turns on flush-to-zero and denormals-are-zero at start-up, is never
#: linked: filtered quantities of silent inputs then decay into subnormal floats, which slow many
#: x86 cores (measurements: benchmarks/README.md)
CPP_LINK_FLAGS = ("-ffast-math",)
#: the same for cuda_standalone, whose link step is nvcc: it forwards ``-Xcompiler`` to the host
#: compiler that links (nvcc refuses a bare -ffast-math). Device code already flushes: nvcc's
#: ``-use_fast_math`` (brian2cuda's default) implies ``--ftz=true``
CUDA_LINK_FLAGS = ("-Xcompiler=-ffast-math",)
#: the link flags the engine sets and removes again (per device; never for runtime)
_MANAGED_LINK_FLAGS = frozenset({"-ffast-math", "-Xcompiler=-ffast-math"})

#: OpenMP threads of cpp_standalone builds made while no ``threads`` is given (0: one core)
_default_threads: list[int] = [0]


def check_threads(threads: Any) -> int:
    """``threads`` as an int, or a clear error: OpenMP threads of cpp_standalone, 0 = one core."""
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer):
        raise NeurosimError(f"threads must be a whole number (0 = one core), got {threads!r}.")
    if not 0 <= int(threads) <= 1024:
        raise NeurosimError(f"threads must be between 0 (one core) and 1024, got {threads}.")
    return int(threads)


@contextlib.contextmanager
def default_threads(threads: int) -> Any:
    """Within this block, Simulations built without ``threads`` use ``threads`` OpenMP threads.

    A run builds several Simulations deep inside its protocol (training, evaluations, baselines);
    this sets them all without threading the value through every protocol.
    """
    previous = _default_threads[0]
    _default_threads[0] = check_threads(threads)
    try:
        yield
    finally:
        _default_threads[0] = previous


def _link_args(device: str, current: list[str]) -> list[str]:
    """``current`` link flags without neurosim's flags of either device, plus ``device``'s.

    The runtime device gets none: its Cython extensions are shared libraries loaded into this
    process, and one linked with -ffast-math would turn flush-to-zero on for all of it.
    """
    kept = [flag for flag in current if flag not in _MANAGED_LINK_FLAGS]
    own = {"cpp_standalone": CPP_LINK_FLAGS, "cuda_standalone": CUDA_LINK_FLAGS}.get(device, ())
    return kept + list(own)


@dataclass
class CircuitBuild:
    """The Brian2 objects of one circuit, as returned by a circuit builder.

    ``connectivity`` holds the explicit ``(i, j)`` arrays of every ``Synapses`` object (part of
    the structure key); ``timed_arrays`` the circuit's inputs by name; ``monitors`` the monitors
    whose recordings :meth:`Simulation.run` returns; ``namespace`` the constants the equations use.
    """

    objects: list[Any]
    namespace: dict[str, Any] = field(default_factory=dict)
    timed_arrays: dict[str, TimedArray] = field(default_factory=dict)
    connectivity: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    monitors: dict[str, Any] = field(default_factory=dict)

    def group(self, name: str) -> Any:
        """The Brian2 object called ``name``."""
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise NeurosimError(f"The circuit has no group or synapses called {name!r}.")


@dataclass
class RunResult:
    """What one run returns: final state, monitor recordings (time in seconds), timings."""

    state: dict[str, np.ndarray]
    monitors: dict[str, dict[str, np.ndarray]]
    wall_seconds: float
    simulated_seconds: float


def _reseed_function() -> Function:
    """A Brian2 function that re-seeds the standalone random generators from a run-time value.

    Brian2 compiles the seed into standalone code; calling this from a ``run_regularly`` at the
    very start of a run makes the seed a ``(shared, constant)`` parameter instead, so a new seed
    does not need a new compilation.
    """

    @implementation(
        "cpp",
        """
        int neurosim_reseed(int seed) {
            for (size_t _k = 0; _k < brian::_random_generators.size(); _k++)
                brian::_random_generators[_k].seed((unsigned long)seed + 7919UL * _k);
            return 0;
        }
        """,
    )
    @check_units(seed=1, result=1)
    def neurosim_reseed(seed: int) -> int:
        return 0

    return neurosim_reseed


#: name of the group that holds the per-run seed (a ``(shared, constant)`` run argument)
RNG_GROUP = "neurosim_rng"

#: offset added to the run seed on cuda_standalone, so that seed 0 differs from brian2cuda's
#: compiled default seed
_CUDA_SEED_OFFSET = 7919


def cuda_reseed_code(group: str = RNG_GROUP) -> str:
    """Host code that re-seeds brian2cuda's random numbers from this run's seed argument.

    brian2cuda inserts ``before_network_run`` lines into ``main()`` *before* its own
    ``set_from_command_line(args)``, so the value cannot be read from the seed variable there:
    the code reads the run argument ``<group>.run_seed=<n>`` from ``args`` (``main``'s
    command-line arguments) itself. ``random_number_buffer.set_seed`` re-seeds the host-API
    generator, resets its offset and re-initialises the device-API cuRAND states (rand.cu). Without
    the argument the compiled seed stays.
    """
    key = f"{group}.run_seed="
    return (
        "// neurosim: per-run seed from the run argument " + key + "<n>\n"
        "for (const auto& _neurosim_arg : args)\n"
        "{\n"
        f'    const std::string _neurosim_key = "{key}";\n'
        "    if (_neurosim_arg.compare(0, _neurosim_key.size(), _neurosim_key) == 0)\n"
        "        random_number_buffer.set_seed("
        f"{_CUDA_SEED_OFFSET}ULL + std::stoull(_neurosim_arg.substr(_neurosim_key.size())));\n"
        "}"
    )


def _describe_namespace(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Constants are compiled in, so their values are structure; TimedArray contents are not."""
    described: dict[str, Any] = {}
    for key, value in sorted(namespace.items()):
        if isinstance(value, TimedArray):
            described[key] = ("TimedArray", value.values.shape, float(value.dt))
        elif isinstance(value, Function):
            described[key] = ("Function", getattr(value, "pyfunc", value).__name__)
        else:
            described[key] = repr(value)
    return described


def _describe(net: Network, build: CircuitBuild, extra: dict[str, Any]) -> dict[str, Any]:
    """The structure of a network: what is compiled into a standalone build."""
    objects = []
    for obj in net.sorted_objects:
        entry: dict[str, Any] = {
            "type": type(obj).__name__,
            "name": obj.name,
            "when": obj.when,
            "order": obj.order,
            "dt": float(obj.clock.dt_),
        }
        for attr in ("abstract_code", "code", "record_variables", "event"):
            value = getattr(obj, attr, None)
            if isinstance(value, (set, frozenset)):  # set order varies with PYTHONHASHSEED
                value = sorted(value)
            if value is not None:
                entry[attr] = repr(value)
        if hasattr(obj, "equations"):
            entry["equations"] = str(obj.equations)
        if not getattr(obj, "active", True):  # compiled, but left out of the run loop
            entry["active"] = False
        if isinstance(obj, NeuronGroup):
            entry["N"] = len(obj)
        if isinstance(getattr(obj, "namespace", None), dict):
            entry["namespace"] = _describe_namespace(obj.namespace)
        record = getattr(obj, "record", None)
        if isinstance(record, np.ndarray):
            entry["record"] = record
        objects.append(entry)
    return {
        "objects": objects,
        "namespace": _describe_namespace(build.namespace),
        "timed_arrays": {k: (v.values.shape, float(v.dt)) for k, v in build.timed_arrays.items()},
        "connectivity": {
            k: (np.asarray(i), np.asarray(j)) for k, (i, j) in build.connectivity.items()
        },
        "brian2": brian2.__version__,
        **extra,
    }


#: the Simulation whose objects Brian2's one global standalone device holds (the device is
#: process-wide: preparing a second Simulation re-initialises it under the first)
_device_owner: list[Any] = [None]


def _release_device_objects(simulation: Any) -> None:
    """Drop the Brian2 objects of the device's owner and of ``simulation``, and collect them.

    Brian2 numbers automatic names (``inter1_subexpression_update``, ``..._1``, ...) after the
    objects alive in the process, and the names are compiled into the code and so into the
    structure key: without this, a second Simulation of the same structure in one process (a
    trained circuit kept for the next seed) would get new names and compile again. The objects of
    a Simulation that lost the device are useless anyway (the device is re-initialised next); it
    rebuilds them, finding its compiled project in the cache, when it runs next. The caller
    collects them after ``device.reinit()``, which drops the device's own references (the
    generated code objects, also numbered by name).
    """
    for sim in (_device_owner[0], simulation):
        if sim is not None:
            sim._build = None
            sim._rng_group = None
    _device_owner[0] = None


def _split_key(key: str) -> tuple[str, str]:
    """``'group.variable'`` -> ``('group', 'variable')``."""
    group_name, _, var = key.partition(".")
    if not var:
        raise NeurosimError(f"State key {key!r} must have the form 'group.variable'.")
    return group_name, var


class Simulation:
    """One circuit structure on one device: compiled (at most) once, run many times.

    Parameters: ``builder`` creates the circuit from its TimedArray values; ``duration_ms`` is the
    length of every run (compiled into standalone builds); ``dt_ms`` the integration step;
    ``initial_timed`` the TimedArray values of the first build (their shapes are fixed from then
    on); ``label`` names the build in the cache. ``threads`` is the number of OpenMP threads of a
    cpp_standalone build (0: one core, no OpenMP; None: the :func:`default_threads` in force); it
    changes the generated code, so it is part of the build key. Other devices ignore it.
    ``cuda_seed`` is accepted for older callers and has no effect: every run's ``seed`` now sets
    the random numbers on every device.
    """

    def __init__(
        self,
        builder: Builder,
        *,
        device: str | None,
        duration_ms: float,
        dt_ms: float,
        initial_timed: Mapping[str, np.ndarray],
        label: str = "circuit",
        cuda_seed: int = 0,
        threads: int | None = None,
    ) -> None:
        if not duration_ms > 0:
            raise NeurosimError(f"The run duration must be positive, got {duration_ms} ms.")
        if not dt_ms > 0:
            raise NeurosimError(f"The time step dt must be positive, got {dt_ms} ms.")
        self.builder = builder
        self.device = resolve_device(device)
        self.duration_ms = float(duration_ms)
        self.dt_ms = float(dt_ms)
        self.label = label
        self.cuda_seed = int(cuda_seed)
        self.threads = _default_threads[0] if threads is None else check_threads(threads)
        self.compilations = 0
        self.compile_seconds = 0.0
        self.build_dir: Path | None = None
        self.timed_shapes = {k: np.shape(v) for k, v in initial_timed.items()}
        self._initial_timed = dict(initial_timed)
        self._build: CircuitBuild | None = None
        self._rng_group: NeuronGroup | None = None
        self._run_counter = 0
        brian2.BrianLogger.log_level_warn()
        if self.device in STANDALONE_DEVICES:
            self._prepare_standalone()

    # ------------------------------------------------------------------ standalone
    def _prepare_standalone(self) -> None:
        """Build the Python objects, then find the compiled project in the cache or compile it."""
        _release_device_objects(self)
        if self.device == "cuda_standalone":
            from neurosim import cuda

            cuda.configure_cuda_prefs()
        brian2.set_device(self.device, build_on_run=False)
        dev = brian2.get_device()
        dev.reinit()
        gc.collect()  # the previous build's code objects, which the device held until reinit
        dev.activate(build_on_run=False)
        threads = self.threads if self.device == "cpp_standalone" else 0
        brian2.prefs.devices.cpp_standalone.openmp_threads = threads
        cpp_prefs = brian2.prefs.codegen.cpp
        cpp_prefs.extra_link_args = _link_args(self.device, list(cpp_prefs.extra_link_args))
        # Brian2's default `make -j` starts one compiler per source file at once (dozens of g++
        # processes on a 2-core machine, more with several workers); bound it to the cores
        make_args = brian2.prefs.devices.cpp_standalone
        if list(make_args.extra_make_args_unix) == ["-j"]:
            make_args.extra_make_args_unix = ["-j", str(os.cpu_count() or 1)]
        brian2.defaultclock.dt = self.dt_ms * ms
        build = self.builder(self._initial_timed)
        for name, ta in build.timed_arrays.items():
            if ta.name.startswith("_timedarray"):
                raise NeurosimError(
                    f"TimedArray input {name!r} needs an explicit name: compiled runs receive "
                    "its values by name, and an automatic one changes when the circuit is rebuilt."
                )
        objects = list(build.objects)
        extra: dict[str, Any] = {
            "device": self.device,
            "dt_ms": self.dt_ms,
            "host": build_cache.host_signature(),
            # OpenMP threads change the generated code (pragmas, -fopenmp) and the compiled count
            "openmp_threads": threads,
        }
        if self.device == "cpp_standalone":
            self._rng_group = NeuronGroup(
                1,
                "run_seed : integer (shared, constant)\nreseeded : integer",
                name=RNG_GROUP,
                namespace={"neurosim_reseed": _reseed_function()},
            )
            self._rng_group.run_regularly(
                "reseeded = neurosim_reseed(run_seed)",
                dt=self.duration_ms * ms,
                when="start",
                order=-1000,
                name="neurosim_rng_reseed",
            )
        else:
            import brian2cuda

            # brian2cuda has no run-time seed: the seed variable only carries the run argument,
            # which the inserted host code reads before the network runs (cuda_reseed_code)
            self._rng_group = NeuronGroup(
                1, "run_seed : integer (shared, constant)", name=RNG_GROUP
            )
            extra["brian2cuda"] = brian2cuda.__version__
            extra["cuda_reseed"] = cuda_reseed_code()
            # a fixed compiled default (every run passes its own seed, so it is never used);
            # not ``cuda_seed``, which would put the seed into the structure key
            brian2.seed(0)
            dev.insert_code("before_network_run", cuda_reseed_code())
        objects.append(self._rng_group)
        net = Network(*objects)
        net.run(self.duration_ms * ms, namespace=build.namespace)
        extra["duration_ms"] = self.duration_ms
        extra["compiler_flags"] = (
            list(cpp_prefs.extra_compile_args_gcc),
            list(cpp_prefs.include_dirs),
        )
        extra["link_flags"] = (
            list(cpp_prefs.extra_link_args),
            list(cpp_prefs.library_dirs),
            list(cpp_prefs.runtime_library_dirs),
        )
        if self.device == "cuda_standalone":
            extra["nvcc_flags"] = list(
                brian2.prefs.devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc
            )
        key = build_cache.structure_key(_describe(net, build, extra))
        build_dir = build_cache.cache_root() / f"{self.label}-{self.device}-{key}"
        with build_cache.locked(build_dir.with_suffix(".lock")):
            if not build_cache.is_complete(build_dir):
                build_cache.discard(build_dir)
                start = time.perf_counter()
                try:
                    dev.build(directory=str(build_dir), compile=True, run=False, with_output=False)
                except Exception as exc:  # compiler failure: say so in one sentence
                    build_cache.discard(build_dir)
                    raise NeurosimError(
                        f"Compiling the {self.device} build of {self.label!r} failed ({exc})."
                    ) from exc
                self.compile_seconds += time.perf_counter() - start
                self.compilations += 1
                build_cache.mark_complete(
                    build_dir, {"label": self.label, "device": self.device, "key": key}
                )
            else:
                dev.project_dir = str(build_dir)
        self.build_dir = build_dir
        self._build = build
        _device_owner[0] = self

    def _check_timed(self, timed: Mapping[str, np.ndarray]) -> None:
        for name, shape in self.timed_shapes.items():
            if name not in timed:
                raise NeurosimError(f"Missing values for the TimedArray input {name!r}.")
            if np.shape(timed[name]) != shape:
                raise NeurosimError(
                    f"TimedArray input {name!r} has shape {np.shape(timed[name])}, but the "
                    f"compiled circuit expects {shape}; pad shorter inputs to the same length."
                )
            if not np.all(np.isfinite(timed[name])):
                raise NeurosimError(f"TimedArray input {name!r} contains NaN or infinite values.")
        unknown = set(timed) - set(self.timed_shapes)
        if unknown:
            raise NeurosimError(f"Unknown TimedArray input(s): {', '.join(sorted(unknown))}.")

    def _checked_values(
        self, build: CircuitBuild, values: Mapping[str, Any]
    ) -> list[tuple[Any, str, Any]]:
        """Resolve ``'group.var' -> value`` to ``(group, var, value)``, checking sizes in Python.

        Standalone binaries report a wrong-sized array only on stderr and go on with the compiled
        values (DESIGN.md §3), so every size is checked here before a run.
        """
        checked: list[tuple[Any, str, Any]] = []
        for key, value in values.items():
            group_name, var = _split_key(key)
            group = build.group(group_name)
            if var not in group.variables:
                raise NeurosimError(f"{group_name!r} has no variable {var!r}.")
            variable = group.variables[var]
            arr = np.asarray(value)
            if not np.all(np.isfinite(arr)):
                raise NeurosimError(f"The value given for {key!r} contains NaN or infinite values.")
            if variable.scalar:
                if arr.size != 1:
                    raise NeurosimError(f"{key!r} is a single shared value, got shape {arr.shape}.")
            else:
                expected = (
                    len(build.connectivity[group_name][0])
                    if group_name in build.connectivity
                    else len(group)
                )
                if arr.ndim != 1 or arr.size != expected:
                    raise NeurosimError(
                        f"{key!r} needs {expected} values, got an array of shape {arr.shape}."
                    )
            value = arr.item() if variable.scalar else arr
            if not variable.dim.is_dimensionless:  # a value in SI units (a quantity's number)
                value = brian2.Quantity(value, dim=variable.dim)
            checked.append((group, var, value))
        return checked

    # ------------------------------------------------------------------ running
    def run(
        self,
        *,
        values: Mapping[str, Any] | None = None,
        timed: Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
        read: tuple[str, ...] = (),
    ) -> RunResult:
        """Run the circuit for ``duration_ms`` from the given state and inputs.

        ``values`` maps ``'group.variable'`` to the initial values of this run (state, weights,
        ``(shared, constant)`` parameters; a variable with units takes a quantity, or a number
        in SI units); ``timed`` gives every TimedArray input; ``seed`` fixes
        the random numbers of this run; ``read`` names the state variables to return at the end.
        """
        if not 0 <= int(seed) < 2**31:
            raise NeurosimError(f"The run seed must be in [0, 2**31), got {seed}.")
        values = dict(values or {})
        timed = dict(timed if timed is not None else self._initial_timed)
        self._check_timed(timed)
        start = time.perf_counter()
        if self.device in STANDALONE_DEVICES:
            result = self._run_standalone(values, timed, int(seed), read)
        else:
            result = self._run_runtime(values, timed, int(seed), read)
        result.wall_seconds = time.perf_counter() - start
        self._check_finite(result)
        return result

    def _run_standalone(
        self, values: dict[str, Any], timed: dict[str, np.ndarray], seed: int, read: tuple[str, ...]
    ) -> RunResult:
        if _device_owner[0] is not self:
            # another Simulation took the global device since: rebuild this one's objects on it
            # (the compiled project is found in the cache, nothing is compiled again)
            self._prepare_standalone()
        build = self._build
        assert build is not None and self.build_dir is not None
        if self.device == "cuda_standalone":
            from neurosim import cuda

            if not cuda.gpu_present():
                raise NoGPUError(
                    "The CUDA code was generated and compiled in "
                    f"{self.build_dir}, but no GPU is present on this machine to run it."
                )
        args = {getattr(g, var): val for g, var, val in self._checked_values(build, values)}
        for name, arr in timed.items():
            args[build.timed_arrays[name]] = np.asarray(arr, dtype=float)
        if self._rng_group is not None:
            args[self._rng_group.run_seed] = seed
        dev = brian2.get_device()
        self._run_counter += 1
        results_rel = f"results/{os.getpid()}-{self._run_counter}-{time.time_ns()}"
        # Processes sharing this build (sweep workers) may run it at the same time, and Brian2
        # writes a run argument once under a content-hash name, skipping a file that exists: so
        # each run holds a shared lock while it runs and deletes its argument files only when no
        # other run holds one (else another process's binary may be about to read them).
        with open(Path(self.build_dir) / ".neurosim-runs.lock", "a+") as runs_lock:
            fcntl.flock(runs_lock, fcntl.LOCK_SH)
            try:
                dev.run(
                    directory=str(self.build_dir),
                    results_directory=results_rel,
                    with_output=False,
                    run_args=args,
                )
            except RuntimeError as exc:
                raise SimulationError(f"The compiled simulation failed to run ({exc}).") from exc
            finally:
                fcntl.flock(runs_lock, fcntl.LOCK_UN)
            try:
                result = self._collect(build, read)
            finally:
                shutil.rmtree(Path(self.build_dir) / results_rel, ignore_errors=True)
                self._remove_run_args(runs_lock, dev.run_args_arrays)
        return result

    def _remove_run_args(self, runs_lock: Any, names: list[str]) -> None:
        """Delete this run's input files (written by Brian2) unless another run is in progress."""
        try:
            fcntl.flock(runs_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process runs this build now: it may need the same files
            return
        try:
            for name in names:
                for suffix in ("", ".lock"):
                    with contextlib.suppress(OSError):
                        os.remove(Path(self.build_dir) / "static_arrays" / (name + suffix))
        finally:
            fcntl.flock(runs_lock, fcntl.LOCK_UN)

    def _run_runtime(
        self, values: dict[str, Any], timed: dict[str, np.ndarray], seed: int, read: tuple[str, ...]
    ) -> RunResult:
        brian2.set_device("runtime")
        _device_owner[0] = None
        cpp_prefs = brian2.prefs.codegen.cpp
        cpp_prefs.extra_link_args = _link_args("runtime", list(cpp_prefs.extra_link_args))
        brian2.defaultclock.dt = self.dt_ms * ms
        brian2.seed(seed)
        np.random.seed(seed)  # brian2.seed does this too; explicit for the reader
        build = self.builder(timed)
        for group, var, value in self._checked_values(build, values):
            setattr(group, var, value)
        net = Network(*build.objects)
        net.run(self.duration_ms * ms, namespace=build.namespace)
        self._build = build
        return self._collect(build, read)

    def _collect(self, build: CircuitBuild, read: tuple[str, ...]) -> RunResult:
        state = {}
        for key in read:
            group_name, var = _split_key(key)
            state[key] = np.array(getattr(build.group(group_name), var)[:], dtype=float)
        monitors: dict[str, dict[str, np.ndarray]] = {}
        for name, mon in build.monitors.items():
            if isinstance(mon, SpikeMonitor) and not mon.record:  # spike counts per cell only
                monitors[name] = {"count": np.array(mon.count[:], dtype=int)}
            elif isinstance(mon, SpikeMonitor):
                monitors[name] = {
                    "t": np.array(mon.t[:] / second, dtype=float),
                    "i": np.array(mon.i[:], dtype=int),
                }
            elif isinstance(mon, StateMonitor):
                rec: dict[str, np.ndarray] = {"t": np.array(mon.t[:] / second, dtype=float)}
                for var in mon.record_variables:
                    rec[var] = np.array(np.asarray(getattr(mon, var)), dtype=float).T
                monitors[name] = rec
            else:
                raise NeurosimError(f"Monitor {name!r} has an unsupported type {type(mon)}.")
        return RunResult(state, monitors, 0.0, self.duration_ms / 1000.0)

    @staticmethod
    def _check_finite(result: RunResult) -> None:
        for key, arr in result.state.items():
            if not np.all(np.isfinite(arr)):
                raise SimulationError(
                    f"The dynamics produced NaN or infinite values in {key!r}; lower dt or the "
                    "learning rate."
                )
        for name, rec in result.monitors.items():
            for var, arr in rec.items():
                if not np.all(np.isfinite(arr)):
                    raise SimulationError(
                        f"The dynamics produced NaN or infinite values in {var!r} recorded by "
                        f"{name!r}; lower dt or the learning rate."
                    )

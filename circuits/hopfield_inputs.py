"""TimedArray inputs of the layered Hopfield circuit (:mod:`circuits.hopfield`) and the layout of
examples in time.

``TimedArray`` inputs (:func:`timed_names`): ``inputs`` (rows × n0), ``targets`` (rows × nN,
target rates d), ``beta`` (rows); with the rules ``plastic`` (continual), ``latch`` (two-phase),
``restart`` (with ``example_ms``; one row per example), ``hebb_gate`` (the two-phase rule from
spike traces: the phase gate of the trace products, per ms; :func:`hebb_gate_rows`), each
sampled every ``timed_dt_ms`` (per name; a multiple of dt; the last row holds after the end).
:func:`example_timed` lays out P examples of free and nudged phases.

The builder's TimedArray objects (:func:`_timed_arrays`) are made here too, from the values and
the sampling steps. :mod:`circuits.hopfield` re-exports every public name, and
:class:`circuits.hopfield.HopfieldCircuit` offers them as methods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from brian2 import TimedArray

from neurosim.blocks import per_row, timed_inputs

BASE_INPUTS = ("inputs", "targets", "beta")


def timed_names(
    plasticity: Sequence[str] = (), example_ms: float | None = None, learn_from: str = "rates"
) -> tuple[str, ...]:
    """The TimedArray inputs a build with these options needs."""
    names = list(BASE_INPUTS)
    if "continual" in plasticity:
        names.append("plastic")
    if "two-phase" in plasticity:
        names.append("latch")
    if example_ms is not None:
        names.append("restart")
    if learn_from == "spike-traces":
        names.append("hebb_gate")
    return tuple(names)


def timed_values(
    inputs: np.ndarray,
    n_out: int,
    *,
    targets: np.ndarray | None = None,
    beta: float | np.ndarray = 0.0,
    plastic: float | np.ndarray | None = None,
    latch: float | np.ndarray | None = None,
    restart: float | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """TimedArray values: scalars broadcast to one value per row of ``inputs``; ``plastic``,
    ``latch``, ``restart`` only when given (see :func:`timed_names`)."""
    inputs = np.asarray(inputs, dtype=float)
    rows = inputs.shape[0]
    out = {
        "inputs": inputs,
        "targets": (
            np.zeros((rows, n_out)) if targets is None else np.asarray(targets, dtype=float)
        ),
        "beta": per_row(beta, rows),
    }
    for name, value in (("plastic", plastic), ("latch", latch), ("restart", restart)):
        if value is not None:
            out[name] = per_row(value, rows)
    return out


def _steps(value_ms: float, dt_ms: float, what: str) -> int:
    n = round(value_ms / dt_ms)
    if n < 1 or abs(n * dt_ms - value_ms) > 1e-9 * max(1.0, value_ms):
        raise ValueError(f"{what} ({value_ms} ms) must be a positive multiple of dt ({dt_ms} ms)")
    return n


def example_timed(
    inputs: np.ndarray,
    targets: np.ndarray,
    beta: float | Sequence[float],
    *,
    free_ms: float,
    nudged_ms: float,
    dt_ms: float,
    symmetric: bool | Sequence[bool] = False,
    restart: float | Sequence[float] = 1.0,
    plastic: bool = True,
    phases: int | None = None,
    names: Sequence[str] | None = None,
    window_ms: float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """P examples (rows of ``inputs``, ``targets``) laid out for a build with ``example_ms``:
    returns the TimedArray values (all six, and ``hebb_gate`` with ``window_ms``), their sampling
    steps and ``example_ms``.

    Two-phase example: free phase (β = 0, ``latch`` 1) for ``free_ms``, then nudged at β
    (``plastic`` 1) for ``nudged_ms``. Symmetric example (``symmetric`` per example or for all):
    free, then −β with ``latch`` 1, then +β with ``plastic`` 0.5 (the continual rule then
    integrates from −β to +β over 2β), each nudged phase ``nudged_ms`` long. ``phases``: 2 (free,
    nudged) or 3 (free and two nudged phases; a two-phase example is then nudged for
    2·``nudged_ms``); default 3 if any example is symmetric. ``beta``: one value
    or one per example; ``restart``: start each example from s = 0 (1) or go on (0); ``plastic``:
    False leaves the continual gate at 0 throughout; ``names``: keep only these inputs (those of
    the build, :func:`timed_names`; default all six). ``beta``, ``latch`` and ``plastic`` end
    with one neutral row (all 0) for the extra step of :func:`duration_ms`. ``window_ms``: the
    two-phase rule from spike traces accumulates its trace products over the last ``window_ms``
    of the free (or −β) phase and of the example (:func:`hebb_gate_rows`; at most a nudged
    phase); all phase signals are then sampled at the common divisor of the three lengths.
    """
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float))
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    p = inputs.shape[0]
    if targets.shape[0] != p:
        raise ValueError(f"{p} inputs but {targets.shape[0]} targets")
    betas = per_row(np.asarray(beta, dtype=float), p)
    sym = np.broadcast_to(np.asarray(symmetric, dtype=bool), (p,))
    n_free, n_nudged = _steps(free_ms, dt_ms, "free_ms"), _steps(nudged_ms, dt_ms, "nudged_ms")
    unit = math.gcd(n_free, n_nudged)  # phase rows, in steps
    n_window = None if window_ms is None else _steps(window_ms, dt_ms, "window_ms")
    if n_window is not None:
        if n_window > min(n_free, n_nudged):
            raise ValueError(
                f"window_ms ({window_ms} ms) must not exceed the free or a nudged phase"
            )
        unit = math.gcd(unit, n_window)
    per_phase_free, per_phase_nudged = n_free // unit, n_nudged // unit
    n_phases = (3 if sym.any() else 2) if phases is None else int(phases)
    if n_phases not in (2, 3) or (sym.any() and n_phases == 2):
        raise ValueError(f"phases must be 2 or 3 (3 with symmetric examples), got {phases!r}")
    example_steps = n_free + (n_phases - 1) * n_nudged
    beta_rows, latch_rows, plastic_rows = [], [], []
    for e in range(p):
        b = betas[e]
        beta_rows += [0.0] * per_phase_free
        if sym[e]:
            latch_rows += [0.0] * per_phase_free + [1.0] * per_phase_nudged
            plastic_rows += [0.0] * (per_phase_free + per_phase_nudged)
            beta_rows += [-b] * per_phase_nudged + [b] * per_phase_nudged
            latch_rows += [0.0] * per_phase_nudged
            plastic_rows += [0.5] * per_phase_nudged
        else:
            latch_rows += [1.0] * per_phase_free + [0.0] * per_phase_nudged
            plastic_rows += [0.0] * per_phase_free + [1.0] * per_phase_nudged
            beta_rows += [b] * per_phase_nudged
            if n_phases == 3:  # pad to the common example length with more nudged steps
                beta_rows += [b] * per_phase_nudged
                latch_rows += [0.0] * per_phase_nudged
                plastic_rows += [1.0] * per_phase_nudged
    example_ms = example_steps * dt_ms
    timed = timed_values(
        inputs,
        targets.shape[1],
        targets=targets,
        beta=np.zeros(p),
        restart=per_row(np.asarray(restart, dtype=float), p),
    )
    # one more row, for the step after the last example (:func:`duration_ms`): no nudging, no
    # latching and no continual plasticity there
    timed["beta"] = np.array([*beta_rows, 0.0])
    timed["latch"] = np.array([*latch_rows, 0.0])
    timed["plastic"] = np.array([*plastic_rows, 0.0]) * float(plastic)
    if n_window is not None:
        gate = hebb_gate_rows(
            betas, sym, free_steps=n_free, nudged_steps=n_nudged, window_steps=n_window,
            phases=n_phases, dt_ms=dt_ms,
        )  # fmt: skip
        timed["hebb_gate"] = np.array([*gate[::unit], 0.0])
    if names is not None:
        timed = {name: timed[name] for name in names}
    timed_dt = sampling_steps(example_ms, unit * dt_ms)
    return timed, timed_dt, example_ms


def hebb_gate_rows(
    betas: np.ndarray,
    symmetric: np.ndarray,
    *,
    free_steps: int,
    nudged_steps: int,
    window_steps: int,
    phases: int,
    dt_ms: float,
) -> np.ndarray:
    """The gate g(t) (per ms, one value per step) of the two-phase rule from spike traces: the
    accumulator dH/dt = g(t)·ν_pre·ν_post/ms then holds, at the end of an example,

        H = (⟨ν_pre ν_post⟩_high − ⟨ν_pre ν_post⟩_low) / (β_high − β_low)

    with ⟨·⟩ the mean over the last ``window_steps`` steps (T = window_steps·dt) of the low phase
    (free; −β when symmetric) and of the example (+β): g = −1/((β_h − β_l)·T) in the first
    window, +1/((β_h − β_l)·T) in the second, 0 elsewhere and for examples at β = 0."""
    example = free_steps + (phases - 1) * nudged_steps
    span = window_steps * dt_ms
    rows = []
    for b, sym in zip(
        np.asarray(betas, dtype=float), np.asarray(symmetric, dtype=bool), strict=True
    ):
        g = np.zeros(example)
        if b != 0.0:
            low_end, difference = (free_steps + nudged_steps, 2 * b) if sym else (free_steps, b)
            g[low_end - window_steps : low_end] = -1.0 / (difference * span)
            g[example - window_steps :] = 1.0 / (difference * span)
        rows.append(g)
    return np.concatenate(rows) if rows else np.zeros(0)


def sampling_steps(example_ms: float, phase_ms: float) -> dict[str, float]:
    """The sampling steps of the TimedArray inputs: one row per example for the inputs, targets
    and restarts, one per ``phase_ms`` for β and the gates."""
    per_example = {name: example_ms for name in ("inputs", "targets", "restart")}
    gates = ("beta", "latch", "plastic", "hebb_gate")
    return {**per_example, **{name: phase_ms for name in gates}}


def duration_ms(n_examples: int, example_ms: float, dt_ms: float) -> float:
    """The run length for ``n_examples`` examples: one step more, so that the last example's
    two-phase update (applied at t = n·example_ms) is made within the run. That extra step also
    runs the dynamics (after the restart, if the last example's ``restart`` is 1): ``beta``,
    ``plastic`` and ``latch`` should be 0 there (:func:`example_timed` appends such a row), and
    the final state is one step past the end of the last example (the monitors hold the state
    at its end)."""
    return n_examples * example_ms + dt_ms


def _timed_arrays(
    timed: Mapping[str, np.ndarray],
    names: tuple[str, ...],
    sizes: Sequence[int],
    dt_ms: float,
    timed_dt_ms: float | Mapping[str, float] | None,
) -> dict[str, TimedArray]:
    columns = {"inputs": sizes[0], "targets": sizes[-1]}
    steps = {name: _sample_dt(timed_dt_ms, name, dt_ms) for name in names}
    return timed_inputs(timed, names, columns, dt_ms, steps)


def _sample_dt(timed_dt_ms: float | Mapping[str, float] | None, name: str, dt_ms: float) -> float:
    """The sampling step (ms) of the TimedArray ``name`` (default: dt)."""
    if isinstance(timed_dt_ms, Mapping):
        return float(timed_dt_ms.get(name, dt_ms))
    return float(timed_dt_ms) if timed_dt_ms is not None else dt_ms

"""TimedArray inputs of the layered Hopfield circuit (:mod:`circuits.hopfield`) and the layout of
examples in time.

``TimedArray`` inputs (:func:`timed_names`): ``inputs`` (rows × n0), ``targets`` (rows × nN,
target rates d), ``beta`` (rows); with the rules ``plastic`` (continual), ``latch`` (two-phase),
``restart`` (with ``example_ms``; one row per example), each sampled every ``timed_dt_ms`` (per
name; a multiple of dt; the last row holds after the end). :func:`example_timed` lays out P
examples of free and nudged phases.

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


def timed_names(plasticity: Sequence[str] = (), example_ms: float | None = None) -> tuple[str, ...]:
    """The TimedArray inputs a build with these options needs."""
    names = list(BASE_INPUTS)
    if "continual" in plasticity:
        names.append("plastic")
    if "two-phase" in plasticity:
        names.append("latch")
    if example_ms is not None:
        names.append("restart")
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
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """P examples (rows of ``inputs``, ``targets``) laid out for a build with ``example_ms``:
    returns the TimedArray values (all six), their sampling steps and ``example_ms``.

    Two-phase example: free phase (β = 0, ``latch`` 1) for ``free_ms``, then nudged at β
    (``plastic`` 1) for ``nudged_ms``. Symmetric example (``symmetric`` per example or for all):
    free, then −β with ``latch`` 1, then +β with ``plastic`` 0.5 (the continual rule then
    integrates from −β to +β over 2β), each nudged phase ``nudged_ms`` long. ``phases``: 2 (free,
    nudged) or 3 (free and two nudged phases; a two-phase example is then nudged for
    2·``nudged_ms``); default 3 if any example is symmetric. ``beta``: one value
    or one per example; ``restart``: start each example from s = 0 (1) or go on (0); ``plastic``:
    False leaves the continual gate at 0 throughout; ``names``: keep only these inputs (those of
    the build, :func:`timed_names`; default all six). ``beta``, ``latch`` and ``plastic`` end
    with one neutral row (all 0) for the extra step of :func:`duration_ms`.
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
    if names is not None:
        timed = {name: timed[name] for name in names}
    timed_dt = sampling_steps(example_ms, unit * dt_ms)
    return timed, timed_dt, example_ms


def sampling_steps(example_ms: float, phase_ms: float) -> dict[str, float]:
    """The sampling steps of the TimedArray inputs: one row per example for the inputs, targets
    and restarts, one per ``phase_ms`` for β and the gates."""
    per_example = {name: example_ms for name in ("inputs", "targets", "restart")}
    return {**per_example, **{name: phase_ms for name in ("beta", "latch", "plastic")}}


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

"""Offline data sets, found by name (DESIGN.md §5).

Each loader returns a :class:`Dataset`: inputs (the data set's values, which :func:`load`
encodes as rates), targets as rates *and* as the potentials whose rate φ gives them (the output
cells of a rate circuit are nudged toward a potential), a train/test split, and whether the task
is a classification (argmax read-out) or a regression.

**Input codes** (:func:`encode`, one definition for every circuit): how a data set's values
become input rates. Each data set has a default code (:func:`default_code`), which a run may
override (``--set input_code=...``); the resolved code is written into the run's ``config.toml``
and sets the input layer's size.

* ``identity``: the values as they are (digits, whose pixels /16 are already in [0, 1]; the
  teacher and grid world, whose inputs the published protocols define).
* ``on-off``: signed data as two channels per value, clip(x/(3s), 0, 1) and clip(−x/(3s), 0, 1)
  (``s`` the data set's standard deviation unit, ±3 s onto the unit interval), so an input of
  zero is silence rather than a constant rate: 2n inputs, no constant offset. The default of
  MNIST-1D (80 inputs).
* ``offset``: x ↦ clip(0.5 + x/(8s), 0, 1), MNIST-1D's code before issue 16 (kept for comparison):
  a constant rate of 0.5 carries 94 % of MNIST-1D's input energy.

* ``digits``: scikit-learn's ``load_digits`` (1797 8×8 images), pixels /16 into [0, 1], split
  stratified 1437 train / 360 test with ``random_state=0``; one-hot targets mapped to rates
  {0.1, 0.8} and, through the logit, to potentials of the logistic φ.
* ``mnist1d``: MNIST-1D (Greydanus 2020), generated locally with
  ``mnist1d.data.make_dataset(get_dataset_args())`` (never downloaded): 4000 train / 1000 test
  length-40 signals, 10 classes, standardised by the generator to mean 0 and standard deviation 1
  over the whole set (s = 1); the ``on-off`` code by default (80 inputs, about 1.2 % of the values
  beyond ±3 clipped), ``offset`` as before issue 16; targets as for ``digits``.
* ``teacher``: the teacher–student regression of Sacramento et al. 2018 (DESIGN.md §4.2): a
  teacher 30-20-10 with weights and inputs U(−1, 1), r_target = φ(k2 W2 φ(k1 W1 r0)), k1 = 2,
  k2 = 10, soft-ReLU φ (γ = 0.1, β = 1, θ = 3); the target potential is k2 W2 φ(k1 W1 r0).
  Generated from a seed.
* ``gridworld``: the ICF grid world of DESIGN.md §4.4 (:mod:`neurosim.grid_world`): a 2×2 square
  on a 12×12 canvas, flattened to 144 pixels in [0, 1]; the targets are the square's position
  (x, y), 0..10, as two rates 0.1 + 0.7·p/10 of the logistic φ (potentials: their logit); a
  regression. Test: the 121 clean images in :func:`neurosim.grid_world.all_positions` order.
  Train: ``GRIDWORLD_COPIES`` copies of all 121 positions with Gaussian pixel noise of standard
  deviation ``GRIDWORLD_NOISE``, clipped to [0, 1], drawn from ``seed`` (copy-major order, so the
  train set holds every position equally often; the protocols shuffle it).
* ``npz:PATH``: the user's own arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` in one
  ``.npz`` file, checked array by array (:func:`npz`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import numpy as np

from neurosim import grid_world as gw
from neurosim import result_cache
from neurosim.errors import ConfigError
from neurosim.neurons import soft_relu
from neurosim.registry import DATASETS, lookup, register_dataset

#: target rates of the digits task: off and on
DIGITS_OFF = 0.1
DIGITS_ON = 0.8


@dataclass(frozen=True)
class Dataset:
    """A train/test split; ``y_*`` target rates, ``u_*`` the matching target potentials."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    u_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    u_test: np.ndarray
    task: str  # "classification" or "regression"
    phi: str  # the rate function linking u_* to y_*: "logistic" or "soft_relu"
    labels_train: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    #: the input code applied to the data set's values (:func:`encode`)
    input_code: str = "identity"

    @property
    def n_inputs(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.y_train.shape[1])

    def subset(self, n_train: int | None, n_test: int | None) -> Dataset:
        """The first ``n_train`` training and ``n_test`` test examples (None: all)."""
        for label, n, total in (
            ("n_train", n_train, len(self.x_train)),
            ("n_test", n_test, len(self.x_test)),
        ):
            if n is not None and not 1 <= n <= total:
                raise ConfigError(f"{label}={n} must lie between 1 and {total} for {self.name!r}.")
        tr, te = slice(0, n_train), slice(0, n_test)

        def cut(a: np.ndarray | None, s: slice) -> np.ndarray | None:
            return None if a is None else a[s]

        return replace(
            self,
            x_train=self.x_train[tr],
            y_train=self.y_train[tr],
            u_train=self.u_train[tr],
            x_test=self.x_test[te],
            y_test=self.y_test[te],
            u_test=self.u_test[te],
            labels_train=cut(self.labels_train, tr),
            labels_test=cut(self.labels_test, te),
        )


#: the input codes (module docstring)
INPUT_CODES = ("identity", "on-off", "offset")
#: on-off: ±ON_OFF_RANGE standard deviation units onto the unit interval of each channel
ON_OFF_RANGE = 3.0
#: offset: x ↦ clip(OFFSET_CENTRE + x/(OFFSET_RANGE·s), 0, 1)
OFFSET_CENTRE = 0.5
OFFSET_RANGE = 8.0


def encode(x: np.ndarray, code: str, scale: float = 1.0) -> np.ndarray:
    """Inputs (n, d) as rates by ``code`` (module docstring); ``scale`` is the data's standard
    deviation unit s. ``on-off`` returns (n, 2d): the d on channels, then the d off channels."""
    x = np.asarray(x, dtype=float)
    if not scale > 0:
        raise ConfigError(f"the input scale must be positive, got {scale!r}.")
    if code == "identity":
        return x
    if code == "on-off":
        z = x / (ON_OFF_RANGE * scale)
        return np.concatenate([np.clip(z, 0.0, 1.0), np.clip(-z, 0.0, 1.0)], axis=1)
    if code == "offset":
        return np.clip(OFFSET_CENTRE + x / (OFFSET_RANGE * scale), 0.0, 1.0)
    raise ConfigError(f"Unknown input code {code!r}; input codes: {', '.join(INPUT_CODES)}.")


def encoded_size(n_values: int, code: str) -> int:
    """The number of inputs ``code`` makes of ``n_values`` values."""
    return 2 * n_values if code == "on-off" else n_values


def logit(p: np.ndarray) -> np.ndarray:
    """The inverse of the logistic φ."""
    p = np.asarray(p, dtype=float)
    return np.log(p / (1.0 - p))


def soft_relu_inverse(
    r: np.ndarray, gamma: float = 0.1, beta: float = 1.0, theta: float = 3.0
) -> np.ndarray:
    """The inverse of the soft-ReLU φ (r > 0): θ + log(e^{r/γ} − 1)/β."""
    r = np.asarray(r, dtype=float)
    return theta + np.log(np.expm1(r / gamma)) / beta


#: the code whose edits make the cached data-set arrays be generated again
DATASET_CODE = ("neurosim.datasets",)


def _cached_split(
    name: str, package: str, generate: Callable[[], dict[str, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train, x_test and the labels of both of a data set made by ``generate``, cached on disk
    under the version of the ``package`` that holds it (:mod:`neurosim.result_cache`)."""
    key = {"dataset": name, package: version(package)}
    arrays, _ = result_cache.cached_arrays("datasets", key, generate, DATASET_CODE)
    return arrays["x_train"], arrays["x_test"], arrays["l_train"], arrays["l_test"]


def _digits_split() -> dict[str, np.ndarray]:
    """scikit-learn's digits scaled to [0, 1] and split; cached on disk by
    :func:`digits`, because importing scikit-learn costs about a second of every run."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = np.asarray(data.data, dtype=float) / 16.0
    labels = np.asarray(data.target, dtype=int)
    x_tr, x_te, l_tr, l_te = train_test_split(
        x, labels, test_size=360, stratify=labels, random_state=0
    )
    return {"x_train": x_tr, "x_test": x_te, "l_train": l_tr, "l_test": l_te}


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's digits, split stratified 1437/360 with ``random_state=0`` (DESIGN.md §5).

    ``seed`` is ignored: the split is fixed so results compare across runs and papers. The
    arrays are cached under ``$NEUROSIM_CACHE/results/datasets/`` (:mod:`neurosim.result_cache`).
    """
    del seed
    x_tr, x_te, l_tr, l_te = _cached_split("digits", "scikit-learn", _digits_split)

    def rates(lab: np.ndarray) -> np.ndarray:
        y = np.full((len(lab), 10), DIGITS_OFF)
        y[np.arange(len(lab)), lab] = DIGITS_ON
        return y

    y_tr, y_te = rates(l_tr), rates(l_te)
    return Dataset(
        "digits", x_tr, y_tr, logit(y_tr), x_te, y_te, logit(y_te), "classification",
        "logistic", l_tr, l_te,
    )  # fmt: skip


#: MNIST-1D's standard deviation unit (the generator standardises the whole set to 1)
MNIST1D_SCALE = 1.0


def _one_hot_rates(lab: np.ndarray) -> np.ndarray:
    y = np.full((len(lab), 10), DIGITS_OFF)
    y[np.arange(len(lab)), lab] = DIGITS_ON
    return y


def _mnist1d_arrays() -> dict[str, np.ndarray]:
    """The published MNIST-1D arrays from its generator (seconds); cached on disk by
    :func:`mnist1d`. The generator seeds numpy's and Python's global random generators; their
    states are restored afterwards."""
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x_train": np.asarray(raw["x"], dtype=float),
        "x_test": np.asarray(raw["x_test"], dtype=float),
        "l_train": np.asarray(raw["y"], dtype=int),
        "l_test": np.asarray(raw["y_test"], dtype=int),
    }


def mnist1d(seed: int = 0) -> Dataset:
    """MNIST-1D, generated locally (``make_dataset(get_dataset_args())``, the generator's own seed
    42; the published 4000/1000 split), its signed standardised values as they are (:func:`load`
    applies the input code).

    ``seed`` is ignored: the data set is the published one, generated once and cached under
    ``$NEUROSIM_CACHE/results/datasets/`` (:mod:`neurosim.result_cache`).
    """
    del seed
    x_tr, x_te, l_tr, l_te = _cached_split("mnist1d", "mnist1d", _mnist1d_arrays)
    y_tr, y_te = _one_hot_rates(l_tr), _one_hot_rates(l_te)
    return Dataset(
        "mnist1d", x_tr, y_tr, logit(y_tr), x_te, y_te, logit(y_te), "classification",
        "logistic", l_tr, l_te,
    )  # fmt: skip


#: the teacher network of DESIGN.md §4.2
TEACHER_SIZES = (30, 20, 10)
TEACHER_K1 = 2.0
TEACHER_K2 = 10.0
TEACHER_N_TRAIN = 2000
TEACHER_N_TEST = 500


def teacher_network(seed: int) -> dict[str, np.ndarray]:
    """The teacher's weights W1 (20×30) and W2 (10×20), U(−1, 1), from ``seed``."""
    rng = np.random.default_rng([int(seed), 30_20_10])
    n0, n1, n2 = TEACHER_SIZES
    return {"W1": rng.uniform(-1, 1, (n1, n0)), "W2": rng.uniform(-1, 1, (n2, n1))}


def teacher_potential(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The teacher's output potential k2 W2 φ(k1 W1 r0) (soft-ReLU φ)."""
    hidden = soft_relu(TEACHER_K1 * x @ weights["W1"].T)
    return TEACHER_K2 * hidden @ weights["W2"].T


def teacher(seed: int = 0, n_train: int = TEACHER_N_TRAIN, n_test: int = TEACHER_N_TEST) -> Dataset:
    """The teacher–student regression: inputs U(−1, 1), targets of a fixed random teacher."""
    weights = teacher_network(seed)
    rng = np.random.default_rng([int(seed), 1])
    x = rng.uniform(-1, 1, (n_train + n_test, TEACHER_SIZES[0]))
    u = teacher_potential(weights, x)
    y = soft_relu(u)
    return Dataset(
        "teacher", x[:n_train], y[:n_train], u[:n_train], x[n_train:], y[n_train:], u[n_train:],
        "regression", "soft_relu",
    )  # fmt: skip


@dataclass(frozen=True)
class CodeDefault:
    """A data set's default input code and its standard deviation unit s (:func:`encode`)."""

    code: str
    scale: float = 1.0


#: the default input code of each registered data set (absent: identity)
CODE_DEFAULTS: dict[str, CodeDefault] = {}


def _register(
    name: str, summary: str, loader: Callable[..., Dataset], code: str = "identity",
    scale: float = 1.0,
) -> None:  # fmt: skip
    """Register a loader with its default input code."""
    register_dataset(name, summary, loader)
    CODE_DEFAULTS[name] = CodeDefault(code, scale)


_register("digits", "scikit-learn digits, 8×8 images, 1437 train / 360 test", digits)
_register(
    "mnist1d",
    "MNIST-1D, length-40 signals (on/off code: 80 inputs), 4000 train / 1000 test, generated "
    "locally",
    mnist1d,
    code="on-off",
    scale=MNIST1D_SCALE,
)
#: the grid world's position targets: rate = GRID_OFF + GRID_SPAN · p / MAX_POS (logistic φ)
GRID_OFF = 0.1
GRID_SPAN = 0.7
#: noisy training copies of the 121 positions and their pixel noise (standard deviation)
GRIDWORLD_COPIES = 4
GRIDWORLD_NOISE = 0.05


def gridworld_rates(positions: np.ndarray) -> np.ndarray:
    """Target rates of positions (n, 2) of (x, y): 0.1 + 0.7·p/10, in [0.1, 0.8]."""
    return GRID_OFF + GRID_SPAN * gw.check_positions(positions) / gw.MAX_POS


def gridworld_positions(rates: np.ndarray) -> np.ndarray:
    """Positions (x, y) as floats from target or output rates (the inverse of gridworld_rates)."""
    return (np.asarray(rates, dtype=float) - GRID_OFF) * gw.MAX_POS / GRID_SPAN


def gridworld(
    seed: int = 0, copies: int = GRIDWORLD_COPIES, noise: float = GRIDWORLD_NOISE
) -> Dataset:
    """The ICF grid world as a regression onto the square's position (module docstring): train on
    ``copies`` noisy copies of all 121 images, test on the 121 clean ones."""
    positions = gw.all_positions()
    clean = gw.render(positions).reshape(len(positions), -1).astype(float)
    rng = np.random.default_rng([int(seed), 12_12])
    x_tr = np.clip(
        np.tile(clean, (copies, 1)) + rng.normal(0.0, noise, (copies * len(clean), clean.shape[1])),
        0,
        1,
    )
    y_te = gridworld_rates(positions)
    y_tr = np.tile(y_te, (copies, 1))
    return Dataset(
        "gridworld", x_tr, y_tr, logit(y_tr), clean, y_te, logit(y_te), "regression", "logistic",
    )  # fmt: skip


_register("teacher", "teacher–student regression 30-20-10, soft-ReLU (Sacramento)", teacher)
_register(
    "gridworld",
    "ICF grid world 12×12 → square's (x, y), 484 noisy train / 121 clean test, generated",
    gridworld,
)


#: ``--dataset npz:PATH``: the user's own arrays (:func:`npz`)
NPZ_PREFIX = "npz:"
#: the arrays an npz data set holds
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def kind(name: str | None) -> str | None:
    """The kind of data set a protocol declares it takes: ``npz`` for ``npz:PATH``, else the
    name itself."""
    if name is not None and name.startswith(NPZ_PREFIX):
        return "npz"
    return name


def _npz_arrays(name: str) -> tuple[str, dict[str, np.ndarray]]:
    """The path and the four arrays of ``npz:PATH``, each present (one clear error otherwise)."""
    path = name[len(NPZ_PREFIX) :]
    if not path:
        raise ConfigError("--dataset npz:PATH needs a path, e.g. npz:my_data.npz.")
    where = f"npz data set {path!r}"
    if not Path(path).is_file():
        raise ConfigError(f"{where}: the file does not exist.")
    try:
        with np.load(path, allow_pickle=False) as f:
            present = set(f.files)
            missing = [a for a in NPZ_ARRAYS if a not in present]
            if missing:
                has = ", ".join(sorted(present)) or "none"
                raise ConfigError(
                    f"{where}: missing array {missing[0]!r} (an npz data set holds "
                    f"{', '.join(NPZ_ARRAYS)}; the file has: {has})."
                )
            arrays = {a: np.asarray(f[a]) for a in NPZ_ARRAYS}
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:  # not a zip of .npy files, or object arrays
        raise ConfigError(f"{where}: not a readable .npz file of numeric arrays ({exc}).") from exc
    return path, arrays


def _check_npz(where: str, a: dict[str, np.ndarray]) -> str:
    """Shape and value checks of the four arrays; returns the task (one clear error naming the
    array and what is wrong otherwise)."""
    for name in NPZ_ARRAYS:
        v = a[name]
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise ConfigError(f"{where}: array {name!r} is not numeric (dtype {v.dtype}).")
        if v.size == 0:
            raise ConfigError(f"{where}: array {name!r} is empty.")
        if np.issubdtype(v.dtype, np.inexact) and not np.all(np.isfinite(v)):
            bad = int(np.sum(~np.isfinite(v)))
            raise ConfigError(f"{where}: array {name!r} holds {bad} NaN or infinite values.")
    for name in ("x_train", "x_test"):
        if a[name].ndim != 2:
            raise ConfigError(
                f"{where}: array {name!r} must be 2-D (examples × features), got shape "
                f"{a[name].shape} (flatten images with x.reshape(len(x), -1))."
            )
    if a["x_train"].shape[1] != a["x_test"].shape[1]:
        raise ConfigError(
            f"{where}: x_train has {a['x_train'].shape[1]} features, x_test {a['x_test'].shape[1]}."
        )
    for part in ("train", "test"):
        nx, ny = len(a[f"x_{part}"]), len(a[f"y_{part}"])
        if nx != ny:
            raise ConfigError(
                f"{where}: x_{part} has {nx} examples but y_{part} has {ny} (lengths must match)."
            )
    integer = [bool(np.issubdtype(a[n].dtype, np.integer)) for n in ("y_train", "y_test")]
    if integer[0] != integer[1]:
        raise ConfigError(
            f"{where}: y_train and y_test must both hold integer labels (classification) or both "
            f"float targets (regression); got {a['y_train'].dtype} and {a['y_test'].dtype}."
        )
    if integer[0]:
        for name in ("y_train", "y_test"):
            if a[name].ndim != 1:
                raise ConfigError(
                    f"{where}: array {name!r} of integer labels must be 1-D, got shape "
                    f"{a[name].shape}."
                )
            if a[name].min() < 0:
                raise ConfigError(
                    f"{where}: array {name!r} holds negative labels (min {a[name].min()}); "
                    "labels must be integers ≥ 0."
                )
        return "classification"
    if a["y_train"].dtype == bool or a["y_test"].dtype == bool:
        raise ConfigError(f"{where}: labels must be integers ≥ 0 or targets floats, not bool.")
    for name in ("y_train", "y_test"):
        if a[name].ndim not in (1, 2):
            raise ConfigError(
                f"{where}: array {name!r} of float targets must be 1-D or 2-D (examples × "
                f"targets), got shape {a[name].shape}."
            )
    cols = [1 if a[n].ndim == 1 else a[n].shape[1] for n in ("y_train", "y_test")]
    if cols[0] != cols[1]:
        raise ConfigError(f"{where}: y_train has {cols[0]} targets per example, y_test {cols[1]}.")
    return "regression"


def _npz_default(x_train: np.ndarray, where: str) -> CodeDefault:
    """[0, 1] data as they are; signed data on/off, s = the training inputs' standard deviation."""
    lo, hi = float(np.min(x_train)), float(np.max(x_train))
    if lo >= 0.0 and hi <= 1.0:
        return CodeDefault("identity")
    if lo >= 0.0:
        raise ConfigError(
            f"{where}: x_train lies in [{lo:g}, {hi:g}]: inputs are rates in [0, 1] (rescale, "
            "e.g. x/255 for 8-bit images) or signed values (on/off code); choose one."
        )
    return CodeDefault("on-off", float(np.std(x_train)))


#: the target rates of a regression onto the user's values (as ``gridworld``): TARGET_OFF + span
NPZ_TARGET_OFF = 0.1
NPZ_TARGET_SPAN = 0.7


def npz(name: str) -> tuple[Dataset, CodeDefault]:
    """The data set ``npz:PATH`` (its values as in the file) and its default code.

    Classification (integer labels y ≥ 0): one-hot target rates {0.1, 0.8} as ``digits``, classes
    0..max label. Regression (float targets): each target column mapped affinely from its range
    over train and test onto rates [0.1, 0.8] of the logistic φ, potentials their logit.
    Inputs: [0, 1] data as they are, signed data the ``on-off`` code with s = the standard
    deviation of x_train's values (:func:`encode`)."""
    path, a = _npz_arrays(name)
    where = f"npz data set {path!r}"
    task = _check_npz(where, a)
    x_tr, x_te = a["x_train"].astype(float), a["x_test"].astype(float)
    if task == "classification":
        l_tr, l_te = a["y_train"].astype(int), a["y_test"].astype(int)
        n = int(max(l_tr.max(), l_te.max())) + 1

        def rates(lab: np.ndarray) -> np.ndarray:
            y = np.full((len(lab), n), DIGITS_OFF)
            y[np.arange(len(lab)), lab] = DIGITS_ON
            return y

        y_tr, y_te = rates(l_tr), rates(l_te)
        data = Dataset(
            name, x_tr, y_tr, logit(y_tr), x_te, y_te, logit(y_te), "classification", "logistic",
            l_tr, l_te,
        )  # fmt: skip
    else:
        t_tr = a["y_train"].astype(float).reshape(len(x_tr), -1)
        t_te = a["y_test"].astype(float).reshape(len(x_te), -1)
        both = np.concatenate([t_tr, t_te])
        lo, hi = both.min(axis=0), both.max(axis=0)
        if np.any(hi == lo):
            k = int(np.argmax(hi == lo))
            raise ConfigError(f"{where}: target column {k} of y_train/y_test is constant.")
        y_tr = NPZ_TARGET_OFF + NPZ_TARGET_SPAN * (t_tr - lo) / (hi - lo)
        y_te = NPZ_TARGET_OFF + NPZ_TARGET_SPAN * (t_te - lo) / (hi - lo)
        data = Dataset(
            name, x_tr, y_tr, logit(y_tr), x_te, y_te, logit(y_te), "regression", "logistic"
        )
    return data, _npz_default(x_tr, where)


def default_code(name: str) -> str:
    """The input code data set ``name`` takes unless a run names another (an npz file is read and
    checked)."""
    if kind(name) == "npz":
        return npz(name)[1].code
    lookup(DATASETS, "dataset", name)
    return CODE_DEFAULTS.get(name, CodeDefault("identity")).code


def with_code(data: Dataset, code: str, scale: float = 1.0) -> Dataset:
    """``data`` (its values as loaded) with its inputs encoded by ``code``."""
    return replace(
        data,
        x_train=encode(data.x_train, code, scale),
        x_test=encode(data.x_test, code, scale),
        input_code=code,
    )


def load(name: str | None, seed: int = 0, code: str | None = None) -> Dataset:
    """The data set called ``name``, its inputs encoded by ``code`` (None: the data set's default
    code); one clear error for an unknown or missing name."""
    if name is None:
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(f"This protocol needs a data set (--dataset); known data sets: {known}.")
    if kind(name) == "npz":
        data, default = npz(name)
        return with_code(data, code or default.code, default.scale)
    loader: Callable[..., Dataset] = lookup(DATASETS, "dataset", name).target
    default = CODE_DEFAULTS.get(name, CodeDefault("identity"))
    return with_code(loader(seed=seed), code or default.code, default.scale)

"""Data sets' input codes (issue 16): one definition for every circuit, each data set's default,
and the resolved code in the run's configuration."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from neurosim import datasets as ds
from neurosim.config import RunConfig
from neurosim.errors import ConfigError


def test_on_off_code_of_a_small_signed_array() -> None:
    x = np.array([[-6.0, -1.5, 0.0, 1.5, 3.0, 4.5]])
    coded = ds.encode(x, "on-off")
    on = [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]  # clip(x/3, 0, 1)
    off = [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]  # clip(−x/3, 0, 1)
    np.testing.assert_array_equal(coded, [on + off])
    assert ds.encoded_size(6, "on-off") == 12 == coded.shape[1]
    # the data set's standard deviation unit scales the range: ±3 s
    np.testing.assert_array_equal(ds.encode(2 * x, "on-off", scale=2.0), coded)


def test_offset_and_identity_codes() -> None:
    x = np.array([[-8.0, -4.0, 0.0, 2.0, 9.0]])
    np.testing.assert_array_equal(ds.encode(x, "offset"), [[0.0, 0.0, 0.5, 0.75, 1.0]])
    np.testing.assert_array_equal(ds.encode(x, "identity"), x)
    assert ds.encoded_size(5, "offset") == ds.encoded_size(5, "identity") == 5
    with pytest.raises(ConfigError, match="Unknown input code 'bogus'"):
        ds.encode(x, "bogus")


def test_the_run_table_offers_exactly_the_codes() -> None:
    field = RunConfig.model_fields["input_code"].annotation
    literal = next(a for a in typing.get_args(field) if a is not type(None))
    assert set(typing.get_args(literal)) == set(ds.INPUT_CODES)


def test_digits_keep_their_code_and_values() -> None:
    from sklearn.datasets import load_digits

    d = ds.load("digits")
    assert ds.default_code("digits") == "identity" == d.input_code
    assert d.x_train.shape == (1437, 64)
    pixels = load_digits().data / 16.0  # the split's rows are pixels /16, unchanged
    rows = {tuple(r) for r in pixels}
    assert all(tuple(r) in rows for r in d.x_train[:50])
    assert ds.default_code("mnist1d") == "on-off"
    assert ds.default_code("teacher") == ds.default_code("gridworld") == "identity"


def test_subset_keeps_the_code() -> None:
    d = ds.load("digits").subset(10, 5)
    assert d.input_code == "identity" and d.x_train.shape == (10, 64)


# ------------------------------------------------------------------------------ npz:PATH
def _write(path, **arrays) -> str:  # noqa: ANN001
    np.savez(path, **arrays)
    return f"npz:{path}"


def _signed(n: int = 30, d: int = 6, classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(0, 2.0, (n, d)),
        "y_train": rng.integers(0, classes, n),
        "x_test": rng.normal(0, 2.0, (n // 2, d)),
        "y_test": rng.integers(0, classes, n // 2),
    }


def test_npz_classification_of_signed_data_takes_the_on_off_code(tmp_path) -> None:  # noqa: ANN001
    a = _signed()
    a["y_train"][0] = 2  # classes 0..2
    name = _write(tmp_path / "s.npz", **a)
    assert ds.default_code(name) == "on-off"
    d = ds.load(name)
    assert d.task == "classification" and d.input_code == "on-off"
    assert d.n_inputs == 12 and d.n_outputs == 3
    s = float(np.std(a["x_train"]))  # the code's unit: the training inputs' standard deviation
    np.testing.assert_allclose(d.x_test, ds.encode(a["x_test"], "on-off", s))
    np.testing.assert_array_equal(d.labels_train, a["y_train"])
    assert set(np.unique(d.y_train)) == {ds.DIGITS_OFF, ds.DIGITS_ON}
    old = ds.load(name, code="offset")
    assert old.n_inputs == 6 and old.input_code == "offset"


def test_npz_unit_interval_data_kept_and_regression_targets(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(1)
    x_tr, x_te = rng.uniform(0, 1, (20, 4)), rng.uniform(0, 1, (10, 4))
    name = _write(
        tmp_path / "r.npz", x_train=x_tr, y_train=np.linspace(-3, 5, 20), x_test=x_te,
        y_test=np.linspace(-1, 2, 10),
    )  # fmt: skip
    d = ds.load(name)
    assert d.input_code == "identity" and d.task == "regression"
    np.testing.assert_array_equal(d.x_train, x_tr)
    assert d.y_train.shape == (20, 1) and d.y_train.min() == pytest.approx(0.1)
    assert d.y_train.max() == pytest.approx(0.8)  # the targets' range onto rates [0.1, 0.8]
    np.testing.assert_allclose(d.u_test, ds.logit(d.y_test))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "missing array 'y_test'"),
        (lambda a: a.update(x_train=a["x_train"][:, :, None]), "'x_train' must be 2-D"),
        (lambda a: a.update(x_test=a["x_test"][:, :4]), "x_train has 6 features, x_test 4"),
        (lambda a: a.update(y_train=a["y_train"][:-1]), "x_train has 30 examples but y_train"),
        (lambda a: a["x_test"].__setitem__((0, 0), np.nan), "'x_test' holds 1 NaN or infinite"),
        (lambda a: a["x_train"].__setitem__((1, 1), np.inf), "'x_train' holds 1 NaN or infinite"),
        (lambda a: a["y_train"].__setitem__(0, -1), "'y_train' holds negative labels"),
        (lambda a: a.update(y_test=a["y_test"].astype(float)), "both hold integer labels"),
        (lambda a: a.update(y_train=a["y_train"][:, None]), "integer labels must be 1-D"),
        (lambda a: a.update(x_train=np.abs(a["x_train"]) * 100), r"rescale, e\.g\. x/255"),
        (lambda a: a.update(x_test=np.zeros((0, 6))), "'x_test' is empty"),
    ],
)
def test_npz_malformed_files_get_one_clear_error(tmp_path, change, message) -> None:  # noqa: ANN001
    a = _signed()
    change(a)
    name = _write(tmp_path / "bad.npz", **a)
    with pytest.raises(ConfigError, match=message):
        ds.load(name)


def test_npz_missing_or_unreadable_file(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="the file does not exist"):
        ds.load(f"npz:{tmp_path / 'nowhere.npz'}")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ConfigError, match="not a readable .npz file"):
        ds.load(f"npz:{tmp_path / 'text.npz'}")
    with pytest.raises(ConfigError, match="needs a path"):
        ds.load("npz:")


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_cached_arrays_equal_the_source_and_spare_the_generator(
    name: str,
    tmp_path,
    monkeypatch,  # noqa: ANN001
) -> None:
    """digits and MNIST-1D are generated once per cache folder and read back bit for bit; the
    second load does not call the generator (scikit-learn's import, MNIST-1D's generation)."""
    from neurosim import result_cache

    monkeypatch.setenv("NEUROSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(result_cache.ENV_SWITCH, raising=False)
    generate = {"digits": "_digits_split", "mnist1d": "_mnist1d_arrays"}[name]
    source = getattr(ds, generate)()
    first = getattr(ds, name)()
    np.testing.assert_array_equal(first.x_train, source["x_train"])
    np.testing.assert_array_equal(first.x_test, source["x_test"])
    np.testing.assert_array_equal(first.labels_train, source["l_train"])
    np.testing.assert_array_equal(first.labels_test, source["l_test"])

    def refuse() -> None:
        raise AssertionError("the cached arrays were generated again")

    monkeypatch.setattr(ds, generate, refuse)
    again = getattr(ds, name)()
    for field in ("x_train", "y_train", "u_train", "x_test", "y_test", "labels_test"):
        np.testing.assert_array_equal(getattr(again, field), getattr(first, field))

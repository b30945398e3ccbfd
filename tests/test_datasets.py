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

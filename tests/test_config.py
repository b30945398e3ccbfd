"""Unit tests of the configuration layer: parsing ``--set``, validating tables, resolving a run.

No simulation runs here: everything is checked before Brian2 builds anything.
"""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path

import pytest

from neurosim import results
from neurosim.cli import pipeline
from neurosim.config import (
    RunConfig,
    check_sections,
    load_toml,
    merge,
    parse_overrides,
    parse_value,
    validate_table,
)
from neurosim.errors import ConfigError, NeurosimError
from protocols.dendritic_prediction import DendriticPrediction, DendriticPredictionConfig

#: the circuit's [circuit] table, derived from its parameter record
UrbanczikSennConfig = DendriticPrediction().circuit_table("urbanczik-senn")

PROTOCOL_KEYS = sorted(DendriticPredictionConfig.model_fields)


# ---------------------------------------------------------------------------------------------
# parse_value / parse_overrides
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-5", -5),
        ("1_000", 1000),
        ("0.5", 0.5),
        ("1e-3", 0.001),
        ("-2.5", -2.5),
        ("true", True),
        ("false", False),
        ("abc", "abc"),
        ("cpp_standalone", "cpp_standalone"),
        ('"quoted text"', "quoted text"),
        ("'single'", "single"),
        ("[1, 2, 3]", [1, 2, 3]),
        ("", ""),
    ],
)
def test_parse_value(text: str, expected: object) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_value_keeps_toml_dates() -> None:
    assert parse_value("2024-01-02") == datetime.date(2024, 1, 2)


def test_parse_overrides_nests_dotted_keys_and_puts_bare_keys_in_run() -> None:
    nested = parse_overrides(
        [
            "protocol.eta=0.1",
            "seed=3",
            "circuit.n_inputs=20",
            " device = runtime ",
            "protocol.pattern_ms=50",
            "run.readout=rate",
        ]
    )
    assert nested == {
        "protocol": {"eta": 0.1, "pattern_ms": 50},
        "run": {"seed": 3, "device": "runtime", "readout": "rate"},
        "circuit": {"n_inputs": 20},
    }
    assert isinstance(nested["run"]["seed"], int)
    assert isinstance(nested["protocol"]["eta"], float)


def test_parse_overrides_later_value_wins_and_value_may_hold_equals() -> None:
    nested = parse_overrides(["seed=1", "seed=2", "run.protocol=a=b"])
    assert nested == {"run": {"seed": 2, "protocol": "a=b"}}


def test_parse_overrides_empty() -> None:
    assert parse_overrides([]) == {}


@pytest.mark.parametrize("item", ["foo", "=3", " =3", "", "protocol.eta"])
def test_parse_overrides_malformed(item: str) -> None:
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE") as info:
        parse_overrides([item])
    assert repr(item) in str(info.value)


def test_parse_overrides_conflicting_keys() -> None:
    with pytest.raises(ConfigError, match="'protocol.eta.x' conflicts"):
        parse_overrides(["protocol.eta=1", "protocol.eta.x=2"])


# ---------------------------------------------------------------------------------------------
# load_toml / merge / check_sections
# ---------------------------------------------------------------------------------------------


def test_load_toml_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[run]\nseed = 4\nprotocol = "dendritic-prediction"\n[protocol]\neta = 0.2\n')
    assert load_toml(path) == {
        "run": {"seed": 4, "protocol": "dendritic-prediction"},
        "protocol": {"eta": 0.2},
    }


def test_load_toml_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_toml(path)
    assert str(path) in str(info.value)


def test_load_toml_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"[run\nseed = 1\n",
        b"[protocol]\neta = \n",
        b"seed = 1\nseed = 2\n",
        b"\xff\xfe\x00garbage\x80\x81",
    ],
    ids=["unclosed-table", "missing-value", "duplicate-key", "not-utf8"],
)
def test_load_toml_malformed(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        load_toml(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_merge_is_recursive_and_does_not_mutate() -> None:
    base = {"run": {"seed": 1, "epochs": 2}, "protocol": {"eta": 0.1}}
    merged = merge(base, {"run": {"seed": 5}, "circuit": {"n_inputs": 3}})
    assert merged == {
        "run": {"seed": 5, "epochs": 2},
        "protocol": {"eta": 0.1},
        "circuit": {"n_inputs": 3},
    }
    assert base == {"run": {"seed": 1, "epochs": 2}, "protocol": {"eta": 0.1}}


def test_check_sections_unknown() -> None:
    check_sections({"run": {}, "protocol": {}}, ("run", "protocol", "circuit"))
    with pytest.raises(ConfigError) as info:
        check_sections({"run": {}, "bogus": {}}, ("run", "protocol", "circuit"))
    message = str(info.value)
    assert "'bogus'" in message
    assert "run, protocol, circuit" in message


# ---------------------------------------------------------------------------------------------
# validate_table
# ---------------------------------------------------------------------------------------------


def test_validate_table_accepts_and_coerces() -> None:
    cfg = validate_table(DendriticPredictionConfig, {"eta": 1, "pattern_ms": 50}, "protocol")
    assert isinstance(cfg, DendriticPredictionConfig)
    assert cfg.eta == 1.0 and isinstance(cfg.eta, float)
    assert cfg.pattern_ms == 50.0
    assert cfg.dt_ms == 0.1  # default kept
    circuit = validate_table(UrbanczikSennConfig, {"n_inputs": 20}, "circuit")
    assert circuit.n_inputs == 20


def test_validate_table_unknown_key_names_it_and_lists_allowed() -> None:
    with pytest.raises(ConfigError) as info:
        validate_table(DendriticPredictionConfig, {"etaa": 0.1}, "protocol")
    message = str(info.value)
    assert "'protocol.etaa'" in message
    assert "allowed keys in [protocol]" in message
    assert ", ".join(PROTOCOL_KEYS) in message
    assert "\n" not in message


def test_validate_table_unknown_run_key() -> None:
    with pytest.raises(ConfigError, match=r"'run\.sed'.*protocol, readout, seed"):
        validate_table(RunConfig, {"sed": 3}, "run")


@pytest.mark.parametrize(
    ("model", "section", "table", "key", "shown"),
    [
        (DendriticPredictionConfig, "protocol", {"eta": "abc"}, "protocol.eta", "'abc'"),
        (DendriticPredictionConfig, "protocol", {"pattern_ms": [1]}, "protocol.pattern_ms", "[1]"),
        (UrbanczikSennConfig, "circuit", {"n_inputs": 20.5}, "circuit.n_inputs", "20.5"),
        (UrbanczikSennConfig, "circuit", {"n_inputs": "many"}, "circuit.n_inputs", "'many'"),
        (RunConfig, "run", {"seed": "x"}, "run.seed", "'x'"),
        (RunConfig, "run", {"device": "gpu"}, "run.device", "'gpu'"),
        (RunConfig, "run", {"readout": "voltage"}, "run.readout", "'voltage'"),
    ],
)
def test_validate_table_wrong_type_names_the_key(
    model: type, section: str, table: dict, key: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_table(model, table, section)
    message = str(info.value)
    assert message.startswith(f"Invalid value {shown} for '{key}'")
    assert "\n" not in message


def test_validate_table_wrong_literal_lists_allowed_values() -> None:
    with pytest.raises(ConfigError, match="'runtime', 'cpp_standalone' or 'cuda_standalone'"):
        validate_table(RunConfig, {"device": "gpu"}, "run")


@pytest.mark.parametrize(
    ("model", "section", "table", "key", "bound"),
    [
        (DendriticPredictionConfig, "protocol", {"pattern_ms": -5}, "protocol.pattern_ms", "0"),
        (DendriticPredictionConfig, "protocol", {"dt_ms": 0}, "protocol.dt_ms", "0"),
        (DendriticPredictionConfig, "protocol", {"dt_ms": 2.0}, "protocol.dt_ms", "1"),
        (DendriticPredictionConfig, "protocol", {"eta": -0.1}, "protocol.eta", "0"),
        (
            DendriticPredictionConfig,
            "protocol",
            {"repetitions_per_epoch": 0},
            "protocol.repetitions_per_epoch",
            "1",
        ),
        (UrbanczikSennConfig, "circuit", {"n_inputs": 0}, "circuit.n_inputs", "1"),
        (UrbanczikSennConfig, "circuit", {"tau_L": -1.0}, "circuit.tau_L", "0"),
        (RunConfig, "run", {"seed": -1}, "run.seed", "0"),
        (RunConfig, "run", {"epochs": 0}, "run.epochs", "1"),
    ],
)
def test_validate_table_out_of_range_names_the_key(
    model: type, section: str, table: dict, key: str, bound: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_table(model, table, section)
    message = str(info.value)
    value = next(iter(table.values()))
    assert message.startswith(f"Invalid value {value!r} for '{key}'")
    assert f"than or equal to {bound}" in message or f"than {bound}" in message


def test_validate_table_cross_field_rule() -> None:
    with pytest.raises(ConfigError, match="pattern_ms must be a whole number of time steps"):
        validate_table(DendriticPredictionConfig, {"pattern_ms": 50.05}, "protocol")


def test_validate_table_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"section \[protocol\] must be a table"):
        validate_table(DendriticPredictionConfig, 3, "protocol")  # type: ignore[arg-type]


def test_validate_table_rejects_booleans_for_numbers() -> None:
    with pytest.raises(ConfigError, match="'circuit.n_inputs'"):
        validate_table(UrbanczikSennConfig, {"n_inputs": True}, "circuit")


def test_validate_table_model_error_keeps_key_names() -> None:
    with pytest.raises(ConfigError, match="tau_L and tau_s must differ"):
        validate_table(UrbanczikSennConfig, {"tau_L": 3.0}, "circuit")


# ---------------------------------------------------------------------------------------------
# pipeline.build_raw / pipeline.resolve
# ---------------------------------------------------------------------------------------------


def test_build_raw_precedence_file_then_options_then_set() -> None:
    raw = pipeline.build_raw(
        {"run": {"seed": 1, "epochs": 7}, "protocol": {"eta": 0.3}},
        {"seed": 2, "epochs": None, "protocol": "dendritic-prediction"},
        {"run": {"seed": 3}, "protocol": {"pattern_ms": 50}},
    )
    assert raw == {
        "run": {"seed": 3, "epochs": 7, "protocol": "dendritic-prediction"},
        "protocol": {"eta": 0.3, "pattern_ms": 50},
    }


def test_resolve_fills_in_defaults() -> None:
    resolved = pipeline.resolve({"run": {"protocol": "dendritic-prediction"}})
    assert isinstance(resolved.protocol_obj, DendriticPrediction)
    assert resolved.run.epochs == DendriticPrediction.default_epochs == 4
    assert resolved.run.circuit == "urbanczik-senn"
    assert resolved.run.readout == "spiking"
    assert resolved.run.seed == 1
    assert resolved.run.dataset is None
    assert resolved.run.device in ("cpp_standalone", "runtime")
    assert resolved.protocol == DendriticPredictionConfig()
    assert resolved.circuit == UrbanczikSennConfig()


def test_resolve_keeps_given_values() -> None:
    resolved = pipeline.resolve(
        {
            "run": {"protocol": "dendritic-prediction", "epochs": 3, "seed": 9, "readout": "rate"},
            "protocol": {"pattern_ms": 50},
            "circuit": {"n_inputs": 20},
        }
    )
    assert (resolved.run.epochs, resolved.run.seed, resolved.run.readout) == (3, 9, "rate")
    assert resolved.protocol.pattern_ms == 50.0
    assert resolved.circuit.n_inputs == 20


def test_resolve_unknown_protocol() -> None:
    with pytest.raises(NeurosimError) as info:
        pipeline.resolve({"run": {"protocol": "nope"}})
    assert str(info.value) == (
        "Unknown protocol 'nope'; known protocols: compare, consciousness-prior, "
        "dendritic-prediction, equilibrium-propagation, feedback-cancellation, icf."
    )


def test_resolve_unknown_circuit() -> None:
    with pytest.raises(NeurosimError, match="Unknown circuit 'foo'; known circuits: .*urbanczik"):
        pipeline.resolve({"run": {"protocol": "dendritic-prediction", "circuit": "foo"}})


def test_resolve_dataset_not_accepted() -> None:
    with pytest.raises(ConfigError, match="does not take data set 'mnist'"):
        pipeline.resolve({"run": {"protocol": "dendritic-prediction", "dataset": "mnist"}})


def test_resolve_unknown_device() -> None:
    with pytest.raises(ConfigError, match="'run.device'"):
        pipeline.resolve({"run": {"protocol": "dendritic-prediction", "device": "tpu"}})


def test_resolve_unknown_section_and_keys() -> None:
    with pytest.raises(ConfigError, match="Unknown configuration section 'bogus'"):
        pipeline.resolve({"bogus": {"x": 1}})
    with pytest.raises(ConfigError, match="'protocol.etaa'"):
        pipeline.resolve({"protocol": {"etaa": 1}})
    with pytest.raises(ConfigError, match="'circuit.n_input'"):
        pipeline.resolve({"circuit": {"n_input": 1}})


def test_resolved_config_round_trips_through_toml(tmp_path: Path) -> None:
    resolved = pipeline.resolve(
        {
            "run": {"protocol": "dendritic-prediction", "seed": 12, "epochs": 2},
            "protocol": {"pattern_ms": 50, "eta": 0.05},
            "circuit": {"n_inputs": 20},
        }
    )
    data = resolved.as_dict()
    provenance = {"seed": 12, "versions": results.versions()}
    path = results.write_toml(tmp_path / "config.toml", {**data, "provenance": provenance})
    assert path == tmp_path / "config.toml"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temporary file left
    with open(path, "rb") as handle:
        loaded = tomllib.load(handle)
    assert loaded["run"] == {k: v for k, v in data["run"].items() if v is not None}
    assert "dataset" not in loaded["run"]  # None is left out: TOML has no null
    assert loaded["protocol"] == data["protocol"]
    assert loaded["circuit"] == data["circuit"]
    assert loaded["circuit"]["E_E"] == 14.0 / 3.0  # floats exactly
    assert loaded["provenance"]["seed"] == 12
    assert set(loaded["provenance"]["versions"]) >= {"neurosim", "brian2", "numpy", "neo"}
    # the written file is itself a valid configuration that resolves to the same thing
    again = pipeline.resolve({k: v for k, v in loaded.items() if k != "provenance"})
    assert again.as_dict() == data

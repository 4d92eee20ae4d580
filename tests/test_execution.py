"""The execution configuration: CLI-word parsing, validation, and its manifest JSON."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from ogverify.errors import ExitCode, UsageError
from ogverify.evidence.execution import (
    DEFAULT_PROVIDER,
    EXECUTION_MODES,
    OPT_LEVELS,
    ExecutionConfig,
    ProviderSpec,
    parse_execution_mode,
    parse_key_values,
    parse_opt_level,
)
from ogverify.evidence.schemas import load_schema

# --- parse_opt_level / parse_execution_mode ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("disable", "ORT_DISABLE_ALL"),
        ("basic", "ORT_ENABLE_BASIC"),
        ("extended", "ORT_ENABLE_EXTENDED"),
        ("layout", "ORT_ENABLE_LAYOUT"),
        ("all", "ORT_ENABLE_ALL"),
        ("ALL", "ORT_ENABLE_ALL"),
        (" Basic ", "ORT_ENABLE_BASIC"),
        ("ORT_ENABLE_EXTENDED", "ORT_ENABLE_EXTENDED"),
        ("ORT_DISABLE_ALL", "ORT_DISABLE_ALL"),
    ],
)
def test_parse_opt_level(text: str, level: str) -> None:
    assert parse_opt_level(text) == level


@pytest.mark.parametrize("text", ["", "max", "ORT_ENABLE_EVERYTHING", "99", "enable_all"])
def test_parse_opt_level_rejects_unknown(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_opt_level(text)
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.message == (
        f"unknown optimization level {text!r}; use one of disable, basic, extended, layout, all"
    )


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("sequential", "ORT_SEQUENTIAL"),
        ("parallel", "ORT_PARALLEL"),
        ("PARALLEL", "ORT_PARALLEL"),
        (" sequential", "ORT_SEQUENTIAL"),
        ("ORT_PARALLEL", "ORT_PARALLEL"),
        ("ORT_SEQUENTIAL", "ORT_SEQUENTIAL"),
    ],
)
def test_parse_execution_mode(text: str, mode: str) -> None:
    assert parse_execution_mode(text) == mode


@pytest.mark.parametrize("text", ["", "serial", "concurrent", "ORT_ASYNC"])
def test_parse_execution_mode_rejects_unknown(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_execution_mode(text)
    assert info.value.message == f"unknown execution mode {text!r}; use sequential or parallel"


# --- parse_key_values ----------------------------------------------------------------------------------


def test_parse_key_values() -> None:
    pairs = ["session.intra_op.allow_spinning=0", "b=", "c=x=y", " d =  spaced "]
    assert parse_key_values(pairs, "--session-config") == {
        "session.intra_op.allow_spinning": "0",
        "b": "",
        "c": "x=y",
        "d": "  spaced ",
    }
    assert parse_key_values([], "--run-config") == {}


@pytest.mark.parametrize("pair", ["novalue", "=1", "  =1", ""])
def test_parse_key_values_rejects_malformed(pair: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_key_values(["ok=1", pair], "--annotate")
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.message == f"--annotate must be KEY=VALUE, got {pair!r}"


@pytest.mark.parametrize("pairs", [["a=1", "a=2"], ["a=1", "a=1"], ["a=1", " a=2"], ["a =1", "a=2"]])
def test_parse_key_values_rejects_repeated_keys(pairs: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse_key_values(pairs, "--session-config")
    assert info.value.message == "--session-config 'a' given twice"


# --- ExecutionConfig -----------------------------------------------------------------------------------


def full_config() -> ExecutionConfig:
    return ExecutionConfig(
        runtime_version="1.18.0",
        providers=(
            ProviderSpec("CUDAExecutionProvider", {"device_id": "0", "cudnn_conv_algo_search": "DEFAULT"}),
            ProviderSpec("CPUExecutionProvider"),
        ),
        graph_optimization_level="ORT_ENABLE_EXTENDED",
        intra_op_num_threads=4,
        inter_op_num_threads=2,
        execution_mode="ORT_PARALLEL",
        config_entries={"session.use_deterministic_compute": "1", "optimization.disable_specified_optimizers": "x"},
        run_config_entries={"memory.enable_memory_arena_shrinkage": "cpu:0"},
    )


def test_defaults_are_reproducible_single_threaded_cpu() -> None:
    config = ExecutionConfig(runtime_version="1.18.0")
    assert config.providers == (ProviderSpec(DEFAULT_PROVIDER),)
    assert config.graph_optimization_level == "ORT_ENABLE_ALL"
    assert config.intra_op_num_threads == 1
    assert config.inter_op_num_threads == 1
    assert config.execution_mode == "ORT_SEQUENTIAL"
    assert dict(config.config_entries) == {}
    assert dict(config.run_config_entries) == {}


def test_to_json_shape() -> None:
    document = full_config().to_json()
    assert document == {
        "runtime": {"name": "onnxruntime", "version": "1.18.0"},
        "providers": [
            {"name": "CUDAExecutionProvider", "options": {"cudnn_conv_algo_search": "DEFAULT", "device_id": "0"}},
            {"name": "CPUExecutionProvider", "options": {}},
        ],
        "session_options": {
            "graph_optimization_level": "ORT_ENABLE_EXTENDED",
            "intra_op_num_threads": 4,
            "inter_op_num_threads": 2,
            "execution_mode": "ORT_PARALLEL",
            "config_entries": {
                "optimization.disable_specified_optimizers": "x",
                "session.use_deterministic_compute": "1",
            },
        },
        "run_options": {"config_entries": {"memory.enable_memory_arena_shrinkage": "cpu:0"}},
    }


def test_to_json_matches_the_manifest_schema_section() -> None:
    schema = load_schema("manifest-v1.json")
    validator = jsonschema.Draft202012Validator({**schema["$defs"]["execution"], "$defs": schema["$defs"]})
    assert list(validator.iter_errors(full_config().to_json())) == []
    assert list(validator.iter_errors(ExecutionConfig(runtime_version="1.17.0").to_json())) == []


@pytest.mark.parametrize(
    "config",
    [
        ExecutionConfig(runtime_version="1.17.3"),
        full_config(),
        ExecutionConfig(runtime_version="1.20.1", intra_op_num_threads=0, inter_op_num_threads=0),
    ],
)
def test_json_round_trip(config: ExecutionConfig) -> None:
    document = json.loads(json.dumps(config.to_json()))
    again = ExecutionConfig.from_json(document)
    assert again == config
    assert again.to_json() == config.to_json()


def test_mappings_are_sorted_and_read_only() -> None:
    config = ExecutionConfig(runtime_version="1", config_entries={"z": "1", "a": "2"})
    assert list(config.config_entries) == ["a", "z"]
    with pytest.raises(TypeError):
        config.config_entries["b"] = "3"  # type: ignore[index]


def test_config_is_independent_of_the_callers_dict() -> None:
    entries = {"a": "1"}
    config = ExecutionConfig(runtime_version="1", config_entries=entries)
    entries["b"] = "2"
    assert dict(config.config_entries) == {"a": "1"}


def test_from_json_tolerates_missing_optional_sections() -> None:
    document: dict[str, Any] = full_config().to_json()
    del document["run_options"]
    del document["session_options"]["config_entries"]
    del document["providers"][1]["options"]
    config = ExecutionConfig.from_json(document)
    assert dict(config.run_config_entries) == {}
    assert dict(config.config_entries) == {}
    assert config.providers[1] == ProviderSpec("CPUExecutionProvider")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"graph_optimization_level": "all"}, "unknown graph optimization level 'all'"),
        ({"graph_optimization_level": "ORT_ENABLE_FAST"}, "unknown graph optimization level 'ORT_ENABLE_FAST'"),
        ({"execution_mode": "sequential"}, "unknown execution mode 'sequential'"),
        ({"intra_op_num_threads": -1}, "thread counts must be 0 (runtime default) or more"),
        ({"inter_op_num_threads": -4}, "thread counts must be 0 (runtime default) or more"),
        ({"providers": ()}, "at least one execution provider is needed"),
    ],
)
def test_validation(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as info:
        ExecutionConfig(runtime_version="1.18.0", **changes)
    assert info.value.message == message


def test_from_json_validates_too() -> None:
    document = full_config().to_json()
    document["session_options"]["execution_mode"] = "ORT_ASYNC"
    with pytest.raises(UsageError, match="unknown execution mode 'ORT_ASYNC'"):
        ExecutionConfig.from_json(document)


def test_every_cli_word_maps_to_a_schema_value() -> None:
    for word, level in OPT_LEVELS.items():
        assert ExecutionConfig(runtime_version="1", graph_optimization_level=parse_opt_level(word))
        assert parse_opt_level(level) == level
    for word, mode in EXECUTION_MODES.items():
        assert ExecutionConfig(runtime_version="1", execution_mode=parse_execution_mode(word))
        assert parse_execution_mode(mode) == mode


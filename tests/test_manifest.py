"""Manifest: canonical bytes round-trip; strict reading rejects non-canonical, newer and schema-violating input."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from ogverify.errors import BundleError, ExitCode
from ogverify.evidence import canonical_json
from ogverify.evidence.comparison import ComparisonPolicy, ComparisonSpec
from ogverify.evidence.execution import ExecutionConfig, ProviderSpec
from ogverify.evidence.manifest import FORMAT_VERSION, Manifest
from ogverify.evidence.schemas import load_schema, schema_dir
from ogverify.model.tensors import Array
from ogverify.packing.pack import PackResult, pack, runtime_version
from tests.fixtures import models

Edit = Callable[[dict[str, Any]], None]


def pack_mlp(folder: Path, *, external_data: bool = True) -> PackResult:
    folder.mkdir(parents=True, exist_ok=True)
    model = models.save(models.mlp(), folder / "mlp.onnx", external_data=external_data)
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    y = models.mlp_reference_outputs(models.mlp(), x)
    config = ExecutionConfig(
        runtime_version=runtime_version(),
        providers=(ProviderSpec("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}),),
        graph_optimization_level="ORT_ENABLE_BASIC",
        intra_op_num_threads=2,
        config_entries={"session.use_env_allocators": "0"},
        run_config_entries={"memory.enable_memory_arena_shrinkage": "cpu:0"},
    )
    comparison = ComparisonPolicy(ComparisonSpec.parse("ulp:4"), {"y": ComparisonSpec.parse("allclose:1e-3,1e-5")})
    return pack(
        model, folder / "bundle", inputs={"x": x}, claimed_outputs={"y": y}, config=config,
        comparison=comparison, annotations={"run": "unit-test", "by": "ogverify"}, with_sha256=True,
    )


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> PackResult:
    return pack_mlp(tmp_path_factory.mktemp("manifest"))


@pytest.fixture
def document(packed: PackResult) -> dict[str, Any]:
    """A fresh, mutable copy of the packed manifest's JSON."""
    parsed: dict[str, Any] = json.loads(packed.manifest.to_bytes())
    return copy.deepcopy(parsed)


def rejection(document: dict[str, Any]) -> str:
    with pytest.raises(BundleError) as info:
        Manifest.from_bytes(canonical_json.dumps(document))
    assert info.value.exit_code == ExitCode.CANNOT_VERIFY
    assert info.value.message.startswith("manifest")
    return info.value.message


# --- round trip ----------------------------------------------------------------------------------------


def test_round_trip_is_equal(packed: PackResult) -> None:
    raw = packed.manifest.to_bytes()
    again = Manifest.from_bytes(raw)
    assert again == packed.manifest
    assert again.to_bytes() == raw


def test_round_trip_keeps_every_part(packed: PackResult) -> None:
    manifest = Manifest.from_bytes(packed.manifest.to_bytes())
    assert manifest.format_version == FORMAT_VERSION
    assert manifest.model.name == "mlp.onnx"
    assert manifest.model.media_type == "application/x-onnx"
    assert [f.name for f in manifest.model_files] == ["mlp.data"]
    assert [(t.name, t.describe()) for t in manifest.inputs] == [("x", "float32[4,16]")]
    assert [(t.name, t.describe()) for t in manifest.outputs] == [("y", "float32[4,8]")]
    assert all(a.sha256 is not None and len(a.sha256) == 64 for _, a in manifest.artifacts())
    assert manifest.execution.graph_optimization_level == "ORT_ENABLE_BASIC"
    assert manifest.execution.intra_op_num_threads == 2
    assert dict(manifest.execution.providers[0].options) == {"arena_extend_strategy": "kSameAsRequested"}
    assert dict(manifest.execution.config_entries) == {"session.use_env_allocators": "0"}
    assert dict(manifest.execution.run_config_entries) == {"memory.enable_memory_arena_shrinkage": "cpu:0"}
    assert manifest.comparison.default == ComparisonSpec("ulp", ulp=4)
    assert manifest.comparison.for_output("y") == ComparisonSpec("allclose", rtol=1e-3, atol=1e-5)
    assert manifest.comparison.for_output("other") == ComparisonSpec("ulp", ulp=4)
    assert dict(manifest.annotations) == {"by": "ogverify", "run": "unit-test"}
    assert dict(manifest.producer)["tool"] == "ogverify"


def test_manifest_file_in_bundle_is_the_canonical_bytes(packed: PackResult) -> None:
    on_disk = (packed.path / "manifest.json").read_bytes()
    assert on_disk == packed.manifest.to_bytes()
    assert canonical_json.is_canonical(on_disk, json.loads(on_disk))
    assert Manifest.from_bytes(on_disk) == packed.manifest


def test_round_trip_without_external_data_or_sha256(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    model = models.save(models.multi_io(), folder / "multi.onnx")
    a, b, n = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32), np.array([1, 2], np.int64)
    inputs: dict[str, Array] = {"a": a, "b": b, "n": n}
    claimed: dict[str, Array] = {"sum": a + b, "prod": a * b, "count": n * 2}
    result = pack(model, tmp_path / "b.ogb", inputs=inputs, claimed_outputs=claimed)
    manifest = Manifest.from_bytes(result.manifest.to_bytes())
    assert manifest == result.manifest
    assert manifest.model_files == ()
    assert [t.name for t in manifest.outputs] == ["sum", "prod", "count"]
    assert all(a.sha256 is None for _, a in manifest.artifacts())


# --- rejections ----------------------------------------------------------------------------------------


def test_rejects_non_canonical_bytes(packed: PackResult) -> None:
    pretty = json.dumps(json.loads(packed.manifest.to_bytes()), indent=2).encode()
    with pytest.raises(BundleError) as info:
        Manifest.from_bytes(pretty)
    assert info.value.message == (
        "manifest.json is not canonical JSON (RFC 8785); it was not written by a packer"
    )


def test_rejects_reordered_keys(packed: PackResult) -> None:
    parsed = json.loads(packed.manifest.to_bytes())
    reordered = json.dumps(dict(reversed(list(parsed.items()))), separators=(",", ":"), ensure_ascii=False)
    with pytest.raises(BundleError, match="not canonical JSON"):
        Manifest.from_bytes(reordered.encode())


def test_rejects_trailing_newline(packed: PackResult) -> None:
    with pytest.raises(BundleError, match="not canonical JSON"):
        Manifest.from_bytes(packed.manifest.to_bytes() + b"\n")


def test_rejects_newer_format_version(document: dict[str, Any]) -> None:
    document["format_version"] = 2
    message = rejection(document)
    assert "manifest format version 2 is newer than this ogverify supports (1)" in message
    assert "needs a newer ogverify" in message


def test_rejects_newer_format_version_even_with_unknown_fields(document: dict[str, Any]) -> None:
    document["format_version"] = 7
    document["new_v7_section"] = {"anything": True}
    del document["model"]
    assert "needs a newer ogverify" in rejection(document)


@pytest.mark.parametrize("version", [0, "1", 1.5, None])
def test_rejects_other_format_versions(document: dict[str, Any], version: Any) -> None:
    document["format_version"] = version
    assert "does not match its schema at format_version" in rejection(document)


def test_rejects_duplicate_keys(packed: PackResult) -> None:
    raw = packed.manifest.to_bytes()
    doubled = raw[:-1] + b',"producer":{"tool":"evil","version":"1"}}'
    with pytest.raises(BundleError) as info:
        Manifest.from_bytes(doubled)
    assert info.value.message == "manifest.json: duplicate JSON key 'producer'"


def test_rejects_non_object_top_level() -> None:
    with pytest.raises(BundleError, match=r"does not match its schema at \(top level\)"):
        Manifest.from_bytes(b"[]")


def _set(path: list[str | int], value: Any) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(path: list[str | int]) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (_set(["model", "size"], "462"), "model/size"),
        (_set(["model", "size"], -1), "model/size"),
        (_set(["model", "digest", "blake3"], "ABC"), "model/digest/blake3"),
        (_set(["model", "digest", "md5"], "0" * 32), "model/digest"),
        (_set(["model", "encoding"], "gzip"), "model/encoding"),
        (_set(["inputs", 0, "shape"], [4, "16"]), "inputs/0/shape/1"),
        (_set(["inputs", 0, "dtype"], "complex64"), "inputs/0/dtype"),
        (_set(["inputs", 0, "name"], ""), "inputs/0/name"),
        (_set(["outputs"], []), "outputs"),
        (_set(["outputs", 0, "stored_size"], 1.5), "outputs/0/stored_size"),
        (_set(["execution", "session_options", "intra_op_num_threads"], "1"),
         "execution/session_options/intra_op_num_threads"),
        (_set(["execution", "session_options", "graph_optimization_level"], "all"),
         "execution/session_options/graph_optimization_level"),
        (_set(["execution", "providers", 0, "name"], "CPU"), "execution/providers/0/name"),
        (_set(["execution", "providers"], []), "execution/providers"),
        (_set(["execution", "runtime", "name"], "tensorflow"), "execution/runtime/name"),
        (_set(["comparison", "default"], {"mode": "fuzzy"}), "comparison/default"),
        (_set(["comparison", "outputs", "y"], {"mode": "ulp", "ulp": -1}), "comparison/outputs/y"),
        (_set(["comparison", "default"], {"mode": "topk", "k": 0}), "comparison/default"),
        (_set(["annotations", "k"], 1), "annotations/k"),
        (_set(["producer", "version"], 1), "producer/version"),
        (_delete(["producer", "tool"]), "producer"),
        (_set(["environment"], "linux"), "environment"),
        (_set(["model_files"], {"name": "mlp.data"}), "model_files"),
    ],
)
def test_rejects_schema_violations_naming_the_field(document: dict[str, Any], edit: Edit, where: str) -> None:
    edit(document)
    message = rejection(document)
    assert message.startswith(f"manifest.json does not match its schema at {where}: "), message


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "a/../b", "..", ".", "./mlp.data", "a//b", "dir\\file", "line\nbreak", ""],
)
def test_rejects_unsafe_model_file_names(document: dict[str, Any], name: str) -> None:
    document["model_files"][0]["name"] = name
    assert rejection(document).startswith("manifest.json does not match its schema at model_files/0/name: ")


@pytest.mark.parametrize("name", ["../mlp.onnx", "/tmp/mlp.onnx"])
def test_rejects_unsafe_model_names(document: dict[str, Any], name: str) -> None:
    document["model"]["name"] = name
    assert rejection(document).startswith("manifest.json does not match its schema at model/name: ")


@pytest.mark.parametrize("name", ["weights/part-1.bin", "mlp.data", "a..b", ".hidden", "sub/.dot/x"])
def test_accepts_safe_relative_model_file_names(document: dict[str, Any], name: str) -> None:
    document["model_files"][0]["name"] = name
    manifest = Manifest.from_bytes(canonical_json.dumps(document))
    assert manifest.model_files[0].name == name


def test_rejects_extra_top_level_key(document: dict[str, Any]) -> None:
    document["extra"] = {"smuggled": True}
    message = rejection(document)
    assert message.startswith("manifest.json does not match its schema at (top level): ")
    assert "'extra'" in message


@pytest.mark.parametrize("section", ["model", "inputs", "execution"])
def test_rejects_extra_nested_key(document: dict[str, Any], section: str) -> None:
    target = document[section][0] if isinstance(document[section], list) else document[section]
    target["extra"] = 1
    message = rejection(document)
    assert f"at {section}" in message
    assert "'extra'" in message


@pytest.mark.parametrize(
    "key",
    ["format_version", "model", "model_files", "inputs", "outputs", "execution", "environment", "comparison",
     "producer", "annotations"],
)
def test_rejects_missing_top_level_key(document: dict[str, Any], key: str) -> None:
    del document[key]
    message = rejection(document)
    assert f"'{key}' is a required property" in message


# --- the schema itself ---------------------------------------------------------------------------------


def test_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    path = Path(__file__).parent.parent / "schemas" / "manifest-v1.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


def test_schema_in_use_is_the_file_in_schemas() -> None:
    path = Path(__file__).parent.parent / "schemas" / "manifest-v1.json"
    assert load_schema("manifest-v1.json") == json.loads(path.read_text(encoding="utf-8"))
    assert (schema_dir() / "manifest-v1.json").is_file()


def test_packed_manifest_validates_against_the_schema(packed: PackResult) -> None:
    schema = load_schema("manifest-v1.json")
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.loads(packed.manifest.to_bytes())))
    assert errors == []

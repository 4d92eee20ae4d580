"""Non-tensor values (sequence, map, optional): types, canonical storage, comparison, pack and check.

Every value here is exact on any CPU: powers of two, small integers, and a decision tree whose
pure leaves give probabilities of exactly 0 and 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from onnx import OptionalProto, SequenceProto, TensorProto, helper, numpy_helper

from ogverify.errors import BundleError, UsageError
from ogverify.evidence.bundle import open_bundle
from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.manifest import Manifest, ValueEntry
from ogverify.evidence.schemas import load_schema
from ogverify.model.compare import compare_value
from ogverify.model.signature import ValueType, read_signature
from ogverify.model.values import (
    MAGIC,
    MapValue,
    OptionalValue,
    SequenceValue,
    Value,
    decode,
    encode,
    from_python,
    load_value_file,
    to_json,
    to_runtime,
)
from tests.conftest import RunCli
from tests.fixtures import models

SEQ_MAP = ValueType.parse("seq(map(int64,tensor(float)))")
SEQ_TENSOR = ValueType.parse("seq(tensor(float))")


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "tensor(float)", "tensor(string)", "seq(tensor(double))", "seq(map(int64,tensor(float)))",
    "seq(map(string,tensor(double)))", "map(string,tensor(int64))", "optional(tensor(float))",
    "optional(seq(tensor(int64)))", "seq(seq(tensor(bool)))",
])
def test_value_types_read_back_as_onnxruntime_writes_them(text: str) -> None:
    assert str(ValueType.parse(text)) == text


@pytest.mark.parametrize("text", ["seq(tensor(float)", "tensor(flot)", "map(float,tensor(float))", "seq()",
                                  "optional(tensor(float)))", "tensor(float)x", "sequence(tensor(float))", ""])
def test_malformed_value_types_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a value type"):
        ValueType.parse(text)


def test_the_signature_reads_declared_sequence_map_and_optional_types(tmp_path: Path) -> None:
    zipper = models.save(models.zipper(), tmp_path / "z.onnx")
    assert [spec.describe() for spec in read_signature(zipper).outputs] == ["seq(map(int64,tensor(float)))"]
    wrapper = models.save(models.wrapper(), tmp_path / "w.onnx")
    assert str(read_signature(wrapper).outputs[0].type) == "optional(tensor(float))"
    vectorizer = models.save(models.vectorizer(), tmp_path / "v.onnx")
    assert str(read_signature(vectorizer).inputs[0].type) == "map(string,tensor(float))"


# --- reading values ---------------------------------------------------------------------------


def test_json_is_read_as_the_declared_element_types() -> None:
    value = from_python([{"2": 0.5, "0": 0.25, "1": 1}], SEQ_MAP, "p", text_keys=True)
    assert isinstance(value, SequenceValue)
    (first,) = value.items
    assert isinstance(first, MapValue)
    assert first.keys.tolist() == [0, 1, 2] and first.keys.dtype == np.int64  # sorted by key
    assert first.values.tolist() == [0.25, 1.0, 0.5] and first.values.dtype == np.float32
    parts = from_python([[[1, 2]], [[3.5, 4]]], SEQ_TENSOR, "s")
    assert isinstance(parts, SequenceValue)
    assert [(p.dtype.name, p.shape) for p in parts.items if isinstance(p, np.ndarray)] == [
        ("float32", (1, 2)), ("float32", (1, 2))]


@pytest.mark.parametrize(("obj", "value_type", "message"), [
    ({"x": 1.0}, "map(int64,tensor(float))", "key 'x' is not of the key type int64"),
    ({"1": "a"}, "map(int64,tensor(float))", "'a' is not a value of type float32"),
    ({"1": 1.5}, "map(int64,tensor(int64))", "1.5 is not a value of type int64"),
    ({"1": True}, "map(int64,tensor(float))", "True is not a value of type float32"),
    ([[1, 2], [3]], "tensor(float)", "not a tensor"),
    ({"a": 1}, "seq(tensor(float))", "expected a list"),
    ([1], "map(string,tensor(float))", "expected an object"),
    ({"1": [1.0, 2.0]}, "map(int64,tensor(float))", "each map value must be a single float32"),
    ([2 ** 70], "tensor(int64)", "a value is out of the range of int64"),
])
def test_values_that_do_not_fit_the_declared_type_are_refused(obj: Any, value_type: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        from_python(obj, ValueType.parse(value_type), "claim", text_keys=True)


def test_onnx_test_data_protos_are_read(tmp_path: Path) -> None:
    # Written with onnx's own helpers, as ONNX's test data is.
    scalars = [numpy_helper.from_array(np.array(v, np.float32)) for v in (0.5, 0.25)]
    mapping = helper.make_map("", TensorProto.INT64, [3, 1], helper.make_sequence("", SequenceProto.TENSOR, scalars))
    sequence = helper.make_sequence("probabilities", SequenceProto.MAP, [mapping])
    (tmp_path / "seq.pb").write_bytes(sequence.SerializeToString())
    value = load_value_file(tmp_path / "seq.pb", SEQ_MAP, "claim")
    assert to_json(value) == [{"1": 0.25, "3": 0.5}]
    empty = helper.make_optional("maybe", OptionalProto.UNDEFINED, None)  # how ONNX writes an empty optional
    (tmp_path / "opt.pb").write_bytes(empty.SerializeToString())
    assert to_json(load_value_file(tmp_path / "opt.pb", ValueType.parse("optional(tensor(float))"), "c")) is None
    (tmp_path / "bad.pb").write_bytes(b"\xff\xff")
    with pytest.raises(UsageError, match="is not an ONNX SequenceProto file"):
        load_value_file(tmp_path / "bad.pb", SEQ_MAP, "claim")


def test_runtime_form_is_what_onnxruntime_takes() -> None:
    value = from_python({"b": 2.0, "a": 1.0}, ValueType.parse("map(string,tensor(float))"), "m")
    assert to_runtime(value) == {"a": 1.0, "b": 2.0}
    assert to_runtime(OptionalValue(None)) is None


# --- canonical bytes --------------------------------------------------------------------------


def _roundtrip(value: Value, value_type: ValueType) -> Value:
    raw = encode(value, value_type)
    stored_type, decoded = decode(raw, "v")
    assert stored_type == value_type
    assert encode(decoded, value_type) == raw
    return decoded


def test_each_value_kind_round_trips_through_its_canonical_bytes() -> None:
    cases = [
        ([{"0": 1.0, "1": 0.0}, {"1": 0.5, "0": 0.5}], SEQ_MAP),
        ([[[1.0, 2.0]], [[3.0]], []], SEQ_TENSOR),
        ({"ccc": 1.0, "a": 2.0}, ValueType.parse("map(string,tensor(double))")),
        (None, ValueType.parse("optional(seq(tensor(int64)))")),
        ([[1, 2], [3]], ValueType.parse("optional(seq(tensor(int64)))")),
        ([], SEQ_TENSOR),
        ([["x", "yy"], ["zzz"]], ValueType.parse("seq(tensor(string))")),
    ]
    for obj, value_type in cases:
        value = from_python(obj, value_type, "v", text_keys=True)
        assert to_json(_roundtrip(value, value_type)) == to_json(value)


def test_one_value_has_one_encoding_whatever_its_order_or_text_width() -> None:
    value_type = ValueType.parse("map(string,tensor(float))")
    one = from_python({"b": 1.0, "a": 2.0}, value_type, "v")
    other = from_python({"a": 2.0, "b": 1.0}, value_type, "v")
    assert encode(one, value_type) == encode(other, value_type)
    wide = MapValue(np.array(["a", "b"], dtype="<U9"), np.array([2.0, 1.0], np.float32))
    assert encode(wide, value_type) == encode(one, value_type)


def test_decoding_refuses_bytes_that_are_not_the_canonical_encoding() -> None:
    value_type = ValueType.parse("map(int64,tensor(float))")
    raw = encode(from_python({1: 0.5, 2: 0.25}, value_type, "v"), value_type)
    unsorted = MapValue(np.array([2, 1], np.int64), np.array([0.25, 0.5], np.float32))
    from ogverify.evidence import canonical_json
    from ogverify.model.tensors import to_npy_bytes

    header = canonical_json.dumps({"type": str(value_type), "value": "map"})
    forged = MAGIC + header + b"\n" + to_npy_bytes(unsorted.keys) + to_npy_bytes(unsorted.values)
    with pytest.raises(BundleError, match="not strictly ascending"):
        decode(forged, "claimed output 'p'")
    for bad, message in [
        (raw + b"\x00", "not a .npy tensor"),
        (raw[:-1], "truncated"),
        (b"x" + raw, "is not an ogverify value"),
        (raw.replace(b"int64", b"int32", 1), "not a value type: 'map.int32"),
        (raw.replace(b"tensor(float)", b"tensor(double)", 1), r"where its type says map\(int64,tensor\(double"),
        (raw.replace(b'"map"', b'"tensor"', 1), "does not fit its type"),
        (raw.replace(b'{"type"', b'{ "type"', 1), "not in canonical form"),
    ]:
        with pytest.raises(BundleError, match=message):
            decode(bad, "claimed output 'p'")


# --- comparison -------------------------------------------------------------------------------


def _compare(claimed: Any, reproduced: Any, value_type: ValueType = SEQ_MAP, mode: str = "exact") -> Any:
    return compare_value("output_probability", from_python(claimed, value_type, "c", text_keys=True),
                         from_python(reproduced, value_type, "r", text_keys=True), ComparisonSpec.parse(mode),
                         value_type)


def test_equal_values_pass_with_every_metric_at_zero() -> None:
    result = _compare([{"0": 0.25, "1": 0.75}], [{"1": 0.75, "0": 0.25}])
    assert result.passed and result.bitwise_equal and result.reason == "bitwise equal"
    assert (result.elements, result.elements_differing, result.max_abs_diff) == (2, 0, 0.0)
    assert result.claimed_type == "seq(map(int64,tensor(float)))[1]"


def test_a_changed_probability_names_the_element_and_the_key() -> None:
    claimed = [{"0": 1.0, "1": 0.0, "2": 0.0}, {"0": 0.0, "1": 0.25, "2": 0.5}]
    reproduced = [{"0": 1.0, "1": 0.0, "2": 0.0}, {"0": 0.0, "1": 0.25, "2": 0.125}]
    result = _compare(claimed, reproduced)
    assert not result.passed
    assert result.reason.startswith("element 1, key 2: claimed 0.5, reproduced 0.125 (")
    assert (result.elements, result.elements_differing, result.max_abs_diff) == (6, 1, 0.375)
    assert result.statistics is not None and result.statistics.min_atol == 0.375
    assert result.argmax_flips == 1  # the second map's top class went from 2 to 1
    assert _compare(claimed, reproduced, mode="allclose:0,0.375").passed
    topk = _compare(claimed, reproduced, mode="topk:1")
    assert not topk.passed and topk.topk_changes == 1
    assert _compare(claimed, reproduced, mode="topk:2").passed  # {1, 2} either way


@pytest.mark.parametrize(("claimed", "reproduced", "reason"), [
    ([{"0": 1.0}], [{"0": 1.0}, {"0": 1.0}], "the value: claimed 1 elements, reproduced 2"),
    ([{"0": 1.0, "1": 0.0}], [{"0": 1.0, "2": 0.0}], "element 0: keys differ: key(s) 1 only in the claim; "
                                                     "key(s) 2 only in the reproduction"),
])
def test_structure_differences_fail_before_any_number(claimed: Any, reproduced: Any, reason: str) -> None:
    result = _compare(claimed, reproduced)
    assert not result.passed and result.reason == reason and not result.bitwise_equal


def test_sequences_of_tensors_and_optionals_compare_by_element() -> None:
    result = _compare([[[1.0, 2.0]], [[3.0, 4.0]]], [[[1.0, 2.0]], [[3.0, 8.0]]], SEQ_TENSOR)
    assert result.reason.startswith("element 1, index [0, 1]: claimed 4.0, reproduced 8.0")
    shapes = _compare([[1.0]], [[1.0, 2.0]], SEQ_TENSOR)
    assert shapes.reason == "element 0: type differs: claimed float32[1], reproduced float32[2]"
    optional = ValueType.parse("optional(tensor(float))")
    assert _compare(None, [1.0], optional).reason == "the value: claimed none, reproduced a value"
    assert _compare(None, None, optional).passed


# --- pack and check ---------------------------------------------------------------------------


def _report(run_cli: RunCli, bundle: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("check", bundle, "--allow-unsigned", "--format", "json", *extra)
    document = json.loads(result.stdout)
    return result.exit_code, document


@pytest.mark.parametrize(("labels", "key"), [([0, 1, 2], "2"), (["a", "b", "c"], "'c'")])
def test_zipmap_classifier_packs_checks_and_fails_on_a_changed_probability(
    tmp_path: Path, run_cli: RunCli, labels: list[Any], key: str
) -> None:
    model = models.save(models.tree_classifier(labels), tmp_path / "tree.onnx")
    np.save(tmp_path / "X.npy", np.array([[0], [1]], np.float32))
    packed = run_cli("pack", model, "-i", f"X={tmp_path / 'X.npy'}", "--run", "--out", tmp_path / "run.ogb")
    assert packed.exit_code == 0, packed.output
    with open_bundle(tmp_path / "run.ogb") as bundle:
        entry = bundle.manifest.outputs[1]
        assert isinstance(entry, ValueEntry)
        assert entry.type == f"seq(map({'int64' if labels[0] == 0 else 'string'},tensor(float)))"
        assert to_json(decode(bundle.read_blob(entry.artifact, "p", 1 << 20), "p")[1]) == [
            {str(labels[0]): 1.0, str(labels[1]): 0.0, str(labels[2]): 0.0},
            {str(labels[0]): 0.0, str(labels[1]): 1.0, str(labels[2]): 0.0}]
    code, report = _report(run_cli, tmp_path / "run.ogb")
    assert (code, report["verdict"]) == (0, "verified"), report

    claimed = [{str(k): float(i == row) for i, k in enumerate(labels)} for row in (0, 1)]
    claimed[1][str(labels[2])] = 0.5
    (tmp_path / "probabilities.json").write_text(json.dumps(claimed), encoding="utf-8")
    np.save(tmp_path / "label.npy", np.array(labels[:2]))
    packed = run_cli("pack", model, "-i", f"X={tmp_path / 'X.npy'}", "-O", f"output_label={tmp_path / 'label.npy'}",
                     "-O", f"output_probability={tmp_path / 'probabilities.json'}", "--out", tmp_path / "claim.ogb")
    assert packed.exit_code == 0, packed.output
    code, report = _report(run_cli, tmp_path / "claim.ogb")
    assert code == 1
    jsonschema.validate(report, load_schema("report-v1.json"))
    failing = [f for f in report["findings"] if f["stage"] == "comparison" and f["status"] == "fail"]
    assert [f["message"] for f in failing] == [
        f"output 'output_probability' [exact]: element 1, key {key}: claimed 0.5, reproduced 0.0 "
        "(1 of 3 elements differ bitwise (max abs diff 0.5, max 1056964608 ULP))"]
    drift = next(f for f in report["findings"] if f["stage"] == "drift")
    assert drift["status"] == "warn" and "explains tensors only" in drift["message"]
    if labels[0] == 0:  # the pool's path (a cached session in a worker) says the same
        result = run_cli("check", tmp_path / "claim.ogb", "--allow-unsigned", "--jobs", "2", "--format", "junit")
        assert result.exit_code == 1 and "element 1, key 2: claimed 0.5, reproduced 0.0" in result.stdout


def test_sequence_map_and_optional_values_pack_from_files_and_check(tmp_path: Path, run_cli: RunCli) -> None:
    # A seq(tensor) output from ONNX test data (a SequenceProto written by onnx itself).
    splitter = models.save(models.splitter(), tmp_path / "split.onnx")
    x = np.array([[1, 2, 4, 8]], np.float32)
    data = tmp_path / "test_data_set_0"
    data.mkdir()
    (data / "input_0.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    parts = [numpy_helper.from_array(x[:, i:i + 1]) for i in range(4)]
    (data / "output_0.pb").write_bytes(
        helper.make_sequence("parts", SequenceProto.TENSOR, parts).SerializeToString())
    assert run_cli("pack", splitter, "--test-data", data, "--out", tmp_path / "split.ogb").exit_code == 0
    # A seq(tensor) input and a map input from .json, and an optional output, as claimed (exact values).
    (tmp_path / "parts.json").write_text("[[1, 2], [4]]", encoding="utf-8")
    (tmp_path / "features.json").write_text('{"c": 2, "a": 0.5}', encoding="utf-8")
    (tmp_path / "maybe.json").write_text("[1, 2]", encoding="utf-8")
    np.save(tmp_path / "x.npy", np.array([1, 2], np.float32))
    np.save(tmp_path / "concatenated.npy", np.array([1, 2, 4], np.float32))
    np.save(tmp_path / "vector.npy", np.array([[0.5, 0, 2]], np.float32))
    for model, inputs, output, out in [
        (models.concatenator(), f"parts={tmp_path / 'parts.json'}", f"y={tmp_path / 'concatenated.npy'}", "concat.ogb"),
        (models.vectorizer(), str(tmp_path / "features.json"), str(tmp_path / "vector.npy"), "vector.ogb"),
        (models.wrapper(), f"x={tmp_path / 'x.npy'}", str(tmp_path / "maybe.json"), "wrap.ogb"),
    ]:
        path = models.save(model, tmp_path / out.replace(".ogb", ".onnx"))
        packed = run_cli("pack", path, "-i", inputs, "-O", output, "--out", tmp_path / out)
        assert packed.exit_code == 0, packed.output
    result = run_cli("check", *(tmp_path / n for n in ("split.ogb", "concat.ogb", "vector.ogb", "wrap.ogb")),
                     "--allow-unsigned", "--format", "json")
    assert result.exit_code == 0, result.stdout
    with open_bundle(tmp_path / "vector.ogb") as bundle:
        assert bundle.manifest.inputs[0].describe() == "map(string,tensor(float))"
        assert bundle.manifest.outputs[0].describe() == "float32[1,3]"
    with open_bundle(tmp_path / "concat.ogb") as bundle:
        manifest = Manifest.from_bytes(bundle.manifest_bytes)
        assert manifest.outputs[0].describe() == "float32[3]"
    extracted = tmp_path / "extracted"
    assert run_cli("extract", tmp_path / "wrap.ogb", extracted).exit_code == 0
    wrapped = load_value_file(extracted / "outputs" / "maybe.value", ValueType.parse("optional(tensor(float))"), "v")
    assert isinstance(wrapped, OptionalValue) and to_json(wrapped) == [1.0, 2.0]


def test_claims_that_do_not_fit_the_model_are_usage_errors(tmp_path: Path, run_cli: RunCli) -> None:
    model = models.save(models.zipper(), tmp_path / "zip.onnx")
    np.save(tmp_path / "scores.npy", np.array([[0.5, 0.25, 0.25]], np.float32))
    (tmp_path / "p.json").write_text('[{"0": 0.5, "one": 0.25}]', encoding="utf-8")
    result = run_cli("pack", model, "-i", f"scores={tmp_path / 'scores.npy'}", "-O",
                     f"probabilities={tmp_path / 'p.json'}", "--out", tmp_path / "b.ogb")
    assert result.exit_code == 2
    assert "key 'one' is not of the key type int64" in result.stderr
    (tmp_path / "p.json").write_text('{"0": 0.5}', encoding="utf-8")
    result = run_cli("pack", model, "-i", f"scores={tmp_path / 'scores.npy'}", "-O",
                     f"probabilities={tmp_path / 'p.json'}", "--out", tmp_path / "b.ogb")
    assert result.exit_code == 2 and "expected a list for seq(map(int64,tensor(float)))" in result.stderr


def test_the_recorder_records_sequence_inputs_and_map_outputs(tmp_path: Path) -> None:
    import ogverify

    recorder = ogverify.Recorder(models.save(models.zipper(), tmp_path / "zip.onnx"), tmp_path / "evidence")
    returned = recorder.run(None, {"scores": np.array([[0.5, 0.25, 0.25]], np.float32)})
    assert returned == [[{0: 0.5, 1: 0.25, 2: 0.25}]]  # what onnxruntime returned, untouched
    concatenator = ogverify.Recorder(models.save(models.concatenator(), tmp_path / "cat.onnx"), tmp_path / "ev2")
    concatenator.run(None, {"parts": [np.array([1, 2], np.float32), np.array([4], np.float32)]})
    for bundle in (recorder.bundles[-1], concatenator.bundles[-1]):
        assert ogverify.check(bundle, allow_unsigned=True).exit_code == 0
    with open_bundle(concatenator.bundles[-1]) as opened:
        assert opened.manifest.inputs[0].describe() == "seq(tensor(float))"


def test_a_manifest_type_that_the_blob_does_not_hold_fails_the_check(tmp_path: Path, run_cli: RunCli) -> None:
    from ogverify.evidence import canonical_json

    model = models.save(models.zipper(), tmp_path / "zip.onnx")
    np.save(tmp_path / "scores.npy", np.array([[0.5, 0.25, 0.25]], np.float32))
    (tmp_path / "p.json").write_text('[{"0": 0.5, "1": 0.25, "2": 0.25}]', encoding="utf-8")
    packed = run_cli("pack", model, "-i", f"scores={tmp_path / 'scores.npy'}",
                     "-O", f"probabilities={tmp_path / 'p.json'}", "--out", tmp_path / "b")
    assert packed.exit_code == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_bytes())
    manifest["outputs"][0]["type"] = "seq(map(string,tensor(float)))"
    (tmp_path / "b" / "manifest.json").write_bytes(canonical_json.dumps(manifest))
    result = run_cli("check", tmp_path / "b", "--allow-unsigned")
    assert result.exit_code == 1
    assert ("claimed output 'probabilities' holds a seq(map(int64,tensor(float))), "
            "manifest says seq(map(string,tensor(float)))") in result.stdout

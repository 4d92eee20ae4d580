"""ogverify.evidence.schema_subset gives jsonschema's answer on ogverify's schemas."""

from __future__ import annotations

import copy
import json
import random
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ogverify.errors import BundleError
from ogverify.evidence.schema_subset import SubsetValidator, UnsupportedSchemaError
from ogverify.evidence.schemas import load_schema, validate
from tests.bundle_helpers import manifest_of

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ["manifest-v1.json", "policy-v1.json", "report-v1.json"]

# Values a hostile or careless producer might put anywhere.
ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 1.5, -0.0, 2**64, float("nan"), float("inf"), "", "x", "exact",
    "0" * 64, "f" * 64, "F" * 64, "../escape", "/abs", "a/b", "a" * 5000, [], [1], ["x"], {}, {"mode": "exact"},
    {"mode": "ulp", "ulp": 1}, {"mode": "allclose", "rtol": 0, "atol": 0}, {"mode": "ulp", "ulp": 1.0},
    {"mode": "topk", "k": 1}, "float32", "int64", "zstd", "identity", "CPUExecutionProvider", "ORT_ENABLE_ALL",
]


def _samples(name: str) -> list[Any]:
    if name == "manifest-v1.json":
        return [manifest_of(bundle) for bundle in sorted((ROOT / "fixtures").glob("*.ogb"))]
    if name == "policy-v1.json":
        doc = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
        return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", doc, re.S)]
    from ogverify.verify.pipeline import CheckOptions, check_bundle

    report = check_bundle(ROOT / "fixtures" / "mlp-tampered.ogb", CheckOptions(allow_unsigned=True, rerun=False))
    return [json.loads(json.dumps(report.to_json()))]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _mutate(document: Any, rng: random.Random) -> Any:
    mutated = copy.deepcopy(document)
    for _ in range(rng.choice([1, 1, 2])):
        path = rng.choice(_paths(mutated)[1:] or [()])
        if not path:
            return rng.choice(ODD_VALUES)
        parent = mutated
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = rng.random()
        if action < 0.6:
            parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action < 0.75:
            del parent[last]
        elif action < 0.85 and isinstance(parent, dict):
            parent[rng.choice(["extra", "mode", "k", "ulp", "digest", "x"])] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif isinstance(parent[last], list):
            parent[last] = parent[last] * 2 if rng.random() < 0.5 else parent[last][:1]
        elif isinstance(parent[last], str):
            parent[last] = parent[last].upper() if rng.random() < 0.5 else parent[last] + "\n"
    return mutated


@pytest.mark.parametrize("name", SCHEMAS)
def test_subset_agrees_with_jsonschema(name: str) -> None:
    schema = load_schema(name)
    ours = SubsetValidator(schema)
    reference = jsonschema.validators.validator_for(schema)(schema)
    samples = _samples(name)
    assert samples
    for sample in samples:
        assert reference.is_valid(sample) and ours.is_valid(sample)
    rng = random.Random(f"subset-{name}")
    rejected = 0
    for _ in range(1500):
        document = _mutate(rng.choice(samples), rng)
        expected = reference.is_valid(document)
        assert ours.is_valid(document) == expected, json.dumps(document, default=str)[:2000]
        rejected += not expected
    assert 200 < rejected < 1400  # the mutations reach both answers


def test_subset_refuses_keywords_it_does_not_implement() -> None:
    schemas: list[dict[str, Any]] = [
        {"type": "string", "format": "uri"}, {"patternProperties": {}}, {"$ref": "other.json#/x"},
        {"properties": {"a": {"uniqueItems": True}}}, {"type": "decimal"},
    ]
    for schema in schemas:
        with pytest.raises(UnsupportedSchemaError):
            SubsetValidator(schema)


def test_subset_keeps_json_equality() -> None:
    ours = SubsetValidator({"enum": [1, [True], {"a": 0.0}]})
    assert ours.is_valid(1.0) and ours.is_valid([True]) and ours.is_valid({"a": 0})
    assert not ours.is_valid(True) and not ours.is_valid([1]) and not ours.is_valid({"a": False})


def test_validate_still_names_the_offending_field() -> None:
    manifest = manifest_of(ROOT / "fixtures" / "mlp.ogb")
    manifest["inputs"][0]["dtype"] = "complex64"
    with pytest.raises(BundleError, match=r"manifest.json does not match its schema at inputs/0/dtype: 'complex64'"):
        validate(manifest, "manifest-v1.json", "manifest.json")

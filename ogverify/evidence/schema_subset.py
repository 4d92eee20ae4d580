"""Whether a JSON document matches one of ogverify's schemas, without importing jsonschema.

jsonschema takes ~80 ms to import: a quarter of what a small ``check`` costs over a bare
onnxruntime run, spent before the re-execution can start. This module answers only "does the
document match?" for the keywords of JSON Schema 2020-12 that ``schemas/`` uses (below), with
jsonschema's semantics, and refuses a schema with any other keyword, so that a schema change
cannot quietly weaken validation. ``ogverify.evidence.schemas.validate`` asks it first and asks
jsonschema only when it says no, for the message; the tests hold both to the same answer on the
shipped fixtures and on thousands of mutated documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

# Keywords that only describe; they never make a document invalid.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default"})


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword this module does not implement."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    # jsonschema counts 1.0 as an integer
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or float(v).is_integer()),
}


def _equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema has it: 1 == 1.0, but true != 1."""
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    if isinstance(one, (list, dict)) or isinstance(two, (list, dict)):
        return False
    return bool(one == two)


class SubsetValidator:
    """``is_valid(document)`` for one schema; raises UnsupportedSchemaError when built on a
    schema that uses a keyword outside the subset."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._root = schema
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._refs: dict[str, Any] = {}
        self._check_supported(schema)

    def is_valid(self, document: Any) -> bool:
        return self._valid(document, self._root)

    def _check_supported(self, schema: Any) -> None:
        if isinstance(schema, bool):
            return
        if not isinstance(schema, dict):
            raise UnsupportedSchemaError(f"a schema must be an object or a boolean, not {schema!r}")
        for key, value in schema.items():
            if key in _ANNOTATIONS:
                if key == "$defs":
                    for sub in value.values():
                        self._check_supported(sub)
                continue
            if key not in _KEYWORDS:
                raise UnsupportedSchemaError(f"keyword {key!r} is not implemented")
            if key in ("properties",):
                for sub in value.values():
                    self._check_supported(sub)
            elif key in ("allOf", "oneOf", "anyOf"):
                for sub in value:
                    self._check_supported(sub)
            elif key in ("items", "additionalProperties", "if", "then", "else"):
                self._check_supported(value)
            elif key == "$ref":
                self._resolve(value)
            elif key == "pattern":
                self._pattern(value)
            elif key == "type" and not all(t in _TYPES for t in ([value] if isinstance(value, str) else value)):
                raise UnsupportedSchemaError(f"type {value!r} is not implemented")

    def _resolve(self, ref: str) -> Any:
        if ref not in self._refs:
            if not ref.startswith("#/"):
                raise UnsupportedSchemaError(f"only local references are implemented, not {ref!r}")
            target: Any = self._root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            self._refs[ref] = target
        return self._refs[ref]

    def _pattern(self, pattern: str) -> re.Pattern[str]:
        if pattern not in self._patterns:
            self._patterns[pattern] = re.compile(pattern)
        return self._patterns[pattern]

    def _valid(self, value: Any, schema: Any) -> bool:
        if schema is True:
            return True
        if schema is False:
            return False
        for key, argument in schema.items():
            check = _KEYWORDS.get(key)
            if check is not None and not check(self, value, argument, schema):
                return False
        return True

    # --- the keywords --------------------------------------------------------------------

    def _type(self, value: Any, types: str | list[str], schema: Any) -> bool:
        return any(_TYPES[t](value) for t in ([types] if isinstance(types, str) else types))

    def _const(self, value: Any, const: Any, schema: Any) -> bool:
        return _equal(value, const)

    def _enum(self, value: Any, choices: list[Any], schema: Any) -> bool:
        return any(_equal(value, choice) for choice in choices)

    def _ref(self, value: Any, ref: str, schema: Any) -> bool:
        return self._valid(value, self._resolve(ref))

    def _all_of(self, value: Any, subs: list[Any], schema: Any) -> bool:
        return all(self._valid(value, sub) for sub in subs)

    def _any_of(self, value: Any, subs: list[Any], schema: Any) -> bool:
        return any(self._valid(value, sub) for sub in subs)

    def _one_of(self, value: Any, subs: list[Any], schema: Any) -> bool:
        return sum(1 for sub in subs if self._valid(value, sub)) == 1

    def _if(self, value: Any, condition: Any, schema: Any) -> bool:
        branch = schema.get("then", True) if self._valid(value, condition) else schema.get("else", True)
        return self._valid(value, branch)

    def _branch(self, value: Any, sub: Any, schema: Any) -> bool:
        return True  # ``then`` and ``else`` are applied by ``if``

    def _properties(self, value: Any, properties: dict[str, Any], schema: Any) -> bool:
        return not isinstance(value, dict) or all(
            self._valid(value[name], sub) for name, sub in properties.items() if name in value
        )

    def _required(self, value: Any, names: list[str], schema: Any) -> bool:
        return not isinstance(value, dict) or all(name in value for name in names)

    def _additional(self, value: Any, sub: Any, schema: Any) -> bool:
        if not isinstance(value, dict):
            return True
        known = schema.get("properties", {})
        return all(self._valid(item, sub) for name, item in value.items() if name not in known)

    def _items(self, value: Any, sub: Any, schema: Any) -> bool:
        return not isinstance(value, list) or all(self._valid(item, sub) for item in value)

    def _min_items(self, value: Any, bound: int, schema: Any) -> bool:
        return not isinstance(value, list) or len(value) >= bound

    def _max_items(self, value: Any, bound: int, schema: Any) -> bool:
        return not isinstance(value, list) or len(value) <= bound

    def _min_length(self, value: Any, bound: int, schema: Any) -> bool:
        return not isinstance(value, str) or len(value) >= bound

    def _max_length(self, value: Any, bound: int, schema: Any) -> bool:
        return not isinstance(value, str) or len(value) <= bound

    def _pattern_check(self, value: Any, pattern: str, schema: Any) -> bool:
        return not isinstance(value, str) or self._pattern(pattern).search(value) is not None

    def _minimum(self, value: Any, bound: float, schema: Any) -> bool:
        return not _is_number(value) or not value < bound

    def _maximum(self, value: Any, bound: float, schema: Any) -> bool:
        return not _is_number(value) or not value > bound

    def _exclusive_minimum(self, value: Any, bound: float, schema: Any) -> bool:
        return not _is_number(value) or not value <= bound

    def _exclusive_maximum(self, value: Any, bound: float, schema: Any) -> bool:
        return not _is_number(value) or not value >= bound


_KEYWORDS: dict[str, Callable[[SubsetValidator, Any, Any, Any], bool]] = {
    "type": SubsetValidator._type,
    "const": SubsetValidator._const,
    "enum": SubsetValidator._enum,
    "$ref": SubsetValidator._ref,
    "allOf": SubsetValidator._all_of,
    "anyOf": SubsetValidator._any_of,
    "oneOf": SubsetValidator._one_of,
    "if": SubsetValidator._if,
    "then": SubsetValidator._branch,
    "else": SubsetValidator._branch,
    "properties": SubsetValidator._properties,
    "required": SubsetValidator._required,
    "additionalProperties": SubsetValidator._additional,
    "items": SubsetValidator._items,
    "minItems": SubsetValidator._min_items,
    "maxItems": SubsetValidator._max_items,
    "minLength": SubsetValidator._min_length,
    "maxLength": SubsetValidator._max_length,
    "pattern": SubsetValidator._pattern_check,
    "minimum": SubsetValidator._minimum,
    "maximum": SubsetValidator._maximum,
    "exclusiveMinimum": SubsetValidator._exclusive_minimum,
    "exclusiveMaximum": SubsetValidator._exclusive_maximum,
}

"""The JSON Schemas shipped in ``schemas/`` and validation against them.

A document is first checked by ``ogverify.evidence.schema_subset`` (fast to import); jsonschema, the
reference, is imported only to describe what is wrong with a document the subset rejects.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ogverify.errors import BundleError
from ogverify.evidence.schema_subset import SubsetValidator

if TYPE_CHECKING:
    import jsonschema


def schema_dir() -> Path:
    """Where the schemas live: inside the installed package, or at the source tree's top."""
    packaged = Path(__file__).parents[1] / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "schemas"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` (e.g. ``manifest-v1.json``)."""
    loaded: dict[str, Any] = json.loads((schema_dir() / name).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _subset(name: str) -> SubsetValidator:
    return SubsetValidator(load_schema(name))


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    import jsonschema

    schema = load_schema(name)
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema)


def validate(document: Any, schema_name: str, what: str) -> None:
    """Validate ``document``; raise a BundleError naming the first offending field and saying,
    in words rather than schema keywords, what is wrong with it."""
    non_finite = _non_finite(document)
    if non_finite is not None:
        where, value = non_finite
        raise BundleError(f"{what} does not match its schema at {where}: {value!r} is not a finite number")
    if _subset(schema_name).is_valid(document):
        return
    errors = sorted(_validator(schema_name).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise BundleError(f"{what} does not match its schema at {where}: {_in_words(first)}")


def _non_finite(value: Any, path: tuple[str, ...] = ()) -> tuple[str, float] | None:
    """The place and value of the first NaN or infinity in ``value`` (TOML has them, JSON not)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "/".join(path) or "(top level)", value
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _non_finite(child, (*path, str(key)))
        if found is not None:
            return found
    return None


_JSON_TYPES = {"object": "a table", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


def _short(value: Any) -> str:
    """``repr(value)`` cut to a length fit for a one-line message (a hostile document may be huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _in_words(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, reworded where it shows schema internals (a regular expression)."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern":
        wanted = schema.get("description", "in the expected form")
        return f"{_short(error.instance)} is not {wanted}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(schema.get("properties", {}))
        unknown = sorted(str(k) for k in error.instance if k not in known)
        close = difflib.get_close_matches(unknown[0], known, n=1) if unknown else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        named = ", ".join(_short(k) for k in unknown[:3])
        if len(unknown) > 3:
            named += f" and {len(unknown) - 3} more"
        return f"unknown key {named}{hint}; known keys: {', '.join(known)}" if known else f"unknown key {named}"
    if error.validator == "type" and isinstance(error.validator_value, str):
        return f"{_short(error.instance)} is not {_JSON_TYPES.get(error.validator_value, error.validator_value)}"
    return error.message[:200]

"""The JSON Schemas shipped in ``schemas/`` and validation against them."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from ogverify.errors import BundleError


def schema_dir() -> Path:
    """Where the schemas live: inside the installed package, or at the source tree's top."""
    packaged = Path(__file__).parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "schemas"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` (e.g. ``manifest-v1.json``)."""
    loaded: dict[str, Any] = json.loads((schema_dir() / name).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema)


def validate(document: Any, schema_name: str, what: str) -> None:
    """Validate ``document``; raise a BundleError naming the first offending field."""
    errors = sorted(_validator(schema_name).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise BundleError(f"{what} does not match its schema at {where}: {first.message[:200]}")

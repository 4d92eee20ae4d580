"""The JSON Schemas shipped in ``schemas/`` and validation against them.

A document is first checked by ``ogverify.evidence.schema_subset`` (fast to import); jsonschema, the
reference, is imported only to describe what is wrong with a document the subset rejects.
"""

from __future__ import annotations

import functools
import json
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
    """Validate ``document``; raise a BundleError naming the first offending field."""
    if _subset(schema_name).is_valid(document):
        return
    errors = sorted(_validator(schema_name).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise BundleError(f"{what} does not match its schema at {where}: {first.message[:200]}")

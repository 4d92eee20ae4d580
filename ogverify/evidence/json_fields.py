"""``to_json`` for the frozen dataclasses whose JSON object is simply their fields."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class JsonFields:
    """A value whose ``to_json`` is its fields by name, in the order declared.

    Bytes are written as hex and tuples as lists (what ``json`` writes for a tuple); every other
    field is written as it is, so each must already be JSON.
    """

    def to_json(self) -> dict[str, Any]:
        return {item.name: _plain(getattr(self, item.name)) for item in fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value

"""Canonical (RFC 8785) JSON for bytes we hash or sign, and a strict parser for bytes we read.

The strict parser rejects what a lenient one would silently accept and an attacker could use
to make two readers disagree: duplicate keys, NaN/Infinity literals, and excessive nesting.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from ogverify.errors import BundleError

MAX_NESTING = 64


def dumps(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON bytes."""
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValueError(f"value cannot be written as canonical JSON: {exc}") from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BundleError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BundleError(f"JSON number {text[:40]} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise BundleError(f"JSON literal {name} is not allowed")


def _nesting_depth(value: Any) -> int:
    """How deeply parsed JSON nests its arrays and objects (a scalar: 0), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def loads_strict(raw: bytes, what: str) -> Any:
    """Parse untrusted JSON bytes, naming ``what`` in any error.

    Raises:
        BundleError: not UTF-8, not JSON, duplicate keys, NaN/Infinity, or nested too deep.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{what} is not UTF-8 text") from exc
    try:
        value = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except BundleError as exc:
        raise BundleError(f"{what}: {exc.message}") from exc
    except RecursionError as exc:  # nested far deeper still: the parser ran out of stack
        raise _nested_too_deep(what) from exc
    except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
        raise BundleError(f"{what} is not valid JSON: {exc}") from exc
    # Counted on the parsed value: a walk over the containers, not over every character of the text.
    if _nesting_depth(value) > MAX_NESTING:
        raise _nested_too_deep(what)
    return value


def _nested_too_deep(what: str) -> BundleError:
    return BundleError(f"{what} is nested deeper than {MAX_NESTING} levels")


def is_canonical(raw: bytes, value: Any) -> bool:
    """True when ``raw`` is exactly the canonical serialisation of ``value``."""
    try:
        return dumps(value) == raw
    except ValueError:
        return False

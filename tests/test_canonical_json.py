"""RFC 8785 canonical JSON out; a strict parser in that refuses what lenient parsers let through."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ogverify.errors import BundleError, ExitCode
from ogverify.evidence.canonical_json import MAX_NESTING, dumps, is_canonical, loads_strict

# --- dumps ---------------------------------------------------------------------------------------------


def test_keys_sorted_and_no_whitespace() -> None:
    value = {"b": [1, 2, {"z": True, "y": None}], "a": {"d": "x", "c": False}, "A": 0}
    assert dumps(value) == b'{"A":0,"a":{"c":false,"d":"x"},"b":[1,2,{"y":null,"z":true}]}'


def test_keys_sorted_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB33 in UTF-16 although its code point is larger.
    value = {"\ufb33": 1, "\U0001f600": 2, "\u20ac": 3, "\r": 4, "1": 5, "\u0080": 6}
    encoded = dumps(value)
    order = list(json.loads(encoded))
    assert order == ["\r", "1", "\u0080", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (0.0, b"0"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (123.456, b"123.456"),
        (0.1, b"0.1"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
        (333333333.33333329, b"333333333.3333333"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e+308"),
        (-1.5, b"-1.5"),
        (42, b"42"),
        (-7, b"-7"),
    ],
)
def test_number_forms(number: float, text: bytes) -> None:
    assert dumps(number) == text
    assert dumps([number]) == b"[" + text + b"]"


@pytest.mark.parametrize(
    ("string", "text"),
    [
        ("é€", '"é€"'.encode()),
        ("\U0001f600", '"\U0001f600"'.encode()),
        ("line\nbreak\ttab", b'"line\\nbreak\\ttab"'),
        ("\u001f\u0000", b'"\\u001f\\u0000"'),
        ('quote " and \\', b'"quote \\" and \\\\"'),
        ("/", b'"/"'),
        ("\u007f", b'"\x7f"'),
    ],
)
def test_string_escapes(string: str, text: bytes) -> None:
    assert dumps(string) == text


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), float("-inf"), {"x": float("nan")}, {1: "int key"}, b"raw"]
)
def test_dumps_refuses_values_without_a_canonical_form(bad: Any) -> None:
    with pytest.raises(ValueError, match="cannot be written as canonical JSON"):
        dumps(bad)


def test_dumps_is_independent_of_insertion_order() -> None:
    assert dumps({"x": 1, "y": {"b": 2, "a": 1}}) == dumps({"y": {"a": 1, "b": 2}, "x": 1})


# --- loads_strict --------------------------------------------------------------------------------------


def expect_error(raw: bytes, message: str) -> None:
    with pytest.raises(BundleError) as info:
        loads_strict(raw, "manifest.json")
    assert info.value.exit_code == ExitCode.CANNOT_VERIFY
    assert info.value.message.startswith("manifest.json")
    assert message in info.value.message, info.value.message


def test_loads_strict_parses_plain_json() -> None:
    assert loads_strict(b'{"a": [1, 2.5, "x", null, true], "b": {}}', "doc") == {
        "a": [1, 2.5, "x", None, True],
        "b": {},
    }


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"a": 1, "a": 2}', "'a'"),
        (b'{"a": 1, "b": {"c": 1, "c": 1}}', "'c'"),
        (b'[{"k": 1}, {"k": 2, "k": 3}]', "'k'"),
        (b'{"\\u0061": 1, "a": 2}', "'a'"),
    ],
)
def test_loads_strict_rejects_duplicate_keys(raw: bytes, key: str) -> None:
    expect_error(raw, f"manifest.json: duplicate JSON key {key}")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_loads_strict_rejects_non_finite_literals(literal: str) -> None:
    expect_error(f'{{"rtol": {literal}}}'.encode(), f"manifest.json: JSON literal {literal} is not allowed")


def test_loads_strict_nesting_limit() -> None:
    at_limit = b"[" * MAX_NESTING + b"]" * MAX_NESTING
    assert loads_strict(at_limit, "doc") is not None
    objects = b'{"a":' * MAX_NESTING + b"1" + b"}" * MAX_NESTING
    assert loads_strict(objects, "doc") is not None
    over = b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1)
    expect_error(over, f"manifest.json is nested deeper than {MAX_NESTING} levels")


def test_loads_strict_deep_nesting_far_over_the_limit_is_an_error_not_a_crash() -> None:
    expect_error(b"[" * 100000, "nested deeper than 64 levels")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"s": "[" * 200 + '\\"{' * 100}).encode()
    assert loads_strict(text, "doc") == {"s": "[" * 200 + '\\"{' * 100}


@pytest.mark.parametrize("raw", [b'{"a": "\xff"}', b"\xfe\xff\x00{\x00}", b'{"a": "\xc3"}'])
def test_loads_strict_rejects_non_utf8(raw: bytes) -> None:
    expect_error(raw, "manifest.json is not UTF-8 text")


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": 1,}', b"{'a': 1}", b"[1] [2]", b"\xef\xbb\xbf{}", b"01"])
def test_loads_strict_rejects_invalid_json(raw: bytes) -> None:
    expect_error(raw, "manifest.json is not valid JSON")


def test_loads_strict_rejects_integers_longer_than_pythons_digit_limit() -> None:
    expect_error(b'{"size": ' + b"9" * 5000 + b"}", "manifest.json is not valid JSON")


# --- is_canonical --------------------------------------------------------------------------------------


def test_is_canonical_true_for_dumps_output() -> None:
    value = {"z": [1.5, 1e21, "é"], "a": {"n": None}}
    raw = dumps(value)
    assert is_canonical(raw, value)
    assert is_canonical(raw, loads_strict(raw, "doc"))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1}',
        b'{"b":1,"a":2}',
        b'{"a":1.0}',
        b'{"a":1}\n',
        b'{"a":"\\u00e9"}',
        b'{"a":1E+2}',
    ],
)
def test_is_canonical_false_for_other_serialisations(raw: bytes) -> None:
    value = loads_strict(raw, "doc")
    assert not is_canonical(raw, value)
    assert is_canonical(dumps(value), value)


def test_is_canonical_false_when_value_has_no_canonical_form() -> None:
    assert not is_canonical(b"NaN", float("nan"))


def test_loads_strict_refuses_numbers_that_overflow_to_infinity() -> None:
    with pytest.raises(BundleError, match="out of range"):
        loads_strict(b'{"a": 1e400}', "doc")

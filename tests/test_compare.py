"""ComparisonSpec parsing and compare_output's pass rules, exactly as compare.py's docstring states them."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ogverify.errors import ExitCode, UsageError
from ogverify.evidence.comparison import ComparisonSpec, OutputComparison
from ogverify.model.compare import compare_output, ulp_distance

F32 = np.float32
F64 = np.float64
MODES = ["exact", "ulp:1000000", "allclose:1e9,1e9", "topk:1"]


def arr(values: Any, dtype: Any = F32) -> npt.NDArray[Any]:
    return np.array(values, dtype=dtype)


def step(values: npt.NDArray[Any], n: int) -> npt.NDArray[Any]:
    """``values`` moved ``n`` representable floats towards +inf."""
    out = values.copy()
    for _ in range(n):
        out = np.nextafter(out, np.array(np.inf, dtype=values.dtype))
    return out


def cmp(claimed: npt.NDArray[Any], reproduced: npt.NDArray[Any], spec: str) -> OutputComparison:
    return compare_output("y", claimed, reproduced, ComparisonSpec.parse(spec))


def assert_json_safe(result: OutputComparison) -> None:
    for value in (result.max_abs_diff, result.max_rel_diff):
        assert value is not None
        assert math.isfinite(value), result
    json.dumps(result.to_json(), allow_nan=False)


# --- ComparisonSpec.parse --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exact", ComparisonSpec("exact")),
        ("  exact ", ComparisonSpec("exact")),
        ("ulp:0", ComparisonSpec("ulp", ulp=0)),
        ("ulp:4", ComparisonSpec("ulp", ulp=4)),
        ("allclose:1e-3,1e-5", ComparisonSpec("allclose", rtol=1e-3, atol=1e-5)),
        ("allclose:0,0", ComparisonSpec("allclose", rtol=0.0, atol=0.0)),
        ("allclose:0.5,2", ComparisonSpec("allclose", rtol=0.5, atol=2.0)),
        ("topk:1", ComparisonSpec("topk", k=1)),
        ("topk:5", ComparisonSpec("topk", k=5)),
    ],
)
def test_parse_valid_forms(text: str, expected: ComparisonSpec) -> None:
    assert ComparisonSpec.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fuzzy",
        "EXACT",
        "exact:3",
        "ulp",
        "ulp:",
        "ulp:-1",
        "ulp:1.5",
        "ulp:many",
        "allclose",
        "allclose:",
        "allclose:1e-3",
        "allclose:1e-3,1e-5,1",
        "allclose:x,1e-5",
        "allclose:-1e-3,0",
        "allclose:0,-1e-5",
        "allclose:nan,0",
        "allclose:0,inf",
        "topk",
        "topk:0",
        "topk:-2",
        "topk:two",
        "decimal",
        "decimal:",
        "decimal:1,x",
        "decimal:1,,2",
        "decimal:77",
    ],
)
def test_parse_invalid_forms_raise_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        ComparisonSpec.parse(text)
    assert info.value.exit_code == ExitCode.USAGE
    assert f"invalid comparison {text!r}" in info.value.message
    assert "exact, ulp:N, allclose:RTOL,ATOL, topk:K or decimal:D[,D...]" in info.value.message


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("exact", "exact"),
        ("ulp:7", "ulp:7"),
        ("allclose:1e-3,1e-5", "allclose:0.001,1e-05"),
        ("allclose:0,0", "allclose:0,0"),
        ("topk:3", "topk:3"),
    ],
)
def test_str_is_parseable_and_short(text: str, shown: str) -> None:
    spec = ComparisonSpec.parse(text)
    assert str(spec) == shown
    assert ComparisonSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    "spec",
    [
        ComparisonSpec("allclose", rtol=1.2345678e-3, atol=1e-7),
        ComparisonSpec("allclose", rtol=1 / 3, atol=0.1 + 0.2),
        ComparisonSpec("allclose", rtol=1e-300, atol=123456789.0),
    ],
)
def test_str_round_trips_tolerances_that_g_format_would_round(spec: ComparisonSpec) -> None:
    assert ComparisonSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("spec", "expected_json"),
    [
        (ComparisonSpec("exact"), {"mode": "exact"}),
        (ComparisonSpec("ulp", ulp=3), {"mode": "ulp", "ulp": 3}),
        (ComparisonSpec("allclose", rtol=1e-3, atol=1e-5), {"mode": "allclose", "rtol": 1e-3, "atol": 1e-5}),
        (ComparisonSpec("topk", k=2), {"mode": "topk", "k": 2}),
    ],
)
def test_to_json_from_json_round_trip(spec: ComparisonSpec, expected_json: dict[str, Any]) -> None:
    assert spec.to_json() == expected_json
    assert ComparisonSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


# --- exact ---------------------------------------------------------------------------------------------


def test_exact_identical_floats_pass() -> None:
    values = arr([[1.5, -2.0, 0.0], [np.inf, 3e-40, 7.0]])
    result = cmp(values, values.copy(), "exact")
    assert result.passed
    assert result.bitwise_equal
    assert result.reason == "bitwise equal"
    assert result.elements == 6
    assert result.elements_differing == 0
    assert result.max_ulp == 0
    assert result.max_abs_diff == 0.0
    assert result.claimed_type == result.reproduced_type == "float32[2,3]"


def test_exact_fails_on_one_ulp_and_counts_the_element() -> None:
    claimed = arr([1.0, 2.0, 3.0])
    reproduced = claimed.copy()
    reproduced[1] = np.nextafter(F32(2.0), F32(3.0))
    result = cmp(claimed, reproduced, "exact")
    assert not result.passed
    assert not result.bitwise_equal
    assert result.elements_differing == 1
    assert result.max_ulp == 1
    assert result.reason.startswith("1 of 3 elements differ bitwise")


def test_negative_zero_is_not_exact_but_is_zero_ulp() -> None:
    claimed, reproduced = arr([0.0, 1.0]), arr([-0.0, 1.0])
    exact = cmp(claimed, reproduced, "exact")
    assert not exact.passed
    assert not exact.bitwise_equal
    assert exact.elements_differing == 1
    assert exact.reason.startswith("1 of 2 elements differ bitwise")
    assert exact.max_ulp == 0
    assert exact.max_abs_diff == 0.0
    ulp = cmp(claimed, reproduced, "ulp:0")
    assert ulp.passed, ulp.reason
    assert ulp.max_ulp == 0
    assert cmp(claimed, reproduced, "allclose:0,0").passed


# --- ulp:N ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, F32, F64])
@pytest.mark.parametrize("n", [1, 3, 8])
def test_ulp_boundaries(dtype: Any, n: int) -> None:
    claimed = arr([1.0, -2.5, 1e-3, 0.0, 100.0, -0.0], dtype)
    spec = f"ulp:{n}"
    below, at, above = cmp(claimed, step(claimed, n - 1), spec), cmp(claimed, step(claimed, n), spec), cmp(
        claimed, step(claimed, n + 1), spec
    )
    assert below.passed and below.max_ulp == n - 1, below.reason
    assert at.passed and at.max_ulp == n, at.reason
    assert at.reason == f"max ULP distance {n} <= {n}"
    assert not above.passed
    assert above.max_ulp == n + 1
    assert above.reason == f"max ULP distance {n + 1} > {n}"
    assert above.elements_differing == 6


def test_ulp_is_symmetric_in_claimed_and_reproduced() -> None:
    claimed = arr([1.0, -3.0, 1e-20])
    reproduced = step(claimed, 5)
    assert cmp(claimed, reproduced, "ulp:5").passed
    assert cmp(reproduced, claimed, "ulp:5").passed
    assert not cmp(reproduced, claimed, "ulp:4").passed


def test_ulp_distance_across_zero() -> None:
    smallest = np.nextafter(F32(0), F32(1))
    assert ulp_distance(arr([smallest]), arr([-smallest])).tolist() == [2]
    assert ulp_distance(arr([-0.0]), arr([0.0])).tolist() == [0]
    assert ulp_distance(arr([-smallest]), arr([0.0])).tolist() == [1]
    assert ulp_distance(arr([1.0]), arr([-1.0])).tolist() == [2 * 0x3F800000]
    assert ulp_distance(arr([1.0], F64), arr([-1.0], F64)).tolist() == [2 * 0x3FF0000000000000]
    assert ulp_distance(arr([1.0], np.float16), arr([-1.0], np.float16)).tolist() == [2 * 0x3C00]


def test_ulp_distance_huge_opposite_float64_does_not_overflow() -> None:
    biggest = np.finfo(F64).max
    distance = ulp_distance(arr([biggest, np.inf], F64), arr([-biggest, -np.inf], F64))
    assert distance.dtype == np.uint64
    assert distance.tolist() == [2 * 0x7FEFFFFFFFFFFFFF, 2 * 0x7FF0000000000000]
    same_sign = ulp_distance(arr([biggest], F64), arr([np.inf], F64))
    assert same_sign.tolist() == [1]


def test_ulp_distance_matches_nextafter_steps_for_float16() -> None:
    values = arr([-1.0, -1e-4, 0.0, 0.5, 60000.0], np.float16)
    assert ulp_distance(values, step(values, 7)).tolist() == [7] * 5


# --- allclose ------------------------------------------------------------------------------------------


def test_allclose_uses_claimed_as_reference_asymmetric_case() -> None:
    # rtol 0.125: claimed 8 allows |diff| <= 1; claimed 9.0625 allows |diff| <= 1.1328125.
    small, large = arr([8.0], F64), arr([9.0625], F64)
    forward = cmp(small, large, "allclose:0.125,0")
    backward = cmp(large, small, "allclose:0.125,0")
    assert not forward.passed
    assert forward.reason == "1 of 1 elements outside atol + rtol*|claimed| (atol=0, rtol=0.125)"
    assert backward.passed, backward.reason
    assert backward.reason.startswith("all elements within atol + rtol*|claimed|")


def test_allclose_boundary_is_inclusive() -> None:
    assert cmp(arr([8.0], F64), arr([9.0], F64), "allclose:0.125,0").passed
    assert cmp(arr([0.0], F64), arr([0.5], F64), "allclose:0,0.5").passed
    assert not cmp(arr([0.0], F64), arr([0.5000001], F64), "allclose:0,0.5").passed
    assert cmp(arr([8.0], F64), arr([9.25], F64), "allclose:0.125,0.25").passed
    assert not cmp(arr([8.0], F64), arr([9.2500001], F64), "allclose:0.125,0.25").passed


def test_allclose_agrees_with_numpy_isclose_with_claimed_as_b() -> None:
    rng = np.random.default_rng(7)
    claimed = rng.standard_normal(2000).astype(F32)
    reproduced = (claimed + rng.standard_normal(2000) * 1e-3).astype(F32)
    rtol, atol = 1e-3, 1e-4
    outside = int(np.count_nonzero(~np.isclose(reproduced.astype(F64), claimed.astype(F64), rtol=rtol, atol=atol)))
    assert outside > 0
    result = cmp(claimed, reproduced, f"allclose:{rtol},{atol}")
    assert not result.passed
    assert result.reason.startswith(f"{outside} of 2000 elements outside")


# --- NaN and inf ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["exact", "ulp:0", "allclose:0,0", "topk:1"])
def test_nan_equals_nan(spec: str) -> None:
    values = arr([[np.nan, 1.0], [2.0, np.nan]])
    result = cmp(values, values.copy(), spec)
    assert result.passed, result.reason
    assert result.nan_mismatches == 0
    assert_json_safe(result)


def test_nan_with_other_payload_matches_under_ulp_and_allclose_but_not_exact() -> None:
    claimed = np.array([0x7FC00000], dtype=np.uint32).view(F32)
    reproduced = np.array([0x7FC00001], dtype=np.uint32).view(F32)
    assert np.isnan(reproduced[0])
    assert not cmp(claimed, reproduced, "exact").passed
    ulp = cmp(claimed, reproduced, "ulp:0")
    assert ulp.passed, ulp.reason
    assert ulp.max_ulp == 0
    assert cmp(claimed, reproduced, "allclose:0,0").passed


@pytest.mark.parametrize("spec", ["ulp:1000000000000", "allclose:1e30,1e30", "topk:2"])
@pytest.mark.parametrize("nan_side", ["claimed", "reproduced"])
def test_nan_matches_only_nan(spec: str, nan_side: str) -> None:
    with_nan, without = arr([[np.nan, 1.0, 0.5]]), arr([[1.0, 1.0, 0.5]])
    claimed, reproduced = (with_nan, without) if nan_side == "claimed" else (without, with_nan)
    result = cmp(claimed, reproduced, spec)
    assert not result.passed
    assert result.nan_mismatches == 1
    assert result.inf_mismatches == 0
    assert "NaN mismatches 1, inf mismatches 0" in result.reason
    assert_json_safe(result)


@pytest.mark.parametrize("spec", ["ulp:0", "allclose:0,0"])
def test_inf_matches_same_sign_inf(spec: str) -> None:
    values = arr([np.inf, -np.inf, 2.0])
    result = cmp(values, values.copy(), spec)
    assert result.passed, result.reason
    assert result.inf_mismatches == 0
    assert_json_safe(result)


@pytest.mark.parametrize("spec", ["ulp:10000000000", "allclose:1e30,1e30"])
def test_inf_does_not_match_opposite_inf(spec: str) -> None:
    result = cmp(arr([np.inf, 1.0]), arr([-np.inf, 1.0]), spec)
    assert not result.passed
    assert result.inf_mismatches == 1
    assert "inf mismatches 1" in result.reason


def test_inf_next_to_float_max_is_one_ulp_but_still_fails() -> None:
    biggest = np.finfo(F32).max
    result = cmp(arr([np.inf]), arr([biggest]), "ulp:5")
    assert result.max_ulp == 1
    assert not result.passed
    assert result.inf_mismatches == 1
    assert result.reason == "max ULP distance 1 <= 5; NaN mismatches 0, inf mismatches 1"
    assert not cmp(arr([biggest]), arr([np.inf]), "allclose:1e30,1e30").passed


def test_nan_and_inf_mismatch_counts() -> None:
    claimed = arr([np.nan, np.inf, 1.0, -np.inf, np.nan, np.inf, 4.0])
    reproduced = arr([1.0, -np.inf, np.nan, -np.inf, np.nan, 3.0, np.inf])
    result = cmp(claimed, reproduced, "allclose:1,1")
    assert not result.passed
    assert result.nan_mismatches == 2
    assert result.inf_mismatches == 3
    assert "NaN mismatches 2, inf mismatches 3" in result.reason
    assert_json_safe(result)


# --- types and non-float outputs -----------------------------------------------------------------------


@pytest.mark.parametrize("spec", MODES)
@pytest.mark.parametrize(
    ("claimed", "reproduced", "reason"),
    [
        (arr([1.0, 2.0]), arr([1.0, 2.0], F64), "type differs: claimed float32[2], reproduced float64[2]"),
        (arr([[1.0, 2.0, 3.0]]), arr([[1.0], [2.0], [3.0]]),
         "type differs: claimed float32[1,3], reproduced float32[3,1]"),
        (arr([1, 2], np.int64), arr([1, 2], np.int32), "type differs: claimed int64[2], reproduced int32[2]"),
        (arr([1.0, 2.0]), arr([1, 2], np.int64), "type differs: claimed float32[2], reproduced int64[2]"),
        (arr(["a"], np.str_), arr([1], np.int64), "type differs: claimed string[1], reproduced int64[1]"),
    ],
)
def test_dtype_or_shape_mismatch_fails(
    spec: str, claimed: npt.NDArray[Any], reproduced: npt.NDArray[Any], reason: str
) -> None:
    result = cmp(claimed, reproduced, spec)
    assert not result.passed
    assert result.reason == reason
    assert not result.bitwise_equal
    assert result.max_ulp is None
    assert result.max_abs_diff is None


@pytest.mark.parametrize("spec", MODES)
@pytest.mark.parametrize(
    ("claimed", "reproduced", "type_name"),
    [
        (arr([1, 2, 3], np.int64), arr([1, 2, 4], np.int64), "int64[3]"),
        (arr([7, 8, 9], np.uint8), arr([7, 8, 10], np.uint8), "uint8[3]"),
        (arr([True, False, True], np.bool_), arr([True, False, False], np.bool_), "bool[3]"),
        (arr(["cat", "dog", "bird"], np.str_), arr(["cat", "dog", "bard"], np.str_), "string[3]"),
    ],
)
def test_non_float_outputs_compare_exactly_under_every_mode(
    spec: str, claimed: npt.NDArray[Any], reproduced: npt.NDArray[Any], type_name: str
) -> None:
    different = cmp(claimed, reproduced, spec)
    assert not different.passed
    assert different.reason == "1 of 3 values differ"
    assert different.elements_differing == 1
    assert different.claimed_type == type_name
    assert different.max_ulp is None
    assert different.argmax_flips is None
    same = cmp(claimed, claimed.copy(), spec)
    assert same.passed
    assert same.reason == "values equal"
    assert same.bitwise_equal


# --- topk and argmax -----------------------------------------------------------------------------------


def test_topk_ignores_order_within_top_k() -> None:
    claimed = arr([[0.1, 0.5, 0.3, 0.05], [0.7, 0.1, 0.1, 0.1]])
    reproduced = arr([[0.1, 0.3, 0.5, 0.05], [0.6, 0.2, 0.1, 0.1]])
    result = cmp(claimed, reproduced, "topk:2")
    assert result.passed, result.reason
    assert result.reason == "top-2 classes unchanged"
    assert result.topk_changes == 0
    assert result.argmax_flips == 1
    assert not cmp(claimed, reproduced, "exact").passed
    assert not cmp(claimed, reproduced, "topk:1").passed


def test_topk_fails_when_the_set_changes() -> None:
    claimed = arr([[0.1, 0.5, 0.3, 0.05], [0.7, 0.1, 0.15, 0.05], [0.25, 0.25, 0.3, 0.2]])
    reproduced = arr([[0.4, 0.5, 0.3, 0.05], [0.7, 0.1, 0.15, 0.05], [0.25, 0.25, 0.3, 0.2]])
    result = cmp(claimed, reproduced, "topk:2")
    assert not result.passed
    assert result.topk_changes == 1
    assert result.reason == "top-2 classes changed in 1 row(s)"
    assert result.argmax_flips == 0


def test_topk_rows_are_along_the_last_axis_of_any_rank() -> None:
    claimed = np.zeros((2, 3, 5), dtype=F32)
    claimed[..., 0] = 1.0
    reproduced = claimed.copy()
    reproduced[1, 2, 4] = 2.0
    reproduced[0, 1, 3] = 0.5
    result = cmp(claimed, reproduced, "topk:1")
    assert result.topk_changes == 1
    assert result.argmax_flips == 1
    assert not result.passed


def test_topk_with_k_over_class_count_compares_the_whole_row() -> None:
    claimed = arr([[0.1, 0.9, 0.5]])
    reproduced = arr([[0.9, 0.1, 0.2]])
    result = cmp(claimed, reproduced, "topk:10")
    assert result.passed, result.reason
    assert result.topk_changes == 0


def test_topk_with_nan_mismatch_fails_and_says_why() -> None:
    result = cmp(arr([[0.1, 0.9, np.nan]]), arr([[0.1, 0.9, 0.2]]), "topk:1")
    assert not result.passed
    assert result.reason == "top-1 classes unchanged; NaN mismatches 1, inf mismatches 0"


def test_argmax_flips_count() -> None:
    claimed = arr([[1, 2, 3], [3, 2, 1], [0, 5, 1], [4, 4, 9]])
    reproduced = arr([[1, 3, 2], [3, 2, 1], [5, 0, 1], [4, 4, 9]])
    result = cmp(claimed, reproduced, "allclose:1e9,1e9")
    assert result.argmax_flips == 2
    assert result.passed


def test_argmax_flips_absent_without_a_class_axis() -> None:
    assert cmp(arr([[1.0], [2.0]]), arr([[1.0], [2.0]]), "exact").argmax_flips is None
    assert cmp(arr(3.0), arr(3.0), "exact").argmax_flips is None
    assert cmp(arr(3.0), arr(4.0), "topk:1").topk_changes is None
    assert not cmp(arr(3.0), arr(4.0), "topk:1").passed


# --- metrics -------------------------------------------------------------------------------------------


def test_metrics_on_a_known_float64_example() -> None:
    claimed = arr([1.0, 2.0, -4.0], F64)
    reproduced = arr([1.0, 2.5, -3.0], F64)
    result = cmp(claimed, reproduced, "exact")
    assert result.max_abs_diff == 1.0
    assert result.max_rel_diff == 0.25
    # 2 → 2.5 is 0.5 / 2**-51 = 2**50 ULP; -4 → -3 is 1 / 2**-51 = 2**51 ULP.
    assert result.max_ulp == 2**51
    assert result.elements_differing == 2
    assert result.elements == 3


def test_metrics_on_a_known_float32_example() -> None:
    claimed = arr([1.0, 4.0])
    reproduced = arr([np.nextafter(F32(1), F32(2)), 4.0])
    result = cmp(claimed, reproduced, "ulp:1")
    assert result.passed
    assert result.max_ulp == 1
    assert result.max_abs_diff == 2.0**-23
    assert result.max_rel_diff == 2.0**-23


def test_float16_support() -> None:
    claimed = arr([1.0, 2.0, -0.5], np.float16)
    reproduced = step(claimed, 1)
    assert cmp(claimed, reproduced, "ulp:1").passed
    failed = cmp(claimed, reproduced, "ulp:0")
    assert not failed.passed
    assert failed.max_ulp == 1
    assert failed.max_abs_diff == 2.0**-9
    assert failed.claimed_type == "float16[3]"
    assert cmp(claimed, reproduced, "allclose:1e-3,0").passed
    assert not cmp(claimed, reproduced, "allclose:1e-4,0").passed


def test_float32_extremes_give_json_safe_metrics() -> None:
    result = cmp(arr([3e38, 1.0]), arr([-3e38, 1.0]), "ulp:1")
    assert not result.passed
    assert_json_safe(result)
    assert result.max_abs_diff == pytest.approx(6e38, rel=1e-6)
    assert result.max_rel_diff == pytest.approx(2.0)
    assert result.max_ulp is not None and result.max_ulp > 2**31


@pytest.mark.parametrize("spec", ["exact", "ulp:1", "allclose:1,1", "topk:1"])
def test_float64_extremes_give_json_safe_metrics(spec: str) -> None:
    biggest = np.finfo(F64).max
    result = cmp(arr([biggest, -biggest], F64), arr([-biggest, biggest], F64), spec)
    assert not result.passed
    assert_json_safe(result)
    assert result.max_abs_diff == biggest
    assert result.max_ulp == 2 * 0x7FEFFFFFFFFFFFFF


def test_metrics_are_json_safe_with_nan_and_inf_in_claimed() -> None:
    claimed = arr([np.nan, np.inf, -np.inf, 0.0, 1e-45])
    result = cmp(claimed, claimed.copy(), "ulp:0")
    assert result.passed
    assert result.max_abs_diff == 0.0
    assert result.max_rel_diff == 0.0
    assert_json_safe(result)


def test_relative_difference_against_zero_is_finite() -> None:
    result = cmp(arr([0.0], F64), arr([1e300], F64), "allclose:0,0")
    assert not result.passed
    assert_json_safe(result)


def test_empty_outputs_compare_equal() -> None:
    result = cmp(np.zeros((0, 4), F32), np.zeros((0, 4), F32), "ulp:0")
    assert result.passed
    assert result.elements == 0
    assert result.max_ulp == 0
    assert_json_safe(result)


def test_to_json_names_the_comparison() -> None:
    result = cmp(arr([1.0]), arr([1.0]), "allclose:1e-3,1e-5")
    document = result.to_json()
    assert document["comparison"] == "allclose:0.001,1e-05"
    assert document["name"] == "y"
    assert document["passed"] is True
    assert set(document) >= {"max_abs_diff", "max_rel_diff", "max_ulp", "nan_mismatches", "inf_mismatches"}


@pytest.mark.parametrize(
    "text", ["exact:", "ulp:+3", "ulp: 3", "ulp:1_000", "topk:+1", "allclose:-0,1", "allclose:1_0,0"]
)
def test_parse_refuses_loose_number_forms(text: str) -> None:
    with pytest.raises(UsageError, match="invalid comparison"):
        ComparisonSpec.parse(text)


def test_error_statistics_on_a_known_example() -> None:
    from ogverify.model.compare import error_statistics

    claimed = np.array([1.0, 2.0, 0.0, -4.0], dtype=np.float32)
    reproduced = np.array([1.0, 2.5, -0.0, -4.0], dtype=np.float32)
    stats = error_statistics(claimed, reproduced)
    assert stats.mean_abs == pytest.approx(0.125)
    assert stats.min_atol == pytest.approx(0.5)
    assert stats.min_rtol == pytest.approx(0.25)
    assert stats.signed_zero_mismatches == 1
    assert stats.fraction_differing == pytest.approx(0.5)
    signal, noise = 1 + 4 + 0 + 16, 0.25
    assert stats.sqnr_db == pytest.approx(10 * math.log10(signal / noise))
    assert stats.cosine is not None and 0.99 < stats.cosine < 1.0
    same = error_statistics(claimed, claimed.copy())
    assert same.sqnr_db is None and same.min_atol == 0 and same.cosine == pytest.approx(1.0)


def test_min_rtol_is_none_when_a_zero_claim_differs() -> None:
    from ogverify.model.compare import error_statistics

    stats = error_statistics(np.array([0.0, 1.0], np.float32), np.array([1e-3, 1.0], np.float32))
    assert stats.min_rtol is None
    assert stats.min_atol == pytest.approx(1e-3)


@pytest.mark.parametrize("spec", ["exact", "ulp:2", "allclose:1e-3,1e-5", "topk:2"])
@pytest.mark.parametrize("values", [[[1.5, -0.0, 3.0]], [[np.nan, 2.0, np.inf]], [[0.0, 0.0, 0.0]]])
def test_identical_fast_path_agrees_with_the_full_computation(spec: str, values: list[list[float]]) -> None:
    from ogverify.model.compare import _compare_floats

    array = np.array(values, dtype=np.float32)
    parsed = ComparisonSpec.parse(spec)
    fast = compare_output("y", array, array.copy(), parsed).to_json()
    full = _compare_floats("y", array, array.copy(), parsed, True).to_json()
    # The full computation's cosine of identical vectors is 1 up to rounding.
    assert fast["statistics"].pop("cosine") == pytest.approx(full["statistics"].pop("cosine"))
    assert fast == full


def test_output_comparison_round_trips_through_json() -> None:
    from ogverify.evidence.comparison import OutputComparison

    claimed = np.array([[1.0, 2.0, np.nan]], np.float32)
    reproduced = np.array([[1.0, 2.5, np.nan]], np.float32)
    for spec in ("exact", "ulp:3", "allclose:0.001,1e-05", "topk:1"):
        comparison = compare_output("y", claimed, reproduced, ComparisonSpec.parse(spec))
        assert OutputComparison.from_json(json.loads(json.dumps(comparison.to_json()))) == comparison


def test_bitwise_equal_is_tobytes_equality() -> None:
    from ogverify.model.compare import bitwise_equal

    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    pairs = [
        (base, base.copy()), (base, base + 1), (base[:, ::2], np.ascontiguousarray(base[:, ::2])),
        (base.T, base.T.copy()), (np.array([np.nan], np.float32), np.array([np.nan], np.float32)),
        (np.array([0.0]), np.array([-0.0])), (np.arange(7, dtype=np.uint8), np.arange(7, dtype=np.uint8)),
        (np.array(["a", "bc"]), np.array(["a", "bd"])), (np.array(["x"], dtype=object), np.array(["x"], dtype=object)),
        (np.zeros(0, np.float32), np.zeros(0, np.float32)),
    ]
    for one, other in pairs:
        assert bitwise_equal(one, other) == (one.tobytes() == other.tobytes())

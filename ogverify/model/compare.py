"""Comparing claimed outputs with reproduced ones: the pass rules and the numbers behind them.

Pass rules (``claimed`` is c, ``reproduced`` is r, element-wise):

- ``exact``: same dtype, same shape, same bytes.
- ``ulp:N``: floats only; the distance in units in the last place between c and r is at most N
  (+0 and -0 are 0 apart; NaN matches only NaN; ±inf match only themselves).
- ``allclose:rtol,atol``: numpy ``allclose`` semantics with c as the reference:
  ``|c - r| <= atol + rtol * |c|``; NaN equals only NaN; ±inf equal only themselves.
- ``topk:K``: the decision is preserved: for every row along the last axis, the set of the K
  largest classes is the same (order within the K is not compared).
- ``decimal:D,...``: a fixed-point claim (an on-chain record) kept D decimals of each element:
  c and r, each rounded half-to-even to D decimals from its exact binary value, are equal.
  One D applies to every element; a list gives one per element in C order.

For integer, boolean and string outputs every mode compares values exactly.

Sequences, maps and optionals (``compare_value``) must have the same structure (lengths, map
keys as sets, presence); then each tensor inside is compared under the output's mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ogverify.evidence.comparison import ComparisonSpec, ErrorStatistics, OutputComparison
from ogverify.model.signature import ValueType
from ogverify.model.tensors import Array, describe, dtype_name
from ogverify.model.values import MapValue, OptionalValue, SequenceValue, Value, describe_value, is_tensor

F64 = npt.NDArray[np.float64]


def _json_float(value: float) -> float:
    return float(min(max(value, -np.finfo(np.float64).max), np.finfo(np.float64).max))


def error_statistics(claimed: Array, reproduced: Array) -> ErrorStatistics:
    """Error statistics of two same-shape float arrays (``claimed`` is the reference)."""
    c64, r64 = claimed.astype(np.float64).ravel(), reproduced.astype(np.float64).ravel()
    finite = np.isfinite(c64) & np.isfinite(r64)
    c, r = c64[finite], r64[finite]
    tiny = float(np.finfo(cast(Any, claimed.dtype)).tiny) if claimed.dtype.kind == "f" else 1e-300
    with np.errstate(over="ignore", invalid="ignore"):
        error = np.minimum(np.abs(c - r), np.finfo(np.float64).max)  # overflow: cap, JSON has no inf
        rel = np.minimum(error / np.maximum(np.abs(c), tiny), np.finfo(np.float64).max)
        norm_c, norm_r = float(np.linalg.norm(c)), float(np.linalg.norm(r))
        cosine = None
        if norm_c > 0 and norm_r > 0:
            cosine = _json_float(float(np.dot(c / norm_c, r / norm_r)))
        elif norm_c == 0 and norm_r == 0:
            cosine = 1.0
        # Scaled so that squares of float64 extremes do not overflow.
        scale = max(float(np.max(np.abs(c))) if c.size else 0.0, float(np.max(error)) if error.size else 0.0)
        noise = float(np.sum(np.square(error / scale))) if scale > 0 else 0.0
        signal = float(np.sum(np.square(c / scale))) if scale > 0 else 0.0
        sqnr: float | None = None
        if noise > 0:
            sqnr = _json_float(10 * np.log10(signal / noise)) if signal > 0 else -_json_float(np.inf)
        zero_c = (c64 == 0) & (r64 == 0)
        bits_c = claimed.ravel().view(_ORDERED_INT.get(claimed.dtype.itemsize, np.uint8))
        bits_r = reproduced.ravel().view(_ORDERED_INT.get(claimed.dtype.itemsize, np.uint8))
        nonzero = c != 0
        return ErrorStatistics(
            mean_abs=_json_float(float(error.mean())) if error.size else 0.0,
            p99_abs=_json_float(float(np.percentile(error, 99))) if error.size else 0.0,
            mean_rel=_json_float(float(rel.mean())) if rel.size else 0.0,
            p99_rel=_json_float(float(np.percentile(rel, 99))) if rel.size else 0.0,
            cosine=cosine,
            sqnr_db=sqnr,
            signed_zero_mismatches=int(np.count_nonzero(zero_c & (np.signbit(c64) != np.signbit(r64)))),
            fraction_differing=int(np.count_nonzero(bits_c != bits_r)) / claimed.size if claimed.size else 0.0,
            min_atol=_finite_max(error),
            min_rtol=None if np.any((c == 0) & (error > 0)) else _finite_max(error[nonzero] / np.abs(c[nonzero])),
        )


_ORDERED_INT = {2: np.int16, 4: np.int32, 8: np.int64}


def ulp_distance(claimed: Array, reproduced: Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Element-wise distance in representable floats between two same-dtype float arrays.

    The bit patterns are mapped onto a monotonic integer line (so -0 and +0 coincide) and
    subtracted; opposite signs are summed in uint64 so the distance never overflows.
    """
    int_type = _ORDERED_INT[claimed.dtype.itemsize]
    sign_mask = np.array(1, dtype=int_type) << (8 * claimed.dtype.itemsize - 1)

    def ordered(values: Array) -> np.ndarray[Any, np.dtype[np.int64]]:
        bits = values.view(int_type)
        magnitude = (bits & ~sign_mask).astype(np.int64)
        return np.asarray(np.where(bits < 0, -magnitude, magnitude), dtype=np.int64)

    a, b = ordered(claimed), ordered(reproduced)
    same_sign = (a >= 0) == (b >= 0)
    with np.errstate(over="ignore"):
        same = np.abs(a - b).astype(np.uint64)
        opposite = np.abs(a).astype(np.uint64) + np.abs(b).astype(np.uint64)
    return np.where(same_sign, same, opposite)


def _finite_max(values: Array) -> float:
    # JSON has no inf: a difference too large for float64 is reported as float64's maximum.
    if not values.size:
        return 0.0
    return float(min(float(values.max()), float(np.finfo(np.float64).max)))


def _last_axis_rows(array: F64) -> F64:
    return array.reshape(-1, array.shape[-1]) if array.ndim >= 1 and array.size else array.reshape(0, 1)


def _topk_changes(claimed: F64, reproduced: F64, k: int) -> int:
    rows_c, rows_r = _last_axis_rows(claimed), _last_axis_rows(reproduced)
    k = min(k, rows_c.shape[1])
    top_c = np.sort(np.argsort(-rows_c, axis=1, kind="stable")[:, :k], axis=1)
    top_r = np.sort(np.argsort(-rows_r, axis=1, kind="stable")[:, :k], axis=1)
    return int(np.any(top_c != top_r, axis=1).sum())


def bitwise_equal(one: Array, other: Array) -> bool:
    """Whether two arrays of one dtype and shape hold the same bytes (``tobytes() ==`` without the copies)."""
    if one.dtype.hasobject or other.dtype.hasobject:
        return one.tobytes() == other.tobytes()
    flat = [np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in (one, other)]
    if flat[0].size != flat[1].size:
        return False
    if flat[0].size % 8 == 0:  # compare eight bytes at a time
        flat = [f.view(np.uint64) for f in flat]
    return bool(np.array_equal(flat[0], flat[1]))


def compare_output(name: str, claimed: Array, reproduced: Array, spec: ComparisonSpec) -> OutputComparison:
    """Compare one output under ``spec`` and measure how far apart the two sides are."""
    claimed_type, reproduced_type = describe(claimed), describe(reproduced)
    if claimed.dtype != reproduced.dtype or claimed.shape != reproduced.shape:
        return OutputComparison(
            name, spec, False,
            f"type differs: claimed {claimed_type}, reproduced {reproduced_type}",
            claimed_type, reproduced_type, False, int(claimed.size), int(claimed.size),
        )
    bitwise = bitwise_equal(claimed, reproduced)
    if claimed.dtype.kind != "f":
        differing = int(np.count_nonzero(claimed != reproduced))
        passed = differing == 0
        reason = "values equal" if passed else f"{differing} of {claimed.size} values differ"
        return OutputComparison(
            name, spec, passed, reason, claimed_type, reproduced_type, bitwise,
            int(claimed.size), differing,
        )
    if bitwise:
        return _identical_floats(name, claimed, spec)
    return _compare_floats(name, claimed, reproduced, spec, bitwise)


def _decimal_comparison(claimed: Array, reproduced: Array, decimals: tuple[int, ...]) -> tuple[bool, str]:
    """Whether each element of ``reproduced`` rounds, at its decimals, to the claimed value; and why."""
    from decimal import ROUND_HALF_EVEN, Decimal

    if len(decimals) not in (1, claimed.size):  # e.g. an intermediate tensor in drift localisation
        decimals = (max(decimals, default=0),)
    per_element = decimals * claimed.size if len(decimals) == 1 else decimals
    wrong = []
    for index, (c, r, places) in enumerate(zip(claimed.ravel().tolist(), reproduced.ravel().tolist(),
                                                per_element, strict=True)):
        quantum = Decimal(1).scaleb(-places)
        try:
            claimed_value = Decimal(c).quantize(quantum, ROUND_HALF_EVEN)
            reproduced_value = Decimal(r).quantize(quantum, ROUND_HALF_EVEN)
        except ArithmeticError:  # NaN or inf (counted as such), or too many digits to quantize
            continue
        if claimed_value != reproduced_value:
            wrong.append((index, claimed_value, reproduced_value))
    if not wrong:
        return True, "every element equals the claim at its decimals"
    index, claimed_value, reproduced_value = wrong[0]
    where = list(int(i) for i in np.unravel_index(index, claimed.shape)) if claimed.ndim else []
    return False, (f"{len(wrong)} of {claimed.size} elements differ at their decimals; first: element {where} "
                   f"claimed {claimed_value}, reproduction rounds to {reproduced_value}")


IDENTICAL = ErrorStatistics(0.0, 0.0, 0.0, 0.0, 1.0, None, 0, 0.0, 0.0, 0.0)


def _identical_floats(name: str, claimed: Array, spec: ComparisonSpec) -> OutputComparison:
    """Bitwise-equal float outputs pass every mode with every metric at zero; computing them
    would cost more than the model run itself on large outputs."""
    reasons = {
        "exact": "bitwise equal",
        "ulp": f"max ULP distance 0 <= {spec.ulp}",
        "allclose": f"all elements within atol + rtol*|claimed| ({spec.atol:g} + {spec.rtol:g}*|claimed|)",
        "topk": f"top-{spec.k} classes unchanged",
        "decimal": "every element equals the claim at its decimals",
    }
    has_rows = claimed.ndim >= 1 and claimed.size > 0
    return OutputComparison(
        name, spec, True, reasons[spec.mode], describe(claimed), describe(claimed), True,
        int(claimed.size), 0, max_abs_diff=0.0, max_rel_diff=0.0, max_ulp=0,
        argmax_flips=0 if has_rows and claimed.shape[-1] > 1 else None,
        topk_changes=0 if spec.mode == "topk" and claimed.ndim >= 1 else None,
        statistics=IDENTICAL,
    )


def _compare_floats(
    name: str, claimed: Array, reproduced: Array, spec: ComparisonSpec, bitwise: bool
) -> OutputComparison:
    c64, r64 = claimed.astype(np.float64), reproduced.astype(np.float64)
    nan_c, nan_r = np.isnan(c64), np.isnan(r64)
    inf_c, inf_r = np.isinf(c64), np.isinf(r64)
    nan_mismatches = int(np.count_nonzero(nan_c != nan_r))
    inf_mismatches = int(np.count_nonzero((inf_c | inf_r) & ~(nan_c | nan_r) & (c64 != r64)))
    finite = np.isfinite(c64) & np.isfinite(r64)
    tiny = float(np.finfo(cast(Any, claimed.dtype)).tiny)
    with np.errstate(over="ignore"):  # float64 extremes: the difference may overflow to inf
        abs_diff = np.abs(np.subtract(c64, r64, where=finite, out=np.zeros_like(c64)))
        rel_diff = np.divide(abs_diff, np.maximum(np.abs(c64), tiny), where=finite, out=np.zeros_like(c64))
    ulps = ulp_distance(claimed, reproduced)
    ulps = np.where(nan_c & nan_r, np.uint64(0), ulps)
    int_type = _ORDERED_INT[claimed.dtype.itemsize]
    differing = int(np.count_nonzero(claimed.view(int_type) != reproduced.view(int_type)))
    max_ulp = int(ulps.max()) if ulps.size else 0
    argmax_flips = None
    if claimed.ndim >= 1 and claimed.shape[-1] > 1 and claimed.size:
        argmax_flips = int(
            np.count_nonzero(np.argmax(_last_axis_rows(c64), 1) != np.argmax(_last_axis_rows(r64), 1))
        )
    topk_changes = _topk_changes(c64, r64, spec.k) if spec.mode == "topk" and claimed.ndim >= 1 else None

    special_ok = nan_mismatches == 0 and inf_mismatches == 0
    if spec.mode == "exact":
        passed = bitwise
        reason = "bitwise equal" if passed else (
            f"{differing} of {claimed.size} elements differ bitwise "
            f"(max abs diff {_finite_max(abs_diff):.3g}, max {max_ulp} ULP)"
        )
    elif spec.mode == "ulp":
        passed = special_ok and max_ulp <= spec.ulp
        reason = f"max ULP distance {max_ulp} {'<=' if max_ulp <= spec.ulp else '>'} {spec.ulp}"
    elif spec.mode == "allclose":
        with np.errstate(over="ignore", invalid="ignore"):  # 0 * inf: such elements are judged as inf
            bound = spec.atol + spec.rtol * np.abs(c64)
        outside = int(np.count_nonzero(finite & (abs_diff > bound)))
        passed = special_ok and outside == 0
        reason = (
            f"all elements within atol + rtol*|claimed| ({spec.atol:g} + {spec.rtol:g}*|claimed|)"
            if passed
            else f"{outside} of {claimed.size} elements outside atol + rtol*|claimed| "
            f"(atol={spec.atol:g}, rtol={spec.rtol:g})"
        )
    elif spec.mode == "decimal":
        passed, reason = _decimal_comparison(claimed, reproduced, spec.decimals)
        passed = passed and special_ok
    else:
        changes = topk_changes if topk_changes is not None else int(not bitwise)
        passed = special_ok and changes == 0
        reason = f"top-{spec.k} classes {'unchanged' if changes == 0 else f'changed in {changes} row(s)'}"
    if not special_ok and spec.mode != "exact":
        reason += f"; NaN mismatches {nan_mismatches}, inf mismatches {inf_mismatches}"
    return OutputComparison(
        name, spec, passed, reason, describe(claimed), describe(reproduced), bitwise,
        int(claimed.size), differing,
        max_abs_diff=_finite_max(abs_diff),
        max_rel_diff=_finite_max(rel_diff),
        max_ulp=max_ulp, nan_mismatches=nan_mismatches, inf_mismatches=inf_mismatches,
        argmax_flips=argmax_flips, topk_changes=topk_changes,
        statistics=error_statistics(claimed, reproduced),
    )


# --- non-tensor values (ogverify.model.values) -------------------------------------------------


def compare_value(name: str, claimed: Value, reproduced: Value, spec: ComparisonSpec,
                  value_type: ValueType) -> OutputComparison:
    """Compare one output of any type: a tensor as ``compare_output``; a sequence, map or optional
    by its structure (lengths, map keys as sets, presence), then each tensor in it under ``spec``
    (a map's values as one vector, so ``topk`` asks whether each map's top classes hold).

    A failure names the first element, key or index that fails the mode and the values there.
    """
    if is_tensor(claimed) and is_tensor(reproduced):
        return compare_output(name, claimed, reproduced, spec)
    claimed_type, reproduced_type = describe_value(claimed, value_type), describe_value(reproduced, value_type)
    elements = sum(int(leaf.size) for leaf in _compared_leaves(claimed))
    pairs: list[_Pair] = []
    problem = _pair(claimed, reproduced, (), pairs)
    if problem is not None:
        return OutputComparison(name, spec, False, problem, claimed_type, reproduced_type, False, elements, elements)
    results = [compare_output(f"{name} {pair.where}", pair.claimed, pair.reproduced, spec) for pair in pairs]
    if not results:
        return OutputComparison(name, spec, True, "values equal (no tensors inside)", claimed_type, reproduced_type,
                                True, 0, 0)

    def most(values: list[Any]) -> Any:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    def total(values: list[int | None]) -> int | None:
        present = [v for v in values if v is not None]
        return sum(present) if present else None

    failing = [(pair, result) for pair, result in zip(pairs, results, strict=True) if not result.passed]
    if failing:
        pair, result = failing[0]
        index = _first_failing(pair.claimed, pair.reproduced, spec)
        where = pair.locate(index)
        reason = (f"{where}: claimed {_scalar(pair.claimed, index)}, reproduced {_scalar(pair.reproduced, index)}"
                  f" ({result.reason})")
        if len(failing) > 1:
            reason += f"; {len(failing)} of {len(pairs)} {pair.unit} fail"
    else:
        reason = max(results, key=lambda r: (r.max_abs_diff or 0.0, r.max_ulp or 0)).reason
    floats = [(p.claimed, p.reproduced) for p in pairs if p.claimed.dtype.kind == "f"]
    statistics = None
    if floats and len({c.dtype for c, _ in floats}) == 1:
        joined_c = np.concatenate([c.ravel() for c, _ in floats])
        joined_r = np.concatenate([r.ravel() for _, r in floats])
        statistics = IDENTICAL if bitwise_equal(joined_c, joined_r) else error_statistics(joined_c, joined_r)
    return OutputComparison(
        name, spec, not failing, reason, claimed_type, reproduced_type, all(r.bitwise_equal for r in results),
        sum(r.elements for r in results), sum(r.elements_differing for r in results),
        max_abs_diff=most([r.max_abs_diff for r in results]), max_rel_diff=most([r.max_rel_diff for r in results]),
        max_ulp=most([r.max_ulp for r in results]),
        nan_mismatches=sum(r.nan_mismatches for r in results), inf_mismatches=sum(r.inf_mismatches for r in results),
        argmax_flips=total([r.argmax_flips for r in results]), topk_changes=total([r.topk_changes for r in results]),
        statistics=statistics,
    )


@dataclass(frozen=True)
class _Pair:
    """Two tensors at one place inside two values of one structure."""

    path: tuple[str, ...]
    claimed: Array
    reproduced: Array
    keys: Array | None = None  # a map's keys, when these are its values

    @property
    def where(self) -> str:
        return ", ".join(self.path) or "the value"

    @property
    def unit(self) -> str:
        return "maps" if self.keys is not None else "tensors"

    def locate(self, index: int) -> str:
        """Where element ``index`` (flat) of these tensors is: ``element 1, key 2`` or ``element 0, index [0, 3]``."""
        if self.keys is not None:
            return ", ".join((*self.path, f"key {self.keys[index].item()!r}"))
        if self.claimed.size <= 1:
            return self.where
        position = np.unravel_index(index, self.claimed.shape)
        return ", ".join((*self.path, f"index [{', '.join(str(int(p)) for p in position)}]"))


def _compared_leaves(value: Value) -> list[Array]:
    """The tensors a comparison measures (a map's values; its keys are compared as a set)."""
    if is_tensor(value):
        return [value]
    if isinstance(value, SequenceValue):
        return [leaf for item in value.items for leaf in _compared_leaves(item)]
    if isinstance(value, MapValue):
        return [value.values]
    assert isinstance(value, OptionalValue)
    return [] if value.value is None else _compared_leaves(value.value)


def _pair(claimed: Value, reproduced: Value, path: tuple[str, ...], pairs: list[_Pair]) -> str | None:
    """Pair the tensors of two values; the first structural difference, or None."""
    where = ", ".join(path) or "the value"
    if is_tensor(claimed) and is_tensor(reproduced):
        if claimed.dtype != reproduced.dtype or claimed.shape != reproduced.shape:
            return f"{where}: type differs: claimed {describe(claimed)}, reproduced {describe(reproduced)}"
        pairs.append(_Pair(path, claimed, reproduced))
        return None
    if isinstance(claimed, SequenceValue) and isinstance(reproduced, SequenceValue):
        if len(claimed.items) != len(reproduced.items):
            return f"{where}: claimed {len(claimed.items)} elements, reproduced {len(reproduced.items)}"
        for index, (one, other) in enumerate(zip(claimed.items, reproduced.items, strict=True)):
            problem = _pair(one, other, (*path, f"element {index}"), pairs)
            if problem is not None:
                return problem
        return None
    if isinstance(claimed, MapValue) and isinstance(reproduced, MapValue):
        if claimed.keys.dtype.kind != reproduced.keys.dtype.kind or not np.array_equal(claimed.keys, reproduced.keys):
            mine, theirs = set(claimed.keys.tolist()), set(reproduced.keys.tolist())
            missing, extra = sorted(mine - theirs, key=repr), sorted(theirs - mine, key=repr)
            parts = ([f"key(s) {', '.join(map(repr, missing[:5]))} only in the claim"] if missing else []) + (
                [f"key(s) {', '.join(map(repr, extra[:5]))} only in the reproduction"] if extra else [])
            return f"{where}: keys differ: {'; '.join(parts) or 'of other types'}"
        if claimed.values.dtype != reproduced.values.dtype:
            return (f"{where}: value type differs: claimed {dtype_name(claimed.values.dtype)}, "
                    f"reproduced {dtype_name(reproduced.values.dtype)}")
        pairs.append(_Pair(path, claimed.values, reproduced.values, claimed.keys))
        return None
    if isinstance(claimed, OptionalValue) and isinstance(reproduced, OptionalValue):
        if (claimed.value is None) != (reproduced.value is None):
            return (f"{where}: claimed {'none' if claimed.value is None else 'a value'}, "
                    f"reproduced {'none' if reproduced.value is None else 'a value'}")
        if claimed.value is None or reproduced.value is None:
            return None
        return _pair(claimed.value, reproduced.value, path, pairs)
    return f"{where}: claimed a {type(claimed).__name__}, reproduced a {type(reproduced).__name__}"


def _first_failing(claimed: Array, reproduced: Array, spec: ComparisonSpec) -> int:
    """The flat index of the first element that fails ``spec`` (``topk``: the largest difference)."""
    c, r = claimed.ravel(), reproduced.ravel()
    if claimed.dtype.kind != "f":
        failing = c != r
    else:
        c64, r64 = c.astype(np.float64), r.astype(np.float64)
        same_nan = np.isnan(c64) & np.isnan(r64)
        if spec.mode == "ulp":
            failing = (ulp_distance(c, r) > spec.ulp) & ~same_nan
        elif spec.mode == "allclose":
            with np.errstate(over="ignore", invalid="ignore"):
                failing = ~(np.abs(c64 - r64) <= spec.atol + spec.rtol * np.abs(c64)) & ~same_nan & (c64 != r64)
        else:
            failing = c.view(_ORDERED_INT.get(c.dtype.itemsize, np.uint8)) != r.view(
                _ORDERED_INT.get(r.dtype.itemsize, np.uint8))
        if spec.mode == "topk":
            with np.errstate(invalid="ignore"):
                return int(np.nanargmax(np.where(failing, np.abs(c64 - r64), -1.0))) if failing.any() else 0
    hits = np.flatnonzero(failing)
    return int(hits[0]) if hits.size else 0


def _scalar(array: Array, index: int) -> str:
    item = array.ravel()[index]
    return repr(str(item)) if array.dtype.kind == "U" else str(item)

"""The comparison modes, a bundle's comparison policy and what a comparison reports, as plain values (no numpy).

``ogverify.model.compare`` computes them; this module only describes them, so that code which
reads, writes or formats comparisons need not import numpy (which ``check`` leaves to the
re-execution process).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ogverify.errors import UsageError

Mode = Literal["exact", "ulp", "allclose", "topk", "decimal"]


@dataclass(frozen=True)
class ComparisonSpec:
    """A comparison mode with its parameters, e.g. ``allclose:1e-3,1e-5``.

    ``decimal:D1,D2,...``: the decimals a fixed-point record (an on-chain claim) kept, one per
    element in C order, or one for all: the claim passes when the reproduction, rounded to an
    element's decimals, equals the claimed value rounded to them.
    """

    mode: Mode = "exact"
    ulp: int = 0
    rtol: float = 0.0
    atol: float = 0.0
    k: int = 1
    decimals: tuple[int, ...] = ()

    def __str__(self) -> str:
        if self.mode == "ulp":
            return f"ulp:{self.ulp}"
        if self.mode == "allclose":
            return f"allclose:{_short_float(self.rtol)},{_short_float(self.atol)}"
        if self.mode == "topk":
            return f"topk:{self.k}"
        if self.mode == "decimal":
            return "decimal:" + ",".join(str(d) for d in self.decimals)
        return "exact"

    @classmethod
    def parse(cls, text: str) -> ComparisonSpec:
        """Parse ``exact``, ``ulp:N``, ``allclose:RTOL,ATOL`` or ``topk:K``."""
        mode, separator, params = text.strip().partition(":")
        try:
            if mode == "exact" and not separator:
                return cls("exact")
            if mode == "ulp":
                return cls("ulp", ulp=_non_negative_int(params))
            if mode == "allclose":
                rtol_text, atol_text = params.split(",")
                rtol, atol = _tolerance(rtol_text), _tolerance(atol_text)
                if not (math.isfinite(rtol) and math.isfinite(atol) and rtol >= 0 and atol >= 0):
                    raise ValueError
                return cls("allclose", rtol=rtol, atol=atol)
            if mode == "topk":
                k = _non_negative_int(params)
                if k < 1:
                    raise ValueError
                return cls("topk", k=k)
            if mode == "decimal":
                decimals = tuple(_non_negative_int(d) for d in params.split(","))
                if max(decimals) > MAX_DECIMALS:
                    raise ValueError
                return cls("decimal", decimals=decimals)
        except ValueError:
            pass
        raise UsageError(
            f"invalid comparison {text!r}; use exact, ulp:N, allclose:RTOL,ATOL, topk:K or decimal:D[,D...]"
        )

    def to_json(self) -> dict[str, Any]:
        if self.mode == "ulp":
            return {"mode": "ulp", "ulp": self.ulp}
        if self.mode == "allclose":
            return {"mode": "allclose", "rtol": self.rtol, "atol": self.atol}
        if self.mode == "topk":
            return {"mode": "topk", "k": self.k}
        if self.mode == "decimal":
            return {"mode": "decimal", "decimals": list(self.decimals)}
        return {"mode": "exact"}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ComparisonSpec:
        mode = raw["mode"]
        if mode == "ulp":
            return cls("ulp", ulp=int(raw["ulp"]))
        if mode == "allclose":
            return cls("allclose", rtol=float(raw["rtol"]), atol=float(raw["atol"]))
        if mode == "topk":
            return cls("topk", k=int(raw["k"]))
        if mode == "decimal":
            return cls("decimal", decimals=tuple(int(d) for d in raw["decimals"]))
        return cls("exact")


@dataclass(frozen=True)
class ComparisonPolicy:
    """The comparison mode for each output: a default and per-output overrides."""

    default: ComparisonSpec = field(default_factory=ComparisonSpec)
    outputs: Mapping[str, ComparisonSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", MappingProxyType(dict(sorted(self.outputs.items()))))

    def for_output(self, name: str) -> ComparisonSpec:
        return self.outputs.get(name, self.default)

    def to_json(self) -> dict[str, Any]:
        return {
            "default": self.default.to_json(),
            "outputs": {name: spec.to_json() for name, spec in self.outputs.items()},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ComparisonPolicy:
        return cls(
            ComparisonSpec.from_json(raw["default"]),
            {name: ComparisonSpec.from_json(spec) for name, spec in raw.get("outputs", {}).items()},
        )


def _short_float(value: float) -> str:
    # ``:g`` where it is exact (``1e-05``), else the shortest repr that round-trips (``0.0012345678``).
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


MAX_DECIMALS = 76  # an int128 has at most 39 digits; 10**76 is far past any value it can scale
_DIGITS = re.compile(r"^[0-9]+$")
_DECIMAL = re.compile(r"^(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def _non_negative_int(text: str) -> int:
    # Plain digits only: int() would also take "+3", " 3" and "1_000".
    if not _DIGITS.match(text):
        raise ValueError
    return int(text)


def _tolerance(text: str) -> float:
    if not _DECIMAL.match(text):
        raise ValueError
    return float(text)


@dataclass(frozen=True)
class ErrorStatistics:
    """How far two float tensors are apart (formulas in docs/drift.md).

    Over the elements where both sides are finite: e = |c - r|, rel = e / max(|c|, tiny).
    ``min_atol``/``min_rtol``: the smallest tolerance that alone (the other one 0) would have
    passed ``allclose``; ``min_rtol`` is None when some element with c == 0 differs.
    ``sqnr_db`` is None when the two are identical (infinite), ``cosine`` None when one side is all zero.
    """

    mean_abs: float
    p99_abs: float
    mean_rel: float
    p99_rel: float
    cosine: float | None
    sqnr_db: float | None
    signed_zero_mismatches: int
    fraction_differing: float
    min_atol: float
    min_rtol: float | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ErrorStatistics:
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        return {
            "mean_abs": self.mean_abs, "p99_abs": self.p99_abs, "mean_rel": self.mean_rel,
            "p99_rel": self.p99_rel, "cosine": self.cosine, "sqnr_db": self.sqnr_db,
            "signed_zero_mismatches": self.signed_zero_mismatches,
            "fraction_differing": self.fraction_differing, "min_atol": self.min_atol, "min_rtol": self.min_rtol,
        }


@dataclass(frozen=True)
class OutputComparison:
    """Everything measured when one claimed output is compared with its reproduction.

    Float metrics are over the elements where both sides are finite; ``None`` where they do
    not apply (non-float outputs, shape mismatch).
    """

    name: str
    spec: ComparisonSpec
    passed: bool
    reason: str
    claimed_type: str
    reproduced_type: str
    bitwise_equal: bool
    elements: int
    elements_differing: int
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    max_ulp: int | None = None
    nan_mismatches: int = 0
    inf_mismatches: int = 0
    argmax_flips: int | None = None
    topk_changes: int | None = None
    statistics: ErrorStatistics | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "comparison": str(self.spec),
            "passed": self.passed,
            "reason": self.reason,
            "claimed_type": self.claimed_type,
            "reproduced_type": self.reproduced_type,
            "bitwise_equal": self.bitwise_equal,
            "elements": self.elements,
            "elements_differing": self.elements_differing,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "max_ulp": self.max_ulp,
            "nan_mismatches": self.nan_mismatches,
            "inf_mismatches": self.inf_mismatches,
            "argmax_flips": self.argmax_flips,
            "topk_changes": self.topk_changes,
            "statistics": self.statistics.to_json() if self.statistics is not None else None,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OutputComparison:
        """Rebuild a comparison made in another process (``to_json`` read back)."""
        statistics = raw.get("statistics")
        return cls(
            raw["name"], ComparisonSpec.parse(raw["comparison"]), raw["passed"], raw["reason"],
            raw["claimed_type"], raw["reproduced_type"], raw["bitwise_equal"], raw["elements"],
            raw["elements_differing"], raw["max_abs_diff"], raw["max_rel_diff"], raw["max_ulp"],
            raw["nan_mismatches"], raw["inf_mismatches"], raw["argmax_flips"], raw["topk_changes"],
            ErrorStatistics.from_json(statistics) if statistics is not None else None,
        )

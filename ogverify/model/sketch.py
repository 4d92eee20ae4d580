"""Digests and sketches of tensors for the recorded trace, and how far one sketch moved from another.

The digest decides "same bits" (it covers dtype, shape and bytes); the sketch only says how far
values moved, so it is computed in float64 and rounded: it never decides equality.
The projection signs come from an integer hash of the element index, not from numpy's random
generators, whose streams may change between numpy versions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ogverify.evidence.digest import digest_bytes
from ogverify.evidence.trace import PROJECTIONS, QUANTILES, Sketch, TensorSummary
from ogverify.model.tensors import Array, canonicalize, dtype_name

DIGEST_HEX = 32  # 128 bits: enough to tell drift, which is not an adversary
_MULTIPLIERS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)
_SIGNIFICANT = 7


def _round(value: float, digits: int = _SIGNIFICANT) -> float:
    return float(f"{value:.{digits}g}")


def tensor_digest(array: Array) -> str:
    """128-bit blake3 of a tensor's dtype, shape and canonical bytes."""
    canonical = canonicalize(array, "traced tensor")
    header = f"{dtype_name(canonical.dtype)}{list(canonical.shape)}".encode()
    if canonical.dtype.kind in "UO":
        body = "\x00".join(str(v) for v in canonical.reshape(-1)).encode("utf-8", "surrogatepass")
    else:
        body = canonical.tobytes()
    return digest_bytes(header + b"\x00" + body, "blake3").hex[:DIGEST_HEX]


def _signs(count: int, multiplier: int) -> Any:
    index = np.arange(count, dtype=np.uint64)
    hashed = (index * np.uint64(multiplier) + np.uint64(0x165667B1)) & np.uint64(0xFFFFFFFF)
    return 1.0 - 2.0 * ((hashed >> np.uint64(31)) & np.uint64(1)).astype(np.float64)


def sketch(array: Array) -> Sketch | None:
    """count, NaN and infinity counts, min, max, mean, quantiles and projections of the finite
    elements; None for strings and other non-numeric tensors."""
    if array.dtype.kind not in "biuf" and not array.dtype.name.startswith("bfloat16"):
        return None
    values = np.asarray(array, dtype=np.float64).reshape(-1)
    count = int(values.size)
    finite_mask = np.isfinite(values)
    nan = int(np.isnan(values).sum())
    inf = count - nan - int(finite_mask.sum())
    finite = values[finite_mask]
    if finite.size == 0:
        return Sketch(count, nan, inf, None, None, None, (), ())
    zeroed = np.where(finite_mask, values, 0.0)
    scale = 1.0 / np.sqrt(count)
    # More digits: a sum of many values cancels, and small moves must still show.
    projection = tuple(_round(float(np.dot(zeroed, _signs(count, m)) * scale), 10)
                       for m in _MULTIPLIERS[:PROJECTIONS])
    quantiles = tuple(_round(float(q)) for q in np.quantile(finite, QUANTILES))
    return Sketch(count, nan, inf, _round(float(finite.min())), _round(float(finite.max())),
                  _round(float(finite.mean())), quantiles, projection)


def summarise(array: Array) -> TensorSummary:
    """A tensor's digest and sketch."""
    return TensorSummary(dtype_name(array.dtype), tuple(int(d) for d in array.shape), tensor_digest(array),
                         sketch(array))


def movement(recorded: Sketch | None, here: Sketch | None) -> dict[str, Any]:
    """How far values moved between two sketches: the largest shift of min, max, mean and the
    quantiles (``max_stat_shift``), the projections' shift relative to their size, and changes
    of NaN/infinity counts. Empty when either side has no sketch."""
    if recorded is None or here is None:
        return {}
    moved: dict[str, Any] = {}
    pairs = [(recorded.min, here.min), (recorded.max, here.max), (recorded.mean, here.mean),
             *zip(recorded.quantiles, here.quantiles, strict=False)]
    shifts = [abs(a - b) for a, b in pairs if a is not None and b is not None]
    if shifts:
        moved["max_stat_shift"] = _round(max(shifts))
    if recorded.mean is not None and here.mean is not None:
        moved["mean_shift"] = _round(here.mean - recorded.mean)
    if recorded.projection and len(recorded.projection) == len(here.projection):
        delta = float(np.linalg.norm(np.subtract(here.projection, recorded.projection)))
        size = float(np.linalg.norm(recorded.projection))
        # Each projection moves by (the change's size) / sqrt(count) on average: scaled back, an
        # estimate of the root-mean-square change per element.
        moved["rms_change_estimate"] = _round(delta / np.sqrt(len(recorded.projection)))
        moved["projection_shift_relative"] = _round(delta / size) if size > 0 else None
    if (recorded.nan, recorded.inf) != (here.nan, here.inf):
        moved["nan"] = [recorded.nan, here.nan]
        moved["inf"] = [recorded.inf, here.inf]
    return moved

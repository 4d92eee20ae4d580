"""What a sample of a log's records proves: the draw, and exact hypergeometric bounds.

The sample is drawn from the checkpoint's root hash and the auditor's seed, so a producer who
wrote the log before the auditor chose the seed cannot know which records will be checked, and
the auditor can draw it again. The bound is exact: with N records, a uniform sample of n without
replacement and k failures among them, the number D of failing records is at most the largest D
for which seeing k or fewer failures still has probability at least 1 - confidence,
``sum_{x<=k} C(D,x) C(N-D,n-x) / C(N,n) >= 1 - confidence``, computed in integers.
"""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

SAMPLE_DOMAIN = b"ogverify-audit-sample-v1\x00"


class _Stream:
    """Uniform integers from SHA-256 in counter mode over (domain, root, seed)."""

    def __init__(self, root: bytes, seed: bytes) -> None:
        self._key = SAMPLE_DOMAIN + len(root).to_bytes(2, "big") + root + seed
        self._counter = 0
        self._buffer = b""

    def _word(self) -> int:
        if len(self._buffer) < 8:
            self._buffer += hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        word, self._buffer = self._buffer[:8], self._buffer[8:]
        return int.from_bytes(word, "big")

    def below(self, bound: int) -> int:
        """Uniform in [0, bound), by rejection (no modulo bias)."""
        limit = (1 << 64) - (1 << 64) % bound
        while True:
            value = self._word()
            if value < limit:
                return value % bound


def draw_sample(root: bytes, seed: bytes, size: int, count: int) -> list[int]:
    """``count`` distinct record indices of ``range(size)``, sorted: a partial Fisher-Yates shuffle
    driven by the stream of (root, seed), kept sparse so that memory follows ``count``, not ``size``."""
    if not 0 <= count <= size:
        raise ValueError(f"cannot sample {count} of {size} records")
    if size >= 1 << 63:
        raise ValueError("a log of 2**63 records or more cannot be sampled")
    stream = _Stream(root, seed)
    moved: dict[int, int] = {}
    chosen = []
    for i in range(count):
        j = i + stream.below(size - i)
        chosen.append(moved.get(j, j))
        moved[j] = moved.get(i, i)
    return sorted(chosen)


def _fraction(value: float | str | Fraction) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(str(value))


def _holds(total: int, sample: int, failures: int, failing: int, threshold: int, denominator: int) -> bool:
    """P(X <= failures | total, failing, sample) >= alpha, where threshold = alpha.numerator * C(total, sample)."""
    favourable = sum(math.comb(failing, x) * math.comb(total - failing, sample - x) for x in range(failures + 1))
    return favourable * denominator >= threshold


def failing_upper_bound(total: int, sample: int, failures: int, confidence: float | str | Fraction) -> int:
    """The largest number of failing records among ``total`` consistent, at ``confidence``, with
    ``failures`` failing in a uniform sample of ``sample`` without replacement."""
    if not 0 <= failures <= sample <= total:
        raise ValueError("need 0 <= failures <= sample <= total")
    level = _fraction(confidence)
    if not 0 < level < 1:
        raise ValueError("confidence must be between 0 and 1")
    if sample == total:
        return failures  # every record was checked
    alpha = 1 - level
    threshold = alpha.numerator * math.comb(total, sample)
    low, high = failures, total - (sample - failures)  # D >= k failures seen, D <= N - passes seen
    while low < high:
        middle = (low + high + 1) // 2
        if _holds(total, sample, failures, middle, threshold, alpha.denominator):
            low = middle
        else:
            high = middle - 1
    return low


def smallest_sample(total: int, max_failure_rate: float | str | Fraction,
                    confidence: float | str | Fraction) -> int:
    """The smallest sample that, with no failure in it, shows at ``confidence`` that at most
    ``max_failure_rate`` of ``total`` records fail."""
    allowed = math.floor(_fraction(max_failure_rate) * total)
    # Galloping first: the answer is usually a few hundred, and bounds for samples near half of a
    # large log cost far more to compute than those for small ones.
    low, high = 0, 1
    while high < total and failing_upper_bound(total, high, 0, confidence) > allowed:
        low, high = high + 1, min(total, high * 2)
    while low < high:
        middle = (low + high) // 2
        if failing_upper_bound(total, middle, 0, confidence) <= allowed:
            high = middle
        else:
            low = middle + 1
    return low

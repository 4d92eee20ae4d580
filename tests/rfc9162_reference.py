"""An RFC 9162 verifier for the tests, written straight from the RFC's text and kept apart from
ogverify's own Merkle code (ogverify/evidence/log/merkle.py), so that each checks the other.

- ``mth``: the Merkle Tree Hash definition of §2.1.1.
- ``verify_inclusion``: the algorithm of §2.1.3.2, step by step.
- ``verify_consistency``: the algorithm of §2.1.4.2, step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of §2.1.1 over the leaf *inputs* (not their hashes)."""
    n = len(entries)
    if n == 0:
        return _hash(b"")
    if n == 1:
        return _hash(b"\x00" + entries[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _hash(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes, inclusion_path: Sequence[bytes],
                     root_hash: bytes) -> bool:
    """§2.1.3.2."""
    if leaf_index >= tree_size:  # step 1
        return False
    fn, sn = leaf_index, tree_size - 1  # step 2
    r = leaf_hash  # step 3
    for p in inclusion_path:  # step 4
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _hash(b"\x01" + p + r)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _hash(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash  # step 5


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       consistency_path: Sequence[bytes]) -> bool:
    """§2.1.4.2 (for 0 < first < second)."""
    path = list(consistency_path)
    if not path:  # step 1
        return False
    if first & (first - 1) == 0:  # step 2
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _hash(b"\x01" + c + fr)
            sr = _hash(b"\x01" + c + sr)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _hash(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0  # step 7

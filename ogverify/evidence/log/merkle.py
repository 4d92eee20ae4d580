"""The Merkle tree of RFC 9162 §2.1: leaf and interior hashes, roots, inclusion and consistency proofs.

Proofs are produced over a ``HashSource`` that gives the hash of any *perfect* subtree (2^level
leaves starting at a multiple of 2^level); every other subtree hash is derived from those, as the
RFC's definitions of MTH, PATH and PROOF split a tree. Verification rebuilds the roots by
following the same definitions backwards, so a proof is accepted exactly when it is the one
those definitions produce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (or of equal-height subtree hashes)."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class HashSource(Protocol):
    """The hash of the perfect subtree of ``2**level`` leaves numbered from ``index * 2**level``."""

    def perfect(self, level: int, index: int) -> bytes: ...


class ListSource:
    """A ``HashSource`` over leaf hashes held in memory."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves

    def perfect(self, level: int, index: int) -> bytes:
        width = 1 << level
        return root_of(self.leaves[index * width : (index + 1) * width])


def subtree_hash(source: HashSource, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, where ``start`` is a multiple of the split points below it."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return source.perfect(n.bit_length() - 1, start // n)
    k = split_point(n)
    return node_hash(subtree_hash(source, start, start + k), subtree_hash(source, start + k, end))


def tree_root(source: HashSource, size: int) -> bytes:
    """The root hash of the tree of the first ``size`` leaves."""
    return subtree_hash(source, 0, size)


def inclusion_path(source: HashSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = split_point(end - start)
        if m < k:
            path.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(source, start, start + k))
            start, m = start + k, m - k
    path.reverse()
    return path


def consistency_path(source: HashSource, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) (RFC 9162 §2.1.4.1); empty when ``first`` is 0 or equals ``second``."""
    if not 0 <= first <= second:
        raise ValueError(f"a tree of size {first} cannot be a prefix of one of size {second}")
    if first in (0, second):
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            proof.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(source, start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(subtree_hash(source, start, end))
    proof.reverse()
    return proof


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` proves ``leaf`` at ``index`` under, or None when the path has the wrong length."""
    if not 0 <= index < size:
        return None
    # The splits from the root down to the leaf, then the hashes applied from the leaf up.
    sides: list[bool] = []  # True: the sibling is on the right
    n, m = size, index
    while n > 1:
        k = split_point(n)
        if m < k:
            sides.append(True)
            n = k
        else:
            sides.append(False)
            n, m = n - k, m - k
    if len(sides) != len(path):
        return None
    current = leaf
    for sibling, right in zip(path, reversed(sides), strict=True):
        current = node_hash(current, sibling) if right else node_hash(sibling, current)
    return current


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """Whether ``path`` proves that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree (``second``, ``second_root``) extends (``first``, ``first_root``)."""
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not proof  # every tree extends the empty one
    if first == second:
        return not proof and first_root == second_root
    # Walk down as PROOF does, noting which hash each step appended, then rebuild both roots.
    steps: list[bool] = []  # True: a right sibling of the old tree's path (new data only)
    start_n, m, whole = second, first, True
    while m != start_n:
        k = split_point(start_n)
        if m <= k:
            steps.append(True)
            start_n = k
        else:
            steps.append(False)
            start_n, m, whole = start_n - k, m - k, False
    expected = len(steps) + (0 if whole else 1)
    if len(proof) != expected:
        return False
    hashes = list(proof)
    if whole:
        old = new = first_root
    else:
        old = new = hashes[0]
        hashes = hashes[1:]
    for right, sibling in zip(reversed(steps), hashes, strict=True):
        if right:
            new = node_hash(new, sibling)
        else:
            old, new = node_hash(sibling, old), node_hash(sibling, new)
    return old == first_root and new == second_root

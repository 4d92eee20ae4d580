"""Streaming content digests: blake3 for addressing, sha256 where other tools need it.

Reading a file's bytes into the hashers (memory maps, ``pread`` pieces, a process of its own for a
file that may shrink meanwhile) is ``regions.py``'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from ogverify.evidence.regions import hash_region, new_hasher

Algorithm = Literal["blake3", "sha256"]
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Digest:
    """A content digest: the algorithm's name and the lowercase hex value."""

    algorithm: Algorithm
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex characters, for messages meant for people."""
        return self.hex[:12]


class Hasher(Protocol):
    """What both hashing engines offer: feed bytes, read the hex digest."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def digest_bytes(data: bytes, algorithm: Algorithm = "blake3") -> Digest:
    """Digest of an in-memory byte string."""
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return Digest(algorithm, hasher.hexdigest())


def digest_chunks(chunks: Iterable[bytes], algorithm: Algorithm = "blake3") -> Digest:
    """Digest of a stream of byte chunks."""
    hasher = new_hasher(algorithm)
    for chunk in chunks:
        hasher.update(chunk)
    return Digest(algorithm, hasher.hexdigest())


def digest_file(path: Path, algorithm: Algorithm = "blake3") -> Digest:
    """Digest of a file's content, without reading it whole into Python memory."""
    return digest_file_multi(path, (algorithm,))[algorithm]


def digest_file_multi(path: Path, algorithms: Sequence[Algorithm]) -> dict[Algorithm, Digest]:
    """Digests of a file's content by each of ``algorithms``, in one pass over the file.

    The file is mapped in windows of at most ``WINDOW`` bytes: blake3 hashes each window with all
    cores (as fast as ``b3sum``), a second algorithm hashes the same window in another thread, and
    the resident memory stays bounded by the window, not the file size.
    """
    hashers = {algorithm: new_hasher(algorithm) for algorithm in dict.fromkeys(algorithms)}
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        hash_region(handle, 0, size, list(hashers.values()))
    return {algorithm: Digest(algorithm, hasher.hexdigest()) for algorithm, hasher in hashers.items()}


def digest_region(handle: BinaryIO, offset: int, length: int) -> Digest:
    """blake3 of ``length`` bytes at ``offset`` of an open file (an external-data tensor)."""
    hasher = new_hasher("blake3")
    hash_region(handle, offset, length, [hasher])
    return Digest("blake3", hasher.hexdigest())

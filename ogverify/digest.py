"""Streaming content digests: blake3 for addressing, sha256 where other tools need it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import blake3

Algorithm = Literal["blake3", "sha256"]
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


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

    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


def new_hasher(algorithm: Algorithm) -> Hasher:
    """A fresh incremental hasher for ``algorithm``."""
    if algorithm == "blake3":
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    return hashlib.sha256()


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
    """Digest of a file's content, without reading it whole into Python memory.

    blake3 hashes through mmap with all cores (its fastest path); sha256 streams in chunks.
    """
    if algorithm == "blake3":
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        if path.stat().st_size > 0:
            hasher.update_mmap(path)
        return Digest("blake3", hasher.hexdigest())
    with path.open("rb") as handle:
        return digest_chunks(iter(lambda: handle.read(CHUNK), b""), "sha256")

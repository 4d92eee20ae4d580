"""Streaming content digests: blake3 for addressing, sha256 where other tools need it."""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import blake3

Algorithm = Literal["blake3", "sha256"]
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
# A file that may change while it is read (a bundle in place) is read in pieces this large: big
# enough for blake3 to use every core, small enough that each piece is hashed from the CPU cache.
PIECE = 4 << 20
# Files are hashed through mmap windows this large: big enough for blake3 to use every core at
# full speed, small enough to keep resident memory far below a multi-GB model's size.
WINDOW = 256 << 20


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


def hash_region(handle: BinaryIO, offset: int, length: int, hashers: Sequence[Hasher]) -> None:
    """Feed ``length`` bytes at ``offset`` of ``handle`` to every hasher, through bounded mmap windows.

    Falls back to reading in chunks where the file cannot be mapped (a pipe, some network filesystems).

    Raises:
        ValueError: the file ends before ``offset + length``.
    """
    if length <= 0:
        return
    try:
        _hash_mapped(handle.fileno(), offset, length, hashers)
    except (OSError, ValueError, io.UnsupportedOperation) as exc:
        if isinstance(exc, _ShortFileError):
            raise ValueError(str(exc)) from exc
        _hash_read(handle, offset, length, hashers)


class _ShortFileError(ValueError):
    pass


def _hash_mapped(fd: int, offset: int, length: int, hashers: Sequence[Hasher]) -> None:
    if offset + length > os.fstat(fd).st_size:
        raise _ShortFileError(f"the file ends before byte {offset + length}")
    position, end = offset, offset + length
    while position < end:
        start = position - position % mmap.ALLOCATIONGRANULARITY
        span = min(WINDOW, end - start)
        with mmap.mmap(fd, span, access=mmap.ACCESS_READ, offset=start) as window:
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                window.madvise(mmap.MADV_SEQUENTIAL)
            with memoryview(window) as view, view[position - start : span] as part:
                _update_all(hashers, part)
        position = start + span


def _update_all(hashers: Sequence[Hasher], data: memoryview) -> None:
    if len(hashers) == 1:
        hashers[0].update(data)
        return
    # hashlib and blake3 release the GIL on large buffers: hash the window with each in parallel.
    threads = [threading.Thread(target=hasher.update, args=(data,)) for hasher in hashers[1:]]
    for thread in threads:
        thread.start()
    try:
        hashers[0].update(data)
    finally:
        for thread in threads:
            thread.join()


def hash_pieces(handle: BinaryIO, offset: int, length: int, hashers: Sequence[Hasher]) -> None:
    """Feed ``length`` bytes at ``offset`` to every hasher, read in 4 MiB pieces with ``pread``.

    For files another process may truncate while they are hashed (a bundle checked in place),
    where a memory map would take this process down with SIGBUS. Large pieces keep blake3 on
    all cores; the buffer is reused, so memory stays at one piece.

    Raises:
        ValueError: the file ends before ``offset + length``.
    """
    fd = handle.fileno()
    buffer = bytearray(min(PIECE, max(length, 1)))
    view = memoryview(buffer)
    position, end = offset, offset + length
    while position < end:
        wanted = view[: min(len(buffer), end - position)]
        count = os.preadv(fd, [wanted], position) if hasattr(os, "preadv") else _pread_into(fd, wanted, position)
        if count == 0:
            raise ValueError(f"the file ends before byte {end}")
        _update_all(hashers, view[:count])
        position += count


def _pread_into(fd: int, target: memoryview, position: int) -> int:
    data = os.pread(fd, len(target), position)
    target[: len(data)] = data
    return len(data)


def _hash_read(handle: BinaryIO, offset: int, length: int, hashers: Sequence[Hasher]) -> None:
    handle.seek(offset)
    remaining = length
    while remaining:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            raise ValueError(f"the file ends before byte {offset + length}")
        for hasher in hashers:
            hasher.update(chunk)
        remaining -= len(chunk)

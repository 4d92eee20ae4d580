"""How the bundle writer stores blobs: the zstd decision, kernel-side file copies, a streaming tar.

Kept apart from ``bundle`` (which reads untrusted bundles) because all of this handles only
the packer's own files. Every step streams: no artifact is ever read whole into Python memory.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import zstandard

from ogverify.errors import UsageError
from ogverify.evidence.regions import CHUNK

ZSTD_LEVEL = 3
MIN_SAVING = 0.05
# How much of a blob the zstd decision looks at: SAMPLE_PIECES pieces spread evenly over the
# blob, so a file whose first megabytes are a zero-filled header does not pass for compressible.
SAMPLE_PIECES = 4
SAMPLE_PIECE = 1 << 20
# Up to this size a blob is compressed whenever that saves MIN_SAVING: decompressing it costs
# under 2 ms on each check.
TINY_BLOB = 1 << 20
# Up to this size, a larger blob only when zstd saves a quarter of it: decompressing costs ~1.3 ms
# per MB on every check of the bundle, on the way to its verdict (a 12.8 MB input of floats that
# saved 7.5 % took 16 ms), which 5-10 % of the bytes (float weights, images) is not worth.
SMALL_BLOB = 16 << 20
SMALL_BLOB_MAX_RATIO = 0.75
# Above it, zstd (~200-600 MB/s on weights at level 3) is several times slower than copying
# (~2 GB/s), so a large blob is compressed only when the sample nearly vanishes (zero-filled or
# repeated data, which zstd compresses at several GB/s). Measured in docs/performance.md. The rule
# depends on content only, never on timing, so packing the same files gives the same bundle.
LARGE_BLOB_MAX_RATIO = 0.02

TAR_BLOCK = tarfile.BLOCKSIZE
TAR_RECORD = tarfile.RECORDSIZE

MemberOpener = Callable[[], BinaryIO]
MemberSource = MemberOpener | Path


def compressor() -> zstandard.ZstdCompressor:
    """The one zstd configuration blobs are written with (level 3, one frame, no checksum)."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False)


def sample(read_at: Callable[[int, int], bytes], size: int) -> bytes:
    """Up to SAMPLE_PIECES * SAMPLE_PIECE bytes, spread evenly over a blob of ``size`` bytes."""
    if size <= SAMPLE_PIECES * SAMPLE_PIECE:
        return read_at(0, size)
    step = (size - SAMPLE_PIECE) // (SAMPLE_PIECES - 1)
    return b"".join(read_at(index * step, SAMPLE_PIECE) for index in range(SAMPLE_PIECES))


def file_sample(handle: BinaryIO, size: int) -> bytes:
    """``sample`` of an open file."""

    def read_at(offset: int, length: int) -> bytes:
        handle.seek(offset)
        return handle.read(length)

    return sample(read_at, size)


def worth_compressing(sampled: bytes, size: int) -> bool:
    """Whether a blob of ``size`` bytes, of which ``sampled`` is a sample, should be stored as zstd."""
    if size == 0 or not sampled:
        return False
    ratio = len(compressor().compress(sampled)) / len(sampled)
    if ratio > 1 - MIN_SAVING:
        return False
    if size <= TINY_BLOB:
        return True
    return ratio <= (SMALL_BLOB_MAX_RATIO if size <= SMALL_BLOB else LARGE_BLOB_MAX_RATIO)


def compress_file(source: Path, blob: Path, size: int) -> int:
    """Stream ``source`` through zstd into ``blob``; return the stored size."""
    with source.open("rb") as handle, blob.open("wb") as out:
        compressor().copy_stream(handle, out, size=size, read_size=CHUNK, write_size=CHUNK)
    return blob.stat().st_size


def copy_range(source: BinaryIO, out_fd: int, size: int) -> int:
    """Copy ``size`` bytes from the current position of ``source`` to ``out_fd`` in the kernel.

    Uses copy_file_range (or sendfile) where the platform has it, so the bytes never pass through
    Python; falls back to a bounded read/write loop. Returns how many bytes were copied (fewer
    only if the source ended early).
    """
    in_fd = source.fileno()
    ways: list[Callable[[int, int], int]] = []
    if hasattr(os, "copy_file_range"):
        ways.append(lambda done, count: os.copy_file_range(in_fd, out_fd, count))
    ways.append(lambda done, count: os.sendfile(out_fd, in_fd, None, count))
    copied = _kernel_copy(ways, size)
    return copied if copied is not None else _copy_loop(source, out_fd, size)


def copy_region(in_fd: int, offset: int, out_fd: int, size: int) -> int:
    """Copy ``size`` bytes at ``offset`` of ``in_fd`` to ``out_fd`` in the kernel.

    Like ``copy_range``, but by explicit offset: the input's file position is neither used nor
    moved (a tar bundle's members share one buffered handle). Returns how many bytes were copied
    (fewer only if the input ended early).
    """
    ways: list[Callable[[int, int], int]] = []
    if hasattr(os, "copy_file_range"):
        ways.append(lambda done, count: os.copy_file_range(in_fd, out_fd, count, offset + done))
    ways.append(lambda done, count: os.sendfile(out_fd, in_fd, offset + done, count))
    copied = _kernel_copy(ways, size)
    if copied is not None:
        return copied
    copied = 0
    while copied < size:
        data = os.pread(in_fd, min(CHUNK, size - copied), offset + copied)
        if not data:
            break
        _write_all(out_fd, data)
        copied += len(data)
    return copied


def _kernel_copy(ways: Sequence[Callable[[int, int], int]], size: int) -> int | None:
    """Copy with the first of ``ways`` (``way(done, count)`` -> bytes copied) the files allow.

    Returns the bytes copied (fewer only if the input ended), or None when no way works between
    these two files (nothing was copied: the caller falls back to reading and writing).
    """
    for way in ways:
        copied = 0
        try:
            while copied < size:
                count = way(copied, min(size - copied, 1 << 30))
                if count == 0:
                    break
                copied += count
            return copied
        except OSError:
            if copied:
                raise
            continue  # not supported between these two files: try the next way
    return None


def _copy_loop(source: BinaryIO, out_fd: int, size: int) -> int:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    copied = 0
    while copied < size:
        wanted = min(CHUNK, size - copied)
        count = source.readinto(view[:wanted])  # type: ignore[attr-defined]
        if not count:
            break
        _write_all(out_fd, view[:count])
        copied += count
    return copied


def _write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def tar_header(name: str, size: int) -> bytes:
    """A deterministic header: mtime 0, root-owned with empty owner names, mode 0644."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_members(out_fd: int, members: Sequence[tuple[str, int, MemberSource]]) -> None:
    """Write a complete tar of ``members`` (in the order given) to ``out_fd``.

    The bytes equal what ``tarfile`` writes for the same headers, but member data goes from file
    to file in the kernel where it can (a Path source), and through a 1 MiB buffer otherwise.

    Raises:
        UsageError: a source has fewer bytes than its declared size (it changed while packing).
    """
    offset = 0
    for name, size, source in members:
        header = tar_header(name, size)
        _write_all(out_fd, header)
        if isinstance(source, Path):
            with source.open("rb", buffering=0) as handle:
                copied = copy_range(handle, out_fd, size)
        else:
            with source() as handle:
                copied = _copy_loop(handle, out_fd, size)
        if copied != size:
            raise UsageError(f"{name}: its source ended after {copied} of {size} bytes (did it change while packing?)")
        padding = -size % TAR_BLOCK
        if padding:
            _write_all(out_fd, bytes(padding))
        offset += len(header) + size + padding
    end = bytes(2 * TAR_BLOCK)
    offset += len(end)
    _write_all(out_fd, end + bytes(-offset % TAR_RECORD))

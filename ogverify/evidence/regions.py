"""Feeding a file's bytes to hashers: through memory maps, in ``pread`` pieces, or in a process of its own.

Only the standard library and blake3 at run time, nothing of ogverify: ``digest_region_isolated``
runs this file as a script (``python -P regions.py --region FD ANSWER_FD OFFSET LENGTH ALGORITHM...``), and
that process should start fast.
"""

from __future__ import annotations

import io
import mmap
import os
import sys

import blake3

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import BinaryIO

    from ogverify.evidence.digest import Algorithm, Hasher

CHUNK = 1 << 20
# A file that may change while it is read (a bundle in place) is read in pieces this large: big
# enough for blake3 to use every core, small enough that each piece is hashed from the CPU cache.
PIECE = 4 << 20
# A region at least this large of a file another process may truncate (a bundle checked in place)
# is hashed by a process of its own through a memory map: as fast as b3sum, and a truncation ends
# that process with SIGBUS, not this one. Below it, starting the process (~30 ms) costs more than
# the map saves over ``hash_pieces`` (~0.15 s per GiB on the project's machine).
ISOLATED_MIN = 192 << 20
# The hashing process's exit status for a file that ends before the region does.
_SHORT_FILE = 3
# Files are hashed through mmap windows this large: big enough for blake3 to use every core at
# full speed, small enough to keep resident memory far below a multi-GB model's size.
WINDOW = 256 << 20
# The hashing process maps smaller windows: it is resident set alone, as small as ogverify's own
# process, and 16 MiB still hash at the speed of 256 (measured on 1 GiB; 8 MiB ran ~10 % slower).
ISOLATED_WINDOW = 16 << 20


def new_hasher(algorithm: Algorithm) -> Hasher:
    """A fresh incremental hasher for ``algorithm``."""
    if algorithm == "blake3":
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    import hashlib  # here: the hashing process imports only what its algorithms need

    return hashlib.sha256()


def hash_region(
    handle: BinaryIO, offset: int, length: int, hashers: Sequence[Hasher], window: int | None = None
) -> None:
    """Feed ``length`` bytes at ``offset`` of ``handle`` to every hasher, through bounded mmap windows.

    Falls back to reading in chunks where the file cannot be mapped (a pipe, some network filesystems).

    Raises:
        ValueError: the file ends before ``offset + length``.
    """
    if length <= 0:
        return
    try:
        _hash_mapped(handle.fileno(), offset, length, hashers, window or WINDOW)
    except (OSError, ValueError, io.UnsupportedOperation) as exc:
        if isinstance(exc, _ShortFileError):
            raise ValueError(str(exc)) from exc
        _hash_read(handle, offset, length, hashers)


class _ShortFileError(ValueError):
    pass


def _hash_mapped(fd: int, offset: int, length: int, hashers: Sequence[Hasher], window: int) -> None:
    if offset + length > os.fstat(fd).st_size:
        raise _ShortFileError(f"the file ends before byte {offset + length}")
    position, end = offset, offset + length
    while position < end:
        start = position - position % mmap.ALLOCATIONGRANULARITY
        span = min(window, end - start)
        with mmap.mmap(fd, span, access=mmap.ACCESS_READ, offset=start) as mapped:
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                mapped.madvise(mmap.MADV_SEQUENTIAL)
            with memoryview(mapped) as view, view[position - start : span] as part:
                _update_all(hashers, part)
        position = start + span


def _update_all(hashers: Sequence[Hasher], data: memoryview) -> None:
    if len(hashers) == 1:
        hashers[0].update(data)
        return
    import threading

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


def digest_region_isolated(
    handle: BinaryIO, offset: int, length: int, algorithms: Sequence[Algorithm], *, isolate_from: int = ISOLATED_MIN
) -> dict[Algorithm, str]:
    """Hex digests, by each of ``algorithms``, of ``length`` bytes at ``offset`` of a file another
    process may truncate meanwhile.

    A region of ``isolate_from`` bytes or more is hashed through a memory map in a separate
    process handed this very open file (the same inode, whatever is renamed meanwhile); smaller
    ones, and any where that process cannot run, in 4 MiB ``pread`` pieces here (``hash_pieces``).

    Raises:
        ValueError: the file ends before ``offset + length``, or got shorter while it was hashed.
    """
    if length >= isolate_from:
        digests = _hash_in_a_process(handle.fileno(), offset, length, algorithms)
        if digests is not None:
            return digests
    hashers = {algorithm: new_hasher(algorithm) for algorithm in dict.fromkeys(algorithms)}
    hash_pieces(handle, offset, length, list(hashers.values()))
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def _hash_in_a_process(
    fd: int, offset: int, length: int, algorithms: Sequence[Algorithm]
) -> dict[Algorithm, str] | None:
    """The region's digests from ``python regions.py --region``; None where that cannot run here.

    The process is handed the open file and a pipe for its answer (``ALGORITHM HEX`` lines).
    """
    import signal
    import subprocess

    script = os.path.abspath(__file__)
    if os.name != "posix" or not sys.executable or not os.path.isfile(script):
        return None
    answer_read, answer_write = os.pipe()
    command = [sys.executable, "-P", script, "--region", str(fd), str(answer_write), str(offset), str(length),
               *algorithms]
    try:
        done = subprocess.run(command, pass_fds=(fd, answer_write), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    except OSError:
        done = None
    finally:
        os.close(answer_write)
    with open(answer_read, "rb") as answer:
        text = answer.read(4096).decode("ascii", "replace")
    if done is None:
        return None
    if done.returncode in (_SHORT_FILE, -signal.SIGBUS):
        raise ValueError(f"the file got shorter than byte {offset + length} while it was hashed")
    if done.returncode != 0:
        return None
    digests = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    if set(digests) != set(algorithms) or not all(len(value) == 64 for value in digests.values()):
        return None
    return {algorithm: digests[algorithm] for algorithm in algorithms}


def _hash_region_of_fd(argv: Sequence[str]) -> int:
    """``--region FD ANSWER_FD OFFSET LENGTH ALGORITHM...``: write ``ALGORITHM HEX`` lines of the
    region's digests to ANSWER_FD; exit 3 when the file is short."""
    fd, answer, offset, length = (int(value) for value in argv[:4])
    algorithms: list[Algorithm] = ["sha256" if name == "sha256" else "blake3" for name in argv[4:]]
    hashers = {algorithm: new_hasher(algorithm) for algorithm in algorithms}
    with os.fdopen(fd, "rb") as handle:
        try:
            hash_region(handle, offset, length, list(hashers.values()), ISOLATED_WINDOW)
        except ValueError:
            return _SHORT_FILE
    os.write(answer, "".join(f"{algorithm} {hasher.hexdigest()}\n" for algorithm, hasher in hashers.items()).encode())
    return 0


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


if __name__ == "__main__" and sys.argv[1:2] == ["--region"]:
    sys.exit(_hash_region_of_fd(sys.argv[2:]))

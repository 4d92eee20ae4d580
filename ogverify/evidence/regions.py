"""Feeding a file's bytes to hashers: through memory maps, in ``pread`` pieces, or in a process of its own.

Only the standard library and blake3 at run time, nothing of ogverify: ``RegionHasher`` runs this
file as a script (``python -P regions.py --serve SOCKET_FD``), and that process should start fast.
"""

from __future__ import annotations

import io
import mmap
import os
import sys
import threading

import blake3

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, BinaryIO

    from ogverify.evidence.digest import Algorithm, Hasher

CHUNK = 1 << 20
# A file that may change while it is read (a bundle in place) is read in pieces this large: big
# enough for blake3 to use every core, small enough that each piece is hashed from the CPU cache.
PIECE = 4 << 20
# A region at least this large of a file another process may truncate (a bundle checked in place)
# is hashed by a process of its own through a memory map: as fast as b3sum, and a truncation ends
# that process with SIGBUS, not this one. Starting one costs ~13 ms (the CLI starts it ahead for a
# bundle with such a file), a request to a running one ~0.3 ms; 64 MiB in pieces take ~17 ms.
ISOLATED_MIN = 64 << 20
# Files are hashed through mmap windows this large: big enough for blake3 to use every core at
# full speed, small enough to keep resident memory far below a multi-GB model's size.
WINDOW = 256 << 20
# The hashing process maps smaller windows: it is resident set alone, as small as ogverify's own
# process, and 16 MiB still hash at the speed of 256 (measured on 1 GiB; 8 MiB ran ~10 % slower).
ISOLATED_WINDOW = 16 << 20
# Hashing processes waiting for the next region (``RegionHasher``), one per process that uses them.
_IDLE: list[RegionHasher] = []
_IDLE_AT_EXIT: list[bool] = []
_HASHERS_LOCK = threading.Lock()


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
    """The region's digests from a hashing process (``RegionHasher``); None where none can run here."""
    with _HASHERS_LOCK:
        hasher = _take_hasher()
    if hasher is None:
        return None
    try:
        digests = hasher.digest(fd, offset, length, algorithms)
    except BaseException:
        hasher.close()
        raise
    with _HASHERS_LOCK:
        if hasher.alive and hasher.pid == os.getpid():
            _IDLE.append(hasher)
        else:
            hasher.close()
    return digests


class RegionHasher:
    """A process that hashes regions of files it is handed (``python -P regions.py --serve FD``).

    Each request passes the open file itself over a Unix socket (``SCM_RIGHTS``), so the process
    hashes the very inode this one opened; it answers ``ok ALGORITHM HEX...`` or ``short``. A file
    truncated under its memory map kills it with SIGBUS: ``digest`` then raises ValueError, and the
    next request gets a new process. Started ahead of need by ``prestart_hasher`` (the CLI does,
    for a bundle with large files), its start-up then overlaps the checker's own.
    """

    def __init__(self) -> None:
        import socket
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-P", os.path.abspath(__file__), "--serve", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self.pid = os.getpid()  # a forked child must not share it: requests would interleave
        self.alive = True

    def digest(self, fd: int, offset: int, length: int, algorithms: Sequence[Algorithm]) -> dict[Algorithm, str] | None:
        """The region's digests; None when the process failed otherwise than by a short file.

        Raises:
            ValueError: the file ends before ``offset + length``, or got shorter while it was hashed.
        """
        import signal
        import socket

        long_enough = os.fstat(fd).st_size >= offset + length
        try:
            socket.send_fds(self._socket, [f"{offset} {length} {' '.join(algorithms)}\n".encode()], [fd])
            answer = _read_line(self._socket)
        except OSError:
            answer = b""
        words = answer.decode("ascii", "replace").split()
        if words[:1] == ["short"]:
            # Past the first window a truncation shows as a short read, not always as SIGBUS.
            if long_enough:
                raise ValueError(f"the file got shorter than byte {offset + length} while it was hashed")
            raise ValueError(f"the file ends before byte {offset + length}")
        if words[:1] == ["ok"] and len(words) == 1 + 2 * len(algorithms):
            digests = dict(zip(words[1::2], words[2::2], strict=True))
            if set(digests) == set(algorithms) and all(len(value) == 64 for value in digests.values()):
                return {algorithm: digests[algorithm] for algorithm in algorithms}
        self.close()
        if self._process.returncode == -signal.SIGBUS:
            raise ValueError(f"the file got shorter than byte {offset + length} while it was hashed")
        return None

    @property
    def process_id(self) -> int:
        """The hashing process's pid."""
        return self._process.pid

    def close(self) -> None:
        """End the process (it exits when its socket closes) and wait for it."""
        if self.alive:
            self.alive = False
            self._socket.close()
        import subprocess

        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def prestart_hasher() -> None:
    """Start a hashing process now, for the first region that needs one."""
    with _HASHERS_LOCK:
        if not _IDLE and _can_isolate():
            _IDLE.append(RegionHasher())


def _can_isolate() -> bool:
    return os.name == "posix" and bool(sys.executable) and os.path.isfile(os.path.abspath(__file__))


def _take_hasher() -> RegionHasher | None:
    while _IDLE:
        hasher = _IDLE.pop()
        if hasher.alive and hasher.pid == os.getpid():
            return hasher
    if not _can_isolate():
        return None
    try:
        started = RegionHasher()
    except OSError:
        return None
    if not _IDLE_AT_EXIT:
        import atexit

        atexit.register(_close_idle)
        _IDLE_AT_EXIT.append(True)
    return started


def _close_idle() -> None:
    with _HASHERS_LOCK:
        while _IDLE:
            hasher = _IDLE.pop()
            if hasher.pid == os.getpid():
                hasher.close()


def _read_line(sock: Any) -> bytes:
    """One answer line (at most 1 KiB); empty when the other side closed first."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 1024:
        part = sock.recv(1024)
        if not part:
            return b""
        line += part
    return line


def _serve(argv: Sequence[str]) -> int:
    """``--serve SOCKET_FD``: hash each region asked for, on the file passed with the request, until EOF."""
    import socket

    with socket.socket(fileno=int(argv[0])) as sock:
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(sock, 1024, 1)
            except OSError:
                return 0
            if not message or len(fds) != 1:
                return 0
            while not message.endswith(b"\n"):
                part = sock.recv(1024)
                if not part:
                    return 0
                message += part
            offset, length, *names = message.decode("ascii").split()
            algorithms: list[Algorithm] = ["sha256" if name == "sha256" else "blake3" for name in names]
            hashers = {algorithm: new_hasher(algorithm) for algorithm in algorithms}
            with os.fdopen(fds[0], "rb") as handle:
                try:
                    hash_region(handle, int(offset), int(length), list(hashers.values()), ISOLATED_WINDOW)
                except ValueError:
                    sock.sendall(b"short\n")
                    continue
            sock.sendall(("ok " + " ".join(f"{a} {h.hexdigest()}" for a, h in hashers.items()) + "\n").encode())


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


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    sys.exit(_serve(sys.argv[2:]))

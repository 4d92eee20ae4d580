"""Where a log's files live: a local folder, or any fsspec URL (``s3://``, ``gs://``, ``file://`` ...).

A ``LogStore`` reads, writes and removes files by their path inside the log ("tile/0/000"); the
paths are made by ``layout`` from validated numbers and digests, never taken from the log's own
content. Local folders are written through a temporary sibling and a rename; object stores
replace an object in one request. fsspec (and s3fs for ``s3://``) load only for a URL:
``pip install 'ogverify[log-s3]'``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from ogverify.errors import BundleError, UsageError

URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class LogFileError(BundleError):
    """A file of a log is missing, too large or unreadable."""


def _read_bounded(open_file: Callable[[], IO[bytes]], path: str, limit: int) -> bytes:
    """Read log file ``path`` through ``open_file``; a missing file or one over ``limit`` bytes is a LogFileError."""
    try:
        with open_file() as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise LogFileError(f"log file {path} is missing") from exc
    if len(data) > limit:
        raise LogFileError(f"log file {path} is over the {limit}-byte limit")
    return data


class Writer(Protocol):
    """A file being written: it appears at its path when closed, or when its ``with`` block ends cleanly."""

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> Writer: ...

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> Any: ...


class LogStore(Protocol):
    """The files of one log."""

    location: str

    def read(self, path: str, limit: int) -> bytes:
        """The whole file; LogFileError when it is missing or larger than ``limit``."""
        ...

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``; LogFileError when the file is missing or shorter."""
        ...

    def exists(self, path: str) -> bool: ...

    def write(self, path: str, data: bytes) -> None:
        """Create or replace a file whole."""
        ...

    def open_write(self, path: str) -> Writer:
        """A new file written by streaming; it appears at ``path`` only when closed without error."""
        ...

    def remove(self, path: str) -> None: ...


def is_url(location: str) -> bool:
    return bool(URL.match(location))


def open_store(location: str | os.PathLike[str], *, create: bool = False) -> LogStore:
    """The store of the log at ``location`` (a folder, or an fsspec URL).

    Raises:
        UsageError: a URL whose fsspec backend is not installed, or a folder that does not exist
            (unless ``create``).
    """
    text = os.fspath(location)
    if is_url(text) and not text.startswith("file://"):
        return FsspecStore(text)
    path = Path(text[len("file://"):] if text.startswith("file://") else text)
    if not create and not path.is_dir():
        raise UsageError(f"log {text} does not exist")
    return LocalStore(path)


class LocalStore:
    """A log in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self._made: set[Path] = set()

    def _path(self, path: str) -> Path:
        return self.root / path

    def _parent(self, target: Path) -> None:
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)

    def read(self, path: str, limit: int) -> bytes:
        target = self._path(path)
        try:
            return _read_bounded(lambda: target.open("rb"), path, limit)
        except IsADirectoryError as exc:
            raise LogFileError(f"log file {path} is not a file") from exc

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(path), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise LogFileError(f"log file {path} is missing") from exc
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            raise LogFileError(f"log file {path} ends before byte {offset + length}")
        return data

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def write(self, path: str, data: bytes) -> None:
        with self.open_write(path) as out:
            out.write(data)

    def open_write(self, path: str) -> Writer:
        target = self._path(path)
        self._parent(target)
        return _LocalWriter(target)

    def remove(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)


class _LocalWriter:
    """A temporary sibling renamed onto the target when closed cleanly."""

    def __init__(self, target: Path) -> None:
        self.target = target
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        self.temp = Path(name)
        self.file = os.fdopen(handle, "wb")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()
        os.chmod(self.temp, 0o644)
        os.replace(self.temp, self.target)

    def __enter__(self) -> _LocalWriter:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.file.close()
            self.temp.unlink(missing_ok=True)


class FsspecStore:
    """A log at an fsspec URL."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        try:
            import fsspec
            from fsspec.core import url_to_fs
        except ImportError as exc:
            raise UsageError(f"log {url}: URLs need fsspec: pip install 'ogverify[log-s3]'") from exc
        try:
            # Listings are not cached: another process (the producer) may have written since.
            options = {"use_listings_cache": False, **dict(storage_options or {})}
            self.fs, root = url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            raise UsageError(f"log {url}: {exc}") from exc
        del fsspec
        self.root = root.rstrip("/")
        self.location = url

    def _path(self, path: str) -> str:
        return f"{self.root}/{path}"

    def read(self, path: str, limit: int) -> bytes:
        return _read_bounded(lambda: self.fs.open(self._path(path), "rb"), path, limit)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        try:
            data: bytes = self.fs.cat_file(self._path(path), start=offset, end=offset + length)
        except FileNotFoundError as exc:
            raise LogFileError(f"log file {path} is missing") from exc
        if len(data) != length:
            raise LogFileError(f"log file {path} ends before byte {offset + length}")
        return data

    def exists(self, path: str) -> bool:
        return bool(self.fs.isfile(self._path(path)))

    def write(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(path), data)

    def open_write(self, path: str) -> Writer:
        handle: Writer = self.fs.open(self._path(path), "wb")
        return handle

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(path))

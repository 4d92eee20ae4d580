"""What a path the user gave is, in words, when it is not what a command needs.

"does not exist" for a directory, a FIFO or a symbolic link loop sends the user looking for the
wrong thing; these say what is there instead. Nothing here opens the path: a FIFO would block.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ogverify.errors import UsageError

StrPath = str | os.PathLike[str]
"""A path as the public API takes it: a string or any path-like object."""

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def problem(path: Path, *, want: str = "file") -> str | None:
    """What keeps ``path`` from being a ``want`` ("file", "directory" or "file or directory"), in
    words; None if nothing.

    Links are followed, as opening the path would. The words complete "``path`` ...": "does not
    exist", "is a directory, not a file", "is a symbolic link to 'x', which does not exist".
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        return _missing(path, exc)
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFREG:
        return None if "file" in want else "is a file, not a directory"
    if kind == stat.S_IFDIR:
        return None if "directory" in want else "is a directory, not a file"
    return f"is {_KINDS.get(kind, 'not a regular file')}, not a {want}"


def _missing(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno == errno.ENOTDIR:
        return "does not exist (a part of the path is not a directory)"
    return f"cannot be read: {exc.strerror or exc}"


def require(path: Path, what: str, *, want: str = "file") -> None:
    """Raise a UsageError "``what`` ``path`` <problem>" unless ``path`` is a ``want``."""
    found = problem(path, want=want)
    if found is not None:
        raise UsageError(f"{what} {path} {found}".lstrip())

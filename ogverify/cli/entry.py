"""The ``ogverify`` console entry point.

For ``check`` it starts the re-execution process before anything else is imported: that
process then loads numpy and onnxruntime while this one loads the CLI and verifies the
bundle, which is most of what a check costs over a bare onnxruntime run. For a bundle holding a
large file it also starts the process that hashes such files (``evidence/regions.py``).

When the command is done it leaves without the interpreter's teardown (freeing every module of
typer, rich, cryptography... one by one, ~40 ms): output is flushed and exit handlers run first.
"""

from __future__ import annotations

import sys

# Flags that mean nothing is checked in this process, and the one that means nothing is run.
_NOT_HERE = {"--help", "-h", "--jobs", "-j", "--dask-scheduler"}
_NO_RERUN = "--no-rerun"


def main() -> None:
    """Run the ogverify command line."""
    arguments = sys.argv[1:]
    flags = {a.split("=")[0] for a in arguments}
    if arguments[:1] == ["check"] and not _NOT_HERE & flags:
        if _NO_RERUN not in flags:
            from ogverify.runtime.child import prestart

            prestart()
        from ogverify.evidence import regions

        if any(_holds(argument, regions.ISOLATED_MIN) for argument in arguments[1:] if not argument.startswith("-")):
            regions.prestart_hasher()
    from ogverify.cli.app import main as cli_main

    try:
        cli_main()
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message to print: the interpreter's own exit does that
        _leave(exc.code or 0)
    _leave(0)


def _holds(argument: str, large: int) -> bool:
    """Whether ``argument`` names a ``.ogb`` or a bundle directory with a file of ``large`` bytes or
    more, whose hashing process is worth starting now (a guess from sizes: a wrong one costs an idle
    process)."""
    import os

    try:
        if os.path.isdir(argument):
            with os.scandir(os.path.join(argument, "blobs", "blake3")) as blobs:
                return any(entry.stat(follow_symlinks=False).st_size >= large for entry in blobs)
        return argument.endswith(".ogb") and os.stat(argument).st_size >= large
    except OSError:
        return False


def _leave(code: int) -> None:
    """Exit with ``code`` now: flush, run exit handlers, skip the teardown of the interpreter."""
    import atexit
    import contextlib
    import os
    import threading

    if threading.active_count() > 1:  # a worker still running: the interpreter's exit waits for it
        raise SystemExit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe: nothing more to write
            stream.flush()
    os._exit(code)

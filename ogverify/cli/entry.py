"""The ``ogverify`` console entry point.

For ``check`` it starts the re-execution process before anything else is imported: that
process then loads numpy and onnxruntime while this one loads the CLI and verifies the
bundle, which is most of what a check costs over a bare onnxruntime run.

When the command is done it leaves without the interpreter's teardown (freeing every module of
typer, rich, cryptography... one by one, ~40 ms): output is flushed and exit handlers run first.
"""

from __future__ import annotations

import sys

# Flags that mean no re-execution happens in this process.
_NO_LOCAL_RERUN = {"--no-rerun", "--help", "-h", "--jobs", "-j", "--dask-scheduler"}


def main() -> None:
    """Run the ogverify command line."""
    arguments = sys.argv[1:]
    if arguments[:1] == ["check"] and not _NO_LOCAL_RERUN & {a.split("=")[0] for a in arguments}:
        from ogverify.runtime.child import prestart

        prestart()
    from ogverify.cli.app import main as cli_main

    try:
        cli_main()
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message to print: the interpreter's own exit does that
        _leave(exc.code or 0)
    _leave(0)


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

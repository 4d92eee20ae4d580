"""What every command shares: turning errors into one line and an exit code, writing output."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, ParamSpec, TypeVar

import typer

from ogverify.errors import ExitCode, OgverifyError, UsageError

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str, code: int, detail: str = "") -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    if detail and os.environ.get("OGVERIFY_DEBUG"):
        typer.echo(detail, err=True)
    raise typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program is, so that clean-up (staging directories) runs as for Ctrl-C."""


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every error into one line on stderr and the right exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except OgverifyError as exc:
            _fail(exc.message, int(exc.exit_code), exc.detail)
        except KeyboardInterrupt as exc:
            from ogverify.evidence.bundle import remove_unfinished

            remove_unfinished()  # staging files an interruption caught before their clean-up was in place
            if isinstance(exc, Terminated):
                _fail("terminated", 128 + signal.SIGTERM)
            _fail("interrupted", 130)
        except MemoryError:
            _fail("out of memory", int(ExitCode.CANNOT_VERIFY))
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), int(ExitCode.CANNOT_VERIFY))
        except Exception as exc:  # the promise: no traceback, and never exit 0 or 1 on a crash
            import traceback

            _fail(f"internal error: {type(exc).__name__}: {exc}", int(ExitCode.CANNOT_VERIFY), traceback.format_exc())

    return wrapper


def use_color() -> bool:
    """Colour only on a terminal, and never under NO_COLOR or TERM=dumb."""
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def emit(text: str, output: Path | None = None) -> None:
    """Write machine-readable output to stdout, or atomically to ``output``."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ogverify.evidence.bundle import write_member_atomically

    if not output.parent.is_dir():
        raise UsageError(f"directory {output.parent} does not exist")
    write_member_atomically(output, text.encode("utf-8"))
    typer.echo(f"wrote {output}", err=True)


def echo(line: str) -> None:
    """One line of progress or information, on stderr."""
    typer.echo(line, err=True)


def require_format(output_format: str, *names: str) -> None:
    """Refuse a ``--format`` this command does not write."""
    if output_format not in names:
        raise UsageError(f"unknown format {output_format!r}; use {', '.join(names[:-1])} or {names[-1]}")

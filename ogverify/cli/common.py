"""What every command shares: turning errors into one line and an exit code, writing output."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from ogverify.errors import ExitCode, OgverifyError, TargetExistsError, UsageError

if TYPE_CHECKING:
    from ogverify.evidence.comparison import ComparisonPolicy
    from ogverify.evidence.execution import ExecutionConfig

# Options that commands writing a bundle (pack, import opengradient) declare alike, declared once here.
SignKeysOption = Annotated[
    list[Path] | None, typer.Option("--sign", metavar="KEY", help="Sign with this private key. Repeatable.")
]
ForceBundleOption = Annotated[bool, typer.Option("--force", help="Replace an existing bundle at --out.")]
# --format of the commands that write text or JSON, and of those that write a verification report.
TextJsonFormatOption = Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text or json.")]
ReportFormatOption = Annotated[
    str, typer.Option("--format", "-f", metavar="FORMAT", help="text, json, markdown, junit or sarif.")
]
# Execution options that pack and log init declare alike (see execution_options below).
ThreadsOption = Annotated[
    int | None,
    typer.Option("--threads", metavar="N", help="intra_op_num_threads. Default: onnxruntime's default, this "
                 "machine's physical cores, recorded as that number (0: record 0, the checker's default)."),
]
InterThreadsOption = Annotated[int, typer.Option("--inter-threads", metavar="N", help="inter_op_num_threads.")]
ExecutionModeOption = Annotated[str, typer.Option("--execution-mode", metavar="MODE", help="sequential or parallel.")]
SessionConfigOption = Annotated[
    list[str] | None, typer.Option("--session-config", metavar="KEY=VALUE", help="Session config entry. Repeatable.")
]
RunConfigOption = Annotated[
    list[str] | None, typer.Option("--run-config", metavar="KEY=VALUE", help="Run-options config entry. Repeatable.")
]

def typer_group(help_text: str, **options: Any) -> typer.Typer:
    """A typer app for the root command or a group that sets out its own help (``log``): plain
    text, ``-h`` as ``--help``, 100 columns whatever the terminal, and the help when called alone."""
    return typer.Typer(
        help=help_text,
        rich_markup_mode=None,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100},
        **options,
    )


P = ParamSpec("P")
R = TypeVar("R")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program is, so that clean-up (staging directories) runs as for Ctrl-C."""


class StoppedError(OgverifyError):
    """The user stopped ogverify (Ctrl-C or SIGTERM)."""

    def __init__(self, terminated: bool) -> None:
        super().__init__("terminated" if terminated else "interrupted")
        self.exit_code = ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED


def as_error(exc: Exception | KeyboardInterrupt) -> OgverifyError:
    """``exc`` as the OgverifyError whose ``diagnostics()`` the command line prints."""
    if isinstance(exc, TargetExistsError):
        return exc.command_line()
    if isinstance(exc, OgverifyError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return StoppedError(terminated=isinstance(exc, Terminated))
    if isinstance(exc, MemoryError):
        return OgverifyError("out of memory")
    if isinstance(exc, OSError):
        return OgverifyError(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    import traceback

    return OgverifyError(f"internal error: {type(exc).__name__}: {exc}", traceback.format_exc())


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every error into its one line on stderr and its exit code; never a traceback.

    The line is the error's ``diagnostics()``; ``OGVERIFY_DEBUG`` adds its detail (for an
    internal error, the traceback).
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except (Exception, KeyboardInterrupt) as exc:  # the promise: no traceback, never exit 0 or 1 on a crash
            if isinstance(exc, KeyboardInterrupt):
                from ogverify.evidence.bundle import remove_unfinished

                remove_unfinished()  # staging files an interruption caught before their clean-up was in place
            error = as_error(exc)
            typer.echo(error.diagnostics(verbose=bool(os.environ.get("OGVERIFY_DEBUG"))), err=True)
            raise typer.Exit(int(error.exit_code)) from None

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


def emit_json(value: Any, output: Path | None = None) -> None:
    """Write ``value`` as a JSON document (indented, keys sorted: one value, one text), as ``emit``."""
    emit(json.dumps(value, indent=2, sort_keys=True) + "\n", output)


def require_writable(output: Path | None, option: str) -> None:
    """Refuse now, before the run, a report file that could not be written after it: a missing or
    read-only directory, or a directory in the file's place (``emit`` writes it at the end)."""
    if output is None:
        return
    from ogverify.evidence.bundle import check_writable

    if output.is_dir():
        raise UsageError(f"{option} {output} is a directory")
    try:
        check_writable(output, overwrite=True)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc.message}") from exc


def echo(line: str) -> None:
    """One line of progress or information, on stderr."""
    typer.echo(line, err=True)


def require_format(output_format: str, *names: str) -> None:
    """Refuse a ``--format`` this command does not write."""
    if output_format not in names:
        raise UsageError(f"unknown format {output_format!r}; use {', '.join(names[:-1])} or {names[-1]}")


def execution_options(
    *,
    opt_level: str,
    threads: int | None,
    inter_threads: int,
    execution_mode: str,
    providers: list[str] | None,
    session_config: list[str] | None,
    run_config: list[str] | None,
    compare: str,
    compare_output: list[str] | None,
) -> tuple[ExecutionConfig, ComparisonPolicy]:
    """The ExecutionConfig and ComparisonPolicy that ``pack`` and ``log init`` read from the same options.

    ``threads`` None (no ``--threads``): the producer runs at onnxruntime's default, and the
    configuration records the count that default resolves to here (``runtime.threads``), so
    that ``check`` runs what ran.
    """
    from ogverify.evidence.comparison import ComparisonPolicy, ComparisonSpec
    from ogverify.evidence.execution import (
        ExecutionConfig,
        ProviderSpec,
        parse_execution_mode,
        parse_key_values,
        parse_opt_level,
    )
    from ogverify.packing.pack import runtime_version
    from ogverify.runtime.threads import resolve_threads

    config = ExecutionConfig(
        runtime_version=runtime_version(),
        providers=tuple(ProviderSpec(name) for name in (providers or ["CPUExecutionProvider"])),
        graph_optimization_level=parse_opt_level(opt_level),
        intra_op_num_threads=resolve_threads(threads),
        inter_op_num_threads=inter_threads,
        execution_mode=parse_execution_mode(execution_mode),
        config_entries=parse_key_values(session_config or [], "--session-config"),
        run_config_entries=parse_key_values(run_config or [], "--run-config"),
    )
    policy = ComparisonPolicy(
        ComparisonSpec.parse(compare),
        {
            name: ComparisonSpec.parse(mode)
            for name, mode in parse_key_values(compare_output or [], "--compare-output").items()
        },
    )
    return config, policy

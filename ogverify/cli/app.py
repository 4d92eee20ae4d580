"""The ``ogverify`` typer application: its options, and the commands of the modules beside it.

Heavy libraries (onnxruntime, onnx, numpy) are imported inside the commands, so that
``ogverify --help`` stays fast.
"""

from __future__ import annotations

import copy
import signal
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
import typer.core
import typer.main
import typer.models

from ogverify import __version__
from ogverify.cli import bundle, check, diff, fingerprint, interop, keys, log, pack, profile
from ogverify.cli.common import Terminated, typer_group
from ogverify.errors import EXIT_MEANINGS

HELP = """Pack the evidence of an AI inference into a signed, content-addressed bundle, and
check it by re-executing the model under the recorded configuration.

Exit codes: """ + ", ".join(f"{int(code)} {word} ({why})" for code, (word, why) in EXIT_MEANINGS.items()) + "."



class OgverifyGroup(typer.core.TyperGroup):
    """The root command: a usage error (an unknown option, a missing argument, a value of the
    wrong type) is one ``error:`` line on stderr and exit 2, like every other bad input, not
    click's usage block.

    It runs click's ``main`` with ``standalone_mode=False``, where click raises its errors instead
    of printing them (public click API: ``format_message()``, ``exit_code``, ``ctx``; typer does
    not export the classes, so they are told by those). Without arguments it is click's own
    ``main``: ``ogverify`` alone prints the help (so does a command group alone).
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        arguments = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not arguments:
            return super().main(arguments, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        try:
            result = super().main(arguments, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Abort:  # end of input at a prompt
            typer.echo("error: aborted", err=True)
            sys.exit(2)
        except Exception as exc:
            format_message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
            if not callable(format_message) or not isinstance(code, int):
                raise
            context = getattr(exc, "ctx", None)
            message = str(format_message())
            if context is not None and message == context.get_help():  # a group without its command
                typer.echo(message, err=True)
                sys.exit(code)
            path = getattr(context, "command_path", None) or prog_name or "ogverify"
            typer.echo(f"error: {' '.join(message.split()).rstrip('.')}; see '{path} --help'", err=True)
            sys.exit(code)
        # Without standalone mode click returns the exit code a command raised, or what it returned.
        sys.exit(result if isinstance(result, int) else 0)


app = typer_group(HELP, cls=OgverifyGroup, pretty_exceptions_enable=False, add_completion=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ogverify {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Pack and check evidence bundles of ONNX inferences."""


# The commands, in the order --help lists them (see ogverify/cli/__init__.py to add one).
app.command()(keys.keygen)
app.command()(pack.pack)
app.command()(keys.sign)
app.command()(check.check)
app.command()(diff.diff)
app.command()(bundle.inspect)
app.command()(bundle.extract)
app.command()(fingerprint.fingerprint)
app.command()(interop.cid)
app.add_typer(interop.import_app, name="import")
app.add_typer(interop.export_app, name="export")
app.add_typer(log.log_app, name="log")
app.command()(log.audit)
app.command()(profile.profile)


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise Terminated()


def command_name(info: typer.models.CommandInfo) -> str:
    """The name a registered command is called by: its own, or its function's as typer derives it."""
    return info.name or typer.main.get_command_name(getattr(info.callback, "__name__", ""))


def app_for(arguments: Sequence[str]) -> typer.Typer:
    """``app`` holding only the command or group that ``arguments`` start with, else all of ``app``.

    typer turns every command's signature into click options on each start: 18 ms for all of
    them, 3 ms for ``check`` alone, on the way to every verdict. The narrowed app keeps the root
    options, help, errors and exit codes; no argument, an option first or an unknown name get
    the whole app (and its listing of the commands).
    """
    name = arguments[0] if arguments else ""
    commands = [c for c in app.registered_commands if command_name(c) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands, narrowed.registered_groups = commands, groups
    return narrowed


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    app_for(sys.argv[1:])(prog_name="ogverify")

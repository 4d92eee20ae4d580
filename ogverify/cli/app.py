"""The ``ogverify`` typer application: its options, and the commands of the modules beside it.

Heavy libraries (onnxruntime, onnx, numpy) are imported inside the commands, so that
``ogverify --help`` stays fast.
"""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from ogverify import __version__
from ogverify.cli import bundle, check, diff, fingerprint, interop, keys, log, pack, profile
from ogverify.cli.common import Terminated
from ogverify.errors import EXIT_MEANINGS

HELP = """Pack the evidence of an AI inference into a signed, content-addressed bundle, and
check it by re-executing the model under the recorded configuration.

Exit codes: """ + ", ".join(f"{int(code)} {word} ({why})" for code, (word, why) in EXIT_MEANINGS.items()) + "."

app = typer.Typer(
    help=HELP,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100},
)


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


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="ogverify")

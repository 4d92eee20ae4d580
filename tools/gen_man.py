"""Generate man/ogverify.1 from the CLI itself: ``python -m tools.gen_man [OUT]``.

Each command's section is its own ``--help`` text, so the page cannot drift from the CLI;
tests/test_docs.py fails when the checked-in page is not current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

from ogverify import __version__
from ogverify.cli.app import app, command_name
from ogverify.errors import EXIT_MEANINGS

MAN_PATH = Path(__file__).resolve().parents[1] / "man" / "ogverify.1"

EXIT_STATUS = [(str(int(code)), f"{word}: {why}") for code, (word, why) in EXIT_MEANINGS.items()]


def command_names() -> list[str]:
    """The subcommands and command groups, in the order ``--help`` lists them."""
    names = []
    for info in app.registered_commands:
        assert info.callback is not None
        names.append(command_name(info))
    for group in app.registered_groups:
        assert group.name is not None, "register a command group with add_typer(..., name=...)"
        names.append(group.name)
    return names


def help_text(*args: str) -> str:
    """``ogverify ARGS --help`` exactly as a user sees it."""
    result = CliRunner().invoke(app, [*args, "--help"], prog_name="ogverify")
    if result.exit_code != 0:
        raise RuntimeError(f"ogverify {' '.join(args)} --help failed: {result.output}")
    return result.stdout


def _escape(text: str) -> str:
    escaped = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in escaped.splitlines())


def _preformatted(text: str) -> list[str]:
    return [".nf", _escape(text.rstrip("\n")), ".fi"]


def render() -> str:
    """The whole man page as roff text."""
    lines = [
        f'.TH OGVERIFY 1 "" "ogverify {__version__}" "User Commands"',
        ".SH NAME",
        "ogverify \\- pack and check evidence bundles of ONNX inferences",
        ".SH SYNOPSIS",
        "\\fBogverify\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        *_preformatted(help_text()),
        ".SH COMMANDS",
    ]
    for name in command_names():
        lines += [f".SS {name}", *_preformatted(help_text(name))]
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _escape(meaning)]
    lines += [
        ".SH ENVIRONMENT",
        ".TP",
        "\\fBNO_COLOR\\fR",
        "Disable colour in text output (colour is only used when stdout is a terminal).",
        ".TP",
        "\\fBOGVERIFY_DEBUG\\fR",
        "Print the detail (for internal errors, the traceback) after the one\\-line error.",
        ".SH FILES",
        ".TP",
        "\\fINAME.ogb\\fR, bundle directories",
        "A bundle: a tar file, or a directory holding \\fIogverify\\-bundle.json\\fR,",
        "\\fImanifest.json\\fR, \\fIblobs/blake3/\\fR and \\fIsignatures/\\fR.",
        ".TP",
        "\\fBogverify.toml\\fR",
        "The policy \\fBcheck\\fR applies: read from the current directory (or the \\fB[tool.ogverify]\\fR",
        "table of its \\fIpyproject.toml\\fR) unless \\fB\\-\\-policy\\fR \\fIFILE\\fR names another or",
        "\\fB\\-\\-no\\-policy\\fR ignores it. Its tables: \\fB[signatures]\\fR (trusted and required keys,",
        "minimum signers), \\fB[comparison]\\fR (allowed modes), \\fB[environment]\\fR (acceptable",
        "differences), \\fB[limits]\\fR (sizes, counts, memory, downloads) and \\fB[check]\\fR (timeout,",
        "rerun, jobs); a mistake in it is a usage error (exit 2). Schema: \\fIschemas/policy\\-v1.json\\fR.",
        ".SH SEE ALSO",
        "docs/format.md in the ogverify source tree: the bundle format specification;",
        "docs/ci.md: the policy file and the CI gate.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else MAN_PATH
    out.write_text(render(), encoding="utf-8")
    print(out)

"""Report formatters: each turns Reports into the text of one output format.

A formatter never prints; the CLI writes what it returns to stdout or ``--output``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ogverify.errors import UsageError
from ogverify.report import Report


class Formatter(Protocol):
    """Renders the reports of one ``check`` invocation."""

    def render(self, reports: Sequence[Report]) -> str: ...


def get_formatter(name: str, *, color: bool = False) -> Formatter:
    """The formatter registered under ``name``."""
    from ogverify.formats.json import JsonFormatter
    from ogverify.formats.junit import JunitFormatter
    from ogverify.formats.markdown import MarkdownFormatter
    from ogverify.formats.sarif import SarifFormatter
    from ogverify.formats.text import TextFormatter

    if name == "json":
        return JsonFormatter()
    if name == "text":
        return TextFormatter(color=color)
    if name == "markdown":
        return MarkdownFormatter()
    if name == "junit":
        return JunitFormatter()
    if name == "sarif":
        return SarifFormatter()
    raise UsageError(f"unknown format {name!r}; use {', '.join(FORMAT_NAMES[:-1])} or {FORMAT_NAMES[-1]}")


FORMAT_NAMES = ("text", "json", "markdown", "junit", "sarif")

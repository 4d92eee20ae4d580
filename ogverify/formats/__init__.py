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
    from ogverify.formats.text import TextFormatter

    if name == "json":
        return JsonFormatter()
    if name == "text":
        return TextFormatter(color=color)
    raise UsageError(f"unknown format {name!r}; use text or json")


FORMAT_NAMES = ("text", "json")

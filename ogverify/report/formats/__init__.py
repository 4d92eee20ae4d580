"""Report formatters: each turns Reports into the text of one output format.

A formatter never prints; the CLI writes what it returns to stdout or ``--output``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ogverify.errors import UsageError
from ogverify.report.findings import Report


class Formatter(Protocol):
    """Renders the reports of one ``check`` invocation."""

    def render(self, reports: Sequence[Report]) -> str: ...


# name -> (module, class): a formatter's module (rich for text, xml for junit) is imported
# only when that formatter is first used.
_FORMATTERS = {
    "text": ("ogverify.report.formats.text", "TextFormatter"),
    "json": ("ogverify.report.formats.json", "JsonFormatter"),
    "markdown": ("ogverify.report.formats.markdown", "MarkdownFormatter"),
    "junit": ("ogverify.report.formats.junit", "JunitFormatter"),
    "sarif": ("ogverify.report.formats.sarif", "SarifFormatter"),
}
FORMAT_NAMES = tuple(_FORMATTERS)


class LazyFormatter:
    """The formatter of one format, imported on first use.

    ``check`` calls ``load`` while the re-execution runs, so that importing rich (~30 ms) is not
    paid before the run can start, nor after it ends.
    """

    def __init__(self, name: str, *, color: bool) -> None:
        self.name = name
        self._color = color
        self._loaded: Formatter | None = None

    def load(self) -> Formatter:
        if self._loaded is None:
            import importlib

            module, cls = _FORMATTERS[self.name]
            factory = getattr(importlib.import_module(module), cls)
            self._loaded = factory(color=self._color) if self.name == "text" else factory()
        return self._loaded

    def render(self, reports: Sequence[Report]) -> str:
        return self.load().render(reports)


def get_formatter(name: str, *, color: bool = False) -> LazyFormatter:
    """The formatter registered under ``name`` (imported when first used).

    Raises:
        UsageError: no such format.
    """
    if name not in _FORMATTERS:
        raise UsageError(f"unknown format {name!r}; use {', '.join(FORMAT_NAMES[:-1])} or {FORMAT_NAMES[-1]}")
    return LazyFormatter(name, color=color)

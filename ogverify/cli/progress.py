"""The check command's view of the gate at work: a progress bar, or a line per bundle, on stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ogverify.cli.common import echo
from ogverify.report.findings import Report, Verdict

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ogverify.verify.batch import Checked


class StderrProgress:
    """A ``verify.gate.GateObserver`` for people: what the gate does, drawn on stderr.

    Several bundles checked at once get a rich progress bar (done / total, time, how many did
    not verify); several checked one after the other get a ``checking B ...`` line each; one
    bundle gets nothing. Signed verdicts written or skipped get a line each.
    """

    def __init__(self) -> None:
        self._several = False
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._not_verified = 0

    def started(self, targets: Sequence[str], *, parallel: bool) -> None:
        self._several = len(targets) > 1
        if not (parallel and self._several):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[failed]} not verified"),
            console=Console(file=sys.stderr, highlight=False), transient=False,
        )
        self._task = self._bar.add_task("check", total=len(targets), failed=0)
        self._bar.start()

    def checking(self, target: str) -> None:
        if self._several:
            echo(f"checking {target} ...")

    def checked(self, result: Checked) -> None:
        self._not_verified += result.report.verdict is not Verdict.VERIFIED
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, failed=self._not_verified)

    def finished(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def attested(self, path: Path, report: Report, keyid: str) -> None:
        echo(f"wrote {path} ({report.bundle}: signed verdict by {keyid[:12]})")

    def not_attested(self, report: Report, reason: str) -> None:
        echo(f"not attested: {report.bundle}: {reason}")

"""Markdown reports: for pull-request comments and CI job summaries (``$GITHUB_STEP_SUMMARY``).

GitHub-flavoured: a headline, one summary table, then a collapsible section per bundle that
is not plainly verified, with its checks and the per-output numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from ogverify.report.findings import Report, Status, Verdict, worst_exit_code
from ogverify.report.results import outcome, test_results

ICON = {Verdict.VERIFIED: ":white_check_mark:", Verdict.FAILED: ":x:", Verdict.ERROR: ":warning:"}
STATUS_WORD = {Status.PASS: "pass", Status.FAIL: "**FAIL**", Status.ERROR: "**ERROR**", Status.SKIP: "skip",
               Status.WARN: "warn"}


def cell(text: str) -> str:
    """Text safe inside one table cell: no pipes, no newlines, no raw HTML."""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _details(report: Report) -> list[str]:
    lines = ["<details>", f"<summary>{ICON[report.verdict]} {cell(report.bundle)}: {report.verdict.value}</summary>",
             ""]
    if report.manifest_sha256:
        lines += [f"manifest `sha256:{report.manifest_sha256}`", ""]
    lines += ["| check | result | detail |", "| --- | --- | --- |"]
    lines += [f"| `{cell(r.name)}` | {STATUS_WORD[r.status]} | {cell(r.message)} |" for r in test_results(report)]
    if report.comparisons:
        lines += ["", "| output | mode | result | bitwise | differing | max abs | max rel | max ULP |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in report.comparisons:
            lines.append(
                f"| `{cell(c.name)}` | {c.spec} | {'pass' if c.passed else '**FAIL**'} | "
                f"{'yes' if c.bitwise_equal else 'no'} | {c.elements_differing}/{c.elements} | "
                f"{_number(c.max_abs_diff)} | {_number(c.max_rel_diff)} | "
                f"{'-' if c.max_ulp is None else c.max_ulp} |"
            )
    lines += ["", "</details>", ""]
    return lines


class MarkdownFormatter:
    """One headline, one summary table, details for what did not plainly verify."""

    def render(self, reports: Sequence[Report]) -> str:
        counts = {v: sum(r.verdict is v for r in reports) for v in Verdict}
        code = worst_exit_code(reports)
        word = {0: "passed", 1: "FAILED", 3: "COULD NOT VERIFY"}[code]
        parts = [f"{counts[Verdict.VERIFIED]} verified"]
        if counts[Verdict.FAILED]:
            parts.append(f"{counts[Verdict.FAILED]} failed")
        if counts[Verdict.ERROR]:
            parts.append(f"{counts[Verdict.ERROR]} could not be verified")
        lines = [f"## ogverify: {word}", "",
                 f"{len(reports)} bundle(s): {', '.join(parts)}. Exit code {code}.", "",
                 "| | bundle | verdict | reason |", "| --- | --- | --- | --- |"]
        for r in reports:
            reason = r.headline.partition(": ")[2]
            lines.append(f"| {ICON[r.verdict]} | `{cell(r.bundle)}` | {r.verdict.value} | {cell(reason)} |")
        lines.append("")
        for r in reports:
            if outcome(r) != "PASSED":
                lines += _details(r)
        return "\n".join(lines).rstrip("\n") + "\n"

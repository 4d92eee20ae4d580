"""A report as a list of named test results, for JUnit, SARIF and verdict attestations.

Names are stable across runs so that CI history, code-scanning alerts and signed verdicts
can be matched: one per stage (``integrity``, ``signatures``, ``environment``, ``replay``,
``policy``, ``bundle``, ``attestation[<keyid12>]``) and one per compared output,
``output[<name>].<mode>`` (e.g. ``output[logits].exact``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ogverify.report.findings import Finding, Report, Status

Outcome = Literal["PASSED", "WARNED", "FAILED"]


@dataclass(frozen=True)
class TestResult:
    """One named check of one bundle."""

    __test__ = False  # not a pytest test class

    name: str
    stage: str
    status: Status
    message: str
    finding: Finding


def test_name(finding: Finding, report: Report) -> str:
    """The stable name of a top-level finding of ``report``."""
    if finding.stage == "comparison":
        output = finding.subject.removeprefix("output '").removesuffix("'")
        modes = {c.name: c.spec.mode for c in report.comparisons}
        return f"output[{output}].{modes.get(output, 'exact')}"
    if finding.stage == "attestation":
        return f"attestation[{finding.evidence.get('keyid', '')!s:.12}]"
    return finding.stage


def test_results(report: Report) -> list[TestResult]:
    """Every top-level finding of ``report`` as a named result, in report order."""
    return [TestResult(test_name(f, report), f.stage, f.status, f.message, f) for f in report.findings]


def outcome(report: Report) -> Outcome:
    """PASSED (verified, no warnings), WARNED (verified with warnings) or FAILED (anything else)."""
    if report.exit_code != 0:
        return "FAILED"
    if any(f.status is Status.WARN for top in report.findings for f in top.walk()):
        return "WARNED"
    return "PASSED"


def partition(report: Report) -> dict[str, list[str]]:
    """Test names by outcome: ``passedTests``, ``warnedTests``, ``failedTests`` (skipped ones omitted)."""
    groups: dict[str, list[str]] = {"passedTests": [], "warnedTests": [], "failedTests": []}
    for result in test_results(report):
        if result.status is Status.PASS:
            groups["passedTests"].append(result.name)
        elif result.status is Status.WARN:
            groups["warnedTests"].append(result.name)
        elif result.status in (Status.FAIL, Status.ERROR):
            groups["failedTests"].append(result.name)
    return groups

"""The result of checking a bundle: a verdict, a tree of findings, and the numbers behind them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ogverify.errors import ExitCode
from ogverify.evidence.comparison import OutputComparison
from ogverify.evidence.json_fields import JsonFields

REPORT_VERSION = 1

Impact = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class EnvironmentDifference(JsonFields):
    """One field that differs between the recorded and the current environment."""

    field: str
    recorded: Any
    current: Any
    impact: Impact
    why: str

    def change(self) -> str:
        """The difference in a line a person reads: for lists (CPU flags), what is missing and what
        is new rather than both whole lists; the full values stay in ``to_json``."""
        if not (isinstance(self.recorded, list) and isinstance(self.current, list)):
            return f"recorded {self.recorded!r}, here {self.current!r}"
        recorded, current = {str(v) for v in self.recorded}, {str(v) for v in self.current}
        parts = [f"{len(names)} {what}: {_few(names)}" for names, what in (
            (sorted(recorded - current), "recorded value(s) missing here"),
            (sorted(current - recorded), "value(s) here, not recorded")) if names]
        return "; ".join(parts) or "same values in another order"


def _few(names: list[str], shown: int = 4) -> str:
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown - 1]) + f" and {len(names) - shown + 1} more"



class Status(StrEnum):
    """The outcome of one finding."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    WARN = "warn"


class Verdict(StrEnum):
    """The outcome of a whole check."""

    VERIFIED = "verified"
    FAILED = "failed"
    ERROR = "error"

    @property
    def exit_code(self) -> ExitCode:
        return {
            Verdict.VERIFIED: ExitCode.VERIFIED,
            Verdict.FAILED: ExitCode.FAILED,
            Verdict.ERROR: ExitCode.CANNOT_VERIFY,
        }[self]


@dataclass(frozen=True)
class Finding:
    """One statement about the bundle, with its evidence and any more specific findings below it.

    Attributes:
        stage: the pipeline stage: ``bundle``, ``integrity``, ``signatures``, ``environment``,
            ``replay``, ``comparison`` or ``drift`` (the explanation of a failed reproduction).
        subject: what the finding is about, as a person names it (``input 'x'``).
        status: pass, fail (evidence does not hold), error (could not verify), skip or warn.
        message: one line.
        evidence: machine-readable facts behind the message.
        children: more specific findings.
    """

    stage: str
    subject: str
    status: Status
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[Finding, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "subject": self.subject,
            "status": self.status.value,
            "message": self.message,
            "evidence": dict(self.evidence),
            "children": [child.to_json() for child in self.children],
        }

    def walk(self) -> list[Finding]:
        """This finding and every finding below it, depth first."""
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found


def worst_exit_code(reports: Sequence[Report]) -> int:
    """Exit code of several reports: could-not-verify (3) over failed (1) over verified (0)."""
    codes = {r.exit_code for r in reports}
    for code in (ExitCode.CANNOT_VERIFY, ExitCode.FAILED):
        if code in codes:
            return int(code)
    return int(ExitCode.VERIFIED)


def verdict_of(findings: tuple[Finding, ...]) -> Verdict:
    """FAILED if any finding fails, else ERROR if any could not be performed, else VERIFIED."""
    statuses = {f.status for top in findings for f in top.walk()}
    if Status.FAIL in statuses:
        return Verdict.FAILED
    if Status.ERROR in statuses:
        return Verdict.ERROR
    return Verdict.VERIFIED


@dataclass(frozen=True)
class Report:
    """Everything ``check`` found about one bundle."""

    bundle: str
    findings: tuple[Finding, ...]
    manifest_sha256: str | None = None
    comparisons: tuple[OutputComparison, ...] = ()
    environment_differences: tuple[EnvironmentDifference, ...] = ()
    replay: Mapping[str, Any] | None = None
    rerun: bool = True

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)

    @property
    def exit_code(self) -> ExitCode:
        return self.verdict.exit_code

    @property
    def explanation(self) -> Finding | None:
        """The drift engine's finding, when a failed reproduction was explained."""
        return next((f for f in self.findings if f.stage == "drift" and f.subject == "explanation"), None)

    @property
    def cause(self) -> str | None:
        """One line: why the reproduction failed, when the drift engine could say."""
        explanation = self.explanation
        return explanation.message if explanation is not None else None

    @property
    def headline(self) -> str:
        """One line: the verdict and its first reason."""
        verdict = self.verdict
        if verdict is Verdict.VERIFIED:
            scope = "integrity and signatures hold" if not self.rerun else "outputs reproduced"
            return f"VERIFIED: {scope}"
        wanted = Status.FAIL if verdict is Verdict.FAILED else Status.ERROR
        first = next(f for top in self.findings for f in top.walk() if f.status is wanted)
        label = "FAILED" if verdict is Verdict.FAILED else "COULD NOT VERIFY"
        return f"{label}: {first.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "report_version": REPORT_VERSION,
            "bundle": self.bundle,
            "verdict": self.verdict.value,
            "exit_code": int(self.exit_code),
            "headline": self.headline,
            "manifest_sha256": self.manifest_sha256,
            "rerun": self.rerun,
            "findings": [f.to_json() for f in self.findings],
            "outputs": [c.to_json() for c in self.comparisons],
            "environment_differences": [d.to_json() for d in self.environment_differences],
            "replay": dict(self.replay) if self.replay is not None else None,
            "cause": self.cause,
            # None when no search ran ("no explanation: ..."): the schema's explanation is the search's evidence.
            "explanation": dict(self.explanation.evidence) if self.explanation is not None and self.explanation.evidence
            else None,
            "first_divergent_node": self.first_divergent_node,
        }

    @property
    def first_divergent_node(self) -> dict[str, Any] | None:
        """From the producer's recorded trace: the first node whose output here differs from the
        producer's (``name``, ``op_type``, ``output``, ``role``, ...), when there is one."""
        explanation = self.explanation
        node = explanation.evidence.get("first_divergent_node") if explanation is not None else None
        return dict(node) if isinstance(node, dict) else None

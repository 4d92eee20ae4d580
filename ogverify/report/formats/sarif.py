"""SARIF 2.1.0 for code-scanning UIs: a result per check that failed, could not run, or warned.

One run, tool ``ogverify`` with one rule per stage (``ogverify/integrity`` ...); each result
points at the bundle (``artifactLocation``), names the check in ``logicalLocations``
(``output[logits].exact``) and carries a stable ``partialFingerprints`` entry (manifest digest
and check name), so alerts survive re-runs. Passing checks are not listed: code-scanning UIs
show results as alerts. ``invocations[0]`` carries the exit code.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from ogverify import __version__
from ogverify.report.findings import Report, Status, worst_exit_code
from ogverify.report.results import test_results

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://ogverify.dev"
RULES: dict[str, str] = {
    "bundle": "The bundle can be opened and its layout and manifest are valid.",
    "integrity": "Every artifact matches its content digest; nothing was added.",
    "signatures": "The bundle is signed by trusted keys over this exact manifest.",
    "environment": "The checking environment matches the recorded one where it matters.",
    "replay": "The model re-executes under the recorded configuration.",
    "comparison": "Each reproduced output matches the claimed one under its comparison mode.",
    "policy": "The bundle meets the compliance policy (signers, comparison modes).",
    "attestation": "A signed verdict attestation about this bundle verifies.",
}
LEVEL = {Status.FAIL: "error", Status.ERROR: "error", Status.WARN: "warning"}


def artifact_uri(bundle: str) -> str:
    """A URI reference for a bundle path or URL: relative paths stay relative."""
    if "://" in bundle:
        return bundle
    if PureWindowsPath(bundle).drive:
        return PureWindowsPath(bundle).as_uri()
    path = PurePosixPath(bundle)
    quoted = urllib.parse.quote(path.as_posix())
    return f"file://{quoted}" if path.is_absolute() else quoted


def rule_id(stage: str) -> str:
    return f"ogverify/{stage}"


def sarif_log(reports: Sequence[Report]) -> dict[str, Any]:
    """The SARIF log object."""
    descriptions = dict(RULES)
    for report in reports:
        for finding in report.findings:
            descriptions.setdefault(finding.stage, f"The {finding.stage} stage of check holds.")
    stages = list(descriptions)
    rules = [
        {"id": rule_id(stage), "name": stage, "shortDescription": {"text": text},
         "defaultConfiguration": {"level": "error"}}
        for stage, text in descriptions.items()
    ]
    results = []
    for report in reports:
        for result in test_results(report):
            if result.status not in LEVEL:
                continue
            stage = result.stage
            identity = f"{report.manifest_sha256 or report.bundle}\0{result.name}"
            fingerprint = hashlib.sha256(identity.encode()).hexdigest()
            results.append({
                "ruleId": rule_id(stage),
                "ruleIndex": stages.index(stage),
                "kind": "fail",
                "level": LEVEL[result.status],
                "message": {"text": f"{report.bundle}: {result.message}"},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": artifact_uri(report.bundle)}},
                    "logicalLocations": [{"name": result.name, "fullyQualifiedName": f"{report.bundle}#{result.name}",
                                          "kind": "member"}],
                }],
                "partialFingerprints": {"ogverifyCheck/v1": fingerprint},
                "properties": {"status": result.status.value, "verdict": report.verdict.value,
                               "check": result.name, "manifest_sha256": report.manifest_sha256 or ""},
            })
    code = worst_exit_code(reports)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ogverify", "version": __version__, "informationUri": INFORMATION_URI,
                                "rules": rules}},
            "invocations": [{"executionSuccessful": code != 3, "exitCode": code}],
            "results": results,
            "properties": {"bundles": [{"bundle": r.bundle, "verdict": r.verdict.value,
                                        "manifest_sha256": r.manifest_sha256 or ""} for r in reports]},
        }],
    }


class SarifFormatter:
    """Pretty-printed SARIF 2.1.0 JSON."""

    def render(self, reports: Sequence[Report]) -> str:
        return json.dumps(sarif_log(reports), indent=2, sort_keys=True) + "\n"

"""JSON reports, as described by ``schemas/report-v1.json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ogverify.report.findings import REPORT_VERSION, Report, worst_exit_code


def reports_to_json(reports: Sequence[Report]) -> dict[str, Any]:
    """One report as itself; several under ``reports`` with the worst exit code."""
    if len(reports) == 1:
        return reports[0].to_json()
    code = worst_exit_code(reports)
    return {
        "report_version": REPORT_VERSION,
        "verdict": {0: "verified", 1: "failed", 3: "error"}[code],
        "exit_code": code,
        "reports": [r.to_json() for r in reports],
    }


class JsonFormatter:
    """Pretty-printed, key-sorted JSON."""

    def render(self, reports: Sequence[Report]) -> str:
        return json.dumps(reports_to_json(reports), indent=2, sort_keys=True) + "\n"

"""JUnit XML: one ``<testsuite>`` per bundle, one ``<testcase>`` per stage and per compared output.

Test names are the stable names of ``ogverify.report.results`` (``integrity``, ``output[logits].exact``),
so CI test history lines up across runs. FAIL becomes ``<failure>``, ERROR (could not verify)
``<error>``, SKIP ``<skipped>``; a warning passes, with its text in ``<system-out>``. The shape
follows the widely used Jenkins/Surefire JUnit schema.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import PurePath

from ogverify.report.findings import Report, Status
from ogverify.report.results import test_results

# XML 1.0 cannot carry most control characters, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return _INVALID_XML.sub("\ufffd", value)


def classname(bundle: str) -> str:
    """``ogverify.<bundle file name>``, dots in the name kept as the reader expects."""
    return "ogverify." + _text(PurePath(bundle.rstrip("/")).name or bundle)


class JunitFormatter:
    """``<testsuites>`` with a ``<testsuite>`` per bundle."""

    def render(self, reports: Sequence[Report]) -> str:
        root = ET.Element("testsuites", name="ogverify")
        totals = {"tests": 0, "failures": 0, "errors": 0}
        for report in reports:
            results = test_results(report)
            counts = {
                "tests": len(results),
                "failures": sum(r.status is Status.FAIL for r in results),
                "errors": sum(r.status is Status.ERROR for r in results),
                "skipped": sum(r.status is Status.SKIP for r in results),
            }
            for key in totals:
                totals[key] += counts[key]
            suite = ET.SubElement(root, "testsuite", {"name": _text(report.bundle)})
            for key, value in counts.items():
                suite.set(key, str(value))
            properties = ET.SubElement(suite, "properties")
            ET.SubElement(properties, "property", name="verdict", value=report.verdict.value)
            ET.SubElement(properties, "property", name="exit_code", value=str(int(report.exit_code)))
            if report.manifest_sha256:
                ET.SubElement(properties, "property", name="manifest_sha256", value=report.manifest_sha256)
            for result in results:
                case = ET.SubElement(suite, "testcase", name=_text(result.name), classname=classname(report.bundle))
                message = _text(result.message)
                if result.status is Status.FAIL:
                    ET.SubElement(case, "failure", type=result.stage, message=message).text = _detail(result.finding)
                elif result.status is Status.ERROR:
                    ET.SubElement(case, "error", type=result.stage, message=message).text = _detail(result.finding)
                elif result.status is Status.SKIP:
                    ET.SubElement(case, "skipped", message=message)
                elif result.status is Status.WARN:
                    ET.SubElement(case, "system-out").text = f"warning: {message}"
        for key, value in totals.items():
            root.set(key, str(value))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _detail(finding: object) -> str:
    from ogverify.report.findings import Finding

    assert isinstance(finding, Finding)
    lines = [f"{f.status.value}: {f.message}" for f in finding.walk()[1:] if f.status in (Status.FAIL, Status.ERROR)]
    return _text("\n".join(lines) or finding.message)

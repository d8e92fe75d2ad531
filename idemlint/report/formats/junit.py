"""``--format junit``: JUnit XML, which every CI server shows as a test report.

One failing test case per finding (named by rule and place, so a CI's
"new failures" view tracks it) and one passing test case per clean checked
file, so the report also says what was checked. Built with ElementTree, which
escapes every message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from idemlint.report.formats import Report
from idemlint.report.formats.text import finding_line

SUITE = "idemlint"


def render(report: Report) -> str:
    with_findings = {finding.path for finding in report.findings}
    clean = sorted(set(report.files) - with_findings)
    if not report.findings and not clean:
        clean = ["idemlint check"]
    tests = len(report.findings) + len(clean)
    failures = str(len(report.findings))
    suites = ET.Element("testsuites", name=SUITE, tests=str(tests), failures=failures)
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=SUITE,
        tests=str(tests),
        failures=failures,
        errors="0",
        skipped="0",
    )
    for finding in report.findings:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{SUITE}.{finding.checklist}",
            name=f"{finding.rule} {finding.path}:{finding.line}:{finding.column}",
            file=finding.path,
            line=str(finding.line),
        )
        failure = ET.SubElement(case, "failure", type=finding.rule, message=finding.message)
        failure.text = finding_line(finding)
    for path in clean:
        ET.SubElement(suite, "testcase", classname=f"{SUITE}.files", name=path, file=path)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"

"""``--format json``: the public, stable contract documented in docs/output-formats.md.

``{"findings": [...], "summary": {...}}``, plus ``"baseline"`` when a baseline
is used. Keys are only ever added, never renamed or dropped.
"""

from __future__ import annotations

import json
from typing import Any

from idemlint.report.formats import Report
from idemlint.report.formats.summary import summary_object


def document(report: Report) -> dict[str, Any]:
    """The JSON document as Python data."""
    doc: dict[str, Any] = {
        "findings": [finding.to_json() for finding in report.findings],
        "summary": summary_object(report),
    }
    if report.baseline is not None:
        doc["baseline"] = {
            "matched": report.baseline.matched,
            "fixed": [entry.to_json() for entry in report.baseline.fixed],
            "suppressed": [entry.to_json() for entry in report.baseline.suppressed],
        }
    return doc


def render(report: Report) -> str:
    return json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"

"""``--format json``: the public, stable contract documented in docs/output-formats.md.

``{"findings": [...], "summary": {...}}``, plus ``"baseline"`` when a baseline
is used. Keys are only ever added, never renamed or dropped.
"""

from __future__ import annotations

import json
from typing import Any

from idemlint.catalog import help_uri, load_catalog
from idemlint.findings import Finding
from idemlint.report.formats import Report
from idemlint.report.formats.summary import summary_object


def finding_document(finding: Finding) -> dict[str, Any]:
    """One finding of the contract: :meth:`Finding.to_json`, plus what the catalog says
    of its rule: ``fix`` (its one-line fix) and ``help_uri`` (its docs page)."""
    rule = load_catalog().get(finding.rule)
    return {
        **finding.to_json(),
        "fix": rule.short_fix if rule is not None else "",
        "help_uri": help_uri(finding.rule),
    }


def document(report: Report) -> dict[str, Any]:
    """The JSON document as Python data."""
    doc: dict[str, Any] = {
        "findings": [finding_document(finding) for finding in report.findings],
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

"""``--format sarif``: SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

Each rule carries its full descriptor (description, help in text and
markdown, a link to its docs page, its checklist item as a property and a
tag), each result its baseline fingerprint (so code scanning tracks an alert
across edits the way ``--baseline`` does), its rule's one-line fix and docs page
as the properties ``fix`` and ``help_uri`` (SARIF's own ``fixes`` are file edits,
which idemlint does not make) and, when it is reached through helpers, a code
flow from the task through every call to the finding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from idemlint import __version__
from idemlint.catalog import Rule, help_uri, load_catalog
from idemlint.findings import NOTICE, Finding
from idemlint.report.baseline import FINGERPRINT_KEY, fingerprint
from idemlint.report.formats import Report
from idemlint.report.formats.locations import SymbolLocator

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://idemlint.readthedocs.io/"
ROOT_ID = "SRCROOT"


SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
"""A finding's severity as a SARIF result level."""


def level(rule_id: str) -> str:
    """Notices (IDM0xx) are ``note``; every retry-safety rule is a ``warning``."""
    return "note" if rule_id.startswith("IDM0") else "warning"


def rule_descriptor(rule: Rule) -> dict[str, Any]:
    """The ``reportingDescriptor`` of one catalog rule."""
    short = rule.format_message("...") if "{detail}" in rule.message else rule.format_message()
    bad = "\n\n".join(rule.bad)
    good = "\n\n".join(rule.good)
    text = f"{rule.why}\n\nFix: {rule.fix}\n\nBad:\n{bad}\n\nGood:\n{good}"
    markdown = (
        f"**{rule.id} {rule.name}** ({rule.checklist})\n\n{rule.why}\n\n"
        f"**Fix:** {rule.fix}\n\n**Bad:**\n\n```python\n{bad}\n```\n\n"
        f"**Good:**\n\n```python\n{good}\n```\n\n[Documentation]({rule.help_uri})"
    )
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": rule.why},
        "help": {"text": text, "markdown": markdown},
        "helpUri": rule.help_uri,
        "defaultConfiguration": {"level": level(rule.id)},
        "properties": {
            "checklist": rule.checklist,
            "fix": rule.short_fix,
            "tags": [rule.checklist, "idempotency"]
            if rule.checklist != NOTICE
            else [rule.checklist, "idemlint"],
        },
    }


class _Locations:
    """Turns finding paths and dotted names into SARIF locations relative to the root."""

    def __init__(self, report: Report) -> None:
        self.root = report.root
        self.cwd = report.cwd
        self.symbols = SymbolLocator(report.root)

    def artifact(self, path: Path) -> dict[str, Any]:
        try:
            relative = path.relative_to(self.root).as_posix()
        except ValueError:
            return {"uri": path.as_uri()}
        return {"uri": quote(relative), "uriBaseId": ROOT_ID}

    def of_finding(self, finding: Finding) -> dict[str, Any]:
        path = Path(finding.path)
        region: dict[str, Any] = {"startLine": finding.line, "startColumn": finding.column}
        if finding.end_line >= finding.line and finding.end_column >= 1:
            region["endLine"] = finding.end_line
            region["endColumn"] = finding.end_column
        return {
            "physicalLocation": {
                "artifactLocation": self.artifact(path if path.is_absolute() else self.cwd / path),
                "region": region,
            }
        }

    def of_symbol(self, dotted: str, message: str) -> dict[str, Any]:
        location: dict[str, Any] = {
            "logicalLocations": [{"fullyQualifiedName": dotted, "kind": "function"}],
            "message": {"text": message},
        }
        found = self.symbols.locate(dotted)
        if found is not None:
            file, line = found
            location["physicalLocation"] = {
                "artifactLocation": self.artifact(file),
                "region": {"startLine": line},
            }
        return location


def code_flow(finding: Finding, places: _Locations) -> dict[str, Any]:
    """Task, then each function on the call chain, then the finding itself."""
    steps: list[dict[str, Any]] = [
        {"location": places.of_symbol(finding.task, f"task {finding.task}")}
    ]
    caller = finding.task
    for name in finding.via:
        steps.append({"location": places.of_symbol(name, f"{caller} calls {name}")})
        caller = name
    last = places.of_finding(finding)
    last["message"] = {"text": f"{finding.rule}: {finding.message}"}
    steps.append({"location": last})
    for step in steps:
        step["importance"] = "essential"
    return {"threadFlows": [{"locations": steps}]}


def document(report: Report) -> dict[str, Any]:
    """The SARIF log as Python data."""
    catalog = load_catalog()
    index = {rule_id: i for i, rule_id in enumerate(catalog)}
    places = _Locations(report)
    results = []
    for finding in report.findings:
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "level": (
                level(finding.rule)
                if finding.rule.startswith("IDM0")
                else SARIF_LEVELS.get(finding.severity, "warning")
            ),
            "message": {"text": finding.message},
            "locations": [places.of_finding(finding)],
            "partialFingerprints": {
                FINGERPRINT_KEY: fingerprint(finding, report.root, cwd=report.cwd)
            },
            "properties": {
                "checklist": finding.checklist,
                "severity": finding.severity,
                "fix": catalog[finding.rule].short_fix if finding.rule in catalog else "",
                "help_uri": help_uri(finding.rule),
                "task": finding.task,
                "tasks": list(finding.tasks),
                "via": list(finding.via),
                **({"delivery": finding.to_json()["delivery"]} if finding.delivery[0] else {}),
            },
        }
        if finding.rule in index:
            result["ruleIndex"] = index[finding.rule]
        if finding.task:
            result["codeFlows"] = [code_flow(finding, places)]
        results.append(result)
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "idemlint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [rule_descriptor(rule) for rule in catalog.values()],
                    }
                },
                "originalUriBaseIds": {ROOT_ID: {"uri": report.root.as_uri().rstrip("/") + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render(report: Report) -> str:
    return json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"

"""``--format gitlab``: GitLab Code Quality JSON, shown in merge request widgets.

GitLab de-duplicates issues by ``fingerprint``, so two copies of the same
statement must not share one: each occurrence's fingerprint is the baseline
fingerprint plus its occurrence number, stable across unrelated edits.
Paths are relative to the working directory, which in a GitLab job is the
repository checkout. Each issue carries the rule's one-line fix and a link to its docs
page in ``content.body`` (Markdown, shown when the issue is expanded).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from idemlint.catalog import help_uri, load_catalog
from idemlint.findings import NOTICE
from idemlint.report.baseline import fingerprint
from idemlint.report.formats import Report

GITLAB_SEVERITIES = {"error": "critical", "warning": "major", "info": "info"}
"""A finding's severity as a GitLab Code Quality severity."""


def document(report: Report) -> list[dict[str, Any]]:
    """The Code Quality issues as Python data."""
    seen: Counter[str] = Counter()
    issues = []
    for finding in report.findings:
        base = fingerprint(finding, report.root, cwd=report.cwd)
        seen[base] += 1
        unique = hashlib.sha256(f"{base}:{seen[base]}".encode()).hexdigest()[:32]
        description = f"{finding.rule} [{finding.checklist}] {finding.message}"
        if finding.task:
            description += f" (task: {finding.task})"
        rule = load_catalog().get(finding.rule)
        fix = f"**Fix:** {rule.short_fix}\n\n" if rule is not None and rule.short_fix else ""
        body = f"{fix}[{finding.rule} in the idemlint docs]({help_uri(finding.rule)})"
        issues.append(
            {
                "type": "issue",
                "description": description,
                "content": {"body": body},
                "check_name": finding.rule,
                "categories": ["Bug Risk"],
                "fingerprint": unique,
                "severity": (
                    "info"
                    if finding.checklist == NOTICE
                    else GITLAB_SEVERITIES.get(finding.severity, "major")
                ),
                "location": {
                    "path": finding.path,
                    "lines": {"begin": finding.line, "end": max(finding.end_line, finding.line)},
                },
            }
        )
    return issues


def render(report: Report) -> str:
    return json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"

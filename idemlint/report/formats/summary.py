"""Counts of a run: the JSON ``summary`` object, the summary line and ``--statistics``.

Kept in one place so the terminal summary and the JSON summary can never
disagree about what a run found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from idemlint.findings import CHECKLIST, NOTICE, Finding, checklist_for
from idemlint.report.formats import Report


def by_checklist(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts per checklist item: all six slugs and ``notice`` always present, in order."""
    counts = Counter(f.checklist for f in findings)
    return {slug: counts.get(slug, 0) for slug in (*CHECKLIST, NOTICE)}


def by_rule(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts per rule code, only rules that were found, in code order."""
    counts = Counter(f.rule for f in findings)
    return {rule: counts[rule] for rule in sorted(counts)}


def summary_object(report: Report) -> dict[str, Any]:
    """The ``summary`` of the JSON contract."""
    return {
        "total": len(report.findings),
        "by_checklist": by_checklist(report.findings),
        "by_rule": by_rule(report.findings),
        "files_checked": report.files_checked,
    }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_line(report: Report) -> str:
    """One line a person reads at the end of a run."""
    checked = _plural(report.files_checked, "file") + " checked"
    if report.findings:
        files = len({f.path for f in report.findings})
        parts = ", ".join(f"{slug} {n}" for slug, n in by_checklist(report.findings).items() if n)
        line = f"Found {_plural(len(report.findings), 'finding')} in {_plural(files, 'file')} "
        line += f"({checked}): {parts}."
    else:
        line = f"No findings ({checked})."
    if report.baseline is not None:
        line += f" {report.baseline.matched} known from the baseline"
        fixed = sum(entry.count for entry in report.baseline.fixed)
        if fixed:
            line += f", {fixed} baseline {'entry' if fixed == 1 else 'entries'} fixed"
        suppressed = sum(entry.count for entry in report.baseline.suppressed)
        if suppressed:
            line += f", {suppressed} suppressed (still found, not reported)"
        line += "."
    return line


def statistics(report: Report) -> str:
    """``--statistics``: count, code, checklist and name per rule, like flake8's."""
    from idemlint.catalog import load_catalog

    catalog = load_catalog()
    lines = []
    for rule, count in by_rule(report.findings).items():
        name = catalog[rule].name if rule in catalog else ""
        lines.append(f"{count:<5} {rule} [{checklist_for(rule)}] {name}")
    return "\n".join(lines)

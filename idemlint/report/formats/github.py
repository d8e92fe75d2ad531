"""``--format github``: GitHub Actions workflow commands, shown as annotations on the diff.

``::warning file=app/tasks.py,line=12,col=5,endLine=12,endColumn=30,title=IDM301::...``

Values are escaped as the runner expects (``%``, CR, LF everywhere; ``:`` and
``,`` inside properties), or a message holding a comma would cut the command.
Paths stay relative to the working directory: the job's checkout. The annotation's
message ends, on lines of its own, with the rule's one-line fix and its docs page, as
the text format does: the annotation is all a reviewer reads on the diff.
"""

from __future__ import annotations

from idemlint.catalog import help_uri, load_catalog
from idemlint.findings import NOTICE, Finding
from idemlint.report.formats import Report


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(finding: Finding) -> str:
    """One workflow command for one finding."""
    kind = {"error": "error", "warning": "warning", "info": "notice"}.get(
        finding.severity, "warning"
    )
    if finding.checklist == NOTICE:  # the tool's own notices stay notices
        kind = "notice"
    properties = [
        f"file={escape_property(finding.path)}",
        f"line={finding.line}",
        f"col={finding.column}",
    ]
    if finding.end_line >= finding.line:
        properties += [f"endLine={finding.end_line}", f"endColumn={finding.end_column}"]
    properties.append(f"title={escape_property(finding.rule)}")
    message = f"[{finding.checklist}] {finding.message}"
    if finding.task:
        message += f" (task: {finding.task})"
    rule = load_catalog().get(finding.rule)
    if rule is not None and rule.short_fix:
        message += f"\nFix: {rule.short_fix}"
    message += f"\n{help_uri(finding.rule)}"
    return f"::{kind} {','.join(properties)}::{escape_data(message)}"


def render(report: Report) -> str:
    return "".join(command(finding) + "\n" for finding in report.findings)

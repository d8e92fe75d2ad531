"""``--format text``: one line per finding, for people and for editors' problem matchers.

``path:line:col: IDM301 [check-prior-art] warning: message (task: app.tasks.charge_order)
https://idemlint.readthedocs.io/en/latest/rules/IDM301/`` (on one line)

The ``path:line:col:`` prefix is the shape every editor and CI log parser
already understands. Each line ends with the rule's docs page, as ruff links
each diagnostic to its rule, so the way to the fix is on the line that names
the problem, in a terminal (most make the address clickable) and in a CI log
alike. ``--show-fixes`` adds the catalog's one-line fix under each finding.
Colour is applied only when the caller says so (a TTY without ``NO_COLOR``);
the text itself is identical with or without it.
"""

from __future__ import annotations

import os
import tokenize
from collections.abc import Callable
from pathlib import Path

import click

from idemlint.catalog import help_uri
from idemlint.findings import NOTICE, Finding
from idemlint.report.baseline import BaselineEntry
from idemlint.report.formats import Report

Style = Callable[..., str]


def _plain(text: str, **_: object) -> str:
    return text


SEVERITY_COLORS = {"error": "red", "warning": "yellow", "info": "blue"}


def _severity(finding: Finding, style: Style) -> str:
    """``error: `` before a checklist finding's message; nothing for the tool's notices."""
    if finding.checklist == NOTICE:
        return ""
    color = SEVERITY_COLORS.get(finding.severity, "yellow")
    return style(finding.severity + ":", fg=color) + " "


def finding_line(finding: Finding, *, color: bool = False, link: bool = True) -> str:
    """The one-line form of a finding, ending with its rule's docs page unless ``link``
    is False."""
    style: Style = click.style if color else _plain
    rule_color = "yellow" if finding.checklist == NOTICE else "red"
    line = (
        f"{style(finding.path, bold=True)}:{finding.line}:{finding.column}: "
        f"{style(finding.rule, fg=rule_color, bold=True)} "
        f"{style('[' + finding.checklist + ']', fg='cyan')} {_severity(finding, style)}"
        f"{finding.message}"
    )
    if finding.task:
        others = len(finding.tasks) - 1
        more = f" and {others} more task{'s' if others > 1 else ''}" if others > 0 else ""
        line += " " + style(f"(task: {finding.task}{more})", dim=True)
    if link:
        line += " " + style(help_uri(finding.rule), dim=True)
    return line


def fix_line(finding: Finding, gutter: str = "", *, color: bool = False) -> str | None:
    """``--show-fixes``: the catalog's one-line fix of the finding's rule, under it
    (aligned with a source excerpt's ``=`` lines); None for a rule the catalog lacks."""
    from idemlint.catalog import load_catalog

    rule = load_catalog().get(finding.rule)
    if rule is None:
        return None
    style: Style = click.style if color else _plain
    return f" {gutter} = {style('fix:', fg='green', bold=True)} {rule.short_fix}"


class SourceLines:
    """Reads the checked files' lines once each, for ``--show-source``."""

    def __init__(self, cwd: Path, root: Path | None = None) -> None:
        self._cwd = cwd
        self._root = None if root is None else os.path.realpath(root)
        """Files that resolve outside it are not read (a notice about a symlink to
        ``/etc/passwd`` must not print its first line)."""
        self._files: dict[str, list[str]] = {}

    def line(self, finding: Finding) -> str | None:
        lines = self._files.get(finding.path)
        if lines is None:
            path = Path(finding.path)
            path = path if path.is_absolute() else self._cwd / path
            real = os.path.realpath(path)
            lines = []
            if self._root is None or real.startswith(self._root.rstrip(os.sep) + os.sep):
                try:
                    with tokenize.open(path) as handle:
                        lines = handle.read().splitlines()
                except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                    lines = []
            self._files[finding.path] = lines
        if 0 < finding.line <= len(lines):
            return lines[finding.line - 1]
        return finding.source or None


def source_excerpt(finding: Finding, text: str, *, color: bool = False) -> str:
    """The offending line with a caret under the finding's columns, and the call chain."""
    style: Style = click.style if color else _plain
    number = str(finding.line)
    gutter = " " * len(number)
    start = max(finding.column - 1, 0)
    if finding.end_line == finding.line and finding.end_column > finding.column:
        width = finding.end_column - finding.column
    else:
        width = max(len(text.rstrip()) - start, 1)
    indent = "".join(ch if ch == "\t" else " " for ch in text[:start])
    lines = [
        f" {number} | {text.rstrip()}",
        f" {gutter} | {indent}{style('^' * width, fg='red', bold=True)}",
    ]
    if finding.via:
        chain = " -> ".join((finding.task, *finding.via))
        lines.append(f" {gutter} = via {chain}")
    return "\n".join(lines)


def render(
    report: Report, *, color: bool = False, show_source: bool = False, show_fixes: bool = False
) -> str:
    """The findings as text lines (the summary line is added by the CLI)."""
    sources = SourceLines(report.cwd, report.root) if show_source else None
    out: list[str] = []
    for finding in report.findings:
        out.append(finding_line(finding, color=color))
        gutter = ""
        if sources is not None:
            text = sources.line(finding)
            if text is not None:
                out.append(source_excerpt(finding, text, color=color))
                gutter = " " * len(str(finding.line))
        fix = fix_line(finding, gutter, color=color) if show_fixes else None
        if fix is not None:
            out.append(fix)
    return "".join(line + "\n" for line in out)


def fixed_entries(report: Report) -> str:
    """``--show-fixed``: baseline entries no finding matches any more, then those whose
    finding is still there but silenced (never called fixed)."""
    if report.baseline is None:
        return "No baseline entries fixed.\n"
    out = []
    if report.baseline.fixed:
        out.append("Fixed since the baseline (no longer found):")
        out += [_entry_line(entry) for entry in report.baseline.fixed]
    else:
        out.append("No baseline entries fixed.")
    if report.baseline.suppressed:
        out.append("Suppressed since the baseline (still found, silenced by a comment or the")
        out.append("configuration; not fixed):")
        out += [_entry_line(entry) for entry in report.baseline.suppressed]
    return "\n".join(out) + "\n"


def _entry_line(entry: BaselineEntry) -> str:
    task = f" (task: {entry.task})" if entry.task else ""
    times = f" x{entry.count}" if entry.count > 1 else ""
    return f"  {entry.path}: {entry.rule}{task} {entry.statement}{times}"

"""Notices about paths the run could not check at all (a folder it cannot list, a file
name that is not UTF-8, a named symlink leading out of the project): IDM001 findings,
like those of a file that does not parse, so that a run never reports "no findings"
for code it did not read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from idemlint.findings import Finding, display_path
from idemlint.lint.files.discovery import Skipped
from idemlint.lint.run.results import message

NOTICE = "IDM001"


def printable(name: str) -> str:
    """``name`` with the bytes of a non-UTF-8 file name escaped (``b\\xe9.py``), so that
    every report format can print it."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def skipped_findings(
    skipped: Iterable[Skipped], cwd: Path, report: Callable[[Path], bool]
) -> list[Finding]:
    """One notice per skipped path that lies where findings are reported."""
    return [
        Finding(
            path=printable(display_path(s.path, cwd)),
            line=1,
            column=1,
            rule=NOTICE,
            message=message(NOTICE, s.reason),
            end_line=1,
            end_column=2,
        )
        for s in skipped
        if report(s.path)
    ]


def merged(*groups: list[Finding]) -> list[Finding]:
    """Findings of several sources in one list, in report order."""
    return sorted(
        (f for group in groups for f in group), key=lambda f: (f.path, f.line, f.column, f.rule)
    )

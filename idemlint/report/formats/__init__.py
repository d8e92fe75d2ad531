"""Reports: the same findings rendered for people, scripts and CI platforms.

Every renderer takes one :class:`Report` and returns text; none of them reads
configuration or decides what to report (that is :mod:`idemlint.report.selection`),
so the findings are identical in every format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from idemlint.findings import Finding
from idemlint.report.baseline import BaselineMatch

FORMATS = ("text", "json", "sarif", "github", "junit", "gitlab")
"""Values of ``--format``; all but ``text`` are machine formats."""


@dataclass(frozen=True)
class Report:
    """What one run found, with what the renderers need to place it."""

    findings: Sequence[Finding]
    """Reported findings (after suppression, selection and baseline), sorted."""
    files_checked: int
    root: Path
    """Project root: SARIF and baseline paths are relative to it."""
    cwd: Path
    """Working directory: finding paths are relative to it."""
    files: Sequence[str] = ()
    """Display paths of the checked files (JUnit lists clean files as passing tests)."""
    baseline: BaselineMatch | None = None
    """Set when ``--baseline`` was given."""


def renderer(name: str) -> Callable[[Report], str]:
    """The renderer of a machine format (imported lazily: most runs need one)."""
    if name == "json":
        from idemlint.report.formats.json import render
    elif name == "sarif":
        from idemlint.report.formats.sarif import render
    elif name == "github":
        from idemlint.report.formats.github import render
    elif name == "junit":
        from idemlint.report.formats.junit import render
    elif name == "gitlab":
        from idemlint.report.formats.gitlab import render
    else:
        raise ValueError(f"no machine renderer for format {name!r}")
    return render

"""Inline suppressions: ``# idemlint: ignore[IDM301] -- reason`` and ``# noqa: IDM301``.

Comments are found with :mod:`tokenize`, never with a regex over raw lines, so
that a string holding ``"# noqa"`` is not mistaken for a suppression. A
suppression applies to findings on its own line (findings are reported at the
first line of a statement), by exact code or prefix.

A suppression that silences nothing is itself reported, as IDM003: stale
suppressions hide the next real problem on that line. A bare ``# noqa`` and
``# noqa`` comments naming only other tools' codes are shared with other
linters, so they suppress idemlint findings but are never reported as unused.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from idemlint.findings import Finding, display_name
from idemlint.lint.files.comments import Suppression, suppressions_in

UNUSED_SUPPRESSION = "IDM003"

_NOTICES_THAT_HIDE_FINDINGS = ("IDM001", "IDM002")
"""A file that did not parse, or where a rule raised, may lack the findings its
suppressions were written for; their use cannot be judged there."""


def apply_suppressions(
    findings: Iterable[Finding],
    files: Iterable[Path],
    *,
    cwd: Path,
    sources: Mapping[Path, str] | None = None,
    known: Mapping[Path, Sequence[Suppression]] | None = None,
    suppressed: list[Finding] | None = None,
) -> list[Finding]:
    """Drop suppressed findings (into ``suppressed`` when given) and add an IDM003
    notice per unused suppression.

    ``files`` are the checked files: those with no finding are read too, since
    every suppression in them is unused. Paths in findings are resolved
    against ``cwd`` (they are displayed relative to it). ``sources`` holds the
    text of files to read from memory instead of disk (an editor's unsaved buffer);
    ``known`` the suppressions of files already parsed (by absolute path: the
    engine keeps them with its snapshot, so an unchanged file is not tokenized again).
    """
    # keys are normalised absolute path strings: pathlib per file costs more than the
    # rest of a warm run on a tree of thousands of files
    top = str(cwd)

    def key_of(path: object) -> str:
        name = str(path)
        return os.path.normpath(name if os.path.isabs(name) else os.path.join(top, name))

    texts = {key_of(p): t for p, t in (sources or {}).items()}
    parsed = {key_of(p): s for p, s in (known or {}).items()}
    by_file: dict[str, list[Finding]] = {}
    display: dict[str, str] = {}
    for finding in findings:
        key = key_of(finding.path)
        by_file.setdefault(key, []).append(finding)
        display.setdefault(key, finding.path)
    for checked in files:
        key = key_of(checked)
        if key not in by_file:
            by_file[key] = []

    kept: list[Finding] = []
    for file, file_findings in by_file.items():
        text = texts.get(file)
        if text is not None:
            suppressions = suppressions_in(text.encode())
        elif file in parsed:
            suppressions = [dataclasses.replace(s, used=set()) for s in parsed[file]]
        else:
            suppressions = _read_suppressions(Path(file))
        if not suppressions:
            kept.extend(file_findings)
            continue
        by_line: dict[int, list[Suppression]] = {}
        for suppression in suppressions:
            by_line.setdefault(suppression.line, []).append(suppression)
        for finding in file_findings:
            hits = [s.silences(finding.rule) for s in by_line.get(finding.line, ())]
            if not any(hits):
                kept.append(finding)
            elif suppressed is not None:
                suppressed.append(finding)
        if any(f.rule in _NOTICES_THAT_HIDE_FINDINGS for f in file_findings):
            continue
        for suppression in suppressions:
            unused = suppression.unused_codes()
            if unused is not None:
                shown = display.get(file) or display_name(file, cwd)
                kept.append(_unused_notice(suppression, unused, shown))
    return kept


def _read_suppressions(file: Path) -> list[Suppression]:
    try:
        data = file.read_bytes()
    except OSError:
        return []
    return suppressions_in(data)


def _message(detail: str) -> str:
    from idemlint.catalog import CatalogError, get_rule

    try:
        return get_rule(UNUSED_SUPPRESSION).format_message(detail=detail)
    except CatalogError:  # a broken install must still say what is wrong
        return f"{detail} silences nothing"


def _unused_notice(suppression: Suppression, unused: tuple[str, ...], path: str) -> Finding:

    if suppression.kind == "noqa":
        text = f"# noqa: {', '.join(unused)}"
    elif unused == ("*",):
        text = "# idemlint: ignore"
    else:
        text = f"# idemlint: ignore[{', '.join(unused)}]"
    return Finding(
        path=path,
        line=suppression.line,
        column=suppression.column,
        rule=UNUSED_SUPPRESSION,
        message=_message(f"`{text}`"),
        end_line=suppression.line,
        end_column=suppression.end_column,
        source=text,
    )

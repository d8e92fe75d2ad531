"""The run's last stage: hits become findings, and the files reported on get their
inline suppressions.

Inputs: the analysis' hits and parse errors (:class:`~idemlint.lint.run.incremental.Outcome`),
the stamped files and which of them are reported on. Outputs: sorted
:class:`~idemlint.findings.Finding` objects, messages in the catalog's words, and the
suppression comments by path (kept in the snapshot, so an unchanged file is not
tokenized again). Applying suppressions and selection is the report's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from idemlint.catalog import CatalogError, get_rule
from idemlint.findings import Finding, display_path
from idemlint.lint.analysis.walk import Hit
from idemlint.lint.files.comments import Suppression, suppressions_in
from idemlint.lint.run.incremental import Outcome, Run, Stamped
from idemlint.lint.run.prepass import Prepass


def message(rule: str, detail: str, delivery: str = "", kind: str = "") -> str:
    try:
        return get_rule(rule).format_message(detail, delivery, kind)
    except CatalogError:
        return f"{rule} {detail} {delivery}".strip()


def collapse(hits: Iterable[tuple[str, Hit]]) -> list[tuple[str, Hit, tuple[int, ...]]]:
    """One problem, one finding: a task's hits of the same rule on the same object (the
    same call or field) in one function become the first of them, with the lines of the
    others."""
    first: dict[tuple[str, str, tuple[str, ...], str, str], tuple[str, Hit]] = {}
    more: dict[tuple[str, str, tuple[str, ...], str, str], list[int]] = {}
    for task, hit in hits:
        key = (task, hit.path, hit.via, hit.rule, hit.detail)
        if not hit.detail or hit.rule[3] in "01":
            key = (task, hit.path, hit.via, hit.rule, f"{hit.span.line}:{hit.span.column}")
        kept = first.get(key)
        if kept is None:
            first[key] = (task, hit)
            more[key] = []
        elif hit.span.line != kept[1].span.line:
            more[key].append(hit.span.line)
    return [(task, hit, tuple(sorted(set(more[key])))) for key, (task, hit) in first.items()]


def findings_from_hits(
    hits: Iterable[tuple[str, Hit]], root: Path, cwd: Path, report: Callable[[Path], bool]
) -> list[Finding]:
    """Apply "one problem, one finding" and turn hits into findings: same-rule hits on one
    object in one function collapse (:func:`collapse`); a place reached from several tasks
    is one finding that lists them all (``tasks``), reported for the task that reaches it
    most directly (the shortest call chain, then by name): its ``via`` explains it best."""
    by_place: dict[tuple[str, int, str], Finding] = {}
    collapsed = sorted(collapse(hits), key=lambda item: (len(item[1].via), item[0]))
    for task, hit, others in collapsed:
        path = root / hit.path
        if not report(path):
            continue
        place = (hit.path, hit.span.line, hit.rule)
        known = by_place.get(place)
        if known is not None:
            if task not in known.tasks:
                by_place[place] = replace(known, tasks=(*known.tasks, task))
            continue
        text = message(hit.rule, hit.detail, hit.delivery[2], hit.delivery[0])
        if others:
            where = ", ".join(str(n) for n in others)
            text += f" (the same at line{'s' if len(others) > 1 else ''} {where})"
        by_place[place] = Finding(
            path=display_path(path, cwd),
            line=hit.span.line,
            column=hit.span.column,
            rule=hit.rule,
            message=text,
            end_line=hit.span.end_line,
            end_column=hit.span.end_column,
            task=task,
            via=hit.via,
            source=hit.stmt,
            delivery=hit.delivery,
            severity=hit.severity,
            tasks=(task,),
            also=others,
        )
    lines_with_key_rule = {(f.path, f.line) for f in by_place.values() if f.rule[3] == "2"}
    findings = [
        f
        for f in by_place.values()
        if not (f.rule[3] == "3" and (f.path, f.line) in lines_with_key_rule)
    ]
    return sorted(findings, key=lambda f: (f.path, f.line, f.column, f.rule))


def findings_of(
    outcome: Outcome,
    files: list[Stamped],
    root: Path,
    cwd: Path,
    report: Callable[[Path], bool],
) -> list[Finding]:
    """Every finding of the run in the files reported on: the checks' and IDM001 for
    each file that does not parse."""
    findings = findings_from_hits(outcome.hits, root, cwd, report)
    for f in files:
        err = outcome.errors.get(f.rel)
        if err is not None and report(f.path):
            findings.append(
                Finding(
                    path=display_path(f.path, cwd),
                    line=err.line,
                    column=err.column,
                    rule="IDM001",
                    message=message("IDM001", err.message),
                    end_line=err.line,
                    end_column=err.column + 1,
                )
            )
    return sorted(findings, key=lambda f: (f.path, f.line, f.column, f.rule))


def inline_suppressions(
    files: list[Stamped],
    run: Run,
    report: Callable[[Path], bool],
    prepass: Prepass | None = None,
) -> tuple[dict[Path, list[Suppression]], int]:
    """The suppression comments of the files reported on (from the last snapshot where a
    file is unchanged, from the cold run's per-file pass where it read them, recorded in
    the new one), and how many files were tokenized."""
    found: dict[Path, list[Suppression]] = {}
    tokenized = 0
    for f in files:
        state = run.new.files[f.rel]
        old = run.last.files.get(f.rel) if run.last is not None else None
        rows = prepass.suppressions(f) if prepass is not None else None
        if old is not None and old.digest == f.digest and old.suppressions is not None:
            state.suppressions = old.suppressions
        elif rows is not None and report(f.path):
            tokenized += 1
            state.suppressions = rows
        elif report(f.path):
            tokenized += 1
            state.suppressions = [
                (s.line, s.column, s.end_column, s.kind, s.codes, s.reportable)
                for s in suppressions_in(f.read())
            ]
        if state.suppressions is not None and report(f.path):
            found[f.path] = [Suppression(*row) for row in state.suppressions]
    return found, tokenized

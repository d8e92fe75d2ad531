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

import ast
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    judged: list[tuple[str, list[Suppression]]] = []
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
        if not any(f.rule in _NOTICES_THAT_HIDE_FINDINGS for f in file_findings):
            judged.append((file, suppressions))
    if not judged:
        return kept
    places = _Places(kept, key_of, texts)
    for file, suppressions in judged:
        for suppression in suppressions:
            unused = suppression.unused_codes()
            if unused is not None:
                shown = display.get(file) or display_name(file, cwd)
                hints = [places.hint(file, suppression.line, code) for code in unused]
                kept.append(_unused_notice(suppression, unused, shown, hints))
    return kept


class _Places:
    """Where the findings a stale suppression was likely written for really are."""

    def __init__(
        self,
        reported: Iterable[Finding],
        key_of: Callable[[object], str],
        texts: Mapping[str, str],
    ) -> None:
        self._key_of = key_of
        self._texts = texts
        self._by_file: dict[str, list[Finding]] = {}
        self._by_function: dict[str, list[Finding]] = {}
        """Findings by every task and function on their call chains (dotted names)."""
        for finding in sorted(reported):
            if finding.rule == UNUSED_SUPPRESSION:
                continue
            self._by_file.setdefault(key_of(finding.path), []).append(finding)
            for name in {*finding.tasks, finding.task, *finding.via} - {""}:
                self._by_function.setdefault(name, []).append(finding)

    def hint(self, file: str, line: int, code: str) -> str | None:
        """Where a finding ``code`` (``*``: any) meant by a comment on ``line`` of ``file``
        is reported, or None when that is not known: the first line of its statement,
        when the comment sits on a later line of it; or a line that the function holding
        the comment reaches (a helper's line, in this file or another), where a
        suppression has to go since findings are reported where the effect happens."""

        def matches(finding: Finding) -> bool:
            return code == "*" or finding.rule.startswith(code)

        for finding in self._by_file.get(file, ()):
            if matches(finding) and finding.line < line <= max(finding.end_line, finding.line):
                return (
                    f"{finding.rule} is reported at line {finding.line}, where its statement "
                    "starts: the comment goes there"
                )
        for function in self._functions_at(file, line):
            reached = [
                f
                for f in self._by_function.get(function, ())
                if matches(f) and (self._key_of(f.path), f.line) != (file, line)
            ]
            if reached:
                first = min(reached)
                where = (
                    f"line {first.line}"
                    if self._key_of(first.path) == file
                    else f"{first.path}:{first.line}"
                )
                more = len({(f.path, f.line) for f in reached}) - 1
                also = f" (and {more} more)" if more > 0 else ""
                return (
                    f"{first.rule} is reported at {where}{also}, in code that {function} "
                    "reaches: the comment goes there"
                )
        return None

    def _functions_at(self, file: str, line: int) -> list[str]:
        """Dotted names the functions holding ``line`` may have, innermost first."""
        text = self._texts.get(file)
        try:
            source: str | bytes = text if text is not None else Path(file).read_bytes()
            tree = ast.parse(source)
        except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
            return []
        holding: list[str] = []

        def visit(body: list[ast.stmt], prefix: str) -> None:
            for node in body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    if first <= line <= (node.end_lineno or node.lineno):
                        holding.append(prefix + node.name)
                        visit(node.body, prefix + node.name + ".")

        visit(tree.body, "")
        return [f"{module}.{name}" for name in reversed(holding) for module in _modules_of(file)]


def _modules_of(file: str) -> list[str]:
    """The dotted names ``file`` may have as a module (``a/b/c.py``: ``a.b.c``, ``b.c``,
    ``c``), longest first; a package's ``__init__.py`` is named by its folder. Which is
    right depends on the project root, which suppressions are applied without."""
    stem, _ = os.path.splitext(os.path.normpath(file))
    parts = [p for p in stem.split(os.sep) if p]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return [".".join(parts[i:]) for i in range(len(parts))]


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


def _unused_notice(
    suppression: Suppression, unused: tuple[str, ...], path: str, hints: Sequence[str | None]
) -> Finding:
    """The IDM003 finding of one suppression, saying where its findings really are when
    that is known (a comment on the last line of a statement, or at a task's call of the
    helper that holds the finding)."""
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
        message="; ".join([_message(f"`{text}`"), *(h for h in hints if h)]),
        end_line=suppression.line,
        end_column=suppression.end_column,
        source=text,
    )

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
import io
import os
import re
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from idemlint.findings import Finding

UNUSED_SUPPRESSION = "IDM003"

_IDEMLINT = re.compile(r"#\s*idemlint:\s*ignore(?![\w-])(?:\[(?P<codes>[^\]]*)\])?", re.I)
_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
_SPLIT = re.compile(r"[,\s]+")
_NOTICES_THAT_HIDE_FINDINGS = ("IDM001", "IDM002")
"""A file that did not parse, or where a rule raised, may lack the findings its
suppressions were written for; their use cannot be judged there."""


@dataclass
class Suppression:
    """One suppression comment (or one of two in a comment) and what it silenced."""

    line: int
    column: int
    """1-based column where the suppression starts."""
    end_column: int
    kind: str
    """``idemlint`` or ``noqa``: how the comment was written, echoed in IDM003."""
    codes: tuple[str, ...] | None
    """Codes or prefixes it silences; None silences every idemlint finding on the line."""
    reportable: bool
    """False for a bare ``# noqa``, which other linters share."""
    used: set[str] = field(default_factory=set)

    def silences(self, rule: str) -> bool:
        """Whether this suppression covers ``rule``; records the use."""
        if self.codes is None:
            self.used.add("*")
            return True
        hit = False
        for code in self.codes:
            if rule.startswith(code):
                self.used.add(code)
                hit = True
        return hit

    def unused_codes(self) -> tuple[str, ...] | None:
        """Codes that silenced nothing; ``("*",)`` for a blanket one; None when all used."""
        if not self.reportable:
            return None
        if self.codes is None:
            return None if self.used else ("*",)
        unused = tuple(code for code in self.codes if code not in self.used)
        return unused or None


def parse_suppressions(source: bytes) -> list[Suppression]:
    """Every idemlint-relevant suppression in a file's comments.

    Tokenizing stops at the first error (a file that does not parse); the
    comments before it still count.
    """
    found: list[Suppression] = []
    try:
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            if token.type == tokenize.COMMENT:
                found.extend(_from_comment(token.string, token.start[0], token.start[1]))
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        pass
    return found


def _from_comment(comment: str, line: int, col0: int) -> list[Suppression]:
    out: list[Suppression] = []
    for match in _IDEMLINT.finditer(comment):
        raw = match.group("codes")
        codes = None if raw is None else tuple(c.upper() for c in _SPLIT.split(raw) if c)
        out.append(
            Suppression(
                line=line,
                column=col0 + match.start() + 1,
                end_column=col0 + match.end() + 1,
                kind="idemlint",
                codes=codes,
                reportable=True,
            )
        )
    noqa = _NOQA.search(comment)
    if noqa is not None:
        raw = noqa.group("codes")
        if raw is None:
            codes_or_all: tuple[str, ...] | None = None
        else:
            codes_or_all = tuple(
                c.upper() for c in _SPLIT.split(raw) if c.upper().startswith("IDM")
            )
        if codes_or_all != ():  # a noqa naming only other tools' codes is not ours
            out.append(
                Suppression(
                    line=line,
                    column=col0 + noqa.start() + 1,
                    end_column=col0 + noqa.end() + 1,
                    kind="noqa",
                    codes=codes_or_all,
                    reportable=codes_or_all is not None,
                )
            )
    return out


def apply_suppressions(
    findings: Iterable[Finding],
    files: Iterable[Path],
    *,
    cwd: Path,
    sources: Mapping[Path, str] | None = None,
    known: Mapping[Path, Sequence[Suppression]] | None = None,
) -> list[Finding]:
    """Drop suppressed findings and add an IDM003 notice per unused suppression.

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


def suppressions_in(data: bytes) -> list[Suppression]:
    """The suppressions in a file's bytes (tokenized only when one may be there)."""
    lowered = data.lower()
    if b"idemlint" not in lowered and b"noqa" not in lowered:
        return []  # the common case, without the cost of tokenizing
    return parse_suppressions(data)


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


def display_name(path: str, cwd: Path) -> str:
    """:func:`display_path` of a path string (relative ones are under ``cwd``), without
    pathlib: it is asked for every file of a run."""
    top = str(cwd)
    name = os.path.normpath(path if os.path.isabs(path) else os.path.join(top, path))
    if name.startswith(top + os.sep):
        return name[len(top) + 1 :].replace(os.sep, "/")
    return name.replace(os.sep, "/") if name != top else "."


def display_path(path: Path, cwd: Path) -> str:
    """A path as findings show it: relative to ``cwd`` when under it, ``/`` separators."""
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()

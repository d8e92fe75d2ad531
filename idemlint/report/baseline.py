"""Baselines: adopt idemlint on a large codebase by reporting only new findings.

A finding's fingerprint is its rule, its path (relative to the project root),
its task and its offending statement without its comment and with all whitespace
removed; never its line number. So adding lines above a finding, reformatting it, or
adding a comment to its line (``# TODO``, ``# noqa: E501``, what ``ruff --add-noqa``
writes) keeps it in the baseline.

Matching counts: a fingerprint recorded once in the baseline absorbs one
finding. When the code holds the same statement twice (a pasted copy), the
second one is new. Baselines that match by set membership (bandit's) hide
every copy of a known problem; this one does not.

A baseline entry no reported finding matches is either *suppressed* (the finding
is still there, silenced by a suppression comment or the configuration) or *fixed*
(it is gone). Only the second is progress, so only it is called fixed.

Baseline files written before comments were left out of the recipe are read as they
are: each entry's fingerprint is computed again from the statement it records, and
the fingerprint it stores is accepted too, so a committed baseline keeps matching.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from idemlint.errors import ConfigError
from idemlint.findings import Finding
from idemlint.lint.files.project_root import path_from_root

DEFAULT_BASELINE = ".idemlint-baseline.json"
FORMAT_VERSION = 1
FINGERPRINT_KEY = "idemlint/v1"
"""Name of the fingerprint in SARIF ``partialFingerprints``; bump with the recipe. Not
bumped when comments left the recipe: that changed only the fingerprints of lines with a
comment, and a new key would have made code scanning see every alert as new once."""


def normalise_statement(source: str) -> str:
    """The statement without its comment and with all whitespace removed: stable under
    reformatting, re-indenting and comments added to the line. A statement that is
    nothing but a comment (an unused suppression's own text) keeps it: it is all there is."""
    code = "".join(without_comment(source).split())
    return code or "".join(source.split())


def legacy_statement(source: str) -> str:
    """The first recipe's normal form, whitespace removed and comments kept: what the
    fingerprints of baseline files written by idemlint 0.1 were computed from."""
    return "".join(source.split())


def without_comment(line: str) -> str:
    """``line`` up to its ``#`` comment, if any: a ``#`` inside a string literal is not one.

    A hand-written scan, not :mod:`tokenize`: the statement is one line of what may be a
    longer statement (an open bracket, the start of a triple-quoted string), which the
    tokenizer refuses.
    """
    quote = ""
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
        elif char == "#":
            return line[:i]
        elif char in "'\"":
            quote = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else char
            i += len(quote)
            continue
        i += 1
    return line


def readable_statement(finding: Finding) -> str:
    """The statement as stored in the baseline file, for a reviewer to read."""
    return " ".join((finding.source or finding.message).split())


def fingerprint(finding: Finding, root: Path, *, cwd: Path) -> str:
    """The finding's identity across edits: rule, root-relative path, task, statement."""
    return fingerprint_of(
        finding.rule,
        path_from_root(finding.path, root, cwd=cwd),
        finding.task,
        readable_statement(finding),
    )


def fingerprint_of(rule: str, path: str, task: str, statement: str) -> str:
    """The fingerprint recipe, shared by findings and by baseline entries read from disk."""
    return _digest(rule, path, task, normalise_statement(statement))


def legacy_fingerprint_of(rule: str, path: str, task: str, statement: str) -> str:
    """The first recipe (comments counted), accepted when reading older baseline files."""
    return _digest(rule, path, task, legacy_statement(statement))


def _digest(rule: str, path: str, task: str, normal: str) -> str:
    text = "\0".join((rule, path, task, normal))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, order=True)
class BaselineEntry:
    """One fingerprint and how many findings carry it."""

    path: str
    rule: str
    task: str
    statement: str
    fingerprint: str
    count: int = 1
    stored: str = field(default="", compare=False)
    """The fingerprint as the baseline file holds it (maybe of an older recipe);
    "" for entries built from findings."""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rule": self.rule,
            "task": self.task,
            "statement": self.statement,
            "fingerprint": self.fingerprint,
            "count": self.count,
        }


@dataclass(frozen=True)
class BaselineMatch:
    """The outcome of comparing a run with a baseline."""

    new: list[Finding]
    """Findings not absorbed by the baseline: what the run reports."""
    matched: int
    """Findings absorbed by the baseline."""
    fixed: list[BaselineEntry]
    """Baseline entries (with the count left over) that no finding matched any more."""
    suppressed: list[BaselineEntry] = field(default_factory=list)
    """Baseline entries whose finding is still found, but silenced (a suppression
    comment, ``ignore``, ``per-file-ignores``, ``min-severity``): not fixed."""


def build_baseline(findings: Iterable[Finding], root: Path, *, cwd: Path) -> list[BaselineEntry]:
    """Baseline entries for ``findings``, one per fingerprint with its count, sorted."""
    counts: Counter[str] = Counter()
    first: dict[str, BaselineEntry] = {}
    for finding in findings:
        path = path_from_root(finding.path, root, cwd=cwd)
        statement = readable_statement(finding)
        key = fingerprint_of(finding.rule, path, finding.task, statement)
        counts[key] += 1
        first.setdefault(key, BaselineEntry(path, finding.rule, finding.task, statement, key))
    return sorted(
        BaselineEntry(e.path, e.rule, e.task, e.statement, e.fingerprint, counts[key])
        for key, e in first.items()
    )


def dump_baseline(entries: Sequence[BaselineEntry]) -> str:
    """The baseline file's text: sorted keys and entries, two-space indent, so diffs review well."""
    document = {"version": FORMAT_VERSION, "findings": [e.to_json() for e in sorted(entries)]}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_baseline(file: Path, entries: Sequence[BaselineEntry]) -> None:
    """Write the baseline atomically, so an interrupted run never leaves half a file."""
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(dump_baseline(entries), encoding="utf-8")
    tmp.replace(file)


def read_baseline(file: Path) -> list[BaselineEntry]:
    """Entries of a baseline file; a missing or malformed file is a config error (exit 2).

    Each entry's ``fingerprint`` is computed again from the fields it records, with
    today's recipe; the one the file stores is kept in ``stored`` and accepted too.
    """
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("baseline file not found", file=file) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable baseline: {exc}", file=file) from None
    except RecursionError:
        raise ConfigError("unreadable baseline: nested too deeply", file=file) from None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise ConfigError(f"not an idemlint baseline of format version {FORMAT_VERSION}", file=file)
    raw = document.get("findings")
    if not isinstance(raw, list):
        raise ConfigError("baseline has no 'findings' list", file=file)
    entries: list[BaselineEntry] = []
    for index, item in enumerate(raw):
        try:
            path = str(item["path"])
            rule = str(item["rule"])
            task = str(item["task"])
            statement = str(item["statement"])
            entry = BaselineEntry(
                path=path,
                rule=rule,
                task=task,
                statement=statement,
                fingerprint=fingerprint_of(rule, path, task, statement),
                count=int(item.get("count", 1)),
                stored=str(item["fingerprint"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"baseline entry {index} is malformed: {item!r}", file=file) from None
        if entry.count < 1:
            raise ConfigError(f"baseline entry {index} has count < 1", file=file)
        entries.append(entry)
    return entries


def match_baseline(
    findings: Sequence[Finding],
    entries: Sequence[BaselineEntry],
    root: Path,
    *,
    cwd: Path,
    silenced: Sequence[Finding] = (),
) -> BaselineMatch:
    """Split findings into new and baselined, counting duplicates.

    Findings are consumed in path/line order, so when a statement now appears
    more often than the baseline recorded, the later copies are the new ones.
    ``silenced`` are the findings the run found but does not report (suppressed);
    entries they match are listed as suppressed, not fixed.
    """
    pool = _Pool(entries)
    new: list[Finding] = []
    matched = 0
    for finding in sorted(findings):
        if pool.take(finding, root, cwd):
            matched += 1
        else:
            new.append(finding)
    before = Counter(pool.remaining)
    for finding in sorted(silenced):
        pool.take(finding, root, cwd)
    suppressed = pool.left_over(entries, before - pool.remaining)
    fixed = pool.left_over(entries, pool.remaining)
    return BaselineMatch(new=new, matched=matched, fixed=fixed, suppressed=suppressed)


class _Pool:
    """What is left of a baseline's counts while findings are matched against it."""

    def __init__(self, entries: Sequence[BaselineEntry]) -> None:
        self.remaining: Counter[str] = Counter()
        self.alias: dict[str, str] = {}
        """A fingerprint stored in the file (older recipe) to the entry's current one."""
        for entry in entries:
            self.remaining[entry.fingerprint] += entry.count
            if entry.stored and entry.stored != entry.fingerprint:
                self.alias.setdefault(entry.stored, entry.fingerprint)

    def take(self, finding: Finding, root: Path, cwd: Path) -> bool:
        """Consume one count of the entry ``finding`` matches; whether there was one."""
        path = path_from_root(finding.path, root, cwd=cwd)
        statement = readable_statement(finding)
        current = fingerprint_of(finding.rule, path, finding.task, statement)
        legacy = legacy_fingerprint_of(finding.rule, path, finding.task, statement)
        for key in (current, self.alias.get(current), self.alias.get(legacy)):
            if key is not None and self.remaining[key] > 0:
                self.remaining[key] -= 1
                return True
        return False

    @staticmethod
    def left_over(
        entries: Sequence[BaselineEntry], counts: Mapping[str, int]
    ) -> list[BaselineEntry]:
        """The entries with what ``counts`` leaves of them (those left at zero dropped)."""
        left = Counter(counts)
        out: list[BaselineEntry] = []
        for entry in sorted(entries):
            count = min(entry.count, left[entry.fingerprint])
            if count > 0:
                left[entry.fingerprint] -= count
                out.append(replace(entry, count=count))
        return out

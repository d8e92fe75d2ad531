"""Baselines: adopt idemlint on a large codebase by reporting only new findings.

A finding's fingerprint is its rule, its path (relative to the project root),
its task and its offending statement with all whitespace removed; never its
line number, so adding lines above a finding or reformatting it keeps it in
the baseline.

Matching counts: a fingerprint recorded once in the baseline absorbs one
finding. When the code holds the same statement twice (a pasted copy), the
second one is new. Baselines that match by set membership (bandit's) hide
every copy of a known problem; this one does not.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idemlint.errors import ConfigError
from idemlint.findings import Finding
from idemlint.lint.files.project_root import path_from_root

DEFAULT_BASELINE = ".idemlint-baseline.json"
FORMAT_VERSION = 1
FINGERPRINT_KEY = "idemlint/v1"
"""Name of the fingerprint in SARIF ``partialFingerprints``; bump with the recipe."""


def normalise_statement(source: str) -> str:
    """The statement with all whitespace removed: stable under reformatting and re-indenting."""
    return "".join(source.split())


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
    text = "\0".join((rule, path, task, normalise_statement(statement)))
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
    """Entries of a baseline file; a missing or malformed file is a config error (exit 2)."""
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
            entry = BaselineEntry(
                path=str(item["path"]),
                rule=str(item["rule"]),
                task=str(item["task"]),
                statement=str(item["statement"]),
                fingerprint=str(item["fingerprint"]),
                count=int(item.get("count", 1)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"baseline entry {index} is malformed: {item!r}", file=file) from None
        if entry.count < 1:
            raise ConfigError(f"baseline entry {index} has count < 1", file=file)
        entries.append(entry)
    return entries


def match_baseline(
    findings: Sequence[Finding], entries: Sequence[BaselineEntry], root: Path, *, cwd: Path
) -> BaselineMatch:
    """Split findings into new and baselined, counting duplicates.

    Findings are consumed in path/line order, so when a statement now appears
    more often than the baseline recorded, the later copies are the new ones.
    """
    remaining: Counter[str] = Counter()
    for entry in entries:
        remaining[entry.fingerprint] += entry.count
    new: list[Finding] = []
    matched = 0
    for finding in sorted(findings):
        key = fingerprint(finding, root, cwd=cwd)
        if remaining[key] > 0:
            remaining[key] -= 1
            matched += 1
        else:
            new.append(finding)
    fixed: list[BaselineEntry] = []
    for entry in sorted(entries):
        left = min(entry.count, remaining[entry.fingerprint])
        if left > 0:
            remaining[entry.fingerprint] -= left
            fixed.append(
                BaselineEntry(
                    entry.path, entry.rule, entry.task, entry.statement, entry.fingerprint, left
                )
            )
    return BaselineMatch(new=new, matched=matched, fixed=fixed)

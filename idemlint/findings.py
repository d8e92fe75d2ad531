"""The finding: what every entry point (CLI, flake8, pre-commit, reports) prints.

A finding is plain data so that it survives the process pool, the cache and
every output format unchanged. ``Finding.to_json`` is the public JSON contract
documented in ``docs/output-formats.md``; add keys, never rename or drop them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKLIST = (
    "assume-retries",
    "identify-the-key",
    "check-prior-art",
    "database-constraints",
    "declarative-over-imperative",
    "obvious-state-transitions",
)
"""The six items of the retry-safety checklist, in hundreds-digit order (IDM1xx..IDM6xx)."""

NOTICE = "notice"
"""Checklist slug of IDM0xx findings: the tool's own notices (unparsable file, rule error, ...)."""


SEVERITIES = ("info", "warning", "error")
"""From least to most severe. ``error``: money, messages to people, writes to other
services; ``warning``: business rows, relative updates, enqueues of unsafe tasks, races;
``info``: audit, log and marker rows. Reports show findings at ``min-severity`` and above
(default ``warning``)."""

DEFAULT_SEVERITY = "warning"


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 1


def checklist_for(rule: str) -> str:
    """The checklist slug a rule code maps to, read off its hundreds digit."""
    digit = int(rule[3])
    return NOTICE if digit == 0 else CHECKLIST[digit - 1]


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place, reached from one task."""

    path: str
    """Path as displayed: relative to the working directory when under it, ``/`` separators."""
    line: int
    column: int
    rule: str
    message: str
    end_line: int
    end_column: int
    task: str = ""
    """Dotted name of the task whose run reaches this line ("" for file-level notices)."""
    via: tuple[str, ...] = ()
    """Call chain from the task to the function holding this line; empty when it is the task."""
    source: str = field(default="", compare=False)
    """The offending statement's first source line (fingerprints, ``--show-source``)."""
    delivery: tuple[str, str, str] = field(default=("", "", ""), compare=False)
    """How the task can run twice here: mechanism (``redelivery``, ``retry``,
    ``retry-call``, ``schedule``, ``assumed``), where it is configured (``path:line``),
    and the words of the message; empty for notices."""
    severity: str = field(default=DEFAULT_SEVERITY, compare=False)
    """``error``, ``warning`` or ``info`` (see :data:`SEVERITIES`)."""
    tasks: tuple[str, ...] = field(default=(), compare=False)
    """Every task whose run reaches this line (a shared helper's finding is one finding);
    ``task`` is the first of them."""
    also: tuple[int, ...] = field(default=(), compare=False)
    """Other lines of the same function with the same problem on the same object."""

    @property
    def checklist(self) -> str:
        return checklist_for(self.rule)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "checklist": self.checklist,
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "message": self.message,
            "task": self.task,
            "via": list(self.via),
            "tasks": list(self.tasks or ((self.task,) if self.task else ())),
            "also": list(self.also),
            "delivery": (
                {
                    "mechanism": self.delivery[0],
                    "source": self.delivery[1],
                    "detail": self.delivery[2],
                }
                if self.delivery[0]
                else None
            ),
        }


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

"""The project snapshot: what the last run found, and what each result was made from.

A re-check after a small edit should not redo the whole project. The snapshot, one
file per configuration in ``.idemlint_cache/projects/``, keeps from the last run:

* every file's stamp: size, modification time and a hash of its bytes, so that an
  unchanged file is recognised from ``os.stat`` alone (a file whose modification time
  is too close to the moment it was read is hashed again, as git does with its index);
* what the pre-check decided for it (full summary or not) and a hash of its scan,
  and, once per project, the pre-check graph's re-exports (to re-decide one file's
  edges without the whole graph);
* the names it defines, its imports, module-level assignments and class bases
  (:class:`~idemlint.lint.index.project.FileIndex`), so the project index is built, and names
  are resolved through modules, without loading any summary; its parse error, if any;
* its inline suppressions, when the file was reported on;
* per file, the task declarations found in it and the files that reading needed;
* per task, its findings (raw hits) and the files its analysis read.

A run that finds every stamp unchanged answers from the snapshot alone. Otherwise
only the results whose files changed are computed again (see
:mod:`idemlint.lint.run.incremental`). The snapshot is keyed by idemlint's version, the
hash of its analysis code and everything in the configuration that changes results,
so a new release, a patched checkout or a changed ``[tool.idemlint]`` never reads a
snapshot it did not write. Like the summaries, it is written to a temporary file
and renamed into place; one that does not load is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idemlint.lint.analysis.walk import Hit
from idemlint.lint.index.project import FileIndex
from idemlint.lint.index.tasks import Declaration
from idemlint.lint.run import cache
from idemlint.lint.run.cachedir import write_entry
from idemlint.lint.run.fingerprint import RACY_NS, analysis_fingerprint
from idemlint.lint.run.snapshot_check import check, index, seal, unseal
from idemlint.lint.summary.model import ParseError, Span

FORMAT = 6


def run_key(settings: object) -> str:
    """The snapshot's name for one configuration: ``settings`` is anything JSON can
    encode that changes results (knowledge, frameworks, excludes, pre-check on/off)."""
    h = hashlib.sha256()
    h.update(f"{cache.identity()}\0{FORMAT}\0{analysis_fingerprint()}\0".encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass
class FileState:
    """One file as the last run saw it."""

    path: str
    mtime_ns: int
    size: int
    digest: str
    full: bool
    """Summarised in full (else the pre-check ruled it out and its summary is empty)."""
    needed: bool
    """What the pre-check decided (a file it ruled out that does not parse is still
    summarised in full, for its parse error)."""
    scan: str
    """Hash of the pre-check's scan of the file ("" without the pre-check)."""
    index: FileIndex
    error: ParseError | None = None
    declarations: list[Declaration] | None = None
    """Task declarations found in the file; None when not computed."""
    declaration_deps: frozenset[str] = frozenset()
    candidate: bool = True
    """Whether the pre-check found it may declare a task (its declarations are looked
    for); a file needed only for what resolution reads of it is not."""
    enqueuer: bool = False
    """Not a candidate, but it enqueues a task: its enqueue sites are read (each is that
    task's ``concurrent`` mechanism), from its outline when that can tell them."""
    suppressions: list[SuppressionRow] | None = None
    """Its inline suppressions (:class:`idemlint.lint.files.comments.Suppression` fields); None
    when not read (only files a run reports on are)."""


@dataclass
class TaskState:
    record: tuple[str, str, tuple[int, int, int, int], str]
    hits: list[Hit]
    deps: frozenset[str]


@dataclass
class Snapshot:
    files: dict[str, FileState] = field(default_factory=dict)
    """By path, in the order the run read them."""
    signals: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    """Task function -> (the retry call found in its body, files read)."""
    tasks: dict[str, TaskState] = field(default_factory=dict)
    """By task name, in analysis order (sorted)."""
    prefilter: bool = True
    """Whether the pre-check ran (with no literal task root it is off for the project)."""
    exports: dict[tuple[str, str], set[str]] | None = None
    """The pre-check graph's module-like names (:func:`idemlint.lint.files.prefilter.edge_modules`),
    valid while no file's name bindings change."""

    # -- encoding ----------------------------------------------------------
    def to_json(self, written_ns: int) -> str:
        paths = list(self.files)
        number = {p: i for i, p in enumerate(paths)}

        def deps(d: frozenset[str]) -> list[int]:
            return sorted(number[p] for p in d if p in number)

        files = []
        for st in self.files.values():
            mtime = st.mtime_ns if written_ns - st.mtime_ns > RACY_NS else 0
            err = st.error
            files.append(
                [
                    st.path,
                    mtime,
                    st.size,
                    st.digest,
                    st.full,
                    st.needed,
                    st.scan,
                    st.index.module,
                    list(st.index.functions),
                    list(st.index.classes),
                    None if err is None else [err.message, err.line, err.column],
                    None if st.declarations is None else [d.to_json() for d in st.declarations],
                    deps(st.declaration_deps),
                    None if st.suppressions is None else [list(r) for r in st.suppressions],
                    dict(st.index.imports),
                    dict(st.index.raw_assigns),
                    dict(st.index.raw_bases),
                    st.candidate,
                    st.enqueuer,
                ]
            )
        tasks = [
            [name, list(t.record), [_hit_json(h, number) for h in t.hits], deps(t.deps)]
            for name, t in self.tasks.items()
        ]
        signals = {name: [called, deps(d)] for name, (called, d) in self.signals.items()}
        return json.dumps(
            {
                "format": FORMAT,
                "prefilter": self.prefilter,
                "exports": None
                if self.exports is None
                else [[m, n, sorted(v)] for (m, n), v in sorted(self.exports.items())],
                "files": files,
                "signals": signals,
                "tasks": tasks,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError("another snapshot format")
        paths = [f[0] for f in data["files"]]

        def deps(numbers: list[int]) -> frozenset[str]:
            return frozenset(paths[index(i, len(paths))] for i in numbers)

        snap = cls(prefilter=bool(data["prefilter"]))
        if data.get("exports") is not None:
            snap.exports = {(str(m), str(n)): set(v) for m, n, v in data["exports"]}
        for row in data["files"]:
            (path, mtime, size, dig, full, needed, scan) = row[:7]
            (module, funcs, classes, err, decls, ddeps, supp, imports, assigns, bases) = row[7:17]
            candidate, enqueuer = row[17], row[18]
            error = None if err is None else ParseError(str(err[0]), int(err[1]), int(err[2]))
            snap.files[path] = FileState(
                path=path,
                mtime_ns=int(mtime),
                size=int(size),
                digest=str(dig),
                full=bool(full),
                needed=bool(needed),
                scan=str(scan),
                index=FileIndex(
                    path,
                    module,
                    tuple(funcs),
                    tuple(classes),
                    error is not None,
                    dict(imports),
                    dict(assigns),
                    dict(bases),
                ),
                error=error,
                declarations=None if decls is None else [Declaration.from_json(d) for d in decls],
                declaration_deps=deps(ddeps),
                candidate=bool(candidate),
                enqueuer=bool(enqueuer),
                suppressions=None if supp is None else [_suppression_row(r) for r in supp],
            )
        for name, (called, d) in data["signals"].items():
            snap.signals[name] = (str(called), deps(d))
        for name, record, hits, d in data["tasks"]:
            qualified, framework, span, mechanisms = record
            snap.tasks[name] = TaskState(
                (str(qualified), str(framework), tuple(span), str(mechanisms)),
                [_hit_from_json(h, paths) for h in hits],
                deps(d),
            )
        return snap


SuppressionRow = tuple[int, int, int, str, "tuple[str, ...] | None", bool]
"""line, column, end column, kind, codes, reportable."""


def _suppression_row(data: list[Any]) -> SuppressionRow:
    line, column, end_column, kind, codes, reportable = data
    return (
        int(line),
        int(column),
        int(end_column),
        str(kind),
        None if codes is None else tuple(str(c) for c in codes),
        bool(reportable),
    )


def _hit_json(hit: Hit, number: dict[str, int]) -> list[Any]:
    s = hit.span
    return [
        hit.rule,
        [s.line, s.column, s.end_line, s.end_column],
        hit.detail,
        number.get(hit.path, hit.path),
        list(hit.via),
        hit.stmt,
        list(hit.delivery),
        hit.severity,
    ]


def _hit_from_json(data: list[Any], paths: list[str]) -> Hit:
    rule, span, detail, where, via, stmt, delivery, severity = data
    path = paths[index(where, len(paths))] if isinstance(where, int) else str(where)
    kind, source, words = (str(x) for x in delivery)
    return Hit(
        str(rule),
        Span(*span),
        str(detail),
        path,
        tuple(via),
        str(stmt),
        (kind, source, words),
        str(severity),
    )


# -- storage ---------------------------------------------------------------
def _file(folder: Path, key: str) -> Path:
    return folder / "projects" / f"{key}.json"


def stored(folder: Path, key: str) -> bool:
    """Whether a snapshot of this key is on disk (not whether it loads)."""
    return os.path.exists(_file(folder, key))


def load(folder: Path, key: str) -> Snapshot | None:
    """The snapshot of the last run with this configuration; None when there is none
    or it does not load: damaged (its checksum or shape, see
    :mod:`~idemlint.lint.run.snapshot_check`), another format."""
    try:
        snap = Snapshot.from_json(unseal(_file(folder, key).read_text("utf-8")))
        check(snap)
    except Exception:  # whatever is wrong with it, the run computes everything instead
        return None
    return snap


def save(folder: Path, key: str, snap: Snapshot) -> None:
    write_entry(_file(folder, key), folder, seal(snap.to_json(time.time_ns())))

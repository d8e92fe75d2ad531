"""One run of the analysis that reuses what the last run computed from unchanged files.

The pieces of a run and what each depends on (see :mod:`idemlint.lint.index.deps`):

* a file's summary: its bytes (the summary cache, :mod:`idemlint.lint.run.cache`);
* whether it is summarised at all: the pre-check over every file's scan
  (:mod:`idemlint.lint.files.prefilter`); reused while no changed file's scan changed;
* the task declarations in a file: the files read while looking for them;
* whether a task retries because of a call in its body: the files read for that;
* a task's findings: its declaration and the files its analysis read, plus the
  project's table of tasks (a call to another task reads it).

A piece whose files are all unchanged is taken from the snapshot
(:mod:`idemlint.lint.run.snapshot`); the others are computed again, on a project index whose
summaries are loaded only when something asks for them. With no snapshot (first
run, another configuration, a file added or removed) everything is computed, and
the result is the same either way: ``tests/test_incremental.py`` edits projects at
random and compares each re-check with a run from scratch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from idemlint.lint.analysis.walk import FunctionFacts, Hit, TaskContext
from idemlint.lint.checks import STATEMENT_CHECKS, TASK_CHECKS
from idemlint.lint.files.discovery import module_name
from idemlint.lint.index.project import FileIndex, Project
from idemlint.lint.index.tasks import (
    Declaration,
    Task,
    TaskFinder,
    TaskRow,
    merge_declarations,
    retry_signal,
    task_row,
)
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.run import snapshot
from idemlint.lint.run.cache import SummaryCache, key_for_digest
from idemlint.lint.run.snapshot import FileState, Snapshot, TaskState
from idemlint.lint.summary.model import FileSummary, ParseError
from idemlint.lint.summary.outline import EnqueueSite, Outline

NO_TASK_ROOT = "-"
"""The scan hash of every file when no file mentions a task rule's root (no scan is made)."""


@dataclass
class Stamped:
    """A file of this run: where it is, and a hash of its bytes."""

    path: Path
    rel: str
    module: str
    is_package: bool
    mtime_ns: int
    size: int
    digest: str
    content: bytes | None
    """Read when the last run's stamp did not match (else not read at all)."""
    override: bool = False
    """The content came from the caller (an editor's unsaved buffer), not from disk."""
    error: str = ""
    """Why the file could not be read ("" when it was): it is reported, not analysed."""
    unstable: bool = False
    """Not to be trusted by the next run (unreadable, or given up by the summariser): the
    snapshot keeps no digest for it, so the next run reads and summarises it again."""
    released: bool = False
    """Read (and found readable) for its stamp, then let go: a cold run's per-file pass
    had what it needed, and a big tree's bytes are not held; :meth:`read` reads again."""

    def read(self) -> bytes:
        if self.content is None:
            try:
                self.content = self.path.read_bytes()
            except OSError as exc:
                self.content = b""
                self.fail(exc)
        return self.content

    def release(self) -> None:
        """Let go of the bytes (read again from disk if asked for)."""
        if self.content is not None and not self.override and not self.error:
            self.content = None
            self.released = True

    def fail(self, exc: OSError) -> None:
        self.error = f"cannot read file: {exc.strerror or exc}"
        self.unstable = True


@dataclass
class Selection:
    """What the pre-check decided over the whole project."""

    needed: set[int] | None
    """Indexes of the files that need a full summary (None: all of them)."""
    scans: list[str]
    """Each file's scan hash."""
    exports: dict[tuple[str, str], set[str]] | None = None
    candidates: set[int] | None = None
    """Indexes of the needed files that may declare a task (None: every needed file).
    The others are needed only for what resolution reads of them: their declarations
    are not looked for, and their summaries are made when the analysis reads them."""
    enqueuers: set[int] | None = None
    """Indexes of the needed files, not candidates, that enqueue a task: only their
    enqueue sites are read (from their outline, when it can tell them)."""


@dataclass
class Outcome:
    hits: list[tuple[str, Hit]]
    """(task, hit) in task order."""
    errors: dict[str, ParseError]
    """Files that do not parse, by path relative to the root."""
    stats: dict[str, int] = field(default_factory=dict)
    """What was reused and redone: ``summarised`` (files given to the summariser, from
    the cache or made), ``empty`` (ruled out), ``dirty``, ``loaded`` (summaries read
    back on demand), ``declarations``, ``analysed`` and ``tasks``, ``prefilter_reused``."""
    tasks: list[TaskRow] = field(default_factory=list)
    """The project's tasks, by name: what ``idemlint tasks`` lists."""


def stamp(
    files: Sequence[Path],
    root: Path,
    rel: Callable[[Path], str],
    last: Snapshot | None,
    sources: Mapping[Path, bytes] | None = None,
) -> list[Stamped]:
    """Stamp every file: from ``os.stat`` where the last run's stamp still holds, else by
    hashing its bytes. The stat comes first: a write after it is seen next time."""
    out: list[Stamped] = []
    for path in files:
        name = rel(path)
        module, is_package = module_name(path, root)
        given = sources.get(path) if sources is not None else None
        if given is not None:  # never trusted by stamp next time: mtime 0
            out.append(
                Stamped(path, name, module, is_package, 0, -1, snapshot.digest(given), given, True)
            )
            continue
        try:
            st = os.stat(path)
            mtime, size = st.st_mtime_ns, st.st_size
        except OSError:
            mtime, size = 0, -1
        old = last.files.get(name) if last is not None else None
        if (
            old is not None
            and old.digest  # "": the last run gave the file up (crash, time limit): again
            and old.mtime_ns
            and old.mtime_ns == mtime
            and old.size == size
        ):
            out.append(Stamped(path, name, module, is_package, mtime, size, old.digest, None))
            continue
        try:
            content = path.read_bytes()
        except OSError as exc:  # reported (IDM001), as flake8 reports E902
            stamped = Stamped(path, name, module, is_package, 0, size, "", b"")
            stamped.fail(exc)
        else:
            stamped = Stamped(path, name, module, is_package, mtime, size, "", content)
        stamped.digest = snapshot.digest(stamped.read())
        out.append(stamped)
    return out


def run_task(ctx: TaskContext, *, statements_only: bool = False) -> None:
    """Every check on one task; a check that raises becomes an IDM002 hit."""
    checks = STATEMENT_CHECKS if statements_only else (*STATEMENT_CHECKS, *TASK_CHECKS)
    for label, check in checks:
        try:
            check(ctx)
        except Exception as exc:  # a rule bug must not stop the run
            ctx.hits.append(
                Hit(
                    "IDM002",
                    ctx.task.span,
                    f"{label}: {type(exc).__name__}: {exc}",
                    ctx.task.ref.file.path,
                    (),
                    "",
                )
            )


class EnqueueSafety:
    """Whether a task is safe to run twice: the checks find nothing in it when it is
    assumed to run twice. An enqueue of such a task is not reported (issue 10: an
    enqueue is a call, judged by what it runs). Memoised per run with the files each
    answer read, so a task reusing it depends on them too; a task that enqueues itself,
    directly or around a cycle, counts as unsafe while its own answer is pending."""

    def __init__(
        self,
        project: Project,
        tasks: Mapping[str, Task],
        facts_cache: dict[str, tuple[FunctionFacts, frozenset[str]]],
    ) -> None:
        self.project = project
        self.tasks = tasks
        self.facts_cache = facts_cache
        self.answers: dict[str, tuple[bool, frozenset[str]]] = {}
        self.pending: set[str] = set()

    def safe(self, name: str) -> bool:
        task = self.tasks.get(name)
        if task is None or name in self.pending:
            return False
        return self.project.tracker.memo(self.answers, name, lambda: self._analyse(task))

    def _analyse(self, task: Task) -> bool:
        self.pending.add(task.name)
        try:
            ctx = TaskContext(
                self.project, task, self.facts_cache, enqueue_safe=self.safe, assume=True
            )
            self.project.tracker.touch(task.ref.path)
            run_task(ctx, statements_only=True)
        finally:
            self.pending.discard(task.name)
        return not any(h.rule[3] in "23456" or h.rule == "IDM002" for h in ctx.hits)


class Run:
    """The analysis of one project, reusing the last run's results where it can."""

    def __init__(
        self,
        files: list[Stamped],
        knowledge: Knowledge,
        cache: SummaryCache | None,
        last: Snapshot | None,
        *,
        use_prefilter: bool,
        summarise: Callable[[list[tuple[int, Stamped]]], dict[int, FileSummary]],
        parses: Callable[[Stamped], bool],
        select: Callable[[list[Stamped]], Selection],
        scan_digest: Callable[[Stamped], str],
        triggered: Callable[[Stamped], bool],
        still_needed: Callable[[list[Stamped], Snapshot], bool],
        outline: Callable[[list[tuple[int, Stamped]]], dict[int, Outline | FileSummary]]
        | None = None,
        prefetch: Callable[[list[Stamped]], None] | None = None,
    ) -> None:
        self.files = files
        self.knowledge = knowledge
        self.cache = cache
        if last is not None and (
            list(last.files) != [f.rel for f in files] or last.prefilter != use_prefilter
        ):
            last = None  # a file added, removed or renamed: resolution may differ anywhere
        self.last = last
        self.use_prefilter = use_prefilter
        self._summarise = summarise
        self._parses = parses
        self._select = select
        self._scan_digest = scan_digest
        self._triggered = triggered
        self._still_needed = still_needed
        self._outline = outline
        self._prefetch = prefetch
        self._by_rel = {f.rel: f for f in files}
        self._by_module: dict[str, Stamped] = {}
        for f in files:
            self._by_module.setdefault(f.module, f)
        self._depth = max((f.module.count(".") + 1 for f in files), default=1)
        self._asked: set[str] = set()
        """Files whose summary was made or asked for ahead of need."""
        self.new = Snapshot(prefilter=use_prefilter)
        self.dirty: set[str] = set()
        self.stats: dict[str, int] = {}
        self._sites: dict[str, list[EnqueueSite]] = {}
        """The enqueue sites of the enqueuers this run outlined, by path."""
        self.outline_mismatch = False
        """A summary read on demand did not match the index its file was outlined to
        (:mod:`idemlint.lint.summary.outline`): the engine runs again without outlines."""

    # -- which files, summarised how ----------------------------------------
    def _needed(self) -> tuple[list[bool], list[str], list[bool] | None, list[bool]]:
        """Whether each file needs a full summary, its scan's hash, whether it may
        declare a task (None: every needed file may; the pre-check did not say), and
        whether it is needed only for its enqueue sites (:attr:`Selection.enqueuers`)."""
        files, last = self.files, self.last
        none = [False] * len(files)
        if not self.use_prefilter:
            return [True] * len(files), [""] * len(files), None, none
        if last is not None and all(st.scan == NO_TASK_ROOT for st in last.files.values()):
            # no file held a task rule's root: unless a changed file now does, none is needed
            changed = [f for f in files if f.digest != last.files[f.rel].digest]
            if not any(self._triggered(f) for f in changed):
                self.stats["prefilter_reused"] = 1
                return [False] * len(files), [NO_TASK_ROOT] * len(files), none, none
        elif last is not None:
            scans = []
            for f in files:
                old = last.files[f.rel]
                scans.append(old.scan if f.digest == old.digest else self._scan_digest(f))
            rescanned = [
                f for f, s in zip(files, scans, strict=True) if s != last.files[f.rel].scan
            ]
            if (
                not rescanned
                # nothing to add to (every file may declare a task, too: an edit that
                # changes a binding can make a file a candidate)
                or all(st.needed and st.candidate for st in last.files.values())
                or self._still_needed(rescanned, last)
            ):
                self.stats["prefilter_reused"] = 1
                self.new.exports = last.exports
                added = {f.rel for f in rescanned}  # kept from now on (see still_needed)
                # an unchanged file stays what it was: no binding changed anywhere, so no
                # name of it came to stand for a task rule's (see still_needed); a changed
                # or added file is looked at in full
                same = [f.digest == last.files[f.rel].digest and f.rel not in added for f in files]
                return (
                    [last.files[f.rel].needed or f.rel in added for f in files],
                    scans,
                    [
                        last.files[f.rel].candidate or not s
                        for f, s in zip(files, same, strict=True)
                    ],
                    [last.files[f.rel].enqueuer and s for f, s in zip(files, same, strict=True)],
                )
        selection = self._select(files)
        self.new.exports = selection.exports
        if selection.needed is None:
            return [True] * len(files), selection.scans, None, none
        needed = [i in selection.needed for i in range(len(files))]
        if selection.candidates is None or selection.enqueuers is None:
            return needed, selection.scans, None, none
        return (
            needed,
            selection.scans,
            [i in selection.candidates for i in range(len(files))],
            [i in selection.enqueuers for i in range(len(files))],
        )

    def _project(self) -> tuple[Project, dict[str, ParseError]]:
        files, last = self.files, self.last
        needed, scans, candidates, enqueuer = self._needed()
        candidate = candidates if candidates is not None else needed
        entries: list[FileSummary | FileIndex] = []
        fresh: list[tuple[int, Stamped]] = []
        outlined: list[tuple[int, Stamped]] = []
        made: dict[int, FileSummary] = {}
        full: list[bool] = []
        for i, f in enumerate(files):
            old = last.files[f.rel] if last is not None else None
            if old is not None and old.digest == f.digest and old.needed == needed[i]:
                full.append(old.full)
                continue
            self.dirty.add(f.rel)
            if not f.released:
                f.read()  # (says whether it can be read)
            if needed[i] and not candidate[i] and self._outline is not None and not f.error:
                # needed for what resolution reads of it: an outline now, the summary
                # when (if) the analysis reads a function or class of it
                full.append(True)
                outlined.append((i, f))
            elif needed[i] or f.error or not self._parses(f):
                full.append(True)
                fresh.append((i, f))
            else:
                full.append(False)
                made[i] = FileSummary(f.rel, f.module)
        empty = len(made)
        outlines: dict[int, FileIndex] = {}
        if outlined:
            assert self._outline is not None
            for i, found in self._outline(outlined).items():
                if isinstance(found, FileSummary):  # only libcst can tell: summarised
                    made[i] = found
                    continue
                sites = found.enqueues
                if enqueuer[i] and sites is None:
                    fresh.append((i, files[i]))  # its enqueue sites need the summary
                    continue
                outlines[i] = _index_of(found)
                if enqueuer[i] and sites is not None:
                    self._sites[files[i].rel] = sites
        made.update(self._summarise(fresh))
        errors: dict[str, ParseError] = {}
        for i, f in enumerate(files):
            summary = made.get(i)
            error: ParseError | None
            if summary is not None:
                entries.append(summary)
                error = summary.error
                index = FileIndex.of(summary)
            elif i in outlines:
                index, error = outlines[i], None
                entries.append(index)
            else:
                assert last is not None
                old = last.files[f.rel]
                entries.append(old.index)
                error, index = old.error, old.index
            if error is not None:
                errors[f.rel] = error
            digest = "" if f.unstable else f.digest  # "": never matches, read again
            self.new.files[f.rel] = FileState(
                f.rel,
                f.mtime_ns,
                f.size,
                digest,
                full[i],
                needed[i],
                scans[i],
                index,
                error,
                candidate=candidate[i],
                enqueuer=enqueuer[i],
            )
        self.stats["summarised"] = len(made) - empty
        self.stats["outlined"] = len(outlines)
        self.stats["empty"] = empty
        self.stats["dirty"] = len(self.dirty)
        if self._prefetch is not None:
            # the files the task modules import: the analysis reads most of them first
            self._asked |= {files[i].rel for i in made}
            near = [
                f
                for i, summary in made.items()
                if candidate[i]
                for f in self._imported(summary.imports)
            ]
            self._prefetch(near)
        return Project(entries, self.knowledge, load=self._load), errors

    def _imported(self, imports: Mapping[str, str]) -> list[Stamped]:
        """The files of this project that ``imports`` name, whose summary is made only
        when read (outlined) and not asked for yet."""
        out: list[Stamped] = []
        for qualified in imports.values():
            parts = qualified.split(".", self._depth)  # (no module name is longer)
            for cut in range(min(len(parts), self._depth), 0, -1):
                found = self._by_module.get(".".join(parts[:cut]))
                if found is None:
                    continue
                state = self.new.files.get(found.rel)
                outlined = state is not None and state.full and not state.candidate
                if outlined and found.rel not in self._asked:
                    self._asked.add(found.rel)
                    out.append(found)
                break
        return out

    def _load(self, path: str) -> FileSummary:
        """A summary the last run made and this run did not need until now."""
        state = self.new.files[path]
        stamped = self._by_rel[path]
        if not state.full:
            return FileSummary(path, stamped.module)
        self.stats["loaded"] = self.stats.get("loaded", 0) + 1
        key = key_for_digest(state.digest, stamped.module, path)
        found = self.cache.get(key) if self.cache is not None else None
        if found is None:  # never made (outlined), evicted or damaged: summarise it now
            found = self._summarise([(0, stamped)])[0]
        if not _same_index(FileIndex.of(found), state.index):
            # the index the project was built from is not this summary's (an outline
            # that libcst reads otherwise): the results cannot be trusted
            self.outline_mismatch = True
        if self._prefetch is not None:
            self._asked.add(path)
            self._prefetch(self._imported(found.imports))  # what it reads next, likely
        return found

    # -- tasks and findings ------------------------------------------------
    def _unchanged(self, deps: frozenset[str]) -> bool:
        return not (deps & self.dirty)

    def _declarations(self, project: Project) -> list[list[Declaration]]:
        finder = TaskFinder(project)
        out: list[list[Declaration]] = []
        found: list[Declaration]
        deps: frozenset[str]
        for f in self.files:
            old = self.last.files[f.rel] if self.last is not None else None
            state = self.new.files[f.rel]
            sites = None if state.candidate else self._sites.get(f.rel)
            if not state.candidate and not state.enqueuer:
                # the pre-check found that no name of it can stand for a task rule's:
                # it declares nothing (what a run without the pre-check finds too)
                found, deps = [], frozenset()
            elif (
                old is not None
                and f.rel not in self.dirty
                and (old.candidate or (old.enqueuer and not state.candidate))
                and old.declarations is not None
                and self._unchanged(old.declaration_deps)
            ):
                found, deps = old.declarations, old.declaration_deps
            elif not state.full:
                found, deps = [], frozenset()  # an empty summary declares nothing
            else:
                project.tracker.open()
                try:
                    if sites is not None:  # an enqueuer outlined: its sites, no summary
                        found = finder.enqueues_of(project.scope_of(f.rel), sites)
                    else:
                        found = finder.declarations(project.file(f.rel))
                finally:
                    deps = project.tracker.close()
                self.stats["declarations"] = self.stats.get("declarations", 0) + 1
            state.declarations, state.declaration_deps = found, deps
            out.append(found)
        return out

    def _signal(self, project: Project) -> Callable[[Task], str]:
        def signal(task: Task) -> str:
            old = self.last.signals.get(task.name) if self.last is not None else None
            if old is not None and self._unchanged(old[1]):
                self.new.signals[task.name] = old
                return old[0]
            project.tracker.open()
            try:
                project.tracker.touch(task.ref.path)
                called = retry_signal(project, task.ref)
            finally:
                deps = project.tracker.close()
            self.new.signals[task.name] = (called, deps)
            return called

        return signal

    def run(self) -> Outcome:
        project, errors = self._project()
        tasks = merge_declarations(project, self._declarations(project), self._signal(project))
        last = self.last
        same_table = last is not None and {n: t.framework for n, t in tasks.items()} == {
            n: t.record[1] for n, t in last.tasks.items()
        }
        facts_cache: dict[str, tuple[FunctionFacts, frozenset[str]]] = {}
        safety = EnqueueSafety(project, tasks, facts_cache)
        hits: list[tuple[str, Hit]] = []
        analysed = 0
        for name in sorted(tasks):
            task = tasks[name]
            old = last.tasks.get(name) if last is not None and same_table else None
            if old is not None and old.record == task.record() and self._unchanged(old.deps):
                state = old
            else:
                analysed += 1
                ctx = TaskContext(project, task, facts_cache, enqueue_safe=safety.safe)
                project.tracker.open()
                try:
                    project.tracker.touch(project.functions.where[name][0])
                    run_task(ctx)
                finally:
                    deps = project.tracker.close()
                state = TaskState(task.record(), ctx.hits, deps)
            self.new.tasks[name] = state
            hits.extend((name, h) for h in state.hits)
        self.stats["analysed"] = analysed
        self.stats["tasks"] = len(tasks)
        rows = [task_row(project, tasks[name]) for name in sorted(tasks)]
        return Outcome(hits, errors, self.stats, rows)


def _index_of(found: Outline) -> FileIndex:
    """The project index entry of an outlined file (no parse error: ``ast`` parsed it)."""
    return FileIndex(
        found.path,
        found.module,
        found.functions,
        found.classes,
        False,
        found.imports,
        found.assigns,
        found.bases,
    )


def _same_index(a: FileIndex, b: FileIndex) -> bool:
    """Whether two index entries say the same (``FileIndex`` equality leaves out the
    assignments and bases)."""
    return (
        a.functions == b.functions
        and a.classes == b.classes
        and a.error == b.error
        and dict(a.imports) == dict(b.imports)
        and dict(a.raw_assigns) == dict(b.raw_assigns)
        and dict(a.raw_bases) == dict(b.raw_bases)
    )

"""The pipeline: discover → pre-check → summarise → index → analyse → findings.

Entry points (CLI, flake8 plugin, pre-commit, tests) all come through :func:`check`,
so they report the same findings. The whole project under ``config.root`` is read
for models, helpers and tasks; only findings in files under ``paths`` are returned,
which is how pre-commit's changed-files mode keeps cross-file knowledge.
Selection and inline suppressions are applied by the report (:mod:`idemlint.report`),
not here. Each stage is a named piece with its inputs and outputs:

* :class:`Scope`: the files of the project and those reported on (stage 1);
* :class:`~idemlint.lint.run.reuse.Reuse`: the cache and the last snapshot (the policy);
* :class:`~idemlint.lint.run.precheck.PreCheck`: which files need a full summary;
* :class:`~idemlint.lint.run.summarising.Summariser`: the summaries (stage 2);
* :class:`~idemlint.lint.run.incremental.Run`: index, tasks and checks (stages 3-5);
* :mod:`~idemlint.lint.run.results`: findings and suppression comments.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from idemlint.findings import Finding
from idemlint.lint.files.comments import Suppression
from idemlint.lint.files.discovery import Skipped, discover_project, is_utf8, named_file_kind
from idemlint.lint.files.source import encode_source
from idemlint.lint.index.tasks import TaskRow
from idemlint.lint.knowledge import Knowledge, load_knowledge
from idemlint.lint.run import quick
from idemlint.lint.run.incremental import Outcome, Run, Stamped, stamp
from idemlint.lint.run.notices import merged, skipped_findings
from idemlint.lint.run.precheck import PreCheck
from idemlint.lint.run.prepass import Prepass
from idemlint.lint.run.results import findings_of, inline_suppressions
from idemlint.lint.run.reuse import Reuse
from idemlint.lint.run.summarising import (
    PARALLEL_THRESHOLD,
    Summariser,
    outline_key,
    parses_bytes,
    relative,
)


class EngineConfig(Protocol):
    """What the engine reads of :class:`idemlint.config.Config`."""

    @property
    def root(self) -> Path: ...
    @property
    def exclude(self) -> tuple[str, ...]: ...
    @property
    def extend_exclude(self) -> tuple[str, ...]: ...
    @property
    def task_frameworks(self) -> frozenset[str] | None: ...
    @property
    def knowledge(self) -> Mapping[str, object]: ...
    @property
    def source(self) -> Path | None: ...
    @property
    def cache_dir(self) -> Path | None: ...
    @property
    def cache_in_project(self) -> bool: ...


@dataclass
class CheckResult:
    findings: list[Finding]
    """Sorted by path, line, column, rule."""
    files_checked: int
    """Files reported on (the given paths); the project may hold more."""
    files: list[Path] = field(default_factory=list)
    """The files reported on (where inline suppressions are looked for)."""
    files_read: int = 0
    """Every file summarised for the project."""
    cache_hits: int = 0
    """Files whose summary was not made again (from the cache or the last run's snapshot)."""
    stats: dict[str, int] = field(default_factory=dict)
    """What the run reused and redid (see :class:`idemlint.lint.run.incremental.Run`)."""
    suppressions: dict[Path, list[Suppression]] = field(default_factory=dict)
    """Inline suppressions of the files reported on, by path (kept with the snapshot, so
    unchanged files are not tokenized again); pass to ``report_filter(known=...)``."""
    notices: list[str] = field(default_factory=list)
    """What the run could not do that is about no file (a cache folder it refused)."""
    tasks: list[TaskRow] = field(default_factory=list)
    """Every task of the project (not only those under ``paths``), by name."""


@dataclass
class Scope:
    """Stage 1: the project's files, the text given for some of them (an editor's
    unsaved buffers), and which files are reported on."""

    root: Path
    cwd: Path
    targets: list[Path]
    files: list[Path]
    given: dict[Path, bytes]
    skipped: list[Skipped] = field(default_factory=list)
    """Paths not checked at all (reported as notices): unreadable folders, file names
    that are not UTF-8, named symlinks that lead out of the project."""
    discovered: int = 0
    """How many of ``files`` discovery found (the others were named, outside it)."""

    @classmethod
    def of(
        cls,
        paths: Sequence[Path],
        config: EngineConfig,
        cwd: Path | None,
        sources: Mapping[Path, str] | None,
    ) -> Scope:
        root = config.root.absolute()
        targets = [p.absolute() for p in (paths or [root])]
        found = discover_project(root, (*config.exclude, *config.extend_exclude))
        files, skipped = found.files, found.skipped
        discovered = len(files)
        known = set(files)
        given = {p.absolute(): encode_source(t) for p, t in (sources or {}).items()}
        real_root = os.path.realpath(root)
        for t in targets:  # an explicitly named file is read even if excluded
            if t.suffix != ".py" or t in known:
                continue
            name = str(t)
            if t not in given and not is_utf8(name):
                skipped.append(Skipped(t, "the file name is not valid UTF-8"))
                continue
            kind = "file" if t in given else named_file_kind(name, real_root)
            if kind == "outside":
                skipped.append(Skipped(t, "not read: a symlink to a file outside the project"))
            elif kind == "file":
                files.append(t)
                known.add(t)
        cwd = (cwd or Path.cwd()).absolute()
        return cls(root, cwd, targets, files, given, skipped, discovered)

    def rel(self, path: Path) -> str:
        return relative(path, self.root)

    def reported(self, path: Path) -> bool:
        """Whether findings in ``path`` are returned: it lies under a target."""
        name = str(path)
        return any(
            name == str(t) or name.startswith(str(t).rstrip(os.sep) + os.sep) for t in self.targets
        )


@dataclass
class Analysis:
    """Stages 2-5 over the scope: stamps, pre-check, summaries, the run and its outcome."""

    stamped: list[Stamped]
    precheck: PreCheck
    summariser: Summariser
    run: Run
    outcome: Outcome
    prepass: Prepass

    @classmethod
    def of(
        cls,
        scope: Scope,
        knowledge: Knowledge,
        reuse: Reuse,
        jobs: int | None,
        progress: Callable[[int, int], None] | None,
        *,
        prefilter: bool,
        outlines: bool = True,
    ) -> Analysis:
        stamped = stamp(scope.files, scope.root, scope.rel, reuse.last, scope.given)
        precheck = PreCheck(knowledge, reuse.cache, stamped, wanted=prefilter)
        summariser = Summariser(reuse.cache, jobs, progress, total=len(stamped))
        prepass = Prepass()
        try:
            if _prepass(stamped, precheck, summariser, prepass, reuse, scope.reported):
                precheck.prepass = prepass

                def seeds(found: list[Stamped], near: list[Stamped]) -> None:
                    summariser.prefetch(found, front=True)
                    summariser.prefetch(near)

                precheck.on_seeds = seeds

            def parses(f: Stamped) -> bool:
                known = prepass.parses(f)
                return known if known is not None else parses_bytes(f.read())

            run = Run(
                stamped,
                knowledge,
                reuse.cache,
                reuse.last,
                use_prefilter=precheck.enabled,
                summarise=summariser.summarise,
                parses=parses,
                select=precheck.select,
                still_needed=precheck.still_needed,
                scan_digest=precheck.scan_digest,
                triggered=precheck.triggered,
                outline=partial(summariser.outline, prepass=prepass, tails=precheck.enqueue_tails)
                if outlines
                else None,
                prefetch=summariser.prefetch if summariser.pool is not None else None,
            )
            outcome = run.run()
        finally:
            summariser.close()
        return cls(stamped, precheck, summariser, run, outcome, prepass)


def _prepass(
    stamped: list[Stamped],
    precheck: PreCheck,
    summariser: Summariser,
    prepass: Prepass,
    reuse: Reuse,
    reported: Callable[[Path], bool],
) -> bool:
    """Run the per-file pass (:mod:`~idemlint.lint.run.prepass`) over the files read anew,
    when they are many and a pool may start; whether it ran."""
    fresh = [f for f in stamped if f.content is not None and not f.override and not f.error]
    if len(fresh) < PARALLEL_THRESHOLD or summariser.open_pool() is None:
        return False
    pool = summariser.pool
    assert pool is not None
    trigger = precheck.trigger if precheck.scans_wanted(fresh) else None
    tails = precheck.enqueue_tails
    batches = prepass.run(
        fresh,
        trigger,
        tails,
        reuse.cache,
        lambda f: (precheck.scan_key(f) if trigger is not None else "", outline_key(f, tails)),
        lambda f: reported(f.path),
        lambda key, job: pool.submit(key, ("prepass", job)),
    )
    for key in batches:
        end = pool.wait(key)
        prepass.take(key, end.text if end is not None and not end.died else None)
    for f in fresh:
        if prepass.holds(f):
            f.release()  # the pass read what the run needs of its bytes
    return True


def check(
    paths: Sequence[Path],
    config: EngineConfig,
    *,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cwd: Path | None = None,
    prefilter: bool = True,
    incremental: bool = True,
    sources: Mapping[Path, str] | None = None,
) -> CheckResult:
    """Check ``paths`` (files or folders) within the project at ``config.root``.

    ``sources`` maps absolute paths to text that stands for the file on disk (an
    editor's unsaved buffer; a path that does not exist yet joins the project).
    ``prefilter=False`` summarises every file in full, skipping the text pre-check;
    ``incremental=False`` ignores the last run's snapshot and computes every result
    again. Both give the same findings, slower (the tests compare them)."""
    seen = _observe(config, sources, prefilter=prefilter)  # (before discovery)
    scope = Scope.of(paths, config, cwd, sources)
    knowledge = load_knowledge(
        config.knowledge, frameworks=config.task_frameworks, source=config.source
    )
    reuse = Reuse.open(config, scope.root, prefilter=prefilter, incremental=incremental)
    try:
        done = Analysis.of(scope, knowledge, reuse, jobs, progress, prefilter=prefilter)
    except Exception as exc:
        if reuse.last is None:
            raise
        reuse.discard(exc)
        done = Analysis.of(scope, knowledge, reuse, jobs, progress, prefilter=prefilter)
    if done.run.outline_mismatch:
        # an outline said otherwise than its file's summary: everything again, every
        # needed file summarised in full (as the outlines never happened)
        reuse.last = None
        done = Analysis.of(
            scope, knowledge, reuse, jobs, progress, prefilter=prefilter, outlines=False
        )
    stamped, summariser, run, outcome = done.stamped, done.summariser, done.run, done.outcome
    suppressions, tokenized = inline_suppressions(stamped, run, scope.reported, done.prepass)
    reuse.keep(run, outcome, stamped, done.precheck, tokenized=tokenized)
    _keep_quick(reuse, scope, stamped, outcome, seen)
    reported = [f for f in scope.files if scope.reported(f)]
    return CheckResult(
        merged(
            findings_of(outcome, stamped, scope.root, scope.cwd, scope.reported),
            skipped_findings(scope.skipped, scope.cwd, scope.reported),
        ),
        files_checked=len(reported),
        files=reported,
        files_read=len(scope.files),
        cache_hits=len(scope.files) - summariser.made - outcome.stats.get("empty", 0),
        stats=outcome.stats,
        suppressions=suppressions,
        notices=reuse.notices,
        tasks=outcome.tasks,
    )


def _observe(
    config: EngineConfig, sources: Mapping[Path, str] | None, *, prefilter: bool
) -> quick.Observed | None:
    """The quick record's name and stamps (:mod:`~idemlint.lint.run.quick`), taken
    before discovery, for a run that may leave one: with the cache, no editor's buffer
    standing for a file, the pre-check on (as the flake8 plugin runs)."""
    if config.cache_dir is None or sources or not prefilter:
        return None
    top = config.root.absolute()
    return quick.observe(top, quick.record_key(config, top), top / config.cache_dir)


def _keep_quick(
    reuse: Reuse,
    scope: Scope,
    stamped: list[Stamped],
    outcome: Outcome,
    seen: quick.Observed | None,
) -> None:
    """Leave the quick record of a run that read the project as discovery finds it,
    every file from disk: every file's findings, by path."""
    if seen is None or reuse.cache is None:
        return
    if scope.skipped or len(scope.files) != scope.discovered:
        return
    if any(f.override or f.unstable or f.error for f in stamped):
        return
    by_file: dict[str, list[Finding]] = {}
    for finding in findings_of(outcome, stamped, scope.root, scope.root, lambda _: True):
        by_file.setdefault(finding.path, []).append(finding)
    files = [(f.rel, f.size, f.mtime_ns) for f in stamped]
    quick.save(reuse.cache.folder, scope.root, seen, files, by_file)


def project_size(config: EngineConfig) -> int:
    """How many Python files the project at ``config.root`` holds (what a run reads)."""
    root = config.root.absolute()
    return len(discover_project(root, (*config.exclude, *config.extend_exclude)).files)


def parse_error(
    path: Path, config: EngineConfig, cwd: Path, text: str | None = None
) -> list[Finding]:
    """The IDM001 a run would report for ``path`` when it does not parse (``text``: an
    editor's buffer standing for it), found without the rest of the project: ``ast``
    first, libcst only for a file ``ast`` refuses, as a run does."""
    root = config.root.absolute()
    try:
        content = encode_source(text) if text is not None else path.read_bytes()
    except OSError:
        return []  # (the run reports what it cannot read)
    if parses_bytes(content):
        return []
    from idemlint.lint.files.discovery import module_name
    from idemlint.lint.run.summarising import summarize_bytes

    rel = relative(path, root)
    module, is_package = module_name(path, root)
    error = summarize_bytes(content, rel, module, is_package).error
    if error is None:
        return []
    outcome = Outcome([], {rel: error})
    stamped = [Stamped(path, rel, module, is_package, 0, -1, "", content)]
    return findings_of(outcome, stamped, root, cwd, lambda p: p == path)

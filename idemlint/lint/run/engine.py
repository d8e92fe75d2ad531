"""The engine: summarise every file of the project, find the tasks, run the checks.

Entry points (CLI, flake8 plugin, pre-commit, tests) all come through :func:`check`,
so they report the same findings. The whole project under ``config.root`` is read
for models, helpers and tasks; only findings in files under ``paths`` are returned,
which is how pre-commit's changed-files mode keeps cross-file knowledge.
Selection and inline suppressions are applied by the callers, not here.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from idemlint.catalog import CatalogError, get_rule
from idemlint.findings import Finding
from idemlint.lint.analysis.walk import Hit
from idemlint.lint.files.discovery import discover, module_name
from idemlint.lint.files.prefilter import (
    FileScan,
    TooComplex,
    edge_modules,
    needed_files,
    scan,
    select,
    trigger_pattern,
)
from idemlint.lint.knowledge import Knowledge, load_knowledge
from idemlint.lint.run import snapshot
from idemlint.lint.run.cache import SummaryCache, cache_key, key_for_digest
from idemlint.lint.run.incremental import NO_TASK_ROOT, Run, Selection, Stamped, stamp
from idemlint.lint.run.snapshot import Snapshot
from idemlint.lint.summary.codec import decode, encode
from idemlint.lint.summary.model import FileSummary
from idemlint.report.suppression import Suppression, display_path, suppressions_in

PARALLEL_THRESHOLD = 16
"""Cold files below this count are summarised in-process: a pool's start-up costs more.
Measured on pretix's files, 2 cores: 8 files 0.56 s in-process vs 0.63 s with a pool of 2,
16 files 0.82 s vs 0.51 s, 64 files 1.56 s vs 0.97 s."""


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


def _summarize_file(args: tuple[str, str, str, bool]) -> FileSummary:
    path, rel, module, is_package = args
    return _summarize_path(Path(path), rel, module, is_package)


def _summarize_file_encoded(args: tuple[str, str, str, bool]) -> str:
    return encode(_summarize_file(args))


def _summarize_path(path: Path, rel: str, module: str, is_package: bool) -> FileSummary:
    try:
        content = path.read_bytes()
    except OSError as exc:
        from idemlint.lint.summary.model import ParseError

        return FileSummary(rel, module, error=ParseError(f"cannot read file: {exc}", 1, 1))
    return _summarize_text(content, rel, module, is_package)


def _summarize_text(content: bytes, rel: str, module: str, is_package: bool) -> FileSummary:
    try:
        source = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        from idemlint.lint.summary.model import ParseError

        return FileSummary(rel, module, error=ParseError(f"cannot read file: {exc}", 1, 1))
    # imported here: libcst costs ~0.25 s to import, and a warm run (every summary
    # from the cache, as in an editor) never needs it
    from idemlint.lint.summary.summarize import summarize_source

    return summarize_source(source, rel, module, is_package)


def _parses(text: str) -> bool:
    """Whether ``text`` is valid Python, at ``ast``'s cost (about a sixth of libcst's)."""
    try:
        compile(text, "<idemlint>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def summarize_files(
    files: Sequence[Path],
    root: Path,
    *,
    cache: SummaryCache | None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    knowledge: Knowledge | None = None,
) -> list[FileSummary]:
    """Summaries of ``files``, from the cache where the content is unchanged.

    With ``knowledge``, the text pre-check (:mod:`idemlint.lint.files.prefilter`) picks the files
    that can matter; the others get an empty summary without a libcst parse, once
    ``ast`` has confirmed they parse (a file that does not is summarised in full, so
    its parse error is reported exactly as before). Empty summaries are cached too,
    under their own key.
    """
    out: dict[int, FileSummary] = {}
    cold: list[tuple[int, tuple[str, str, str, bool], str]] = []
    entries: list[tuple[str, str, bool, bytes]] = []
    for path in files:
        module, is_package = module_name(path, root)
        try:
            content = path.read_bytes()
        except OSError:
            content = b""
        entries.append((_rel(path, root), module, is_package, content))
    needed: set[int] | None = None
    texts: list[str | None] = [None] * len(entries)
    if knowledge is not None:
        for i, (_, _, _, content) in enumerate(entries):
            try:
                texts[i] = content.decode("utf-8")
            except UnicodeDecodeError:
                texts[i] = None

        def scan_key(i: int, tag: str) -> str:
            rel, module, _, content = entries[i]
            return cache_key(content, module, rel, kind=f"scan {tag}")

        def stored(i: int, tag: str) -> str | None:
            return cache.get_text(scan_key(i, tag), "scans") if cache is not None else None

        def store(i: int, tag: str, text: str) -> None:
            if cache is not None:
                cache.put_text(scan_key(i, tag), text, "scans")

        needed = select(
            [(t or "", e[1], e[2]) for t, e in zip(texts, entries, strict=True)],
            knowledge,
            stored=stored,
            store=store,
        )
    for i, (rel, module, is_package, content) in enumerate(entries):
        text = texts[i]
        if needed is not None and i not in needed and text is not None:
            light = cache_key(content, module, rel, kind="unneeded")
            cached = cache.get(light) if cache is not None else None
            if cached is not None:
                out[i] = cached
                continue
            if _parses(text):
                out[i] = FileSummary(rel, module)
                if cache is not None:
                    cache.put(light, out[i])
                continue
        key = cache_key(content, module, rel)
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            out[i] = cached
        else:
            cold.append((i, (str(files[i]), rel, module, is_package), key))
    out.update(_summarise_cold(cold, cache, jobs, progress, len(out), len(files)))
    return [out[i] for i in range(len(files))]


def _summarise_cold(
    cold: list[tuple[int, tuple[str, str, str, bool], str]],
    cache: SummaryCache | None,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
    done: int,
    total: int,
) -> dict[int, FileSummary]:
    """Make the summaries the cache did not have, and store them."""
    out: dict[int, FileSummary] = {}
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    if progress:
        progress(done, total)
    if len(cold) >= PARALLEL_THRESHOLD and workers > 1:
        from concurrent.futures import ProcessPoolExecutor  # ~0.1 s; only a cold run needs it

        import idemlint.lint.summary.summarize  # noqa: F401  (imported once here, not in every worker)

        with ProcessPoolExecutor(max_workers=workers) as pool:
            # workers send summaries in the cache's compact text form: unpickling
            # hundreds of thousands of small objects costs more than decoding it
            results = pool.map(_summarize_file_encoded, [c[1] for c in cold], chunksize=8)
            for (i, _, key), text in zip(cold, results, strict=True):
                out[i] = decode(text)
                if cache is not None:
                    cache.put_text(key, text)
                done += 1
                if progress:
                    progress(done, total)
    else:
        for i, args, key in cold:
            summary = _summarize_file(args)
            out[i] = summary
            if cache is not None:
                cache.put(key, summary)
            done += 1
            if progress:
                progress(done, total)
    return out


def _rel(path: Path, root: Path) -> str:
    # string work: pathlib's relative_to costs more than the rest of a warm run's
    # per-file work together on a tree of thousands of files
    name, top = str(path if path.is_absolute() else path.absolute()), str(root)
    if name.startswith(top + os.sep):
        return name[len(top) + 1 :].replace(os.sep, "/")
    return Path(name).as_posix()


def _under(path: Path, roots: Iterable[Path]) -> bool:
    name = str(path)
    return any(name == str(r) or name.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)


def _message(rule: str, detail: str) -> str:
    try:
        return get_rule(rule).format_message(detail)
    except CatalogError:
        return f"{rule} {detail}".strip()


def findings_from_hits(
    hits: Iterable[tuple[str, Hit]], root: Path, cwd: Path, report: Callable[[Path], bool]
) -> list[Finding]:
    """Apply "one problem, one finding" and turn hits into findings."""
    by_place: dict[tuple[str, int, str], Finding] = {}
    for task, hit in hits:
        path = root / hit.path
        if not report(path):
            continue
        place = (hit.path, hit.span.line, hit.rule)
        if place in by_place:
            continue  # reached from several tasks: report it once, for the first task
        by_place[place] = Finding(
            path=display_path(path, cwd),
            line=hit.span.line,
            column=hit.span.column,
            rule=hit.rule,
            message=_message(hit.rule, hit.detail),
            end_line=hit.span.end_line,
            end_column=hit.span.end_column,
            task=task,
            via=hit.via,
            source=hit.stmt,
        )
    lines_with_key_rule = {(f.path, f.line) for f in by_place.values() if f.rule[3] == "2"}
    findings = [
        f
        for f in by_place.values()
        if not (f.rule[3] == "3" and (f.path, f.line) in lines_with_key_rule)
    ]
    return sorted(findings, key=lambda f: (f.path, f.line, f.column, f.rule))


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
    ``incremental=False`` ignores the last run's snapshot (:mod:`idemlint.lint.run.snapshot`)
    and computes every result again. Both give the same findings, slower (the tests
    compare them)."""
    root = config.root.absolute()
    cwd = (cwd or Path.cwd()).absolute()
    targets = [p.absolute() for p in (paths or [root])]
    files = discover(root, (*config.exclude, *config.extend_exclude))
    known = set(files)
    given = {p.absolute(): t.encode("utf-8") for p, t in (sources or {}).items()}
    for t in targets:  # an explicitly named file is read even if excluded
        if (t.is_file() or t in given) and t.suffix == ".py" and t not in known:
            files.append(t)
            known.add(t)
    knowledge = load_knowledge(
        config.knowledge, frameworks=config.task_frameworks, source=config.source
    )
    cache = SummaryCache(root / config.cache_dir) if config.cache_dir is not None else None
    key = snapshot.run_key(
        {
            "root": str(root),
            "knowledge": config.knowledge,
            "frameworks": sorted(config.task_frameworks or ()),
            "all-frameworks": config.task_frameworks is None,
            "prefilter": prefilter,
        }
    )
    last = snapshot.load(cache.folder, key) if cache is not None and incremental else None
    stamped = stamp(files, root, lambda p: _rel(p, root), last, given)
    trigger = trigger_pattern(knowledge) if prefilter else None
    use_prefilter = prefilter and trigger is not None
    made = [0]  # summaries made this run, not read from the cache

    def summarise(todo: list[tuple[int, Stamped]]) -> dict[int, FileSummary]:
        return _summarise(todo, cache, jobs, progress, len(stamped), made)

    def scan_of(f: Stamped) -> tuple[FileScan, str]:
        """The pre-check's scan of ``f`` (from the cache when it loads) and its JSON."""
        assert trigger is not None
        skey = key_for_digest(f.digest, f.module, f.rel, kind=f"scan {trigger.pattern}")
        text = cache.get_text(skey, "scans") if cache is not None else None
        if text is not None:
            try:
                return FileScan.from_json(text, f.module, f.is_package), text
            except (ValueError, TypeError, AttributeError):
                pass  # a damaged entry: scan again
        found = scan(_text(f), f.module, f.is_package, trigger)
        text = found.to_json()
        if cache is not None:
            cache.put_text(skey, text, "scans")
        return found, text

    def select_all(todo: list[Stamped]) -> Selection:
        texts = [_text(f) for f in todo]
        if trigger is None:
            return Selection(None, [""] * len(todo))
        if not any(
            trigger.search(t) or trigger.search(f.module) for t, f in zip(texts, todo, strict=True)
        ):
            return Selection(set(), [NO_TASK_ROOT] * len(todo))
        scans = [scan_of(f) for f in todo]
        keep: dict[str, object] = {}
        try:
            needed: set[int] | None = needed_files([sc for sc, _ in scans], trigger, keep)
        except TooComplex:
            needed = None
        exports = keep.get("exports")
        return Selection(
            needed,
            [snapshot.digest(t.encode()) for _, t in scans],
            exports if isinstance(exports, dict) else None,
        )

    def old_scan(f: Stamped, digest: str) -> FileScan | None:
        assert trigger is not None
        skey = key_for_digest(digest, f.module, f.rel, kind=f"scan {trigger.pattern}")
        text = cache.get_text(skey, "scans") if cache is not None else None
        try:
            return None if text is None else FileScan.from_json(text, f.module, f.is_package)
        except (ValueError, TypeError, AttributeError):
            return None

    def still_needed(changed: list[Stamped], last: Snapshot) -> bool:
        """Whether the last run's pre-check, with these files (whose scans changed) added
        to what it keeps, still holds: sound when no name binding changed anywhere (so no
        name became a task rule's, and re-exports are as before) and each file's paths
        lead only into modules that are kept (see
        :func:`~idemlint.lint.files.prefilter.edge_modules`).
        A file ruled out before is then summarised in full: whatever it now declares
        or reaches, the analysis sees it as a run from scratch would."""
        if trigger is None or last.exports is None:
            return False
        by_module: dict[str, list[Stamped]] = {}
        for f in stamped:
            by_module.setdefault(f.module, []).append(f)
        needed_modules = {f.module for f in stamped if last.files[f.rel].needed}
        needed_modules |= {f.module for f in changed}

        def tokens_of(module: str) -> frozenset[str] | None:
            files = by_module.get(module)
            if not files:
                return None
            return frozenset().union(*(scan_of(f)[0].tokens for f in files))

        for f in changed:
            state = last.files[f.rel]
            if len(by_module[f.module]) > 1 or trigger.match(f.module):
                return False
            before, now = old_scan(f, state.digest), scan_of(f)[0]
            if before is None or before.bindings != now.bindings:
                return False
            if before.text_has_trigger != now.text_has_trigger:
                return False
            if any((b in before.tokens) != (b in now.tokens) for b in now.bindings):
                return False
            if not edge_modules(now, by_module, last.exports, tokens_of) <= needed_modules:
                return False
        return True

    run = Run(
        stamped,
        knowledge,
        cache,
        last,
        use_prefilter=use_prefilter,
        summarise=summarise,
        parses=lambda content: _parses_bytes(content),
        select=select_all,
        still_needed=still_needed,
        scan_digest=lambda f: snapshot.digest(scan_of(f)[1].encode()),
        triggered=lambda f: bool(
            trigger is not None and (trigger.search(_text(f)) or trigger.search(f.module))
        ),
    )
    outcome = run.run()

    def report(path: Path) -> bool:
        return _under(path, targets)

    suppressions: dict[Path, list[Suppression]] = {}
    parsed = 0
    for f in stamped:
        state = run.new.files[f.rel]
        old = run.last.files.get(f.rel) if run.last is not None else None
        if old is not None and old.digest == f.digest and old.suppressions is not None:
            state.suppressions = old.suppressions
        elif report(f.path):
            parsed += 1
            state.suppressions = [
                (s.line, s.column, s.end_column, s.kind, s.codes, s.reportable)
                for s in suppressions_in(f.read())
            ]
        if state.suppressions is not None and report(f.path):
            suppressions[f.path] = [Suppression(*row) for row in state.suppressions]
    if cache is not None and (
        outcome.stats.get("dirty")
        or parsed
        or any(f.content is not None for f in stamped)
        or run.last is None
    ):
        snapshot.save(cache.folder, key, run.new)
    if cache is not None:

        def in_use() -> set[str]:
            keys = {key}
            for f in stamped:
                if run.new.files[f.rel].full:
                    keys.add(key_for_digest(f.digest, f.module, f.rel))
                if trigger is not None:
                    tag = f"scan {trigger.pattern}"
                    keys.add(key_for_digest(f.digest, f.module, f.rel, kind=tag))
            return keys

        cache.prune_if_due(in_use)

    findings = findings_from_hits(outcome.hits, root, cwd, report)
    for f in stamped:
        err = outcome.errors.get(f.rel)
        if err is not None and report(f.path):
            findings.append(
                Finding(
                    path=display_path(f.path, cwd),
                    line=err.line,
                    column=err.column,
                    rule="IDM001",
                    message=_message("IDM001", err.message),
                    end_line=err.line,
                    end_column=err.column + 1,
                )
            )
    findings.sort(key=lambda f: (f.path, f.line, f.column, f.rule))
    reported = [f for f in files if report(f)]
    return CheckResult(
        findings,
        files_checked=len(reported),
        files=reported,
        files_read=len(files),
        cache_hits=len(files) - made[0] - outcome.stats.get("empty", 0),
        stats=outcome.stats,
        suppressions=suppressions,
    )


def _text(f: Stamped) -> str:
    try:
        return f.read().decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _parses_bytes(content: bytes) -> bool:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _parses(text)


def _summarise(
    todo: list[tuple[int, Stamped]],
    cache: SummaryCache | None,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
    total: int,
    made: list[int],
) -> dict[int, FileSummary]:
    """Summaries of ``todo``: from the cache, else made (in a process pool when many;
    ``made[0]`` counts those)."""
    out: dict[int, FileSummary] = {}
    cold: list[tuple[int, tuple[str, str, str, bool], str]] = []
    for i, f in todo:
        key = key_for_digest(f.digest, f.module, f.rel)
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            out[i] = cached
        elif f.override:  # not on disk: summarised here, from the text given
            out[i] = _summarize_text(f.read(), f.rel, f.module, f.is_package)
            made[0] += 1
            if cache is not None:
                cache.put(key, out[i])
        else:
            cold.append((i, (str(f.path), f.rel, f.module, f.is_package), key))
    made[0] += len(cold)
    out.update(_summarise_cold(cold, cache, jobs, progress, total - len(cold), total))
    return out


def check_project(root: Path, *, cwd: Path | None = None) -> list[Finding]:
    """Findings for a whole project folder, with its own ``[tool.idemlint]`` config, through
    the same pipeline as the CLI (suppressions and selection applied)."""
    from idemlint.config import load_config
    from idemlint.report.selection import report_filter

    config = load_config([root])
    result = check([root], config, cwd=cwd)
    return report_filter(result.findings, config, result.files, cwd=cwd, known=result.suppressions)


def check_source(source: str, path: str = "example.py") -> list[Finding]:
    """Findings for one snippet as a one-file project, through the same pipeline as the CLI
    (suppressions and the default selection included). Used by the catalog examples."""
    import tempfile

    from idemlint.config import Config
    from idemlint.report.selection import report_filter

    with tempfile.TemporaryDirectory(prefix="idemlint-snippet-") as tmp:
        root = Path(tmp)
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(source, "utf-8")
        config = Config.default(root).with_overrides(no_cache=True)
        result = check([root], config, cwd=root)
        return report_filter(
            result.findings, config, result.files, cwd=root, known=result.suppressions
        )

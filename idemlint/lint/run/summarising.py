"""Stage 2 as the run drives it: summaries for the files that need one, from the summary
cache where the content is unchanged, else made (in a process pool when many).

Inputs: stamped files (:class:`~idemlint.lint.run.incremental.Stamped`) and the cache.
Output: :class:`~idemlint.lint.summary.model.FileSummary` by index. Every file ends as a
summary; one that cannot be read, decoded, screened (too deep for libcst,
:mod:`idemlint.lint.summary.screen`) or parsed within the limits (a crash or a hang,
:mod:`idemlint.lint.run.isolation`) becomes a summary that carries the reason as its
error, reported as a notice; never an exception that stops the run.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idemlint.lint.files.discovery import module_name
from idemlint.lint.files.prefilter import select
from idemlint.lint.files.source import decode_error, decoded_or_none
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.run import isolation
from idemlint.lint.run.cache import SummaryCache, cache_key, key_for_digest
from idemlint.lint.run.incremental import Stamped
from idemlint.lint.run.isolation import Alone, Job
from idemlint.lint.summary.codec import decode, encode
from idemlint.lint.summary.model import FileSummary, ParseError
from idemlint.lint.summary.outline import Outline, Unsure, outline
from idemlint.lint.summary.screen import LARGE, screen

if TYPE_CHECKING:
    from idemlint.lint.run.prepass import Prepass

PARALLEL_THRESHOLD = 16
"""Cold files below this count are summarised in-process: a pool's start-up costs more.
Measured on pretix's files, 2 cores: 8 files 0.56 s in-process vs 0.63 s with a pool of 2,
16 files 0.82 s vs 0.51 s, 64 files 1.56 s vs 0.97 s."""


def failed(rel: str, module: str, why: str, line: int = 1, column: int = 1) -> FileSummary:
    """The summary of a file that could not be summarised: its error says why."""
    return FileSummary(rel, module, error=ParseError(why, line, column))


READ_ERROR = "cannot read file"


def _unreadable(summary: FileSummary) -> bool:
    """A file that vanished or lost its permissions since the run stamped it: its error
    is not kept in the cache under the content the run saw."""
    return summary.error is not None and summary.error.message.startswith(READ_ERROR)


def summarize_job(job: Job) -> FileSummary:
    """One file, in this process."""
    path, rel, module, is_package = job
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        return failed(rel, module, f"{READ_ERROR}: {exc.strerror or exc}")
    return summarize_bytes(content, rel, module, is_package)


def too_big_here(job: Job) -> bool:
    """Whether a file is too big to parse in this process (:data:`LARGE`): it is parsed
    alone in a new one, with a time limit."""
    try:
        return os.stat(job[0]).st_size > LARGE
    except OSError:
        return False


def summarize_job_encoded(job: Job) -> str:
    """One file in a worker, in the cache's text form: unpickling hundreds of thousands of
    small objects from a worker costs more than decoding it. The worker is the isolation:
    no size limit here."""
    path, rel, module, is_package = job
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        return encode(failed(rel, module, f"{READ_ERROR}: {exc.strerror or exc}"))
    return _encoded(summarize_bytes(content, rel, module, is_package))


def summarize_alone(job: Alone) -> str:
    """The child side of :func:`idemlint.lint.run.isolation.run_alone`."""
    if job.content is not None:
        return _encoded(summarize_bytes(job.content, job.rel, job.module, job.is_package))
    return summarize_job_encoded((job.path, job.rel, job.module, job.is_package))


def _encoded(summary: FileSummary) -> str:
    try:
        return encode(summary)
    except RecursionError:
        return encode(failed(summary.path, summary.module, _TOO_DEEP))


_TOO_DEEP = "too deeply nested to analyse (Python's recursion limit)"


def summarize_bytes(content: bytes, rel: str, module: str, is_package: bool) -> FileSummary:
    """One file's summary from its bytes: decoded as Python decodes it (PEP 263),
    screened, then parsed; whatever stops it is the summary's error."""
    source, why = decode_error(content)
    if source is None:
        return failed(rel, module, why)
    verdict = screen(source)
    if verdict.problem:
        return failed(rel, module, verdict.problem, verdict.line, verdict.column)
    # imported here: libcst costs ~0.25 s to import, and a warm run (every summary
    # from the cache, as in an editor) never needs it
    from idemlint.lint.summary.summarize import summarize_source

    try:
        return summarize_source(source, rel, module, is_package)
    except RecursionError:
        return failed(rel, module, _TOO_DEEP)
    except MemoryError:
        return failed(rel, module, "out of memory while parsing")
    except Exception as exc:  # a summariser bug on odd input must not stop the run
        return failed(rel, module, f"the summariser failed: {type(exc).__name__}: {exc}")


def parses(text: str) -> bool:
    """Whether ``text`` is valid Python, at ``ast``'s cost (about a sixth of libcst's)."""
    try:
        compile(text, "<idemlint>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def parses_bytes(content: bytes) -> bool:
    text = decoded_or_none(content)
    return text is not None and parses(text)


def work(job: tuple[str, Any]) -> str:
    """What a worker of the run's pool does with a job: a summary (in the cache's text
    form) or a batch of the pre-check's per-file work (:mod:`idemlint.lint.run.prepass`)."""
    kind, payload = job
    if kind == "prepass":
        from idemlint.lint.run.prepass import prepass_job

        return prepass_job(payload)
    return summarize_job_encoded(payload)


class Summariser:
    """Summaries for one run; counts those it had to make (``made``).

    On a cold run it owns the run's worker pool (:class:`~idemlint.lint.run.isolation.Pool`):
    the pre-check's per-file pass, the summaries the run needs, and the summaries it is
    likely to need next (:meth:`prefetch`) go through it, so the workers keep both cores
    busy while this process does the serial work (the pre-check's graph, the analysis)."""

    def __init__(
        self,
        cache: SummaryCache | None,
        jobs: int | None,
        progress: Callable[[int, int], None] | None,
        total: int,
    ) -> None:
        self.cache = cache
        self.jobs = jobs
        self.progress = progress
        self.total = total
        self.made = 0
        self.pool: isolation.Pool | None = None
        self._prefetched: dict[str, tuple[Stamped, Job]] = {}
        """Summary jobs sent ahead of need, by cache key."""
        self._done = 0
        self.stats: dict[str, int] = {"prefetched": 0, "prefetch_used": 0}

    # -- the pool ----------------------------------------------------------------------
    def workers(self) -> int:
        return self.jobs if self.jobs is not None else (os.cpu_count() or 1)

    def open_pool(self) -> isolation.Pool | None:
        """The run's pool, started on first use; None when only one process may work
        (``--jobs 1``, one CPU, a flake8 worker)."""
        if self.pool is None and self.workers() > 1 and isolation.can_start_processes():
            self.pool = isolation.Pool(self.workers(), work)
        return self.pool

    def prefetch(self, files: Sequence[Stamped], *, front: bool = False) -> None:
        """Start summarising ``files`` in the pool, ahead of need (no pool: nothing). A
        summary made this way is taken by :meth:`summarise` when asked for, and kept in
        the cache either way."""
        if self.pool is None:
            return
        # one core stays with this process (it builds the graph, or analyses, meanwhile)
        self.pool.resize(self.workers() - 1)
        for f in files:
            if f.override or f.error:
                continue
            key = key_for_digest(f.digest, f.module, f.rel)
            if key in self._prefetched or (self.cache is not None and self.cache.has(key)):
                continue
            job: Job = (str(f.path), f.rel, f.module, f.is_package)
            self._prefetched[key] = (f, job)
            self.stats["prefetched"] += 1
            self.pool.submit(key, ("summary", job), front=front)

    def close(self) -> None:
        """Stop the pool: summaries finished ahead of need go to the cache (the next run
        finds them), jobs not finished are abandoned."""
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        try:
            while (end := pool.next_finished(0)) is not None:
                key = end.key
                if end.text is not None and self.cache is not None and key in self._prefetched:
                    assert isinstance(key, str)
                    self.cache.put_text(key, end.text)
        finally:
            pool.close()

    # -- summaries ---------------------------------------------------------------------
    def summarise(self, todo: list[tuple[int, Stamped]]) -> dict[int, FileSummary]:
        """Summaries of ``todo`` by index: from the cache, else made. A file given up
        (crashed or timed out) is marked ``unstable``: the next run tries it again."""
        out: dict[int, FileSummary] = {}
        cold: list[tuple[int, Job, str]] = []
        by_index = dict(todo)
        for i, f in todo:
            f.read()  # in memory already on a cold run; says whether it can be read
            if f.error:  # unreadable: reported, never cached
                out[i] = failed(f.rel, f.module, f.error)
                continue
            key = key_for_digest(f.digest, f.module, f.rel)
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                out[i] = cached
            elif f.override:  # not on disk: summarised here, from the text given
                out[i] = summarize_bytes(f.read(), f.rel, f.module, f.is_package)
                self.made += 1
                if self.cache is not None:
                    self.cache.put(key, out[i])
            else:
                cold.append((i, (str(f.path), f.rel, f.module, f.is_package), key))
        self.made += len(cold)
        if self.pool is None and len(cold) >= PARALLEL_THRESHOLD:
            self.open_pool()
        if self.pool is not None and cold:
            made, given_up = self._from_pool(cold)
        else:
            made, given_up = make_summaries(cold, self.cache, self.jobs, self.progress, self.total)
        out.update(made)
        for i in given_up:
            by_index[i].unstable = True
        return out

    def _from_pool(
        self, cold: list[tuple[int, Job, str]]
    ) -> tuple[dict[int, FileSummary], set[int]]:
        """Make ``cold`` with the pool's help: jobs it has already (sent ahead) are waited
        for, one job alone that it has not started is made here (the analysis asking for
        one summary does not wait behind the others), the rest go to the front of its
        queue."""
        pool = self.pool
        assert pool is not None
        if len(cold) > 1:
            pool.resize(self.workers())  # this process waits for them: every core
        out: dict[int, FileSummary] = {}
        given_up: set[int] = set()
        here: list[tuple[int, Job, str]] = []
        for i, job, key in cold:
            if len(cold) == 1 and (not pool.known(key) or pool.take(key)):
                here.append((i, job, key))
            else:
                pool.submit(key, ("summary", job), front=True)
        if here:
            made, lost = make_summaries(here, self.cache, 1, None, self.total)
            out.update(made)
            given_up |= lost
        for i, job, key in cold:
            if i in out:
                continue
            end = pool.wait(key)
            text, why = (end.text, end.why) if end is not None else (None, "lost")
            if end is not None and end.died:
                text, why = isolation.run_alone(Alone(job[1], job[2], job[3], path=job[0]))
                if text is None:
                    why = f"{why}; its worker process was {end.why} and it was retried alone"
            if end is None:  # (not in the pool after all: made here)
                made, lost = make_summaries([(i, job, key)], self.cache, 1, None, self.total)
                out.update(made)
                given_up |= lost
                continue
            summary = decode(text) if text is not None else failed(job[1], job[2], why)
            out[i] = summary
            if text is None:
                given_up.add(i)
            elif self.cache is not None and not _unreadable(summary):
                self.cache.put_text(key, text)
            if self._prefetched.pop(key, None) is not None:
                self.stats["prefetch_used"] += 1
            self._done += 1
            if self.progress:
                self.progress(self._done, self.total)
        if self._prefetched:
            pool.resize(self.workers() - 1)  # back to ahead-of-need work alone
        return out, given_up

    def outline(
        self,
        todo: list[tuple[int, Stamped]],
        prepass: Prepass | None = None,
        tails: frozenset[str] = frozenset(),
    ) -> dict[int, Outline | FileSummary]:
        """Outlines of ``todo`` by index (from the pre-check's pass or the cache where the
        content is unchanged), or the full summary of a file that only libcst can read
        (:class:`~idemlint.lint.summary.outline.Unsure`). ``tails``: the enqueue methods
        whose sites they list (the pass was given the same)."""
        out: dict[int, Outline | FileSummary] = {}
        unsure: list[tuple[int, Stamped]] = []
        for i, f in todo:
            if prepass is not None:
                found = prepass.outline(f)
                if found is not None:
                    out[i] = found
                    continue
                if prepass.declined(f):
                    unsure.append((i, f))
                    continue
            key = outline_key(f, tails)
            text = self.cache.get_text(key, "outlines") if self.cache is not None else None
            if text is not None:
                try:
                    out[i] = Outline.from_json(text, f.rel, f.module)
                    continue
                except (ValueError, TypeError):
                    pass  # a damaged entry: outline it again
            try:
                found = outline_bytes(f.read(), f.rel, f.module, f.is_package, tails)
            except Unsure:
                unsure.append((i, f))
                continue
            out[i] = found
            if self.cache is not None:
                self.cache.put_text(key, found.to_json(), "outlines")
        if prepass is not None:
            prepass.drop_outlines()  # taken: memory stays flat on a big tree
        out.update(self.summarise(unsure))
        return out


def outline_key(f: Stamped, tails: frozenset[str]) -> str:
    """The cache key of a file's outline (kept apart from its summary's) listing the sites
    of the enqueue methods ``tails``."""
    return key_for_digest(f.digest, f.module, f.rel, kind=f"outline {' '.join(sorted(tails))}")


def outline_bytes(
    content: bytes, rel: str, module: str, is_package: bool, tails: frozenset[str] = frozenset()
) -> Outline:
    """A file's outline (:mod:`idemlint.lint.summary.outline`), decoded and screened as
    :func:`summarize_bytes` does; :class:`~idemlint.lint.summary.outline.Unsure` whenever
    only the full summary can say (it does not decode, the screen turns it away, ``ast``
    cannot tell)."""
    source = decoded_or_none(content)
    if source is None:
        raise Unsure("not decodable")
    if screen(source).problem:
        raise Unsure("screened")
    return outline(source, rel, module, is_package, tails)


def make_summaries(
    cold: list[tuple[int, Job, str]],
    cache: SummaryCache | None,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> tuple[dict[int, FileSummary], set[int]]:
    """Make the summaries the cache did not have, and store them; also the indexes of the
    files given up (a crash or a time-out: not stored, so a later run tries again)."""
    out: dict[int, FileSummary] = {}
    given_up: set[int] = set()
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    done = total - len(cold)
    if progress:
        progress(done, total)

    def finished(n: int, summary: FileSummary, text: str | None) -> None:
        nonlocal done
        i, _, key = cold[n]
        out[i] = summary
        if text is None:
            given_up.add(i)
        elif cache is not None and not _unreadable(summary):
            cache.put_text(key, text)
        done += 1
        if progress:
            progress(done, total)

    if len(cold) >= PARALLEL_THRESHOLD and workers > 1 and isolation.can_start_processes():
        import idemlint.lint.summary.summarize  # noqa: F401  (imported once here, not in every worker)

        def pooled(n: int, text: str | None, why: str) -> None:
            _, (_, rel, module, _), _ = cold[n]
            summary = decode(text) if text is not None else failed(rel, module, why)
            finished(n, summary, text)

        isolation.run_pool(
            [c[1] for c in cold],
            min(workers, len(cold)),
            summarize_job_encoded,
            pooled,
            alone=lambda job: isolation.run_alone(Alone(job[1], job[2], job[3], path=job[0])),
        )
    else:
        for n, (_, job, _) in enumerate(cold):
            if too_big_here(job):
                text, why = isolation.run_alone(Alone(job[1], job[2], job[3], path=job[0]))
                summary = decode(text) if text is not None else failed(job[1], job[2], why)
                finished(n, summary, text)
            else:
                summary = summarize_job(job)
                finished(n, summary, encode(summary))
    return out, given_up


def summarize_files(
    files: Sequence[Path],
    root: Path,
    *,
    cache: SummaryCache | None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    knowledge: Knowledge | None = None,
) -> list[FileSummary]:
    """Summaries of ``files`` without a check (tests and benchmarks read them).

    With ``knowledge``, the text pre-check picks the files that can matter; the others
    get an empty summary once ``ast`` has confirmed they parse (a file that does not is
    summarised in full, so its parse error is reported exactly as by a check)."""
    entries: list[tuple[str, str, bool, bytes]] = []
    for path in files:
        module, is_package = module_name(path, root)
        try:
            content = path.read_bytes()
        except OSError:
            content = b""
        entries.append((relative(path, root), module, is_package, content))
    texts = [decoded_or_none(e[3]) for e in entries]
    needed: set[int] | None = None
    if knowledge is not None:
        needed = select(
            [(t or "", e[1], e[2]) for t, e in zip(texts, entries, strict=True)], knowledge
        )
    out: dict[int, FileSummary] = {}
    cold: list[tuple[int, Job, str]] = []
    for i, (rel, module, is_package, content) in enumerate(entries):
        text = texts[i]
        if needed is not None and i not in needed and text is not None and parses(text):
            out[i] = FileSummary(rel, module)
            continue
        key = cache_key(content, module, rel)
        cached = cache.get(key) if cache is not None else None
        if cached is not None:
            out[i] = cached
        else:
            cold.append((i, (str(files[i]), rel, module, is_package), key))
    out.update(make_summaries(cold, cache, jobs, progress, len(files))[0])
    return [out[i] for i in range(len(files))]


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (absolute when outside it)."""
    # string work: pathlib's relative_to costs more than the rest of a warm run's
    # per-file work together on a tree of thousands of files
    name, top = str(path if path.is_absolute() else path.absolute()), str(root)
    if name.startswith(top + os.sep):
        return name[len(top) + 1 :].replace(os.sep, "/")
    return Path(name).as_posix()

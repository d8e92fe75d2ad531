"""Stage 2 as the run drives it: summaries for the files that need one, from the summary
cache where the content is unchanged, else made (in a process pool when many).

Inputs: stamped files (:class:`~idemlint.lint.run.incremental.Stamped`) and the cache.
Output: :class:`~idemlint.lint.summary.model.FileSummary` by index. A file that cannot
be read or decoded becomes a summary that carries the error, never an exception.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from idemlint.lint.files.discovery import module_name
from idemlint.lint.files.prefilter import select
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.run.cache import SummaryCache, cache_key, key_for_digest
from idemlint.lint.run.incremental import Stamped
from idemlint.lint.summary.codec import decode, encode
from idemlint.lint.summary.model import FileSummary, ParseError

PARALLEL_THRESHOLD = 16
"""Cold files below this count are summarised in-process: a pool's start-up costs more.
Measured on pretix's files, 2 cores: 8 files 0.56 s in-process vs 0.63 s with a pool of 2,
16 files 0.82 s vs 0.51 s, 64 files 1.56 s vs 0.97 s."""

Job = tuple[str, str, str, bool]
"""What a worker needs to summarise one file: path, relative path, module, is-package."""


def summarize_job(job: Job) -> FileSummary:
    path, rel, module, is_package = job
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        return FileSummary(rel, module, error=ParseError(f"cannot read file: {exc}", 1, 1))
    return summarize_bytes(content, rel, module, is_package)


def summarize_job_encoded(job: Job) -> str:
    """:func:`summarize_job` in the cache's text form: unpickling hundreds of thousands of
    small objects from a worker costs more than decoding it."""
    return encode(summarize_job(job))


def summarize_bytes(content: bytes, rel: str, module: str, is_package: bool) -> FileSummary:
    try:
        source = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return FileSummary(rel, module, error=ParseError(f"cannot read file: {exc}", 1, 1))
    # imported here: libcst costs ~0.25 s to import, and a warm run (every summary
    # from the cache, as in an editor) never needs it
    from idemlint.lint.summary.summarize import summarize_source

    return summarize_source(source, rel, module, is_package)


def parses(text: str) -> bool:
    """Whether ``text`` is valid Python, at ``ast``'s cost (about a sixth of libcst's)."""
    try:
        compile(text, "<idemlint>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def parses_bytes(content: bytes) -> bool:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return parses(text)


class Summariser:
    """Summaries for one run; counts those it had to make (``made``)."""

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

    def summarise(self, todo: list[tuple[int, Stamped]]) -> dict[int, FileSummary]:
        """Summaries of ``todo`` by index: from the cache, else made."""
        out: dict[int, FileSummary] = {}
        cold: list[tuple[int, Job, str]] = []
        for i, f in todo:
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
        out.update(make_summaries(cold, self.cache, self.jobs, self.progress, self.total))
        return out


def make_summaries(
    cold: list[tuple[int, Job, str]],
    cache: SummaryCache | None,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> dict[int, FileSummary]:
    """Make the summaries the cache did not have, and store them."""
    out: dict[int, FileSummary] = {}
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    done = total - len(cold)
    if progress:
        progress(done, total)
    if len(cold) >= PARALLEL_THRESHOLD and workers > 1:
        from concurrent.futures import ProcessPoolExecutor  # ~0.1 s; only a cold run needs it

        import idemlint.lint.summary.summarize  # noqa: F401  (imported once here, not in every worker)

        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(summarize_job_encoded, [c[1] for c in cold], chunksize=8)
            for (i, _, key), text in zip(cold, results, strict=True):
                out[i] = decode(text)
                if cache is not None:
                    cache.put_text(key, text)
                done += 1
                if progress:
                    progress(done, total)
    else:
        for i, job, key in cold:
            out[i] = summarize_job(job)
            if cache is not None:
                cache.put(key, out[i])
            done += 1
            if progress:
                progress(done, total)
    return out


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
    texts = [_decoded(e[3]) for e in entries]
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
    out.update(make_summaries(cold, cache, jobs, progress, len(files)))
    return [out[i] for i in range(len(files))]


def _decoded(content: bytes) -> str | None:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (absolute when outside it)."""
    # string work: pathlib's relative_to costs more than the rest of a warm run's
    # per-file work together on a tree of thousands of files
    name, top = str(path if path.is_absolute() else path.absolute()), str(root)
    if name.startswith(top + os.sep):
        return name[len(top) + 1 :].replace(os.sep, "/")
    return Path(name).as_posix()

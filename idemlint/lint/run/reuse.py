"""What a run reuses from earlier runs and what it leaves for the next: the caching and
incremental policy, in one place.

* The summary cache (:mod:`idemlint.lint.run.cache`) under ``config.cache_dir``; no
  cache at all when it is None (``--no-cache``), or when the folder may not be used
  (:mod:`idemlint.lint.run.cachedir`: one of the project's that leads outside it, one
  that idemlint did not make), which the run reports as a notice.
* The last run's snapshot (:mod:`idemlint.lint.run.snapshot`), under a key that covers
  everything in the configuration that changes results; ignored with ``incremental=False``.
* After the run: the snapshot is saved when anything in it is new, and the cache is
  pruned (once a day) of entries this project no longer uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from idemlint.lint.run import snapshot
from idemlint.lint.run.cache import SummaryCache, key_for_digest
from idemlint.lint.run.cachedir import open_cache_folder
from idemlint.lint.run.incremental import Outcome, Run, Stamped
from idemlint.lint.run.precheck import PreCheck
from idemlint.lint.run.snapshot import Snapshot
from idemlint.lint.run.summarising import outline_key


class CacheSettings(Protocol):
    """What the policy reads of the configuration."""

    @property
    def knowledge(self) -> Mapping[str, object]: ...
    @property
    def task_frameworks(self) -> frozenset[str] | None: ...
    @property
    def cache_dir(self) -> Path | None: ...
    @property
    def cache_in_project(self) -> bool: ...


def snapshot_key(config: CacheSettings, root: Path, *, prefilter: bool) -> str:
    """The snapshot's name for this configuration: everything in it that changes results."""
    return snapshot.run_key(
        {
            "root": str(root),
            "knowledge": config.knowledge,
            "frameworks": sorted(config.task_frameworks or ()),
            "all-frameworks": config.task_frameworks is None,
            "prefilter": prefilter,
        }
    )


def cold_start(config: CacheSettings, root: Path) -> Path | None:
    """The cache folder, when a check of this configuration would start cold in it: the
    cache may be used and holds no snapshot of the configuration (an editor's first call
    on a project). None otherwise, and when there is no cache to warm."""
    if config.cache_dir is None:
        return None
    opened = open_cache_folder(root / config.cache_dir, root, in_project=config.cache_in_project)
    if opened.folder is None:
        return None
    key = snapshot_key(config, root, prefilter=True)
    return None if snapshot.stored(opened.folder, key) else opened.folder


WARMING = "warming.lock"
"""In the cache folder: held (``flock``) by the background run that fills it, so that an
editor's calls start one at a time."""


@contextmanager
def warming(folder: Path) -> Iterator[bool]:
    """Hold the cache's warm-up lock for the ``with`` block; True when this process got
    it, False when another holds it. Where there is no ``flock`` (Windows), always True."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield True
        return
    try:
        fd = os.open(folder / WARMING, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
    except OSError:
        yield False  # (a symlink planted there, a read-only folder: no warm-up)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            got = False
        else:
            got = True
        yield got
    finally:
        os.close(fd)  # (releases the lock)


def warming_up(folder: Path) -> bool:
    """Whether a background run holds the cache's warm-up lock now."""
    with warming(folder) as got:
        return not got


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass
class Reuse:
    cache: SummaryCache | None
    key: str
    """The snapshot's name for this configuration."""
    last: Snapshot | None
    """The last run's snapshot, when it loads and may be used."""
    notices: list[str] = field(default_factory=list)
    """What the run could not reuse, in words: a cache folder it refused, a snapshot
    that made the run fail."""

    @classmethod
    def open(
        cls, config: CacheSettings, root: Path, *, prefilter: bool, incremental: bool
    ) -> Reuse:
        cache, notice = None, ""
        if config.cache_dir is not None:
            opened = open_cache_folder(
                root / config.cache_dir, root, in_project=config.cache_in_project
            )
            cache = SummaryCache(opened.folder) if opened.folder is not None else None
            notice = opened.notice

        key = snapshot_key(config, root, prefilter=prefilter)
        last = snapshot.load(cache.folder, key) if cache is not None and incremental else None
        return cls(cache, key, last, [notice] if notice else [])

    def discard(self, exc: Exception) -> None:
        """Forget the last run's snapshot: the run raised with it (a snapshot that passed
        the checks of :mod:`~idemlint.lint.run.snapshot_check` but does not fit the
        project). The run is made again from scratch; a new snapshot replaces it."""
        self.last = None
        self.notices.append(
            f"the last run's snapshot could not be used ({type(exc).__name__}: {exc}); "
            "everything was computed again"
        )

    def keep(
        self,
        run: Run,
        outcome: Outcome,
        files: list[Stamped],
        precheck: PreCheck,
        *,
        tokenized: int,
    ) -> None:
        """Save the run's snapshot when anything in it is new (files re-summarised,
        suppressions read, files whose bytes were read, no snapshot before), then prune."""
        if self.cache is None:
            return
        if (
            outcome.stats.get("dirty")
            or tokenized
            or any(f.content is not None or f.released for f in files)
            or run.last is None
        ):
            snapshot.save(self.cache.folder, self.key, run.new)
        self.cache.prune_if_due(partial(self.in_use, run, files, precheck))

    def in_use(self, run: Run, files: list[Stamped], precheck: PreCheck) -> set[str]:
        """The cache entries this project uses now (computed only when pruning is due)."""
        keys = {self.key} | precheck.scan_keys()
        for f in files:
            state = run.new.files[f.rel]
            if state.full:
                keys.add(key_for_digest(f.digest, f.module, f.rel))
                if not state.candidate:  # (outlined, its summary made only if read)
                    keys.add(outline_key(f, precheck.enqueue_tails))
        return keys

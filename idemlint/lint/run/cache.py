"""On-disk cache of file summaries, keyed by content hash and idemlint version.

A summary depends only on the file's bytes, its module name and the summariser, so
the key is ``sha256(version, summariser, module, path, sha256(content))``: an edited
file, a moved file or a new idemlint each miss the cache. The knowledge config is
applied after summarising, so changing it never needs a re-parse. Writes go to a
temporary file renamed into place, so concurrent runs never see a half-written
entry; an entry that fails to load (corrupt, truncated, older format) is ignored
and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Collection
from functools import lru_cache
from pathlib import Path

from idemlint import __version__
from idemlint.lint.run.cachedir import AREAS, is_entry, is_ours, write_entry
from idemlint.lint.summary.codec import decode, encode
from idemlint.lint.summary.model import FileSummary

FORMAT = 4
PRUNE_AGE = 30 * 86400
"""Entries not used by the current project are deleted when older than this (seconds)."""
PRUNE_EVERY = 86400
"""Bump when the summary's shape or its encoding (:mod:`idemlint.lint.summary.codec`) changes."""


@lru_cache(maxsize=1)
def summarizer_fingerprint() -> str:
    """A hash of the code that makes summaries, so that a changed summariser (a development
    checkout, a patched install) never reads summaries an older one wrote."""
    h = hashlib.sha256()
    lint = Path(__file__).parent.parent
    for name in (
        "summary/summarize.py",
        "summary/model.py",
        "summary/positions.py",
        "summary/codec.py",
        "run/cache.py",
    ):
        try:
            h.update((lint / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


def cache_key(content: bytes, module: str, path: str, kind: str = "summary") -> str:
    """``kind`` separates full summaries from the empty ones of files the pre-check
    found unneeded (``"unneeded"``), so that one never stands in for the other."""
    return key_for_digest(hashlib.sha256(content).hexdigest(), module, path, kind)


def key_for_digest(digest: str, module: str, path: str, kind: str = "summary") -> str:
    """:func:`cache_key` from the sha256 of the content (the project snapshot keeps it)."""
    h = hashlib.sha256()
    h.update(f"{identity()}\0{kind}\0{module}\0{path}\0".encode())
    h.update(digest.encode())
    return h.hexdigest()


def identity() -> str:
    """What every cache entry and project snapshot is made by: idemlint's version, the
    cache format and the summariser's code."""
    return f"{__version__}\0{FORMAT}\0{summarizer_fingerprint()}"


class SummaryCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits = 0
        self.misses = 0

    def _file(self, key: str, area: str = "summaries") -> Path:
        return self.folder / area / key[:2] / f"{key}.json"

    def get(self, key: str) -> FileSummary | None:
        try:
            summary = decode(self._file(key).read_text("utf-8"))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self.misses += 1
            return None
        self.hits += 1
        return summary

    def has(self, key: str, area: str = "summaries") -> bool:
        """Whether an entry is there (not whether it loads)."""
        return os.path.exists(self._file(key, area))

    def get_text(self, key: str, area: str = "summaries") -> str | None:
        """A raw entry; ``area="scans"`` holds the pre-check's per-file scans."""
        try:
            return self._file(key, area).read_text("utf-8")
        except (OSError, ValueError):
            return None

    def put(self, key: str, summary: FileSummary) -> None:
        self.put_text(key, encode(summary))

    def put_text(self, key: str, text: str, area: str = "summaries") -> None:
        """Store a summary already in :func:`~idemlint.lint.summary.codec.encode`'s form
        (or, with ``area="scans"``, a pre-check scan)."""
        write_entry(self._file(key, area), self.folder, text)

    def prune(self, keep: Collection[str], *, max_age: float = PRUNE_AGE, now: float) -> int:
        """Delete entries (summaries, scans, other configurations' snapshots and stray
        temporary files) older than ``max_age`` seconds, except the keys in ``keep``
        (what the current project uses). Content-addressed entries pile up with every
        saved edit; those of another branch, if younger, survive to be reused.
        Only in a folder idemlint tagged as its cache, and only files named the way it
        names its entries (:func:`~idemlint.lint.run.cachedir.is_entry`); symlinks are
        not followed. Returns how many were deleted."""
        removed = 0
        if not is_ours(self.folder):
            return 0
        for area in AREAS:
            base = self.folder / area
            if os.path.islink(base) or not base.is_dir():
                continue
            for dirpath, _, names in os.walk(base):
                under = Path(dirpath).relative_to(base).parts
                for name in names:
                    if name.removesuffix(".json") in keep or not is_entry(area, (*under, name)):
                        continue
                    path = os.path.join(dirpath, name)
                    try:
                        if now - os.stat(path).st_mtime > max_age:
                            os.unlink(path)
                            removed += 1
                    except OSError:
                        continue  # gone already (a concurrent run pruned it)
        return removed

    def prune_if_due(self, keep: Callable[[], Collection[str]], *, now: float | None = None) -> int:
        """:meth:`prune` at most once a day (a marker file's mtime says when it last ran),
        so that a warm run does not walk the cache each time."""
        now = time.time() if now is None else now
        marker = self.folder / "last-prune"
        try:
            if now - marker.stat().st_mtime < PRUNE_EVERY:
                return 0
        except OSError:
            pass  # never pruned
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"{now}\n")
            os.replace(tmp, marker)  # replaces a symlink there, never writes through it
        except OSError:
            return 0
        return self.prune(keep(), now=now)

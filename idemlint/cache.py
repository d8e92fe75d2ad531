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
from functools import lru_cache
from pathlib import Path

from idemlint import __version__
from idemlint.summary import FileSummary
from idemlint.summary_codec import decode, encode

FORMAT = 2
"""Bump when the summary's shape or its encoding (:mod:`idemlint.summary_codec`) changes."""


@lru_cache(maxsize=1)
def summarizer_fingerprint() -> str:
    """A hash of the code that makes summaries, so that a changed summariser (a development
    checkout, a patched install) never reads summaries an older one wrote."""
    h = hashlib.sha256()
    package = Path(__file__).parent
    for name in ("summarize.py", "summary.py", "positions.py", "cache.py", "summary_codec.py"):
        try:
            h.update((package / name).read_bytes())
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

    def get_text(self, key: str, area: str = "summaries") -> str | None:
        """A raw entry; ``area="scans"`` holds the pre-check's per-file scans."""
        try:
            return self._file(key, area).read_text("utf-8")
        except (OSError, ValueError):
            return None

    def put(self, key: str, summary: FileSummary) -> None:
        self.put_text(key, encode(summary))

    def put_text(self, key: str, text: str, area: str = "summaries") -> None:
        """Store a summary already in :func:`~idemlint.summary_codec.encode`'s form
        (or, with ``area="scans"``, a pre-check scan)."""
        target = self._file(key, area)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            gitignore = self.folder / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("*\n", "utf-8")
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        except OSError:
            return  # a read-only or full disk only costs speed

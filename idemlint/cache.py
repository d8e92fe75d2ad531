"""On-disk cache of file summaries, keyed by content hash and idemlint version.

A summary depends only on the file's bytes, its module name and the summariser,
so the key is ``sha256(version, module, content)``: an edited file, a moved file or a
new idemlint each miss the cache. The knowledge config is applied after
summarising, so changing it never needs a re-parse. Writes go to a temporary file
renamed into place, so concurrent runs never see a half-written entry; an entry that
fails to load (corrupt, truncated, older format) is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from idemlint import __version__
from idemlint.summary import FileSummary

FORMAT = 1
"""Bump when the summary's shape changes."""


@lru_cache(maxsize=1)
def summarizer_fingerprint() -> str:
    """A hash of the code that makes summaries, so that a changed summariser (a development
    checkout, a patched install) never reads summaries an older one wrote."""
    h = hashlib.sha256()
    package = Path(__file__).parent
    for name in ("summarize.py", "summary.py", "positions.py", "cache.py"):
        try:
            h.update((package / name).read_bytes())
        except OSError:
            h.update(name.encode())
    return h.hexdigest()


def cache_key(content: bytes, module: str, path: str, kind: str = "summary") -> str:
    """``kind`` separates full summaries from the empty ones of files the pre-check
    found unneeded (``"unneeded"``), so that one never stands in for the other."""
    h = hashlib.sha256()
    h.update(
        f"{__version__}\0{FORMAT}\0{summarizer_fingerprint()}\0{kind}\0{module}\0{path}\0".encode()
    )
    h.update(content)
    return h.hexdigest()


class SummaryCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits = 0
        self.misses = 0

    def _file(self, key: str) -> Path:
        return self.folder / "summaries" / key[:2] / f"{key}.json"

    def get(self, key: str) -> FileSummary | None:
        try:
            data = json.loads(self._file(key).read_text("utf-8"))
            summary = FileSummary.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self.misses += 1
            return None
        self.hits += 1
        return summary

    def put(self, key: str, summary: FileSummary) -> None:
        target = self._file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            gitignore = self.folder / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("*\n", "utf-8")
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(summary.to_dict(), fh, separators=(",", ":"))
            os.replace(tmp, target)
        except OSError:
            return  # a read-only or full disk only costs speed

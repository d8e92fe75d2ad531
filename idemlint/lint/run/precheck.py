"""Stage 1's pre-check as the run drives it: which files need a full summary.

Inputs: every stamped file, the knowledge (its task rules give the trigger) and the
cache (each file's scan is kept under its content hash). Output: a
:class:`~idemlint.lint.run.incremental.Selection`, or, on a re-check, whether the
last run's selection still holds with the changed files added (:meth:`still_needed`).
The pre-check itself lives in :mod:`idemlint.lint.files.prefilter`; this class only
feeds it and keeps its scans.
"""

from __future__ import annotations

import re

from idemlint.lint.files.prefilter import (
    FileScan,
    TooComplex,
    edge_modules,
    needed_files,
    scan,
    trigger_pattern,
)
from idemlint.lint.files.source import decoded_or_none
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.run import snapshot
from idemlint.lint.run.cache import SummaryCache, key_for_digest
from idemlint.lint.run.incremental import NO_TASK_ROOT, Selection, Stamped
from idemlint.lint.run.snapshot import Snapshot


class PreCheck:
    """The pre-check of one run; ``enabled`` is False when it is off or cannot apply
    (a task rule without a literal root), and then every file is summarised."""

    def __init__(
        self,
        knowledge: Knowledge,
        cache: SummaryCache | None,
        files: list[Stamped],
        *,
        wanted: bool,
    ) -> None:
        self.trigger: re.Pattern[str] | None = trigger_pattern(knowledge) if wanted else None
        self.enabled = self.trigger is not None
        self.cache = cache
        self.files = files

    def _scan_key(self, f: Stamped, digest: str) -> str:
        assert self.trigger is not None
        return key_for_digest(digest, f.module, f.rel, kind=f"scan {self.trigger.pattern}")

    def scan_of(self, f: Stamped) -> tuple[FileScan, str]:
        """The scan of ``f`` (from the cache when it loads) and its JSON."""
        assert self.trigger is not None
        key = self._scan_key(f, f.digest)
        text = self.cache.get_text(key, "scans") if self.cache is not None else None
        if text is not None:
            try:
                return FileScan.from_json(text, f.module, f.is_package), text
            except (ValueError, TypeError, AttributeError):
                pass  # a damaged entry: scan again
        found = scan(text_of(f), f.module, f.is_package, self.trigger)
        text = found.to_json()
        if self.cache is not None:
            self.cache.put_text(key, text, "scans")
        return found, text

    def scan_digest(self, f: Stamped) -> str:
        return snapshot.digest(self.scan_of(f)[1].encode())

    def triggered(self, f: Stamped) -> bool:
        """Whether ``f`` mentions a task rule's root (in its text or module name)."""
        return self.trigger is not None and bool(
            self.trigger.search(text_of(f)) or self.trigger.search(f.module)
        )

    def scan_keys(self) -> set[str]:
        """The cache keys of this run's scans (kept by pruning)."""
        if self.trigger is None:
            return set()
        return {self._scan_key(f, f.digest) for f in self.files}

    def select(self, todo: list[Stamped]) -> Selection:
        """The pre-check over ``todo`` from scratch."""
        if self.trigger is None:
            return Selection(None, [""] * len(todo))
        if not any(self.triggered(f) for f in todo):
            return Selection(set(), [NO_TASK_ROOT] * len(todo))
        scans = [self.scan_of(f) for f in todo]
        keep: dict[str, object] = {}
        try:
            needed: set[int] | None = needed_files([sc for sc, _ in scans], self.trigger, keep)
        except TooComplex:
            needed = None
        exports = keep.get("exports")
        return Selection(
            needed,
            [snapshot.digest(t.encode()) for _, t in scans],
            exports if isinstance(exports, dict) else None,
        )

    def _old_scan(self, f: Stamped, digest: str) -> FileScan | None:
        key = self._scan_key(f, digest)
        text = self.cache.get_text(key, "scans") if self.cache is not None else None
        try:
            return None if text is None else FileScan.from_json(text, f.module, f.is_package)
        except (ValueError, TypeError, AttributeError):
            return None

    def _tokens_of(self, files: list[Stamped] | None) -> frozenset[str] | None:
        if not files:
            return None
        return frozenset().union(*(self.scan_of(f)[0].tokens for f in files))

    def still_needed(self, changed: list[Stamped], last: Snapshot) -> bool:
        """Whether the last run's pre-check, with ``changed`` (whose scans changed) added
        to what it keeps, still holds: sound when no name binding changed anywhere (so no
        name became a task rule's, and re-exports are as before) and each file's paths
        lead only into modules that are kept (see
        :func:`~idemlint.lint.files.prefilter.edge_modules`). A file ruled out before is
        then summarised in full: whatever it now declares or reaches, the analysis sees
        it as a run from scratch would."""
        if self.trigger is None or last.exports is None:
            return False
        by_module: dict[str, list[Stamped]] = {}
        for f in self.files:
            by_module.setdefault(f.module, []).append(f)
        needed_modules = {f.module for f in self.files if last.files[f.rel].needed}
        needed_modules |= {f.module for f in changed}
        for f in changed:
            if len(by_module[f.module]) > 1 or self.trigger.match(f.module):
                return False
            before, now = self._old_scan(f, last.files[f.rel].digest), self.scan_of(f)[0]
            if before is None or before.bindings != now.bindings:
                return False
            if before.text_has_trigger != now.text_has_trigger:
                return False
            if any((b in before.tokens) != (b in now.tokens) for b in now.bindings):
                return False
            reached = edge_modules(
                now, by_module, last.exports, lambda m: self._tokens_of(by_module.get(m))
            )
            if not reached <= needed_modules:
                return False
        return True


def text_of(f: Stamped) -> str:
    """A file's text (in the encoding it declares), or "" when it cannot be decoded (the
    summariser reports that)."""
    return decoded_or_none(f.read()) or ""

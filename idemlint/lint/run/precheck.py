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
from collections.abc import Callable

from idemlint.lint.files.prefilter import (
    FileScan,
    TooComplex,
    edge_modules,
    enqueue_tails,
    has_trigger,
    needed_files,
    scan,
    trigger_pattern,
)
from idemlint.lint.files.source import decoded_or_none
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.run import snapshot
from idemlint.lint.run.cache import SummaryCache, key_for_digest
from idemlint.lint.run.incremental import NO_TASK_ROOT, Selection, Stamped
from idemlint.lint.run.prepass import Prepass
from idemlint.lint.run.snapshot import Snapshot

Seeds = Callable[[list[Stamped], list[Stamped]], None]
"""Told, before the graph is built, of the files that mention a task rule's root (each
is kept and may declare a task) and of the files their imports name."""


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
        self.enqueue_tails = enqueue_tails(knowledge)
        self.cache = cache
        self.files = files
        self._none_triggered = False
        self.prepass: Prepass | None = None
        """The per-file pass of a cold run, whose scans are taken before computing any."""
        self.on_seeds: Seeds | None = None

    def scans_wanted(self, files: list[Stamped]) -> bool:
        """Whether a scan of every file will be needed: some file mentions a task rule's
        root (else no file is kept, and none is scanned)."""
        if self.trigger is None:
            return False
        if any(self.triggered(f) for f in files):
            return True
        if len(files) == len(self.files):
            self._none_triggered = True  # (so :meth:`select` need not read them again)
        return False

    def scan_key(self, f: Stamped) -> str:
        """The cache key of ``f``'s scan ("" without the pre-check)."""
        return "" if self.trigger is None else self._scan_key(f, f.digest)

    def _scan_key(self, f: Stamped, digest: str) -> str:
        assert self.trigger is not None
        return key_for_digest(digest, f.module, f.rel, kind=f"scan {self.trigger.pattern}")

    def scan_of(self, f: Stamped) -> tuple[FileScan, str]:
        """The scan of ``f`` (from the cache when it loads) and its JSON."""
        assert self.trigger is not None
        key = self._scan_key(f, f.digest)
        text = self.prepass.take_scan(f) if self.prepass is not None else None
        if text is None and self.cache is not None:
            text = self.cache.get_text(key, "scans")
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
            has_trigger(self.trigger, text_of(f)) or self.trigger.search(f.module)
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
        if self._none_triggered or not any(self.triggered(f) for f in todo):
            return Selection(set(), [NO_TASK_ROOT] * len(todo), candidates=set(), enqueuers=set())
        scans: list[FileScan] = []
        digests: list[str] = []
        for f in todo:
            found, text = self.scan_of(f)
            scans.append(found)
            digests.append(snapshot.digest(text.encode()))  # (the text is not kept)
        if self.on_seeds is not None:
            self._tell_seeds(todo, scans)
        keep: dict[str, object] = {}
        try:
            needed: set[int] | None = needed_files(
                scans, self.trigger, keep, consume=True, enqueue_tails=self.enqueue_tails
            )
        except TooComplex:
            needed = None
        exports, candidates = keep.get("exports"), keep.get("candidates")
        enqueuers = keep.get("enqueuers")
        known = isinstance(candidates, set) and isinstance(enqueuers, set) and needed is not None
        return Selection(
            needed,
            digests,
            exports if isinstance(exports, dict) else None,
            candidates if known and isinstance(candidates, set) else None,
            enqueuers if known and isinstance(enqueuers, set) else None,
        )

    def _tell_seeds(self, todo: list[Stamped], scans: list[FileScan]) -> None:
        """Name the seeds, and the files their imports lead to, to :attr:`on_seeds`
        while the graph is built (a cold run starts summarising them meanwhile)."""
        assert self.on_seeds is not None
        by_module = {f.module: f for f in todo}
        depth = max((f.module.count(".") + 1 for f in todo), default=1)
        seeds = [f for f, sc in zip(todo, scans, strict=True) if sc.text_has_trigger]
        near: dict[str, Stamped] = {}
        for sc in scans:
            if not sc.text_has_trigger:
                continue
            for values in sc.bindings.values():
                for value in values:
                    parts = value.split(".", depth)  # (no module name is longer)
                    for cut in range(min(len(parts), depth), 0, -1):
                        found = by_module.get(".".join(parts[:cut]))
                        if found is not None:
                            near.setdefault(found.rel, found)
                            break
        seen = {f.rel for f in seeds}
        self.on_seeds(seeds, [f for rel, f in near.items() if rel not in seen])

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

"""Stage 1's per-file work for many files at once, in the worker pool.

Before the pre-check can decide anything it needs every file's scan, and a cold run
then needs, per file, whether it parses (a file the pre-check rules out is still
reported when it does not), its outline (for a file needed only for its names) and,
for the files reported on, its suppression comments. None of that needs the other
files, so a cold run does it all in one pass over the project in the worker pool
(:class:`idemlint.lint.run.isolation.Pool`), one ``ast`` parse per file, instead of
one piece at a time in its own process. The parent only collects the results:
:class:`Prepass` answers :meth:`scan_text`, :meth:`parses`, :meth:`outline` and
:meth:`suppressions` from them, and the stages that ask fall back to doing the work
themselves for a file it does not hold (a warm run, a file given as text).

Inputs: the stamped files to read, the pre-check's trigger and the enqueue methods (the
outline lists their sites). Output: per file, a :class:`Found`. Scans and outlines are
written to the cache by the workers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from idemlint.lint.files.comments import suppressions_in
from idemlint.lint.files.prefilter import scan
from idemlint.lint.files.source import decoded_or_none
from idemlint.lint.run.cache import SummaryCache
from idemlint.lint.run.incremental import Stamped
from idemlint.lint.run.snapshot import SuppressionRow
from idemlint.lint.summary.outline import Outline, Unsure, outline_tree
from idemlint.lint.summary.screen import screen_tree

BATCH = 8
"""Files per job: one message per file costs the parent more than the scan of a small file."""

FileJob = tuple[str, str, str, bool, str, str, bool]
"""path, relative path, module, is-package, the scan's cache key ("" for none), the
outline's cache key, whether its suppressions are wanted."""

PrepassJob = tuple[str | None, str | None, tuple[str, ...], tuple[FileJob, ...]]
"""The trigger pattern (None: no scan), the cache folder (None: none), the enqueue methods
whose sites the outlines list, the files."""


@dataclass
class Found:
    """What the pass found in one file."""

    scan: str | None = None
    """The pre-check's scan in :meth:`~idemlint.lint.files.prefilter.FileScan.to_json`
    form (None without a trigger)."""
    parses: bool = False
    """Whether ``ast`` parses it (the pre-check's parse check of a ruled-out file)."""
    outline: str | None = None
    """Its outline in :meth:`Outline.to_json` form; None when only libcst can tell."""
    suppressions: list[SuppressionRow] | None = None
    declined: bool = False
    """It parses, but only libcst can say its names (no outline): summarise it."""
    unreadable: bool = False
    """It could not be read or decoded: the stages ask for themselves (and report it)."""


@lru_cache(maxsize=4)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def prepass_job(job: PrepassJob) -> str:
    """The worker side: every file of the batch, as a JSON list of :class:`Found` fields."""
    trigger, folder, tails, files = job
    cache = SummaryCache(Path(folder)) if folder is not None else None
    out = []
    for path, rel, module, is_package, scan_key, outline_key, wanted in files:
        out.append(
            _one(
                path,
                rel,
                module,
                is_package,
                trigger,
                cache,
                scan_key,
                outline_key,
                wanted,
                frozenset(tails),
            )
        )
    return json.dumps(out, separators=(",", ":"))


def _one(
    path: str,
    rel: str,
    module: str,
    is_package: bool,
    trigger: str | None,
    cache: SummaryCache | None,
    scan_key: str,
    outline_key: str,
    wanted: bool,
    tails: frozenset[str],
) -> list[object]:
    try:
        content = Path(path).read_bytes()
    except OSError:
        return [None, False, None, None, True]
    text = decoded_or_none(content)
    if text is None:
        return [None, False, None, None, True]
    scanned = None
    if trigger is not None:
        scanned = scan(text, module, is_package, _compiled(trigger)).to_json()
        if cache is not None and scan_key:
            cache.put_text(scan_key, scanned, "scans")
    verdict, tree = screen_tree(text)
    parses = tree is not None or _parses_deep(text)
    outlined = None
    if tree is not None and not verdict.problem:
        try:
            outlined = outline_tree(tree, text, rel, module, is_package, tails).to_json()
        except Unsure:
            outlined = None
        if outlined is not None and cache is not None and outline_key:
            cache.put_text(outline_key, outlined, "outlines")
    rows = None
    if wanted:
        rows = [
            [s.line, s.column, s.end_column, s.kind, s.codes, s.reportable]
            for s in suppressions_in(content)
        ]
    return [scanned, parses, outlined, rows, False]


def _parses_deep(text: str) -> bool:
    """Whether ``ast`` parses a text the screen's limited probe could not (deeper than
    the screen lets through, or not Python): the pre-check's parse check."""
    from idemlint.lint.run.summarising import parses

    return parses(text)


class Prepass:
    """The parent side: results by relative path, taken by the stages that need them."""

    def __init__(self) -> None:
        self.found: dict[str, Found] = {}

    def run(
        self,
        files: Sequence[Stamped],
        trigger: re.Pattern[str] | None,
        tails: frozenset[str],
        cache: SummaryCache | None,
        keys: Callable[[Stamped], tuple[str, str]],
        wanted: Callable[[Stamped], bool],
        submit: Callable[[object, PrepassJob], None],
    ) -> list[object]:
        """Queue the files (in batches of :data:`BATCH`) with ``submit(key, job)``; the
        keys are returned, and :meth:`take` receives each batch's text."""
        batches: list[object] = []
        pattern = trigger.pattern if trigger is not None else None
        folder = str(cache.folder) if cache is not None else None
        todo = [f for f in files if not f.override and not f.error]
        for start in range(0, len(todo), BATCH):
            part = todo[start : start + BATCH]
            jobs = tuple(
                (str(f.path), f.rel, f.module, f.is_package, *keys(f), wanted(f)) for f in part
            )
            key = ("prepass", tuple(f.rel for f in part))
            submit(key, (pattern, folder, tuple(sorted(tails)), jobs))
            batches.append(key)
        return batches

    def take(self, key: object, text: str | None) -> None:
        """A batch's result (None: its worker was lost; those files are done in-process)."""
        if text is None:
            return
        assert isinstance(key, tuple)
        rels = key[1]
        for rel, row in zip(rels, json.loads(text), strict=True):
            scanned, parses, outlined, rows, unreadable = row
            self.found[rel] = Found(
                scanned,
                bool(parses),
                outlined,
                None
                if rows is None
                else [
                    (int(r[0]), int(r[1]), int(r[2]), str(r[3]), _codes(r[4]), bool(r[5]))
                    for r in rows
                ],
                outlined is None,
                bool(unreadable),
            )

    def holds(self, f: Stamped) -> bool:
        """Whether the pass read ``f`` (so the stages need not read it again)."""
        return self._usable(f) is not None

    # -- what the stages ask -----------------------------------------------------------
    def _usable(self, f: Stamped) -> Found | None:
        found = self.found.get(f.rel)
        return None if found is None or found.unreadable or f.override else found

    def take_scan(self, f: Stamped) -> str | None:
        """The scan's text, once (the pre-check keeps the parsed scan from then on)."""
        found = self._usable(f)
        if found is None:
            return None
        text, found.scan = found.scan, None
        return text

    def parses(self, f: Stamped) -> bool | None:
        found = self._usable(f)
        return None if found is None else found.parses

    def outline(self, f: Stamped) -> Outline | None:
        """The outline, when the pass made one (None: not made, or only libcst can tell)."""
        found = self._usable(f)
        if found is None or found.outline is None:
            return None
        return Outline.from_json(found.outline, f.rel, f.module)

    def declined(self, f: Stamped) -> bool:
        """Whether the pass tried to outline ``f`` and found that only libcst can tell."""
        found = self._usable(f)
        return found is not None and found.declined

    def drop_outlines(self) -> None:
        """Forget every outline (the run took those it needed)."""
        for found in self.found.values():
            found.outline = None

    def suppressions(self, f: Stamped) -> list[SuppressionRow] | None:
        found = self._usable(f)
        return None if found is None else found.suppressions


def _codes(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    assert isinstance(value, list)
    return tuple(str(c) for c in value)

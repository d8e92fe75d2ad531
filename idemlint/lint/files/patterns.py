"""Path patterns with gitignore semantics: every path a configuration names (``exclude``,
``extend-exclude``, the keys of ``per-file-ignores``) is matched here, one way.

Users already know these rules from ``.gitignore``, so that is what they get, as
``pathspec`` implements them: ``*`` and ``?`` stop at ``/``; a pattern with a ``/``
at its start or in its middle is anchored at the project root, one without matches a
name at any depth; ``dir/`` matches folders only; ``**`` spans folders; ``!`` re-includes
what an earlier pattern excluded. On top of pathspec, the one rule of git's it leaves
to the caller: a file inside an excluded folder stays excluded, whatever a later ``!``
says (git never enters that folder). A home-made translation to regexes had ``*``
cross ``/`` in ``exclude`` while ``per-file-ignores`` did not: one implementation for
every key keeps them alike.

Paths are relative to the project root, with ``/`` separators. ``pathspec`` is
imported on the first non-empty pattern list: most projects exclude nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache


def normalised(pattern: str) -> str:
    """The pattern as gitignore reads it; ``./legacy`` (which git would never match) is
    taken to mean what its writer meant, ``/legacy``: anchored at the root."""
    pattern = pattern.strip()
    while pattern.startswith("./"):
        pattern = "/" + pattern[2:].lstrip("/")
    return pattern


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid gitignore pattern, or None when it is."""
    if not pattern.strip() or pattern.strip().startswith("#"):
        return "an empty pattern (or a comment) matches nothing"
    from pathspec import GitIgnoreSpec

    try:
        GitIgnoreSpec.from_lines([normalised(pattern)])
    except ValueError as exc:
        return str(exc)
    return None


class PathPatterns:
    """A list of gitignore patterns, compiled once; ask :meth:`matches` per path."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(normalised(p) for p in patterns)
        self._match: Callable[[str], bool] | None = None
        self._folders: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, relative: str, *, is_dir: bool = False) -> bool:
        """Whether the root-relative path is matched: itself, or a folder holding it."""
        if not self.patterns:
            return False
        relative = relative.strip("/")
        if not relative:
            return False
        parent, _, _ = relative.rpartition("/")
        if parent and self._folder(parent):
            return True
        return self._matcher()(relative + "/" if is_dir else relative)

    def _folder(self, folder: str) -> bool:
        """Whether a folder or one of its parents is matched (asked once per folder)."""
        known = self._folders.get(folder)
        if known is None:
            parent, _, _ = folder.rpartition("/")
            known = bool(parent) and self._folder(parent)
            known = known or self._matcher()(folder + "/")
            self._folders[folder] = known
        return known

    def _matcher(self) -> Callable[[str], bool]:
        if self._match is None:
            from pathspec import GitIgnoreSpec

            self._match = GitIgnoreSpec.from_lines(self.patterns).match_file
        return self._match


@lru_cache(maxsize=64)
def compiled(patterns: tuple[str, ...]) -> PathPatterns:
    """The compiled form of a pattern list, shared by every caller of one run."""
    return PathPatterns(patterns)

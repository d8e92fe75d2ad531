"""Which files a result was computed from, so that it can be reused until one changes.

The incremental re-check (:mod:`idemlint.lint.run.snapshot`) keeps every task's findings from
the previous run with the set of files its analysis read. A *frame* collects the
files read while it is open; frames nest, and a closed frame's files count for the
frame around it too. Memoised results carry their frame's files, and a memo hit adds
them to the open frame, so a result reused from an earlier task still counts the
files it came from. Reading a file means asking the project index about it: a
module-level name, a function, a class, the locals of a function; asking for a name
that is *not* there counts too (the file that would define it), since an edit can
add it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Tracker:
    """A stack of open frames, each the set of file paths read while it was open."""

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames: list[set[str]] = []

    def touch(self, path: str) -> None:
        if self.frames:
            self.frames[-1].add(path)

    def merge(self, paths: Iterable[str]) -> None:
        if self.frames:
            self.frames[-1].update(paths)

    def open(self) -> None:
        self.frames.append(set())

    def close(self) -> frozenset[str]:
        """Close the innermost frame; its files also count for the frame around it."""
        paths = frozenset(self.frames.pop())
        if self.frames and paths:
            self.frames[-1].update(paths)
        return paths

    def memo(self, cache: dict[K, tuple[V, frozenset[str]]], key: K, compute: Callable[[], V]) -> V:
        """``cache[key]``, computed in a frame of its own the first time; a hit counts the
        files the value was computed from for the open frame, as computing it would."""
        hit = cache.get(key)
        if hit is not None:
            self.merge(hit[1])
            return hit[0]
        self.open()
        try:
            value = compute()
        finally:
            paths = self.close()
        cache[key] = (value, paths)
        return value

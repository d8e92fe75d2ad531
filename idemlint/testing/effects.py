"""Side effects as the recorders see them, and the crash that follows one.

Every hook (database statements and commits, emails, HTTP calls, enqueued
tasks) reports to the active :class:`Recording` of the current context. The
recording keeps two lists: every effect point in order (where a crash can be
injected), and the effects that *survived* - external effects at once,
database writes only once their transaction committed. A retry is judged on
what survived, because that is what a real worker leaves behind when it dies.
"""

from __future__ import annotations

import contextvars
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

DB = "db"
COMMIT = "commit"
EMAIL = "email"
HTTP = "http"
ENQUEUE = "enqueue"
EXTERNAL_KINDS = (EMAIL, HTTP, ENQUEUE)
"""Effects that leave no state a test can read back, so they are judged by count."""


class SimulatedCrash(BaseException):
    """The worker "dies" right after an effect.

    A ``BaseException`` so that the task's own ``except Exception`` handlers
    do not swallow it, just as they could not catch a SIGKILL; transaction
    blocks still see it and roll back what was not committed.
    """

    def __init__(self, effect: Effect, index: int) -> None:
        super().__init__(f"idemlint.testing: simulated crash after effect {index} ({effect.label})")
        self.effect = effect
        self.index = index


@dataclass(frozen=True)
class Effect:
    """One side effect.

    ``label`` is what a person reads (``POST https://api.example/v1/charges``);
    ``identity`` is what runs are compared on, with numbers and ids masked so
    that a row id from a sequence does not make two runs look different;
    ``dedupe`` is a token under which the receiver deduplicates (an HTTP
    ``Idempotency-Key``): effects sharing one count once.
    """

    kind: str
    label: str
    identity: str
    table: str | None = None
    verb: str | None = None
    rows: int | None = None
    dedupe: str | None = None
    relative: bool = False
    """A write of the form ``SET n = n - 1``: repeating it moves the value again."""
    target: str | None = None
    """The database a write went to (``django:default``, ``sqlalchemy:<url>``)."""
    runtime_key: str | None = field(default=None, compare=False)


_NUMBER = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|\d+"
)


def mask(text: str) -> str:
    """``text`` with uuids and digit runs replaced, for identities stable across runs."""
    return _NUMBER.sub("#", text)


def effect_counts(effects: list[Effect]) -> Counter[str]:
    """How many times each identity took effect, counting a dedupe token once."""
    counts: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for effect in effects:
        if effect.dedupe is not None:
            token = (effect.identity, effect.dedupe)
            if token in seen:
                continue
            seen.add(token)
        counts[effect.identity] += 1
    return counts


class Recording:
    """The effects of one attempt of a task, and where to crash it.

    ``crash_at`` is the 1-based index of the effect point after which
    :class:`SimulatedCrash` is raised (None: run to completion).
    Transactions are tracked per connection object as a stack of frames, one
    per open transaction or savepoint: a write joins the innermost frame, a
    released savepoint merges into its parent, a rollback drops its frame,
    and the outermost commit makes the writes durable.
    """

    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at = crash_at
        self.points: list[Effect] = []
        self.durable: list[Effect] = []
        self.crashed: SimulatedCrash | None = None
        self.runtime_keys: set[tuple[Any, str]] = set()
        """(store, key) pairs that an ``idemlint.runtime`` execution claimed new."""
        self.targets: dict[str, Any] = {}
        self.databases_used: set[str] = set()
        """Django aliases the attempt queried at all (reads included)."""
        """Database targets written to, by name, for state snapshots (see state.py)."""
        self._frames: dict[int, list[list[Effect]]] = {}
        self._lock = threading.RLock()

    # -- transactions -------------------------------------------------------
    def begin(self, conn: object) -> None:
        """A transaction or savepoint opened on ``conn``."""
        with self._lock:
            self._frames.setdefault(id(conn), []).append([])

    def in_transaction(self, conn: object) -> bool:
        with self._lock:
            return bool(self._frames.get(id(conn)))

    def end(self, conn: object, *, committed: bool) -> int:
        """Close the innermost frame; the number of writes an outermost commit made durable."""
        with self._lock:
            stack = self._frames.get(id(conn))
            if not stack:
                return 0
            frame = stack.pop()
            if not stack:
                del self._frames[id(conn)]
            if not committed:
                return 0
            if stack:
                stack[-1].extend(frame)
                return 0
            self.durable.extend(frame)
            return len(frame)

    def commit_all(self, conn: object) -> int:
        """A whole transaction on ``conn`` committed: every open frame is durable now."""
        with self._lock:
            stack = self._frames.pop(id(conn), None) or []
            writes = [effect for frame in stack for effect in frame]
            self.durable.extend(writes)
            return len(writes)

    def drop_transactions(self, conn: object) -> None:
        """A whole transaction on ``conn`` rolled back: nothing in it survived."""
        with self._lock:
            self._frames.pop(id(conn), None)

    # -- effect points ------------------------------------------------------
    def point(self, effect: Effect, *, conn: object | None = None) -> None:
        """Record ``effect``; inside an open transaction on ``conn`` it waits for the commit.

        Raises :class:`SimulatedCrash` when this is the chosen crash point.
        """
        effect = self._with_runtime_key(effect)
        with self._lock:
            self.points.append(effect)
            stack = self._frames.get(id(conn)) if conn is not None else None
            if stack:
                stack[-1].append(effect)
            elif effect.kind != COMMIT:
                self.durable.append(effect)
            index = len(self.points)
            crash = self.crash_at is not None and index == self.crash_at
        if crash:
            self.crashed = SimulatedCrash(effect, index)
            raise self.crashed

    def _with_runtime_key(self, effect: Effect) -> Effect:
        """Note the ``idemlint.runtime`` key this effect ran under, so a reset can forget it."""
        execution_module = sys.modules.get("idemlint.runtime.execution")
        if execution_module is None:
            return effect
        execution = execution_module.current_execution()
        if execution is None:
            return effect
        if execution.kind == "new":
            with self._lock:
                self.runtime_keys.add((execution.store, execution.key))
        return replace(effect, runtime_key=execution.key)


_active: contextvars.ContextVar[Recording | None] = contextvars.ContextVar(
    "idemlint_testing_recording", default=None
)


def active() -> Recording | None:
    """The recording of the attempt running in this context, if any."""
    return _active.get()


@contextmanager
def recording(rec: Recording) -> Iterator[Recording]:
    """Make ``rec`` the target of every hook for the duration of the block."""
    token = _active.set(rec)
    try:
        yield rec
    finally:
        _active.reset(token)


__all__ = [
    "COMMIT",
    "DB",
    "EMAIL",
    "ENQUEUE",
    "EXTERNAL_KINDS",
    "HTTP",
    "Effect",
    "Recording",
    "SimulatedCrash",
    "active",
    "effect_counts",
    "mask",
    "recording",
]

"""Deadlines for store operations, and the watchdog that enforces them on PostgreSQL.

A store operation that waits on a server that stopped answering (frozen,
partitioned, swapping) must fail in bounded time: a claim that arrives after
its lease is worth nothing, and a worker blocked on a dead socket holds its
job hostage. Network drivers wait forever by default, so every public store
operation runs inside :func:`bounded`, and the driver layer of each store
reads :func:`remaining` to bound what it waits for (socket timeouts for
Redis and MySQL, the :class:`Watchdog` for psycopg, which waits in ``poll``
where socket timeouts do not apply).

The deadline lives in a ``ContextVar``: each thread (and each asyncio task's
worker thread) sees its own, and bounds nest - an inner operation never gets
more time than the one enclosing it (the decorator bounds a completion retry
by what is left of the lease this way).
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "idemlint_store_deadline", default=None
)


@contextmanager
def bounded(seconds: float) -> Iterator[float]:
    """Run the enclosed store calls within ``seconds`` (an enclosing bound that ends sooner wins).

    Yields the monotonic deadline in force.
    """
    deadline = time.monotonic() + max(0.0, seconds)
    outer = _deadline.get()
    if outer is not None and outer < deadline:
        deadline = outer
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


@contextmanager
def unbounded() -> Iterator[None]:
    """Step out of the enclosing deadline (for once-per-store set-up with its own budget)."""
    token = _deadline.set(None)
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline() -> float | None:
    """The monotonic deadline of the enclosing :func:`bounded`, or None outside one."""
    return _deadline.get()


def remaining() -> float | None:
    """Seconds left before the enclosing deadline (never negative), or None outside one."""
    end = _deadline.get()
    if end is None:
        return None
    return max(0.0, end - time.monotonic())


class Alarm:
    """One armed deadline of the :class:`Watchdog`."""

    __slots__ = ("_action", "_lock", "_watchdog", "done", "fired")

    def __init__(self, action: Callable[[], None], watchdog: Watchdog) -> None:
        self._action = action
        self._watchdog = watchdog
        self._lock = threading.Lock()
        self.done = False
        self.fired = False

    def _fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            self.done = True
        with suppress(Exception):  # the connection may be closed already: nothing to stop
            self._action()

    def disarm(self) -> bool:
        """Stop the alarm; False when it fired already (the action ran or is running)."""
        with self._lock:
            if self.done:
                return not self.fired
            self.done = True
        self._watchdog._disarmed()
        return True


class Watchdog:
    """One daemon thread that runs an action (cut a connection) for calls past their deadline.

    One thread for the process instead of one timer thread per call: arming
    costs a heap push under a lock, about a microsecond, against the tens of
    microseconds of a thread start.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Alarm]] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._dead = 0

    def _disarmed(self) -> None:
        """Count a disarmed alarm; rebuild the heap once most of it is disarmed alarms.

        Disarmed alarms are otherwise only dropped when they reach the top,
        so a busy worker would pile up one per call for a whole timeout.
        """
        with self._cond:
            self._dead += 1
            if self._dead > 256 and self._dead * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._dead = 0

    def arm(self, at: float, action: Callable[[], None]) -> Alarm:
        """Run ``action`` at monotonic time ``at`` unless the returned alarm is disarmed first."""
        alarm = Alarm(action, self)
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._counter), alarm))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="idemlint-store-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is alarm:
                self._cond.notify()
        return alarm

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)  # disarmed: drop it
                    self._dead = max(0, self._dead - 1)
                if not self._heap:
                    self._cond.wait(timeout=30.0)
                    if not self._heap:
                        self._thread = None
                        return  # idle: a later arm() starts a new thread
                    continue
                at, _, alarm = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
                heapq.heappop(self._heap)
            alarm._fire()


WATCHDOG = Watchdog()

__all__ = ["WATCHDOG", "Alarm", "Watchdog", "bounded", "deadline", "remaining", "unbounded"]

"""The running execution of an idempotent call: its lease and its steps.

:func:`current_execution` gives code inside an ``@idempotent`` function its
key, its fencing epoch (to pass on to systems that can check it, Kleppmann's
fencing token) and a fenced ``heartbeat()``. It lives in a ``ContextVar`` so
that threads and asyncio tasks each see their own execution.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterable

from idemlint.runtime.errors import LeaseLost, StoreError
from idemlint.runtime.observability import (
    FENCED,
    HEARTBEAT,
    MetricsHook,
    RuntimeEvent,
    emit,
    logger,
)
from idemlint.runtime.serializers import Serializer
from idemlint.runtime.stores._deadline import bounded
from idemlint.runtime.stores.base import Lease, Store

FIRST_PAUSE = 0.05
"""First pause before a recording write is tried again; it doubles up to ``MAX_PAUSE``."""
MAX_PAUSE = 1.0

_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "idemlint_runtime_execution", default=None
)


class Execution:
    """One attempt at running an idempotent function under a lease."""

    def __init__(
        self,
        store: Store,
        lease: Lease,
        *,
        serializer: Serializer,
        max_result_bytes: int,
        hooks: Iterable[MetricsHook] = (),
    ) -> None:
        self.store = store
        self.lease = lease
        self.serializer = serializer
        self.max_result_bytes = max_result_bytes
        self.hooks = tuple(hooks)
        self._steps: dict[str, bytes] | None = {} if lease.kind == "new" else None
        self._used_steps: set[str] = set()
        self._lock = threading.Lock()
        self.atomic_task = False
        """True in whole-task atomic mode (``@idempotent(atomic_using=...)``): the function
        runs in one database transaction with its completion, so no step can be a
        recovery point inside it (see docs/runtime/steps.md)."""

    @property
    def key(self) -> str:
        """The idempotency key being executed."""
        return self.lease.key

    @property
    def epoch(self) -> int:
        """The fencing token of this attempt: higher than every earlier claim of the key."""
        return self.lease.epoch

    fencing_token = epoch

    @property
    def is_replay(self) -> bool:
        """True when an earlier attempt of this run crashed or failed.

        Steps it recorded are then replayed from the store instead of run.
        ``kind`` tells which: ``"retry"`` (the earlier attempt raised) or
        ``"takeover"`` (its lease expired, e.g. the worker died).
        """
        return self.lease.kind != "new"

    @property
    def kind(self) -> str:
        """``new``, ``retry`` or ``takeover``."""
        return self.lease.kind

    @property
    def lease_remaining(self) -> float:
        """Seconds left on the lease by the local (conservative) estimate."""
        return self.lease.deadline - time.monotonic()

    def heartbeat(self, lease: float | None = None) -> None:
        """Extend the lease by ``lease`` seconds (default: the decorator's) from the store's now.

        Fenced: raises :class:`LeaseLost` if another holder took the key over.
        """
        self._check_not_lost()
        seconds = self.lease.lease_seconds if lease is None else float(lease)
        started = time.monotonic()
        try:
            self.store.heartbeat(self.lease, lease_seconds=seconds)
        except LeaseLost:
            self._mark_lost()
            raise
        self.lease.deadline = started + seconds
        emit(RuntimeEvent(HEARTBEAT, self.key, self.epoch), self.hooks)

    async def aheartbeat(self, lease: float | None = None) -> None:
        """:meth:`heartbeat` for async code (the store call runs in a thread)."""
        await asyncio.to_thread(self.heartbeat, lease)

    # -- internals used by steps and the decorator ---------------------------
    def _check_not_lost(self) -> None:
        if self.lease.lost:
            raise LeaseLost(
                f"the lease on key {self.key!r} (epoch {self.epoch}) was lost to another holder",
                key=self.key,
                epoch=self.epoch,
            )

    def _mark_lost(self) -> None:
        if not self.lease.lost:
            self.lease.lost = True
            emit(RuntimeEvent(FENCED, self.key, self.epoch), self.hooks)

    def _ensure_live(self) -> None:
        """Before a side effect: refuse if the lease is known lost, renew if it ran out locally."""
        self._check_not_lost()
        if time.monotonic() >= self.lease.deadline:
            self.heartbeat()

    def _stored_steps(self) -> dict[str, bytes]:
        with self._lock:
            if self._steps is None:
                self._steps = self.store.load_steps(self.lease)
            return self._steps

    def _use_step_name(self, name: str) -> None:
        from idemlint.runtime.errors import ConfigurationError

        with self._lock:
            if name in self._used_steps:
                raise ConfigurationError(
                    f"step {name!r} ran twice in one execution of key {self.key!r}; "
                    "give each step a distinct name (include the loop item: f'email:{user_id}')",
                    key=self.key,
                )
            self._used_steps.add(name)

    def __repr__(self) -> str:
        return f"<Execution key={self.key!r} epoch={self.epoch} kind={self.kind}>"


def current_execution() -> Execution | None:
    """The execution of the innermost running ``@idempotent`` call, or None outside one."""
    return _current.get()


class HeartbeatThread:
    """Renews a sync execution's lease every third of the lease, until stopped."""

    def __init__(self, execution: Execution, interval: float) -> None:
        self._execution = execution
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"idemlint-heartbeat:{execution.key}", daemon=True
        )

    def start(self) -> HeartbeatThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not _beat(self._execution):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)


async def heartbeat_task(execution: Execution, interval: float) -> None:
    """The asyncio counterpart of :class:`HeartbeatThread` (cancel it to stop)."""
    while True:
        await asyncio.sleep(interval)
        if not await asyncio.to_thread(_beat, execution):
            return


def _beat(execution: Execution) -> bool:
    """One automatic heartbeat; False once the lease is lost (stop beating)."""
    try:
        execution.heartbeat()
    except LeaseLost:
        return False
    except Exception as exc:  # a store hiccup: the next beat may get through
        logger.warning("heartbeat for key %r failed: %r; retrying", execution.key, exc)
    return True


def record_within_lease(lease: Lease, write: Callable[[], None], what: str) -> None:
    """Run a fenced write that records work already done, retrying it while the lease lasts.

    A completion (or a step result) that fails to be recorded means the work
    runs again once the lease ends - a duplicate charge for a connection
    hiccup. So a *transient* :class:`StoreError` (too many connections, a
    dropped connection, a timeout) is retried with exponential backoff
    (jittered, 50 ms doubling to 1 s), each attempt bounded by what is left
    of the lease, and never past it: after the lease another worker may take
    the key over, and the fence would refuse the write anyway. Retrying is
    safe because every fenced write recognises its own earlier success.
    If it still fails, the last error is raised: the work is not reported done.
    Whether it *is* recorded cannot always be known: an attempt that timed out
    or lost its connection may have reached the store (its answer lost, or held
    by a stalled server that applies it on resuming), so the error says that
    it is not done unless so - then the store holds this very result.
    """
    pause = FIRST_PAUSE
    attempts = 0
    while True:
        attempts += 1
        try:
            if attempts == 1:
                write()  # the first attempt has the store's own budget, lease or not
            else:
                with bounded(max(0.0, lease.deadline - time.monotonic())):
                    write()
            return
        except StoreError as exc:
            left = lease.deadline - time.monotonic()
            delay = pause * random.uniform(0.5, 1.0)
            if not exc.transient or delay >= left:  # no time for another attempt: give up
                if attempts == 1 and not exc.transient:
                    raise
                tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                raise StoreError(
                    f"{what} of key {lease.key!r} could not be recorded ({tries} within its "
                    "lease); it is not marked done unless an attempt reached the store and "
                    "only its answer was lost (a stalled server may still apply it when it "
                    "resumes): then the store holds this result, and a later call replays "
                    "it. Otherwise a retry runs it again once the lease ends. "
                    f"Last error: {exc}",
                    key=lease.key,
                    transient=exc.transient,
                ) from exc
            logger.warning(
                "%s of key %r failed (%s); trying again in %.2fs, %.1fs before its lease ends",
                what,
                lease.key,
                exc,
                delay,
                left,
            )
            time.sleep(delay)
            pause = min(pause * 2, MAX_PAUSE)


def set_current(execution: Execution | None) -> contextvars.Token[Execution | None]:
    """Make ``execution`` current (the decorator's business)."""
    return _current.set(execution)


def reset_current(token: contextvars.Token[Execution | None]) -> None:
    _current.reset(token)


__all__ = [
    "Execution",
    "HeartbeatThread",
    "current_execution",
    "heartbeat_task",
    "record_within_lease",
]

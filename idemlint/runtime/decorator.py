"""``@idempotent``: run a job at most once per key, replay its result after.

The flow of a call (see docs/runtime/api.md for the full semantics):

1. build the key and the argument fingerprint, or fail with ``KeyBuildError``
   before anything runs;
2. claim the key in the store (one round trip): a stored result is replayed,
   a live lease of another holder raises ``AlreadyInProgress`` / waits /
   skips, and otherwise this call holds the key under a fencing epoch;
3. run the function; on an exception release the claim (a failure is never
   cached) and re-raise; on success store the result (the second and last
   round trip), fenced so that a holder that lost its lease changes nothing.

Whether a call was a replay is visible without shared mutable state: use
``fn.call_detailed(...)`` for an :class:`Outcome`, or ``on_replay=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, overload

from idemlint.runtime.errors import (
    AlreadyInProgress,
    ConfigurationError,
    KeyReuseError,
    LeaseLost,
    ResultTooLarge,
    StoreError,
)
from idemlint.runtime.execution import (
    Execution,
    HeartbeatThread,
    heartbeat_task,
    record_within_lease,
    reset_current,
    set_current,
)
from idemlint.runtime.fingerprint import (
    FingerprintSpec,
    KeySpec,
    bind_arguments,
    build_key,
    check_key_template,
    fingerprint_of,
    simple_positional,
)
from idemlint.runtime.observability import (
    CLAIM,
    COMPLETE,
    FENCED,
    IN_PROGRESS,
    KEY_REUSE,
    RELEASE,
    REPLAY,
    STORE_ERROR,
    TAKEOVER,
    MetricsHook,
    RuntimeEvent,
    emit,
    listening,
    logger,
)
from idemlint.runtime.serializers import DEFAULT_SERIALIZER, Serializer, deserialize, serialize
from idemlint.runtime.stores import open_store
from idemlint.runtime.stores.base import Claimed, Completed, InProgress, Lease, Store, lease_bounds

P = ParamSpec("P")
R = TypeVar("R")
OnInProgress = Literal["raise", "wait", "skip"]

DEFAULT_LEASE = 60.0
DEFAULT_TTL = 24 * 3600.0


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What one call of an idempotent function did.

    ``replayed`` is True when ``result`` came from the store without running;
    ``skipped`` when another holder was running it and ``on_in_progress`` was
    ``"skip"`` (``result`` is then None). ``epoch`` is the fencing epoch of the
    execution that produced the result (0 when skipped).
    """

    result: R
    replayed: bool
    epoch: int
    key: str
    skipped: bool = False


class _Spec:
    """The decorator's options, validated once at decoration time."""

    def __init__(
        self,
        fn: Callable[..., Any],
        key: KeySpec,
        store: Store | str | None,
        lease: float,
        ttl: float | None,
        on_in_progress: OnInProgress,
        wait_timeout: float | None,
        poll_interval: float,
        heartbeat: bool | float,
        serializer: Serializer | None,
        max_result_bytes: int | None,
        fingerprint: FingerprintSpec,
        on_replay: Callable[[Outcome[Any]], None] | None,
        hooks: Iterable[MetricsHook],
        atomic_using: str | Callable[..., Any] | None = None,
    ) -> None:
        self.fn = fn
        self.signature = inspect.signature(fn)
        self._positional = simple_positional(self.signature)
        if isinstance(key, str):
            check_key_template(key, self.signature)
        elif not callable(key):
            raise ConfigurationError(f"key must be a format string or a callable, not {key!r}")
        self.key = key
        if store is not None and not isinstance(store, (str, Store)):
            raise ConfigurationError(f"store must be a Store, a URL or None, not {store!r}")
        self._store_option = store
        self._store: Store | None = store if isinstance(store, Store) else None
        self._store_lock = threading.Lock()
        self.lease = lease_bounds(lease)
        if ttl is not None and not ttl > 0:
            raise ConfigurationError(
                f"ttl must be positive seconds or None (keep forever), not {ttl!r}"
            )
        self.ttl = None if ttl is None else float(ttl)
        if on_in_progress not in ("raise", "wait", "skip"):
            raise ConfigurationError(
                f"on_in_progress must be 'raise', 'wait' or 'skip', not {on_in_progress!r}"
            )
        self.on_in_progress = on_in_progress
        self.wait_timeout = self.lease if wait_timeout is None else float(wait_timeout)
        self.poll_interval = float(poll_interval)
        if heartbeat is True:
            self.heartbeat_interval: float | None = self.lease / 3
        elif heartbeat is False or heartbeat is None:
            self.heartbeat_interval = None
        else:
            if not 0 < float(heartbeat) < self.lease:
                raise ConfigurationError(
                    f"heartbeat interval must be between 0 and the lease ({self.lease}s)"
                )
            self.heartbeat_interval = float(heartbeat)
        self.serializer = serializer or DEFAULT_SERIALIZER
        if not isinstance(self.serializer, Serializer):
            raise ConfigurationError(f"serializer {serializer!r} lacks dumps()/loads()")
        self._max_result_bytes = max_result_bytes
        self.fingerprint = fingerprint
        self.on_replay = on_replay
        self.hooks = tuple(hooks)
        if (
            atomic_using is not None
            and not isinstance(atomic_using, str)
            and not callable(atomic_using)
        ):
            raise ConfigurationError(
                "atomic_using must be a Django database alias or a callable that takes the "
                f"function's arguments and returns the connection to run in, not {atomic_using!r}"
            )
        self.atomic_using = atomic_using

    def store(self) -> Store:
        """The store, opened on first use (so the env var may be set after import)."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    option = self._store_option
                    self._store = open_store(option if isinstance(option, str) else None)
        return self._store

    def max_result_bytes(self, store: Store) -> int:
        return store.max_result_bytes if self._max_result_bytes is None else self._max_result_bytes

    def identify(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
        names = self._positional
        if names is not None and not kwargs and len(args) == len(names):
            arguments = dict(zip(names, args, strict=True))
        else:
            arguments = bind_arguments(self.signature, args, kwargs)
        key = build_key(self.key, arguments, args, kwargs)
        return key, fingerprint_of(self.fingerprint, arguments, args, kwargs, key=key)

    # -- steps of the flow shared by the sync and async paths ---------------
    def claim(self, store: Store, key: str, fingerprint: str) -> Claimed | Completed | InProgress:
        try:
            return store.claim(key, fingerprint, lease=self.lease, ttl=self.ttl)
        except KeyReuseError:
            emit(RuntimeEvent(KEY_REUSE, key), self.hooks)
            raise
        except StoreError as exc:
            emit(
                RuntimeEvent(STORE_ERROR, key, extra={"op": "claim", "error": repr(exc)}),
                self.hooks,
            )
            raise

    def replayed(self, done: Completed) -> Outcome[Any]:
        value = deserialize(self.serializer, done.result, key=done.key)
        outcome: Outcome[Any] = Outcome(value, replayed=True, epoch=done.epoch, key=done.key)
        if listening(REPLAY, self.hooks):
            emit(RuntimeEvent(REPLAY, done.key, done.epoch), self.hooks)
        if self.on_replay is not None:
            self.on_replay(outcome)
        return outcome

    def in_progress(self, busy: InProgress, waited_since: float) -> Outcome[Any] | float:
        """Raise, skip (an Outcome) or the seconds to sleep before claiming again."""
        emit(
            RuntimeEvent(
                IN_PROGRESS, busy.key, busy.epoch, extra={"retry_after": round(busy.retry_after, 3)}
            ),
            self.hooks,
        )
        if self.on_in_progress == "skip":
            return Outcome(None, replayed=False, epoch=0, key=busy.key, skipped=True)
        waited = time.monotonic() - waited_since
        if self.on_in_progress == "raise" or waited >= self.wait_timeout:
            raise AlreadyInProgress(
                f"key {busy.key!r} is being run by another holder (epoch {busy.epoch}); "
                f"its lease ends in {busy.retry_after:.3f}s",
                key=busy.key,
                retry_after=busy.retry_after,
                epoch=busy.epoch,
            )
        backoff = min(
            self.poll_interval, 0.01 * float(2 ** min(10, int(waited / 0.01).bit_length()))
        )
        return max(0.001, min(backoff, busy.retry_after + 0.001, self.wait_timeout - waited))

    def claimed(self, store: Store, lease: Lease) -> Execution:
        event = TAKEOVER if lease.kind == "takeover" else CLAIM
        if listening(event, self.hooks):
            emit(
                RuntimeEvent(event, lease.key, lease.epoch, extra={"kind": lease.kind}), self.hooks
            )
        return Execution(
            store,
            lease,
            serializer=self.serializer,
            max_result_bytes=self.max_result_bytes(store),
            hooks=self.hooks,
        )

    def release(self, store: Store, lease: Lease, error: BaseException) -> None:
        """Give the claim back after ``error``; never mask the error itself."""
        try:
            store.release(lease, ttl=self.ttl)
        except LeaseLost:
            emit(RuntimeEvent(FENCED, lease.key, lease.epoch, extra={"op": "release"}), self.hooks)
            return
        except Exception as exc:
            emit(
                RuntimeEvent(
                    STORE_ERROR, lease.key, lease.epoch, extra={"op": "release", "error": repr(exc)}
                ),
                self.hooks,
            )
            logger.error(
                "could not release key %r after %r; it frees when its lease expires",
                lease.key,
                error,
            )
            return
        emit(
            RuntimeEvent(RELEASE, lease.key, lease.epoch, extra={"error": type(error).__name__}),
            self.hooks,
        )

    def serialize(self, store: Store, lease: Lease, value: Any) -> bytes:
        """The stored form of the result, within the size limit (no release on failure)."""
        data = serialize(self.serializer, value, key=lease.key)
        limit = self.max_result_bytes(store)
        if len(data) > limit:
            raise ResultTooLarge(
                f"the result for key {lease.key!r} is {len(data)} bytes; the limit is {limit} "
                "(max_result_bytes=); the claim was released",
                key=lease.key,
                size=len(data),
                limit=limit,
            )
        return data

    def encode(self, store: Store, lease: Lease, value: Any) -> bytes:
        """Serialise the result; on any failure release the claim and raise.

        Any: the documented promise is that a failure releases the claim, and a
        claim left held blocks every retry for the whole lease.
        """
        try:
            return self.serialize(store, lease, value)
        except BaseException as exc:
            self.release(store, lease, exc)
            raise

    def atomic_target(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What ``atomic_using`` names for this call: the alias, or what the callable returns."""
        using = self.atomic_using
        return using if isinstance(using, str) else cast(Callable[..., Any], using)(*args, **kwargs)

    def completed_atomically(self, lease: Lease, started: float) -> None:
        """Emit the completion event of a whole-task atomic call (the commit recorded it)."""
        if listening(COMPLETE, self.hooks):
            duration = time.perf_counter() - started
            emit(RuntimeEvent(COMPLETE, lease.key, lease.epoch, duration), self.hooks)

    def complete(self, store: Store, lease: Lease, data: bytes, started: float) -> None:
        """Record the result; a transient store error is retried within the lease."""
        try:
            record_within_lease(
                lease, lambda: store.complete(lease, data, ttl=self.ttl), "the completion"
            )
        except LeaseLost:
            lease.lost = True
            emit(RuntimeEvent(FENCED, lease.key, lease.epoch, extra={"op": "complete"}), self.hooks)
            raise
        except StoreError as exc:
            emit(
                RuntimeEvent(
                    STORE_ERROR,
                    lease.key,
                    lease.epoch,
                    extra={"op": "complete", "error": repr(exc)},
                ),
                self.hooks,
            )
            raise
        if listening(COMPLETE, self.hooks):
            duration = time.perf_counter() - started
            emit(RuntimeEvent(COMPLETE, lease.key, lease.epoch, duration), self.hooks)


class _Bound:
    """An idempotent method bound to its instance (``obj.method(...)``)."""

    def __init__(
        self, wrapper: IdempotentFunction[..., Any] | AsyncIdempotentFunction[..., Any], obj: object
    ) -> None:
        self._wrapper = wrapper
        self._obj = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapper(self._obj, *args, **kwargs)

    def call_detailed(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapper.call_detailed(self._obj, *args, **kwargs)


class IdempotentFunction(Generic[P, R]):
    """A sync function wrapped by ``@idempotent``. Call it as the original."""

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        functools.update_wrapper(self, spec.fn)

    @property
    def store(self) -> Store:
        """The store this function's keys live in."""
        return self._spec.store()

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The idempotency key a call with these arguments would use."""
        return self._spec.identify(args, kwargs)[0]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.call_detailed(*args, **kwargs).result

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else _Bound(self, obj)

    def call_detailed(self, *args: P.args, **kwargs: P.kwargs) -> Outcome[R]:
        """Call, and say how: an :class:`Outcome` with ``replayed``/``skipped``/``epoch``."""
        spec = self._spec
        key, fingerprint = spec.identify(args, kwargs)
        store = spec.store()
        waited_since = time.monotonic()
        while True:
            state = spec.claim(store, key, fingerprint)
            if isinstance(state, Completed):
                return cast(Outcome[R], spec.replayed(state))
            if isinstance(state, Claimed):
                break
            pause = spec.in_progress(state, waited_since)
            if isinstance(pause, Outcome):
                return cast(Outcome[R], pause)
            time.sleep(pause)
        lease = state.lease
        execution = spec.claimed(store, lease)
        started = time.perf_counter()
        token = set_current(execution)
        beat = (
            HeartbeatThread(execution, spec.heartbeat_interval).start()
            if spec.heartbeat_interval
            else None
        )
        try:
            if spec.atomic_using is None:
                value = spec.fn(*args, **kwargs)
            else:
                value = self._atomic(spec, store, execution, args, kwargs)
        except BaseException as exc:
            if beat is not None:
                beat.stop()
                beat = None
            spec.release(store, lease, exc)
            raise
        finally:
            if beat is not None:
                beat.stop()
            reset_current(token)
        if spec.atomic_using is not None:
            spec.completed_atomically(lease, started)
            return Outcome(value, replayed=False, epoch=lease.epoch, key=key)
        data = spec.encode(store, lease, value)
        spec.complete(store, lease, data, started)
        return Outcome(value, replayed=False, epoch=lease.epoch, key=key)

    @staticmethod
    def _atomic(
        spec: _Spec,
        store: Store,
        execution: Execution,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Whole-task atomic mode: the function and its completion in one transaction."""
        from idemlint.runtime.atomic import prepare_atomic_task, run_atomic_task

        lease = execution.lease
        execution.atomic_task = True
        using = prepare_atomic_task(
            store, spec.atomic_target(args, kwargs), want_async=False, key=lease.key
        )
        try:
            return run_atomic_task(
                store,
                lease,
                using,
                lambda: spec.fn(*args, **kwargs),
                lambda value: spec.serialize(store, lease, value),
                spec.ttl,
            )
        except LeaseLost:
            execution._mark_lost()
            raise


class AsyncIdempotentFunction(Generic[P, R]):
    """An async function wrapped by ``@idempotent``. Await it as the original.

    Store calls run in a worker thread (``asyncio.to_thread``) so the event
    loop never blocks on the network.
    """

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec
        functools.update_wrapper(self, spec.fn)
        # inspect.iscoroutinefunction(wrapper) stays True for frameworks that check it
        self._is_coroutine = getattr(asyncio.coroutines, "_is_coroutine", None)
        with contextlib.suppress(AttributeError):  # Python < 3.12 has no marker
            inspect.markcoroutinefunction(self)  # type: ignore[attr-defined,unused-ignore]

    @property
    def store(self) -> Store:
        return self._spec.store()

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        return self._spec.identify(args, kwargs)[0]

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return (await self.call_detailed(*args, **kwargs)).result

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else _Bound(self, obj)

    async def call_detailed(self, *args: P.args, **kwargs: P.kwargs) -> Outcome[R]:
        spec = self._spec
        key, fingerprint = spec.identify(args, kwargs)
        store = await asyncio.to_thread(spec.store)
        waited_since = time.monotonic()
        while True:
            state = await asyncio.to_thread(spec.claim, store, key, fingerprint)
            if isinstance(state, Completed):
                return cast(Outcome[R], spec.replayed(state))
            if isinstance(state, Claimed):
                break
            pause = spec.in_progress(state, waited_since)
            if isinstance(pause, Outcome):
                return cast(Outcome[R], pause)
            await asyncio.sleep(pause)
        lease = state.lease
        execution = spec.claimed(store, lease)
        started = time.perf_counter()
        token = set_current(execution)
        beat = (
            asyncio.ensure_future(heartbeat_task(execution, spec.heartbeat_interval))
            if spec.heartbeat_interval
            else None
        )
        try:
            if spec.atomic_using is None:
                value = await cast(Callable[P, Coroutine[Any, Any, R]], spec.fn)(*args, **kwargs)
            else:
                value = await self._atomic(spec, store, execution, args, kwargs)
        except BaseException as exc:
            if beat is not None:
                beat.cancel()
                beat = None
            await asyncio.shield(asyncio.to_thread(spec.release, store, lease, exc))
            raise
        finally:
            if beat is not None:
                beat.cancel()
            reset_current(token)
        if spec.atomic_using is not None:
            spec.completed_atomically(lease, started)
            return Outcome(value, replayed=False, epoch=lease.epoch, key=key)
        data = await asyncio.to_thread(spec.encode, store, lease, value)
        await asyncio.to_thread(spec.complete, store, lease, data, started)
        return Outcome(value, replayed=False, epoch=lease.epoch, key=key)

    @staticmethod
    async def _atomic(
        spec: _Spec,
        store: Store,
        execution: Execution,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Whole-task atomic mode on an AsyncSession / AsyncConnection."""
        from idemlint.runtime.atomic import arun_atomic_task, prepare_atomic_task

        lease = execution.lease
        execution.atomic_task = True
        using = prepare_atomic_task(
            store, spec.atomic_target(args, kwargs), want_async=True, key=lease.key
        )
        try:
            return await arun_atomic_task(
                store,
                lease,
                using,
                lambda: cast(Callable[..., Coroutine[Any, Any, Any]], spec.fn)(*args, **kwargs),
                lambda value: spec.serialize(store, lease, value),
                spec.ttl,
            )
        except LeaseLost:
            execution._mark_lost()
            raise


class _Decorator:
    """What ``idempotent(...)`` returns: applies the options to a function."""

    def __init__(self, **options: Any) -> None:
        self._options = options

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncIdempotentFunction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> IdempotentFunction[P, R]: ...

    def __call__(
        self, fn: Callable[P, Any]
    ) -> IdempotentFunction[P, Any] | AsyncIdempotentFunction[P, Any]:
        spec = _Spec(fn, **self._options)
        if inspect.iscoroutinefunction(fn):
            return AsyncIdempotentFunction(spec)
        return IdempotentFunction(spec)


def idempotent(
    key: KeySpec,
    *,
    store: Store | str | None = None,
    lease: float = DEFAULT_LEASE,
    ttl: float | None = DEFAULT_TTL,
    on_in_progress: OnInProgress = "raise",
    wait_timeout: float | None = None,
    poll_interval: float = 0.25,
    heartbeat: bool | float = False,
    serializer: Serializer | None = None,
    max_result_bytes: int | None = None,
    fingerprint: FingerprintSpec = None,
    on_replay: Callable[[Outcome[Any]], None] | None = None,
    hooks: Iterable[MetricsHook] = (),
    atomic_using: str | Callable[..., Any] | None = None,
) -> _Decorator:
    """Make a sync or async function run at most once per idempotency key.

    ``key``: a format template over the parameters (``"charge:{order_id}"``,
    ``"{order.id}"``) or a callable taking the function's arguments.
    ``store``: a :class:`Store`, a store URL, or None for ``open_store()``.
    ``lease``: seconds a claim is held before another caller may take over.
    ``ttl``: seconds a finished (or released) record is kept; None = forever.
    ``on_in_progress``: ``"raise"`` :class:`AlreadyInProgress`, ``"wait"`` up
    to ``wait_timeout`` (default: the lease) for a replay or a takeover, or
    ``"skip"`` (return None; ``call_detailed`` says ``skipped``).
    ``heartbeat``: True (every lease/3) or an interval to renew the lease
    automatically while the function runs.
    ``fingerprint``: None (all arguments), False, names, or a callable.
    ``on_replay``: called with the :class:`Outcome` of every replay.
    ``hooks``: metric hooks for this function's events.
    ``atomic_using``: whole-task atomic mode. A Django database alias, or a
    callable taking the function's arguments and returning a Django alias, a
    SQLAlchemy Session or Connection (AsyncSession / AsyncConnection for async
    functions), outside a transaction: the function runs in one transaction on
    it, and its completion record commits with its writes (the store must be
    in that database). Steps are refused inside; see docs/runtime/steps.md.
    """
    return _Decorator(
        key=key,
        store=store,
        lease=lease,
        ttl=ttl,
        on_in_progress=on_in_progress,
        wait_timeout=wait_timeout,
        poll_interval=poll_interval,
        heartbeat=heartbeat,
        serializer=serializer,
        max_result_bytes=max_result_bytes,
        fingerprint=fingerprint,
        on_replay=on_replay,
        hooks=hooks,
        atomic_using=atomic_using,
    )


__all__ = ["AsyncIdempotentFunction", "IdempotentFunction", "Outcome", "idempotent"]

"""Step recovery points inside an idempotent function.

A function that charges a card, then emails a receipt, then updates a CRM
should not charge twice because the CRM call crashed. Wrapping each side
effect in a step records its result under the key (fenced by the epoch), so
a retry replays the finished steps from the store and runs only the rest -
the "recovery points" of Brandur Leach's Stripe-like idempotency keys.

A context-manager form is deliberately absent: a ``with`` block cannot be
skipped in Python, so it could not replay.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from idemlint.runtime.errors import ConfigurationError, LeaseLost, ResultTooLarge
from idemlint.runtime.execution import Execution, current_execution, record_within_lease
from idemlint.runtime.observability import STEP_REPLAY, STEP_RUN, RuntimeEvent, emit
from idemlint.runtime.serializers import deserialize, serialize
from idemlint.runtime.stores.base import validate_step_name

P = ParamSpec("P")
R = TypeVar("R")


def _execution_for(name: str) -> Execution:
    """The running execution, for step ``name``; ConfigurationError on misuse (outside an
    idempotent function, inside an atomic task, an unstorable or repeated name)."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a step name must be a non-empty string, not {name!r}")
    execution = current_execution()
    if execution is None:
        raise ConfigurationError(
            f"step({name!r}) ran outside an @idempotent function; it would have no key to "
            "record under, so it refuses to run unprotected"
        )
    if execution.atomic_task:
        raise ConfigurationError(
            f"step({name!r}) ran inside an atomic task (@idempotent(atomic_using=...)): the "
            "task's transaction commits or vanishes whole, so a step record in it would be no "
            "recovery point, and one written beside it could outlive the writes it stands for",
            key=execution.key,
        )
    validate_step_name(name, execution.key)  # before it runs, not after, when saving
    execution._use_step_name(name)
    return execution


def _encode(execution: Execution, name: str, value: Any) -> bytes:
    data = serialize(
        execution.serializer, value, key=execution.key, what=f"result of step {name!r}"
    )
    if len(data) > execution.max_result_bytes:
        raise ResultTooLarge(
            f"the result of step {name!r} of key {execution.key!r} is {len(data)} bytes; "
            f"the limit is {execution.max_result_bytes}",
            key=execution.key,
            size=len(data),
            limit=execution.max_result_bytes,
        )
    return data


def _save(execution: Execution, name: str, data: bytes) -> None:
    """Record a step's result; a transient store error is retried within the lease
    (the step ran: failing to record it would run it again on the retry)."""
    try:
        record_within_lease(
            execution.lease,
            lambda: execution.store.save_step(execution.lease, name, data),
            f"step {name!r}",
        )
    except LeaseLost:
        execution._mark_lost()
        raise


def step(name: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn(*args, **kwargs)`` at most once per key and step name; return its result.

    If an earlier attempt of this key's run recorded step ``name``, its stored
    result is returned (deserialised, so JSON-shaped) and ``fn`` is not called.
    Otherwise ``fn`` runs and its result is recorded, fenced by the epoch: a
    holder that lost its lease gets :class:`LeaseLost` and writes nothing.
    """
    execution = _execution_for(name)
    stored = execution._stored_steps()
    if name in stored:
        emit(
            RuntimeEvent(STEP_REPLAY, execution.key, execution.epoch, extra={"step": name}),
            execution.hooks,
        )
        return cast(
            R,
            deserialize(
                execution.serializer, stored[name], key=execution.key, what=f"step {name!r}"
            ),
        )
    execution._ensure_live()
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    if inspect.isawaitable(value):
        raise ConfigurationError(
            f"step({name!r}) got a coroutine; use 'await astep(...)' in async code"
        )
    _save(execution, name, _encode(execution, name, value))
    emit(
        RuntimeEvent(
            STEP_RUN, execution.key, execution.epoch, time.perf_counter() - started, {"step": name}
        ),
        execution.hooks,
    )
    return value


async def astep(
    name: str, fn: Callable[P, Awaitable[R] | R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """:func:`step` for async functions; ``fn`` may be a coroutine function or a plain one."""
    execution = _execution_for(name)
    stored = await asyncio.to_thread(execution._stored_steps)
    if name in stored:
        emit(
            RuntimeEvent(STEP_REPLAY, execution.key, execution.epoch, extra={"step": name}),
            execution.hooks,
        )
        return cast(
            R,
            deserialize(
                execution.serializer, stored[name], key=execution.key, what=f"step {name!r}"
            ),
        )
    await asyncio.to_thread(execution._ensure_live)
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    if inspect.isawaitable(value):
        value = await value
    await asyncio.to_thread(_save, execution, name, _encode(execution, name, value))
    emit(
        RuntimeEvent(
            STEP_RUN, execution.key, execution.epoch, time.perf_counter() - started, {"step": name}
        ),
        execution.hooks,
    )
    return cast(R, value)


def recovery_point(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of :func:`step` for sync functions: every call is the step ``name``.

    ``name`` may be a format template over the function's arguments
    (``"email:{user_id}"``) so that a loop gets one step per item.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                "recovery_point decorates sync functions; use astep() in async code"
            )
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            step_name = name.format(**bound.arguments) if "{" in name else name
            return step(step_name, fn, *args, **kwargs)

        return wrapper

    return decorate


__all__ = ["astep", "recovery_point", "step"]

"""Dramatiq: an actor decorator that makes an actor idempotent.

::

    from idemlint.runtime.integrations.dramatiq import idempotent_actor

    @idempotent_actor(key="charge:{order_id}", max_retries=20)
    def charge(order_id): ...

It stands in for ``@dramatiq.actor`` and takes the same options. The key may
use ``{task_id}`` (the message id, the same on every retry and redelivery)
and ``{task_name}`` (the actor name). A key with ``{task_id}`` needs the
``CurrentMessage`` middleware; it is added to the broker if missing.

When another worker holds the key, :class:`AlreadyInProgress` becomes
``dramatiq.Retry(delay=...)`` timed to the holder's lease, so Dramatiq's
``Retries`` middleware redelivers it then (bounded by ``max_retries``),
without logging a stack trace for this expected case.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from idemlint.runtime.errors import AlreadyInProgress
from idemlint.runtime.integrations._common import (
    DEFAULT_TASK_KEY,
    check_on_in_progress,
    glue_options,
    idempotent_for_task,
    retry_delay,
    task_context,
    template_roots,
)

__all__ = ["idempotent_actor"]


def idempotent_actor(
    fn: Callable[..., Any] | None = None,
    *,
    key: str | Callable[..., str] = DEFAULT_TASK_KEY,
    store: Any = None,
    lease: float = 60.0,
    ttl: float | None = 24 * 3600.0,
    heartbeat: bool | float = False,
    on_in_progress: str = "retry",
    retry_delay_seconds: float | None = None,
    max_retry_delay: float = 60.0,
    idempotency_options: dict[str, Any] | None = None,
    **actor_options: Any,
) -> Any:
    """``@dramatiq.actor`` plus ``@idempotent``; usable bare or with options."""
    check_on_in_progress(on_in_progress)

    def decorate(fn: Callable[..., Any]) -> Any:
        wrapped = idempotent_for_task(
            fn,
            key,
            glue_options(
                store=store,
                lease=lease,
                ttl=ttl,
                heartbeat=heartbeat,
                on_in_progress=on_in_progress,
                extra=idempotency_options,
            ),
        )
        actor_name = actor_options.get("actor_name") or fn.__name__
        broker = actor_options.get("broker") or dramatiq.get_broker()
        needs_id = isinstance(key, str) and "task_id" in template_roots(key)
        if needs_id and not any(isinstance(m, CurrentMessage) for m in broker.middleware):
            broker.add_middleware(CurrentMessage())

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            message = CurrentMessage.get_current_message()
            with task_context(None if message is None else message.message_id, actor_name):
                try:
                    return wrapped(*args, **kwargs)
                except AlreadyInProgress as exc:
                    if on_in_progress != "retry":
                        raise
                    delay = retry_delay(exc, fixed=retry_delay_seconds, maximum=max_retry_delay)
                    raise dramatiq.Retry(str(exc), delay=int(delay * 1000)) from exc

        return dramatiq.actor(run, **actor_options)

    return decorate if fn is None else decorate(fn)

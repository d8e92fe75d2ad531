"""Huey: a task decorator that makes a Huey task idempotent.

::

    from idemlint.runtime.integrations.huey import idempotent_task

    @idempotent_task(huey, key="charge:{order_id}")
    def charge(order_id): ...

It stands in for ``@huey.task()`` and takes the same options. The key may use
``{task_id}`` (the Huey task id, kept when Huey retries a task) and
``{task_name}``. When another worker holds the key,
:class:`AlreadyInProgress` becomes Huey's ``RetryTask(delay=...)``, timed to
the holder's lease: the retry then replays the result or takes over.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from huey.exceptions import RetryTask  # type: ignore[import-untyped]

from idemlint.runtime.errors import AlreadyInProgress, ConfigurationError
from idemlint.runtime.integrations._common import (
    DEFAULT_TASK_KEY,
    check_on_in_progress,
    glue_options,
    idempotent_for_task,
    retry_delay,
    task_context,
)

__all__ = ["idempotent_task"]


def idempotent_task(
    huey: Any,
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
    **task_options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """``@huey.task(**task_options)`` plus ``@idempotent``."""
    check_on_in_progress(on_in_progress)
    if task_options.pop("context", False):
        raise ConfigurationError("idempotent_task passes Huey's context itself; drop context=")

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

        @functools.wraps(fn)
        def run(*args: Any, task: Any = None, **kwargs: Any) -> Any:
            name = fn.__name__ if task is None else task.name
            with task_context(None if task is None else task.id, name):
                try:
                    return wrapped(*args, **kwargs)
                except AlreadyInProgress as exc:
                    if on_in_progress != "retry":
                        raise
                    delay = retry_delay(exc, fixed=retry_delay_seconds, maximum=max_retry_delay)
                    raise RetryTask(str(exc), delay=delay) from exc

        return huey.task(context=True, **task_options)(run)

    return decorate

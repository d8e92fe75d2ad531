"""RQ: a job decorator that makes an RQ job idempotent.

::

    from idemlint.runtime.integrations.rq import idempotent_job

    @idempotent_job(key="charge:{order_id}")
    def charge(order_id): ...

    queue.enqueue(charge, 42, retry=Retry(max=5, interval=[2, 10, 30]))

RQ imports the job function by its dotted name, which now names the wrapper,
so nothing else changes in how jobs are enqueued. The key may use
``{task_id}`` (the RQ job id, the same when a job is retried or requeued) and
``{task_name}`` (the job's function name) besides the parameters.

RQ lets the enqueuer, not the job, choose retry delays. So with the default
``on_in_progress="raise"``, a job that meets another holder's lease fails
with :class:`~idemlint.runtime.errors.AlreadyInProgress` and RQ's ``Retry``
runs it again later (then it replays or takes over). ``"wait"`` blocks the
worker until the holder finishes instead; ``"skip"`` returns None.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from idemlint.runtime.integrations._common import (
    DEFAULT_TASK_KEY,
    idempotent_for_task,
    task_context,
)

__all__ = ["idempotent_job"]


def idempotent_job(
    key: str | Callable[..., str] = DEFAULT_TASK_KEY,
    *,
    store: Any = None,
    lease: float = 60.0,
    ttl: float | None = 24 * 3600.0,
    on_in_progress: str = "raise",
    heartbeat: bool | float = False,
    **options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate an RQ job function; ``options`` go to ``@idempotent``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapped = idempotent_for_task(
            fn,
            key,
            {
                "store": store,
                "lease": lease,
                "ttl": ttl,
                "on_in_progress": on_in_progress,
                "heartbeat": heartbeat,
                **options,
            },
        )
        default_name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def job(*args: Any, **kwargs: Any) -> Any:
            from rq import get_current_job

            current = get_current_job()
            job_id = None if current is None else current.id
            name = (current.func_name if current is not None else None) or default_name
            with task_context(job_id, name):
                return wrapped(*args, **kwargs)

        job.idempotent = wrapped  # type: ignore[attr-defined]
        return job

    return decorate

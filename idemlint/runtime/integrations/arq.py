"""arq: make an arq job coroutine idempotent.

::

    from idemlint.runtime.integrations.arq import idempotent_job

    @idempotent_job(key="charge:{order_id}")
    async def charge(ctx, order_id): ...

    class WorkerSettings:
        functions = [charge]

arq passes a ``ctx`` dict first; the key and the argument fingerprint cover
the other parameters only. The key may use ``{task_id}`` (arq's ``job_id``,
which also deduplicates enqueues that pass ``_job_id=``) and ``{task_name}``.
When another worker holds the key, :class:`AlreadyInProgress` becomes
``arq.worker.Retry(defer=...)`` timed to the holder's lease, bounded by the
worker's ``max_tries``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from arq.worker import Retry

from idemlint.runtime.errors import AlreadyInProgress, ConfigurationError
from idemlint.runtime.integrations._common import (
    DEFAULT_TASK_KEY,
    check_on_in_progress,
    glue_options,
    idempotent_for_task,
    retry_delay,
    task_context,
)

__all__ = ["idempotent_job"]

_ctx: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("idemlint_arq_ctx")


def idempotent_job(
    key: str | Callable[..., str] = DEFAULT_TASK_KEY,
    *,
    store: Any = None,
    lease: float = 60.0,
    ttl: float | None = 24 * 3600.0,
    heartbeat: bool | float = False,
    on_in_progress: str = "retry",
    retry_delay_seconds: float | None = None,
    max_retry_delay: float = 60.0,
    **options: Any,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Decorate ``async def job(ctx, ...)``; ``options`` go to ``@idempotent``."""
    check_on_in_progress(on_in_progress)

    def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"arq jobs are coroutines; {fn.__qualname__} is not")
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        if not params:
            raise ConfigurationError(f"an arq job takes ctx first; {fn.__qualname__} takes nothing")

        async def body(*args: Any, **kwargs: Any) -> Any:
            return await fn(_ctx.get(), *args, **kwargs)

        # The key and fingerprint see the job's arguments without ctx.
        body.__signature__ = signature.replace(parameters=params[1:])  # type: ignore[attr-defined]
        body.__name__, body.__qualname__ = fn.__name__, fn.__qualname__
        body.__module__ = fn.__module__
        wrapped = idempotent_for_task(
            body,
            key,
            glue_options(
                store=store,
                lease=lease,
                ttl=ttl,
                heartbeat=heartbeat,
                on_in_progress=on_in_progress,
                extra=options,
            ),
        )

        @functools.wraps(fn)
        async def job(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            token = _ctx.set(ctx)
            try:
                with task_context(ctx.get("job_id"), fn.__name__):
                    return await wrapped(*args, **kwargs)
            except AlreadyInProgress as exc:
                if on_in_progress != "retry":
                    raise
                delay = retry_delay(exc, fixed=retry_delay_seconds, maximum=max_retry_delay)
                raise Retry(defer=delay) from exc
            finally:
                _ctx.reset(token)

        return job

    return decorate

"""taskiq: make an async taskiq task idempotent.

::

    from idemlint.runtime.integrations.taskiq import IdempotencyMiddleware, idempotent_task

    broker = ListQueueBroker(...).with_middlewares(IdempotencyMiddleware())

    @broker.task
    @idempotent_task(key="charge:{order_id}")
    async def charge(order_id: int) -> dict: ...

The key may use ``{task_id}`` (the message's task id) and ``{task_name}``;
those two need :class:`IdempotencyMiddleware` on the broker, which publishes
them for the duration of each execution. Keys over the arguments only need
no middleware.

By default a call that meets another holder's lease waits for it
(``on_in_progress="wait"``, up to the lease) and then replays the holder's
result or takes over from a dead one: in an event loop the wait costs no
worker thread. ``"raise"`` and ``"skip"`` are available too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from idemlint.runtime.errors import ConfigurationError
from idemlint.runtime.integrations._common import (
    DEFAULT_TASK_KEY,
    idempotent_for_task,
    task_context,
)

__all__ = ["IdempotencyMiddleware", "idempotent_task"]


class IdempotencyMiddleware(TaskiqMiddleware):
    """Publishes the executing message's task id and name to idempotency keys."""

    def __init__(self) -> None:
        super().__init__()
        self._open: dict[str, ExitStack] = {}

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        stack = ExitStack()
        stack.enter_context(task_context(message.task_id, message.task_name))
        self._open[message.task_id] = stack
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        stack = self._open.pop(message.task_id, None)
        if stack is not None:
            stack.close()


def idempotent_task(
    key: str | Callable[..., str] = DEFAULT_TASK_KEY,
    *,
    store: Any = None,
    lease: float = 60.0,
    ttl: float | None = 24 * 3600.0,
    heartbeat: bool | float = False,
    on_in_progress: str = "wait",
    **options: Any,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Decorate an async task function (below ``@broker.task``)."""

    def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"idempotent_task wraps async tasks; {fn.__qualname__} is not")
        wrapped = idempotent_for_task(
            fn,
            key,
            {
                "store": store,
                "lease": lease,
                "ttl": ttl,
                "heartbeat": heartbeat,
                "on_in_progress": on_in_progress,
                **options,
            },
        )

        @functools.wraps(fn)
        async def task(*args: Any, **kwargs: Any) -> Any:
            return await wrapped(*args, **kwargs)

        return task

    return decorate

"""How to run one attempt of a task, per framework, the way a worker would.

An attempt must go through the same code a worker runs - base classes,
``__call__`` overrides, decorators applied by the framework - but never
through a broker. Every attempt of one check reuses one task id, because a
redelivered or retried job keeps its id.

- Celery: ``task.apply(..., task_id=..., throw=True)`` (eager, with a request
  context, through a custom ``__call__`` such as the runtime's
  ``IdempotentTask``).
- RQ: the job's function (an ``rq.job.Job`` is unpacked), with
  ``rq.get_current_job()`` answering with a job of that id.
- Dramatiq: the actor's function, as the worker calls it.
- Huey: ``task.call_local``.
- arq and taskiq, and any coroutine function: awaited on the check's own
  event loop.
- Anything else callable: called.
"""

from __future__ import annotations

import inspect
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio


class Attempt:
    """A task bound to its arguments; calling it runs one attempt."""

    def __init__(self, name: str, call: Callable[[], Any], *, is_async: bool = False) -> None:
        self.name = name
        self._call = call
        self.is_async = is_async
        self._loop: asyncio.AbstractEventLoop | None = None  # created on first use

    def __call__(self) -> Any:
        result = self._call()
        if inspect.isawaitable(result):
            return self.loop().run_until_complete(_awaited(result))
        return result

    def loop(self) -> asyncio.AbstractEventLoop:
        """The check's event loop (one for all attempts: clients bound to a loop keep working)."""
        import asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def call_raw(self) -> Any:
        """The attempt's call without running a coroutine it returns."""
        return self._call()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            self._loop = None


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _qualname(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module else str(name)


def _celery_task(task: Any) -> bool:
    module = sys.modules.get("celery.app.task")
    return module is not None and isinstance(task, module.Task)


def adapt(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Attempt:
    """The :class:`Attempt` for ``task`` of whichever framework defined it."""
    task_id = f"idemlint-{uuid.uuid4().hex[:12]}"
    if "celery.local" in sys.modules and isinstance(task, sys.modules["celery.local"].Proxy):
        task = task._get_current_object()  # @shared_task gives a proxy of the app's task
    if _celery_task(task):
        name = str(task.name)

        def run_celery() -> Any:
            result = task.apply(args=args, kwargs=kwargs, task_id=task_id, throw=True)
            return result.result

        return Attempt(name, run_celery)
    rq_job = sys.modules.get("rq.job")
    if rq_job is not None and isinstance(task, rq_job.Job):
        job = task
        return Attempt(str(job.func_name), lambda: _run_rq(job, job.func, job.args, job.kwargs))
    dramatiq = sys.modules.get("dramatiq")
    if dramatiq is not None and isinstance(task, dramatiq.Actor):
        fn = task.fn
        return _plain(str(task.actor_name), fn, args, kwargs)
    huey_api = sys.modules.get("huey.api")
    if huey_api is not None and isinstance(task, huey_api.TaskWrapper):
        return Attempt(str(task.name), lambda: task.call_local(*args, **kwargs))
    taskiq_decor = sys.modules.get("taskiq.decor")
    if taskiq_decor is not None and isinstance(task, taskiq_decor.AsyncTaskiqDecoratedTask):
        fn = task.original_func
        return _plain(str(task.task_name), fn, args, kwargs)
    if not callable(task):
        raise TypeError(f"assert_retry_safe needs a task or a callable, not {task!r}")
    if (_rq_imported() or _rq_job_function(task)) and not inspect.iscoroutinefunction(task):
        # possibly an RQ job function: get_current_job() answers with a job of a stable id
        fn = task
        return Attempt(_qualname(task), lambda: _run_rq(task_id, fn, args, kwargs))
    return _plain(_qualname(task), task, args, kwargs)


def _rq_imported() -> bool:
    return "rq.job" in sys.modules


def _rq_job_function(task: Any) -> bool:
    """A job function made by the runtime's ``idempotent_job``, whose module imports RQ only
    when the job runs: a test file that defines one need not have imported RQ itself, and
    without a current job its default ``{task_id}`` key could not be built."""
    glue = sys.modules.get("idemlint.runtime.integrations.rq")
    return glue is not None and getattr(task, "idempotent", None) is not None


def _plain(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Attempt:
    is_async = inspect.iscoroutinefunction(fn)
    return Attempt(name, lambda: fn(*args, **kwargs), is_async=is_async)


def _run_rq(job: Any, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Call an RQ job's function as a worker would, with ``get_current_job()`` set.

    ``job`` is the ``rq.job.Job`` itself, or the task id to build one with
    (never saved: its Redis client is created but not connected).
    """
    import rq.job as rq_job

    if isinstance(job, str):
        from redis import Redis

        job = rq_job.Job.create(fn, args=args, kwargs=kwargs, id=job, connection=Redis())
    token = rq_job._current_job.set(job)
    try:
        return fn(*args, **kwargs)
    finally:
        rq_job._current_job.reset(token)


__all__ = ["Attempt", "adapt"]

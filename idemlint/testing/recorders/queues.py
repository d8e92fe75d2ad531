"""Enqueued tasks: recorded, and not sent to any broker.

Celery ``apply_async``/``delay``/``send_task``, RQ ``Queue.enqueue*`` (the
``enqueue_job``/``schedule_job``/``enqueue_many`` sinks they share), Dramatiq
``Actor.send``/``send_with_options``, Huey ``Huey.enqueue`` (what calling a
task does), arq ``ArqRedis.enqueue_job`` and taskiq ``kiq``. Each returns the
framework's own handle object, built locally, so code that reads an id off
it keeps working.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from idemlint.testing.effects import ENQUEUE, Effect, active, mask
from idemlint.testing.recorders._patch import Patches


def _arguments(args: Any, kwargs: Any) -> str:
    parts = [repr(a) for a in (args or ())]
    parts += [f"{k}={v!r}" for k, v in sorted((kwargs or {}).items())]
    text = ", ".join(parts)
    return text if len(text) <= 80 else text[:77] + "..."


def _record(name: str, args: Any = (), kwargs: Any = None) -> None:
    rec = active()
    if rec is None:
        return
    label = f"enqueue {name}({_arguments(args, kwargs)})"
    rec.point(Effect(ENQUEUE, label, mask(label)))


class QueueHooks:
    """Installs a hook for every task framework that is imported."""

    def __init__(self, patches: Patches) -> None:
        for module, install in (
            ("celery", self._celery),
            ("rq", self._rq),
            ("dramatiq", self._dramatiq),
            ("huey", self._huey),
            ("arq", self._arq),
            ("taskiq", self._taskiq),
        ):
            if module in sys.modules:
                install(patches)

    @staticmethod
    def _celery(patches: Patches) -> None:
        from celery import Celery  # type: ignore[import-untyped]
        from celery.app.task import Task  # type: ignore[import-untyped]
        from celery.result import AsyncResult  # type: ignore[import-untyped]

        if patches.done(Task, "apply_async"):
            return

        def apply_async(self: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
            _record(self.name, args, kwargs)
            return AsyncResult(options.get("task_id") or str(uuid.uuid4()), app=self.app)

        def send_task(self: Any, name: str, args: Any = None, kwargs: Any = None, **kw: Any) -> Any:
            _record(name, args, kwargs)
            return AsyncResult(kw.get("task_id") or str(uuid.uuid4()), app=self)

        patches.replace(Task, "apply_async", apply_async)
        patches.replace(Celery, "send_task", send_task)

    @staticmethod
    def _rq(patches: Patches) -> None:
        from rq import Queue

        if patches.done(Queue, "enqueue_job"):
            return

        def enqueue_job(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
            _record(job.func_name, job.args, job.kwargs)
            return job

        def schedule_job(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
            _record(job.func_name, job.args, job.kwargs)
            return job

        def enqueue_many(self: Any, job_datas: Any, *args: Any, **kwargs: Any) -> list[Any]:
            jobs = []
            for data in job_datas:
                job = self.create_job(data.func, args=data.args, kwargs=data.kwargs)
                _record(job.func_name, job.args, job.kwargs)
                jobs.append(job)
            return jobs

        patches.replace(Queue, "enqueue_job", enqueue_job)
        patches.replace(Queue, "schedule_job", schedule_job)
        patches.replace(Queue, "enqueue_many", enqueue_many)

    @staticmethod
    def _dramatiq(patches: Patches) -> None:
        from dramatiq import Actor

        if patches.done(Actor, "send_with_options"):
            return

        def send_with_options(
            self: Any,
            *,
            args: tuple[Any, ...] = (),
            kwargs: Any = None,
            delay: Any = None,
            **o: Any,
        ) -> Any:
            _record(self.actor_name, args, kwargs)
            return self.message_with_options(args=args, kwargs=kwargs or {}, **o)

        patches.replace(Actor, "send_with_options", send_with_options)

    @staticmethod
    def _huey(patches: Patches) -> None:
        from huey.api import Huey, Result  # type: ignore[import-untyped]

        if patches.done(Huey, "enqueue"):
            return

        def enqueue(self: Any, task: Any) -> Any:
            _record(task.name, task.args, task.kwargs)
            return Result(self, task)

        patches.replace(Huey, "enqueue", enqueue)

    @staticmethod
    def _arq(patches: Patches) -> None:
        from arq.connections import ArqRedis
        from arq.jobs import Job

        if patches.done(ArqRedis, "enqueue_job"):
            return

        async def enqueue_job(self: Any, function: str, *args: Any, **kwargs: Any) -> Any:
            job_id = kwargs.get("_job_id") or uuid.uuid4().hex
            plain = {k: v for k, v in kwargs.items() if not k.startswith("_")}
            _record(function, args, plain)
            return Job(job_id, redis=self)

        patches.replace(ArqRedis, "enqueue_job", enqueue_job)

    @staticmethod
    def _taskiq(patches: Patches) -> None:
        from taskiq.kicker import AsyncKicker
        from taskiq.task import AsyncTaskiqTask

        if patches.done(AsyncKicker, "kiq"):
            return

        async def kiq(self: Any, *args: Any, **kwargs: Any) -> Any:
            _record(self.task_name, args, kwargs)
            return AsyncTaskiqTask(
                task_id=uuid.uuid4().hex, result_backend=self.broker.result_backend
            )

        patches.replace(AsyncKicker, "kiq", kiq)


__all__ = ["QueueHooks"]

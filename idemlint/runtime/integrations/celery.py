"""Celery: a Task base class that makes a task idempotent.

::

    from idemlint.runtime.integrations.celery import IdempotentTask

    @app.task(base=IdempotentTask, bind=True, idempotency_key="charge:{order_id}")
    def charge(self, order_id): ...

Celery turns extra ``@app.task`` options into attributes of the task class,
so every ``idempotency_*`` attribute below is also a task option. The key may
use ``{task_id}`` (``self.request.id``, the same across Celery retries and
redeliveries) and ``{task_name}`` next to the task's parameters; the default
``"{task_name}:{task_id}"`` protects against redelivery, an argument key also
against the same job being enqueued twice.

When another worker holds the key, :class:`AlreadyInProgress` becomes
``self.retry(countdown=...)``, timed to the holder's lease: the retry then
replays the holder's result or takes over from a dead holder. Celery's own
``max_retries`` bounds it. Importing this module imports Celery; importing
``idemlint.runtime`` does not.

``task.call_detailed(*args, **kwargs)`` runs the task here, as calling the task does, and
returns the :class:`~idemlint.runtime.Outcome`, so a caller can tell a replay from a run
(``outcome.replayed``), as with any ``@idempotent`` function.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Task  # type: ignore[import-untyped]

from idemlint.runtime.decorator import Outcome
from idemlint.runtime.errors import AlreadyInProgress, ConfigurationError
from idemlint.runtime.integrations._common import (
    DEFAULT_TASK_KEY,
    idempotent_for_task,
    retry_delay,
    task_context,
)

__all__ = ["IdempotentTask"]


class IdempotentTask(Task):  # type: ignore[misc]
    """Base class for Celery tasks that run at most once per idempotency key."""

    idempotency_key: Any = DEFAULT_TASK_KEY
    """Format string over the task's parameters, ``{task_id}``, ``{task_name}``; or a callable."""
    idempotency_store: Any = None
    """A Store, a store URL, or None for ``open_store()`` (``IDEMLINT_STORE_URL``)."""
    idempotency_lease: float = 60.0
    idempotency_ttl: float | None = 24 * 3600.0
    idempotency_heartbeat: bool | float = False
    idempotency_on_in_progress: str = "retry"
    """"retry" (self.retry after the holder's lease), "raise", "wait" or "skip"."""
    idempotency_retry_countdown: float | None = None
    """A fixed countdown for those retries instead of the holder's remaining lease."""
    idempotency_max_countdown: float = 60.0
    idempotency_options: dict[str, Any] | None = None
    """Further ``@idempotent`` options (serializer, hooks, fingerprint, ...)."""

    _idemlint_fn: Any = None

    def _idempotent(self) -> Any:
        """The task body wrapped with ``@idempotent``, built once per task."""
        if self._idemlint_fn is None:
            mode = self.idempotency_on_in_progress
            if mode not in ("retry", "raise", "wait", "skip"):
                raise ConfigurationError(
                    f"{self.name}: idempotency_on_in_progress must be 'retry', 'raise', 'wait' "
                    f"or 'skip', not {mode!r}"
                )
            run = self.run

            @functools.wraps(run)
            def body(*args: Any, **kwargs: Any) -> Any:
                return run(*args, **kwargs)

            options: dict[str, Any] = {
                "store": self.idempotency_store,
                "lease": self.idempotency_lease,
                "ttl": self.idempotency_ttl,
                "heartbeat": self.idempotency_heartbeat,
                "on_in_progress": "raise" if mode == "retry" else mode,
                **(self.idempotency_options or {}),
            }
            self._idemlint_fn = idempotent_for_task(body, self.idempotency_key, options)
        return self._idemlint_fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call_detailed(*args, **kwargs).result

    def call_detailed(self, *args: Any, **kwargs: Any) -> Outcome[Any]:
        """Run the task, as calling it does, and say how: ``replayed`` is True when the
        result came from the store. Celery's task object is not the decorated function, so
        without this a caller had no way to see a replay (``on_replay=`` in
        ``idempotency_options`` sees every replay, on the worker's side)."""
        fn = self._idempotent()
        with task_context(self.request.id, self.name):
            try:
                outcome: Outcome[Any] = fn.call_detailed(*args, **kwargs)
            except AlreadyInProgress as exc:
                if self.idempotency_on_in_progress != "retry":
                    raise
                countdown = retry_delay(
                    exc,
                    fixed=self.idempotency_retry_countdown,
                    maximum=self.idempotency_max_countdown,
                )
                raise self.retry(exc=exc, countdown=countdown) from exc
            return outcome

"""What every framework adapter shares: task-aware keys and retry delays.

A task framework knows things the function does not: the id of the message
being processed (stable across redeliveries and, in most frameworks, across
retries) and the task's name. Adapters publish them here for the duration of
one execution, and key templates may use them next to the function's own
parameters::

    "{task_name}:{task_id}"       # one execution per message (the default)
    "charge:{order_id}"           # one execution per order, however often enqueued

A key that needs the task id when there is none (the function was called
directly, outside the framework) is a :class:`KeyBuildError`, never a run
without protection.
"""

from __future__ import annotations

import contextvars
import inspect
import re
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from idemlint.runtime.decorator import idempotent
from idemlint.runtime.errors import AlreadyInProgress, ConfigurationError, KeyBuildError

__all__ = [
    "DEFAULT_TASK_KEY",
    "TaskInfo",
    "current_task",
    "idempotent_for_task",
    "retry_delay",
    "task_context",
    "template_roots",
]

DEFAULT_TASK_KEY = "{task_name}:{task_id}"
"""The adapters' default key: one execution per message, whatever its arguments."""

_TASK_FIELDS = frozenset({"task_id", "task_name"})
_current: contextvars.ContextVar[TaskInfo | None] = contextvars.ContextVar(
    "idemlint_current_task", default=None
)


@dataclass(frozen=True)
class TaskInfo:
    """The framework's view of the execution in progress."""

    id: str | None
    name: str


def current_task() -> TaskInfo | None:
    """The task being executed by an adapter in this context, if any."""
    return _current.get()


@contextmanager
def task_context(task_id: str | None, name: str) -> Iterator[TaskInfo]:
    """Publish the running task's id and name to key templates."""
    info = TaskInfo(None if task_id is None else str(task_id), name)
    token = _current.set(info)
    try:
        yield info
    finally:
        _current.reset(token)


def template_roots(template: str) -> set[str]:
    """The top-level names a format template uses (``{order.id}`` -> ``order``)."""
    roots = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field:
            roots.add(re.split(r"[.\[]", field, maxsplit=1)[0])
    return roots


def task_key(fn: Callable[..., Any], key: str | Callable[..., str]) -> str | Callable[..., str]:
    """Turn a template that uses ``{task_id}``/``{task_name}`` into a key function.

    Templates over the function's parameters only are passed on unchanged, so
    ``@idempotent`` validates and formats them itself. A parameter that is
    itself called ``task_id`` wins over the framework's id.
    """
    if callable(key):
        return key
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"a task key must be a format string or a callable, not {key!r}")
    signature = inspect.signature(fn)
    params = set(signature.parameters)
    specials = (template_roots(key) & _TASK_FIELDS) - params
    if not specials:
        return key
    unknown = template_roots(key) - params - _TASK_FIELDS
    if unknown:
        raise ConfigurationError(
            f"key {key!r} names {sorted(unknown)}, which are neither parameters of "
            f"{fn.__qualname__} nor task_id/task_name"
        )

    def build(*args: Any, **kwargs: Any) -> str:
        info = _current.get()
        if info is None or ("task_id" in specials and not info.id):
            raise KeyBuildError(
                f"key {key!r} needs the task id, and {fn.__qualname__} is not running as a "
                f"task (called directly?). Run it through the task framework, or key it by "
                f"its arguments"
            )
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = {"task_id": info.id, "task_name": info.name, **bound.arguments}
        return key.format(**values)

    return build


def idempotent_for_task(
    fn: Callable[..., Any], key: str | Callable[..., str], options: dict[str, Any]
) -> Any:
    """``@idempotent`` applied to ``fn`` with a task-aware ``key``."""
    return idempotent(task_key(fn, key), **options)(fn)


ON_IN_PROGRESS = ("retry", "raise", "wait", "skip")
"""What the glue does when another worker holds the key; ``retry`` is the framework's own
delayed retry, the others are ``@idempotent``'s."""


def check_on_in_progress(value: str) -> None:
    if value not in ON_IN_PROGRESS:
        raise ConfigurationError(
            f"on_in_progress must be 'retry', 'raise', 'wait' or 'skip', not {value!r}"
        )


def glue_options(
    *,
    store: Any,
    lease: float,
    ttl: float | None,
    heartbeat: bool | float,
    on_in_progress: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``@idempotent`` options a framework wrapper passes on. With ``retry`` the wrapper
    turns ``AlreadyInProgress`` into the framework's retry, so ``@idempotent`` must raise it."""
    return {
        "store": store,
        "lease": lease,
        "ttl": ttl,
        "heartbeat": heartbeat,
        "on_in_progress": "raise" if on_in_progress == "retry" else on_in_progress,
        **(extra or {}),
    }


def retry_delay(
    exc: AlreadyInProgress, *, fixed: float | None, maximum: float, minimum: float = 0.05
) -> float:
    """Seconds to wait before retrying a call that met another holder's lease.

    ``fixed`` wins when given. Otherwise the holder's remaining lease: by then
    it has finished (the retry replays its result) or died (the retry takes
    over), so an earlier retry would only meet the lease again. Capped at
    ``maximum`` so a long lease does not park a finished job's duplicate.
    """
    if fixed is not None:
        return max(0.0, fixed)
    if exc.retry_after is None:
        return maximum
    return min(maximum, max(minimum, exc.retry_after))

"""Logging and metric hooks of the runtime.

Every decision that matters when a job misbehaves - a claim, a replay, a
takeover of a crashed holder's lease, a write refused by the fence - is
logged on the ``idemlint.runtime`` logger with the key, and handed to metric
hooks as a :class:`RuntimeEvent`. Hooks are plain callables so any metrics
library (Prometheus, StatsD, OpenTelemetry) plugs in with a lambda; a hook
that raises is logged and ignored, because metrics must never fail a job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("idemlint.runtime")

CLAIM = "claim"
"""A fresh claim (``kind`` says new, retry after failure, or takeover)."""
TAKEOVER = "takeover"
"""A claim that took over an expired lease of another holder."""
REPLAY = "replay"
"""A stored result was returned without running."""
IN_PROGRESS = "in_progress"
"""Another holder's lease was live (raise, wait or skip follows)."""
COMPLETE = "complete"
RELEASE = "release"
HEARTBEAT = "heartbeat"
FENCED = "fence_rejected"
"""A write of a holder that lost its lease was refused."""
STEP_RUN = "step_run"
STEP_REPLAY = "step_replay"
KEY_REUSE = "key_reuse"
STORE_ERROR = "store_error"


@dataclass(frozen=True)
class RuntimeEvent:
    """One thing that happened to a key; ``duration`` is seconds where it applies."""

    name: str
    key: str
    epoch: int | None = None
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


MetricsHook = Callable[[RuntimeEvent], None]

_hooks: list[MetricsHook] = []
_hooks_lock = threading.Lock()

_LEVELS = {
    CLAIM: logging.DEBUG,
    COMPLETE: logging.DEBUG,
    HEARTBEAT: logging.DEBUG,
    STEP_RUN: logging.DEBUG,
    STEP_REPLAY: logging.INFO,
    REPLAY: logging.INFO,
    IN_PROGRESS: logging.INFO,
    RELEASE: logging.INFO,
    TAKEOVER: logging.WARNING,
    FENCED: logging.WARNING,
    KEY_REUSE: logging.WARNING,
    STORE_ERROR: logging.ERROR,
}


def add_metrics_hook(hook: MetricsHook) -> Callable[[], None]:
    """Register a process-wide hook; returns a function that removes it."""
    with _hooks_lock:
        _hooks.append(hook)

    def remove() -> None:
        with _hooks_lock:
            if hook in _hooks:
                _hooks.remove(hook)

    return remove


def listening(name: str, local_hooks: tuple[MetricsHook, ...] = ()) -> bool:
    """Whether anything would receive event ``name`` (hot paths skip building it if not)."""
    return bool(_hooks or local_hooks) or logger.isEnabledFor(_LEVELS.get(name, logging.INFO))


def emit(event: RuntimeEvent, local_hooks: Iterable[MetricsHook] = ()) -> None:
    """Log ``event`` and pass it to the global hooks and the decorator's own."""
    level = _LEVELS.get(event.name, logging.INFO)
    if not _hooks and not local_hooks and not logger.isEnabledFor(level):
        return  # the common case in production: nothing listens at this level
    if logger.isEnabledFor(level):
        details = "".join(f" {k}={v}" for k, v in event.extra.items())
        epoch = "" if event.epoch is None else f" epoch={event.epoch}"
        logger.log(
            level,
            "%s key=%r%s%s",
            event.name,
            event.key,
            epoch,
            details,
            extra={
                "idempotency_key": event.key,
                "idempotency_event": event.name,
                "epoch": event.epoch,
            },
        )
    with _hooks_lock:
        hooks = list(_hooks)
    for hook in (*hooks, *local_hooks):
        try:
            hook(event)
        except Exception:
            logger.exception("metrics hook %r failed on %s; ignored", hook, event.name)


__all__ = [
    "CLAIM",
    "COMPLETE",
    "FENCED",
    "HEARTBEAT",
    "IN_PROGRESS",
    "KEY_REUSE",
    "RELEASE",
    "REPLAY",
    "STEP_REPLAY",
    "STEP_RUN",
    "STORE_ERROR",
    "TAKEOVER",
    "MetricsHook",
    "RuntimeEvent",
    "add_metrics_hook",
    "emit",
    "logger",
]

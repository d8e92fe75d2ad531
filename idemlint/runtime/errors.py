"""The errors of ``idemlint.runtime``.

Every error a caller may want to handle derives from :class:`IdempotencyError`
so that ``except IdempotencyError`` catches the whole family, and each carries
the idempotency ``key`` it is about (``None`` only where no key was built yet),
because the first thing an operator asks about a failed job is *which* job.
Framework glue (Celery, RQ, ...) turns :class:`AlreadyInProgress` into a
delayed retry, which is why it carries ``retry_after``.
"""

from __future__ import annotations


class IdempotencyError(Exception):
    """Base class of every error raised by the idempotency runtime."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class KeyReuseError(IdempotencyError):
    """The key was used before with different arguments.

    Replaying the stored result would hand the caller the answer to another
    question, and running again would break the key's promise, so neither
    happens: this is almost always a key that is not specific enough.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        stored_fingerprint: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__(message, key=key)
        self.stored_fingerprint = stored_fingerprint
        self.fingerprint = fingerprint


class AlreadyInProgress(IdempotencyError):
    """Another holder has a live lease on the key.

    ``retry_after`` is the number of seconds until that lease expires, when the
    store knows it (it is the earliest moment a retry could take over if the
    holder died), else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        retry_after: float | None = None,
        epoch: int | None = None,
    ) -> None:
        super().__init__(message, key=key)
        self.retry_after = retry_after
        self.epoch = epoch


class LeaseLost(IdempotencyError):
    """This holder's claim was taken over (or purged); its write was refused.

    Raised by ``complete``, ``release``, ``heartbeat`` and step writes of a
    holder whose fencing epoch is no longer the record's. Nothing was changed
    in the store: the successor's record stays intact.
    """

    def __init__(self, message: str, *, key: str | None = None, epoch: int | None = None) -> None:
        super().__init__(message, key=key)
        self.epoch = epoch


class KeyBuildError(IdempotencyError):
    """The idempotency key (or the argument fingerprint) could not be built, or is unusable.

    Raised before the function runs: a call we cannot identify is never run
    without protection. A key is unusable when some store could not keep it
    exactly as given (empty, longer than 255 characters, a NUL character, a
    lone surrogate that has no UTF-8 form); every store refuses the same keys,
    so moving to another store never changes which calls run.
    """


class ResultTooLarge(IdempotencyError):
    """The serialised result exceeds the store's size limit.

    The claim is released before this is raised, so a retry may run again
    (with a larger limit or a smaller result).
    """

    def __init__(self, message: str, *, key: str | None = None, size: int = 0, limit: int = 0):
        super().__init__(message, key=key)
        self.size = size
        self.limit = limit


class SerializationError(IdempotencyError, TypeError):
    """The result could not be serialised (or a stored one not deserialised).

    Whatever the serializer raised (a type it does not know, a value nested
    too deeply - Python's ``RecursionError`` -, an error in a ``default=``
    hook) becomes this error, with the original as ``__cause__``. Also a
    ``TypeError`` because that is what ``json.dumps`` raises for the same
    mistake. On the way in, the claim is released before this is raised.
    """


class StoreError(IdempotencyError):
    """The store failed (connection lost, timed out, server error) and retrying did not help.

    A store error never marks a job done: a claim whose completion failed
    stays in progress until its lease expires, then a retry takes over -
    unless an attempt of that completion reached the store and only its
    answer was lost (or a stalled server applied it on resuming): the record
    then holds the job's own result, and a retry replays it.
    ``transient`` is True when the failure may pass on its own (connection
    refused or lost, too many connections, a timeout, a deadlock): the
    decorator retries a completion that failed this way, within the lease.
    """

    def __init__(self, message: str, *, key: str | None = None, transient: bool = False) -> None:
        super().__init__(message, key=key)
        self.transient = transient


class ConfigurationError(IdempotencyError, ValueError):
    """The runtime was set up wrongly: bad store URL, missing driver, bad option."""


class DurabilityError(ConfigurationError):
    """The store would lose records on a restart, and ``require_durable=True`` was given.

    Raised by ``open_store`` (or, when the server was unreachable at open, by
    the first claim) for a Redis server without persistence (no ``appendonly``
    and no ``save`` points), one whose settings cannot be read (``CONFIG``
    disabled), one that evicts keys under memory pressure, and for the
    in-memory SQLite store. Without ``require_durable`` the same finding is a
    logged warning and ``store.durability_warning``.
    """


__all__ = [
    "AlreadyInProgress",
    "ConfigurationError",
    "DurabilityError",
    "IdempotencyError",
    "KeyBuildError",
    "KeyReuseError",
    "LeaseLost",
    "ResultTooLarge",
    "SerializationError",
    "StoreError",
]

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
    """The idempotency key (or the argument fingerprint) could not be built.

    Raised before the function runs: a call we cannot identify is never run
    without protection.
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

    Also a ``TypeError`` because that is what ``json.dumps`` raises for the
    same mistake. On the way in, the claim is released before this is raised.
    """


class StoreError(IdempotencyError):
    """The store failed (connection lost, server error) and retrying did not help.

    A store error never marks a job done: a claim whose completion failed
    stays in progress until its lease expires, then a retry takes over.
    """


class ConfigurationError(IdempotencyError, ValueError):
    """The runtime was set up wrongly: bad store URL, missing driver, bad option."""


__all__ = [
    "AlreadyInProgress",
    "ConfigurationError",
    "IdempotencyError",
    "KeyBuildError",
    "KeyReuseError",
    "LeaseLost",
    "ResultTooLarge",
    "SerializationError",
    "StoreError",
]

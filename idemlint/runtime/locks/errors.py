"""Errors of the lock helpers.

They derive from :class:`~idemlint.runtime.errors.IdempotencyError` so one
``except`` catches the runtime's whole family. A lock whose ownership is gone
when it is released or extended raises the runtime's
:class:`~idemlint.runtime.errors.LeaseLost`, the same error a fenced-out
``@idempotent`` holder gets: in both cases the work done under the lock may
have overlapped a successor's, and the caller must not treat it as protected.
"""

from __future__ import annotations

from idemlint.runtime.errors import IdempotencyError, LeaseLost

__all__ = ["LeaseLost", "LockError", "LockTimeout"]


class LockError(IdempotencyError):
    """A lock cannot be used as asked (wrong connection kind, no transaction)."""


class LockTimeout(LockError):
    """The lock was not acquired before the deadline; nothing is held."""

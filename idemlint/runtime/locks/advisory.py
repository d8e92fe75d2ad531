"""Database advisory locks: PostgreSQL ``pg_advisory_*`` and MySQL ``GET_LOCK``.

They serialise work that has no row to lock yet ("create the customer's
Stripe account once", "rebuild report 42"), on the database the job already
talks to, without a second service. Keys are strings; PostgreSQL wants a
64-bit integer, so :func:`advisory_key` hashes the string with BLAKE2b, which
is stable across processes, machines and Python versions (unlike ``hash()``,
which is salted per process and would let two workers hold "the same" lock).

Scope matters and the helpers make it explicit:

* :func:`pg_advisory_xact_lock` holds until the *transaction* ends. It refuses
  to pretend on an autocommit connection, where the lock would be released the
  moment the statement finished.
* :func:`pg_advisory_lock` and :func:`mysql_get_lock` are context managers for
  *session* locks, released on exit. The release is checked: if the database
  says the lock was no longer ours (the connection was dropped or reset, so the
  server freed it), :class:`~idemlint.runtime.errors.LeaseLost` is raised,
  because the work inside may have overlapped another holder's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from idemlint.runtime.errors import LeaseLost
from idemlint.runtime.locks._connections import SqlRunner, in_transaction, runner_for
from idemlint.runtime.locks.errors import LockError, LockTimeout

__all__ = [
    "advisory_key",
    "mysql_get_lock",
    "mysql_lock_name",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_try_advisory_xact_lock",
]

# MySQL rejects lock names longer than 64 characters.
_MYSQL_NAME_LIMIT = 64
_MYSQL_FOREVER = 31_536_000
# Polling bounds for waits with a deadline, in seconds.
_POLL_FIRST = 0.005
_POLL_MAX = 0.1


def advisory_key(key: str | int) -> int:
    """The signed 64-bit integer PostgreSQL advisory functions take for ``key``.

    An ``int`` in the signed 64-bit range is used as is, so keys taken by other
    code with raw numbers can be shared.
    """
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise LockError(f"an advisory lock key is a str or an int, not {type(key).__name__}")
    if isinstance(key, int):
        if not -(2**63) <= key < 2**63:
            raise LockError(f"advisory lock key {key} does not fit in 64 signed bits")
        return key
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"idemlint-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def mysql_lock_name(name: str) -> str:
    """``name`` itself when it fits MySQL's 64 characters, else a stable digest of it."""
    if not name:
        raise LockError("a lock name cannot be empty")
    if len(name) <= _MYSQL_NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:40]
    return f"{name[:23]}~{digest}"


def _pg(conn: Any) -> SqlRunner:
    runner = runner_for(conn)
    if runner.dialect != "postgresql":
        raise LockError(
            f"PostgreSQL advisory locks need a PostgreSQL connection, got {runner.dialect}"
        )
    return runner


def _wait(deadline: float, attempt: int) -> bool:
    """Sleep before the next try; False when the deadline has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    time.sleep(min(remaining, _POLL_MAX, _POLL_FIRST * (2.0**attempt)))
    return True


def _require_transaction(runner: SqlRunner, what: str) -> None:
    if in_transaction(runner) is False:
        raise LockError(
            f"{what} was taken on a connection in autocommit mode, so it was released as soon "
            f"as the statement ended. Take it inside a transaction (Django: transaction.atomic(); "
            f"psycopg: conn.transaction() or autocommit=False), or use pg_advisory_lock()."
        )


def pg_try_advisory_xact_lock(conn: Any, key: str | int) -> bool:
    """Take the transaction-scoped lock for ``key`` if it is free; never waits.

    True when taken (held until the transaction commits or rolls back).
    """
    runner = _pg(conn)
    got = bool(runner.scalar("SELECT pg_try_advisory_xact_lock(%s)", (advisory_key(key),)))
    if got:
        _require_transaction(runner, "pg_try_advisory_xact_lock")
    return got


def pg_advisory_xact_lock(conn: Any, key: str | int, *, timeout: float | None = None) -> None:
    """Wait for the transaction-scoped lock on ``key``; it is held until the transaction ends.

    ``timeout=None`` waits in the server as long as it takes. With a timeout
    the lock is polled with the non-blocking variant, which (unlike a server
    ``lock_timeout``) leaves the caller's transaction usable when it gives up
    with :class:`LockTimeout`.
    """
    runner = _pg(conn)
    number = advisory_key(key)
    if timeout is None:
        runner.scalar("SELECT pg_advisory_xact_lock(%s)", (number,))
        _require_transaction(runner, "pg_advisory_xact_lock")
        return
    deadline = time.monotonic() + timeout
    attempt = 0
    while not runner.scalar("SELECT pg_try_advisory_xact_lock(%s)", (number,)):
        if not _wait(deadline, attempt):
            raise LockTimeout(f"advisory lock {key!r} not acquired within {timeout}s", key=str(key))
        attempt += 1
    _require_transaction(runner, "pg_advisory_xact_lock")


@contextmanager
def pg_advisory_lock(conn: Any, key: str | int, *, timeout: float | None = None) -> Iterator[int]:
    """Hold the session-scoped advisory lock on ``key`` for the ``with`` block.

    Works in autocommit mode too. Yields the 64-bit key. On exit the lock is
    released with ``pg_advisory_unlock``; if PostgreSQL reports it was not
    held, :class:`LeaseLost` is raised.
    """
    runner = _pg(conn)
    number = advisory_key(key)
    if timeout is None:
        runner.scalar("SELECT pg_advisory_lock(%s)", (number,))
    else:
        deadline = time.monotonic() + timeout
        attempt = 0
        while not runner.scalar("SELECT pg_try_advisory_lock(%s)", (number,)):
            if not _wait(deadline, attempt):
                raise LockTimeout(
                    f"advisory lock {key!r} not acquired within {timeout}s", key=str(key)
                )
            attempt += 1
    failed = False
    try:
        yield number
    except BaseException:
        failed = True
        raise
    finally:
        try:
            released = bool(runner.scalar("SELECT pg_advisory_unlock(%s)", (number,)))
        except Exception as exc:
            if not failed:
                raise LeaseLost(
                    f"advisory lock {key!r} could not be released ({exc}); its session is gone, "
                    f"so the lock was lost while held",
                    key=str(key),
                ) from exc
            released = True  # the body's own error is the one to report
        if not released and not failed:
            raise LeaseLost(f"advisory lock {key!r} was not held at release", key=str(key))


@contextmanager
def mysql_get_lock(conn: Any, name: str, *, timeout: float | None = None) -> Iterator[str]:
    """Hold the MySQL/MariaDB named lock ``name`` (``GET_LOCK``) for the ``with`` block.

    The lock belongs to the connection: the server frees it if the connection
    closes, which is what makes it crash-safe. ``timeout=None`` waits without
    limit; on expiry :class:`LockTimeout` is raised. Yields the name actually
    used (long names are digested to fit MySQL's 64 characters). On exit
    ``RELEASE_LOCK`` must return 1; anything else (the lock was freed with a
    lost connection) raises :class:`LeaseLost`.
    """
    runner = runner_for(conn)
    if runner.dialect != "mysql":
        raise LockError(f"GET_LOCK needs a MySQL or MariaDB connection, got {runner.dialect}")
    lock_name = mysql_lock_name(name)
    # MariaDB answers NULL to a negative ("infinite") timeout, so "no limit" is
    # a year, the largest lock wait MySQL accepts anywhere.
    wait = _MYSQL_FOREVER if timeout is None else max(0.0, timeout)
    got = runner.scalar("SELECT GET_LOCK(%s, %s)", (lock_name, wait))
    if got is None:
        raise LockError(f"GET_LOCK({lock_name!r}) failed in the server", key=name)
    if int(got) != 1:
        raise LockTimeout(f"named lock {name!r} not acquired within {timeout}s", key=name)
    failed = False
    try:
        yield lock_name
    except BaseException:
        failed = True
        raise
    finally:
        try:
            released = runner.scalar("SELECT RELEASE_LOCK(%s)", (lock_name,))
        except Exception as exc:
            if not failed:
                raise LeaseLost(
                    f"named lock {name!r} could not be released ({exc}); the connection is "
                    f"gone, and the server freed the lock with it while it was held",
                    key=name,
                ) from exc
            released = 1
        if (released is None or int(released) != 1) and not failed:
            raise LeaseLost(
                f"named lock {name!r} was no longer held by this connection at release",
                key=name,
            )

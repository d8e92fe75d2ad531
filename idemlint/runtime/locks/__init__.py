"""Locks for retried jobs: row locks, database advisory locks, fenced Redis locks.

Pick by what you protect:

* an existing row ("apply this order once"): :func:`locked_row`, then re-check
  the row's state under the lock;
* work with no row yet, on the database you already use:
  :func:`pg_advisory_xact_lock` / :func:`pg_advisory_lock` (PostgreSQL) or
  :func:`mysql_get_lock` (MySQL, MariaDB);
* work across services: :class:`RedisLock` / :class:`AsyncRedisLock`, whose
  fencing token the protected resource should check.

Nothing here imports Django, SQLAlchemy or redis until a lock is used.
"""

from idemlint.runtime.errors import LeaseLost
from idemlint.runtime.locks.advisory import (
    advisory_key,
    mysql_get_lock,
    mysql_lock_name,
    pg_advisory_lock,
    pg_advisory_xact_lock,
    pg_try_advisory_xact_lock,
)
from idemlint.runtime.locks.errors import LockError, LockTimeout
from idemlint.runtime.locks.redis_lock import AsyncRedisLock, RedisLock
from idemlint.runtime.locks.rows import locked_row

__all__ = [
    "AsyncRedisLock",
    "LeaseLost",
    "LockError",
    "LockTimeout",
    "RedisLock",
    "advisory_key",
    "locked_row",
    "mysql_get_lock",
    "mysql_lock_name",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_try_advisory_xact_lock",
]

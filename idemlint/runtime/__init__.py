"""Retry-safety runtime: idempotency keys with leases, fencing and replay.

``@idempotent`` makes a job run at most once per key and replays its result
afterwards; :func:`step` adds recovery points inside it, and :func:`atomic_step` commits a
step's database writes together with its record. Stores live behind
:func:`open_store` (SQLite, PostgreSQL, MariaDB/MySQL, Redis).

This package must stay importable in a worker without the analyzer: it never
imports libcst or ``idemlint.lint.checks`` (tests/runtime/test_import_isolation.py
keeps it so).
"""

from idemlint.runtime.atomic import aatomic_step, atomic_step
from idemlint.runtime.decorator import (
    AsyncIdempotentFunction,
    IdempotentFunction,
    Outcome,
    idempotent,
)
from idemlint.runtime.errors import (
    AlreadyInProgress,
    ConfigurationError,
    DurabilityError,
    IdempotencyError,
    KeyBuildError,
    KeyReuseError,
    LeaseLost,
    ResultTooLarge,
    SerializationError,
    StoreError,
)
from idemlint.runtime.execution import Execution, current_execution
from idemlint.runtime.observability import RuntimeEvent, add_metrics_hook
from idemlint.runtime.serializers import JsonSerializer, Serializer
from idemlint.runtime.steps import astep, recovery_point, step
from idemlint.runtime.stores import open_store
from idemlint.runtime.stores.base import Store

__all__ = [
    "AlreadyInProgress",
    "AsyncIdempotentFunction",
    "ConfigurationError",
    "DurabilityError",
    "Execution",
    "IdempotencyError",
    "IdempotentFunction",
    "JsonSerializer",
    "KeyBuildError",
    "KeyReuseError",
    "LeaseLost",
    "Outcome",
    "ResultTooLarge",
    "RuntimeEvent",
    "SerializationError",
    "Serializer",
    "Store",
    "StoreError",
    "aatomic_step",
    "add_metrics_hook",
    "astep",
    "atomic_step",
    "current_execution",
    "idempotent",
    "open_store",
    "recovery_point",
    "step",
]

# --- upsert, locks and framework glue (owned by the upsert/locks work) ---
# Re-exported from modules that import no ORM, driver or task framework until
# used, so this costs the worker nothing; framework glue stays in
# idemlint.runtime.integrations.<framework>, which imports its framework.
from idemlint.runtime.locks import (
    AsyncRedisLock,
    LockError,
    LockTimeout,
    RedisLock,
    advisory_key,
    locked_row,
    mysql_get_lock,
    pg_advisory_lock,
    pg_advisory_xact_lock,
    pg_try_advisory_xact_lock,
)
from idemlint.runtime.upsert import UpsertedRow, UpsertError, UpsertResult, upsert

__all__ += [
    "AsyncRedisLock",
    "LockError",
    "LockTimeout",
    "RedisLock",
    "UpsertError",
    "UpsertResult",
    "UpsertedRow",
    "advisory_key",
    "locked_row",
    "mysql_get_lock",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_try_advisory_xact_lock",
    "upsert",
]

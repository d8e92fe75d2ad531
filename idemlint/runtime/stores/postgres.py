"""The PostgreSQL store (psycopg 3).

The claim is one statement, so one round trip: the upsert of
``stores/_sql.py`` (insert, or take the record when it is released, its lease
expired or it outlived its ttl) inside a CTE, with a read of the record as it
stands when the upsert changed nothing. The connection runs in autocommit, so
a single statement costs no BEGIN/COMMIT round trips. The clock is the
server's ``statement_timestamp()``.

A dropped connection (server restart, ``pg_terminate_backend``) is retried
once on a fresh connection; every operation is safe to repeat (see _sql.py).

Every operation is bounded by its budget (tied to the caller's lease, see
``Store.operation_timeout``): the server's ``statement_timeout`` is set to it
(so the server gives up on a statement stuck behind a lock), and since a
server that stopped answering cannot enforce anything, a watchdog shuts the
connection's socket down at the deadline, which wakes psycopg's ``poll`` with
an error. libpq's ``connect_timeout`` (2 s at least, a libpq rule) bounds a
connection attempt.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from idemlint.runtime.errors import ConfigurationError
from idemlint.runtime.stores._deadline import WATCHDOG, deadline
from idemlint.runtime.stores._sql import COLUMNS, FENCE, UPSERT_CLAIM, SQLStore
from idemlint.runtime.stores._url import strip_our_options
from idemlint.runtime.stores.base import ConnectionPool, RecordRow

T = TypeVar("T")

try:
    import psycopg
except ImportError as _exc:  # pragma: no cover - exercised without the extra installed
    psycopg = None  # type: ignore[assignment]
    _import_error: ImportError | None = _exc
else:
    _import_error = None


class PostgresStore(SQLStore):
    """Idempotency records in a PostgreSQL table."""

    dialect = "postgresql"
    now_sql = "EXTRACT(EPOCH FROM statement_timestamp())::float8"

    def __init__(self, dsn: str, **options: Any) -> None:
        if psycopg is None:
            from idemlint.runtime.stores import missing_driver

            assert _import_error is not None
            raise missing_driver("psycopg", "postgres", _import_error)
        super().__init__(**options)
        self.dsn = dsn
        self.url = _redacted(dsn)
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"bad PostgreSQL URL {self.url!r}: {_without(str(exc).strip(), dsn)}"
            ) from None
        self.connection_errors = (psycopg.OperationalError, psycopg.InterfaceError)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._connect, lambda c: c.close()
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        return cls(strip_our_options(url, "postgresql"), **options)

    def _connect(self) -> psycopg.Connection[Any]:
        self.stats.add(1)
        seconds = self._left()
        if self.connect_timeout is not None:
            seconds = min(seconds, self.connect_timeout)
        return psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(2, math.ceil(seconds)),  # libpq's floor is 2 s
            application_name="idemlint",
        )

    def _left(self) -> float:
        end = deadline()
        if end is None:
            return self.operation_timeout()
        return max(0.0, end - time.monotonic())

    def _transact(self, fn: Callable[[Any], T], *, round_trips: int = 1) -> T:
        end = deadline()
        if end is None:
            end = time.monotonic() + self.operation_timeout()
        budget = max(0.0, end - time.monotonic())
        for attempt in (1, 2):
            alarm = None
            try:
                with self._pool.connection() as conn:
                    alarm = WATCHDOG.arm(end, functools.partial(_cut, conn))
                    value = self._run(conn, fn, round_trips, budget)
                    if not alarm.disarm():
                        raise _Cut(value)  # it answered, just as the watchdog cut it: drop it
                    return value
            except _Cut as answered:
                return cast(T, answered.value)
            except self.connection_errors as exc:
                # the pool dropped the broken connection; one fresh try, if time is left
                was_cut = alarm is not None and not alarm.disarm()
                if was_cut or time.monotonic() >= end:  # the watchdog, or the connect timeout
                    raise self._timed_out(budget, attempt) from exc
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _run(self, conn: Any, fn: Callable[[Any], T], round_trips: int, budget: float) -> T:
        wanted = max(1, int(self._wanted_statement_timeout(budget) * 1000))
        if getattr(conn, "_idemlint_statement_timeout", None) != wanted:
            self.stats.add(1)
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{wanted}ms",))
            conn._idemlint_statement_timeout = wanted
        if round_trips == 1:
            self.stats.add(1)
            with conn.cursor() as cur:
                return fn(cur)
        self.stats.add(round_trips + 2)
        with conn.transaction(), conn.cursor() as cur:
            return fn(cur)

    def _schema_statements(self) -> Sequence[str]:
        return (
            # concurrent CREATE TABLE IF NOT EXISTS can collide in pg_type; serialise it
            "SELECT pg_advisory_xact_lock(hashtext('idemlint schema {t}'))",
            "CREATE TABLE IF NOT EXISTS {t} ("
            " idem_key TEXT PRIMARY KEY, status TEXT NOT NULL, epoch BIGINT NOT NULL,"
            " run BIGINT NOT NULL, owner TEXT NOT NULL, fingerprint TEXT NOT NULL,"
            " lease_expires DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION,"
            " result BYTEA, claim_kind TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at)",
            "CREATE TABLE IF NOT EXISTS {s} ("
            " idem_key TEXT NOT NULL, run BIGINT NOT NULL, name TEXT NOT NULL,"
            " epoch BIGINT NOT NULL, result BYTEA, created_at DOUBLE PRECISION NOT NULL,"
            " PRIMARY KEY (idem_key, run, name))",
        )

    def _claim_row(self, cur: Any, params: dict[str, Any]) -> RecordRow | None:
        cur.execute(
            self._sql(
                f"WITH claimed AS ({UPSERT_CLAIM} RETURNING {COLUMNS}, {{now}})"
                " SELECT * FROM claimed UNION ALL"
                f" SELECT {COLUMNS}, {{now}} FROM {{t}} WHERE idem_key = %(key)s"
                " AND NOT EXISTS (SELECT 1 FROM claimed)"
            ),
            params,
        )
        return self._row(cur.fetchone())

    share_lock = " FOR SHARE"

    def _insert_step_sql(self) -> str:
        # FOR SHARE: a takeover committing between our read of the record and
        # the insert would otherwise let a fenced-off holder's step in.
        return (
            "INSERT INTO {s} (idem_key, run, name, epoch, result, created_at)"
            " SELECT idem_key, run, %(name)s, epoch, %(result)s, {now} FROM {t}"
            f" WHERE {FENCE} FOR SHARE ON CONFLICT (idem_key, run, name) DO NOTHING"
        )

    def close(self) -> None:
        self._pool.close()


class _Cut(Exception):
    """Carries an answer out of a connection the watchdog cut: the pool must drop it."""

    def __init__(self, value: object) -> None:
        self.value = value


def _cut(conn: Any) -> None:
    """Shut the connection's socket down, from the watchdog thread.

    psycopg waits for the server in ``poll``; a shut-down socket wakes it with
    end-of-file, the connection fails with ``OperationalError``, and the pool
    discards it. Closing the descriptor instead could hand its number to
    another thread's new socket while psycopg still polls it.
    """
    fd = conn.pgconn.socket
    dup = socket.socket(fileno=os.dup(fd))
    try:
        dup.shutdown(socket.SHUT_RDWR)
    finally:
        dup.close()


def _redacted(dsn: str) -> str:
    from idemlint.runtime.stores import _redact

    return _redact(dsn)


def _without(text: str, dsn: str) -> str:
    """``text`` with the DSN's password, if any, blanked (libpq quotes DSN pieces)."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(str(secret), "***")
    return text


__all__ = ["PostgresStore"]

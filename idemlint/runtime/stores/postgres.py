"""The PostgreSQL store (psycopg 3).

The claim is one statement, so one round trip: the upsert of
``stores/_sql.py`` (insert, or take the record when it is released, its lease
expired or it outlived its ttl) inside a CTE, with a read of the record as it
stands when the upsert changed nothing. The connection runs in autocommit, so
a single statement costs no BEGIN/COMMIT round trips. The clock is the
server's ``statement_timestamp()``.

A dropped connection (server restart, ``pg_terminate_backend``) is retried
once on a fresh connection; every operation is safe to repeat (see _sql.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

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

    def __init__(self, dsn: str, *, connect_timeout: float = 10.0, **options: Any) -> None:
        if psycopg is None:
            from idemlint.runtime.stores import missing_driver

            assert _import_error is not None
            raise missing_driver("psycopg", "postgres", _import_error)
        super().__init__(**options)
        self.dsn = dsn
        self.url = _redacted(dsn)
        self._connect_timeout = connect_timeout
        self.connection_errors = (psycopg.OperationalError, psycopg.InterfaceError)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._connect, lambda c: c.close()
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        return cls(strip_our_options(url, "postgresql"), **options)

    def _connect(self) -> psycopg.Connection[Any]:
        self.stats.add(1)
        return psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(1, int(self._connect_timeout)),
            application_name="idemlint",
        )

    def _transact(self, fn: Callable[[Any], T], *, round_trips: int = 1) -> T:
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    if round_trips == 1:
                        self.stats.add(1)
                        with conn.cursor() as cur:
                            return fn(cur)
                    self.stats.add(round_trips + 2)
                    with conn.transaction(), conn.cursor() as cur:
                        return fn(cur)
            except self.connection_errors:
                # the pool dropped the broken connection; one fresh try
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

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


def _redacted(dsn: str) -> str:
    from idemlint.runtime.stores import _redact

    return _redact(dsn)


__all__ = ["PostgresStore"]

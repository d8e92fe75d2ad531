"""The MariaDB / MySQL store (PyMySQL).

MySQL has no ``INSERT ... RETURNING`` for upserts, so the claim is an
``INSERT ... ON DUPLICATE KEY UPDATE`` followed by a read of the row, sent
together as one multi-statement request: one round trip. The update's first
assignment sets ``owner`` to this claim's token only when the record may be
taken; MySQL evaluates the remaining assignments left to right, so each of
them asks "is the owner now my token?" instead of re-evaluating the
condition against half-updated columns. The read-back then tells the caller
whether the token is theirs (see ``interpret_claim``).

Keys compare byte-wise (``utf8mb4_bin``): with the default case-insensitive
collation ``charge:A`` and ``charge:a`` would be the same job. The clock is
the server's ``NOW(6)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from idemlint.runtime.errors import ConfigurationError
from idemlint.runtime.stores._sql import COLUMNS, DEAD, FENCE, TAKEABLE, SQLStore
from idemlint.runtime.stores.base import ConnectionPool, RecordRow

T = TypeVar("T")

try:
    import pymysql  # type: ignore[import-untyped,unused-ignore]
    from pymysql.constants import CLIENT  # type: ignore[import-untyped,unused-ignore]
except ImportError as _exc:  # pragma: no cover - exercised without the extra installed
    pymysql = None
    _import_error: ImportError | None = _exc
else:
    _import_error = None

_RETRY_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock: the server rolled back
_MINE = "{t}.owner = VALUES(owner)"

CLAIM = (
    f"INSERT INTO {{t}} ({COLUMNS}, updated_at) VALUES (%(key)s, 'in_progress', 1, 1,"
    " %(owner)s, %(fp)s, {now} + %(lease)s, {now} + %(keep)s, NULL, 'new', {now})"
    " ON DUPLICATE KEY UPDATE"
    f" owner = IF({TAKEABLE}, VALUES(owner), {{t}}.owner),"
    f" claim_kind = IF({_MINE}, CASE WHEN {DEAD} THEN 'new'"
    " WHEN {t}.status = 'released' THEN 'retry' ELSE 'takeover' END, {t}.claim_kind),"
    f" run = IF({_MINE}, IF({DEAD}, {{t}}.epoch + 1, {{t}}.run), {{t}}.run),"
    f" epoch = IF({_MINE}, {{t}}.epoch + 1, {{t}}.epoch),"
    f" status = IF({_MINE}, 'in_progress', {{t}}.status),"
    f" fingerprint = IF({_MINE}, VALUES(fingerprint), {{t}}.fingerprint),"
    f" lease_expires = IF({_MINE}, VALUES(lease_expires), {{t}}.lease_expires),"
    f" expires_at = IF({_MINE}, VALUES(expires_at), {{t}}.expires_at),"
    f" result = IF({_MINE}, NULL, {{t}}.result),"
    f" updated_at = IF({_MINE}, VALUES(updated_at), {{t}}.updated_at);"
    f" SELECT {COLUMNS}, {{now}} FROM {{t}} WHERE idem_key = %(key)s"
)
"""Claim and read back in one request. Assignment order matters: ``owner`` first."""


class MySQLStore(SQLStore):
    """Idempotency records in a MariaDB or MySQL (InnoDB) table."""

    dialect = "mysql"
    now_sql = "(UNIX_TIMESTAMP(NOW(6)) + 0E0)"

    def __init__(self, *, connect_timeout: float = 10.0, **options: Any) -> None:
        if pymysql is None:
            from idemlint.runtime.stores import missing_driver

            assert _import_error is not None
            raise missing_driver("PyMySQL", "mysql", _import_error)
        store_options = {
            k: options.pop(k) for k in ("table", "create", "max_result_bytes") if k in options
        }
        super().__init__(**store_options)
        self._connect_args: dict[str, Any] = {
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": connect_timeout,
            "client_flag": CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS,
            **options,
        }
        args = self._connect_args
        where = f"{args.get('host', 'localhost')}/{args.get('database', '')}"
        self.url = f"mysql://{args.get('user', '')}@{where}"
        self.connection_errors = (pymysql.err.OperationalError, pymysql.err.InterfaceError)
        self._pool: ConnectionPool[Any] = ConnectionPool(self._connect, lambda c: c.close())

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MySQLStore:
        parts = urlsplit(url)
        database = parts.path.lstrip("/")
        if not database:
            raise ConfigurationError(
                "the MySQL store URL needs a database: mysql://user@host/DATABASE"
            )
        args: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 3306,
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "database": unquote(database),
        }
        for name, value in parse_qsl(parts.query):
            if name == "unix_socket":
                args["unix_socket"] = value
            elif name == "ssl_ca":
                args["ssl"] = {"ca": value}
        return cls(**{**args, **options})

    def _connect(self) -> Any:
        self.stats.add(1)
        return pymysql.connect(**self._connect_args)

    def _transact(self, fn: Callable[[Any], T], *, round_trips: int = 1) -> T:
        broken = 0
        for attempt in range(8):
            try:
                with self._pool.connection() as conn:
                    if round_trips == 1:
                        self.stats.add(1)
                        with conn.cursor() as cur:
                            return fn(cur)
                    self.stats.add(round_trips + 2)
                    conn.begin()
                    try:
                        with conn.cursor() as cur:
                            value = fn(cur)
                    except BaseException:
                        conn.rollback()
                        raise
                    conn.commit()
                    return value
            except self.connection_errors as exc:
                code = exc.args[0] if exc.args else None
                if code in _RETRY_CODES and attempt < 7:
                    time.sleep(0.002 * (attempt + 1))
                    continue
                broken += 1
                if broken >= 2:
                    raise
        raise AssertionError("unreachable")

    def _schema_statements(self) -> Sequence[str]:
        key = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        return (
            "CREATE TABLE IF NOT EXISTS {t} ("
            f" idem_key {key} NOT NULL PRIMARY KEY, status VARCHAR(16) NOT NULL,"
            " epoch BIGINT NOT NULL, run BIGINT NOT NULL, owner VARCHAR(64) NOT NULL,"
            " fingerprint VARCHAR(64) NOT NULL, lease_expires DOUBLE NOT NULL,"
            " expires_at DOUBLE NULL, result LONGBLOB NULL, claim_kind VARCHAR(16) NOT NULL,"
            " updated_at DOUBLE NOT NULL, KEY {t}_expires (expires_at)) ENGINE=InnoDB",
            "CREATE TABLE IF NOT EXISTS {s} ("
            f" idem_key {key} NOT NULL, run BIGINT NOT NULL, name {key} NOT NULL,"
            " epoch BIGINT NOT NULL, result LONGBLOB NULL, created_at DOUBLE NOT NULL,"
            " PRIMARY KEY (idem_key, run, name)) ENGINE=InnoDB",
        )

    def _claim_row(self, cur: Any, params: dict[str, Any]) -> RecordRow | None:
        cur.execute(self._sql(CLAIM), params)
        cur.nextset()
        return self._row(cur.fetchone())

    def _insert_step_sql(self) -> str:
        # LOCK IN SHARE MODE: a concurrent takeover waits for (or fences) this write.
        # A duplicate under a passing fence is this holder's own earlier write.
        return (
            "INSERT INTO {s} (idem_key, run, name, epoch, result, created_at)"
            " SELECT idem_key, run, %(name)s, epoch, %(result)s, {now} FROM {t}"
            f" WHERE {FENCE} LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE name = {{s}}.name"
        )

    def drop_schema(self) -> None:
        super().drop_schema()

    def close(self) -> None:
        self._pool.close()


__all__ = ["MySQLStore"]

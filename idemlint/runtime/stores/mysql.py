"""The MariaDB / MySQL store (PyMySQL).

MySQL has no ``INSERT ... RETURNING`` for upserts, so the claim is an
``INSERT ... ON DUPLICATE KEY UPDATE`` followed by a read of the row, sent
together as one multi-statement request: one round trip. The update's first
assignment sets ``owner`` to this claim's token only when the record may be
taken; MySQL evaluates the remaining assignments left to right, so each of
them asks "is the owner now my token?" instead of re-evaluating the
condition against half-updated columns. The read-back then tells the caller
whether the token is theirs (see ``interpret_claim``).

Keys, step names, owners and fingerprints are ``VARBINARY`` columns, so they
compare as the bytes of their UTF-8 form: with a text collation ``charge:A``
and ``charge:a`` are one job under the default case-insensitive collations,
and ``k`` and ``k `` are one job under every ``PAD SPACE`` collation
(``utf8mb4_bin`` included), which ignores trailing spaces. Tables created by
earlier versions keep their text columns; :meth:`MySQLStore.create_schema`
logs a warning with the ``ALTER TABLE`` that migrates them
(docs/runtime/stores.md#key-comparison). The clock is the server's ``NOW(6)``.

Every operation is bounded by its budget (tied to the caller's lease): the
socket timeouts of PyMySQL bound each wait for the server, and the session's
``max_statement_time`` (MariaDB) or ``max_execution_time`` (MySQL) and
``innodb_lock_wait_timeout`` make the server give up on a stuck statement too.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from idemlint.runtime.errors import ConfigurationError
from idemlint.runtime.stores._deadline import bounded, deadline
from idemlint.runtime.stores._sql import COLUMNS, DEAD, FENCE, TAKEABLE, SQLStore
from idemlint.runtime.stores._url import check_network_url
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
_STORE_OPTIONS = (
    "table",
    "create",
    "max_result_bytes",
    "timeout",
    "connect_timeout",
    "statement_timeout",
    "require_durable",
)
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

    def __init__(self, **options: Any) -> None:
        if pymysql is None:
            from idemlint.runtime.stores import missing_driver

            assert _import_error is not None
            raise missing_driver("PyMySQL", "mysql", _import_error)
        store_options = {k: options.pop(k) for k in _STORE_OPTIONS if k in options}
        super().__init__(**store_options)
        self._socket_caps = (options.pop("read_timeout", None), options.pop("write_timeout", None))
        self._connect_args: dict[str, Any] = {
            "charset": "utf8mb4",
            "autocommit": True,
            "client_flag": CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS,
            **options,
        }
        args = self._connect_args
        where = f"{args.get('host', 'localhost')}/{args.get('database', '')}"
        self.url = f"mysql://{args.get('user', '')}@{where}"
        self.connection_errors = _connection_errors()
        self._pool: ConnectionPool[Any] = ConnectionPool(self._connect, lambda c: c.close())

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MySQLStore:
        check_network_url(url)
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
        left = self._left()
        connect = left if self.connect_timeout is None else min(left, self.connect_timeout)
        # PyMySQL's connect_timeout covers the TCP connect only; the handshake
        # that follows waits under read_timeout, so both are bounded
        read, write = self._socket_timeouts(left)
        return pymysql.connect(
            **self._connect_args,
            connect_timeout=max(0.001, connect),
            read_timeout=read,
            write_timeout=write,
        )

    def _left(self) -> float:
        end = deadline()
        if end is None:
            return self.operation_timeout()
        return max(0.001, end - time.monotonic())

    def _socket_timeouts(self, left: float) -> tuple[float, float]:
        read_cap, write_cap = self._socket_caps
        return (
            left if read_cap is None else min(left, float(read_cap)),
            left if write_cap is None else min(left, float(write_cap)),
        )

    def _prepare(self, conn: Any, left: float, budget: float) -> None:
        """Bound this operation's waits on ``conn``: socket timeouts, server-side timeouts."""
        conn._read_timeout, conn._write_timeout = self._socket_timeouts(left)
        wanted = round(self._wanted_statement_timeout(budget), 3)
        if getattr(conn, "_idemlint_statement_timeout", None) == wanted:
            return
        self.stats.add(1)
        with conn.cursor() as cur:
            if "mariadb" in str(conn.get_server_info()).lower():
                cur.execute(
                    "SET SESSION max_statement_time = %s, innodb_lock_wait_timeout = %s",
                    (wanted, max(1, math.ceil(wanted))),
                )
            else:  # MySQL: max_execution_time (ms) bounds SELECTs only; the lock wait the rest
                cur.execute(
                    "SET SESSION max_execution_time = %s, innodb_lock_wait_timeout = %s",
                    (max(1, int(wanted * 1000)), max(1, math.ceil(wanted))),
                )
        conn._idemlint_statement_timeout = wanted

    def _transient(self, exc: BaseException) -> bool:
        return isinstance(exc, _connection_errors())

    def _transact(self, fn: Callable[[Any], T], *, round_trips: int = 1) -> T:
        self.connection_errors = _connection_errors()
        end = deadline()
        if end is None:
            end = time.monotonic() + self.operation_timeout()
        budget = max(0.001, end - time.monotonic())
        broken = 0
        for attempt in range(8):
            left = end - time.monotonic()
            if left <= 0:
                raise self._timed_out(budget, attempt)
            try:
                with self._pool.connection() as conn:
                    self._prepare(conn, left, budget)
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
                if time.monotonic() >= end - 0.001:
                    raise self._timed_out(budget, attempt + 1) from exc
                code = exc.args[0] if exc.args else None
                if code in _RETRY_CODES and attempt < 7:
                    time.sleep(0.002 * (attempt + 1))
                    continue
                broken += 1
                if broken >= 2:
                    raise
        raise AssertionError("unreachable")

    def _schema_statements(self) -> Sequence[str]:
        # VARBINARY: byte-wise and no padding (see the module docstring); 1020 bytes
        # hold MAX_KEY_LENGTH (255) characters of up to 4 UTF-8 bytes each
        key = "VARBINARY(1020)"
        return (
            "CREATE TABLE IF NOT EXISTS {t} ("
            f" idem_key {key} NOT NULL PRIMARY KEY, status VARCHAR(16) NOT NULL,"
            " epoch BIGINT NOT NULL, run BIGINT NOT NULL, owner VARBINARY(64) NOT NULL,"
            " fingerprint VARBINARY(64) NOT NULL, lease_expires DOUBLE NOT NULL,"
            " expires_at DOUBLE NULL, result LONGBLOB NULL, claim_kind VARCHAR(16) NOT NULL,"
            " updated_at DOUBLE NOT NULL, KEY {t}_expires (expires_at)) ENGINE=InnoDB",
            "CREATE TABLE IF NOT EXISTS {s} ("
            f" idem_key {key} NOT NULL, run BIGINT NOT NULL, name {key} NOT NULL,"
            " epoch BIGINT NOT NULL, result LONGBLOB NULL, created_at DOUBLE NOT NULL,"
            " PRIMARY KEY (idem_key, run, name)) ENGINE=InnoDB",
        )

    def create_schema(self) -> None:
        super().create_schema()
        self._warn_if_text_keys()

    def _warn_if_text_keys(self) -> None:
        """Warn when the table predates binary keys (one query, at schema creation only)."""
        sql = (
            "SELECT table_name, column_name, data_type, collation_name"
            " FROM information_schema.columns WHERE table_schema = DATABASE()"
            " AND table_name IN (%(t)s, %(s)s) AND column_name IN"
            " ('idem_key', 'name', 'owner', 'fingerprint') AND data_type <> 'varbinary'"
        )

        def run(cur: Any) -> list[Any]:
            cur.execute(sql, {"t": self.table, "s": self.steps_table})
            return list(cur.fetchall())

        with bounded(self.admin_timeout()):
            text_columns = self._guarded(lambda: self._transact(run), "schema check")
        if text_columns:
            from idemlint.runtime.observability import logger

            found = ", ".join(f"{_s(t)}.{_s(c)} ({_s(k)})" for t, c, _, k in text_columns)
            logger.warning(
                "idempotency table %s was created with text key columns (%s): keys that differ "
                "only by trailing spaces (or by case, with a *_ci collation) are one key there. "
                "Migrate with: %s",
                self.table,
                found,
                self.migration_sql(),
            )

    def migration_sql(self) -> str:
        """The ``ALTER TABLE`` statements that give a table of an earlier version binary keys."""
        t, s = self.table, self.steps_table
        return (
            f"ALTER TABLE {t} MODIFY idem_key VARBINARY(1020) NOT NULL,"
            " MODIFY owner VARBINARY(64) NOT NULL, MODIFY fingerprint VARBINARY(64) NOT NULL;"
            f" ALTER TABLE {s} MODIFY idem_key VARBINARY(1020) NOT NULL,"
            " MODIFY name VARBINARY(1020) NOT NULL;"
        )

    def _claim_row(self, cur: Any, params: dict[str, Any]) -> RecordRow | None:
        cur.execute(self._sql(CLAIM), params)
        cur.nextset()
        return self._row(cur.fetchone())

    share_lock = " LOCK IN SHARE MODE"

    def atomic_step_sql(self) -> str:
        # INSERT IGNORE, not ON DUPLICATE KEY UPDATE: under CLIENT.FOUND_ROWS (Django's and
        # SQLAlchemy's default) a duplicate counts as one row too, and the caller's
        # transaction must tell "recorded now" from "recorded before"
        return self.raw_sql(
            "INSERT IGNORE INTO {s} (idem_key, run, name, epoch, result, created_at)"
            " SELECT idem_key, run, %(name)s, epoch, %(result)s, {now} FROM {t}"
            f" WHERE {FENCE} LOCK IN SHARE MODE"
        )

    def _insert_step_sql(self) -> str:
        # LOCK IN SHARE MODE: a concurrent takeover waits for (or fences) this write.
        # A duplicate under a passing fence is this holder's own earlier write.
        return (
            "INSERT INTO {s} (idem_key, run, name, epoch, result, created_at)"
            " SELECT idem_key, run, %(name)s, epoch, %(result)s, {now} FROM {t}"
            f" WHERE {FENCE} LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE name = {{s}}.name"
        )

    def close(self) -> None:
        self._pool.close()


def _connection_errors() -> tuple[type[BaseException], ...]:
    """``OperationalError`` and ``InterfaceError`` of every copy of PyMySQL's ``err`` module.

    Once Django's MySQL backend runs on PyMySQL (``install_as_MySQLdb()``), its
    ``import MySQLdb.converters`` executes PyMySQL's modules a second time under
    that name, and the fresh ``MySQLdb.err`` replaces the ``err`` attribute of the
    shared package: PyMySQL's connections keep raising the first copy's classes,
    code that names ``pymysql.err.OperationalError`` gets the second's. The
    store's idea of "a lost connection" (transient, worth a retry) must hold
    for both, else a completion stops being retried in any process that loaded
    Django's MySQL backend first. Read on every use: the second copy may appear
    after the store was opened.
    """
    modules = [sys.modules.get("pymysql.err"), getattr(pymysql, "err", None)]
    modules.append(sys.modules.get("MySQLdb.err"))
    found: list[type[BaseException]] = []
    for module in modules:
        for name in ("OperationalError", "InterfaceError"):
            cls = getattr(module, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in found:
                found.append(cls)
    return tuple(found)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


__all__ = ["MySQLStore"]

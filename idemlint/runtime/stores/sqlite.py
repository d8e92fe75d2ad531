"""The SQLite store: the embedded default, good for one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction, so the claim's
insert-or-take and its read-back are atomic across threads *and* processes
sharing the file (WAL mode, with a busy timeout instead of "database is
locked" errors). ``sqlite://`` is an in-memory database private to the store
object; it is shared by that object's threads through one connection.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from idemlint.runtime.errors import ConfigurationError
from idemlint.runtime.stores._sql import FENCE, UPSERT_CLAIM, SQLStore
from idemlint.runtime.stores.base import ConnectionPool, RecordRow

T = TypeVar("T")

_NAMED = re.compile(r"%\((\w+)\)s")
_BUSY_CODES = (5, 6)
"""SQLITE_BUSY, SQLITE_LOCKED (the primary codes; extended codes carry them in the low byte)."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED (and their extended codes): another connection
    holds the lock; worth trying again."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _BUSY_CODES
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SQLiteStore(SQLStore):
    """Idempotency records in a SQLite file (or in memory)."""

    dialect = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    connection_errors = ()

    def __init__(self, path: str | None, *, busy_timeout: float = 30.0, **options: Any) -> None:
        super().__init__(**options)
        self.path = path
        self.url = f"sqlite:///{path}" if path else "sqlite://"
        self._busy_timeout = float(busy_timeout)
        self._memory_lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect, lambda c: c.close()
        )
        if path:
            self._durability_found("file", None)
        else:
            self._durability_found(
                "memory",
                "records are kept in this process's memory and lost with the store object",
                log=False,
            )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        if not url.startswith("sqlite://"):
            raise ConfigurationError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or sqlite:// for memory"
            )
        rest = url[len("sqlite://") :].split("?", 1)[0]
        if rest in ("", "/", "/:memory:"):
            return cls(None, **options)
        if not rest.startswith("/"):
            raise ConfigurationError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db "
                "or sqlite:// for memory"
            )
        path = rest[1:]
        parent = Path(path).expanduser().parent
        if not parent.is_dir():
            raise ConfigurationError(f"the folder of the SQLite store {path!r} does not exist")
        return cls(path, **options)

    def _connect(self) -> sqlite3.Connection:
        target = self.path if self.path else f"file:idemlint-{uuid.uuid4().hex}?mode=memory"
        conn = sqlite3.connect(
            target,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=self.path is None,
        )
        if self.path:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self.path is None:
            with self._memory_lock:
                if self._memory is None:
                    self._memory = self._connect()
                yield self._memory
            return
        with self._pool.connection() as conn:
            yield conn

    def _transient(self, exc: BaseException) -> bool:
        """Locked past the busy timeout may pass (another writer finishes); nothing else does."""
        return isinstance(exc, sqlite3.OperationalError) and _busy(exc)

    def _param(self, sql: str) -> str:
        return _NAMED.sub(r":\1", sql)

    def _transact(self, fn: Callable[[Any], T], *, round_trips: int = 1) -> T:
        """One ``BEGIN IMMEDIATE`` transaction, run again while SQLite says the database is
        busy, until the busy timeout. The busy timeout alone does not cover every case:
        with 8 processes x 4 threads on one file in WAL mode, a claim was refused with
        "database is locked" well within a 30 s timeout (SQLite returns SQLITE_BUSY
        without waiting in some lock states). Nothing was written by a failed attempt
        (it is rolled back), so running ``fn`` again is safe."""
        self.stats.add(1)  # in-process: one transaction is one request
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.001
        while True:
            try:
                return self._transact_once(fn)
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.05)

    def _transact_once(self, fn: Callable[[Any], T]) -> T:
        with self._connection() as conn:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                value = fn(cur)
                conn.commit()
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
            return value

    def _schema_statements(self) -> Sequence[str]:
        return (
            "CREATE TABLE IF NOT EXISTS {t} ("
            " idem_key TEXT PRIMARY KEY, status TEXT NOT NULL, epoch INTEGER NOT NULL,"
            " run INTEGER NOT NULL, owner TEXT NOT NULL, fingerprint TEXT NOT NULL,"
            " lease_expires REAL NOT NULL, expires_at REAL, result BLOB,"
            " claim_kind TEXT NOT NULL, updated_at REAL NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at)",
            "CREATE TABLE IF NOT EXISTS {s} ("
            " idem_key TEXT NOT NULL, run INTEGER NOT NULL, name TEXT NOT NULL,"
            " epoch INTEGER NOT NULL, result BLOB, created_at REAL NOT NULL,"
            " PRIMARY KEY (idem_key, run, name))",
        )

    def _claim_row(self, cur: Any, params: dict[str, Any]) -> RecordRow | None:
        cur.execute(self._sql(UPSERT_CLAIM), params)
        return self._select_row(cur, params["key"])

    def _insert_step_sql(self) -> str:
        return (
            "INSERT INTO {s} (idem_key, run, name, epoch, result, created_at)"
            " SELECT idem_key, run, %(name)s, epoch, %(result)s, {now} FROM {t}"
            f" WHERE {FENCE} ON CONFLICT (idem_key, run, name) DO NOTHING"
        )

    def close(self) -> None:
        self._pool.close()
        with self._memory_lock:
            if self._memory is not None:
                self._memory.close()
                self._memory = None
                self._schema_ready = not self._create


__all__ = ["SQLiteStore"]

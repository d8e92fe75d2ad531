"""Run one SQL statement on whatever connection the caller already has.

The database locks must run on the caller's own connection: a transaction-
scoped advisory lock protects only the transaction it was taken in, and a
MySQL named lock belongs to the session that took it. So the helpers accept a
Django connection (or alias), a SQLAlchemy Connection or Session, or a plain
DB-API connection (psycopg, PyMySQL), and this module hides the differences.
No ORM is imported unless the caller passed one of its objects.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from idemlint.runtime.locks.errors import LockError


@dataclass(frozen=True)
class SqlRunner:
    """A caller's connection, reduced to what the locks need."""

    conn: Any
    kind: str  # "django", "sqlalchemy" or "dbapi"
    dialect: str  # "postgresql", "mysql" or "sqlite"

    def scalar(self, sql: str, params: tuple[Any, ...]) -> Any:
        """Execute ``sql`` (``%s`` placeholders) and return the first column of the first row."""
        if self.kind == "sqlalchemy":
            return self.conn.exec_driver_sql(sql, params).scalar()
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else row[0]

    def dbapi_connection(self) -> Any:
        """The driver's own connection object under the wrapper."""
        if self.kind == "django":
            self.conn.ensure_connection()
            return self.conn.connection
        if self.kind == "sqlalchemy":
            return self.conn.connection.dbapi_connection
        return self.conn


def _dialect_of_module(module: str) -> str | None:
    root = module.split(".", 1)[0]
    if root in ("psycopg", "psycopg2"):
        return "postgresql"
    if root in ("pymysql", "MySQLdb", "mysql", "mariadb"):
        return "mysql"
    if root in ("sqlite3",):
        return "sqlite"
    return None


def runner_for(conn: Any) -> SqlRunner:
    """Wrap ``conn``: a Django alias or connection, a SQLAlchemy Connection or
    Session, or a DB-API connection."""
    if isinstance(conn, str):
        from django.db import connections  # type: ignore[import-untyped]

        conn = connections[conn]
    if "django" in sys.modules:
        from django.db.backends.base.base import (  # type: ignore[import-untyped]
            BaseDatabaseWrapper,
        )

        if isinstance(conn, BaseDatabaseWrapper):
            return SqlRunner(conn, "django", str(conn.vendor))
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session

        if isinstance(conn, Session):
            conn = conn.connection()
        if isinstance(conn, Connection):
            name = conn.dialect.name
            return SqlRunner(conn, "sqlalchemy", "mysql" if name == "mariadb" else name)
    dialect = _dialect_of_module(type(conn).__module__)
    if dialect is None or not hasattr(conn, "cursor"):
        raise LockError(
            f"cannot take a database lock on {conn!r}: pass a Django connection or alias, "
            f"a SQLAlchemy Connection or Session, or a psycopg/PyMySQL connection"
        )
    return SqlRunner(conn, "dbapi", dialect)


def in_transaction(runner: SqlRunner) -> bool | None:
    """Whether the PostgreSQL connection is inside a transaction right now.

    None when the driver cannot say. Used after taking a transaction-scoped
    advisory lock: in autocommit mode the statement's own transaction has
    already ended and released it.
    """
    raw = runner.dbapi_connection()
    info = getattr(raw, "info", None)
    status = getattr(info, "transaction_status", None)
    if status is not None:  # psycopg 3: IDLE = 0, ACTIVE = 1, INTRANS = 2, INERROR = 3
        return int(status) != 0
    get_status = getattr(raw, "get_transaction_status", None)
    if get_status is not None:  # psycopg2: TRANSACTION_STATUS_IDLE = 0
        return int(get_status()) != 0
    return None

"""One database per backend for the atomic-step tests: a SQLAlchemy URL and a store URL
that point at the same database, and a rows table of the test's own.

A module of its own (not conftest, which other work shares): the atomic tests import it.
Each :class:`Database` has a unique rows table and store table; ``drop()`` removes both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _store_urls import backend_url
from run_names import fresh

from idemlint.runtime import open_store

SA_URLS = {
    "postgresql": os.environ.get(
        "IDEMLINT_TEST_PG_SA_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get(
        "IDEMLINT_TEST_MYSQL_SA_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}
ASYNC_SA_URLS = {
    "postgresql": SA_URLS["postgresql"],  # psycopg 3 is sync and async
}
SQL_BACKENDS = ("sqlite", "postgresql", "mysql")
_FIXTURE = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}


@dataclass
class Database:
    """A backend's database as both a SQLAlchemy engine and an idemlint store."""

    backend: str
    sa_url: str
    store_url: str
    rows: str
    engines: list[Any] = field(default_factory=list)
    _reader: Any = None

    def engine(self, **options: Any) -> Any:
        import sqlalchemy as sa

        if self.backend == "sqlite":
            options.setdefault("connect_args", {"timeout": 30})
        engine = sa.create_engine(self.sa_url, **options)
        self.engines.append(engine)
        return engine

    def reader(self) -> Any:
        """One engine for the checks (a new engine per check would keep a connection each)."""
        if self._reader is None:
            self._reader = self.engine()
        return self._reader

    def create_rows(self) -> None:
        import sqlalchemy as sa

        auto = {
            "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
            "postgresql": "SERIAL PRIMARY KEY",
            "mysql": "INTEGER AUTO_INCREMENT PRIMARY KEY",
        }[self.backend]
        with self.reader().begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {self.rows} (id {auto}, k VARCHAR(200) NOT NULL)"))

    def count_rows(self, key: str | None = None) -> int:
        import sqlalchemy as sa

        where = "" if key is None else " WHERE k = :k"
        with self.reader().connect() as conn:
            return int(
                conn.execute(
                    sa.text(f"SELECT count(*) FROM {self.rows}{where}"), {"k": key}
                ).scalar_one()
            )

    def step_records(self, key: str) -> int:
        import sqlalchemy as sa

        table = self.store_url.rsplit("table=", 1)[1] + "_steps"
        with self.reader().connect() as conn:
            return int(
                conn.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE idem_key = :k"), {"k": key}
                ).scalar_one()
            )

    def drop(self) -> None:
        import sqlalchemy as sa

        with self.reader().begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.rows}"))
        store = open_store(self.store_url, create=False)
        try:
            store.drop_schema()
        finally:
            store.close()
        for engine in self.engines:
            engine.dispose()


def database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A :class:`Database` for ``backend`` (through the service fixtures: skip or fail)."""
    if backend == "sqlite":
        path = tmp_path / "atomic.sqlite3"
        sa_url, store_base = f"sqlite:///{path}", f"sqlite:///{path}"
    else:
        store_base = backend_url(_FIXTURE[backend], request)
        sa_url = SA_URLS[backend]
    sep = "&" if "?" in store_base else "?"
    return Database(backend, sa_url, f"{store_base}{sep}table={fresh('at')}", fresh("rows"))

"""Atomic steps and atomic tasks: the step record (or the completion) commits in the
caller's transaction, on real SQLite, PostgreSQL and MariaDB.

Each test has its own rows table and store table (tests/runtime/_databases.py),
dropped afterwards. The crash tests (SIGKILL between the write and the commit)
are in test_atomic_crash.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _databases import SQL_BACKENDS, Database, database

from idemlint.runtime import (
    AlreadyInProgress,
    ConfigurationError,
    LeaseLost,
    aatomic_step,
    atomic_step,
    idempotent,
    open_store,
    step,
)

sa = pytest.importorskip("sqlalchemy")
from sqlalchemy.orm import Session  # noqa: E402


class Crash(Exception):
    """Stands in for a failure after the atomic step."""


@pytest.fixture(params=SQL_BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    found = database(request.param, request, tmp_path)
    found.create_rows()
    yield found
    found.drop()


def insert(db: Database, conn: Any, key: str) -> str:
    conn.execute(sa.text(f"INSERT INTO {db.rows} (k) VALUES (:k)"), {"k": key})
    return f"row {key}"


@pytest.mark.parametrize("through", ["session", "connection"])
def test_the_write_and_its_record_commit_together_and_replay(db: Database, through: str) -> None:
    engine = db.engine()
    store = open_store(db.store_url)
    calls: list[str] = []
    crash = {"armed": True}

    def write(conn: Any, key: str) -> dict[str, str]:
        calls.append(key)
        return {"row": insert(db, conn, key)}

    @idempotent("ship:{n}", store=store)
    def ship(n: int) -> dict[str, str]:
        opened = Session(engine) if through == "session" else engine.connect()
        with opened as conn:
            shipped = atomic_step("ship", write, conn, f"ship:{n}", using=conn)
        if crash["armed"]:
            raise Crash()
        return shipped

    with pytest.raises(Crash):
        ship(1)
    assert (db.count_rows("ship:1"), db.step_records("ship:1")) == (1, 1)
    crash["armed"] = False
    outcome = ship.call_detailed(1)
    assert outcome.result == {"row": "row ship:1"} and outcome.epoch == 2
    assert calls == ["ship:1"]  # replayed from the record, not run again
    assert db.count_rows() == 1
    store.close()


def test_a_step_that_raises_commits_nothing_and_runs_once_on_the_retry(db: Database) -> None:
    engine = db.engine()
    store = open_store(db.store_url)
    fail = {"armed": True}

    def write(conn: Any, key: str) -> str:
        insert(db, conn, key)
        if fail["armed"]:
            raise Crash()  # after the INSERT, inside the transaction
        return "ok"

    @idempotent("fail:{n}", store=store)
    def job(n: int) -> str:
        with engine.connect() as conn:
            return atomic_step("write", write, conn, f"fail:{n}", using=conn)

    with pytest.raises(Crash):
        job(1)
    assert (db.count_rows(), db.step_records("fail:1")) == (0, 0)
    fail["armed"] = False
    assert job(1) == "ok"
    assert (db.count_rows(), db.step_records("fail:1")) == (1, 1)
    store.close()


def test_a_holder_fenced_off_mid_transaction_commits_nothing(db: Database) -> None:
    """The stale holder's lease ends while its transaction is open; a successor takes over
    and commits its own step; the stale holder's fenced record write finds no row, so its
    whole transaction (its row included) rolls back and it gets LeaseLost.

    On SQLite the stale holder waits *before* its INSERT: once it has written it holds the
    file's write lock, so no takeover can commit until it does (the fence then passes).
    """
    engine = db.engine()
    store = open_store(db.store_url)
    inside, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    sqlite = db.backend == "sqlite"

    def stale_write(conn: Any) -> str:
        if not sqlite:
            insert(db, conn, "stale")
        inside.set()
        go_on.wait(10)
        if sqlite:
            insert(db, conn, "stale")
        return "stale"

    @idempotent("fence:{n}", store=store, lease=0.3)
    def stale(n: int) -> str:
        with engine.connect() as conn:
            return atomic_step("write", stale_write, conn, using=conn)

    def run() -> None:
        try:
            stale(1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(10)
    time.sleep(0.45)

    @idempotent("fence:{n}", store=store, lease=30)
    def successor(n: int) -> str:
        with engine.connect() as conn:
            return atomic_step("write", lambda c: insert(db, c, "fresh"), conn, using=conn)

    assert successor(1) == "row fresh"
    go_on.set()
    thread.join(20)
    assert len(errors) == 1 and isinstance(errors[0], LeaseLost), errors
    assert db.count_rows("stale") == 0 and db.count_rows("fresh") == 1
    assert db.step_records("fence:1") == 1
    row = store.get("fence:1")
    assert row is not None and (row.status, row.epoch) == ("completed", 2)
    store.close()


# -- refusals -----------------------------------------------------------------------------


def test_a_store_in_another_place_is_a_configuration_error(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.sqlite3'}")
    cases = [
        (open_store(f"{redis_url}?prefix=atr{time.time_ns()}"), "cannot be written in a database"),
        (open_store(f"sqlite:///{tmp_path / 'other.sqlite3'}"), "one SQLite file must hold both"),
        (open_store("sqlite://"), "one SQLite file must hold both"),
        (open_store(f"{pg_url}?table=never_created"), "postgresql store"),
    ]
    ran: list[int] = []
    for store, reason in cases:

        @idempotent("where:{n}", store=store)
        def job(n: int) -> None:
            with engine.connect() as conn:
                atomic_step("x", ran.append, 1, using=conn)

        with pytest.raises(ConfigurationError, match=reason):
            job(1)
        assert ran == []  # refused before fn ran
        store.drop_schema()
        store.close()
    engine.dispose()


def test_a_connection_to_another_postgres_database_is_refused(pg_url: str) -> None:
    """The store is in database ``test``; ``using`` reaches database ``postgres``. Without
    the store's table there, and with a same-named table there, the error says so and
    nothing is committed."""
    table = f"at_other_{time.time_ns()}"
    store = open_store(f"{pg_url}?table={table}")
    other_url = pg_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + (
        "/postgres"
    )
    other = sa.create_engine(other_url)
    twin = open_store(pg_url.rsplit("/", 1)[0] + f"/postgres?table={table}")
    try:

        @idempotent("other:{n}", store=store)
        def job(n: int) -> None:
            with other.connect() as conn:
                atomic_step("x", lambda: None, using=conn)

        with pytest.raises(ConfigurationError, match="is not in the database"):
            job(1)
        twin.create_schema()  # now a table of the same name exists there, without our record
        with pytest.raises(ConfigurationError, match="does not see the record"):
            job(2)
        for key in ("other:1", "other:2"):
            row = store.get(key)
            assert row is not None and row.status == "released"
    finally:
        twin.drop_schema()
        twin.close()
        store.drop_schema()
        store.close()
        other.dispose()


def test_misuse_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "misuse.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    store = open_store(f"sqlite:///{path}")
    with engine.connect() as conn, pytest.raises(ConfigurationError, match="outside an"):
        atomic_step("x", lambda: 1, using=conn)

    @idempotent("open:{n}", store=store)
    def in_open_transaction(n: int) -> None:
        with Session(engine) as session:
            session.execute(sa.text("SELECT 1"))  # autobegins a transaction
            atomic_step("x", lambda: 1, using=session)

    with pytest.raises(ConfigurationError, match="outside a transaction"):
        in_open_transaction(1)

    @idempotent("what:{n}", store=store)
    def not_a_connection(n: int) -> None:
        atomic_step("x", lambda: 1, using=object())

    with pytest.raises(ConfigurationError, match="not a database connection"):
        not_a_connection(1)

    @idempotent("task:{n}", store=store, fingerprint=["n"], atomic_using=lambda n, conn: conn)
    def task(n: int, conn: Any) -> None:
        step("inner", lambda: 1)

    with engine.connect() as conn, pytest.raises(ConfigurationError, match="inside an atomic"):
        task(1, conn)
    row = store.get("task:1")
    assert row is not None and row.status == "released"
    with pytest.raises(ConfigurationError, match="atomic_using must be"):
        idempotent("bad:{n}", store=store, atomic_using=42)(lambda n: n)  # type: ignore[arg-type]
    store.close()
    engine.dispose()


# -- Django ---------------------------------------------------------------------------------


def _django_alias(db: Database, tmp_path: Path) -> str:
    pytest.importorskip("django")
    import pymysql
    from django.conf import settings

    pymysql.install_as_MySQLdb()  # Django's MySQL backend imports MySQLdb
    if not settings.configured:
        import django

        settings.configure(
            DATABASES={},
            INSTALLED_APPS=[],
            USE_TZ=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
        django.setup()
    from django.db import connections

    alias = f"atomic_{db.backend}_{db.rows}"
    config = {
        "sqlite": {"ENGINE": "django.db.backends.sqlite3", "NAME": db.sa_url[len("sqlite:///") :]},
        "postgresql": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
        },
        "mysql": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
        },
    }[db.backend]
    filled = connections.configure_settings({"default": {}, alias: dict(config)})
    connections.settings[alias] = filled[alias]
    return alias


def test_django_alias(db: Database, tmp_path: Path) -> None:
    alias = _django_alias(db, tmp_path)
    from django.db import connections

    store = open_store(db.store_url)
    calls: list[int] = []
    crash = {"armed": True}

    def write(n: int) -> int:
        calls.append(n)
        with connections[alias].cursor() as cursor:
            cursor.execute(f"INSERT INTO {db.rows} (k) VALUES (%s)", [f"dj:{n}"])
        return n * 10

    @idempotent("dj:{n}", store=store)
    def job(n: int) -> int:
        value = atomic_step("write", write, n, using=alias)
        if crash["armed"]:
            raise Crash()
        return value

    try:
        with pytest.raises(Crash):
            job(1)
        crash["armed"] = False
        assert job(1) == 10 and calls == [1]
        assert (db.count_rows("dj:1"), db.step_records("dj:1")) == (1, 1)

        @idempotent("djtask:{n}", store=store, atomic_using=alias)
        def task(n: int) -> int:
            return write(n)

        assert task(2) == 20 and task.call_detailed(2).replayed
        assert db.count_rows("dj:2") == 1
    finally:
        connections[alias].close()
        store.close()


# -- async --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def async_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    pytest.importorskip("greenlet", reason="SQLAlchemy's asyncio needs greenlet")
    if request.param == "sqlite":
        pytest.importorskip("aiosqlite")
    found = database(request.param, request, tmp_path)
    found.create_rows()
    yield found
    found.drop()


def test_aatomic_step_and_an_async_atomic_task(async_db: Database) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    db = async_db
    url = db.sa_url.replace("sqlite://", "sqlite+aiosqlite://", 1)
    store = open_store(db.store_url)
    calls: list[str] = []
    crash = {"armed": True}

    async def write(session: Any, key: str) -> str:
        calls.append(key)
        await session.execute(sa.text(f"INSERT INTO {db.rows} (k) VALUES (:k)"), {"k": key})
        return key

    async def main() -> None:
        engine = create_async_engine(url)

        @idempotent("as:{n}", store=store)
        async def job(n: int) -> str:
            async with AsyncSession(engine) as session:
                value = await aatomic_step("write", write, session, f"as:{n}", using=session)
            if crash["armed"]:
                raise Crash()
            return value

        @idempotent("at:{n}", store=store, fingerprint=["n"], atomic_using=lambda n, s: s)
        async def task(n: int, session: Any) -> str:
            return await write(session, f"at:{n}")

        try:
            with pytest.raises(Crash):
                await job(1)
            crash["armed"] = False
            assert await job(1) == "as:1"
            async with AsyncSession(engine) as session:
                assert await task(1, session) == "at:1"
            async with AsyncSession(engine) as session:
                assert (await task.call_detailed(1, session)).replayed
        finally:
            await engine.dispose()

    asyncio.run(main())
    assert calls == ["as:1", "at:1"]
    assert db.count_rows() == 2 and db.step_records("as:1") == 1
    store.close()


# -- whole-task atomic mode -----------------------------------------------------------------


def test_an_atomic_task_commits_its_writes_with_its_completion(db: Database) -> None:
    engine = db.engine()
    store = open_store(db.store_url)
    calls: list[int] = []
    crash = {"armed": True}

    @idempotent("task:{n}", store=store, fingerprint=["n"], atomic_using=lambda n, conn: conn)
    def task(n: int, conn: Any) -> str:
        calls.append(n)
        value = insert(db, conn, f"task:{n}")
        if crash["armed"]:
            raise Crash()
        return value

    with engine.connect() as conn, pytest.raises(Crash):
        task(1, conn)
    assert db.count_rows() == 0  # the failed attempt's write rolled back with it
    row = store.get("task:1")
    assert row is not None and row.status == "released"
    crash["armed"] = False
    with engine.connect() as conn:
        assert task(1, conn) == "row task:1"
    with engine.connect() as conn:
        outcome = task.call_detailed(1, conn)
    assert outcome.replayed and outcome.result == "row task:1"
    assert calls == [1, 1] and db.count_rows() == 1
    store.close()


def test_an_atomic_task_fenced_off_commits_nothing_and_a_duplicate_is_in_progress(
    db: Database,
) -> None:
    engine = db.engine()
    store = open_store(db.store_url)
    inside, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    sqlite = db.backend == "sqlite"

    # lease 1 s: the duplicate below must meet it live even on a loaded machine (parallel tests)
    @idempotent("ft:{n}", store=store, lease=1.0, fingerprint=["n"], atomic_using=lambda n, c: c)
    def stale(n: int, conn: Any) -> str:
        if not sqlite:
            insert(db, conn, "stale")
        inside.set()
        go_on.wait(10)
        if sqlite:
            insert(db, conn, "stale")
        return "stale"

    @idempotent("ft:{n}", store=store, lease=30, fingerprint=["n"], atomic_using=lambda n, c: c)
    def successor(n: int, conn: Any) -> str:
        return insert(db, conn, "fresh")

    def run() -> None:
        try:
            with engine.connect() as conn:
                stale(1, conn)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(10)
    with engine.connect() as conn, pytest.raises(AlreadyInProgress):
        successor(1, conn)  # a duplicate while the first transaction is open: no row lock wait
    time.sleep(1.2)
    with engine.connect() as conn:
        assert successor(1, conn) == "row fresh"
    go_on.set()
    thread.join(20)
    assert len(errors) == 1 and isinstance(errors[0], LeaseLost), errors
    assert db.count_rows("stale") == 0 and db.count_rows("fresh") == 1
    row = store.get("ft:1")
    assert row is not None and (row.status, row.epoch) == ("completed", 2)
    store.close()

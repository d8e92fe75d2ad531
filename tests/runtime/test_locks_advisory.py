"""PostgreSQL advisory locks and MySQL/MariaDB GET_LOCK against the real servers.

Lock names carry a uuid so parallel runs never share a lock; the counter
tables are named with a uuid and dropped after each test.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from run_names import fresh

from idemlint.runtime.errors import LeaseLost
from idemlint.runtime.locks import (
    LockError,
    LockTimeout,
    advisory_key,
    mysql_get_lock,
    mysql_lock_name,
    pg_advisory_lock,
    pg_advisory_xact_lock,
    pg_try_advisory_xact_lock,
)

psycopg = pytest.importorskip("psycopg")
pymysql = pytest.importorskip("pymysql")

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


def _pg(autocommit: bool = False) -> Any:
    return psycopg.connect(PG_DSN, autocommit=autocommit)


def _my() -> Any:
    return pymysql.connect(**MYSQL, autocommit=True)


@pytest.fixture
def pg_table() -> Iterator[str]:
    try:
        conn = _pg(autocommit=True)
    except Exception as exc:
        _unavailable(f"PostgreSQL is not reachable: {exc}")
    name = fresh("ctr")
    conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, value int NOT NULL)")
    conn.execute(f"INSERT INTO {name} VALUES (1, 0)")
    yield name
    conn.execute(f"DROP TABLE {name}")
    conn.close()


@pytest.fixture
def my_table() -> Iterator[str]:
    try:
        conn = _my()
    except Exception as exc:
        _unavailable(f"MariaDB is not reachable: {exc}")
    name = fresh("ctr")
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, value int NOT NULL)")
        cur.execute(f"INSERT INTO {name} VALUES (1, 0)")
    yield name
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE {name}")
    conn.close()


def test_advisory_key_is_stable_and_64_bit() -> None:
    # Pinned: a change would let old and new workers of a rolling deploy hold
    # "the same" lock at once.
    assert advisory_key("invoice:42") == advisory_key("invoice:42")
    assert advisory_key("invoice:42") == 6532360584307275514
    assert advisory_key("invoice:43") != advisory_key("invoice:42")
    assert advisory_key(7) == 7
    assert -(2**63) <= advisory_key("x" * 1000) < 2**63
    with pytest.raises(LockError):
        advisory_key(2**64)
    with pytest.raises(LockError):
        advisory_key(1.5)  # type: ignore[arg-type]


def _pg_worker(table: str, lock: str, rounds: int) -> None:
    with psycopg.connect(PG_DSN) as conn:
        for _ in range(rounds):
            with conn.transaction():
                pg_advisory_xact_lock(conn, lock)
                (value,) = conn.execute(f"SELECT value FROM {table} WHERE id = 1").fetchone()
                time.sleep(0.002)  # widen the lost-update window
                conn.execute(f"UPDATE {table} SET value = %s WHERE id = 1", (value + 1,))


def test_pg_xact_lock_excludes_processes(pg_table: str) -> None:
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    lock, rounds, procs = f"ctr:{uuid.uuid4()}", 6, 4
    children = [
        context.Process(target=_pg_worker, args=(pg_table, lock, rounds)) for _ in range(procs)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [c.exitcode for c in children] == [0] * procs
    with _pg() as conn:
        assert conn.execute(f"SELECT value FROM {pg_table}").fetchone() == (rounds * procs,)


def test_pg_xact_lock_lives_until_commit_and_try_does_not_wait(pg_table: str) -> None:
    lock = f"t:{uuid.uuid4()}"
    holder, other = _pg(), _pg()
    try:
        pg_advisory_xact_lock(holder, lock)
        assert pg_try_advisory_xact_lock(other, lock) is False
        with pytest.raises(LockTimeout):
            pg_advisory_xact_lock(other, lock, timeout=0.05)
        # The waiter's transaction is still usable after the timeout.
        assert other.execute("SELECT 1").fetchone() == (1,)
        holder.commit()  # the transaction ends: the lock goes with it
        assert pg_try_advisory_xact_lock(other, lock) is True
        other.rollback()
    finally:
        holder.close()
        other.close()


def test_pg_xact_lock_refuses_autocommit(pg_table: str) -> None:
    conn = _pg(autocommit=True)
    try:
        with pytest.raises(LockError, match="autocommit"):
            pg_advisory_xact_lock(conn, f"t:{uuid.uuid4()}")
        with conn.transaction():  # an explicit transaction block is fine
            pg_advisory_xact_lock(conn, f"t:{uuid.uuid4()}")
    finally:
        conn.close()


def test_pg_session_lock_releases_on_exit_and_checks_the_release(pg_table: str) -> None:
    lock = f"s:{uuid.uuid4()}"
    holder, other, killer = _pg(autocommit=True), _pg(autocommit=True), _pg(autocommit=True)
    try:
        with pg_advisory_lock(holder, lock) as number:
            assert number == advisory_key(lock)
            with pytest.raises(LockTimeout), pg_advisory_lock(other, lock, timeout=0.05):
                pass
        with pg_advisory_lock(other, lock, timeout=5):
            pass
        # A holder whose session dies loses the lock; its exit says so.
        with pytest.raises(LeaseLost), pg_advisory_lock(holder, lock):
            pid = holder.info.backend_pid
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pg_advisory_lock(other, lock, timeout=10):
                pass  # the server freed it with the dead session
    finally:
        for conn in (holder, other, killer):
            conn.close()


def test_pg_lock_through_a_sqlalchemy_session(pg_table: str) -> None:
    sa = pytest.importorskip("sqlalchemy")
    from sqlalchemy.orm import Session

    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    lock = f"sa:{uuid.uuid4()}"
    other = _pg()
    try:
        with Session(engine) as session:
            pg_advisory_xact_lock(session, lock)
            assert pg_try_advisory_xact_lock(other, lock) is False
            session.commit()
        assert pg_try_advisory_xact_lock(other, lock) is True
    finally:
        other.close()
        engine.dispose()


def test_mysql_get_lock_excludes_threads(my_table: str) -> None:
    lock, rounds, threads = f"ctr:{uuid.uuid4()}", 6, 4
    errors: list[BaseException] = []

    def worker() -> None:
        conn = _my()
        try:
            for _ in range(rounds):
                with mysql_get_lock(conn, lock, timeout=30), conn.cursor() as cur:
                    cur.execute(f"SELECT value FROM {my_table} WHERE id = 1")
                    (value,) = cur.fetchone()
                    time.sleep(0.002)
                    cur.execute(f"UPDATE {my_table} SET value = %s WHERE id = 1", (value + 1,))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            conn.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    conn = _my()
    with conn.cursor() as cur:
        cur.execute(f"SELECT value FROM {my_table}")
        assert cur.fetchone() == (rounds * threads,)
    conn.close()


def test_mysql_lock_is_freed_when_its_connection_closes(my_table: str) -> None:
    lock = f"close:{uuid.uuid4()}"
    holder, other = _my(), _my()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (lock,))
            assert cur.fetchone() == (1,)
        with pytest.raises(LockTimeout), mysql_get_lock(other, lock, timeout=0):
            pass
        holder.close()  # a crashed worker: the server drops its locks
        with mysql_get_lock(other, lock, timeout=10) as used:
            assert used == lock
    finally:
        other.close()


def test_mysql_release_is_checked(my_table: str) -> None:
    lock = f"kill:{uuid.uuid4()}"
    holder, other, killer = _my(), _my(), _my()
    try:
        with pytest.raises(LeaseLost), mysql_get_lock(holder, lock):
            with killer.cursor() as cur:
                cur.execute("KILL CONNECTION %s", (holder.thread_id(),))
            with mysql_get_lock(other, lock, timeout=10):
                pass  # free again: it died with the holder's connection
        # The body's own error wins over the lost lock.
        holder2 = _my()
        with pytest.raises(KeyError), mysql_get_lock(holder2, lock):
            with killer.cursor() as cur:
                cur.execute("KILL CONNECTION %s", (holder2.thread_id(),))
            raise KeyError("body failed")
    finally:
        for conn in (other, killer):
            conn.close()


def test_mysql_long_names_are_digested_to_fit(my_table: str) -> None:
    long = "order-sync:" + "x" * 200
    name = mysql_lock_name(long)
    assert len(name) <= 64 and name == mysql_lock_name(long) and name != mysql_lock_name(long + "y")
    conn = _my()
    try:
        with mysql_get_lock(conn, long) as used:
            assert used == name
            with conn.cursor() as cur:
                cur.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (name,))
                assert cur.fetchone() == (1,)
    finally:
        conn.close()
    with pytest.raises(LockError, match="MySQL or MariaDB"), _pg() as pg, mysql_get_lock(pg, "x"):
        pass
    with pytest.raises(LockError, match="cannot take a database lock"):
        pg_advisory_xact_lock(object(), "x")

"""``upsert`` on SQLAlchemy tables and mapped classes, against real SQLite,
PostgreSQL and MariaDB, through both a Session and a Connection.

Each test declares its own table (named with a uuid) in a fresh MetaData,
creates it and drops it afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from run_names import fresh

from idemlint.runtime.upsert import UpsertError, upsert

sa = pytest.importorskip("sqlalchemy")
from sqlalchemy import (  # noqa: E402
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    select,
)
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

BACKENDS = ["sqlite", "postgresql", "mysql"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


_engines: dict[str, Engine] = {}


def _engine(backend: str, sqlite_path: Path) -> Engine:
    if backend not in _engines:
        url = {
            "sqlite": f"sqlite:///{sqlite_path}",
            "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
            "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
        }[backend]
        options: dict[str, Any] = {"connect_args": {"timeout": 30}} if backend == "sqlite" else {}
        _engines[backend] = create_engine(url, pool_size=10, **options)
    return _engines[backend]


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("sa-upsert") / "db.sqlite3"
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, sqlite_file: Path) -> Engine:
    engine = _engine(request.param, sqlite_file)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        _unavailable(f"{request.param} is not reachable: {exc}")
    return engine


def _payments(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("order_ref", String(40), nullable=False, unique=True),
        Column("kind", String(10), nullable=False, default="charge"),
        Column("amount", Integer, nullable=False),
        Column("status", String(20), nullable=False, default="new"),
    )


@pytest.fixture
def table(engine: Engine) -> Iterator[Table]:
    metadata = MetaData()
    table = _payments(metadata, fresh("saups"))
    metadata.create_all(engine)
    yield table
    metadata.drop_all(engine)


def _rows(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        query = select(table.c.order_ref, table.c.amount, table.c.status).order_by(
            table.c.order_ref
        )
        return [tuple(r) for r in conn.execute(query)]


def test_same_upsert_twice_through_a_session_leaves_one_row(engine: Engine, table: Table) -> None:
    with Session(engine) as session:
        first = upsert(
            table, {"order_ref": "A-1", "amount": 1}, unique_by=["order_ref"], session=session
        )
        session.commit()
    with Session(engine) as session:
        second = upsert(
            table, {"order_ref": "A-1", "amount": 2}, unique_by=["order_ref"], session=session
        )
        session.commit()

    assert _rows(engine, table) == [("A-1", 2, "new")]
    assert first.pk == second.pk
    assert second.rows[0].key == {"order_ref": "A-1"}
    if engine.dialect.name == "postgresql":
        assert (first.created, second.created) == (True, False)


def test_connection_batch_and_do_nothing(engine: Engine, table: Table) -> None:
    with engine.begin() as conn:
        upsert(
            table,
            {"order_ref": "B-1", "amount": 1, "status": "paid"},
            unique_by=["order_ref"],
            session=conn,
        )
    with engine.begin() as conn:
        result = upsert(
            table,
            [{"order_ref": f"B-{i}", "amount": i * 10} for i in range(1, 4)],
            unique_by=["order_ref"],
            session=conn,
        )
    assert _rows(engine, table) == [("B-1", 10, "paid"), ("B-2", 20, "new"), ("B-3", 30, "new")]
    assert len(result.rows) == 3
    if engine.dialect.name == "postgresql":
        assert result.inserted == 2

    with engine.begin() as conn:
        kept = upsert(
            table,
            [{"order_ref": "B-1", "amount": 0}, {"order_ref": "B-9", "amount": 90}],
            unique_by=["order_ref"],
            update=[],
            session=conn,
        )
    assert ("B-1", 10, "paid") in _rows(engine, table)
    assert ("B-9", 90, "new") in _rows(engine, table)
    if engine.dialect.name != "mysql":
        assert kept.row_for(order_ref="B-1").created is False
        assert kept.row_for(order_ref="B-9").created is True


def test_mapped_class_by_attribute_name(engine: Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Invoice(Base):
        __tablename__ = fresh("sainv")
        id: Mapped[int] = mapped_column(primary_key=True)
        number: Mapped[str] = mapped_column("invoice_no", String(30), unique=True)
        total: Mapped[int]

    Base.metadata.create_all(engine)
    try:
        for total in (5, 6):
            with Session(engine) as session:
                upsert(
                    Invoice,
                    {"number": "I-1", "total": total},
                    unique_by=["number"],
                    session=session,
                )
                session.commit()
        with Session(engine) as session:
            got = [(i.number, i.total) for i in session.scalars(select(Invoice))]
        assert got == [("I-1", 6)]
    finally:
        Base.metadata.drop_all(engine)


def test_concurrent_upserts_from_threads_leave_one_row(engine: Engine, table: Table) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with Session(engine) as session:
                barrier.wait()
                upsert(
                    table,
                    {"order_ref": "C-1", "amount": n},
                    unique_by=["order_ref"],
                    session=session,
                )
                session.commit()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert errors == []
    rows = _rows(engine, table)
    assert len(rows) == 1 and rows[0][1] in range(threads)


def test_unique_by_without_a_constraint_is_refused(engine: Engine, table: Table) -> None:
    with Session(engine) as session, pytest.raises(UpsertError) as info:
        upsert(table, {"order_ref": "D", "amount": 1}, unique_by=["amount"], session=session)
    message = str(info.value)
    assert table.name in message and "amount" in message and "(order_ref)" in message
    assert _rows(engine, table) == []


def test_unique_sets_from_constraints_and_indexes() -> None:
    metadata = MetaData()
    table = Table(
        "t",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("a", Integer),
        Column("b", Integer),
        Column("c", Integer),
        Column("d", Integer),
        UniqueConstraint("a", "b"),
        Index("ix_c", "c", unique=True),
        Index("ix_d", "d", unique=True, postgresql_where=Column("d") > 0),
    )
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        for n, good in enumerate((["a", "b"], ["b", "a"], ["c"], ["id"])):
            row = {"id": n, "a": n, "b": n, "c": n}
            assert upsert(table, row, unique_by=good, session=conn).pk == n
        for bad in (["a"], ["d"], ["a", "b", "c"]):
            with pytest.raises(UpsertError, match="no unique constraint covers exactly"):
                upsert(table, {k: 1 for k in bad}, unique_by=bad, session=conn)
        assert conn.execute(select(sa.func.count()).select_from(table)).scalar() == 4
    engine.dispose()


def test_bad_input_is_a_clear_error(engine: Engine, table: Table) -> None:
    with Session(engine) as session:
        with pytest.raises(UpsertError, match="None"):
            upsert(
                table, {"order_ref": None, "amount": 1}, unique_by=["order_ref"], session=session
            )
        with pytest.raises(UpsertError, match="same key"):
            upsert(
                table,
                [{"order_ref": "E", "amount": 1}, {"order_ref": "E", "amount": 2}],
                unique_by=["order_ref"],
                session=session,
            )
        with pytest.raises(UpsertError, match="no column 'nope'"):
            upsert(table, {"order_ref": "E", "nope": 1}, unique_by=["order_ref"], session=session)
        with pytest.raises(UpsertError, match="using= is for Django"):
            upsert(table, {"order_ref": "E"}, unique_by=["order_ref"], session=session, using="x")
    with pytest.raises(UpsertError, match="takes a Django model class"):
        upsert(object(), {"a": 1}, unique_by=["a"])
    assert _rows(engine, table) == []

"""SQLAlchemy tasks on SQLite and PostgreSQL: writes and commits recorded, state compared.

The check cannot roll SQLAlchemy work back by itself (the task commits on
its own connections), so these tests pass ``reset=table_snapshot(engine)``,
and one proves that without a reset the check refuses with a clear message
instead of comparing scenarios that started from different states.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from idemlint.runtime import idempotent, step, upsert
from idemlint.testing import CannotReset, RetrySafetyError, assert_retry_safe, table_snapshot

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    else:
        db = request.getfixturevalue("pg_database")
        url = PG_URL.format(db=db)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def tables(engine: Any) -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    suffix = uuid.uuid4().hex[:8]
    stock = sa.Table(
        f"stock_{suffix}",
        metadata,
        sa.Column("sku", sa.String(20), primary_key=True),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("moved_for", sa.Integer, nullable=True),
    )
    shipments = sa.Table(
        f"shipments_{suffix}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Integer, nullable=False, unique=True),
        sa.Column("created", sa.DateTime, server_default=sa.func.now()),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(stock.insert(), [{"sku": "MUG", "qty": 10}])
    return stock, shipments


def test_naive_task_fails_with_rows_and_stock_named(engine: Any, tables: Any) -> None:
    stock, shipments = tables

    def ship(order_id: int) -> None:
        with engine.begin() as conn:
            conn.execute(stock.update().values(qty=stock.c.qty - 1).where(stock.c.sku == "MUG"))
        with engine.begin() as conn:
            conn.execute(shipments.insert().values(order_id=order_id))

    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(ship, 1, reset=table_snapshot(engine))
    text = str(caught.value)
    assert "run twice:\n  the second run raised IntegrityError" in text
    assert f"{stock.name}: qty 9 → 8" in text
    assert "fix: IDM502 [declarative-over-imperative]" in text
    assert "fix: IDM301 [check-prior-art]" in text  # the unique order_id stops the 2nd insert
    with engine.connect() as conn:  # the final reset left the starting state
        assert conn.execute(sa.select(stock.c.qty)).scalar_one() == 10
        assert conn.execute(sa.select(sa.func.count()).select_from(shipments)).scalar_one() == 0


def test_fixed_task_with_runtime_upsert_and_a_guarded_update_passes(
    engine: Any, tables: Any, tmp_path: Path
) -> None:
    stock, shipments = tables

    @idempotent(key="ship:{order_id}", store=f"sqlite:///{tmp_path / 'keys.sqlite3'}")
    def ship(order_id: int) -> None:
        with engine.begin() as conn:  # the marker and the move commit together
            conn.execute(
                stock.update()
                .values(qty=stock.c.qty - 1, moved_for=order_id)
                .where(stock.c.sku == "MUG", stock.c.moved_for.is_distinct_from(order_id))
            )
        step("shipment", _book, order_id)

    def _book(order_id: int) -> None:
        with engine.begin() as conn:
            upsert(shipments, {"order_id": order_id}, unique_by=["order_id"], session=conn)

    report = assert_retry_safe(ship, 1, reset=table_snapshot(engine))
    labels = [e.label for e in report.effects]
    assert labels == [
        f"UPDATE {stock.name}",
        "COMMIT (sqlalchemy)",
        f"INSERT {shipments.name} (upsert)",
        "COMMIT (sqlalchemy)",
    ]
    assert len(report.scenarios) == 5


def test_without_a_reset_the_check_says_it_cannot_restore(engine: Any, tables: Any) -> None:
    _, shipments = tables

    def book(order_id: int) -> None:
        with engine.begin() as conn:
            conn.execute(shipments.insert().values(order_id=order_id))

    with pytest.raises(CannotReset, match=r"committed writes to sqlalchemy:.*Pass reset="):
        assert_retry_safe(book, 1)


def test_a_rolled_back_transaction_leaves_no_effect(engine: Any, tables: Any) -> None:
    _, shipments = tables

    def try_and_give_up(order_id: int) -> None:
        with engine.connect() as conn:
            conn.execute(shipments.insert().values(order_id=order_id))
            conn.rollback()
        requests.post("https://api.example.invalid/audit", json={}, timeout=5)

    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(try_and_give_up, 1, reset=table_snapshot(engine))
    report = caught.value.report
    assert [e.kind for e in report.effects] == ["db", "http"]
    assert "rows" not in str(caught.value)  # the rolled-back insert never counted

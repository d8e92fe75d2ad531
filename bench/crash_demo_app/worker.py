"""The demo's Celery app and its two order-confirmation tasks.

Configured from the environment that bench/crash_demo.py sets:
``DEMO_DSN`` (PostgreSQL, SQLAlchemy URL), ``DEMO_BROKER`` (Redis URL),
``DEMO_PREFIX`` (the Redis key prefix of this run), ``DEMO_QUEUE``,
``DEMO_STORE`` (the idemlint.runtime store URL) and ``DEMO_PAUSE`` (seconds
between a job's effects: the time an SMTP server or a carrier API takes).

Each job sends an "email" (a row in ``outbox``), takes one unit of stock
(``products.stock``) and creates a shipment (a row in ``shipments``).
``confirm_naive`` does exactly that. ``confirm_idempotent`` does it with
``idemlint.runtime``: an ``IdempotentTask`` keyed by the order, one step per
effect, ``upsert`` on unique keys for the rows, and the stock move recorded
in an ``inventory_moves`` ledger in the same transaction as the decrement.
``confirm_atomic`` runs the naive task's very statements, on the naive schema
(no unique constraint, no ledger), each in an ``atomic_step``: the step record
commits in the same transaction as the row or the decrement, so a worker killed
anywhere leaves both or neither, and the retry replays or runs it once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from celery import Celery
from celery.signals import worker_ready
from kombu.transport import TRANSPORT_ALIASES

from idemlint.runtime import atomic_step, step, upsert
from idemlint.runtime.integrations.celery import IdempotentTask

TRANSPORT_ALIASES["idemlint-redis"] = "bench.crash_demo_app.transport:Transport"


def broker_url(url: str) -> str:
    """``url`` itself, or through the version-gate-free transport on redis-py < 6.1."""
    if tuple(int(p) for p in redis.__version__.split(".")[:2]) < (6, 1):
        return "idemlint-redis://" + url.split("://", 1)[1]
    return url


class Schema:
    """The demo's tables; ``unique=True`` adds the constraints the idempotent variant relies on.

    The naive schema has none: it never needed them, which is the point.
    """

    def __init__(self, *, unique: bool) -> None:
        self.metadata = sa.MetaData()
        self.products = sa.Table(
            "products",
            self.metadata,
            sa.Column("sku", sa.String(16), primary_key=True),
            sa.Column("stock", sa.Integer, nullable=False),
        )
        self.outbox = sa.Table(
            "outbox",
            self.metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("order_id", sa.Integer, nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            *([sa.UniqueConstraint("order_id", "kind")] if unique else []),
        )
        self.shipments = sa.Table(
            "shipments",
            self.metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("order_id", sa.Integer, nullable=False, unique=unique),
            sa.Column("sku", sa.String(16), nullable=False),
        )
        self.inventory_moves = sa.Table(
            "inventory_moves",
            self.metadata,
            sa.Column("order_id", sa.Integer, primary_key=True),
        )


SCHEMAS = {
    "naive": Schema(unique=False),
    "idempotent": Schema(unique=True),
    "atomic": Schema(unique=False),  # the naive tables: the atomic steps alone protect them
}
naive = SCHEMAS["naive"]
safe = SCHEMAS["idempotent"]

TRANSPORT_OPTIONS = {
    # a message delivered to a worker that then died returns to the queue after 5 s ...
    "visibility_timeout": 5,
    # ... found by a sweep every second (kombu's default sweep is every 100 s)
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

app = Celery("crash_demo")
app.conf.update(
    broker_url=broker_url(os.environ.get("DEMO_BROKER", "redis://127.0.0.1:6379/13")),
    broker_transport_options={
        **TRANSPORT_OPTIONS,
        "global_keyprefix": os.environ.get("DEMO_PREFIX", "idemlint_demo:"),
    },
    broker_connection_retry_on_startup=True,
    task_default_queue=os.environ.get("DEMO_QUEUE", "crash_demo"),
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)

_engine: Any = None


@worker_ready.connect
def _announce_ready(**_: Any) -> None:
    """Tell the demo this worker consumes: killing a pool process before that kills the worker."""
    marker = os.environ.get("DEMO_READY")
    if marker:
        Path(marker).write_text(str(os.getpid()))


def engine() -> Any:
    """One engine per process (prefork children open their own after the fork)."""
    global _engine
    if _engine is None:
        _engine = sa.create_engine(os.environ["DEMO_DSN"], pool_size=2, pool_pre_ping=True)
    return _engine


def pause() -> None:
    time.sleep(float(os.environ.get("DEMO_PAUSE", "0.1")))


@app.task(name="demo.confirm_naive", acks_late=True)
def confirm_naive(order_id: int, sku: str) -> None:
    with engine().begin() as conn:
        conn.execute(naive.outbox.insert().values(order_id=order_id, kind="confirmation"))
    pause()
    products = naive.products
    with engine().begin() as conn:
        conn.execute(
            products.update().values(stock=products.c.stock - 1).where(products.c.sku == sku)
        )
    pause()
    with engine().begin() as conn:
        conn.execute(naive.shipments.insert().values(order_id=order_id, sku=sku))


def _email(order_id: int) -> None:
    with engine().begin() as conn:
        upsert(
            safe.outbox,
            {"order_id": order_id, "kind": "confirmation"},
            unique_by=["order_id", "kind"],
            update=[],
            session=conn,
        )


def _take_stock(order_id: int, sku: str) -> bool:
    with engine().begin() as conn:  # the ledger row and the decrement commit together
        moved = conn.execute(
            sa.text("INSERT INTO inventory_moves (order_id) VALUES (:o) ON CONFLICT DO NOTHING"),
            {"o": order_id},
        ).rowcount
        if moved:
            products = safe.products
            conn.execute(
                products.update().values(stock=products.c.stock - 1).where(products.c.sku == sku)
            )
    return bool(moved)


def _ship(order_id: int, sku: str) -> None:
    with engine().begin() as conn:
        upsert(
            safe.shipments,
            {"order_id": order_id, "sku": sku},
            unique_by=["order_id"],
            update=[],
            session=conn,
        )


@app.task(
    name="demo.confirm_idempotent",
    base=IdempotentTask,
    bind=True,
    acks_late=True,
    max_retries=None,
    idempotency_key="confirm:{order_id}",
    idempotency_store=os.environ.get("DEMO_STORE"),
    idempotency_lease=2.0,
    idempotency_heartbeat=0.5,
    idempotency_max_countdown=2.0,
)
def confirm_idempotent(self: Any, order_id: int, sku: str) -> None:
    step("email", _email, order_id)
    pause()
    step("inventory", _take_stock, order_id, sku)
    pause()
    step("shipment", _ship, order_id, sku)


def _insert_email(conn: Any, order_id: int) -> None:
    conn.execute(naive.outbox.insert().values(order_id=order_id, kind="confirmation"))


def _decrement(conn: Any, sku: str) -> None:
    products = naive.products
    conn.execute(products.update().values(stock=products.c.stock - 1).where(products.c.sku == sku))


def _insert_shipment(conn: Any, order_id: int, sku: str) -> None:
    conn.execute(naive.shipments.insert().values(order_id=order_id, sku=sku))


@app.task(
    name="demo.confirm_atomic",
    base=IdempotentTask,
    bind=True,
    acks_late=True,
    max_retries=None,
    idempotency_key="confirm:{order_id}",
    idempotency_store=os.environ.get("DEMO_STORE"),
    idempotency_lease=2.0,
    idempotency_heartbeat=0.5,
    idempotency_max_countdown=2.0,
)
def confirm_atomic(self: Any, order_id: int, sku: str) -> None:
    # confirm_naive's statements; each step's record commits in the statement's transaction
    with engine().connect() as conn:
        atomic_step("email", _insert_email, conn, order_id, using=conn)
    pause()
    with engine().connect() as conn:
        atomic_step("inventory", _decrement, conn, sku, using=conn)
    pause()
    with engine().connect() as conn:
        atomic_step("shipment", _insert_shipment, conn, order_id, sku, using=conn)


TASKS = {"naive": confirm_naive, "idempotent": confirm_idempotent, "atomic": confirm_atomic}

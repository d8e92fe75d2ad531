"""Celery glue: ``IdempotentTask`` in eager mode and with a real worker on Redis."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from run_names import fresh

from idemlint.runtime import AlreadyInProgress, KeyBuildError, open_store
from idemlint.runtime.integrations.celery import IdempotentTask

celery = pytest.importorskip("celery")
from celery import Celery  # noqa: E402
from celery.signals import task_retry  # noqa: E402


@pytest.fixture
def store_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
def app() -> Iterator[Any]:
    app = Celery(f"idemlint-{uuid.uuid4().hex[:8]}", set_as_current=False)
    yield app
    app.close()


def test_argument_key_runs_once_across_deliveries(app: Any, store_url: str) -> None:
    calls: list[int] = []

    @app.task(
        base=IdempotentTask,
        bind=True,
        idempotency_key="charge:{order_id}",
        idempotency_store=store_url,
    )
    def charge(self: Any, order_id: int, amount: int = 5) -> dict[str, int]:
        calls.append(order_id)
        return {"order": order_id, "charged": amount}

    first = charge.apply(args=(7,))
    second = charge.apply(args=(7,))  # a duplicate enqueue: new task id, same order
    assert first.get() == second.get() == {"order": 7, "charged": 5}
    assert first.id != second.id
    assert calls == [7]
    charge.apply(args=(8,))
    assert calls == [7, 8]


def test_call_detailed_tells_the_caller_a_replay_from_a_run(app: Any, store_url: str) -> None:
    """The task object is not the decorated function: ``call_detailed`` used to be an
    AttributeError on it, so a caller could not see a replay at all."""
    calls: list[int] = []

    @app.task(
        base=IdempotentTask,
        bind=True,
        idempotency_key="charge:{order_id}",
        idempotency_store=store_url,
    )
    def charge_card(self: Any, order_id: int, amount: int) -> dict[str, int]:
        calls.append(order_id)
        return {"order": order_id, "charged": amount}

    first = charge_card.call_detailed(7, 1999)
    assert (first.result, first.replayed, first.key) == (
        {"order": 7, "charged": 1999},
        False,
        "charge:7",
    )
    again = charge_card.call_detailed(7, 1999)
    assert again.replayed and again.result == first.result and again.epoch == first.epoch
    assert charge_card.apply(args=(7, 1999)).get() == first.result  # a worker's run replays too
    assert calls == [7]
    assert charge_card.call_detailed(8, 5).replayed is False
    assert charge_card(8, 5) == {"order": 8, "charged": 5}  # calling the task: the result alone
    assert calls == [7, 8]


def test_call_detailed_with_a_task_id_key_needs_a_task_id(app: Any, store_url: str) -> None:
    @app.task(base=IdempotentTask, idempotency_store=store_url)
    def ship_parcel(order_id: int) -> int:
        return order_id

    with pytest.raises(KeyBuildError, match="task id"):
        ship_parcel.call_detailed(1)  # outside a worker there is no task id to key the run by


def test_default_key_is_the_task_id(app: Any, store_url: str) -> None:
    calls: list[int] = []

    @app.task(base=IdempotentTask, idempotency_store=store_url)
    def ship(order_id: int) -> int:
        calls.append(order_id)
        return len(calls)

    assert ship.apply(args=(1,), task_id="redelivered").get() == 1
    assert ship.apply(args=(1,), task_id="redelivered").get() == 1  # a redelivery replays
    assert ship.apply(args=(1,), task_id="another").get() == 2  # a new message runs
    assert calls == [1, 1]
    with open_store(store_url) as store:
        assert store.get(f"{ship.name}:redelivered") is not None

    with pytest.raises(KeyBuildError, match="task id"):
        ship(1)  # called directly: no task id, so no protection - and no silent run
    assert calls == [1, 1]


def test_in_progress_becomes_a_retry_timed_to_the_lease(app: Any, store_url: str) -> None:
    started, finish = threading.Event(), threading.Event()
    calls: list[int] = []

    @app.task(
        base=IdempotentTask,
        bind=True,
        idempotency_key="report:{report_id}",
        idempotency_store=store_url,
        idempotency_lease=30,
        max_retries=1,
    )
    def report(self: Any, report_id: int) -> str:
        calls.append(report_id)
        started.set()
        finish.wait(10)
        return f"report {report_id}"

    retries: list[Any] = []

    def on_retry(sender: Any = None, reason: Any = None, **_: Any) -> None:
        if getattr(sender, "name", None) == report.name:
            retries.append(reason)

    task_retry.connect(on_retry, weak=False)
    holder = threading.Thread(target=lambda: report.apply(args=(3,)))
    holder.start()
    try:
        assert started.wait(10)
        duplicate = report.apply(args=(3,))  # eager: retries are applied at once
        assert duplicate.failed()
        assert isinstance(duplicate.result, AlreadyInProgress)
        assert len(retries) == 1
        assert isinstance(retries[0].exc, AlreadyInProgress)
        assert 20 < retries[0].when <= 30  # the holder's remaining lease
    finally:
        task_retry.disconnect(on_retry)
        finish.set()
        holder.join()
    assert report.apply(args=(3,)).get() == "report 3"  # now a replay
    assert calls == [3]


def test_bad_option_is_a_clear_error(app: Any, store_url: str) -> None:
    @app.task(base=IdempotentTask, idempotency_store=store_url, idempotency_on_in_progress="no")
    def job() -> None:
        return None

    result = job.apply()
    assert result.failed() and "idempotency_on_in_progress" in str(result.result)


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


AMQP_URL = os.environ.get("IDEMLINT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def amqp_url() -> str:
    """The local RabbitMQ. Celery's Redis transport needs redis-py 6.1+, which arq's
    pin (<6) rules out in the dev environment, so the real-worker test uses the
    machine's other broker."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            pass
    except OSError as exc:
        unavailable(f"RabbitMQ is not reachable at 127.0.0.1:5672: {exc}")
    return AMQP_URL


def test_real_worker_retries_the_duplicate_then_replays(
    amqp_url: str, redis_url: str, store_url: str
) -> None:
    redis = pytest.importorskip("redis")
    from celery.contrib.testing.worker import start_worker

    queue = fresh("q")
    app = Celery(queue, broker=amqp_url, backend="rpc://", set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        # the rpc:// backend declares a reply queue per thread, named by the app (not by the
        # test), with x-expires = result_expires: the broker drops them 10 s after the test
        result_expires=10,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=False,
        broker_heartbeat=0,
        worker_enable_remote_control=False,  # its broadcast consumer slows shutdown by 10s
    )
    client = redis.Redis.from_url(redis_url)
    counter = f"{queue}:runs"
    started, retried = threading.Event(), threading.Event()

    @app.task(
        base=IdempotentTask,
        bind=True,
        idempotency_key="invoice:{invoice_id}",
        idempotency_store=store_url,
        idempotency_lease=2.0,
        # the holder renews its lease while it waits: a worker that starts slowly (a loaded
        # machine, parallel tests) must still meet the key held, not take it over
        idempotency_heartbeat=True,
        max_retries=20,
    )
    def invoice(self: Any, invoice_id: int) -> str:
        client.incr(counter)  # the side effect, counted outside the process's memory
        started.set()
        retried.wait(15)  # hold the key until the duplicate has been told to retry
        return f"invoice {invoice_id} sent"

    def on_retry(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "name", None) == invoice.name:
            retried.set()

    task_retry.connect(on_retry, weak=False)
    # The first delivery runs in this process (an eager apply in a thread) and
    # holds the key; the duplicate goes through the broker to the real worker.
    holder = threading.Thread(target=lambda: invoice.apply(args=(42,)))
    holder.start()
    try:
        assert started.wait(15)
        with start_worker(
            app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
        ):
            duplicate = invoice.apply_async(args=(42,))
            assert duplicate.get(timeout=30) == "invoice 42 sent"  # replayed after its retry
        assert retried.is_set()
        assert int(client.get(counter) or 0) == 1
    finally:
        retried.set()
        holder.join()
        task_retry.disconnect(on_retry)
        client.delete(counter)
        client.close()
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
            conn.default_channel.queue_delete(app.backend.oid)  # this thread's, at once

        app.close()

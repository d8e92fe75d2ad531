"""Dramatiq glue: ``idempotent_actor`` on a StubBroker with a real Worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from idemlint.runtime import KeyBuildError
from idemlint.runtime.integrations.dramatiq import idempotent_actor

dramatiq = pytest.importorskip("dramatiq")
from dramatiq.brokers.stub import StubBroker  # noqa: E402
from dramatiq.middleware import Middleware  # noqa: E402


class _SeeRetries(Middleware):  # type: ignore[misc]
    """Records the Retry exceptions actors raise."""

    def __init__(self) -> None:
        self.retries: list[Any] = []
        self.seen = threading.Event()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if isinstance(exception, dramatiq.Retry):
            self.retries.append(exception)
            self.seen.set()


@pytest.fixture
def broker() -> Iterator[Any]:
    broker = StubBroker()
    broker.emit_after("process_boot")
    yield broker
    broker.flush_all()
    broker.close()


def _drain(broker: Any, queue: str = "default") -> None:
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        broker.join(queue, fail_fast=True, timeout=30_000)
        worker.join()
    finally:
        worker.stop()


def test_duplicate_messages_run_once(broker: Any, sqlite_url: str) -> None:
    calls: list[int] = []

    # Worker threads may take two duplicates at once; the loser retries after
    # the holder's lease, so a short lease keeps the test short.
    @idempotent_actor(key="charge:{order_id}", store=sqlite_url, lease=1.0, broker=broker)
    def charge(order_id: int) -> None:
        calls.append(order_id)

    for _ in range(3):
        charge.send(5)
    charge.send(6)
    _drain(broker)
    assert sorted(calls) == [5, 6]


def test_default_key_is_the_message_id(broker: Any, sqlite_url: str) -> None:
    calls: list[int] = []

    @idempotent_actor(store=sqlite_url, lease=1.0, broker=broker)
    def ship(order_id: int) -> None:
        calls.append(order_id)

    message = ship.send(1)
    broker.enqueue(message)  # a redelivery of the same message
    ship.send(1)  # a new message
    _drain(broker)
    assert calls == [1, 1]
    with pytest.raises(KeyBuildError, match="task id"):
        ship(1)  # outside a worker there is no message id


def test_in_progress_becomes_a_delayed_retry_then_a_replay(broker: Any, sqlite_url: str) -> None:
    seen = _SeeRetries()
    broker.add_middleware(seen)
    calls: list[int] = []
    hold = threading.Event()
    held = threading.Event()

    @idempotent_actor(key="report:{n}", store=sqlite_url, lease=1.0, max_retries=20, broker=broker)
    def report(n: int) -> None:
        calls.append(n)
        held.set()
        hold.wait(10)

    holder = threading.Thread(target=report, args=(4,))  # another worker holds the key
    holder.start()
    try:
        assert held.wait(10)
        report.send(4)
        worker = dramatiq.Worker(broker, worker_timeout=50)
        worker.start()
        try:
            assert seen.seen.wait(15)
            hold.set()  # the holder finishes; the delayed retry replays
            broker.join("default", fail_fast=True, timeout=30_000)
            worker.join()
        finally:
            worker.stop()
    finally:
        hold.set()
        holder.join()
    assert calls == [4]
    assert 0 < seen.retries[0].delay <= 1000  # milliseconds: the holder's remaining lease

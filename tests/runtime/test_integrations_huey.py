"""Huey glue: ``idempotent_task`` on Huey in immediate mode (its in-memory storage)."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from idemlint.runtime import KeyBuildError
from idemlint.runtime.integrations.huey import idempotent_task

huey_api = pytest.importorskip("huey")


@pytest.fixture
def huey() -> Iterator[Any]:
    instance = huey_api.MemoryHuey(immediate=True, utc=True)
    yield instance
    instance.flush()


def test_duplicate_enqueue_runs_once(huey: Any, sqlite_url: str) -> None:
    calls: list[int] = []

    @idempotent_task(huey, key="charge:{order_id}", store=sqlite_url)
    def charge(order_id: int) -> dict[str, int]:
        calls.append(order_id)
        return {"order": order_id}

    assert charge(3)() == charge(3)() == {"order": 3}
    assert calls == [3]


def test_default_key_is_the_task_id(huey: Any, sqlite_url: str) -> None:
    calls: list[int] = []

    @idempotent_task(huey, store=sqlite_url)
    def ship(order_id: int) -> int:
        calls.append(order_id)
        return len(calls)

    task = ship.s(1)
    huey.enqueue(task)
    huey.enqueue(task)  # the same task id again: replayed
    ship(1)  # a new task: runs
    assert calls == [1, 1]
    with pytest.raises(KeyBuildError, match="task id"):
        ship.call_local(1)


def test_in_progress_becomes_retry_task_timed_to_the_lease(huey: Any, sqlite_url: str) -> None:
    calls: list[int] = []
    hold, held = threading.Event(), threading.Event()

    @idempotent_task(huey, key="report:{n}", store=sqlite_url, lease=30)
    def report(n: int) -> str:
        calls.append(n)
        held.set()
        hold.wait(10)
        return f"report {n}"

    holder = threading.Thread(target=lambda: report(8))
    holder.start()
    try:
        assert held.wait(10)
        before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        report(8)  # the duplicate: Huey reschedules it
        (retry,) = huey.scheduled()
        assert 20 < (retry.eta - before).total_seconds() < 31  # the holder's remaining lease
    finally:
        hold.set()
        holder.join()
    retry.eta = None  # due now
    assert huey.execute(retry) == "report 8"  # the retry replays the holder's result
    assert calls == [8]


def test_bad_options_are_clear_errors(huey: Any) -> None:
    from idemlint.runtime import ConfigurationError

    with pytest.raises(ConfigurationError, match="context"):
        idempotent_task(huey, context=True)
    with pytest.raises(ConfigurationError, match="on_in_progress"):
        idempotent_task(huey, on_in_progress="never")

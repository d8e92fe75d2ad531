"""A completion that fails on a transient error is tried again, within the lease.

When recording a job's completion failed on "too many connections", the
decorator raised at once; the record stayed in progress, and once the lease
ended the retry ran the job a second time. The completion (and a step's
result) is now retried with backoff while the lease lasts - never past it -
and if it still fails the call raises :class:`StoreError`, never reporting
success. Failures are injected at the driver's connect (the driver's own
error class and the server's own message), and once for real, on a private
``redis-server --maxclients``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _servers import redis_server

from idemlint.runtime import LeaseLost, Store, StoreError, idempotent, open_store, step
from idemlint.runtime.stores.base import Lease


def too_many_connections(store: Store) -> BaseException:
    """The error each driver raises when the server refuses a connection as one too many."""
    kind = type(store).__name__
    if kind == "PostgresStore":
        import psycopg

        return psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            "FATAL:  sorry, too many clients already"
        )
    if kind == "MySQLStore":
        import pymysql

        return pymysql.err.OperationalError(1040, "Too many connections")
    import redis

    return redis.ConnectionError("max number of clients reached")


def refuse_connections(store: Store, times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on the store's next ``times`` new connections are refused; returns a counter.

    Pooled connections are dropped first, so the very next request must connect.
    """
    refused = [0]
    error = too_many_connections(store)

    def maybe_refuse() -> None:
        if refused[0] < times:
            refused[0] += 1
            raise error

    if type(store).__name__ == "RedisStore":
        pool = store.client.connection_pool  # type: ignore[attr-defined]
        pool.disconnect()
        real_get = pool.get_connection

        def get_connection(*args: Any, **kwargs: Any) -> Any:
            maybe_refuse()
            return real_get(*args, **kwargs)

        monkeypatch.setattr(pool, "get_connection", get_connection)
    else:
        pool = store._pool  # type: ignore[attr-defined]
        pool.close()
        real_connect = pool._connect

        def connect() -> Any:
            maybe_refuse()
            return real_connect()

        monkeypatch.setattr(pool, "_connect", connect)
    return refused


@pytest.fixture(params=["postgres", "mysql", "redis"])
def network_store(request: pytest.FixtureRequest) -> Any:
    from _store_urls import backend_url, unique_store_url

    url = unique_store_url(backend_url(request.param, request))
    store = open_store(url)
    yield store
    store.drop_schema()
    store.close()


def test_completion_refused_as_too_many_connections_is_retried_and_runs_once(
    network_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    counters: list[list[int]] = []

    @idempotent("crowded:{n}", store=network_store, lease=10)
    def job(n: int) -> dict[str, int]:
        runs.append(n)
        counters.append(refuse_connections(network_store, 3, monkeypatch))  # the server fills
        return {"n": n}

    outcome = job.call_detailed(1)
    assert outcome.replayed is False and outcome.result == {"n": 1}
    assert counters[0][0] == 3  # refused three times, then recorded
    row = network_store.get("crowded:1")
    assert row is not None and row.status == "completed" and row.epoch == 1
    again = job.call_detailed(1)
    assert again.replayed is True and again.result == {"n": 1}
    assert runs == [1]  # ran once: the retry replayed instead of running it a second time


def test_a_completion_refused_until_the_lease_ends_raises_and_is_not_done(
    network_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    lease = 3.0

    @idempotent("full:{n}", store=network_store, lease=lease)
    def job(n: int) -> int:
        runs.append(n)
        refuse_connections(network_store, 10**9, monkeypatch)  # the server stays full
        return n

    started = time.monotonic()
    with pytest.raises(StoreError, match="could not be recorded") as info:
        job(1)
    elapsed = time.monotonic() - started
    assert info.value.transient and info.value.key == "full:1"
    assert "not marked done" in str(info.value)
    assert elapsed < lease + 3.0  # stopped at the lease's end (plus one bounded attempt)
    monkeypatch.undo()  # the server has room again
    row = network_store.get("full:1")
    assert row is not None and row.status == "in_progress"  # never completed by a failure
    assert runs == [1]


def test_a_real_full_redis_refuses_then_accepts_the_completion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """For real: a private Redis at its maxclients refuses the store's reconnect with
    "max number of clients reached" until another client leaves."""
    import redis

    with redis_server(tmp_path, "--maxclients", "2") as (url, _):
        store = open_store(url)
        runs: list[int] = []
        blockers: list[Any] = []

        @idempotent("maxclients:{n}", store=store, lease=10)
        def job(n: int) -> int:
            runs.append(n)
            first = redis.Redis.from_url(url)
            mine = [c["id"] for c in first.client_list() if c.get("name") == "idemlint"]
            for client_id in mine:
                first.client_kill_filter(_id=client_id)  # the store must reconnect...
            second = redis.Redis.from_url(url)
            second.ping()  # ...to a server that is now full (2 of 2)
            blockers.extend([first, second])
            threading.Timer(0.5, second.close).start()  # until one client leaves
            return n

        with caplog.at_level(logging.WARNING, logger="idemlint.runtime"):
            assert job(1) == 1
        retried = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
        assert retried and "max number of clients reached" in retried[0]
        row = store.get("maxclients:1")
        assert row is not None and row.status == "completed"
        assert job.call_detailed(1).replayed is True and runs == [1]
        for client in blockers:
            client.close()
        store.close()


def _patch(
    monkeypatch: pytest.MonkeyPatch, store: Store, name: str, failures: list[BaseException]
) -> list[float]:
    """Make ``store.<name>`` raise each of ``failures`` in turn, then work; returns call times."""
    real: Callable[..., Any] = getattr(store, name)
    calls: list[float] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        if failures:
            raise failures.pop(0)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, name, flaky)
    return calls


def test_a_fake_that_fails_n_times_then_succeeds_backs_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store("sqlite://")
    failures: list[BaseException] = [StoreError("flaky", transient=True) for _ in range(4)]
    calls = _patch(monkeypatch, store, "complete", failures)

    @idempotent("flaky:{n}", store=store, lease=30)
    def job(n: int) -> int:
        return n

    assert job(1) == 1
    assert len(calls) == 5
    pauses = [b - a for a, b in itertools.pairwise(calls)]
    assert all(p > 0 for p in pauses) and pauses[-1] > pauses[0]  # it backs off
    assert store.get("flaky:1").status == "completed"  # type: ignore[union-attr]


def test_a_fake_that_always_fails_stops_at_the_lease_end(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("sqlite://")
    failures: list[BaseException] = [StoreError("down", transient=True) for _ in range(10**4)]
    calls = _patch(monkeypatch, store, "complete", failures)
    leases: list[Lease] = []

    @idempotent("down:{n}", store=store, lease=2)
    def job(n: int) -> int:
        from idemlint.runtime import current_execution

        execution = current_execution()
        assert execution is not None
        leases.append(execution.lease)
        return n

    with pytest.raises(StoreError, match="could not be recorded"):
        job(1)
    assert len(calls) > 2
    assert calls[-1] <= leases[0].deadline  # no attempt starts after the lease's end
    assert store.get("down:1").status == "in_progress"  # type: ignore[union-attr]


def test_permanent_errors_and_fencing_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("sqlite://")
    permanent = StoreError("no such table", transient=False)
    calls = _patch(monkeypatch, store, "complete", [permanent])

    @idempotent("perm:{n}", store=store, lease=30)
    def job(n: int) -> int:
        return n

    with pytest.raises(StoreError, match="no such table"):
        job(1)
    assert len(calls) == 1
    monkeypatch.undo()
    fenced = LeaseLost("fenced", key="perm:2", epoch=1)
    calls = _patch(monkeypatch, store, "complete", [fenced])
    with pytest.raises(LeaseLost):
        job(2)
    assert len(calls) == 1


def test_a_step_result_is_retried_too_and_the_step_runs_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store("sqlite://")
    failures: list[BaseException] = [StoreError("busy", transient=True) for _ in range(2)]
    calls = _patch(monkeypatch, store, "save_step", failures)
    charged: list[int] = []

    @idempotent("charge:{n}", store=store, lease=30)
    def job(n: int) -> int:
        return step("charge", lambda: charged.append(n) or n)

    assert job(1) == 1
    assert len(calls) == 3 and charged == [1]

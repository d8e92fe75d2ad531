"""Connection loss between claim and completion, on every backend.

The store's own server connections are killed for real while the function
runs (``pg_terminate_backend``, MariaDB ``KILL``, Redis ``CLIENT KILL``; for
SQLite the connections are closed). A completed result must not be lost, and
a claim whose holder vanished with its connection must free up when its
lease ends - the claim lives in the record, not in a session.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from idemlint.runtime import Store, StoreError, idempotent, open_store
from idemlint.runtime.stores.base import Claimed, InProgress


def kill_connections(store: Store) -> int:
    """Kill the store's server-side connections; returns how many were killed."""
    kind = type(store).__name__
    if kind == "SQLiteStore":
        idle = len(store._pool._idle)  # type: ignore[attr-defined]
        store._pool.close()  # type: ignore[attr-defined]
        return idle
    if kind == "PostgresStore":
        import psycopg

        pids = [c.info.backend_pid for c in store._pool._idle]  # type: ignore[attr-defined]
        with psycopg.connect(store.dsn, autocommit=True) as admin:  # type: ignore[attr-defined]
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return len(pids)
    if kind == "MySQLStore":
        import pymysql

        ids = [c.thread_id() for c in store._pool._idle]  # type: ignore[attr-defined]
        admin = pymysql.connect(**{**store._connect_args, "client_flag": 0})  # type: ignore[attr-defined]
        try:
            with admin.cursor() as cur:
                for conn_id in ids:
                    cur.execute("KILL %s", (conn_id,))
        finally:
            admin.close()
        return len(ids)
    client: Any = store.client  # type: ignore[attr-defined]
    admin = type(client).from_url(store.url.split("?")[0])
    killed = 0
    for entry in admin.client_list():
        if entry.get("name") == "idemlint":
            admin.client_kill_filter(_id=entry["id"])
            killed += 1
    admin.close()
    return killed


def test_connection_killed_while_running_does_not_lose_the_result(store: Store) -> None:
    runs: list[int] = []
    killed: list[int] = []

    @idempotent("conn:{n}", store=store)
    def job(n: int) -> dict[str, int]:
        runs.append(n)
        killed.append(kill_connections(store))
        return {"n": n}

    outcome = job.call_detailed(1)
    assert killed[0] >= 1  # there was a live connection, and it is gone
    assert outcome.replayed is False and outcome.result == {"n": 1}
    row = store.get("conn:1")
    assert row is not None and row.status == "completed"
    kill_connections(store)
    assert job.call_detailed(1).replayed is True  # and the store recovers again for the replay
    assert runs == [1]


def test_holder_lost_with_its_connection_leaves_no_zombie_past_the_lease(store_url: str) -> None:
    holder = open_store(store_url)
    # 2 s: the other store's first connection (MariaDB, a loaded machine) must not outlast it
    claim = holder.claim("zombie", "fp", lease=2.0, ttl=60)
    assert isinstance(claim, Claimed)
    assert kill_connections(holder) >= 1  # the holder's process dies with its connection
    other = open_store(store_url)
    busy = other.claim("zombie", "fp", lease=30, ttl=60)
    assert isinstance(busy, InProgress)  # the claim outlived the connection, as it must
    time.sleep(busy.retry_after + 0.05)
    taken = other.claim("zombie", "fp", lease=30, ttl=60)
    assert isinstance(taken, Claimed) and taken.lease.epoch == 2 and taken.lease.kind == "takeover"
    other.complete(taken.lease, b"1", ttl=60)
    other.close()
    holder.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/test",
        "mysql://root@127.0.0.1:1/test",
        "redis://127.0.0.1:1/0",
    ],
)
def test_unreachable_store_never_runs_the_function(url: str) -> None:
    runs: list[int] = []
    store = open_store(url, **({"connect_timeout": 1} if not url.startswith("redis") else {}))

    @idempotent("down:{n}", store=store)
    def job(n: int) -> int:
        runs.append(n)
        return n

    with pytest.raises(StoreError):
        job(1)
    assert runs == []

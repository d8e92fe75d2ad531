"""RQ glue: ``idempotent_job`` through a synchronous queue and a real SimpleWorker,
both on the local Redis.

RQ imports job functions by dotted name, so the jobs live at module level;
each test isolates itself with a uuid run id in the key, and the store (a
Redis store with its own key prefix) is dropped when the module ends. Queues, jobs and
workers are named by run_names.fresh, so the end-of-run check sees any RQ key left behind.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from run_names import fresh

from idemlint.runtime import open_store
from idemlint.runtime.integrations.rq import idempotent_job

rq = pytest.importorskip("rq")
redis = pytest.importorskip("redis")

STORE_URL = f"redis://127.0.0.1:6379/0?prefix={fresh('rq')}"
CALLS: list[tuple[str, int]] = []
HOLD = threading.Event()
HELD = threading.Event()


@idempotent_job(key="charge:{run}:{order_id}", store=STORE_URL)
def charge(run: str, order_id: int) -> dict[str, Any]:
    CALLS.append((run, order_id))
    return {"order": order_id, "run": run}


@idempotent_job(store=STORE_URL)  # the default key: task name and RQ job id
def ship(run: str, order_id: int) -> int:
    CALLS.append((run, order_id))
    return len(CALLS)


@idempotent_job(key="slow:{run}", store=STORE_URL, lease=30)
def slow(run: str) -> str:
    CALLS.append((run, 0))
    HELD.set()
    HOLD.wait(10)
    return "done"


@pytest.fixture(scope="module")
def connection(redis_url: str) -> Iterator[Any]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    with open_store(STORE_URL) as store:
        store.drop_schema()
    conn.close()


def forget(queue: Any) -> None:
    """Delete the queue and everything RQ keeps for it: ``queue.delete`` leaves the job
    registries (finished, failed, ...) and the result streams behind, without a ttl."""
    conn = queue.connection
    registries = [
        queue.started_job_registry,
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.deferred_job_registry,
        queue.scheduled_job_registry,
        queue.canceled_job_registry,
    ]
    ids = set(queue.get_job_ids())
    for registry in registries:
        ids.update(registry.get_job_ids())
    queue.delete(delete_jobs=True)
    names = [f"rq:{kind}:{job_id}" for job_id in ids for kind in ("job", "results")]
    names += [registry.key for registry in registries]
    names += [name for name in conn.scan_iter(match=f"rq:*:{queue.name}")]
    conn.delete(*names)


@pytest.fixture
def queue(connection: Any) -> Iterator[Any]:
    queue = rq.Queue(fresh("q"), connection=connection, is_async=False)
    yield queue
    forget(queue)


def test_duplicate_enqueue_runs_once(queue: Any) -> None:
    run = uuid.uuid4().hex
    first = queue.enqueue(charge, run, 7, job_id=fresh("j"))
    second = queue.enqueue(charge, run, 7, job_id=fresh("j"))
    assert first.id != second.id
    assert first.return_value() == second.return_value() == {"order": 7, "run": run}
    assert CALLS.count((run, 7)) == 1


def test_default_key_follows_the_job_id(queue: Any) -> None:
    run = uuid.uuid4().hex
    job_id = fresh("ship")
    assert queue.enqueue(ship, run, 1, job_id=job_id).return_value() == len(CALLS)
    count = CALLS.count((run, 1))
    queue.enqueue(ship, run, 1, job_id=job_id)  # the same job again: replayed
    assert CALLS.count((run, 1)) == count == 1
    queue.enqueue(ship, run, 1, job_id=fresh("j"))  # a new job id: runs
    assert CALLS.count((run, 1)) == 2


def test_in_progress_fails_the_job_for_rqs_retry(queue: Any) -> None:
    run = uuid.uuid4().hex
    HOLD.clear()
    HELD.clear()
    holder = threading.Thread(target=slow, args=(run,))  # a worker already running it
    holder.start()
    try:
        assert HELD.wait(10)
        job = queue.enqueue(slow, run, job_id=fresh("j"))
        assert job.is_failed
        assert "AlreadyInProgress" in (job.latest_result().exc_string or "")
    finally:
        HOLD.set()
        holder.join()
    assert queue.enqueue(slow, run, job_id=fresh("j")).return_value() == "done"  # the retry replays
    assert CALLS.count((run, 0)) == 1


def test_real_worker_runs_duplicates_once(connection: Any) -> None:
    run = uuid.uuid4().hex
    queue = rq.Queue(fresh("q"), connection=connection)
    worker = rq.SimpleWorker([queue], connection=connection, name=fresh("w"))
    try:
        jobs = [queue.enqueue(charge, run, 9, job_id=fresh("j")) for _ in range(3)]
        assert worker.work(burst=True)
        results = [job.return_value() for job in jobs]
        assert results == [{"order": 9, "run": run}] * 3
        assert CALLS.count((run, 9)) == 1
    finally:
        forget(queue)
        connection.delete(worker.key)  # it would expire on its own within a minute

"""arq and taskiq glue: arq through a real arq Worker on the local Redis, taskiq
through its InMemoryBroker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from idemlint.runtime import ConfigurationError, KeyBuildError
from idemlint.runtime.integrations.arq import idempotent_job
from idemlint.runtime.integrations.taskiq import IdempotencyMiddleware, idempotent_task

arq = pytest.importorskip("arq")
taskiq = pytest.importorskip("taskiq")


def test_arq_worker_runs_duplicates_once_via_retry(redis_url: str, sqlite_url: str) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    calls: list[int] = []
    queue = f"idemlint:{uuid.uuid4().hex[:12]}"

    @idempotent_job(key="charge:{order_id}", store=sqlite_url, lease=1.0)
    async def charge(ctx: dict[str, Any], order_id: int) -> dict[str, Any]:
        calls.append(order_id)
        await asyncio.sleep(0.3)  # long enough for the duplicate to meet the lease
        return {"order": order_id, "try": ctx["job_try"]}

    async def scenario() -> list[Any]:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        worker = Worker(
            functions=[func(charge, name="charge")],  # a local function: name it
            redis_pool=pool,
            queue_name=queue,
            burst=True,
            poll_delay=0.05,
            max_tries=10,
            handle_signals=False,
        )
        jobs = [await pool.enqueue_job("charge", 11, _queue_name=queue) for _ in range(2)]
        try:
            await worker.main()
            results = [await job.result(timeout=10) for job in jobs if job is not None]
            assert worker.jobs_retried >= 1  # the duplicate met the lease and was deferred
            return results
        finally:
            keys = [k async for k in pool.scan_iter(match=f"*{queue}*")]
            for job in jobs:
                if job is not None:
                    keys += [f"arq:job:{job.job_id}", f"arq:result:{job.job_id}"]
                    keys += [f"arq:retry:{job.job_id}", f"arq:in-progress:{job.job_id}"]
            await pool.delete(*keys)
            await worker.close()

    results = asyncio.run(scenario())
    assert calls == [11]
    assert results == [{"order": 11, "try": 1}] * 2  # both the holder's result


def test_arq_job_called_with_a_ctx_dict(sqlite_url: str) -> None:
    calls: list[str] = []

    @idempotent_job(store=sqlite_url)  # keyed by arq's job id
    async def ship(ctx: dict[str, Any], sku: str) -> str:
        calls.append(sku)
        return sku.upper()

    async def scenario() -> None:
        assert await ship({"job_id": "j-1", "job_try": 1}, "abc") == "ABC"
        assert await ship({"job_id": "j-1", "job_try": 2}, "abc") == "ABC"  # a re-try: replay
        assert await ship({"job_id": "j-2", "job_try": 1}, "abc") == "ABC"
        with pytest.raises(KeyBuildError):
            await ship({}, "abc")

    asyncio.run(scenario())
    assert calls == ["abc", "abc"]
    with pytest.raises(ConfigurationError, match="coroutines"):
        idempotent_job()(lambda ctx: None)


def test_taskiq_in_memory_broker(sqlite_url: str) -> None:
    from taskiq import InMemoryBroker

    broker = InMemoryBroker().with_middlewares(IdempotencyMiddleware())
    calls: list[int] = []

    @broker.task
    @idempotent_task(key="charge:{order_id}", store=sqlite_url)
    async def charge(order_id: int) -> dict[str, int]:
        calls.append(order_id)
        await asyncio.sleep(0.2)
        return {"order": order_id}

    @broker.task
    @idempotent_task(store=sqlite_url)  # keyed by the task id
    async def ship(order_id: int) -> int:
        calls.append(order_id)
        return order_id

    async def scenario() -> None:
        await broker.startup()
        try:
            # Concurrent duplicates: the second waits for the first, then replays.
            a, b = await asyncio.gather(charge.kiq(1), charge.kiq(1))
            ra, rb = await asyncio.gather(a.wait_result(timeout=10), b.wait_result(timeout=10))
            assert not ra.is_err and not rb.is_err
            assert ra.return_value == rb.return_value == {"order": 1}

            for _ in range(2):  # the same message id twice: one run
                sent = await ship.kicker().with_task_id("fixed-id").kiq(2)
                assert (await sent.wait_result(timeout=10)).return_value == 2
            await (await ship.kiq(2)).wait_result(timeout=10)  # a new id: runs
        finally:
            await broker.shutdown()

    asyncio.run(scenario())
    assert calls == [1, 2, 2]

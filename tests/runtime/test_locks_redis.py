"""The fenced Redis lock against the real local Redis.

Each test uses its own key prefix (with a uuid) and deletes its keys after.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from run_names import fresh

from idemlint.runtime.errors import IdempotencyError, LeaseLost
from idemlint.runtime.locks import AsyncRedisLock, LockError, LockTimeout, RedisLock

redis = pytest.importorskip("redis")

REDIS_URL = os.environ.get("IDEMLINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture
def client() -> Iterator[Any]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        _unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield client
    client.close()


@pytest.fixture
def prefix(client: Any) -> Iterator[str]:
    prefix = f"{fresh('lock')}:"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _wait_until_gone(client: Any, key: str) -> None:
    """Block until Redis has expired ``key`` (bounded, so a bug cannot hang the run)."""
    for _ in range(500):
        if not client.exists(key):
            return
        time.sleep(0.01)
    raise AssertionError(f"{key} never expired")


def test_tokens_rise_strictly_with_every_acquisition(client: Any, prefix: str) -> None:
    tokens = []
    for _ in range(5):
        with RedisLock(client, "job", prefix=prefix) as lock:
            assert lock.owned()
            tokens.append(lock.token)
        assert not lock.owned()
    assert tokens == sorted(set(tokens)) and len(tokens) == 5
    assert tokens[0] is not None and tokens[0] >= 1


def test_second_owner_cannot_take_a_held_lock(client: Any, prefix: str) -> None:
    first = RedisLock(client, "job", prefix=prefix)
    first.acquire()
    second = RedisLock(client, "job", prefix=prefix)
    with pytest.raises(LockTimeout):
        second.acquire(blocking=False)
    with pytest.raises(LockTimeout):
        second.acquire(timeout=0.05)
    assert second.token is None
    first.release()
    assert second.acquire(blocking=False) > (first.token or 0)


def test_stale_owner_cannot_release_or_extend_the_successors_lock(client: Any, prefix: str) -> None:
    stale = RedisLock(client, "job", ttl=0.1, prefix=prefix)
    old_token = stale.acquire()
    _wait_until_gone(client, stale.key)  # the stale holder "paused" past its TTL

    successor = RedisLock(client, "job", ttl=30, prefix=prefix)
    new_token = successor.acquire(blocking=False)
    assert new_token > old_token
    value_before = client.get(successor.key)

    stale_again = RedisLock(client, "job", ttl=0.1, prefix=prefix)
    stale_again.token, stale_again._owner = old_token, stale._owner  # the same stale holder
    with pytest.raises(LeaseLost) as lost:
        stale.extend(30)
    assert lost.value.epoch == old_token and isinstance(lost.value, IdempotencyError)
    with pytest.raises(LeaseLost):
        stale_again.release()

    assert client.get(successor.key) == value_before  # untouched
    assert client.pttl(successor.key) > 1000  # not shortened, not deleted
    assert successor.owned()
    successor.release()
    assert not client.exists(successor.key)


def test_context_exit_reports_a_lock_lost_during_the_block(client: Any, prefix: str) -> None:
    with pytest.raises(LeaseLost), RedisLock(client, "job", ttl=0.05, prefix=prefix) as lock:
        _wait_until_gone(client, lock.key)
    # A failing block keeps its own error; the lost lock does not mask it.
    with (
        pytest.raises(ZeroDivisionError),
        RedisLock(client, "job2", ttl=0.05, prefix=prefix) as lock,
    ):
        _wait_until_gone(client, lock.key)
        1 / 0  # noqa: B018


def test_expiry_frees_the_lock_for_a_waiter(client: Any, prefix: str) -> None:
    crashed = RedisLock(client, "job", ttl=0.2, prefix=prefix)
    crashed.acquire()  # and never releases: its process "died"
    waiter = RedisLock(client, "job", prefix=prefix)
    token = waiter.acquire(timeout=10)
    assert token == (crashed.token or 0) + 1
    waiter.release()


def test_extend_keeps_the_lock_alive(client: Any, prefix: str) -> None:
    lock = RedisLock(client, "job", ttl=0.3, prefix=prefix)
    lock.acquire()
    lock.extend(30)
    assert client.pttl(lock.key) > 1000
    with pytest.raises(LockTimeout):
        RedisLock(client, "job", prefix=prefix).acquire(blocking=False)
    lock.release()


def test_misuse_is_a_clear_error(client: Any, prefix: str) -> None:
    lock = RedisLock(client, "job", prefix=prefix)
    with pytest.raises(LockError, match="not held"):
        lock.release()
    with pytest.raises(LockError, match="not held"):
        lock.extend()
    lock.acquire()
    with pytest.raises(LockError, match="already held"):
        lock.acquire()
    lock.release()
    with pytest.raises(LockError):
        RedisLock(client, "", prefix=prefix)
    with pytest.raises(LockError):
        RedisLock(client, "job", ttl=0, prefix=prefix)


def _unsafe_increment(client: Any, key: str) -> None:
    """A read-modify-write that loses updates unless callers are mutually excluded."""
    value = int(client.get(key) or 0)
    time.sleep(0.002)
    client.set(key, value + 1)


def test_threads_are_mutually_excluded(client: Any, prefix: str) -> None:
    rounds, threads = 10, 8
    errors: list[BaseException] = []

    def worker() -> None:
        local = redis.Redis.from_url(REDIS_URL)
        try:
            for _ in range(rounds):
                with RedisLock(local, "counter", prefix=prefix) as lock:
                    _unsafe_increment(local, f"{prefix}value")
                    local.rpush(f"{prefix}tokens", lock.token or 0)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            local.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    assert int(client.get(f"{prefix}value")) == rounds * threads
    tokens = [int(t) for t in client.lrange(f"{prefix}tokens", 0, -1)]
    assert tokens == sorted(tokens) and len(set(tokens)) == rounds * threads


def _process_worker(prefix: str, rounds: int) -> None:
    local = redis.Redis.from_url(REDIS_URL)
    for _ in range(rounds):
        with RedisLock(local, "counter", prefix=prefix) as lock:
            _unsafe_increment(local, f"{prefix}value")
            local.rpush(f"{prefix}tokens", lock.token or 0)
    local.close()


def test_processes_are_mutually_excluded_and_tokens_rise(client: Any, prefix: str) -> None:
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    rounds, procs = 8, 4
    children = [
        context.Process(target=_process_worker, args=(prefix, rounds)) for _ in range(procs)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0] * procs
    assert int(client.get(f"{prefix}value")) == rounds * procs
    tokens = [int(t) for t in client.lrange(f"{prefix}tokens", 0, -1)]
    # Pushed under the lock, so list order is acquisition order.
    assert tokens == sorted(tokens) and len(set(tokens)) == rounds * procs


def test_async_lock_fences_and_excludes(prefix: str) -> None:
    import redis.asyncio as aioredis

    async def scenario() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            _unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
        try:
            tokens: list[int] = []

            async def worker() -> None:
                for _ in range(5):
                    async with AsyncRedisLock(client, "a", prefix=prefix) as lock:
                        value = int(await client.get(f"{prefix}v") or 0)
                        await asyncio.sleep(0.001)
                        await client.set(f"{prefix}v", value + 1)
                        tokens.append(lock.token or 0)

            await asyncio.gather(*(worker() for _ in range(4)))
            assert int(await client.get(f"{prefix}v")) == 20
            assert tokens == sorted(tokens) and len(set(tokens)) == 20

            stale = AsyncRedisLock(client, "b", ttl=0.05, prefix=prefix)
            await stale.acquire()
            other = AsyncRedisLock(client, "b", prefix=prefix)
            await other.acquire(timeout=10)  # waits out the stale holder's TTL
            twin = AsyncRedisLock(client, "b", prefix=prefix)  # the same stale holder
            twin.token, twin._owner = stale.token, stale._owner
            with pytest.raises(LeaseLost):
                await stale.extend()
            assert stale.token is None  # a lost lock is no longer held
            with pytest.raises(LeaseLost):
                await twin.release()
            assert await client.exists(other.key)
            assert other.token is not None and other.token > 1
            await other.release()
            with pytest.raises(LockTimeout):
                held = AsyncRedisLock(client, "c", prefix=prefix)
                await held.acquire()
                await AsyncRedisLock(client, "c", prefix=prefix).acquire(blocking=False)
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(scenario())

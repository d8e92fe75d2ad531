"""The Redis store and RedisLock on a real Redis Cluster (3 masters, 3 replicas) that this
module starts from the local redis-server, on free ports, and stops by pid.

Races and replays must hold exactly as on one Redis; through a failover (a master
SIGKILLed, its replica promoted) a job either runs once or fails with a clear
StoreError, never runs a second time silently.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cluster import Cluster, start_cluster
from _spawn import finish, spawn, tally, wait_for_lines

from idemlint.runtime import (
    ConfigurationError,
    RedisLock,
    StoreError,
    idempotent,
    open_store,
    step,
)
from idemlint.runtime.stores.redis import RedisStore

pytest.importorskip("redis")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module (started once, about 2 s); the failover test leaves it
    healthy again (the killed master rejoins as a replica)."""
    started = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def url(cluster: Cluster) -> Iterator[str]:
    """The cluster's store URL with a key prefix of this test's own; its keys deleted after."""
    prefix = f"c{uuid.uuid4().hex[:10]}"
    yield f"{cluster.url}?prefix={prefix}"
    store = open_store(f"{cluster.url}?prefix={prefix}")
    store.drop_schema()
    store.close()


def test_the_url_opens_a_cluster_store_whose_keys_share_a_slot(url: str, cluster: Cluster) -> None:
    store = open_store(url)
    assert isinstance(store, RedisStore) and store.cluster and store.wait_replicas == 1
    assert store.url.startswith("redis+cluster://127.0.0.1:")
    from redis.cluster import key_slot

    for key in ("charge:42", "a}b", "{x}y", "ünïcode"):
        record, steps = store._keys(key)
        lock = RedisLock(store.client, key)
        assert key_slot(record.encode()) == key_slot(steps.encode()) == key_slot(lock.key.encode())
        assert key_slot(lock.key.encode()) == key_slot(lock.fence_key.encode())
    with pytest.raises(ConfigurationError, match="only database 0"):
        open_store(cluster.url + "/3")
    with pytest.raises(ConfigurationError, match="wait_replicas"):
        open_store(url + "&wait_replicas=-1")
    store.close()


def test_replays_steps_and_fencing_hold(url: str) -> None:
    store = open_store(url)
    effects: list[str] = []
    crash = {"armed": True}

    @idempotent("order:{n}", store=store)
    def fulfil(n: int) -> list[Any]:
        first = step("charge", lambda: effects.append(f"charge {n}") or f"ch_{n}")
        if crash["armed"]:
            raise RuntimeError("after the charge")
        second = step("email", lambda: effects.append(f"email {n}") or "sent")
        return [first, second]

    for n in range(30):  # keys spread over the three masters
        with pytest.raises(RuntimeError):
            fulfil(n)
    crash["armed"] = False
    for n in range(30):
        outcome = fulfil.call_detailed(n)
        assert outcome.result == [f"ch_{n}", "sent"] and outcome.epoch == 2
        assert fulfil.call_detailed(n).replayed
    assert sorted(effects) == sorted(
        [f"charge {n}" for n in range(30)] + [f"email {n}" for n in range(30)]
    )
    # a holder fenced off by a takeover cannot complete
    lease = store.claim("fenced", "fp", lease=0.2, ttl=60)
    time.sleep(0.3)
    successor = store.claim("fenced", "fp", lease=30, ttl=60)
    from idemlint.runtime import LeaseLost
    from idemlint.runtime.stores.base import Claimed

    assert isinstance(lease, Claimed) and isinstance(successor, Claimed)
    with pytest.raises(LeaseLost):
        store.complete(lease.lease, b"stale", ttl=60)
    store.complete(successor.lease, b"fresh", ttl=60)
    row = store.get("fenced")
    assert row is not None and (row.result, row.epoch) == (b"fresh", 2)
    assert store.purge_expired() == 0
    store.close()


def test_one_key_raced_by_processes_runs_once(url: str, tmp_path: Path) -> None:
    out, go = tmp_path / "out.log", tmp_path / "go"
    procs = [spawn("race", url, out, go, 4, 5.0, "race-key") for _ in range(4)]
    wait_for_lines(out, "READY", 4)
    go.touch()
    finish(procs)
    counts = tally(out)
    assert counts[("EXEC", "race-key")] == 1 and counts[("RAN", "race-key")] == 1
    assert counts[("REPLAY", "race-key")] + counts[("IN_PROGRESS", "race-key")] == 15


def test_many_keys_across_slots_each_run_once(url: str, tmp_path: Path) -> None:
    out, go = tmp_path / "out.log", tmp_path / "go"
    procs = [spawn("keys", url, out, go, 4, 5.0, "many", 100) for _ in range(4)]
    wait_for_lines(out, "READY", 4)
    go.touch()
    finish(procs)
    counts = tally(out)
    for i in range(100):
        assert counts[("EXEC", f"many:{i}")] == 1, i
        assert counts[("RAN", f"many:{i}")] == 1, i


def test_redis_lock_excludes_and_its_tokens_rise(cluster: Cluster) -> None:
    client = cluster.client()
    name = f"lock-{uuid.uuid4().hex[:8]}"
    inside: list[int] = []
    overlaps: list[int] = []
    tokens: list[int] = []
    guard = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            with RedisLock(client, name, ttl=5) as lock:
                with guard:
                    inside.append(1)
                    if len(inside) > 1:
                        overlaps.append(1)
                    tokens.append(int(lock.token or 0))
                time.sleep(0.002)
                with guard:
                    inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert overlaps == [] and len(tokens) == 20
    assert sorted(tokens) == list(range(1, 21))
    client.delete(f"idemlint:lock:{{{name}}}:fence")
    client.close()


@pytest.mark.parametrize("back_within_lease", [True, False])
def test_failover_runs_once_or_fails_clearly(
    cluster: Cluster, url: str, back_within_lease: bool
) -> None:
    """The master of the job's key is SIGKILLed while the job runs; its replica is promoted.

    The claim was confirmed on the replica (WAIT) before the job ran, so the promoted
    node knows the key is held. The completion cannot be confirmed while the new master
    has no replica: it fails with a transient StoreError and is tried again within the
    lease. When the old master comes back within the lease (it rejoins as the new
    master's replica), a later try is confirmed: the job ran once, and a later call
    replays it. When it does not, the call fails with a StoreError that says the job is
    not marked done; only after that may a retry run it again. Never a silent second run.
    """
    store = open_store(url, timeout=2.0)
    key = f"failover-{back_within_lease}"
    runs: list[int] = []
    victim = cluster.master_of(store._keys(key)[0])
    lease = 20.0 if back_within_lease else 4.0
    back_after = 3 * cluster_node_timeout() if back_within_lease else lease + 1
    restarted = threading.Event()

    def bring_back() -> None:
        time.sleep(back_after)
        cluster.restart(victim)
        restarted.set()

    @idempotent("{key}", store=store, lease=lease)
    def job(key: str) -> str:
        runs.append(1)
        cluster.kill(victim)
        threading.Thread(target=bring_back, daemon=True).start()
        return "done"

    errors: list[StoreError] = []
    try:
        outcome = job.call_detailed(key)
        assert outcome.result == "done" and not outcome.replayed
    except StoreError as exc:  # loud, and the job is not marked done
        errors.append(exc)
        assert "not marked done" in str(exc)
    finally:  # whatever failed, the node is back (and stopped with the cluster) before we leave
        assert restarted.wait(30)
    cluster.wait_healthy()
    assert cluster.master_of(store._keys(key)[0]) != victim  # the replica took over
    if back_within_lease:
        assert errors == [] and runs == [1]
        later = job.call_detailed(key)
        assert later.replayed and later.result == "done" and runs == [1]  # no second run
    else:
        assert len(errors) == 1 and runs == [1]
        # the new master kept the unconfirmed completion (the old one rejoined as its
        # replica): the retry replays it; had a failover lost it, the retry would run the
        # job again, after the StoreError said it was not reported done
        row = store.get(key)
        assert row is not None
        later = job.call_detailed(key)
        assert later.replayed == (row.status == "completed")
        assert runs == ([1] if later.replayed else [1, 1])
    store.close()


def cluster_node_timeout() -> float:
    from _cluster import NODE_TIMEOUT_MS

    return NODE_TIMEOUT_MS / 1000

"""The Redis store's fast claim (``SET NX GET``) against the real local Redis.

A first claim with a ttl is one plain ``SET``: the record it writes has no
lease time in it (the lease end is implied by the key's expiry, on the
server's clock), and it cannot delete a steps hash left over from an earlier
life of the key. These tests pin that the fast path keeps every guarantee of
the script path: which commands go to the server, the lease and ttl seen by
the server's clock, takeover and fencing, steps of the right run only, a
lost reply, servers without ``NX GET``, and the record state machine.

Each test uses its own key prefix (a uuid) and drops its keys afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from idemlint.runtime import KeyReuseError, LeaseLost, StoreError, idempotent, open_store
from idemlint.runtime.stores._redis_record import fresh
from idemlint.runtime.stores.base import Claimed, Completed, InProgress
from idemlint.runtime.stores.redis import RedisStore  # importable without redis-py installed

pytest.importorskip("redis")


@pytest.fixture
def url(redis_url: str) -> Iterator[str]:
    from _store_urls import unique_store_url

    unique = unique_store_url(redis_url)
    yield unique
    store = open_store(unique, create=False)
    try:
        store.drop_schema()
    finally:
        store.close()


@pytest.fixture
def store(url: str) -> Iterator[RedisStore]:
    opened = open_store(url)
    assert isinstance(opened, RedisStore)
    opened.create_schema()  # scripts loaded up front, so the command lists below are exact
    try:
        yield opened
    finally:
        opened.close()


class Commands:
    """Records the command names this store's own client sends (the server still answers)."""

    def __init__(self, store: RedisStore) -> None:
        self.names: list[str] = []
        send = store.client.execute_command

        def spy(*args: Any, **options: Any) -> Any:
            self.names.append(str(args[0]).upper())
            return send(*args, **options)

        store.client.execute_command = spy  # type: ignore[method-assign]

    def take(self) -> list[str]:
        names, self.names = self.names, []
        return names


def test_first_call_is_a_plain_set_then_one_script_and_a_replay_one_set(
    store: RedisStore,
) -> None:
    seen = Commands(store)
    held = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(held, Claimed)
    assert (held.lease.epoch, held.lease.run, held.lease.kind) == (1, 1, "new")
    assert seen.take() == ["SET"]
    store.complete(held.lease, b"result", ttl=60.0)
    assert seen.take() == ["EVALSHA"]
    done = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(done, Completed) and done.result == b"result" and done.epoch == 1
    assert seen.take() == ["SET"]
    with pytest.raises(KeyReuseError):
        store.claim("k", "other", lease=30.0, ttl=60.0)
    assert seen.take() == ["SET"]  # reuse is decided from the record the SET sent back


def test_a_key_in_progress_or_released_goes_to_the_script(store: RedisStore) -> None:
    held = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(held, Claimed)
    seen = Commands(store)
    busy = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(busy, InProgress) and busy.epoch == 1
    assert seen.take() == ["SET", "EVALSHA"]  # liveness needs the server's clock
    store.release(held.lease, ttl=60.0)
    seen.take()
    retry = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(retry, Claimed)
    assert (retry.lease.epoch, retry.lease.run, retry.lease.kind) == (2, 1, "retry")
    assert seen.take() == ["SET", "EVALSHA"]


def test_claims_without_a_ttl_use_the_script_alone(store: RedisStore) -> None:
    seen = Commands(store)
    held = store.claim("forever", "fp", lease=30.0, ttl=None)
    assert isinstance(held, Claimed) and held.lease.epoch == 1
    assert seen.take() == ["EVALSHA"]
    row = store.get("forever")
    assert row is not None and row.expires_at is None and row.lease_expires > row.now


def test_the_implied_lease_ends_by_the_servers_clock_and_the_record_keeps_its_ttl(
    store: RedisStore,
) -> None:
    held = store.claim("k", "fp", lease=0.3, ttl=60.0)
    assert isinstance(held, Claimed)
    row = store.get("k")
    assert row is not None and row.status == "in_progress" and row.claim_kind == "new"
    assert 0 < row.lease_expires - row.now <= 0.3 + 1e-6  # whole server ms, as floats
    assert row.expires_at is not None
    assert row.expires_at - row.lease_expires == pytest.approx(60.0, abs=0.002)
    busy = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(busy, InProgress) and 0 < busy.retry_after <= 0.3  # exact: whole ms
    time.sleep(busy.retry_after + 0.05)
    taken = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(taken, Claimed)
    assert (taken.lease.epoch, taken.lease.run, taken.lease.kind) == (2, 1, "takeover")
    for stale in (
        lambda: store.complete(held.lease, b"stale", ttl=60.0),
        lambda: store.heartbeat(held.lease),
        lambda: store.release(held.lease, ttl=60.0),
        lambda: store.save_step(held.lease, "s", b"stale"),
    ):
        with pytest.raises(LeaseLost):
            stale()
    row = store.get("k")
    assert row is not None
    assert (row.status, row.epoch, row.owner) == ("in_progress", 2, taken.lease.owner)
    assert store.load_steps(taken.lease) == {}
    store.complete(taken.lease, b"fresh", ttl=60.0)
    done = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(done, Completed) and done.result == b"fresh" and done.epoch == 2
    row = store.get("k")
    assert row is not None and row.expires_at is not None
    assert 59.0 < row.expires_at - row.now <= 60.0 + 1e-6  # ttl from completion, not the claim


def test_heartbeat_writes_the_lease_and_never_shortens_the_record(store: RedisStore) -> None:
    held = store.claim("k", "fp", lease=30.0, ttl=10.0)
    assert isinstance(held, Claimed)
    before = store.get("k")
    assert before is not None and before.expires_at is not None
    store.heartbeat(held.lease, lease_seconds=1.0)  # shorter than what is left
    row = store.get("k")
    assert row is not None and row.expires_at is not None
    assert 0 < row.lease_expires - row.now <= 1.0 + 1e-6
    assert row.expires_at == pytest.approx(before.expires_at, abs=0.002)
    store.heartbeat(held.lease, lease_seconds=120.0)  # longer: the record follows
    row = store.get("k")
    assert row is not None and row.expires_at is not None
    assert row.expires_at - row.lease_expires == pytest.approx(10.0, abs=0.002)
    assert isinstance(store.claim("k", "fp", lease=30.0, ttl=10.0), InProgress)


def test_a_leftover_steps_hash_never_reaches_a_new_run(store: RedisStore) -> None:
    """A steps hash can outlive its record (deleted or evicted on its own).

    The plain SET cannot drop it, so the record says its run has not looked
    at the hash yet: it reads as empty, and the first step write or the
    next claim deletes it.
    """
    steps_key = f"{store.prefix}:s:k"
    store.client.hset(steps_key, mapping={"1:charge": b"stale", "1:email": b"stale"})
    held = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(held, Claimed) and held.lease.run == 1
    assert store.load_steps(held.lease) == {}
    store.save_step(held.lease, "charge", b"ours")
    assert store.load_steps(held.lease) == {"charge": b"ours"}
    store.release(held.lease, ttl=60.0)
    retry = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(retry, Claimed) and retry.lease.kind == "retry"
    assert store.load_steps(retry.lease) == {"charge": b"ours"}  # the run's own step survives
    assert store.client.pttl(steps_key) > 0  # and expires with the record


def test_a_leftover_steps_hash_is_dropped_by_a_takeover(store: RedisStore) -> None:
    steps_key = f"{store.prefix}:s:k"
    store.client.hset(steps_key, "1:charge", b"stale")
    held = store.claim("k", "fp", lease=0.2, ttl=60.0)
    assert isinstance(held, Claimed)
    time.sleep(0.3)  # the holder crashed before any step
    taken = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(taken, Claimed) and taken.lease.kind == "takeover"
    assert store.client.exists(steps_key) == 0
    assert store.load_steps(taken.lease) == {}


def test_purge_sweeps_steps_hashes_whose_record_is_gone(store: RedisStore) -> None:
    held = store.claim("live", "fp", lease=30.0, ttl=60.0)
    assert isinstance(held, Claimed)
    store.save_step(held.lease, "a", b"1")
    store.client.hset(f"{store.prefix}:s:orphan", "1:a", b"x")
    assert store.purge_expired() == 1
    assert store.client.exists(f"{store.prefix}:s:orphan") == 0
    assert store.load_steps(held.lease) == {"a": b"1"}


def test_a_claim_whose_reply_was_lost_recognises_its_own_record(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = "ab" * 16
    # the first SET reached the server, its reply did not; the claim is sent again
    store.client.set(f"{store.prefix}:r:k", fresh(owner, b"fp", 60_000), px=90_000, nx=True)
    monkeypatch.setattr("idemlint.runtime.stores.redis.secrets.token_hex", lambda n: owner)
    again = store.claim("k", "fp", lease=30.0, ttl=60.0)
    assert isinstance(again, Claimed)
    assert (again.lease.owner, again.lease.epoch, again.lease.kind) == (owner, 1, "new")
    store.complete(again.lease, b"1", ttl=60.0)
    store.complete(again.lease, b"1", ttl=60.0)  # and so may the completion


def test_a_server_without_nx_get_is_served_by_the_script(redis_url: str, store: RedisStore) -> None:
    class OldServerStore(RedisStore):
        # an option the server rejects with "syntax error", as Redis < 7.0 rejects NX + GET
        claim_set_options = ("NX", "GET", "NOT-BEFORE-7.0")

    store = OldServerStore(redis_url, prefix=store.prefix)  # the fixture drops the prefix
    store.create_schema()
    try:
        before = store.stats.round_trips
        held = store.claim("k", "fp", lease=30.0, ttl=60.0)
        assert isinstance(held, Claimed) and held.lease.epoch == 1
        assert store.fast_claim is False
        assert store.stats.round_trips - before == 2  # once: the rejected SET, then the script
        store.complete(held.lease, b"1", ttl=60.0)
        before = store.stats.round_trips
        assert isinstance(store.claim("k", "fp", lease=30.0, ttl=60.0), Completed)
        assert store.stats.round_trips - before == 1
    finally:
        store.close()


def test_a_foreign_value_under_a_record_key_is_a_clear_error(store: RedisStore) -> None:
    store.client.hset(f"{store.prefix}:r:hash", "status", "completed")
    store.client.set(f"{store.prefix}:r:text", b"not a record")
    with pytest.raises(StoreError):
        store.claim("hash", "fp", lease=30.0, ttl=60.0)
    with pytest.raises(StoreError, match="unreadable"):
        store.claim("text", "fp", lease=30.0, ttl=60.0)


def test_decorated_calls_on_the_fast_path(store: RedisStore) -> None:
    runs: list[int] = []

    @idempotent("order:{n}", store=store, ttl=60.0)
    def job(n: int) -> dict[str, int]:
        runs.append(n)
        return {"n": n}

    first = job.call_detailed(7)
    assert first.replayed is False and first.result == {"n": 7} and first.epoch == 1
    again = job.call_detailed(7)
    assert again.replayed is True and again.result == {"n": 7}
    assert runs == [7]


@pytest.mark.parametrize("fast_claim", [True, False], ids=["set-nx", "script"])
def test_record_state_machine_with_a_ttl(
    redis_url: str, store: RedisStore, fast_claim: bool
) -> None:
    """The shared state machine, with claims that carry a ttl (so leases are implied).

    The shared test claims with ``ttl=None``, which the script serves; here
    every claim has a ttl, on the fast path and on the script alone.
    """
    from hypothesis import HealthCheck, settings
    from test_state_machine import build_machine

    class WithTTL(RedisStore):
        def claim(self, key: str, fingerprint: str, *, lease: float, ttl: float | None) -> Any:
            return super().claim(key, fingerprint, lease=lease, ttl=600.0)

    # on the fixture's prefix, which the fixture drops afterwards
    ttl_store = WithTTL(redis_url, prefix=store.prefix, fast_claim=fast_claim)
    machine = build_machine(ttl_store)
    machine.TestCase.settings = settings(
        max_examples=15,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    try:
        machine.TestCase().runTest()
    finally:
        ttl_store.close()


@pytest.mark.parametrize("ttl", [60.0, None], ids=["set-nx", "script"])
def test_fingerprints_are_length_delimited_not_parsed(store: RedisStore, ttl: float | None) -> None:
    odd = "a|b|1|é"  # separators and non-ASCII: the record's fields must not shift
    held = store.claim("k", odd, lease=30.0, ttl=ttl)
    assert isinstance(held, Claimed)
    store.complete(held.lease, b"x|y", ttl=ttl)
    done = store.claim("k", odd, lease=30.0, ttl=ttl)
    assert isinstance(done, Completed) and done.result == b"x|y"
    with pytest.raises(KeyReuseError) as info:
        store.claim("k", "a|b|1|e", lease=30.0, ttl=ttl)
    assert info.value.stored_fingerprint == odd
    row = store.get("k")
    assert row is not None and row.fingerprint == odd and row.result == b"x|y"

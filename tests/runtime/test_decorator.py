"""``@idempotent`` semantics: replay, reuse, in-progress policies, failure, keys.

The semantics that depend on the store run on all four backends
(``store`` fixture); pure decorator behaviour runs on in-memory SQLite.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from typing import Any

import pytest

from idemlint.runtime import (
    AlreadyInProgress,
    ConfigurationError,
    JsonSerializer,
    KeyBuildError,
    KeyReuseError,
    LeaseLost,
    Outcome,
    ResultTooLarge,
    RuntimeEvent,
    SerializationError,
    Store,
    add_metrics_hook,
    current_execution,
    idempotent,
    open_store,
)


@pytest.fixture
def mem() -> Store:
    return open_store("sqlite://")


def test_first_call_runs_then_replays_with_the_stored_result(store: Store) -> None:
    runs: list[int] = []

    @idempotent("charge:{order_id}", store=store)
    def charge(order_id: int, amount: int) -> dict[str, Any]:
        runs.append(order_id)
        return {"order": order_id, "amount": amount, "items": (1, 2)}

    first = charge.call_detailed(7, 100)
    assert first == Outcome({"order": 7, "amount": 100, "items": (1, 2)}, False, 1, "charge:7")
    again = charge.call_detailed(7, 100)
    assert again.replayed is True and again.epoch == 1
    assert again.result == {"order": 7, "amount": 100, "items": [1, 2]}  # JSON-shaped
    assert charge(7, amount=100) == again.result
    assert runs == [7]


def test_same_key_different_arguments_raises_key_reuse(store: Store) -> None:
    @idempotent("charge:{order_id}", store=store)
    def charge(order_id: int, amount: int) -> int:
        return amount

    assert charge(1, 100) == 100
    with pytest.raises(KeyReuseError) as info:
        charge(1, 999)
    assert info.value.key == "charge:1"


def test_failure_releases_the_claim_and_is_never_cached(store: Store) -> None:
    attempts: list[int] = []

    @idempotent("job:{n}", store=store)
    def job(n: int) -> int:
        attempts.append(n)
        if len(attempts) == 1:
            raise RuntimeError("flaky")
        return n * 10

    with pytest.raises(RuntimeError, match="flaky"):
        job(3)
    row = store.get("job:3")
    assert row is not None and row.status == "released" and row.result is None
    outcome = job.call_detailed(3)
    assert outcome.replayed is False and outcome.result == 30 and outcome.epoch == 2
    assert job.call_detailed(3).replayed is True
    assert attempts == [3, 3]


def test_in_progress_raise_wait_and_skip(store: Store) -> None:
    inside = threading.Event()
    proceed = threading.Event()

    def slow(n: int) -> str:
        inside.set()
        proceed.wait(10)
        return f"done {n}"

    holder = idempotent("slow:{n}", store=store, lease=5.0)(slow)
    raiser = idempotent("slow:{n}", store=store, lease=5.0)(slow)
    skipper = idempotent("slow:{n}", store=store, on_in_progress="skip")(slow)
    waiter = idempotent("slow:{n}", store=store, on_in_progress="wait", wait_timeout=10)(slow)
    results: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: results.update(holder=holder(1)))
    thread.start()
    assert inside.wait(10)
    with pytest.raises(AlreadyInProgress) as info:
        raiser(1)
    assert info.value.key == "slow:1" and 0 < (info.value.retry_after or 0) <= 5.0
    skipped = skipper.call_detailed(1)
    assert skipped.skipped is True and skipped.result is None
    wait_thread = threading.Thread(target=lambda: results.update(waiter=waiter.call_detailed(1)))
    wait_thread.start()
    time.sleep(0.2)
    proceed.set()
    thread.join(10)
    wait_thread.join(10)
    assert results["holder"] == "done 1"
    assert results["waiter"].replayed is True and results["waiter"].result == "done 1"


def test_wait_times_out_with_already_in_progress(mem: Store) -> None:
    held = mem.claim("w:1", "-", lease=30, ttl=None)
    waiter = idempotent(
        "w:{n}", store=mem, on_in_progress="wait", wait_timeout=0.2, fingerprint=False
    )(lambda n: n)
    started = time.monotonic()
    with pytest.raises(AlreadyInProgress):
        waiter(1)
    assert time.monotonic() - started >= 0.2
    assert held is not None


def test_wait_takes_over_once_a_crashed_holders_lease_expires(store: Store) -> None:
    store.claim("crashed:1", "-", lease=0.3, ttl=None)  # a holder that never comes back

    @idempotent(
        "crashed:{n}", store=store, on_in_progress="wait", wait_timeout=5, fingerprint=False
    )
    def job(n: int) -> int:
        execution = current_execution()
        assert execution is not None
        return execution.epoch

    outcome = job.call_detailed(1)
    assert outcome.replayed is False and outcome.result == 2


def test_stale_holder_cannot_complete_after_takeover(store: Store) -> None:
    inside = threading.Event()
    release = threading.Event()

    @idempotent("stall:{n}", store=store, lease=0.3)
    def stalls(n: int) -> str:
        inside.set()
        release.wait(10)
        return "stale result"

    @idempotent("stall:{n}", store=store, lease=10)
    def successor(n: int) -> str:
        return "successor result"

    errors: list[BaseException] = []

    def run_stale() -> None:
        try:
            stalls(1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run_stale)
    thread.start()
    assert inside.wait(10)
    time.sleep(0.45)
    taken = successor.call_detailed(1)
    assert taken.result == "successor result" and taken.epoch == 2
    release.set()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], LeaseLost)
    row = store.get("stall:1")
    assert row is not None and row.epoch == 2 and row.status == "completed"
    assert successor.call_detailed(1) == Outcome("successor result", True, 2, "stall:1")


def test_key_that_cannot_be_built_never_runs(mem: Store) -> None:
    runs: list[object] = []

    @idempotent("order:{order.id}", store=mem)
    def ship(order: object) -> None:
        runs.append(order)

    with pytest.raises(KeyBuildError, match="cannot build the idempotency key"):
        ship(object())
    with pytest.raises(KeyBuildError):
        ship()  # type: ignore[call-arg]

    @idempotent(lambda order: "", store=mem)
    def empty_key(order: object) -> None:
        runs.append(order)

    with pytest.raises(KeyBuildError, match="empty"):
        empty_key(1)

    @idempotent("x:{v}", store=mem)
    def long_key(v: str) -> None:
        runs.append(v)

    with pytest.raises(KeyBuildError, match="limit is 255"):
        long_key("v" * 300)
    assert runs == []


def test_key_template_is_checked_at_decoration_time(mem: Store) -> None:
    with pytest.raises(ConfigurationError, match="not a parameter"):
        idempotent("charge:{order}", store=mem)(lambda order_id: order_id)
    with pytest.raises(ConfigurationError, match="positional"):
        idempotent("charge:{0}", store=mem)(lambda order_id: order_id)
    with pytest.raises(ConfigurationError, match="on_in_progress"):
        idempotent("k", store=mem, on_in_progress="ignore")(lambda: 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="lease"):
        idempotent("k", store=mem, lease=0)(lambda: 1)


def test_attribute_and_callable_keys(mem: Store) -> None:
    @dataclasses.dataclass
    class Order:
        id: int
        total: int

    @idempotent("ship:{order.id}", store=mem)
    def ship(order: Order) -> int:
        return order.total

    @idempotent(lambda order: f"bill:{order.id}", store=mem)
    def bill(order: Order) -> int:
        return order.total

    assert ship.key_for(Order(4, 10)) == "ship:4"
    assert ship(Order(4, 10)) == 10 and ship.call_detailed(Order(4, 10)).replayed
    with pytest.raises(KeyReuseError):
        ship(Order(4, 11))  # the dataclass fields are fingerprinted
    assert bill(Order(5, 1)) == 1 and bill.call_detailed(Order(5, 1)).replayed


def test_unfingerprintable_argument_is_a_clear_error_and_fingerprint_option(mem: Store) -> None:
    class Session:
        pass

    @idempotent("job:{n}", store=mem)
    def job(n: int, session: Session) -> int:
        return n

    with pytest.raises(KeyBuildError, match="fingerprint=") as info:
        job(1, Session())
    assert "Session" in str(info.value)

    @idempotent("job2:{n}", store=mem, fingerprint=["n"])
    def job2(n: int, session: Session) -> int:
        return n

    assert job2(1, Session()) == 1
    assert job2.call_detailed(1, Session()).replayed  # another session, same request


def test_methods_are_supported_and_self_is_not_fingerprinted(mem: Store) -> None:
    class Mailer:
        def __init__(self) -> None:
            self.sent: list[int] = []

        @idempotent("mail:{user_id}", store=mem)
        def send(self, user_id: int) -> int:
            self.sent.append(user_id)
            return user_id

    a, b = Mailer(), Mailer()
    assert a.send(1) == 1
    assert b.send.call_detailed(1).replayed
    assert a.sent == [1] and b.sent == []


def test_result_too_large_releases_the_claim(store: Store) -> None:
    @idempotent("big:{n}", store=store, max_result_bytes=100)
    def big(n: int) -> str:
        return "x" * n

    with pytest.raises(ResultTooLarge) as info:
        big(500)
    assert info.value.size > 100 and info.value.limit == 100
    row = store.get("big:500")
    assert row is not None and row.status == "released"
    assert big(50) == "x" * 50


def test_unserialisable_result_releases_and_custom_serializer(mem: Store) -> None:
    @idempotent("obj:{n}", store=mem)
    def obj(n: int) -> object:
        return {1, 2}

    with pytest.raises(SerializationError):
        obj(1)
    row = mem.get("obj:1")
    assert row is not None and row.status == "released"

    serializer = JsonSerializer(
        default=lambda v: {"__set__": sorted(v)},
        object_hook=lambda d: set(d["__set__"]) if "__set__" in d else d,
    )

    @idempotent("set:{n}", store=mem, serializer=serializer)
    def as_set(n: int) -> set[int]:
        return {n, n + 1}

    assert as_set(1) == {1, 2}
    assert as_set.call_detailed(1) == Outcome({1, 2}, True, 1, "set:1")


def test_on_replay_hook_metrics_hooks_and_logging(
    mem: Store, caplog: pytest.LogCaptureFixture
) -> None:
    replays: list[Outcome[Any]] = []
    local: list[RuntimeEvent] = []
    global_events: list[RuntimeEvent] = []
    remove = add_metrics_hook(global_events.append)

    def broken_hook(event: RuntimeEvent) -> None:
        raise ValueError("metrics down")

    try:

        @idempotent("h:{n}", store=mem, on_replay=replays.append, hooks=[local.append, broken_hook])
        def job(n: int) -> int:
            return n

        with caplog.at_level(logging.DEBUG, logger="idemlint.runtime"):
            job(1)
            job(1)
    finally:
        remove()
    assert [o.replayed for o in replays] == [True]
    assert [e.name for e in local] == ["claim", "complete", "replay"]
    assert [e.name for e in global_events] == ["claim", "complete", "replay"]
    assert all(e.key == "h:1" for e in local)
    messages = [r.getMessage() for r in caplog.records if r.name == "idemlint.runtime"]
    assert any(m.startswith("claim key='h:1'") for m in messages)
    assert any(m.startswith("replay key='h:1'") for m in messages)
    assert any("metrics hook" in m for m in messages)  # a failing hook is logged, not raised


def test_takeover_and_fence_rejection_are_logged(
    mem: Store, caplog: pytest.LogCaptureFixture
) -> None:
    old = mem.claim("t:1", "-", lease=0.05, ttl=None)
    time.sleep(0.1)

    @idempotent("t:{n}", store=mem, fingerprint=False)
    def job(n: int) -> int:
        return n

    with caplog.at_level(logging.INFO, logger="idemlint.runtime"):
        job(1)
    takeovers = [r for r in caplog.records if getattr(r, "idempotency_event", "") == "takeover"]
    assert len(takeovers) == 1 and takeovers[0].levelno == logging.WARNING
    assert takeovers[0].idempotency_key == "t:1"  # type: ignore[attr-defined]
    assert old is not None


def test_current_execution_and_heartbeat(store: Store) -> None:
    seen: dict[str, Any] = {}

    @idempotent("hb:{n}", store=store, lease=0.4)
    def long_job(n: int) -> int:
        execution = current_execution()
        assert execution is not None
        seen.update(key=execution.key, epoch=execution.epoch, replay=execution.is_replay)
        for _ in range(4):
            time.sleep(0.2)
            execution.heartbeat()
        return n

    assert current_execution() is None
    thread = threading.Thread(target=long_job, args=(1,))
    thread.start()
    time.sleep(0.6)  # past the 0.4 s lease, but heartbeats keep it
    with pytest.raises(AlreadyInProgress):
        idempotent("hb:{n}", store=store)(lambda n: n)(1)
    thread.join(10)
    assert seen == {"key": "hb:1", "epoch": 1, "replay": False}
    assert current_execution() is None


def test_automatic_heartbeat_keeps_a_long_function_leased(mem: Store) -> None:
    @idempotent("auto:{n}", store=mem, lease=0.3, heartbeat=True)
    def long_job(n: int) -> int:
        time.sleep(0.8)
        return n

    thread = threading.Thread(target=long_job, args=(1,))
    thread.start()
    time.sleep(0.6)
    with pytest.raises(AlreadyInProgress):
        idempotent("auto:{n}", store=mem)(lambda n: n)(1)
    thread.join(10)
    row = mem.get("auto:1")
    assert row is not None and row.status == "completed" and row.epoch == 1


def test_async_functions_replay_and_report(store: Store) -> None:
    runs: list[int] = []

    @idempotent("async:{n}", store=store)
    async def job(n: int) -> dict[str, int]:
        runs.append(n)
        await asyncio.sleep(0)
        execution = current_execution()
        assert execution is not None
        return {"n": n, "epoch": execution.epoch}

    async def main() -> tuple[Outcome[dict[str, int]], Outcome[dict[str, int]], dict[str, int]]:
        first = await job.call_detailed(2)
        second = await job.call_detailed(2)
        return first, second, await job(2)

    first, second, third = asyncio.run(main())
    assert first.replayed is False and second.replayed is True
    assert first.result == second.result == third == {"n": 2, "epoch": 1}
    assert runs == [2]


def test_async_failure_releases_and_async_heartbeat(mem: Store) -> None:
    calls: list[int] = []

    @idempotent("afail:{n}", store=mem, lease=0.3, heartbeat=0.1)
    async def job(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0.5)  # longer than the lease: the heartbeat task keeps it
        if len(calls) == 1:
            raise ValueError("boom")
        return n

    async def main() -> int:
        with pytest.raises(ValueError):
            await job(1)
        row = mem.get("afail:1")
        assert row is not None and row.status == "released" and row.epoch == 1
        return await job(1)

    assert asyncio.run(main()) == 1
    row = mem.get("afail:1")
    assert row is not None and row.status == "completed" and row.epoch == 2


def test_async_concurrent_callers_run_once(mem: Store) -> None:
    runs: list[int] = []

    @idempotent("agather:{n}", store=mem, on_in_progress="wait", wait_timeout=5)
    async def job(n: int) -> int:
        runs.append(n)
        await asyncio.sleep(0.1)
        return n

    async def main() -> list[Outcome[int]]:
        return await asyncio.gather(*(job.call_detailed(1) for _ in range(10)))

    outcomes = asyncio.run(main())
    assert runs == [1]
    assert sum(not o.replayed for o in outcomes) == 1
    assert all(o.result == 1 for o in outcomes)

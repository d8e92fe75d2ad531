"""Step recovery points: replay of finished steps after a failure, fencing of
step writes, and the misuse errors."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from idemlint.runtime import (
    ConfigurationError,
    LeaseLost,
    ResultTooLarge,
    Store,
    astep,
    current_execution,
    idempotent,
    open_store,
    recovery_point,
    step,
)


class Crash(Exception):
    """Stands in for a failure after a step."""


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_failure_after_each_step_then_retry_runs_each_step_once(
    store: Store, crash_after: int
) -> None:
    effects: list[str] = []
    crash = {"armed": True}

    @idempotent("order:{order_id}", store=store)
    def fulfil(order_id: int) -> dict[str, object]:
        execution = current_execution()
        assert execution is not None
        charged = step(
            "charge", lambda: effects.append("charge") or {"charge_id": f"ch_{order_id}"}
        )
        if crash_after == 1 and crash["armed"]:
            raise Crash()
        mailed = step("email", lambda: effects.append("email") or "sent")
        if crash_after == 2 and crash["armed"]:
            raise Crash()
        synced = step("crm", lambda: effects.append("crm") or 3)
        if crash_after == 3 and crash["armed"]:
            raise Crash()
        return {"charge": charged, "email": mailed, "crm": synced, "replay": execution.is_replay}

    with pytest.raises(Crash):
        fulfil(9)
    crash["armed"] = False
    outcome = fulfil.call_detailed(9)
    assert outcome.result == {
        "charge": {"charge_id": "ch_9"},
        "email": "sent",
        "crm": 3,
        "replay": True,
    }
    assert outcome.epoch == 2
    assert sorted(effects) == ["charge", "crm", "email"]
    assert fulfil.call_detailed(9).replayed is True
    assert sorted(effects) == ["charge", "crm", "email"]


def test_a_fenced_holder_cannot_record_a_step(store: Store) -> None:
    inside = threading.Event()
    go_on = threading.Event()
    errors: list[BaseException] = []

    @idempotent("fence:{n}", store=store, lease=0.3)
    def stale(n: int) -> str:
        step("first", lambda: 1)
        inside.set()
        go_on.wait(10)
        step("second", lambda: "stale")
        return "stale"

    def run() -> None:
        try:
            stale(1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(10)
    time.sleep(0.45)
    second_runs: list[int] = []

    @idempotent("fence:{n}", store=store, lease=30)
    def successor(n: int) -> str:
        assert step("first", lambda: 99) == 1  # replayed from the first holder
        step("second", lambda: second_runs.append(1) or "fresh")
        return "fresh"

    assert successor(1) == "fresh"
    go_on.set()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], LeaseLost)
    row = store.get("fence:1")
    assert row is not None and row.epoch == 2 and row.status == "completed"
    assert second_runs == [1]


def test_a_known_lost_lease_refuses_the_next_step_before_it_runs(mem_store: Store) -> None:
    ran: list[str] = []

    @idempotent("lost:{n}", store=mem_store, lease=0.05)
    def job(n: int) -> None:
        time.sleep(0.1)
        mem_store.claim("lost:1", job_fp[0], lease=30, ttl=None)  # a successor takes over
        step("effect", lambda: ran.append("effect"))

    job_fp: list[str] = []
    from idemlint.runtime.fingerprint import fingerprint_of

    job_fp.append(fingerprint_of(None, {"n": 1}, (1,), {}, key="lost:1"))
    with pytest.raises(LeaseLost):
        job(1)
    assert ran == []  # the local lease estimate ran out: a fenced heartbeat ran first


def test_step_misuse_is_a_clear_error(mem_store: Store) -> None:
    with pytest.raises(ConfigurationError, match="outside an @idempotent"):
        step("x", lambda: 1)

    @idempotent("dup:{n}", store=mem_store)
    def dup(n: int) -> None:
        step("same", lambda: 1)
        step("same", lambda: 2)

    with pytest.raises(ConfigurationError, match="twice"):
        dup(1)
    row = mem_store.get("dup:1")
    assert row is not None and row.status == "released"


def test_step_result_too_large(mem_store: Store) -> None:
    @idempotent("bigstep:{n}", store=mem_store, max_result_bytes=10)
    def job(n: int) -> int:
        step("big", lambda: "y" * 100)
        return n

    with pytest.raises(ResultTooLarge):
        job(1)


def test_recovery_point_decorator_names_steps_per_item(mem_store: Store) -> None:
    sent: list[int] = []

    @recovery_point("email:{user_id}")
    def email(user_id: int) -> str:
        sent.append(user_id)
        return f"mail {user_id}"

    crash = {"armed": True}

    @idempotent("batch:{batch}", store=mem_store)
    def batch(batch: str, users: list[int]) -> list[str]:
        out = []
        for user in users:
            out.append(email(user))
            if user == 2 and crash["armed"]:
                raise Crash()
        return out

    with pytest.raises(Crash):
        batch("b", [1, 2, 3])
    crash["armed"] = False
    assert batch("b", [1, 2, 3]) == ["mail 1", "mail 2", "mail 3"]
    assert sent == [1, 2, 3]


def test_async_steps(store: Store) -> None:
    effects: list[str] = []
    crash = {"armed": True}

    async def charge() -> str:
        await asyncio.sleep(0)
        effects.append("charge")
        return "ch_1"

    @idempotent("apipe:{n}", store=store)
    async def pipeline(n: int) -> list[str]:
        first = await astep("charge", charge)
        if crash["armed"]:
            raise Crash()
        second = await astep("notify", lambda: effects.append("notify") or "ok")
        return [first, second]

    async def main() -> list[str]:
        with pytest.raises(Crash):
            await pipeline(1)
        crash["armed"] = False
        return await pipeline(1)

    assert asyncio.run(main()) == ["ch_1", "ok"]
    assert effects == ["charge", "notify"]


@pytest.fixture
def mem_store() -> Store:
    return open_store("sqlite://")

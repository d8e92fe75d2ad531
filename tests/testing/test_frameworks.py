"""assert_retry_safe with each framework's own task objects, run the way its worker runs them.

Each framework gets a naive task, which fails with the right rule, and a
fixed one built with idemlint.runtime (its framework glue where the key can
come from the arguments), which passes. The effects are HTTP writes and
enqueues, recorded and never sent: several tests point the clients at
addresses nothing listens on, so a leak would fail them.
"""

from __future__ import annotations

import smtplib
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests

from idemlint.runtime import idempotent, step
from idemlint.testing import AtLeastOnceWindow, RetryCheck, RetrySafetyError, assert_retry_safe

API = "https://api.example.invalid/v1/notes"


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.sqlite3'}"


# -- plain functions ---------------------------------------------------------------------


def post_note(note_id: int) -> int:
    return int(requests.post(API, json={"note": note_id}, timeout=5).status_code)


def test_a_plain_function_that_posts_fails_on_twice_and_on_the_crash() -> None:
    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(post_note, 7)
    report = caught.value.report
    assert [s.name for s in report.failures] == ["run twice", f"crash after effect 1 (POST {API})"]
    assert f"effect repeated: POST {API} ran 2 times (1 in a clean run)" in str(caught.value)
    assert "fix: IDM304 [check-prior-art]" in str(caught.value)
    # never recorded, so the repeat is not a window: it repeats on every retry
    assert not report.windows


def test_an_idempotency_key_header_from_the_arguments_makes_it_safe() -> None:
    def post(note_id: int) -> None:
        requests.post(API, json={}, headers={"Idempotency-Key": f"note-{note_id}"}, timeout=5)

    report = assert_retry_safe(post, 7)
    assert report.safe and not report.windows and len(report.scenarios) == 2


def test_an_identical_put_is_idempotent_by_http_semantics() -> None:
    def put(note_id: int) -> None:
        requests.put(f"{API}/{note_id}", json={"title": "same"}, timeout=5)

    assert assert_retry_safe(put, 7).safe


def test_a_fresh_uuid_key_names_the_unstable_key_rule() -> None:
    def post(note_id: int) -> None:
        requests.post(API, json={}, headers={"Idempotency-Key": str(uuid.uuid4())}, timeout=5)

    with pytest.raises(RetrySafetyError, match=r"under different Idempotency-Keys") as caught:
        assert_retry_safe(post, 7)
    assert "fix: IDM201 [identify-the-key]" in str(caught.value)


def test_custom_state_and_reset_catch_a_relative_update_outside_any_database() -> None:
    account = {"balance": 100}

    def withdraw(amount: int) -> None:
        account["balance"] -= amount

    with pytest.raises(RetrySafetyError, match=r"state: balance 90 → 80"):
        assert_retry_safe(
            withdraw, 10, state=lambda: dict(account), reset=lambda: account.update(balance=100)
        )
    assert account == {"balance": 100}  # reset ran after the last scenario


def test_canned_http_responses_reach_the_task() -> None:
    def charge() -> str:
        return str(requests.post("https://pay.example.invalid/charges", timeout=5).json()["id"])

    seen: list[str] = []
    check = RetryCheck(
        lambda: seen.append(charge()),
        http={"POST https://pay.example.invalid/": {"id": "ch_1"}},
    )
    check.run()
    assert set(seen) == {"ch_1"} and len(seen) >= 3


def test_smtplib_mail_is_captured_and_never_delivered() -> None:
    def mail_receipt(order_id: int) -> None:
        message = EmailMessage()
        message["Subject"] = f"Receipt {order_id}"
        message["From"], message["To"] = "shop@example.invalid", "ann@example.invalid"
        with smtplib.SMTP("127.0.0.1", 1) as smtp:  # nothing listens on port 1
            smtp.starttls()
            smtp.send_message(message)

    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(mail_receipt, 5)
    text = str(caught.value)
    assert "effect repeated: email to ann@example.invalid: 'Receipt 5' ran 2 times" in text
    assert "fix: IDM302 [check-prior-art]" in text


def test_a_task_that_raises_on_its_clean_run_is_reported_as_such() -> None:
    from idemlint.testing import TaskFailed

    def broken() -> None:
        raise ValueError("boom")

    with pytest.raises(TaskFailed, match="raised on its clean run: ValueError: boom"):
        assert_retry_safe(broken)


# -- Celery ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_app() -> Any:
    from celery import Celery

    return Celery("idemlint_testing_tests", broker="memory://", set_as_current=False)


def test_celery_naive_task_fails_and_idempotent_task_passes(celery_app: Any, store: str) -> None:
    from idemlint.runtime.integrations.celery import IdempotentTask

    @celery_app.task(name="tests.ship")
    def ship(order_id: int) -> None:
        requests.post(API, json={"ship": order_id}, timeout=5)

    @celery_app.task(name="tests.confirm_naive", bind=True, acks_late=True)
    def confirm_naive(self: Any, order_id: int) -> None:
        ship.delay(order_id)

    @celery_app.task(
        name="tests.confirm_fixed", bind=True, base=IdempotentTask, idempotency_store=store
    )
    def confirm_fixed(self: Any, order_id: int) -> str:
        # key "{task_name}:{task_id}": the check keeps one task id across attempts
        return str(step("ship", lambda: ship.apply_async((order_id,), task_id=f"s{order_id}").id))

    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(confirm_naive, 3)
    assert "effect repeated: enqueue tests.ship(3) ran 2 times" in str(caught.value)
    assert "fix: IDM305 [check-prior-art]" in str(caught.value)
    with pytest.warns(AtLeastOnceWindow):
        report = assert_retry_safe(confirm_fixed, 3)
    assert report.task == "tests.confirm_fixed" and report.effects[0].kind == "enqueue"


# -- RQ ----------------------------------------------------------------------------------


def rq_send(order_id: int) -> None:
    requests.post(f"{API}/{order_id}", json={}, timeout=5)


def test_rq_enqueue_is_recorded_not_sent_and_the_job_id_is_stable(store: str) -> None:
    from redis import Redis
    from rq import Queue
    from rq.job import Job

    from idemlint.runtime.integrations.rq import idempotent_job

    queue = Queue("idemlint-tests", connection=Redis(port=1))  # never contacted

    def fan_out(order_id: int) -> None:
        queue.enqueue(rq_send, order_id)

    with pytest.raises(RetrySafetyError, match=r"enqueue \S*rq_send\(4\) ran 2 times"):
        assert_retry_safe(fan_out, 4)

    fixed = idempotent_job(store=store)(rq_send)  # key "{task_name}:{task_id}" from the job
    with pytest.warns(AtLeastOnceWindow):
        assert assert_retry_safe(fixed, 4).safe
    # an rq Job runs its function, found by dotted name as a worker finds it
    job = Job.create(rq_send, args=(4,), id="rq-job-1", connection=Redis(port=1))
    with pytest.raises(RetrySafetyError, match=r"POST \S+/v1/notes/4 ran 2 times"):
        assert_retry_safe(job)


def test_an_rq_job_function_needs_no_rq_import_in_the_test(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test module that defines an ``idempotent_job`` imports nothing of RQ itself (the
    glue imports it when a job runs): the check still gives the job a stable id, where it
    used to call the function bare and fail to build the ``{task_id}`` key."""
    from idemlint.runtime.integrations.rq import idempotent_job

    for name in [m for m in sys.modules if m == "rq" or m.startswith("rq.")]:
        monkeypatch.delitem(sys.modules, name)
    fixed = idempotent_job(store=store)(rq_send)
    with pytest.warns(AtLeastOnceWindow):
        assert assert_retry_safe(fixed, 5).safe


# -- Dramatiq ----------------------------------------------------------------------------


def test_dramatiq_actor_send_is_recorded_and_the_glue_passes(store: str) -> None:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    from idemlint.runtime.integrations.dramatiq import idempotent_actor

    broker = StubBroker()
    dramatiq.set_broker(broker)

    @dramatiq.actor(actor_name="tests_notify", broker=broker)
    def notify(user_id: int) -> None:
        return None

    @dramatiq.actor(actor_name="tests_signup", broker=broker)
    def signup(user_id: int) -> None:
        notify.send(user_id)

    @idempotent_actor(key="signup:{user_id}", store=store, actor_name="tests_signup_fixed")
    def signup_fixed(user_id: int) -> None:
        step("notify", lambda: notify.send(user_id).message_id)

    with pytest.raises(RetrySafetyError, match=r"enqueue tests_notify\(9\) ran 2 times"):
        assert_retry_safe(signup, 9)
    assert broker.queues.get("default") is None or broker.queues["default"].qsize() == 0
    with pytest.warns(AtLeastOnceWindow):
        assert assert_retry_safe(signup_fixed, 9).safe


# -- Huey --------------------------------------------------------------------------------


def test_huey_task_calls_are_recorded_and_call_local_runs_the_body(store: str) -> None:
    from huey import MemoryHuey

    from idemlint.runtime.integrations.huey import idempotent_task

    huey = MemoryHuey("idemlint-tests")

    @huey.task()
    def reindex(doc: int) -> None:
        return None

    @huey.task()
    def publish(doc: int) -> None:
        requests.post(API, json={"doc": doc}, timeout=5)
        reindex(doc)

    @idempotent_task(huey, key="publish:{doc}", store=store)
    def publish_fixed(doc: int) -> None:
        step("post", lambda: requests.post(API, json={}, timeout=5).status_code)
        step("reindex", lambda: reindex(doc).id)

    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(publish, 2)
    assert "enqueue reindex(2) ran 2 times" in str(caught.value)
    assert len(huey) == 0  # nothing reached the queue
    with pytest.warns(AtLeastOnceWindow):
        assert assert_retry_safe(publish_fixed, 2).safe


# -- async: arq, taskiq, coroutines ------------------------------------------------------


async def arq_charge(ctx: dict[str, Any], order_id: int) -> int:
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.post("https://pay.example.invalid/charges", json={})
    return response.status_code


def test_arq_job_fails_naive_and_passes_with_the_glue_and_a_key_header(store: str) -> None:
    httpx = pytest.importorskip("httpx", reason="httpx is not installed (not in the dev extra yet)")
    from idemlint.runtime.integrations.arq import idempotent_job

    with pytest.raises(RetrySafetyError, match="IDM303"):
        assert_retry_safe(arq_charge, {"job_id": "j1"}, 5)

    @idempotent_job(key="charge:{order_id}", store=store)
    async def charge_fixed(ctx: dict[str, Any], order_id: int) -> int:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                "https://pay.example.invalid/charges",
                json={},
                headers={"Idempotency-Key": f"charge-{order_id}"},
            )
        return response.status_code

    report = assert_retry_safe(charge_fixed, {"job_id": "j1"}, 5)
    assert report.safe and not report.windows


def test_taskiq_task_kiq_is_recorded_and_the_coroutine_awaited() -> None:
    from taskiq import InMemoryBroker

    broker = InMemoryBroker()

    @broker.task(task_name="tests.follow_up")
    async def follow_up(n: int) -> None:
        return None

    @broker.task(task_name="tests.start")
    async def start(n: int) -> None:
        await follow_up.kiq(n)

    with pytest.raises(RetrySafetyError, match=r"enqueue tests\.follow_up\(1\) ran 2 times"):
        assert_retry_safe(start, 1)


def test_a_coroutine_with_idempotent_and_astep_passes(store: str) -> None:
    httpx = pytest.importorskip("httpx", reason="httpx is not installed (not in the dev extra yet)")
    from idemlint.runtime import astep

    @idempotent(key="sync:{n}", store=store)
    async def sync_account(n: int) -> None:
        async def put() -> int:
            async with httpx.AsyncClient() as client:
                return (await client.post(f"{API}/{n}", json={})).status_code

        await astep("put", put)

    with pytest.warns(AtLeastOnceWindow):
        assert assert_retry_safe(sync_account, 1).safe


# -- the concurrent duplicate ------------------------------------------------------------


def test_concurrent_duplicate_is_turned_away_by_the_key(store: str) -> None:
    import time

    def slow_post(n: int) -> None:
        requests.post(API, json={"n": n}, timeout=5)
        time.sleep(0.2)

    @idempotent(key="post:{n}", store=store)
    def guarded(n: int) -> None:
        slow_post(n)

    naive = RetryCheck(slow_post, concurrent=True).run(1)
    assert "concurrent duplicate (two overlapping runs)" in [s.name for s in naive.failures]
    report = RetryCheck(guarded, concurrent=True).run(1)
    concurrent = report.scenarios[-1]
    assert concurrent.name.startswith("concurrent") and not concurrent.problems

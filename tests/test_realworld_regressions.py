"""Minimal reproductions of the analyzer's mistakes found on real applications
(saleor, paperless-ngx, pretix, polar, redash, netbox), each pinned to the corrected result.

Names say what the case was: ``fp_*`` a false positive, ``fn_*`` a missed finding.
"""

from __future__ import annotations

import pytest

from idemlint.report.checking import check_source

FN_CHAINED_EFFECT = """\
import httpx, requests
from celery import shared_task

@shared_task(acks_late=True)
def hook(url, data):
    requests.post(url, json=data).raise_for_status()  # expected: IDM304

@shared_task(acks_late=True)
def hook2(url, data):
    with httpx.Client() as client:
        client.post(url, json=data).raise_for_status()  # expected: IDM304
"""

FN_NESTED_FUNCTION = """\
from celery import shared_task
from django.core.mail import send_mail

@shared_task(acks_late=True)
def mail_all(emails):
    def _one(e):
        send_mail("s", "b", "f@x", [e])  # expected: IDM302
    for e in emails:
        _one(e)
"""

FN_NOT_IN_GUARD = """\
from celery import shared_task

@shared_task
def send_one(user_id):
    requests.post("https://hooks.example.com/users", json={"id": user_id})

@shared_task(acks_late=True)
def notify(specific, global_):
    for user_id in specific:
        send_one.delay(user_id)  # expected: IDM305
    for user_id in global_:
        if user_id not in specific:  # a filter on in-memory data, not a lookup of prior work
            send_one.delay(user_id)  # expected: IDM305
"""

FN_PARTIAL_DECORATOR = """\
# two files in the real case (worker.py defines `job`, tasks.py uses it); one file reproduces it
from functools import partial
from rq import Retry
from rq.decorators import job as rq_job
from django.core.mail import send_mail

class MyJob(rq_job):
    queue_class = None

job = partial(MyJob, connection=None)

@job("emails", retry=Retry(max=2))
def send(to):  # expected: recognised as an RQ task
    send_mail("s", "b", "f@x", [to])  # expected: IDM302
"""

FN_SESSION_SEND = """\
import requests
from celery import shared_task

@shared_task(acks_late=True)
def hook(url, body, method="POST"):
    prepared = requests.Request(method=method, url=url, data=body).prepare()
    with requests.Session() as session:
        session.send(prepared)  # expected: IDM304 (a prepared request's method is unknown: assume a write)
"""

FP_601_RAISE_CHAIN = """\
import datetime
from celery import shared_task
from django.db import models

class Review(models.Model):
    submitted_at = models.DateTimeField(null=True)
    decision = models.CharField(max_length=20, null=True)
    reviewed_at = models.DateTimeField(null=True)

@shared_task(acks_late=True)
def approve(review_id):
    review = Review.objects.get(pk=review_id)
    if review.submitted_at is None:   # a precondition; its field is never transitioned
        raise ValueError("nothing submitted")
    if review.decision is not None:   # expected: IDM601 HERE (this is the check whose field is transitioned)
        raise ValueError("already decided")
    review.decision = "approved"
    review.reviewed_at = datetime.datetime.now()
    review.save()
"""

FP_601_SET_IF_NULL = """\
import datetime
from celery import shared_task
from django.db import models

class Org(models.Model):
    status = models.CharField(max_length=20)
    first_reviewed_at = models.DateTimeField(null=True)

@shared_task(acks_late=True)
def review(org_id):
    org = Org.objects.get(pk=org_id)
    if org.first_reviewed_at is None:  # expected: no IDM601 (set-if-null of a timestamp; nothing else happens in the branch)
        org.first_reviewed_at = datetime.datetime.now()
    org.save()
"""

FP_602_GUARDED = """\
import requests
from celery import shared_task
from django.db import models

class Setting(models.Model):
    key = models.CharField(max_length=50, unique=True)
    value = models.JSONField()

@shared_task(acks_late=True)
def notify_admins(data):
    pass

@shared_task(acks_late=True)
def update_check():  # expected: no IDM602 (the enqueue is guarded by a comparison with stored state)
    r = requests.post("https://example.com/check", json={})  # expected: IDM304
    data = r.json()
    last = Setting.objects.get(key="last")
    if data != last.value:
        notify_admins.delay(data)
    Setting.objects.filter(key="last").update(value=data)
"""

FP_ACCUMULATE_AFTER_RESET = """\
from celery import shared_task
from django.db import models

class Meter(models.Model):
    amount = models.IntegerField()

@shared_task(acks_late=True)
def recompute(meter_id, items):
    meter = Meter.objects.get(pk=meter_id)
    meter.amount = 0
    for item in items:
        meter.amount += item  # expected: no IDM501 (aggregate recomputed from zero)
    meter.save()
"""

FP_ACCUMULATE_AFTER_RESET_CALL = """\
# polar: the meter's totals are zeroed by a method, then rebuilt from the events
from celery import shared_task
from django.db import models

class Meter(models.Model):
    amount = models.IntegerField()

@shared_task(acks_late=True)
def recompute(meter_id, items):
    meter = Meter.objects.get(pk=meter_id)
    meter.reset()
    for item in items:
        meter.amount += item  # expected: no IDM501 (rebuilt from zero)
    meter.save()

@shared_task(acks_late=True)
def bump(meter_id, items):
    meter = Meter.objects.get(pk=meter_id)
    meter.refresh()
    for item in items:
        meter.amount += item  # expected: IDM501 (refresh() is no reset)
    meter.save()
"""

FP_CREATE_COVERED_BY_UNIQUE_TOGETHER = """\
from celery import shared_task
from django.db import models

class Option(models.Model):
    name = models.CharField(max_length=50, unique=True)

class OptionCollection(models.Model):
    option_collection_hash = models.CharField(max_length=40)
    option = models.ForeignKey(Option, on_delete=models.CASCADE)

    class Meta:
        unique_together = ("option_collection_hash", "option")

@shared_task(acks_late=True)
def store(collection_hash, option_id):
    if not OptionCollection.objects.filter(option_collection_hash=collection_hash).exists():
        # expected: no IDM402 (the create's own fields are unique together)
        OptionCollection.objects.create(option_collection_hash=collection_hash, option_id=option_id)
"""
FP_CORRELATION_KEY = """\
import uuid
from celery import shared_task
from django.db import models

class Txn(models.Model):
    amount = models.IntegerField()
    correlation_key = models.CharField(max_length=36)

@shared_task(acks_late=True)
def transfer(amount):
    correlation_key = str(uuid.uuid4())  # expected: no IDM201 (links two rows; not a dedupe key)
    Txn.objects.create(amount=-amount, correlation_key=correlation_key)  # expected: IDM301
    Txn.objects.create(amount=amount, correlation_key=correlation_key)
"""

FP_LOCK_CLAIM_LOOP = """\
from celery import shared_task
from django.db import models, transaction

class PendingCall(models.Model):
    webhook_id = models.IntegerField()

@shared_task(acks_late=True)
def send(call_id):
    pass

@shared_task(acks_late=True)
def retry_all(webhook_id):
    with transaction.atomic():
        for call in PendingCall.objects.filter(webhook_id=webhook_id).select_for_update(skip_locked=True):
            send.apply_async(args=(call.id,))  # expected: no IDM305 (row locked, deleted in the same transaction)
            call.delete()
"""

FP_RELATED_LOOKUP_402 = """\
from celery import shared_task
from django.db import models

class Question(models.Model):
    identifier = models.CharField(max_length=50)

class Item(models.Model):
    questions = models.ManyToManyField(Question)

class CartPosition(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE)
    answer = models.CharField(max_length=50)

@shared_task(acks_late=True)
def add(item_id, code):
    cp = CartPosition(item_id=item_id)
    q = cp.item.questions.filter(identifier=code).first()  # expected: no IDM402 (a value lookup on Question, not a guard for CartPosition)
    if q:
        cp.answer = q.identifier
    cp.save()  # expected: IDM301
"""

FP_STATE_SUCCEEDED = """\
import dramatiq
from django.db import models

class Event(models.Model):
    succeeded = models.BooleanField(null=True)

class Delivery(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE)

@dramatiq.actor
def send(event_id):
    event = Event.objects.get(pk=event_id)
    if event.succeeded:
        return
    Delivery.objects.create(event=event)  # expected: no finding (guarded by the `succeeded` state check)
"""

FP_STATE_VIA_REPOSITORY = """\
import dramatiq
from sqlalchemy import Boolean, ForeignKey, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Event(Base):
    __tablename__ = "event"
    id: Mapped[int] = mapped_column(primary_key=True)
    succeeded: Mapped[bool] = mapped_column(Boolean, nullable=True)

class Delivery(Base):
    __tablename__ = "delivery"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))

class EventRepository:
    def __init__(self, session):
        self.session = session

    async def get_by_id(self, id):
        return (await self.session.execute(select(Event).where(Event.id == id))).scalar_one_or_none()

@dramatiq.actor
async def send(session, event_id):
    event = await EventRepository(session).get_by_id(event_id)
    if event.succeeded:
        return
    session.add(Delivery(event_id=event_id))  # expected: no IDM301 (guarded by the state check above)
"""

FN_ENQUEUE_IN_ON_COMMIT = """\
# saleor/pretix: the enqueue waits for the commit, but a retry still enqueues again
from celery import shared_task
from django.db import transaction

@shared_task
def notify(order_id):
    requests.post("https://hooks.example.com/orders", json={"id": order_id})

@shared_task(acks_late=True)
def confirm(order_id):
    transaction.on_commit(lambda: notify.delay(order_id))  # expected: IDM305
    transaction.on_commit(lambda q=notify.s(order_id): q.delay())
"""

CASES = [
    pytest.param(FN_CHAINED_EFFECT, [(6, "IDM304"), (11, "IDM304")], id="fn_chained_effect"),
    pytest.param(FN_NESTED_FUNCTION, [(7, "IDM302")], id="fn_nested_function"),
    pytest.param(FN_ENQUEUE_IN_ON_COMMIT, [(11, "IDM305")], id="fn_enqueue_in_on_commit"),
    pytest.param(FN_NOT_IN_GUARD, [(10, "IDM305")], id="fn_not_in_guard"),
    pytest.param(FN_PARTIAL_DECORATOR, [(14, "IDM302")], id="fn_partial_decorator"),
    pytest.param(FN_SESSION_SEND, [(8, "IDM304")], id="fn_session_send"),
    pytest.param(FP_601_RAISE_CHAIN, [], id="fp_601_raise_chain"),
    pytest.param(FP_601_SET_IF_NULL, [], id="fp_601_set_if_null"),
    pytest.param(FP_602_GUARDED, [(15, "IDM304")], id="fp_602_guarded"),
    pytest.param(FP_ACCUMULATE_AFTER_RESET, [], id="fp_accumulate_after_reset"),
    pytest.param(
        FP_ACCUMULATE_AFTER_RESET_CALL, [(21, "IDM501")], id="fp_accumulate_after_reset_call"
    ),
    pytest.param(FP_CORRELATION_KEY, [(12, "IDM301")], id="fp_correlation_key"),
    pytest.param(
        FP_CREATE_COVERED_BY_UNIQUE_TOGETHER, [], id="fp_create_covered_by_unique_together"
    ),
    pytest.param(FP_LOCK_CLAIM_LOOP, [], id="fp_lock_claim_loop"),
    pytest.param(FP_RELATED_LOOKUP_402, [(20, "IDM301")], id="fp_related_lookup_402"),
    pytest.param(FP_STATE_SUCCEEDED, [], id="fp_state_succeeded"),
    pytest.param(FP_STATE_VIA_REPOSITORY, [], id="fp_state_via_repository"),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_realworld_case(source: str, expected: list[tuple[int, str]]) -> None:
    assert [(f.line, f.rule) for f in check_source(source, "app/tasks.py")] == expected


SUBCLASSED_LIBRARIES = """\
import rq
from flask_sqlalchemy import SQLAlchemy
from redis import Redis


class AppSQLAlchemy(SQLAlchemy):
    pass


db = AppSQLAlchemy()


class User(db.Model):
    email = db.Column(db.String)


class AppQueue(rq.Queue):
    pass


def create_user(email):
    db.session.add(User(email=email))
    db.session.commit()


AppQueue(connection=Redis()).enqueue(create_user, "a@example.com", retry=rq.Retry(max=3))
"""

WRAPPED_ACTOR = """\
import dramatiq
from sendgrid import SendGridAPIClient


def actor(fn=None, **options):
    def decorator(f):
        return dramatiq.actor(f, max_retries=options.pop("max_retries", 20), **options)

    return decorator(fn) if fn else decorator


@actor
def welcome(email):
    SendGridAPIClient("key").send({"to": email})
"""

SIGNATURE_ONLY = """\
from celery import shared_task


@shared_task(acks_late=True)
def report(x):
    pass


@shared_task(acks_late=True)
def schedule(x):
    sig = report.si(x).on_error(report.si(0))
    return sig
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(SUBCLASSED_LIBRARIES, [(22, "IDM301")], id="library-subclasses"),
        pytest.param(WRAPPED_ACTOR, [(14, "IDM302")], id="wrapped-actor-sendgrid"),
        pytest.param(SIGNATURE_ONLY, [], id="signature-is-not-an-enqueue"),
    ],
)
def test_realworld_followups(source: str, expected: list[tuple[int, str]]) -> None:
    assert [(f.line, f.rule) for f in check_source(source, "app/tasks.py")] == expected

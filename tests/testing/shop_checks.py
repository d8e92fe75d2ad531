"""assert_retry_safe on the shop (fixtures/shop), run in a child interpreter by test_shop.py.

Not collected by the main suite (the name does not start with ``test_``):
Django settings are process-global, and this module configures them with the
shop's settings from the ``SHOP_*`` variables test_shop.py passes (SQLite or
PostgreSQL). ``IDEMLINT_TEST_STORE_URL`` names the idempotency store of the
runtime-based variants.

What it proves: the naive tasks fail with the report a person can act on;
the shop's fixed tasks pass except where a crash really does lose work (each
such gap is asserted precisely); the variants built with ``idemlint.runtime``
pass, with only the at-least-once window of a mail and an enqueue left,
reported as warnings.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any

import django
import pytest

SHOP = Path(__file__).resolve().parents[2] / "fixtures" / "shop"
sys.path.insert(0, str(SHOP))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
os.environ["SHOP_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
django.setup()

from celery import shared_task  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core import mail  # noqa: E402
from django.core.mail import send_mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from shop import celery as _app  # noqa: E402, F401  (the shop's Celery app owns shared tasks)
from shop import gateway, tasks_fixed, tasks_naive  # noqa: E402
from shop.models import Order, OrderLine, Payment, Product  # noqa: E402
from shop.shipping import request_shipment  # noqa: E402

from idemlint.runtime import locked_row, step, upsert  # noqa: E402
from idemlint.runtime.integrations.celery import IdempotentTask  # noqa: E402
from idemlint.testing import RetryCheck, RetrySafetyError, assert_retry_safe  # noqa: E402

STORE = os.environ["IDEMLINT_TEST_STORE_URL"]
CHARGES = "POST https://api.stripe.example/v1/charges"
_serial = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _schema() -> None:
    call_command("migrate", verbosity=0, interactive=False)


@pytest.fixture
def user() -> Any:
    n = next(_serial)
    return get_user_model().objects.create_user(username=f"c{n}", email=f"c{n}@example.com")


@pytest.fixture
def order(user: Any) -> Order:
    n = next(_serial)
    mug = Product.objects.create(sku=f"MUG-{n}", name="Mug", stock=10)
    tee = Product.objects.create(sku=f"TEE-{n}", name="T-shirt", stock=5)
    order = Order.objects.create(user=user, email=user.email, shipping_address="1 Main St")
    OrderLine.objects.create(order=order, product=mug, quantity=2)
    OrderLine.objects.create(order=order, product=tee, quantity=1)
    return order


def stocks(order: Order) -> list[int]:
    return sorted(Product.objects.get(pk=line.product_id).stock for line in order.lines.all())


def failed(report: Any) -> list[str]:
    return [s.name for s in report.failures]


# -- the naive tasks fail, with the report a person acts on ------------------------------


def test_naive_charge_fails_with_the_charge_repeated_and_a_second_payment(user: Any) -> None:
    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(tasks_naive.charge_credit_card, user.pk, 500)
    text = str(caught.value)
    assert "shop.tasks_naive.charge_credit_card is not safe to retry" in text
    assert (
        f"crash after effect 2 ({CHARGES}), then retry:\n"
        f"  effect repeated: {CHARGES} ran 2 times (1 in a clean run)\n"
        "  shop_payment rows 1 → 2\n"
        "  fix: IDM303 [check-prior-art]"
    ) in text
    assert "fix: IDM301 [check-prior-art]" in text
    report = caught.value.report
    assert [e.label for e in report.effects] == [
        "INSERT shop_payment",
        CHARGES,
        "UPDATE shop_payment",
    ]
    assert failed(report) == ["run twice"] + [
        f"crash after effect {i} ({e.label})" for i, e in enumerate(report.effects, 1)
    ]
    assert Payment.objects.filter(user=user).count() == 0  # the check left no trace


def test_naive_inventory_update_fails_with_the_stock_moved_twice(order: Order) -> None:
    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(tasks_naive.update_inventory, order.pk)
    text = str(caught.value)
    assert "run twice:\n  shop_product: stock" in text
    assert "fix: IDM501 [declarative-over-imperative]" in text
    assert stocks(order) == [5, 10]


def test_naive_confirmation_fails_on_mail_enqueue_and_relative_update(order: Order) -> None:
    with pytest.raises(RetrySafetyError) as caught:
        assert_retry_safe(tasks_naive.send_order_confirmation, order.pk)
    text = str(caught.value)
    subject = f"email to {order.email}: 'Order #{order.pk} confirmed'"
    assert f"effect repeated: {subject} ran 2 times (1 in a clean run)" in text
    assert f"effect repeated: enqueue shop.shipping.request_shipment({order.pk}) ran 2" in text
    for rule in ("IDM302 [check-prior-art]", "IDM305 [check-prior-art]", "IDM502 [declarative"):
        assert f"fix: {rule}" in text
    # Django's locmem outbox still receives what the task sent, as tests expect
    assert subject.split(": ", 1)[1].strip("'") in {m.subject for m in mail.outbox}


def test_naive_profile_write_is_only_unsafe_against_a_concurrent_duplicate() -> None:
    """``if exists: update else: create`` survives retries; its bug (IDM402) is a race.

    Run sequentially, every retry finds the row the crashed attempt created,
    so the crash scenarios pass; the analyzer's IDM402 is about two workers
    running it at once, which no sequential scenario can show.
    """
    n = next(_serial)
    report = assert_retry_safe(tasks_naive.save_profile, f"p{n}@example.com", "Ann")
    assert report.safe and len(report.scenarios) == 2


# -- the shop's fixed tasks: pass, except where a crash really loses work ----------------


def test_fixed_inventory_update_passes(order: Order) -> None:
    report = assert_retry_safe(tasks_fixed.update_inventory, order.pk)
    assert [e.kind for e in report.effects] == ["db", "db", "db", "commit"]
    assert len(report.scenarios) == 5 and not report.windows


def test_fixed_profile_upsert_passes(user: Any) -> None:
    report = assert_retry_safe(tasks_fixed.save_profile, user.pk, user.email, "Ann")
    assert report.safe and report.effects[0].label == "INSERT shop_profile"


def test_fixed_charge_leaves_the_payment_stuck_when_the_worker_dies_before_the_charge(
    user: Any,
) -> None:
    """The shop's fixed charge returns early on PROCESSING: after a crash between the
    create and the charge, the retry never charges. A real gap, reported precisely."""
    report = RetryCheck(tasks_fixed.charge_credit_card).run(user.pk, 500, f"key-{next(_serial)}")
    assert failed(report) == [
        "crash after effect 1 (INSERT shop_payment)",
        f"crash after effect 2 ({CHARGES})",
    ]
    first = report.failures[0].render()
    assert f"effect lost: {CHARGES} ran 0 times (1 in a clean run)" in first
    assert "shop_payment: status 'succeeded' → 'processing'" in first
    assert "fix: IDM602 [obvious-state-transitions]" in first


def test_fixed_confirmation_loses_the_on_commit_enqueue_when_the_worker_dies_after_commit(
    order: Order,
) -> None:
    report = RetryCheck(tasks_fixed.send_order_confirmation).run(order.pk)
    labels = [e.label for e in report.effects]
    last_commit = len(labels) - labels[::-1].index("COMMIT (default)")
    assert labels[last_commit:] == [f"enqueue shop.shipping.request_shipment({order.pk})"]
    assert [s.crash_index for s in report.failures] == [last_commit]
    assert "effect lost: enqueue shop.shipping.request_shipment" in report.failures[0].render()
    # mail inside the transaction that records it: repeated only until that commit
    assert [s.crash_index for s in report.windows] == [1, 2]


# -- the same tasks fixed with idemlint.runtime: green -----------------------------------


def _open_payment(user_id: int, amount_cents: int, key: str) -> int:
    upsert(
        Payment,
        {
            "idempotency_key": key,
            "user_id": user_id,
            "amount_cents": amount_cents,
            "status": Payment.Status.PROCESSING,
        },
        unique_by=["idempotency_key"],
        update=[],
    )
    return int(Payment.objects.get(idempotency_key=key).pk)


@shared_task(
    base=IdempotentTask,
    bind=True,
    idempotency_key="charge:{idempotency_key}",
    idempotency_store=STORE,
)
def charge_credit_card_rt(self: Any, user_id: int, amount_cents: int, idempotency_key: str) -> int:
    payment_id = step("payment", _open_payment, user_id, amount_cents, idempotency_key)
    charge = step("charge", gateway.charge, amount_cents, f"user-{user_id}", idempotency_key)
    Payment.objects.filter(pk=payment_id).update(
        charge_id=charge["id"], status=Payment.Status.SUCCEEDED
    )
    return payment_id


def _take_inventory(order_id: int) -> bool:
    with transaction.atomic(), locked_row(Order, pk=order_id) as order:
        if order.inventory_updated:
            return False
        for line in order.lines.all():
            Product.objects.filter(pk=line.product_id).update(stock=F("stock") - line.quantity)
        order.inventory_updated = True
        order.save(update_fields=["inventory_updated"])
    return True


def _book_shipment(order_id: int) -> str:
    return str(request_shipment.apply_async((order_id,), task_id=f"shipment-{order_id}").id)


@shared_task(
    base=IdempotentTask, bind=True, idempotency_key="confirm:{order_id}", idempotency_store=STORE
)
def send_order_confirmation_rt(self: Any, order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    step(
        "email",
        send_mail,
        f"Order #{order.pk} confirmed",
        "Thanks for your order! We will email you again when it ships.",
        settings.DEFAULT_FROM_EMAIL,
        [order.email],
    )
    step("inventory", _take_inventory, order_id)
    step("shipment", _book_shipment, order_id)


def test_runtime_charge_passes_every_crash_point(user: Any) -> None:
    report = assert_retry_safe(charge_credit_card_rt, user.pk, 500, f"key-{next(_serial)}")
    assert [e.label for e in report.effects] == [
        "INSERT shop_payment (upsert)",
        "COMMIT (default)",
        CHARGES,
        "UPDATE shop_payment",
    ]
    assert report.safe and not report.windows


def test_runtime_confirmation_passes_with_only_the_mail_and_enqueue_windows(order: Order) -> None:
    report = assert_retry_safe(send_order_confirmation_rt, order.pk)
    kinds = [e.kind for e in report.effects]
    assert kinds[0] == "email" and kinds[-1] == "enqueue"
    assert report.safe
    assert [s.crash_index for s in report.windows] == [1, len(kinds)]
    assert stocks(order) == [5, 10]


def test_strict_mode_counts_the_windows_as_failures(order: Order) -> None:
    with pytest.raises(RetrySafetyError, match="IDM302"):
        RetryCheck(send_order_confirmation_rt, strict=True).assert_safe(order.pk)

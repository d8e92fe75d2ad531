from celery import shared_task

from shop.helpers import record_payment
from shop.models import Payment, Profile


@shared_task(acks_late=True)
def charge(user_id, amount_cents):
    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)


@shared_task(acks_late=True)
def charge_via_helper(user_id, amount_cents):
    record_payment(user_id, amount_cents)


@shared_task(acks_late=True)
def sync_profile(email, name):
    Profile.objects.get_or_create(email=email, defaults={"name": name})


@shared_task(acks_late=True)
def charge_once(idempotency_key, user_id, amount_cents):
    payment, _created = Payment.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={"user_id": user_id, "amount_cents": amount_cents},
    )
    return payment.pk

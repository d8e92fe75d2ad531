from shop.models import Payment


def record_payment(user_id, amount_cents):
    return Payment.objects.create(user_id=user_id, amount_cents=amount_cents)

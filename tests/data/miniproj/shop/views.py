from shop.models import Payment


def create_payment_view(request):
    # Not a task: never reported.
    return Payment.objects.create(user_id=1, amount_cents=100)

from django.db import models


class Payment(models.Model):
    idempotency_key = models.CharField(max_length=64, unique=True)
    user_id = models.IntegerField()
    amount_cents = models.IntegerField()
    status = models.CharField(max_length=16, default="processing")


class Profile(models.Model):
    email = models.CharField(max_length=200)
    name = models.CharField(max_length=200)

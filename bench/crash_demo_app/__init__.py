"""The Celery app of bench/crash_demo.py: the order-confirmation task, naive and idempotent."""

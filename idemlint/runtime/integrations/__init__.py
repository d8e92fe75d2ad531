"""Glue for task frameworks (Celery, RQ, Dramatiq, Huey, arq, taskiq)."""

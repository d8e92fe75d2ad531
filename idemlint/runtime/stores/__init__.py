"""Idempotency-key stores, one module per backend."""

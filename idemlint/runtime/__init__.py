"""Retry-safety runtime helpers (filled in by the runtime work)."""

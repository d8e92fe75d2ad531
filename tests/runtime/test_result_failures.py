"""A result that cannot be stored releases the claim and raises a documented error.

A result nested 5,000 deep made ``json.dumps`` raise ``RecursionError``, which
escaped as is and left the claim held for the whole lease (every retry got
``AlreadyInProgress``), though the docs promise that a failure releases it.
Whatever the serializer raises is now a :class:`SerializationError` (part of
the public errors, also a ``TypeError``), and the claim is released first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from idemlint.runtime import (
    IdempotencyError,
    JsonSerializer,
    SerializationError,
    Store,
    idempotent,
    step,
)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_deeply_nested_result_releases_the_claim(store: Store) -> None:
    runs: list[int] = []

    @idempotent("deep:{n}", store=store, lease=60)
    def job(n: int) -> list[Any]:
        runs.append(n)
        return nested(5000) if len(runs) == 1 else [n]

    with pytest.raises(SerializationError, match="nested too deeply") as info:
        job(1)
    assert isinstance(info.value, IdempotencyError) and isinstance(info.value, TypeError)
    assert isinstance(info.value.__cause__, RecursionError)
    assert info.value.key == "deep:1"
    row = store.get("deep:1")
    assert row is not None and row.status == "released"  # not held for the 60 s lease
    outcome = job.call_detailed(1)  # so a retry runs at once, no AlreadyInProgress
    assert outcome.replayed is False and outcome.result == [1] and outcome.epoch == 2
    assert runs == [1, 1]


def test_a_deeply_nested_async_result_releases_the_claim(store: Store) -> None:
    @idempotent("adeep:{n}", store=store, lease=60)
    async def job(n: int) -> list[Any]:
        return nested(5000)

    with pytest.raises(SerializationError, match="nested too deeply"):
        asyncio.run(job(1))
    row = store.get("adeep:1")
    assert row is not None and row.status == "released"


def test_a_deeply_nested_step_result_releases_the_claim(store: Store) -> None:
    @idempotent("deep-step:{n}", store=store, lease=60)
    def job(n: int) -> None:
        step("build", nested, 5000)

    with pytest.raises(SerializationError, match="result of step 'build'"):
        job(1)
    row = store.get("deep-step:1")
    assert row is not None and row.status == "released"


class _Boom(Exception):
    pass


def test_any_serializer_failure_is_a_serialization_error_and_releases(store: Store) -> None:
    def default(value: object) -> object:
        raise _Boom("the default hook broke")

    @idempotent("hook:{n}", store=store, lease=60, serializer=JsonSerializer(default=default))
    def job(n: int) -> object:
        return object()

    with pytest.raises(SerializationError, match="the default hook broke") as info:
        job(1)
    assert isinstance(info.value.__cause__, _Boom)
    row = store.get("hook:1")
    assert row is not None and row.status == "released"


def test_a_stored_result_too_deep_to_read_is_a_serialization_error(store: Store) -> None:
    held = store.claim("deep-read", "-", lease=60, ttl=60)
    deep = b"[" * 100_000 + b"]" * 100_000
    store.complete(held.lease, deep, ttl=60)  # type: ignore[union-attr]

    @idempotent("deep-read", store=store, lease=60, fingerprint=False)
    def job() -> None:
        raise AssertionError("a completed key must not run")

    with pytest.raises(SerializationError, match="cannot be read"):
        job()


def test_a_key_with_a_lone_surrogate_is_a_key_build_error(store: Store) -> None:
    """On Redis this was a raw UnicodeEncodeError from the driver; on the SQL stores a
    "store failed" StoreError. Every store now says what is wrong with the key."""
    from idemlint.runtime import KeyBuildError

    @idempotent("{name}", store=store, lease=60)
    def job(name: str) -> str:
        raise AssertionError("never runs")

    with pytest.raises(KeyBuildError, match="lone surrogate"):
        job("\ud800")

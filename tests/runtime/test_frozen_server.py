"""A store server that stops answering fails the call in bounded time, and never marks it done.

Drivers wait forever by default: with the server frozen for 20 s and a 5 s
lease, a call blocked for the whole freeze (and a completion that finally
arrived could no longer tell anyone). Each store operation now runs within a
budget tied to the lease (a quarter of it, 2 s at least), and the decorator
retries a failed completion only within the lease.

The frozen server is always one of the test's own, stopped with SIGSTOP and
resumed with SIGCONT: a private ``redis-server``, or a proxy process in front
of the shared PostgreSQL / MariaDB (freezing the proxy freezes the server as
far as the store can tell; the shared server is never paused).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from urllib.parse import urlsplit

import pytest
from _servers import frozen, redis_server, tcp_proxy
from _store_urls import backend_url

from idemlint.runtime import StoreError, idempotent, open_store
from idemlint.runtime.stores.base import Claimed

LEASE = 5.0
BOUND = 10.0
"""Every frozen call must return within this (the freeze would last 20 s)."""


@dataclass
class Freezable:
    url: str
    """The store URL through the process that can be frozen."""
    direct: str | None
    """The same store without it (SQL: the shared server, readable while frozen)."""
    proc: Popen[bytes]


@pytest.fixture(params=["redis", "postgres", "mysql"])
def freezable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Freezable]:
    if request.param == "redis":
        pytest.importorskip("redis")
        with redis_server(tmp_path) as (url, proc):
            yield Freezable(f"{url}?prefix=t{uuid.uuid4().hex[:12]}", None, proc)
        return
    base = backend_url(request.param, request)
    parts = urlsplit(base)
    direct = f"{base}?table=t_{uuid.uuid4().hex[:12]}"
    with tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 0) as (port, proc):
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
        proxied = direct.replace(parts.netloc, netloc, 1)
        try:
            yield Freezable(proxied, direct, proc)
        finally:
            with contextlib.suppress(Exception):
                proc.terminate()  # drop the proxied sessions before dropping their table
                proc.wait(10)
            cleanup = open_store(direct, create=False)
            cleanup.drop_schema()
            cleanup.close()


def test_frozen_before_the_call_fails_fast_and_runs_nothing(freezable: Freezable) -> None:
    store = open_store(freezable.url)
    runs: list[int] = []

    @idempotent("frozen:{n}", store=store, lease=LEASE)
    def job(n: int) -> int:
        runs.append(n)
        return n

    assert job(0) == 0  # schema, scripts and a pooled connection: warm
    with frozen(freezable.proc):
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            job(1)
        elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"blocked {elapsed:.1f}s on a frozen server"
    assert info.value.transient
    assert runs == [0]  # the claim failed, so the function never ran
    store.close()
    if freezable.direct is not None:
        row = open_store(freezable.direct, create=False).get("frozen:1")
        assert row is None or row.status != "completed"


def test_frozen_during_the_job_fails_within_the_lease_and_is_not_done(
    freezable: Freezable,
) -> None:
    store = open_store(freezable.url)
    freeze = contextlib.ExitStack()

    @idempotent("frozen-mid:{n}", store=store, lease=LEASE)
    def job(n: int) -> int:
        if n == 1:
            freeze.enter_context(frozen(freezable.proc))  # the server stops answering now
        return n * 10

    assert job(0) == 0
    started = time.monotonic()
    try:
        with pytest.raises(StoreError) as info:
            job(1)
        elapsed = time.monotonic() - started
        assert elapsed < BOUND, f"blocked {elapsed:.1f}s on a frozen server"
        assert "could not be recorded" in str(info.value)
        assert "not marked done" in str(info.value)
        # the shared server itself, readable right now: frozen() returned only once the proxy
        # had stopped, so no attempt of the completion got past it
        if freezable.direct is not None:
            seen = open_store(freezable.direct, create=False)
            row = seen.get("frozen-mid:1")
            assert row is not None and row.status == "in_progress"
            seen.close()
    finally:
        freeze.close()  # SIGCONT
    # resumed: a completion the server had buffered may land now - it is this job's own
    # result, under its own claim; nothing else can have marked the key done
    time.sleep(0.2)
    row = store.get("frozen-mid:1")
    assert row is not None and row.epoch == 1
    assert row.status == "in_progress" or (row.status == "completed" and row.result == b"10")
    store.close()


def test_frozen_store_calls_each_fail_within_their_budget(freezable: Freezable) -> None:
    """Below the decorator: every call of a lease holder gives up on its own, in time."""
    store = open_store(freezable.url)
    held = store.claim("k", "fp", lease=LEASE, ttl=60)
    assert isinstance(held, Claimed)
    with frozen(freezable.proc):
        for call in (
            lambda: store.claim("other", "fp", lease=LEASE, ttl=60),
            lambda: store.heartbeat(held.lease),
            lambda: store.save_step(held.lease, "s", b"1"),
            lambda: store.complete(held.lease, b"1", ttl=60),
        ):
            started = time.monotonic()
            with pytest.raises(StoreError):
                call()
            assert time.monotonic() - started < BOUND
    store.close()


def test_the_timeout_option_replaces_the_lease_default(freezable: Freezable) -> None:
    store = open_store(freezable.url, timeout=0.5)
    assert store.operation_timeout(600.0) == 0.5
    held = store.claim("warm", "fp", lease=600, ttl=60)  # a 600 s lease would allow 10 s
    assert isinstance(held, Claimed)
    with frozen(freezable.proc):
        for call in (
            lambda: store.claim("k", "fp", lease=600, ttl=60),
            lambda: store.get("warm"),  # no lease: 10 s by default, 0.5 s here
            lambda: store.delete("warm"),
        ):
            started = time.monotonic()
            with pytest.raises(StoreError, match="no answer"):
                call()
            assert time.monotonic() - started < 5.0
    store.close()

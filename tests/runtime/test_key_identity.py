"""A key is its exact text, on every store: no padding, no case folding, no normalisation.

MariaDB/MySQL text collations compare ``"k"`` and ``"k "`` as equal (PAD SPACE,
``utf8mb4_bin`` included) and ``"K"`` and ``"k"`` as equal (``*_ci``), which
made two jobs one: the second was replayed the first one's result and never
ran. Keys that are not valid text for some store (a lone surrogate, NUL) are
refused the same way by every store, with :class:`KeyBuildError` saying why.
Parametrized over every store, the in-memory SQLite one included.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import pytest
from _store_urls import backend_url, unique_store_url

from idemlint.runtime import ConfigurationError, KeyBuildError, Store, idempotent, open_store, step
from idemlint.runtime.stores.base import Claimed, Completed

ALL_STORES = ("sqlite", "sqlite-memory", "postgres", "mysql", "redis")

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")

LOOKALIKES = [
    pytest.param(("k", "k ", "k  "), id="trailing-space"),
    pytest.param(("K", "k"), id="case"),
    pytest.param((NFC, NFD), id="nfc-nfd"),
    pytest.param(("strasse", "straße"), id="sharp-s"),
    pytest.param(("a", "a\t", " a"), id="whitespace"),
]


@pytest.fixture(params=ALL_STORES)
def any_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Every store, each with its own table / prefix, dropped afterwards."""
    if request.param == "sqlite-memory":
        opened = open_store("sqlite://")
    else:
        opened = open_store(unique_store_url(backend_url(request.param, request)))
    try:
        yield opened
    finally:
        try:
            opened.drop_schema()
        finally:
            opened.close()


@pytest.mark.parametrize("keys", LOOKALIKES)
def test_lookalike_keys_are_separate_jobs(any_store: Store, keys: tuple[str, ...]) -> None:
    assert NFC != NFD  # the test means two code point sequences
    runs: list[str] = []

    @idempotent("{key}", store=any_store, lease=30)
    def job(key: str) -> str:
        runs.append(key)
        return f"result of {key!r}"

    for key in keys:
        outcome = job.call_detailed(key)
        assert outcome.replayed is False, f"{key!r} was replayed as another key"
        assert outcome.result == f"result of {key!r}"
    assert runs == list(keys)
    for key in keys:  # and each replays its own result
        outcome = job.call_detailed(key)
        assert outcome.replayed is True and outcome.result == f"result of {key!r}"
        row = any_store.get(key)
        assert row is not None and row.key == key and row.epoch == 1


@pytest.mark.parametrize("keys", LOOKALIKES)
def test_lookalike_keys_claim_separately_at_the_store(
    any_store: Store, keys: tuple[str, ...]
) -> None:
    leases = []
    for key in keys:
        claimed = any_store.claim(key, "fp", lease=30, ttl=60)
        assert isinstance(claimed, Claimed), f"{key!r}: {claimed!r}"
        assert claimed.lease.epoch == 1
        leases.append(claimed.lease)
    for lease in leases:
        any_store.complete(lease, repr(lease.key).encode(), ttl=60)
    for key in keys:
        done = any_store.claim(key, "fp", lease=30, ttl=60)
        assert isinstance(done, Completed) and done.result == repr(key).encode()
    assert any_store.delete(keys[0]) is True
    assert all(any_store.get(key) is not None for key in keys[1:])  # deleting one kept the rest


def test_lookalike_step_names_are_separate_steps(any_store: Store) -> None:
    names = ("send", "send ", "Send", NFC, NFD)
    runs: list[str] = []

    @idempotent("steps:{n}", store=any_store, lease=30)
    def job(n: int) -> list[str]:
        return [step(name, lambda name=name: runs.append(name) or name) for name in names]

    assert job(1) == list(names)
    assert runs == list(names)
    held = any_store.claim("steps:2", "fp", lease=30, ttl=60)
    assert isinstance(held, Claimed)
    for name in names:
        any_store.save_step(held.lease, name, repr(name).encode())
    assert any_store.load_steps(held.lease) == {name: repr(name).encode() for name in names}


BAD_KEYS = [
    pytest.param("\ud800", "lone surrogate", id="lone-surrogate"),
    pytest.param("order:\udcff", "lone surrogate", id="low-surrogate"),
    pytest.param("a\x00b", "NUL character", id="nul"),
    pytest.param("x" * 256, "256 characters long; the limit is 255", id="too-long"),
    pytest.param("", "is empty", id="empty"),
]


@pytest.mark.parametrize(("key", "problem"), BAD_KEYS)
def test_bad_keys_are_key_build_errors_on_every_store(
    any_store: Store, key: str, problem: str
) -> None:
    for call in (
        lambda: any_store.claim(key, "fp", lease=30, ttl=60),
        lambda: any_store.get(key),
        lambda: any_store.delete(key),
    ):
        with pytest.raises(KeyBuildError, match=problem) as info:
            call()
        assert "store failed" not in str(info.value)
        assert len(str(info.value)) < 300  # says what is wrong, not a statement


@pytest.mark.parametrize(("key", "problem"), BAD_KEYS[:3])
def test_bad_keys_never_run_the_function(any_store: Store, key: str, problem: str) -> None:
    runs: list[str] = []

    @idempotent("{key}", store=any_store, lease=30)
    def job(key: str) -> str:
        runs.append(key)
        return key

    with pytest.raises(KeyBuildError, match=problem):
        job(key)
    assert runs == []


def test_unstorable_fingerprints_and_step_names_are_refused(any_store: Store) -> None:
    with pytest.raises(KeyBuildError, match="fingerprint"):
        any_store.claim("k", "\ud800", lease=30, ttl=60)
    with pytest.raises(KeyBuildError, match="fingerprint"):
        any_store.claim("k", "x" * 65, lease=30, ttl=60)
    held = any_store.claim("k", "fp", lease=30, ttl=60)
    assert isinstance(held, Claimed)
    for name in ("\ud800", "a\x00b", "", "n" * 256):
        with pytest.raises(ConfigurationError, match="step name"):
            any_store.save_step(held.lease, name, b"1")
    assert any_store.load_steps(held.lease) == {}

    ran: list[int] = []

    @idempotent("bad-step:{n}", store=any_store, lease=30)
    def job(n: int) -> None:
        step("\ud800", lambda: ran.append(n))

    with pytest.raises(ConfigurationError, match="lone surrogate"):
        job(1)
    assert ran == []  # refused before the step ran, not when its result was saved
    row = any_store.get("bad-step:1")
    assert row is not None and row.status == "released"  # the failure released the claim


def test_mysql_table_of_an_earlier_version_warns_and_the_migration_fixes_it(
    mysql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A table created before binary keys keeps its PAD SPACE text column; opening it says
    so with the ALTER TABLE of docs/runtime/stores.md, which makes "k" and "k " two keys."""
    import logging

    import pymysql

    url = unique_store_url(mysql_url)
    store = open_store(url, create=False)
    table = store.table  # type: ignore[attr-defined]
    old_key = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    admin = pymysql.connect(**{**store._connect_args, "client_flag": 0})  # type: ignore[attr-defined]
    try:
        with admin.cursor() as cur:
            cur.execute(  # the DDL of the earlier version
                f"CREATE TABLE {table} (idem_key {old_key} NOT NULL PRIMARY KEY,"
                " status VARCHAR(16) NOT NULL, epoch BIGINT NOT NULL, run BIGINT NOT NULL,"
                " owner VARCHAR(64) NOT NULL, fingerprint VARCHAR(64) NOT NULL,"
                " lease_expires DOUBLE NOT NULL, expires_at DOUBLE NULL, result LONGBLOB NULL,"
                " claim_kind VARCHAR(16) NOT NULL, updated_at DOUBLE NOT NULL) ENGINE=InnoDB"
            )
            cur.execute(
                f"CREATE TABLE {table}_steps (idem_key {old_key} NOT NULL, run BIGINT NOT NULL,"
                f" name {old_key} NOT NULL, epoch BIGINT NOT NULL, result LONGBLOB NULL,"
                " created_at DOUBLE NOT NULL, PRIMARY KEY (idem_key, run, name)) ENGINE=InnoDB"
            )
        with caplog.at_level(logging.WARNING, logger="idemlint.runtime"):
            store.create_schema()
        warnings = [r.getMessage() for r in caplog.records if r.name == "idemlint.runtime"]
        assert any("text key columns" in w and "ALTER TABLE" in w for w in warnings)
        assert isinstance(store.claim("k", "fp", lease=30, ttl=60), Claimed)
        assert not isinstance(store.claim("k ", "fp", lease=30, ttl=60), Claimed)  # the bug
        store.delete("k")
        with admin.cursor() as cur:
            for statement in store.migration_sql().split(";"):  # type: ignore[attr-defined]
                if statement.strip():
                    cur.execute(statement)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="idemlint.runtime"):
            store.create_schema()
        assert not [r for r in caplog.records if "text key columns" in r.getMessage()]
        assert isinstance(store.claim("k", "fp", lease=30, ttl=60), Claimed)
        assert isinstance(store.claim("k ", "fp", lease=30, ttl=60), Claimed)
    finally:
        admin.close()
        store.drop_schema()
        store.close()

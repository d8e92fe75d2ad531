"""The store contract, run against every backend (SQLite, PostgreSQL, MariaDB, Redis).

These tests drive the stores directly, below the decorator, so that each
semantic of the record (claim, replay, reuse, lease, takeover, fencing,
heartbeat, ttl) is pinned on every backend by the same assertions.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from idemlint.runtime import (
    ConfigurationError,
    KeyReuseError,
    LeaseLost,
    Store,
    StoreError,
    open_store,
)
from idemlint.runtime.stores.base import Claimed, Completed, InProgress


def claim(
    store: Store, key: str = "k", fp: str = "fp", lease: float = 30.0, ttl: float | None = 60.0
):
    return store.claim(key, fp, lease=lease, ttl=ttl)


def test_first_claim_then_in_progress_then_replay(store: Store) -> None:
    first = claim(store)
    assert isinstance(first, Claimed)
    assert first.lease.epoch == 1 and first.lease.kind == "new"
    busy = claim(store)
    assert isinstance(busy, InProgress)
    assert busy.epoch == 1 and 0 < busy.retry_after <= 30.0
    store.complete(first.lease, b'{"ok":1}', ttl=60.0)
    done = claim(store)
    assert isinstance(done, Completed)
    assert done.result == b'{"ok":1}' and done.epoch == 1


def test_different_arguments_are_key_reuse_in_every_state(store: Store) -> None:
    held = claim(store, fp="a")
    assert isinstance(held, Claimed)
    with pytest.raises(KeyReuseError) as info:
        claim(store, fp="b")
    assert info.value.key == "k" and info.value.stored_fingerprint == "a"
    store.complete(held.lease, b"1", ttl=60.0)
    with pytest.raises(KeyReuseError):
        claim(store, fp="b")
    row = store.get("k")
    assert row is not None and row.status == "completed" and row.fingerprint == "a"


def test_release_lets_a_retry_claim_with_a_higher_epoch(store: Store) -> None:
    first = claim(store)
    assert isinstance(first, Claimed)
    store.release(first.lease, ttl=60.0)
    row = store.get("k")
    assert row is not None and row.status == "released" and row.result is None
    retry = claim(store)
    assert isinstance(retry, Claimed)
    assert retry.lease.epoch == 2 and retry.lease.kind == "retry"
    assert retry.lease.run == first.lease.run  # same logical run: steps survive


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(store: Store) -> None:
    old = claim(store, lease=0.3)
    assert isinstance(old, Claimed)
    store.save_step(old.lease, "s1", b"1")
    time.sleep(0.45)
    new = claim(store, lease=30.0)
    assert isinstance(new, Claimed)
    assert new.lease.epoch == 2 and new.lease.kind == "takeover"
    assert store.load_steps(new.lease) == {"s1": b"1"}
    for stale_write in (
        lambda: store.complete(old.lease, b"stale", ttl=60.0),
        lambda: store.heartbeat(old.lease),
        lambda: store.release(old.lease, ttl=60.0),
        lambda: store.save_step(old.lease, "s2", b"stale"),
    ):
        with pytest.raises(LeaseLost) as info:
            stale_write()
        assert info.value.epoch == 1
    row = store.get("k")
    assert row is not None
    assert (row.status, row.epoch, row.owner) == ("in_progress", 2, new.lease.owner)
    assert store.load_steps(new.lease) == {"s1": b"1"}
    store.complete(new.lease, b"fresh", ttl=60.0)
    done = claim(store)
    assert isinstance(done, Completed) and done.result == b"fresh" and done.epoch == 2


def test_heartbeat_keeps_the_lease_alive(store: Store) -> None:
    held = claim(store, lease=0.4)
    assert isinstance(held, Claimed)
    for _ in range(4):
        time.sleep(0.2)
        store.heartbeat(held.lease)
    busy = claim(store)
    assert isinstance(busy, InProgress)  # 0.8 s after a 0.4 s lease: still held
    store.complete(held.lease, b"1", ttl=60.0)


def test_repeated_completion_after_a_lost_reply_succeeds_once(store: Store) -> None:
    held = claim(store)
    assert isinstance(held, Claimed)
    store.complete(held.lease, b"1", ttl=60.0)
    store.complete(held.lease, b"1", ttl=60.0)  # the retry of a completion whose reply was lost
    store.save_step  # noqa: B018 - steps after completion are refused below
    with pytest.raises(LeaseLost):
        store.save_step(held.lease, "late", b"x")
    with pytest.raises(LeaseLost):
        store.release(held.lease, ttl=60.0)  # a done job is never un-done by a release


def test_step_records_belong_to_the_run(store: Store) -> None:
    held = claim(store)
    assert isinstance(held, Claimed)
    store.save_step(held.lease, "a", b"1")
    store.save_step(held.lease, "a", b"1")  # repeat of our own write: accepted, unchanged
    store.save_step(held.lease, "b", b"2")
    assert store.load_steps(held.lease) == {"a": b"1", "b": b"2"}


def test_ttl_expiry_starts_a_new_run_and_purge_removes_records(store: Store) -> None:
    held = claim(store, key="short", ttl=0.3)
    assert isinstance(held, Claimed)
    store.save_step(held.lease, "a", b"1")
    store.complete(held.lease, b"1", ttl=0.3)
    keep = claim(store, key="long", ttl=None)
    assert isinstance(keep, Claimed)
    store.complete(keep.lease, b"2", ttl=None)
    time.sleep(0.45)
    again = claim(store, key="short", fp="other", ttl=0.3)  # past ttl: any arguments, new run
    assert isinstance(again, Claimed)
    assert again.lease.kind == "new" and again.lease.run == again.lease.epoch
    # SQL keeps the dead row until the claim reuses it (epoch 2); Redis expired the
    # key natively, so the count restarts - the owner token still fences the old holder
    assert again.lease.epoch == (1 if store.url.startswith("redis") else 2)
    with pytest.raises(LeaseLost):
        store.complete(held.lease, b"stale", ttl=0.3)
    assert store.load_steps(again.lease) == {}
    store.complete(again.lease, b"3", ttl=0.3)
    time.sleep(0.45)
    purged = store.purge_expired()
    if store.url.startswith("redis"):
        assert purged >= 0  # Redis expired the key natively; the sweep finds nothing left
    else:
        assert purged == 1
    assert store.get("short") is None
    long_row = store.get("long")
    assert long_row is not None and long_row.status == "completed" and long_row.expires_at is None


def test_purge_never_removes_a_live_lease(store: Store) -> None:
    held = claim(store, lease=30.0, ttl=0.1)
    assert isinstance(held, Claimed)
    time.sleep(0.25)
    store.purge_expired()
    row = store.get("k")
    assert row is not None and row.status == "in_progress"


def test_delete_forgets_a_key(store: Store) -> None:
    held = claim(store)
    assert isinstance(held, Claimed)
    assert store.delete("k") is True
    assert store.get("k") is None
    assert isinstance(claim(store), Claimed)


def test_claim_is_one_round_trip_and_completion_one_more(store: Store) -> None:
    claim(store, key="warm")  # schema creation and connection set-up happen here
    before = store.stats.round_trips
    held = claim(store, key="counted")
    assert isinstance(held, Claimed)
    store.complete(held.lease, b"1", ttl=60.0)
    assert store.stats.round_trips - before == 2
    before = store.stats.round_trips
    assert isinstance(claim(store, key="counted"), Completed)
    assert store.stats.round_trips - before == 1


@pytest.mark.parametrize(
    "bad",
    ["drop table x", "t;--", "1abc", "a" * 60, "tab-le", ""],
)
def test_table_names_are_validated(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid"):
        open_store("sqlite://", table=bad)


@pytest.mark.parametrize("bad", ["with space", "a{b}", "x*", ""])
def test_redis_prefixes_are_validated(bad: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigurationError, match="invalid key prefix"):
        open_store("redis://127.0.0.1:6379/0", prefix=bad)


@pytest.mark.parametrize(
    "url",
    ["ftp://x", "sqlite:relative.db", "mysql://root@127.0.0.1:3306/", "nonsense"],
)
def test_bad_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_store(url)


def test_missing_folder_for_sqlite_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")


def test_default_store_comes_from_env_else_dot_idemlint(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IDEMLINT_STORE_URL", raising=False)
    default = open_store()
    assert default.url == f"sqlite:///{tmp_path / '.idemlint' / 'idempotency.sqlite3'}"
    assert isinstance(claim(default), Claimed)
    assert (tmp_path / ".idemlint" / "idempotency.sqlite3").exists()
    assert open_store() is default  # one default store per process and URL
    monkeypatch.setenv("IDEMLINT_STORE_URL", f"sqlite:///{tmp_path}/env.sqlite3")
    from_env = open_store()
    assert from_env.url == f"sqlite:///{tmp_path}/env.sqlite3"
    default.close()
    from_env.close()


def test_table_option_from_the_url_query(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/q.db?table=jobs_keys")
    assert isinstance(claim(store), Claimed)
    import sqlite3

    tables = {
        r[0] for r in sqlite3.connect(tmp_path / "q.db").execute("SELECT name FROM sqlite_master")
    }
    assert {"jobs_keys", "jobs_keys_steps"} <= tables
    store.close()


def test_missing_driver_names_the_extra(monkeypatch) -> None:
    import idemlint.runtime.stores.postgres as pg

    monkeypatch.setattr(pg, "psycopg", None)
    monkeypatch.setattr(pg, "_import_error", ImportError("No module named 'psycopg'"))
    with pytest.raises(ConfigurationError, match=r"pip install 'idemlint\[postgres\]'"):
        open_store("postgresql://u@h/db")


def test_create_false_skips_the_schema_and_create_schema_is_explicit(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    store = open_store(url, create=False)
    from idemlint.runtime import StoreError

    with pytest.raises(StoreError, match="no such table"):
        claim(store)
    store.create_schema()
    store.create_schema()  # repeatable, as a migration step must be
    assert isinstance(claim(store), Claimed)
    store.close()


# -- SQLite under lock contention ----------------------------------------------
class _LockedOnce:
    """A SQLite connection whose first ``BEGIN IMMEDIATE`` fails as SQLite sometimes does
    under many processes in WAL mode: "database is locked" at once, busy timeout or not."""

    failures = 0

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def cursor(self) -> object:
        real = self._conn.cursor()

        class Cursor:
            def execute(self, sql: str, *args: object) -> object:
                if sql == "BEGIN IMMEDIATE" and _LockedOnce.failures < 1:
                    _LockedOnce.failures += 1
                    raise sqlite3.OperationalError("database is locked")
                return real.execute(sql, *args)

            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

        return Cursor()

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_sqlite_retries_a_transaction_the_database_refused_as_locked(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(sqlite_url, table="t_locked_once")
    store.create_schema()
    pool = store._pool  # type: ignore[attr-defined]
    real_connect = pool._connect
    pool._idle.clear()  # every connection from now on is one that refuses once
    monkeypatch.setattr(pool, "_connect", lambda: _LockedOnce(real_connect()))
    _LockedOnce.failures = 0
    assert isinstance(store.claim("k", "fp", lease=5.0, ttl=None), Claimed)
    assert _LockedOnce.failures == 1  # refused once, then run again and claimed
    store.close()


def test_sqlite_gives_up_after_the_busy_timeout_and_claims_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.sqlite3'}"
    store = open_store(url, table="t_busy", busy_timeout=0.3)
    store.create_schema()
    blocker = sqlite3.connect(tmp_path / "busy.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    started = time.monotonic()
    with pytest.raises(StoreError, match="locked"):
        store.claim("k", "fp", lease=5.0, ttl=None)
    assert 0.25 < time.monotonic() - started < 5
    blocker.execute("ROLLBACK")
    blocker.close()
    assert store.get("k") is None  # nothing was recorded by the refused claim
    assert isinstance(store.claim("k", "fp", lease=5.0, ttl=None), Claimed)  # free again: works
    store.close()

"""Whether a store keeps its records across a restart, and what it says when it does not.

Redis keeps data in memory; with ``--save ""`` and ``--appendonly no`` (the
shared server here, and a common default) a restart loses every record, and
every completed job runs again. Opening the store reads the settings and
warns, or refuses under ``require_durable=True``. The shared Redis is only
read (``CONFIG GET``); every restart and every other configuration is a
private ``redis-server`` of the test's own, stopped by its pid.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from _servers import redis_server, start_redis, stop_server

from idemlint.runtime import DurabilityError, StoreError, idempotent, open_store
from idemlint.runtime.stores.base import Claimed, Completed

pytest.importorskip("redis")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "idemlint.runtime" and r.levelno == logging.WARNING
    ]


def test_shared_redis_without_persistence_warns(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    admin = redis.Redis.from_url(redis_url)
    save, aof = admin.config_get("save")["save"], admin.config_get("appendonly")["appendonly"]
    admin.close()
    if save or aof == "yes":
        pytest.skip(f"the shared Redis persists (save {save!r}, appendonly {aof})")
    with caplog.at_level(logging.WARNING, logger="idemlint.runtime"):
        store = open_store(redis_url, prefix=f"t{uuid.uuid4().hex[:12]}")
    try:
        assert store.durability == "none"
        assert store.durability_warning is not None
        assert "appendonly" in store.durability_warning
        assert "restart loses every idempotency record" in store.durability_warning
        assert any("restart loses" in message for message in _warnings(caplog))
    finally:
        store.close()


def test_require_durable_refuses_a_redis_without_persistence(redis_url: str) -> None:
    import redis

    admin = redis.Redis.from_url(redis_url)
    persists = admin.config_get("save")["save"] or admin.config_get("appendonly")["appendonly"]
    admin.close()
    if persists not in ("", "no"):
        pytest.skip("the shared Redis persists")
    with pytest.raises(DurabilityError, match="require_durable=True") as info:
        open_store(redis_url, prefix=f"t{uuid.uuid4().hex[:12]}", require_durable=True)
    assert isinstance(info.value, ValueError)  # a ConfigurationError, as documented
    with pytest.raises(DurabilityError):
        open_store(f"{redis_url}?require_durable=true&prefix=t{uuid.uuid4().hex[:12]}")


def test_redis_with_an_append_only_file_is_durable_and_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path, "--appendonly", "yes") as (url, _):
        with caplog.at_level(logging.WARNING, logger="idemlint.runtime"):
            store = open_store(url, require_durable=True)
        assert store.durability == "aof"
        assert store.durability_warning is None
        assert _warnings(caplog) == []
        store.close()


def test_redis_with_snapshots_only_is_rdb_and_not_refused(tmp_path: Path) -> None:
    with redis_server(tmp_path, "--save", "3600 1") as (url, _):
        store = open_store(url, require_durable=True)
        assert store.durability == "rdb" and store.durability_warning is None
        store.close()


def _runs_across_a_restart(folder: Path, *persistence: str) -> list[int]:
    """Run a job, restart the private server cleanly, call the job again: the runs."""
    runs: list[int] = []
    with redis_server(folder, *persistence) as (url, proc):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        for attempt in (1, 2):
            store = open_store(url)

            @idempotent("restart:{n}", store=store, lease=5)
            def job(n: int) -> int:
                runs.append(n)
                return n

            assert job(1) == 1
            store.close()
            if attempt == 1:
                stop_server(proc)  # SIGTERM: a clean shutdown, Redis writes what it persists
                proc = start_redis(folder, port, *persistence)
        stop_server(proc)
    return runs


def test_a_record_survives_a_restart_only_with_persistence(tmp_path: Path) -> None:
    """The failure the warning is about, shown on private servers: after a restart the
    persistent one replays, the other runs the completed job again."""
    assert _runs_across_a_restart(tmp_path / "aof", "--appendonly", "yes") == [1]
    assert _runs_across_a_restart(tmp_path / "none") == [1, 1]


def test_config_disabled_is_unknown_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path, "--rename-command", "CONFIG", "") as (url, _):
        with caplog.at_level(logging.WARNING, logger="idemlint.runtime"):
            store = open_store(url)
        assert store.durability == "unknown"
        assert store.durability_warning is not None
        assert "cannot read the server's persistence settings" in store.durability_warning
        assert any("CONFIG GET refused" in message for message in _warnings(caplog))
        claim = store.claim("k", "fp", lease=5, ttl=60)  # unknown is a warning, not a failure
        assert isinstance(claim, Claimed)
        store.close()
        with pytest.raises(DurabilityError, match="cannot read"):
            open_store(url, require_durable=True)


def test_an_evicting_redis_warns_even_with_persistence(tmp_path: Path) -> None:
    args = ("--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    with redis_server(tmp_path, *args) as (url, _):
        store = open_store(url)
        assert store.durability == "aof"
        assert store.durability_warning is not None
        assert "maxmemory-policy allkeys-lru" in store.durability_warning
        store.close()
        with pytest.raises(DurabilityError, match="evicts"):
            open_store(url, require_durable=True)


def test_unreachable_at_open_is_checked_before_the_first_claim(tmp_path: Path) -> None:
    """A worker may start before its Redis: opening does not fail, the first claim decides."""
    from _servers import free_port

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    lenient = open_store(url)
    strict = open_store(url, require_durable=True)
    assert lenient.durability == strict.durability == "unknown"
    with pytest.raises(StoreError):
        lenient.claim("k", "fp", lease=5, ttl=60)
    proc = start_redis(tmp_path, port)  # now it is up, and keeps nothing
    try:
        with pytest.raises(DurabilityError):
            strict.claim("k", "fp", lease=5, ttl=60)
        assert isinstance(lenient.claim("k", "fp", lease=5, ttl=60), Claimed)
        assert lenient.durability == "none" and lenient.durability_warning
    finally:
        lenient.close()
        strict.close()
        stop_server(proc)


def test_sql_stores_say_how_they_keep_records(tmp_path: Path) -> None:
    file_store = open_store(f"sqlite:///{tmp_path / 'd.sqlite3'}", require_durable=True)
    assert file_store.durability == "file" and file_store.durability_warning is None
    file_store.close()
    memory = open_store("sqlite://")
    assert memory.durability == "memory" and memory.durability_warning
    memory.close()
    with pytest.raises(DurabilityError, match="memory"):
        open_store("sqlite://", require_durable=True)


def test_a_replay_after_restart_is_a_replay(tmp_path: Path) -> None:
    """With an append-only file the record comes back exactly: a replay, same epoch."""
    with redis_server(tmp_path, "--appendonly", "yes", "--appendfsync", "always") as (url, proc):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        store = open_store(url)
        held = store.claim("k", "fp", lease=5, ttl=60)
        assert isinstance(held, Claimed)
        store.complete(held.lease, b"42", ttl=60)
        store.close()
        stop_server(proc)
        restarted = start_redis(tmp_path, port, "--appendonly", "yes")
        try:
            again = open_store(url)
            done = again.claim("k", "fp", lease=5, ttl=60)
            assert isinstance(done, Completed) and done.result == b"42" and done.epoch == 1
            again.close()
        finally:
            stop_server(restarted)

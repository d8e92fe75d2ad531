"""Service fixtures for the runtime tests (shared with the upsert/locks/framework tests).

``pg_url``, ``mysql_url``, ``redis_url`` are the plain URLs of this machine's
services (override with IDEMLINT_TEST_PG_URL / _MYSQL_URL / _REDIS_URL);
``sqlite_url`` is a fresh SQLite file. ``store_url`` is parametrized over all
four backends and adds a unique table name / key prefix, dropped after the
test; ``store`` is that store opened.

A service that is down skips its tests with the reason, except under
``CI=true``, where it fails them: a green CI must mean the services were tested.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _store_urls import backend_url, unique_store_url

from idemlint.runtime import Store, open_store

PG_URL = os.environ.get("IDEMLINT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("IDEMLINT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("IDEMLINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

BACKENDS = ("sqlite", "postgres", "mysql", "redis")

_checked: dict[str, str | None] = {}


def unavailable(reason: str) -> None:
    """Skip, or fail under CI=true, because a service is missing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


_PROBE_OPTION = {False: "table=idemlint_probe", True: "prefix=probe"}


def _probe(url: str) -> str | None:
    """None when the service answers a real query, else why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            pass
    except OSError as exc:
        return f"{parts.scheme} at {parts.hostname}:{parts.port} is not reachable: {exc}"
    try:
        store = open_store(
            url + ("&" if "?" in url else "?") + _PROBE_OPTION[url.startswith("redis")],
            create=False,
        )
        try:
            store.get("probe")
        except Exception as exc:  # a missing probe table still proves the server answers
            if "probe" not in str(exc) and "exist" not in str(exc).lower():
                return f"{parts.scheme} answered with an error: {exc!r}"
        finally:
            store.close()
    except Exception as exc:
        return f"{parts.scheme} could not be opened: {exc!r}"
    return None


def _service(url: str) -> str:
    if url not in _checked:
        _checked[url] = _probe(url)
    reason = _checked[url]
    if reason is not None:
        unavailable(reason)
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL server URL (database ``test``)."""
    return _service(PG_URL)


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The MariaDB server URL (database ``test``)."""
    return _service(MYSQL_URL)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server URL (db 0)."""
    return _service(REDIS_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file URL in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'idemlint.sqlite3'}"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A store URL with its own table / key prefix on each backend; dropped afterwards."""
    url = unique_store_url(backend_url(request.param, request))
    yield url
    store = open_store(url, create=False)
    try:
        store.drop_schema()
    finally:
        store.close()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The store of ``store_url``, opened (schema created on first use)."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()

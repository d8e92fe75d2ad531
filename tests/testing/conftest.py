"""Service helpers for the testing-companion tests.

PostgreSQL is this machine's (``IDEMLINT_TEST_PG_URL`` overrides it). A
service that is down skips its tests, except under ``CI=true``, where it
fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from run_names import fresh

PG_URL = os.environ.get("IDEMLINT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


def _pg_admin() -> object:
    try:
        import psycopg

        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        unavailable(f"PostgreSQL at {PG_URL} is not reachable: {exc!r}")
        raise AssertionError("unreachable") from exc


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (its name), dropped afterwards with everything in it."""
    admin = _pg_admin()
    name = fresh("db")
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        admin.close()  # type: ignore[attr-defined]

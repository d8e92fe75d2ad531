"""Store URLs for the runtime tests: a backend's base URL through its fixture, and a fresh
table name or key prefix per test. A module of its own, not conftest: test modules import
it by name, and pytest registers every folder's conftest under the one name ``conftest``."""

from __future__ import annotations

import pytest
from run_names import fresh


def backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The base URL of ``backend``, via the fixtures above (so skip/fail rules apply)."""
    name = {
        "sqlite": "sqlite_url",
        "postgres": "pg_url",
        "mysql": "mysql_url",
        "redis": "redis_url",
    }[backend]
    return str(request.getfixturevalue(name))


def unique_store_url(base: str) -> str:
    """``base`` with a fresh table name (SQL) or key prefix (Redis)."""
    option = f"prefix={fresh('s')}" if base.startswith("redis") else f"table={fresh('t')}"
    return base + ("&" if "?" in base else "?") + option

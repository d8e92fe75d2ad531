"""Idempotency-key stores, one module per backend, and :func:`open_store`.

Backends import their driver only when opened, so a worker that uses Redis
does not need psycopg installed, and a missing driver is a clear error that
names the extra to install.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from idemlint.runtime.errors import ConfigurationError
from idemlint.runtime.stores._url import check_network_url, redact
from idemlint.runtime.stores.base import Store

ENV_VAR = "IDEMLINT_STORE_URL"
DEFAULT_DIR = ".idemlint"
DEFAULT_FILE = "idempotency.sqlite3"

_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "redis": "redis",
    "rediss": "redis",
}

_default_lock = threading.Lock()
_default_stores: dict[str, Store] = {}


def default_url() -> str:
    """``$IDEMLINT_STORE_URL``, else a SQLite file under ``.idemlint/`` in the cwd."""
    url = os.environ.get(ENV_VAR, "").strip()
    if url:
        return url
    return f"sqlite:///{Path.cwd() / DEFAULT_DIR / DEFAULT_FILE}"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _options_from_query(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in ("table", "prefix"):
            options[name] = value
        elif name == "max_result_bytes":
            try:
                options[name] = int(value)
            except ValueError as exc:
                raise ConfigurationError(
                    f"max_result_bytes must be an integer, not {value!r}"
                ) from exc
        elif name == "timeout":
            try:
                options[name] = float(value)
            except ValueError as exc:
                raise ConfigurationError(
                    f"timeout must be a number of seconds, not {value!r}"
                ) from exc
        elif name == "wait_replicas":
            options[name] = value  # checked by the Redis store
        elif name == "require_durable":
            if value.lower() not in _TRUE + _FALSE:
                raise ConfigurationError(f"require_durable must be true or false, not {value!r}")
            options[name] = value.lower() in _TRUE
    return options


def open_store(url: str | None = None, **options: Any) -> Store:
    """Open the store a URL names.

    ``sqlite:///path.db`` (``sqlite://`` alone is in-memory),
    ``postgresql://`` / ``postgres://`` (psycopg 3), ``mysql://`` /
    ``mariadb://`` (PyMySQL), ``redis://`` / ``rediss://``, and Redis Cluster as
    ``redis+cluster://host:port,host:port`` (``rediss+cluster://``). Options:
    ``table=`` (SQL stores) or ``prefix=`` (Redis), validated as identifiers;
    ``max_result_bytes=``; ``create=False`` to skip creating the schema (for
    teams that run ``create_schema()`` in a migration); ``timeout=``,
    ``connect_timeout=`` (and ``statement_timeout=`` on SQL servers) to
    replace the timeouts derived from the lease; ``require_durable=True`` to
    refuse a store that would lose records on a restart (a Redis without
    persistence: :class:`~idemlint.runtime.errors.DurabilityError`).
    ``table``, ``prefix``, ``max_result_bytes``, ``timeout`` and
    ``require_durable`` may also come from the URL query (``?table=jobs_keys``).

    A malformed URL (bad port, bad IPv6 address, an unencoded ``/`` in the
    password) is a :class:`ConfigurationError` naming the part, with the
    password blanked. Without ``url`` the default store is shared per process.
    """
    if url is None:
        resolved = default_url()
        with _default_lock:
            store = _default_stores.get(resolved)
            if store is None:
                if resolved.startswith("sqlite:///") and ENV_VAR not in os.environ:
                    Path(resolved[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
                store = open_store(resolved, **options)
                _default_stores[resolved] = store
            return store
    if not isinstance(url, str):
        raise ConfigurationError(f"a store URL must be a string, not {type(url).__name__}")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    backend = _SCHEMES.get(scheme.split("+", 1)[0])
    if backend is None:
        raise ConfigurationError(
            f"unknown store URL {_redact(url)!r}: use sqlite:///file.db, sqlite://, "
            "postgresql://..., mysql://..., mariadb://..., redis://... or redis+cluster://..."
        )
    if backend != "sqlite":
        check_network_url(url)
    try:
        query = urlsplit(url).query
    except ValueError:
        raise ConfigurationError(f"store URL {_redact(url)!r} cannot be parsed") from None
    merged = {**_options_from_query(query), **options}
    try:
        return _open(backend, url, merged)
    except TypeError as exc:
        raise ConfigurationError(f"bad option for a {backend} store: {exc}") from exc


def _open(backend: str, url: str, options: dict[str, Any]) -> Store:
    if backend == "sqlite":
        from idemlint.runtime.stores.sqlite import SQLiteStore

        return SQLiteStore.from_url(url, **options)
    if backend == "postgres":
        from idemlint.runtime.stores.postgres import PostgresStore

        return PostgresStore.from_url(url, **options)
    if backend == "mysql":
        from idemlint.runtime.stores.mysql import MySQLStore

        return MySQLStore.from_url(url, **options)
    from idemlint.runtime.stores.redis import RedisStore

    return RedisStore.from_url(url, **options)


def _redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    return redact(url)


def missing_driver(driver: str, extra: str, exc: ImportError) -> ConfigurationError:
    """The error for a backend whose driver is not installed."""
    return ConfigurationError(
        f"the {driver} driver is not installed ({exc}); "
        f"install it with: pip install 'idemlint[{extra}]'"
    )


__all__ = ["ENV_VAR", "Store", "default_url", "open_store"]

"""Names for what the suite creates on the machine's shared services, and the check that
nothing of one run is left there when it ends.

Every Redis key prefix, table, database, queue or lock a test makes on the shared
PostgreSQL, MariaDB, Redis or RabbitMQ takes its name from :func:`fresh`:
``idt_<run>_<kind><random>``. ``<run>`` is one id per ``pytest`` invocation, shared
by its xdist workers and by the child interpreters its tests start (they inherit the
``IDEMLINT_TEST_RUN`` variable), so names never meet those of another worker or of
another run on the same machine, and :func:`leftovers` finds exactly what this run
left behind: its prefix is the tests' prefix. The process that chose the run id (the
xdist controller, or a plain run) checks it when the session ends (tests/conftest.py).

A module of its own, not conftest: test modules import it by name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator

PREFIX = "idt_"
OWNER = "IDEMLINT_TEST_RUN" not in os.environ
"""True in the process that started this run (it makes the end-of-run check)."""
RUN = os.environ.setdefault("IDEMLINT_TEST_RUN", secrets.token_hex(4))
TAG = f"{PREFIX}{RUN}_"

PG_ADMIN = os.environ.get("IDEMLINT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_HOST, MYSQL_PORT = "127.0.0.1", 3306
REDIS_URL = os.environ.get("IDEMLINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def fresh(kind: str = "") -> str:
    """A new name of this run: letters, digits and ``_`` only, at most 32 characters, so
    it is a valid table, database, key prefix, queue and lock name everywhere."""
    return f"{TAG}{kind[:6]}{secrets.token_hex(6)}"


def _redis() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    try:
        databases = int(client.config_get("databases").get("databases", 16))
    except redis.RedisError:
        databases = 16
    try:
        for db in range(databases):
            client.execute_command("SELECT", db)
            for key in client.scan_iter(match=f"*{TAG}*", count=1000):
                yield f"redis db {db}: key {key.decode(errors='replace')}"
    finally:
        client.close()


def _postgres() -> Iterator[str]:
    import psycopg

    like = TAG.replace("_", r"\_") + "%"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [like]
        ):
            yield f"postgresql: database {name}"
        rows = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE tablename LIKE %s", [like]
        )
        for schema, name in rows:
            yield f"postgresql: table {schema}.{name}"


def _mariadb() -> Iterator[str]:
    import pymysql

    like = TAG.replace("_", r"\_") + "%"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                [like],
            )
            for (name,) in cur.fetchall():
                yield f"mariadb: database {name}"
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_name LIKE %s",
                [like],
            )
            for schema, name in cur.fetchall():
                yield f"mariadb: table {schema}.{name}"
    finally:
        conn.close()


def _rabbitmq() -> Iterator[str]:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return
    done = subprocess.run(
        [tool, "list_queues", "-q", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for name in done.stdout.split():
        if TAG in name:
            yield f"rabbitmq: queue {name}"


def _reachable(url_or_host: str, port: int | None = None) -> bool:
    from urllib.parse import urlsplit

    if port is None:
        parts = urlsplit(url_or_host)
        url_or_host, port = parts.hostname or "127.0.0.1", parts.port or 0
    try:
        socket.create_connection((url_or_host, port), timeout=2).close()
    except OSError:
        return False
    return True


def leftovers() -> list[str]:
    """What this run created on the shared services and did not remove.

    A service that is down has nothing of ours on it (the tests that needed it failed or
    skipped saying so); any other error while looking is raised.
    """
    found: list[str] = []
    if _reachable(REDIS_URL):
        found += _redis()
    if _reachable(PG_ADMIN):
        found += _postgres()
    if _reachable(MYSQL_HOST, MYSQL_PORT):
        found += _mariadb()
    found += _rabbitmq()
    return found

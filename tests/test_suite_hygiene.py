"""The suite keeps to itself: it leaves nothing on the shared services, writes no store into
the work tree, names no path outside the repository but ``../shared``, and runs in parallel
as the README says (issue 15, item 6)."""

from __future__ import annotations

import ast
import re
import socket
import sys
from pathlib import Path

import pytest
import run_names
from run_names import TAG, fresh, leftovers

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def _up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def test_fresh_names_are_valid_tables_prefixes_and_databases_everywhere() -> None:
    names = {fresh(kind) for kind in ("", "t", "prefix", "database")}
    assert len(names) == 4
    for name in names:
        assert name.startswith(TAG) and len(name) <= 32
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,47}", name)  # SQL store table names
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}", name)  # Redis prefixes


def test_the_end_of_run_check_sees_what_this_run_leaves_on_redis() -> None:
    redis = pytest.importorskip("redis")
    if not _up(6379):
        pytest.skip("Redis is not reachable")
    client = redis.Redis.from_url(run_names.REDIS_URL)
    key = f"rq:job:{fresh('j')}"  # the kind of key RQ used to leave behind
    client.set(key, "left", ex=60)
    try:
        assert any(key in found for found in leftovers())
    finally:
        client.delete(key)
    assert not any(key in found for found in leftovers())
    client.close()


def test_the_end_of_run_check_sees_a_table_this_run_leaves_on_postgresql() -> None:
    psycopg = pytest.importorskip("psycopg")
    if not _up(5432):
        pytest.skip("PostgreSQL is not reachable")
    table = fresh("t")
    with psycopg.connect(run_names.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int)")
        try:
            assert f"postgresql: table public.{table}" in leftovers()
        finally:
            conn.execute(f"DROP TABLE {table}")
    assert not [found for found in leftovers() if table in found]


def test_the_default_store_is_outside_the_work_tree() -> None:
    """idemlint.runtime's default store is ``.idemlint/`` under the current folder, the
    project folder for the suite: the suite points it at a temporary folder instead."""
    from idemlint.runtime.stores import default_url

    url = default_url()
    assert url.startswith("sqlite:///")
    assert not Path(url.removeprefix("sqlite:///")).resolve().is_relative_to(REPO)


_ABSOLUTE = re.compile(r"^/(?:work|home|root|tmp|var|opt|srv|mnt|media|usr/(?!bin/env))/?")
"""A machine's folders; /proc and /dev are the kernel's interface, not a place of files."""


def test_no_test_names_a_path_outside_the_repository() -> None:
    """Paths come from the test's tmp_path, the repository (``REPO / ...``) or ``../shared``;
    an absolute path in a test skips or fails on another machine or clone."""
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        parts = {  # the literal pieces of f-strings, which are not paths of their own
            id(piece) for f in ast.walk(tree) if isinstance(f, ast.JoinedStr) for piece in f.values
        }
        for node in ast.walk(tree):
            whole = isinstance(node, ast.Constant) and id(node) not in parts
            text = node.value if whole else None
            if isinstance(text, str) and _ABSOLUTE.match(text) and " " not in text:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {text}")
    assert not found, found


def test_the_readme_command_runs_the_suite_in_parallel() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    command = next(line for line in readme.splitlines() if "python3 -m pytest" in line)
    assert " -n " in command, command
    data = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    dev = data["project"]["optional-dependencies"]["dev"]
    assert any(req.startswith("pytest-xdist") for req in dev)

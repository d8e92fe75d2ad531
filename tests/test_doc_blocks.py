"""Every code block of README.md and docs/ is run or checked, by the convention in
tests/doc_blocks.py: python runs, idemlint commands run on the example shop and their
shown output is the real one, toml passes the config loader, and so on."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml
from doc_blocks import (
    ELISION,
    LANGUAGES,
    MARKERS,
    REPO,
    SHELL,
    SHOP,
    Block,
    all_blocks,
    category,
    clean_env,
    commands,
    matches,
    runs,
    shop_sandbox,
    yaml_commands,
)
from run_names import fresh

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BLOCKS = all_blocks()
MOST_SKIPPED = 4
"""Deliberate fragments allowed in all the docs: each needs a reason, and few may exist."""

PG_SERVER = "127.0.0.1:5432"
MYSQL_SERVER = "127.0.0.1:3306"
REDIS_SERVER = "127.0.0.1:6379"


def of(lang: str | tuple[str, ...]) -> list[Block]:
    langs = (lang,) if isinstance(lang, str) else lang
    return [b for b in BLOCKS if b.lang in langs and category(b) != "skip"]


def ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


# --- the convention itself ---------------------------------------------------------------


def test_every_block_names_a_known_language_and_known_markers() -> None:
    for block in BLOCKS:
        assert block.lang in LANGUAGES, f"{block.where}: give the block a language {LANGUAGES}"
        for what, why in block.markers:
            assert what in MARKERS, f"{block.where}: unknown doc-test marker {what!r}"
            if what == "skip":
                assert why.strip(), f"{block.where}: a skipped block says why"
            else:
                assert block.lang == "python", f"{block.where}: {what} is for python blocks"


def test_fragments_are_few() -> None:
    skipped = [b.where for b in BLOCKS if category(b) == "skip"]
    assert len(skipped) <= MOST_SKIPPED, skipped


def test_fragments_are_reported() -> None:
    """The deliberate fragments are reported as skipped, each with the reason written
    before it (there are none today: every block runs)."""
    skipped = [f"{b.where}: {b.skip_reason}" for b in BLOCKS if category(b) == "skip"]
    if skipped:
        pytest.skip("documentation fragments not run: " + "; ".join(skipped))


# --- python ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_up(address: str) -> bool:
    host, port = address.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


@contextmanager
def _pg_database() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    if not _service_up(PG_SERVER):
        _unavailable(f"PostgreSQL is not reachable at {PG_SERVER}")
    name = fresh("docs")
    url = f"postgresql://postgres@{PG_SERVER}/test"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _mysql_database() -> Iterator[str]:
    pymysql = pytest.importorskip("pymysql")
    if not _service_up(MYSQL_SERVER):
        _unavailable(f"MariaDB is not reachable at {MYSQL_SERVER}")
    name = fresh("docs")
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        try:
            yield name
        finally:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


@contextmanager
def _redis_server(folder: Path) -> Iterator[int]:
    """A Redis of the page's own: its keys are gone with it, whatever the page wrote."""
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed")
    port = _free_port()
    folder.mkdir()
    options = ["--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [binary, "--port", str(port), *options, "--logfile", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not _service_up(f"127.0.0.1:{port}"):
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _python_pages() -> list[str]:
    return sorted({b.page for b in of("python")})


@pytest.mark.parametrize("page", _python_pages())
def test_python_blocks_run(page: str, tmp_path: Path) -> None:
    blocks = [b for b in of("python") if b.page == page]
    text = "".join(b.code for b in blocks)
    django = any(b.marker("django-shop") is not None for b in blocks)
    folder = tmp_path / "project"
    folder.mkdir()
    rewrites: list[list[str]] = []
    shop_database: dict[str, str] = {}
    with ExitStack() as stack:
        if django or PG_SERVER in text:
            name = stack.enter_context(_pg_database())
            rewrites.append([f"{PG_SERVER}/test", f"{PG_SERVER}/{name}"])
            shop_database = {
                "SHOP_DB_ENGINE": "django.db.backends.postgresql",
                "SHOP_DB_NAME": name,
                "SHOP_DB_USER": "postgres",
                "SHOP_DB_HOST": "127.0.0.1",
                "SHOP_DB_PORT": "5432",
            }
        if MYSQL_SERVER in text:
            name = stack.enter_context(_mysql_database())
            rewrites.append([f"{MYSQL_SERVER}/test", f"{MYSQL_SERVER}/{name}"])
        if REDIS_SERVER in text:
            port = stack.enter_context(_redis_server(tmp_path / "redis"))
            rewrites.append([REDIS_SERVER, f"127.0.0.1:{port}"])
        spec = {
            "folder": str(folder),
            "shop": str(SHOP),
            "shop_database": shop_database,
            "rewrites": rewrites,
            "results": str(tmp_path / "results.json"),
            "blocks": [
                {
                    "where": b.where,
                    "code": b.code,
                    "file": b.file_name,
                    "test": b.is_test_file,
                    "django": b.marker("django-shop") is not None,
                }
                for b in blocks
            ],
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec), "utf-8")
        env = clean_env()
        env.pop("IDEMLINT_STORE_URL", None)  # the page's default store: .idemlint/ in its folder
        done = subprocess.run(
            [sys.executable, str(REPO / "tests" / "doc_runner.py"), str(tmp_path / "spec.json")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    output = (done.stdout[-6000:] + done.stderr[-4000:]).strip()
    assert done.returncode == 0, output
    results = json.loads((tmp_path / "results.json").read_text("utf-8"))
    assert [r["where"] for r in results] == [b.where for b in blocks]
    failed = [f"{r['where']}:\n{r['error']}" for r in results if r["error"]]
    assert not failed, "\n\n".join(failed) + "\n\noutput:\n" + output


# --- shell -----------------------------------------------------------------------------


def _pyproject() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    return data


def _check_pip_install(argv: list[str], where: str) -> None:
    """A ``pip install`` names this package, or this folder, with extras that exist."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    extras = set(project["optional-dependencies"])
    targets = [a for a in argv[argv.index("install") + 1 :] if not a.startswith("-")]
    assert targets, where
    for target in targets:
        name, _, rest = target.partition("[")
        assert name in (".", project["name"]), f"{where}: installs {target!r}"
        wanted = set(filter(None, rest.rstrip("]").split(",")))
        assert wanted <= extras, f"{where}: no extra {sorted(wanted - extras)} in pyproject.toml"


def _check_other_command(argv: list[str], block: Block) -> None:
    """A command the suite does not run is checked against the repository instead."""
    where = block.where
    program = argv[0]
    if "pip" in argv[:3] and "install" in argv:
        _check_pip_install(argv, where)
    elif argv[:3] in (["python3", "-m", "pytest"], ["python", "-m", "pytest"]):
        # The test command itself: .ci/run runs exactly the README's second command.
        assert block.page == "README.md", f"{where}: the suite is run by README's command"
    elif program in ("python", "python3") and argv[1].endswith(".py"):
        assert (REPO / argv[1]).is_file(), f"{where}: no script {argv[1]}"
    elif program == "git":
        assert argv[1] in ("add", "commit"), f"{where}: git {argv[1]}"
    elif program == "pre-commit":
        hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
        assert argv[1] == "try-repo" and argv[3] in {h["id"] for h in hooks}, where
    else:
        raise AssertionError(f"{where}: the suite neither runs nor checks {' '.join(argv)!r}")


@pytest.mark.parametrize("block", of(SHELL), ids=ids(of(SHELL)))
def test_shell_block(block: Block, tmp_path: Path) -> None:
    sandbox = shop_sandbox(tmp_path)
    env = clean_env()
    for command in commands(block):
        argv = command.argv
        if not runs(command):
            _check_other_command(argv, block)
            continue
        done = _run(command.line, sandbox, env)
        assert done.returncode in (0, 1), f"{block.where}: {command.line}\n{done.stderr}"
        if command.output is not None:
            real = done.stdout.rstrip("\n").split("\n")
            assert matches(command.output, real), (
                f"{block.where}: the output shown for `{command.line}` is not what it prints;"
                " `python tests/doc_blocks.py --write` rewrites it from a real run.\n"
                + "\n".join(real)
            )


def _run(line: str, sandbox: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from doc_blocks import Command, run_command

    return run_command(Command(line, None), sandbox, env)


def test_readme_second_command_is_what_ci_runs() -> None:
    readme = next(b for b in BLOCKS if b.page == "README.md" and b.lang == "bash")
    lines = [line for line in readme.code.split("\n") if line and not line.startswith("#")]
    second = lines[1]
    ci = (REPO / ".ci" / "run").read_text("utf-8").rstrip("\n").split("\n")[-1]
    assert ci == second.replace("python3 -m pip install -e", "python3 -m pip install -q -e")


# --- toml, yaml, ini, json, sql --------------------------------------------------------------


@pytest.mark.parametrize("block", of("toml"), ids=ids(of("toml")))
def test_toml_block_is_a_valid_configuration(block: Block, tmp_path: Path) -> None:
    from idemlint.config import parse_table
    from idemlint.lint.files.project_root import idemlint_table

    data = tomllib.loads(block.code)
    table = idemlint_table(data)
    assert table is not None, f"{block.where}: no [tool.idemlint] table"
    parse_table(table, root=tmp_path, file=tmp_path / "pyproject.toml")


@pytest.mark.parametrize("block", of("yaml"), ids=ids(of("yaml")))
def test_yaml_block(block: Block, tmp_path: Path) -> None:
    data = yaml.safe_load(block.code)
    assert data is not None, block.where
    if isinstance(data, dict) and "repos" in data:
        from pre_commit.clientlib import load_config

        config = tmp_path / ".pre-commit-config.yaml"
        config.write_text(block.code, "utf-8")
        load_config(str(config))
    found = yaml_commands(block.code)
    if found:
        sandbox = shop_sandbox(tmp_path / "sandbox")
        for line in found:
            done = _run(line, sandbox, clean_env())
            assert done.returncode in (0, 1), f"{block.where}: {line}\n{done.stderr}"


@pytest.mark.parametrize("block", of("ini"), ids=ids(of("ini")))
def test_ini_block(block: Block) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(block.code)
    assert parser.sections(), block.where


@pytest.mark.parametrize("block", of("json"), ids=ids(of("json")))
def test_json_block(block: Block, tmp_path: Path) -> None:
    data = json.loads(block.code)
    if block.page == "docs/baseline.md":
        from idemlint.report.baseline import read_baseline

        path = tmp_path / ".idemlint-baseline.json"
        path.write_text(block.code, "utf-8")
        assert read_baseline(path), block.where
    else:
        assert data, block.where


def _pg_columns(url: str) -> set[tuple[str, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall()
        rows += conn.execute(
            "SELECT tablename, indexname, indexdef, '' FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    return {tuple(str(v) for v in row) for row in rows}


@pytest.mark.parametrize("block", of("sql"), ids=ids(of("sql")))
def test_sql_block_runs_and_matches_the_store(block: Block) -> None:
    """The DDL shown for a migration makes the tables the store makes; the MariaDB
    migration runs on the store's tables and leaves them as the store makes them."""
    from idemlint.runtime import open_store

    if "CREATE TABLE" in block.code:
        with _pg_database() as mine, _pg_database() as theirs:
            with pytest.importorskip("psycopg").connect(
                f"postgresql://postgres@{PG_SERVER}/{mine}", autocommit=True
            ) as conn:
                conn.execute(block.code)
            store = open_store(f"postgresql://postgres@{PG_SERVER}/{theirs}")
            try:
                store.create_schema()
            finally:
                store.close()
            assert _pg_columns(f"postgresql://postgres@{PG_SERVER}/{mine}") == _pg_columns(
                f"postgresql://postgres@{PG_SERVER}/{theirs}"
            ), block.where
    else:
        assert "ALTER TABLE" in block.code, f"{block.where}: which statement is this?"
        pymysql = pytest.importorskip("pymysql")
        with _mysql_database() as name:
            store = open_store(f"mysql://root@{MYSQL_SERVER}/{name}")
            try:
                store.create_schema()
                assert " ".join(block.code.split()) == store.migration_sql(), block.where
            finally:
                store.close()
            conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", database=name)
            try:
                with conn.cursor() as cur:
                    for statement in filter(str.strip, block.code.split(";")):
                        cur.execute(statement)
            finally:
                conn.close()


def test_console_output_elision_is_one_line() -> None:
    for block in of("console"):
        for command in commands(block):
            for line in command.output or ():
                assert line.strip() != ELISION or line == ELISION, block.where

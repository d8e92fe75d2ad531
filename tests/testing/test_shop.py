"""The shop's tasks under assert_retry_safe, on SQLite and on PostgreSQL.

The checks themselves are in shop_checks.py; they run in a child interpreter
because they configure Django with the shop's settings, which are
process-global (other tests of this suite configure Django their own way).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

PG_URL = os.environ.get("IDEMLINT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPECTED = 11
"""The number of tests in shop_checks.py; all must run and pass."""


def _run_child(tmp_path: Path, env_extra: dict[str, str]) -> None:
    report = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(env_extra)
    if "PYTHONPYCACHEPREFIX" not in env:  # bytecode beside the fixture otherwise
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            str(HERE / "shop_checks.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    cases = list(ET.parse(report).getroot().iter("testcase"))
    bad = [c.attrib["name"] for c in cases if any(ch.tag != "system-out" for ch in c)]
    assert not bad, output
    assert len(cases) == EXPECTED, output


def test_shop_on_sqlite(tmp_path: Path) -> None:
    _run_child(
        tmp_path,
        {
            "SHOP_DB_NAME": str(tmp_path / "shop.sqlite3"),
            "IDEMLINT_TEST_STORE_URL": f"sqlite:///{tmp_path / 'keys.sqlite3'}",
        },
    )


def test_shop_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    server = urlsplit(PG_URL)
    _run_child(
        tmp_path,
        {
            "SHOP_DB_ENGINE": "django.db.backends.postgresql",
            "SHOP_DB_NAME": pg_database,
            "SHOP_DB_USER": server.username or "postgres",
            "SHOP_DB_HOST": server.hostname or "127.0.0.1",
            "SHOP_DB_PORT": str(server.port or 5432),
            "IDEMLINT_TEST_STORE_URL": (
                f"postgresql://{server.username or 'postgres'}@{server.hostname}:"
                f"{server.port or 5432}/{pg_database}?table=idemlint_keys"
            ),
        },
    )

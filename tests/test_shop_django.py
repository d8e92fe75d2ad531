"""The shop (fixtures/shop) is real code: its tasks run against a real database.

The shop's own test suite configures Django with the shop's settings, migrates
an in-memory SQLite database, runs every naive and fixed task eagerly through
Celery, and replaces the gateway and the carrier at the ``requests`` level with
a recorder. It runs in a child interpreter because Django settings are
process-global: configuring them here would clash with any other test of this
suite that configures Django for itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SHOP = Path(__file__).resolve().parent.parent / "fixtures" / "shop"

# Every scenario of issue 2 the shop has to demonstrate; each must have run and passed.
SCENARIOS = {
    "test_naive_charge_creates_and_settles_a_payment",
    "test_naive_charge_leaves_a_second_payment_when_retried",
    "test_fixed_charge_charges_once_per_key",
    "test_fixed_charge_retries_with_the_same_key",
    "test_charge_with_an_unenforced_key_still_works_once",
    "test_naive_inventory_update_decrements_stock",
    "test_fixed_inventory_update_decrements_stock_once",
    "test_naive_profile_write_updates_the_row_it_created",
    "test_fixed_profile_write_upserts_on_the_user",
    "test_naive_confirmation_mails_decrements_and_books_a_shipment",
    "test_fixed_confirmation_does_each_step_once",
}


def _passed_tests(junit_xml: Path) -> tuple[set[str], list[str]]:
    """Names of the test cases that passed, and ``name: reason`` of those that did not."""
    passed: set[str] = set()
    problems: list[str] = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = case.attrib["name"].split("[", 1)[0]
        outcome = next(
            (child for child in case if child.tag in {"failure", "error", "skipped"}), None
        )
        if outcome is None:
            passed.add(name)
        else:
            problems.append(f"{name}: {outcome.tag}: {outcome.attrib.get('message', '')}")
    return passed, problems


def test_shop_tasks_run_against_sqlite(tmp_path: Path) -> None:
    report = tmp_path / "shop-junit.xml"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SHOP_") and key != "DJANGO_SETTINGS_MODULE"
    }
    if "PYTHONPYCACHEPREFIX" not in env:  # keep the fixture tree free of __pycache__
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=SHOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed, problems = _passed_tests(report)
    assert not problems, "\n".join(problems)
    missing = SCENARIOS - passed
    assert not missing, f"scenarios that did not run: {sorted(missing)}\n{output}"
    assert not (SHOP / "db.sqlite3").exists(), "the shop's tests must use an in-memory database"

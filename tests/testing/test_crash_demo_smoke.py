"""A small run of bench/crash_demo.py: real worker, real kills, every variant, cleaned up.

Not a benchmark: it checks the demo still works end to end (the idempotent and
the atomic-steps runs have no duplicate and no lost job, the naive run
completes) and leaves no
process, database or Redis key behind. It asserts on counts, never on time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from run_names import fresh

ROOT = Path(__file__).resolve().parents[2]


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_crash_demo_small_run(tmp_path: Path) -> None:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        if not _reachable(port):
            if os.environ.get("CI") == "true":
                pytest.fail(f"{name} on 127.0.0.1:{port} is required under CI=true")
            pytest.skip(f"{name} on 127.0.0.1:{port} is not reachable")
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "crash_demo.py"),
            "--n", "16", "--kills", "4", "--min-kills", "4", "--main-every", "0",
            "--pause", "0.05", "--budget", "40", "--no-chart", "--out", str(tmp_path),
            "--names", fresh("demo"),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    table = (tmp_path / "crash_demo.txt").read_text()
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in table.splitlines()
        if line.startswith("| ")
    }
    for column in (1, 2):  # the idempotent and the atomic-steps variants
        assert rows["kills (children + main)"][column].startswith("4 ")
        for row in ("duplicate emails", "double decrements", "duplicate shipments", "lost jobs"):
            assert rows[row][column] == "0", table
    assert rows["lost jobs"][0] == "0", table  # the naive run finishes too, duplicates or not
    leftovers = subprocess.run(
        ["pgrep", "-f", "bench.crash_demo_app.worker"], capture_output=True, text=True
    ).stdout.split()
    assert leftovers == []

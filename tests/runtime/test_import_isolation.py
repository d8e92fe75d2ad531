"""Importing the runtime in a worker must not drag in the analyzer (libcst)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import idemlint.runtime
from idemlint.runtime import idempotent, open_store, step
store = open_store("sqlite://")
@idempotent("k:{n}", store=store)
def job(n):
    return step("s", lambda: n)
assert job(1) == 1 and job.call_detailed(1).replayed
print(json.dumps(sorted(sys.modules)))
"""


def test_runtime_import_does_not_load_libcst_or_the_analyzer() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "idemlint.runtime" in modules  # the probe really imported it
    assert not any(m == "libcst" or m.startswith("libcst.") for m in modules)
    analyzer = {
        "idemlint.lint.checks",
        "idemlint.lint.knowledge",
        "idemlint.cli",
        "idemlint.lint.analysis.walk",
        "idemlint.lint.index.tasks",
    }
    assert not modules & analyzer, modules & analyzer
    drivers = {"psycopg", "pymysql", "redis"}
    assert not modules & drivers, "store drivers load only when their store is opened"

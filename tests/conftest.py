"""What every test of the suite shares: this tree's package, a store outside the project,
and the end-of-run check that nothing was left on the shared services.

- Child interpreters (``python -m idemlint``, flake8, pre-commit, pytest in a subprocess)
  import the installed package. Another clone's ``pip install -e`` on the same machine
  moves that install to the other tree, and the suite would test that tree's code in its
  subprocesses: the run stops at once and says so.
- Where ``PYTHONDONTWRITEBYTECODE`` is set, the run's processes keep their bytecode in a
  temporary folder of the run instead (``PYTHONPYCACHEPREFIX``), removed at its end.
- ``idemlint.runtime``'s default store is ``.idemlint/`` under the current folder, which
  for the suite is the project folder: ``IDEMLINT_STORE_URL`` puts it in a temporary one.
- When the run ends, the process that started it looks for anything named with this run's
  prefix on Redis, PostgreSQL, MariaDB and RabbitMQ (tests/run_names.py) and fails the
  run if something is there.
- The summary counts the documentation blocks the suite runs (tests/doc_blocks.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import run_names

REPO = Path(__file__).resolve().parents[1]

if run_names.OWNER:
    os.environ["IDEMLINT_TEST_STORE_DIR"] = tempfile.mkdtemp(prefix="idemlint-store-")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # Where bytecode is never written, every child interpreter (hundreds of
        # ``python -m idemlint`` and flake8 calls) and every xdist worker's assertion
        # rewriting compiles idemlint's modules from source again: a quarter of a second
        # a call. The run's processes keep their bytecode in a folder of this run instead
        # (removed at its end), so nothing is written beside the sources either.
        os.environ["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="idemlint-pyc-")
        del os.environ["PYTHONDONTWRITEBYTECODE"]
if run_names.OWNER or os.environ.get("PYTEST_XDIST_WORKER"):
    # one file per xdist worker: two tests that use the same key on the default store at
    # the same time would otherwise replay each other's results
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _store = Path(os.environ["IDEMLINT_TEST_STORE_DIR"]) / f"idempotency-{_worker}.sqlite3"
    os.environ["IDEMLINT_STORE_URL"] = f"sqlite:///{_store}"


_LEFT = pytest.StashKey[list[str]]()


def _installed_tree() -> str:
    """Where a child interpreter outside this folder imports idemlint and its rules from."""
    code = "import idemlint, idemlint.rulefiles as r; print(idemlint.__file__); print(*r.__path__)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


def pytest_configure(config: pytest.Config) -> None:
    """Stop before anything runs when the installed idemlint is not this work tree's."""
    if not run_names.OWNER or config.option.collectonly:
        return
    found = _installed_tree()
    lines = found.split()
    if len(lines) != 2 or not all(Path(p).resolve().is_relative_to(REPO) for p in lines):
        raise pytest.UsageError(
            f"the installed idemlint is not this work tree's ({REPO}); child processes "
            f"would test other code. Run `python3 -m pip install -e .` here.\n{found}"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when something of it is still on a shared service."""
    if not run_names.OWNER:
        return
    shutil.rmtree(os.environ["IDEMLINT_TEST_STORE_DIR"], ignore_errors=True)
    if "idemlint-pyc-" in os.environ.get("PYTHONPYCACHEPREFIX", ""):
        shutil.rmtree(os.environ["PYTHONPYCACHEPREFIX"], ignore_errors=True)
    if session.config.option.collectonly or session.testscollected == 0:
        return
    left = run_names.leftovers()
    session.config.stash[_LEFT] = left
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


GROUPS = {
    "tests/test_precommit.py": "pre-commit",  # one hook environment, built once
    "tests/test_docs.py": "mkdocs",  # one site build for the module's tests
}
"""Modules whose tests share an expensive module fixture run on one xdist worker
(``--dist loadgroup``): spread over several, each would build it again."""

FIRST = (
    "tests/test_precommit.py",
    "tests/test_perf_positions.py::test_fast_summaries_equal_reference_on_installed_package",
    "tests/testing/test_crash_demo_smoke.py",
    "tests/runtime/test_atomic_crash.py",
    "tests/test_fuzz.py",
    "tests/testing/test_shop.py",
    "tests/runtime/test_concurrency.py",
    "tests/test_doc_blocks.py::test_python_blocks_run",
    "tests/runtime/test_frozen_server.py",
    "tests/test_shop_django.py",
)
"""The longest tests, started first: a worker that takes one of them last would end the
run alone long after the others (no test is timed; this is only the order)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = GROUPS.get(item.nodeid.split("::", 1)[0])
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))

    def rank(item: pytest.Item) -> int:
        return next((i for i, p in enumerate(FIRST) if item.nodeid.startswith(p)), len(FIRST))

    items.sort(key=rank)


def _doc_summary() -> str:
    from collections import Counter

    from doc_blocks import all_blocks, category

    blocks = all_blocks()
    run = Counter(b.lang for b in blocks if category(b) == "run")
    said = ", ".join(f"{lang} {n}" for lang, n in run.most_common())
    counts = Counter(category(b) for b in blocks)
    return (
        f"documentation blocks: {counts['run']} executed ({said}), {counts['check']} "
        f"checked (yaml, ini, json, shell without an idemlint command), {counts['sample']} "
        f"output samples, {counts['skip']} skipped fragments, of {len(blocks)} in README.md "
        "and docs/"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran_docs = any(
        "test_doc_blocks.py" in getattr(report, "nodeid", "")
        for reports in terminalreporter.stats.values()
        for report in reports
    )
    if ran_docs:
        terminalreporter.write_line(_doc_summary())
    left = terminalreporter.config.stash.get(_LEFT, [])
    if left:
        terminalreporter.section("left on the shared services", red=True)
        terminalreporter.line(
            f"{len(left)} thing(s) named with this run's prefix {run_names.TAG!r} "
            "are still there; the tests that made them must remove them:"
        )
        for item in left:
            terminalreporter.line(f"  {item}")

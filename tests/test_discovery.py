"""Task discovery: every registration form finds its task, with the options that say how it
runs twice, and the text pre-check never loses one.

Fixture projects, one per form (``tests/test_fixtures.py`` checks their findings):

* ``callable_actors``: a task decorator called as a function on a callable instance
  (``dramatiq.actor(DeliverHook(), retry_when=...)``): the task is the ``run`` the base
  class's ``__call__`` runs, or the instance's own ``__call__``; the options carry over;
* ``module_app``: ``from .. import workerconf`` then ``@workerconf.app.task``;
* ``app_objects``: a Celery app whose class is read from a setting, known by
  ``app.config_from_object(...)``;
* ``rq_plain``: RQ jobs known only from enqueue and schedule sites, one project wrapper
  deep (also through ``functools.partial``), ``{"func": f, "interval": ...}`` definitions,
  django-rq's ``@job``;
* ``job_runners``: a base class that enqueues ``cls.handle`` through a model helper (a
  model its package re-exports with ``from .jobs import *``); each subclass's ``run`` is a
  task, the abstract base's is not;
* ``schedule_tests``: a beat schedule copied into a test module: the application's own
  definition is the source;
* ``namespace_app``: a package under a folder without ``__init__.py`` inside a package
  (``shop/billing/migrations/tasks/``): its modules are named through the namespace
  folder, so ``from ....workerconf import app`` resolves.

``idemlint tasks`` lists the same table (name, framework, declaration, delivery).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from idemlint.config import load_config
from idemlint.lint.index.delivery import is_test_path
from idemlint.lint.index.project import Project
from idemlint.lint.index.tasks import Declaration, Task, merge_declarations
from idemlint.lint.run import incremental
from idemlint.lint.run.engine import check

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROJECTS = sorted(p.parent.name for p in FIXTURES.glob("*/pyproject.toml"))

Mech = tuple[str, str, str]
"""(kind, detail, source) of a mechanism."""


def _tasks(
    root: Path, monkeypatch: pytest.MonkeyPatch, *, prefilter: bool = True, cache: bool = False
) -> dict[str, tuple[str, tuple[int, int, int, int], list[Mech]]]:
    """The tasks ``idemlint check`` finds in ``root``: name -> (framework, span, mechanisms)."""
    found: dict[str, tuple[str, tuple[int, int, int, int], list[Mech]]] = {}

    def recording(
        project: Project,
        declarations: list[list[Declaration]],
        signal: Callable[[Task], str] | None = None,
    ) -> dict[str, Task]:
        tasks = merge_declarations(project, declarations, signal)
        for name, task in tasks.items():
            _, framework, span, mechanisms = task.record()
            found[name] = (
                framework,
                span,
                [(m[0], m[1], f"{m[2]}:{m[3]}" if m[2] else "") for m in json.loads(mechanisms)],
            )
        return tasks

    with monkeypatch.context() as m:
        m.setattr(incremental, "merge_declarations", recording)
        config = load_config([root]).with_overrides(no_cache=not cache)
        check([root], config, cwd=root, prefilter=prefilter)
    return found


EXPECTED: dict[str, dict[str, tuple[str, list[Mech]]]] = {
    "callable_actors": {
        "hooks.deliver.DeliverHook.run": (
            "dramatiq",
            [
                (
                    "redelivery",
                    "Dramatiq acknowledges a message only after it ran",
                    "hooks/deliver.py:25",
                ),
                ("retry", "retry_when=should_retry", "hooks/deliver.py:25"),
            ],
        ),
        # max_retries=0: no retry, still redelivered
        "hooks.deliver.PingHook.run": (
            "dramatiq",
            [
                (
                    "redelivery",
                    "Dramatiq acknowledges a message only after it ran",
                    "hooks/deliver.py:36",
                )
            ],
        ),
        "hooks.receipts.SendReceipt.__call__": (
            "dramatiq",
            [
                (
                    "redelivery",
                    "Dramatiq acknowledges a message only after it ran",
                    "hooks/receipts.py:18",
                ),
                (
                    "retry",
                    "Dramatiq retries a failed message, up to 20 times by default",
                    "hooks/receipts.py:18",
                ),
            ],
        ),
        "hooks.receipts._archive_receipt": (
            "dramatiq",
            [
                (
                    "redelivery",
                    "Dramatiq acknowledges a message only after it ran",
                    "hooks/receipts.py:25",
                )
            ],
        ),
    },
    "module_app": {
        "shop.orders.tasks.push_order": (
            "celery",
            [("redelivery", "acks_late=True", "shop/orders/tasks.py:6")],
        ),
        "shop.orders.tasks.fetch_order": ("celery", []),
        "shop.orders.refunds.refund": (
            "celery",
            [("retry", "autoretry_for=(requests.RequestException,)", "shop/orders/refunds.py:6")],
        ),
    },
    "app_objects": {
        "shop.jobs.push_order": ("celery", [("redelivery", "acks_late=True", "shop/jobs.py:6")]),
        "shop.jobs.fetch_order": ("celery", []),
    },
    "rq_plain": {
        "reports.mail.notify": ("rq", []),
        "reports.mail.welcome": (
            "rq",
            [
                ("redelivery", "retry=3", "reports/mail.py:10"),
                ("retry", "retry=3", "reports/mail.py:10"),
            ],
        ),
        # through the project's wrapper: the wrapper's own options
        "reports.work.refresh_report": (
            "rq",
            [
                ("redelivery", "retry= at the enqueue() call", "reports/queues.py:19"),
                ("retry", "retry= at the enqueue() call", "reports/queues.py:19"),
            ],
        ),
        "reports.work.lookup_report": (
            "rq",
            [
                ("redelivery", "retry= at the enqueue() call", "reports/queues.py:19"),
                ("retry", "retry= at the enqueue() call", "reports/queues.py:19"),
            ],
        ),
        # a wrapper that hands the function to functools.partial(queue.enqueue_at, ...)
        "reports.work.export_report": (
            "rq",
            [
                ("redelivery", "retry= at the enqueue_at() call", "reports/queues.py:24"),
                ("retry", "retry= at the enqueue_at() call", "reports/queues.py:24"),
            ],
        ),
        "reports.work.sync_account": ("rq", []),
        "reports.work.send_digest": ("rq", []),
        "reports.work.purge_exports": (
            "rq",
            [("schedule", "schedule(...)", "reports/accounts.py:12")],
        ),
        "reports.work.rebuild_index": (
            "rq",
            [("schedule", "a schedule entry", "reports/schedule.py:8")],
        ),
        "reports.work.version_check": (
            "rq",
            [("schedule", "a schedule entry", "reports/schedule.py:9")],
        ),
    },
    "job_runners": {
        "mirrors.jobs.SyncMirror.run": (
            "rq",
            [
                ("redelivery", "retry= at the enqueue() call", "runners/models/jobs.py:21"),
                ("retry", "retry= at the enqueue() call", "runners/models/jobs.py:21"),
            ],
        ),
        "mirrors.jobs.PruneMirrors.run": (
            "rq",
            [
                ("redelivery", "retry= at the enqueue() call", "runners/models/jobs.py:21"),
                ("retry", "retry= at the enqueue() call", "runners/models/jobs.py:21"),
            ],
        ),
    },
    "schedule_tests": {
        "billing.tasks.send_invoices": (
            "celery",
            [("schedule", "a schedule entry", "billing/settings/production.py:3")],
        ),
        # only the test schedules it: the test's definition is all there is
        "billing.tasks.ping_partner": (
            "celery",
            [("schedule", "a schedule entry", "billing/beat/tests/test_schedule.py:3")],
        ),
        "billing.tasks.invoice_total": ("celery", []),
    },
    "namespace_app": {
        "shop.billing.migrations.tasks.backfill.announce_backfill": (
            "celery",
            [("redelivery", "acks_late=True", "shop/billing/migrations/tasks/backfill.py:7")],
        ),
        "shop.billing.migrations.tasks.backfill.count_unnumbered": ("celery", []),
        "shop.billing.tasks.invoice_count": ("celery", []),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_form_finds_its_tasks_with_their_options(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = {n: (fw, mechs) for n, (fw, _, mechs) in _tasks(FIXTURES / name, monkeypatch).items()}
    assert got == EXPECTED[name]


@pytest.mark.parametrize("name", PROJECTS)
def test_tasks_identical_with_and_without_precheck(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-check may skip files, never a task or what configures it (the findings are
    compared in ``tests/test_perf_prefilter.py``)."""
    root = FIXTURES / name
    assert _tasks(root, monkeypatch, prefilter=True) == _tasks(root, monkeypatch, prefilter=False)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return root


def _generated() -> Iterator[tuple[str, dict[str, str]]]:
    """Projects whose tasks are found only through a wrapper or a template class defined
    in one module and used in another that never spells the queue library's name."""
    yield (
        "wrapper",
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/queueing.py": (
                "from rq import Queue\n\n"
                "def make():\n    return Queue('q')\n\n"
                "def submit(fn, *args):\n    q = make()\n    q.enqueue(fn, *args)\n"
            ),
            "app/work.py": "def crunch(n):\n    return n\n",
            "app/views.py": (
                "from app.queueing import submit\nfrom app.work import crunch\n\n"
                "def view(n):\n    submit(crunch, n)\n"
            ),
        },
    )
    yield (
        "template",
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/queueing.py": (
                "import django_rq\n\n"
                "def submit(fn, **kw):\n    django_rq.get_queue('q').enqueue(fn, **kw)\n"
            ),
            "app/base.py": (
                "from app.queueing import submit\n\n"
                "class Step:\n"
                "    def run(self):\n        raise NotImplementedError\n\n"
                "    @classmethod\n    def handle(cls, *a):\n        cls().run(*a)\n\n"
                "    @classmethod\n    def start(cls, *a):\n        submit(cls.handle, *a)\n"
            ),
            "app/deep/__init__.py": "",
            "app/deep/steps.py": (
                "from app.base import Step\n\n"
                "class Copy(Step):\n    def run(self, n):\n        return n\n"
            ),
        },
    )


@pytest.mark.parametrize("shape", ["wrapper", "template"])
def test_precheck_keeps_wrapper_callers_and_template_subclasses(
    shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = dict(_generated())[shape]
    root = _write(tmp_path, files)
    with_precheck = _tasks(root, monkeypatch, prefilter=True)
    assert with_precheck == _tasks(root, monkeypatch, prefilter=False)
    expected = {"wrapper": "app.work.crunch", "template": "app.deep.steps.Copy.run"}[shape]
    assert set(with_precheck) == {expected}


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("src/paperless/tests/settings/test_custom.py", True),
        ("app/test/helpers.py", True),
        ("app/test_beat.py", True),
        ("conftest.py", True),
        ("app/settings/custom.py", False),
        ("app/contest.py", False),
        ("app/latest_tasks.py", False),
        ("testing/tasks.py", False),
    ],
)
def test_test_files_are_told_by_folder_and_name(path: str, is_test: bool) -> None:
    assert is_test_path(path) is is_test


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        # a namespace folder (no __init__.py) inside a package is part of the name
        ("shop/billing/migrations/tasks/backfill.py", "shop.billing.migrations.tasks.backfill"),
        ("shop/billing/tasks.py", "shop.billing.tasks"),
        # src layout: the folder above the topmost package is not
        ("src/pkg/ns/mod.py", "pkg.ns.mod"),
        ("src/pkg/mod.py", "pkg.mod"),
        # no package above: named from the root
        ("scripts/tool/run.py", "scripts.tool.run"),
        # a plugin installed by itself (its own setup.py) inside a package: from itself
        ("shop/plugins/stats/stats/plugin.py", "stats.plugin"),
    ],
)
def test_module_names_cross_namespace_folders_inside_a_package(
    rel: str, expected: str, tmp_path: Path
) -> None:
    from idemlint.lint.files.discovery import module_name

    packages = ("shop", "shop/billing/migrations", "shop/billing/migrations/tasks", "src/pkg")
    for package in (*packages, "shop/plugins", "shop/plugins/stats/stats"):
        _write(tmp_path, {f"{package}/__init__.py": ""})
    _write(tmp_path, {"shop/plugins/stats/setup.py": ""})
    _write(tmp_path, {rel: ""})
    assert module_name(tmp_path / rel, tmp_path) == (expected, False)


def test_a_recheck_follows_edits_of_a_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callers' declarations depend on the wrapper's file: a re-check after the wrapper
    stops (or starts again) registering its parameter finds what a run from scratch finds."""
    root = tmp_path / "rq_plain"
    shutil.copytree(FIXTURES / "rq_plain", root, ignore=shutil.ignore_patterns(".idemlint_cache"))
    assert "reports.work.refresh_report" in _tasks(root, monkeypatch, cache=True)
    queues = root / "reports" / "queues.py"
    text = queues.read_text("utf-8")
    registering = "    queue.enqueue(func, *args, retry=Retry(max=3), **kwargs)\n"
    assert registering in text
    queues.write_text(text.replace(registering, "    return queue, func, args, kwargs, Retry\n"))
    again = _tasks(root, monkeypatch, cache=True)
    assert "reports.work.refresh_report" not in again
    assert again == _tasks(root, monkeypatch)
    queues.write_text(text, "utf-8")
    assert _tasks(root, monkeypatch, cache=True) == _tasks(root, monkeypatch)
    assert "reports.work.refresh_report" in _tasks(root, monkeypatch, cache=True)


def _cli_tasks(
    args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """``idemlint tasks ARGS`` run in ``cwd`` without a cache: its stdout."""
    from idemlint.cli import main

    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as info:
        main(["tasks", "--no-cache", *args])
    assert info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tasks_command_lists_what_the_analysis_finds(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``idemlint tasks --format json`` is the table the checks run on: the same names,
    frameworks and delivery mechanisms, each with where it is declared."""
    rows = json.loads(_cli_tasks(["--format", "json"], FIXTURES / name, monkeypatch, capsys))
    got = {
        r["name"]: (r["framework"], [(d["kind"], d["detail"], d["source"]) for d in r["delivery"]])
        for r in rows
    }
    assert got == EXPECTED[name]
    assert [r["name"] for r in rows] == sorted(got)
    for r in rows:
        line = (FIXTURES / name / r["path"]).read_text("utf-8").splitlines()[r["line"] - 1]
        assert r["name"].split(".")[-1] in line or line.lstrip().startswith(("@", "class "))


def test_tasks_command_marks_and_drops_test_files_and_follows_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _write(
        tmp_path,
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/tasks.py": (
                "from celery import shared_task\n\n"
                "@shared_task(acks_late=True)\ndef charge(n):\n    return n\n"
            ),
            "other/__init__.py": "",
            "other/jobs.py": (
                "from celery import shared_task\n\n@shared_task\ndef ping():\n    return 1\n"
            ),
            "app/tests/__init__.py": "",
            "app/tests/test_tasks.py": (
                "from celery import shared_task\n\n@shared_task\ndef fake():\n    return 0\n"
            ),
        },
    )
    text = _cli_tasks([], root, monkeypatch, capsys)
    assert text.splitlines() == [
        "app/tasks.py:3: app.tasks.charge [celery]",
        "    redelivery: acks_late=True (app/tasks.py:3)",
        "app/tests/test_tasks.py:3: app.tests.test_tasks.fake [celery]  (test file)",
        "    runs at most once (no retry, redelivery or schedule found)",
        "other/jobs.py:3: other.jobs.ping [celery]",
        "    runs at most once (no retry, redelivery or schedule found)",
        "3 tasks, 1 in test files",
    ]
    kept = json.loads(_cli_tasks(["--format", "json", "--no-tests"], root, monkeypatch, capsys))
    assert [r["name"] for r in kept] == ["app.tasks.charge", "other.jobs.ping"]
    assert all(r["in_tests"] is False for r in kept)
    under = _cli_tasks(["--no-tests", "app"], root, monkeypatch, capsys)
    assert under.splitlines()[0] == "app/tasks.py:3: app.tasks.charge [celery]"
    assert under.splitlines()[-1] == "1 task"

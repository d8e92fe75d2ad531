"""The text pre-check skips files that cannot matter, and never changes the findings.

Every project here is checked twice, with and without the pre-check
(``engine.check(prefilter=...)``), and must give identical findings; the generated
project also proves that files were really skipped, so the comparison is not
vacuous. The fixtures' task listings (``idemlint tasks --format json``: every task's
delivery mechanisms, with their text, file and line) must be identical too: a file kept
only because it enqueues a task is outlined with the pre-check, its enqueue sites read
off the outline, and summarised in full without it. No timing is asserted:
``bench/lint_speed.py`` measures speed.
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from idemlint.config import load_config
from idemlint.lint.files import prefilter
from idemlint.lint.files.discovery import discover, module_name
from idemlint.lint.knowledge import load_knowledge
from idemlint.lint.run import summarising
from idemlint.lint.run.engine import check
from idemlint.lint.summary.model import FileSummary

REPO = Path(__file__).resolve().parent.parent
FIXTURES = sorted(p for p in (REPO / "fixtures").iterdir() if p.is_dir())


def _findings(root: Path, *, prefilter_on: bool) -> list[dict[str, object]]:
    return _results(root, prefilter_on=prefilter_on)[0]


def _results(
    root: Path, *, prefilter_on: bool
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The findings, and the tasks as ``idemlint tasks --format json`` lists them."""
    config = load_config([root]).with_overrides(no_cache=True)
    result = check([root], config, cwd=root, prefilter=prefilter_on)
    return [dataclasses.asdict(f) for f in result.findings], [t.to_json() for t in result.tasks]


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return root


@pytest.mark.parametrize("project", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_findings_identical_with_and_without_precheck(project: Path) -> None:
    assert _results(project, prefilter_on=True) == _results(project, prefilter_on=False)


def test_enqueuers_are_read_off_their_outline(monkeypatch: pytest.MonkeyPatch) -> None:
    """fixtures/enqueue_sites: the files that only enqueue a task get no full summary,
    but the one whose receiver is a local and the one that enqueues a parameter; every
    task keeps its `concurrent` mechanism, as with every file summarised in full (the
    fixture test above compares them)."""
    root = REPO / "fixtures" / "enqueue_sites"
    made: list[str] = []
    real = summarising.summarize_job

    def summarize_job(job: tuple[str, str, str, bool]) -> FileSummary:
        made.append(job[1])
        return real(job)

    monkeypatch.setattr(summarising, "summarize_job", summarize_job)
    config = load_config([root]).with_overrides(no_cache=True)
    result = check([root], config, cwd=root)
    assert "coupons/cleanup.py" in made and "coupons/tasks.py" in made
    # views.py is summarised: `remind` calls `.send()` on its parameter, so it may be a
    # project function that enqueues the task it is passed (only a full summary says)
    assert "coupons/views.py" in made
    for enqueuer in ("coupons/boot.py", "tests/test_coupons.py"):
        assert enqueuer not in made
    delivery = {
        t.name.rsplit(".", 1)[1]: [(m.kind, m.detail, m.source) for m in t.mechanisms]
        for t in result.tasks
    }
    assert delivery["rehearse"] == []  # enqueued only by a test
    assert delivery["redeem"] == [
        (
            "concurrent",
            "`redeem.delay()` in `redeem_all`, once per loop pass",
            "coupons/views.py:19",
        )
    ]
    assert delivery["restock"] == [
        ("concurrent", "`restock.delay()` in `reorder`", "coupons/views.py:26")
    ]
    assert delivery["warm"] == [
        ("concurrent", "`warm.delay()`, once per loop pass", "coupons/boot.py:4")
    ]
    assert delivery["archive"] == [
        ("concurrent", "`job.delay()` in `sweep`, once per loop pass", "coupons/cleanup.py:7")
    ]
    assert {d[0][2] for d in delivery.values() if d} >= {
        "coupons/views.py:20",  # through a package's re-export
        "coupons/views.py:32",  # a module-level alias
    }
    assert len(result.findings) == 6


# A project whose tasks reach code only through the indirections the scan must follow:
# a Celery app re-exported by a package __init__, a decorator re-exported under another
# name, a helper package reached through a module alias and an attribute path, a module
# alias assigned to a local, a model whose base class lives elsewhere, an RQ queue made
# in one module and used in another, and a Django-Q target named only in a string.
TRICKY = {
    "pyproject.toml": "[project]\nname = 'tricky'\n",
    "proj/__init__.py": "from .celery_app import app as celery_app\n",
    "proj/celery_app.py": """
        from celery import Celery
        app = Celery("proj")
    """,
    "proj/decorators.py": "from celery import shared_task as background\n",
    "proj/base.py": """
        from django.db import models

        class TimeStamped(models.Model):
            class Meta:
                abstract = True
    """,
    "proj/models.py": """
        from django.db import models
        from proj.base import TimeStamped

        class Invoice(TimeStamped):
            number = models.CharField(max_length=20)
            status = models.CharField(max_length=20)
    """,
    "proj/helpers/__init__.py": "",
    "proj/helpers/mail/__init__.py": "",
    "proj/helpers/mail/deep.py": """
        from django.core.mail import send_mail

        def notify(address):
            send_mail("hi", "body", "from@example.com", [address])
    """,
    "proj/jobs.py": """
        from proj import celery_app
        from proj import helpers as h
        from proj.decorators import background
        from proj.models import Invoice


        @celery_app.task(autoretry_for=(Exception,))
        def send_invoice(invoice_id, address):
            Invoice.objects.create(number=str(invoice_id), status="new")
            h.mail.deep.notify(address)


        @background(acks_late=True)
        def remind(address):
            mailer = h.mail.deep
            mailer.notify(address)
    """,
    "proj/queues.py": """
        from redis import Redis
        from rq import Queue
        q = Queue(connection=Redis())
    """,
    "proj/views.py": """
        from rq import Retry

        from proj.queues import q
        from proj.work import process

        def view(request):
            q.enqueue(process, request.user_id, retry=Retry(max=3))
    """,
    "proj/work.py": """
        import requests

        def process(user_id):
            requests.post("https://api.example.com/users", json={"id": user_id})
    """,
    "proj/schedule.py": """
        from django_q.tasks import async_task

        def later():
            async_task("proj.qtarget.charge", 5)
    """,
    "proj/qtarget.py": """
        import stripe

        def charge(amount):
            stripe.Charge.create(amount=amount, currency="eur")
    """,
    # task classes built on a project base class, two modules away from Celery
    "proj/basetask.py": """
        from celery import Task

        class BaseTask(Task):
            autoretry_for = (Exception,)
    """,
    "proj/classtasks.py": """
        import requests
        from proj.basetask import BaseTask

        class Charge(BaseTask):
            def run(self, amount):
                requests.post("https://pay.example.com/charge", json={"amount": amount})
    """,
    "proj/moretasks.py": """
        import requests
        from proj.classtasks import Charge

        class Refund(
            Charge,
        ):
            def run(self, amount):
                requests.put("https://pay.example.com/refund", json={"amount": amount})
    """,
    # defines no task and no task reaches it, but it enqueues one: kept, since where a
    # task is enqueued is how its messages come to run at the same time (`concurrent`)
    "proj/unrelated/caller.py": """
        import requests
        from proj.jobs import send_invoice

        def trigger(invoice_id):
            requests.post("https://example.com/hook")
            send_invoice.delay(invoice_id, "a@example.com")
    """,
    # files no task can reach: skipped by the pre-check
    "proj/unrelated/__init__.py": "",
    "proj/unrelated/report.py": """
        import requests

        def export(rows):
            requests.post("https://example.com/report", json=rows)
    """,
    "proj/unrelated/broken.py": "def oops(:\n    pass\n",
    "proj/unrelated/latin1.py": b"# caf\xe9\nx = 1\n",
    "scripts/tool.py": """
        import requests

        def main():
            requests.delete("https://example.com/everything")
    """,
}


def test_tricky_project_identical_and_really_skips(tmp_path: Path) -> None:
    root = _write(tmp_path, TRICKY)
    with_precheck = _findings(root, prefilter_on=True)
    without = _findings(root, prefilter_on=False)
    assert with_precheck == without
    rules = {(f["path"], f["rule"]) for f in with_precheck}
    # every indirection was followed: each reached file has its finding
    for path in (
        "proj/helpers/mail/deep.py",
        "proj/jobs.py",
        "proj/work.py",
        "proj/qtarget.py",
        "proj/classtasks.py",
        "proj/moretasks.py",
        "proj/unrelated/broken.py",
    ):
        assert any(p == path for p, _ in rules), (path, sorted(rules))

    files = discover(root)
    entries = []
    for f in files:
        module, is_package = module_name(f, root)
        entries.append((f.read_bytes().decode("utf-8", "replace"), module, is_package))
    needed = prefilter.select(entries, load_knowledge({}))
    assert needed is not None
    kept = {files[i].relative_to(root).as_posix() for i in needed}
    assert "proj/unrelated/report.py" not in kept
    assert "scripts/tool.py" not in kept
    assert "proj/unrelated/caller.py" in kept
    assert {"proj/jobs.py", "proj/helpers/mail/deep.py", "proj/qtarget.py"} <= kept
    assert {"proj/base.py", "proj/celery_app.py", "proj/work.py"} <= kept


def test_project_without_tasks_needs_no_file(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "lib/__init__.py": "",
            "lib/http.py": "import requests\n\ndef put(u):\n    requests.put(u)\n",
            "lib/bad.py": "x = = 1\n",
        },
    )
    entries = [(f.read_text("utf-8"), *module_name(f, root)) for f in discover(root)]
    assert prefilter.select(entries, load_knowledge({})) == set()
    # the file that does not parse is still reported, exactly as without the pre-check
    findings = _findings(root, prefilter_on=True)
    assert [f["rule"] for f in findings] == ["IDM001"]
    assert findings == _findings(root, prefilter_on=False)


def test_scan_reads_every_import_form() -> None:
    text = textwrap.dedent(
        """
        from .models import Order as O
        from ..shared import (
            helper,  # a comment
            other as renamed,
        )
        from.sibling import thing
        from . import views
        import pkg.sub.mod as alias, plain
        import pkg.deep.path
        from x import \\
            continued
        x = alias.inner
        mailer = (
            views.mail)
        with pkg.locks.lock as held:
            pass
        """
    )
    scan = prefilter.scan(text, "app.orders.tasks", False, None)
    b = scan.bindings
    assert "app.orders.models.Order" in b["O"]
    assert "app.shared.helper" in b["helper"]
    assert "app.shared.other" in b["renamed"]
    assert "app.orders.sibling.thing" in b["thing"]
    assert "app.orders.views" in b["views"]
    assert "pkg.sub.mod" in b["alias"]
    assert "plain" in b["plain"]
    assert "pkg" in b["pkg"]
    assert "x.continued" in b["continued"]
    assert "alias.inner" in b["x"]
    assert "views.mail" in b["mailer"]
    assert "pkg.locks.lock" in b["held"]
    assert {"alias.inner", "pkg.locks.lock", "views.mail"} <= scan.chains
    assert {"Order", "helper", "continued"} <= scan.tokens


def test_trigger_roots_come_from_the_knowledge() -> None:
    builtin = prefilter.trigger_roots(load_knowledge({}))
    assert builtin is not None
    assert {"celery", "rq", "dramatiq", "huey", "arq", "taskiq", "WorkerSettings"} <= set(builtin)
    custom = load_knowledge({"task-decorators": [{"name": "acme.jobs.background"}]})
    roots = prefilter.trigger_roots(custom)
    assert roots is not None and "acme" in roots
    only_rq = load_knowledge({}, frameworks=["rq"])
    roots = prefilter.trigger_roots(only_rq)
    assert roots is not None and "celery" not in roots and "rq" in roots
    # a rule with no literal start: the pre-check cannot rule any file out
    wild = load_knowledge({"task-decorators": [{"name": "*.background"}]})
    assert prefilter.trigger_roots(wild) is None
    assert prefilter.select([("x = 1\n", "m", False)], wild) is None


def test_user_decorator_project_identical(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "pyproject.toml": """
                [tool.idemlint]
                task-decorators = [{name = "acme.bg.background", retries = true}]
            """,
            "acme/__init__.py": "",
            "acme/bg.py": "def background(f):\n    return f\n",
            "acme/jobs.py": """
                import requests
                from acme.bg import background

                @background
                def push(x):
                    requests.post("https://example.com/x", json=x)
            """,
            "other/__init__.py": "",
            "other/thing.py": "import requests\n\ndef go():\n    requests.post('u')\n",
        },
    )
    with_precheck = _findings(root, prefilter_on=True)
    assert with_precheck, "the user's decorator makes push a task"
    assert with_precheck == _findings(root, prefilter_on=False)


def test_cached_scans_give_the_same_findings_and_damaged_ones_are_redone(
    tmp_path: Path,
) -> None:
    root = _write(tmp_path, TRICKY)
    config = load_config([root])
    first = [dataclasses.asdict(f) for f in check([root], config, cwd=root).findings]
    scans = sorted((root / ".idemlint_cache" / "scans").rglob("*.json"))
    assert len(scans) == len(discover(root))
    for entry in scans[:5]:
        entry.write_text('[["trunc', "utf-8")
    again = check([root], config, cwd=root)
    assert [dataclasses.asdict(f) for f in again.findings] == first
    assert again.cache_hits == len(discover(root))
    assert first == _findings(root, prefilter_on=False)

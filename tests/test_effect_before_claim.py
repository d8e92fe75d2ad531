"""IDM604 (effect before claim), and the ``concurrent`` mechanism of a task that a project
function enqueues for its callers (``dispatch(task, ...)``).

The fixture project ``effect_before_claim`` holds the findings and the clean shapes
(``tests/test_fixtures.py`` checks which lines are reported); this module checks what the
messages say, and the shapes that take a project of their own.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from idemlint.config import load_config
from idemlint.findings import Finding
from idemlint.lint.run.engine import check
from idemlint.report.checking import check_project

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIXTURES / "effect_before_claim"


def _findings(root: Path) -> list[Finding]:
    config = load_config([root]).with_overrides(no_cache=True)
    return check([root], config, cwd=root).findings


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return root


def test_the_message_names_guard_effect_marker_and_mechanism() -> None:
    by_line = {f.line: f for f in _findings(ROOT)}
    assert {f.rule for f in by_line.values()} == {"IDM604"}
    report = by_line[26].message
    assert "`if report.has_remote_issue` (line 26)" in report
    assert "`jira.create_issue()` (`create_issue()` line 37)" in report
    assert "a row of `RemoteIssue`, is written only after it (`create_issue()` line 39)" in report
    # enqueued through the project's own dispatcher: the call site, and how it enqueues
    assert (
        "a message is enqueued at each call of `dispatch(push_report, ...)` in "
        "`report_saved`, which calls `.apply_async()` on it (tracker/views.py:19)"
    ) in report
    assert by_line[26].delivery[:2] == ("concurrent", "tracker/views.py:19")
    welcome = by_line[47].message
    assert "`send_mail()` (line 49)" in welcome
    assert "`welcomed_at`, is written only after it (`mark_welcomed()` line 54)" in welcome
    assert "a row of `Invoice`, is written only after it (line 68)" in by_line[65].message
    # a schedule lets a slow run and the next tick overlap
    assert by_line[75].delivery[:2] == ("schedule", "tracker/celery.py:5")
    # a property of the object whose name is not the marker's: its body says what it reads
    assert "a row of `Listing`, is written only after it (line 203)" in by_line[200].message
    assert "expect" not in " ".join(f.message for f in by_line.values())


VIEW = "from app.tasks import register\n\n\ndef view(r):\n    register.delay(1)\n"


def test_a_crash_window_alone_is_not_reported(tmp_path: Path) -> None:
    """A task that only runs twice after a crash (redelivery) or a failure (retry) is not
    an overlap: the window between effect and marker is every effect's, not this rule's.
    Once the project enqueues it, two messages overlap and the guard is reported."""
    task = """
        import requests
        from celery import shared_task
        from django.db import models


        class Account(models.Model):
            remote_id = models.CharField(max_length=64, blank=True)


        @shared_task(acks_late=True, autoretry_for=(Exception,))
        def register(account_id):
            account = Account.objects.get(pk=account_id)
            if account.remote_id:
                return
            resp = requests.post("https://crm.example.com/accounts", json={})
            save_id(account, resp.json()["id"])


        def save_id(account, remote_id):
            Account.objects.filter(pk=account.pk).update(remote_id=remote_id)
    """
    root = _write(
        tmp_path,
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/tasks.py": task,
        },
    )
    assert [f.rule for f in _findings(root)] == []
    _write(
        root,
        {"app/views.py": VIEW},
    )
    found = _findings(root)
    assert [(f.line, f.rule) for f in found] == [(13, "IDM604")]
    assert found[0].delivery[:2] == ("concurrent", "app/views.py:5")


def test_a_connection_helper_that_may_return_none(tmp_path: Path) -> None:
    """The client comes from a chain of project helpers: one returns ``None`` when nothing
    is configured, one picks a configured factory by name or a default, and each binds a
    local of the same name (``jira``): the call is still the SDK's ``create_issue``."""
    root = _write(
        tmp_path,
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/conn.py": """
                import importlib

                from django.conf import settings
                from jira import JIRA


                def connect_default(server):
                    return JIRA(server=server)


                def connect_method():
                    if settings.CONNECT:
                        module, _, name = settings.CONNECT.rpartition(".")
                        return getattr(importlib.import_module(module), name)
                    return connect_default


                def connection_raw(server):
                    method = connect_method()
                    jira = method(server)
                    return jira


                def connection(project):
                    if project.server is None:
                        return None
                    return connection_raw(project.server)
            """,
            "app/tasks.py": """
                from celery import shared_task
                from django.db import models

                from app.conn import connection


                class Project(models.Model):
                    server = models.CharField(max_length=200, null=True)


                class Ticket(models.Model):
                    project = models.OneToOneField(Project, on_delete=models.CASCADE)
                    key = models.CharField(max_length=20)


                @shared_task
                def open_ticket(project_id):
                    project = Project.objects.get(pk=project_id)
                    if Ticket.objects.filter(project=project).exists():
                        return
                    jira = connection(project)
                    issue = jira.create_issue(fields={})
                    Ticket.objects.create(project=project, key=issue.key)


                def on_save(project):
                    open_ticket.delay(project.id)
            """,
        },
    )
    found = _findings(root)
    assert [(f.path, f.line, f.rule) for f in found] == [("app/tasks.py", 19, "IDM604")]
    assert "`jira.create_issue()` (line 22)" in found[0].message


def test_a_wrapper_in_a_test_file_or_a_literal_makes_no_enqueue(tmp_path: Path) -> None:
    """Only a function or task passed to the wrapper in application code counts: a test
    that dispatches, or a wrapper given something else, enqueues nothing here."""
    root = _write(
        tmp_path,
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/dispatch.py": """
                def dispatch(task, *args):
                    return task.apply_async(args=args)


                def run_now(func, *args):
                    return func(*args)
            """,
            "app/tasks.py": """
                import requests
                from celery import shared_task
                from django.db import models


                class Mail(models.Model):
                    uid = models.CharField(max_length=64)


                class Seen(models.Model):
                    mail = models.OneToOneField(Mail, on_delete=models.CASCADE)


                @shared_task
                def forward(mail_id):
                    mail = Mail.objects.get(pk=mail_id)
                    if Seen.objects.filter(mail=mail).exists():
                        return
                    requests.post("https://hooks.example.com/mail", json={"uid": mail.uid})
                    Seen.objects.create(mail=mail)
            """,
            "app/views.py": """
                from app.dispatch import run_now
                from app.tasks import forward


                def view(request):
                    run_now(forward, request.GET["id"])
            """,
            "tests/__init__.py": "",
            "tests/test_tasks.py": """
                from app.dispatch import dispatch
                from app.tasks import forward


                def test_forward():
                    dispatch(forward, 1)
            """,
        },
    )
    assert _findings(root) == []
    (root / "app" / "views.py").write_text(
        "from app.dispatch import dispatch\nfrom app.tasks import forward\n\n\n"
        "def view(request):\n    dispatch(forward, request.GET['id'])\n"
    )
    found = _findings(root)
    assert [(f.line, f.rule) for f in found] == [(17, "IDM604")]
    assert "`dispatch(forward, ...)` in `view`, which calls `.apply_async()` on it" in (
        found[0].message
    )
    # the view enqueues nothing by name (no `.delay`): the pre-check keeps it all the same
    config = load_config([root]).with_overrides(no_cache=True)
    unfiltered = check([root], config, cwd=root, prefilter=False).findings
    assert [(f.path, f.line, f.message) for f in unfiltered] == [
        (f.path, f.line, f.message) for f in found
    ]


def test_an_unlocked_status_transition_is_not_restated(tmp_path: Path) -> None:
    """A field set in the guarded branch of the same function is IDM601's finding: one
    problem, one finding."""
    root = _write(
        tmp_path,
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/tasks.py": """
                import requests
                from celery import shared_task
                from django.db import models


                class Order(models.Model):
                    status = models.CharField(max_length=20)


                @shared_task
                def ship(order_id):
                    order = Order.objects.get(pk=order_id)
                    if order.status == "paid":
                        requests.post("https://ship.example.com/shipments", json={})
                        order.status = "shipped"
                        order.save()


                def paid(order):
                    ship.delay(order.id)
            """,
        },
    )
    assert [f.rule for f in check_project(root, cwd=root)] == ["IDM601"]


def test_a_helper_reached_twice_guarded_and_not(tmp_path: Path) -> None:
    """The helper holding the guard is reached once behind the task's own check and once
    not: the rule reads the exposed visit, and the other visit is no call below it."""
    root = _write(
        tmp_path,
        {
            "pyproject.toml": "[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/tasks.py": """
                import requests
                from celery import shared_task
                from django.core.cache import cache
                from django.db import models


                class Order(models.Model):
                    total = models.IntegerField()

                    @property
                    def has_invoice(self):
                        return Invoice.objects.filter(order=self).exists()


                class Invoice(models.Model):
                    order = models.OneToOneField(Order, on_delete=models.CASCADE)


                def bill(order):
                    if order.has_invoice:
                        return
                    requests.post("https://billing.example.com/invoices", json={})
                    Invoice.objects.create(order=order)


                @shared_task
                def settle(order_id, again):
                    order = Order.objects.get(pk=order_id)
                    if not again:
                        if cache.get(f"skip-{order_id}"):
                            return
                        bill(order)
                    else:
                        bill(order)


                def paid(order):
                    settle.delay(order.id, False)
            """,
        },
    )
    found = _findings(root)
    assert [(f.line, f.rule) for f in found] == [(20, "IDM604")]

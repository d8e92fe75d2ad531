"""The engine on small generated projects: resolution across files, task detection,
user knowledge, notices, report scope and the summary cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from idemlint.config import Config, load_config
from idemlint.findings import Finding
from idemlint.lint.checks import STATEMENT_CHECKS
from idemlint.lint.run import cache as cache_module
from idemlint.lint.run import snapshot
from idemlint.lint.run.engine import check
from idemlint.report.checking import check_project, check_source


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return root


def codes(findings: list[Finding]) -> list[tuple[str, int, str]]:
    return [(f.path, f.line, f.rule) for f in findings]


PROJECT = {
    "pyproject.toml": "[project]\nname = 'demo'\n[tool.idemlint]\n",
    "app/__init__.py": "",
    "app/celery.py": """
        from celery import Celery
        app = Celery("demo")
    """,
    "app/models.py": """
        from django.db import models

        class Payment(models.Model):
            key = models.CharField(max_length=64, unique=True)
            user_id = models.IntegerField()
            status = models.CharField(max_length=16)
    """,
    "app/notify.py": """
        import requests

        def notify(user_id):
            return _deliver(user_id)

        def _deliver(user_id):
            return _post(user_id)

        def _post(user_id):
            requests.post("https://hooks.example/notify", json={"user": user_id})
    """,
    "app/tasks.py": """
        from celery import shared_task as st
        from app.celery import app
        from app.models import Payment
        from app import notify as n

        @st(bind=True, acks_late=True)
        def charge(self, user_id):
            Payment.objects.create(user_id=user_id, status="processing")

        @app.task(acks_late=True)
        def ping(user_id):
            n.notify(user_id)

        def view(request):
            Payment.objects.create(user_id=1, status="processing")
    """,
}


def test_cross_file_resolution_and_call_chain(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    findings = check_project(root, cwd=root)
    assert codes(findings) == [
        ("app/notify.py", 10, "IDM304"),
        ("app/tasks.py", 8, "IDM301"),
    ]
    post = findings[0]
    assert post.task == "app.tasks.ping"
    assert post.via == ("app.notify.notify", "app.notify._deliver", "app.notify._post")
    assert findings[1].task == "app.tasks.charge" and findings[1].via == ()
    assert findings[1].checklist == "check-prior-art"
    assert findings[1].source == 'Payment.objects.create(user_id=user_id, status="processing")'


def test_only_given_paths_are_reported_but_the_project_is_read(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    result = check([root / "app" / "notify.py"], load_config([root]), cwd=root)
    # the helper is only a finding because a task in another file reaches it
    assert codes(result.findings) == [("app/notify.py", 10, "IDM304")]
    assert result.files_checked == 1
    assert result.files_read == 5


def test_unparsable_file_is_a_finding_and_the_run_goes_on(tmp_path: Path) -> None:
    root = write(tmp_path, {**PROJECT, "app/broken.py": "def oops(:\n    pass\n"})
    findings = check_project(root, cwd=root)
    broken = [f for f in findings if f.path == "app/broken.py"]
    assert [f.rule for f in broken] == ["IDM001"]
    assert broken[0].checklist == "notice"
    assert ("app/tasks.py", 8, "IDM301") in codes(findings)


def test_a_rule_that_raises_becomes_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(tmp_path, PROJECT)

    def boom(ctx: object) -> None:
        raise RuntimeError("rule bug")

    import idemlint.lint.run.incremental as incremental

    monkeypatch.setattr(incremental, "STATEMENT_CHECKS", (("IDM5xx", boom), *STATEMENT_CHECKS))
    findings = check_project(root, cwd=root)
    errors = [f for f in findings if f.rule == "IDM002"]
    assert len(errors) == 2  # one per task
    assert "IDM5xx" in errors[0].message and "rule bug" in errors[0].message
    assert ("app/tasks.py", 8, "IDM301") in codes(findings)


def test_user_knowledge_from_pyproject(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "pyproject.toml": """
                [tool.idemlint]
                side-effects = [{call = "app.push.send_push", kind = "message"}]
                task-decorators = [{name = "app.jobs.background", retries = true}]
                locks = ["app.locks.distributed_lock"]
            """,
            "app/__init__.py": "",
            "app/push.py": "def send_push(user, text):\n    pass\n",
            "app/locks.py": "def distributed_lock(name):\n    pass\n",
            "app/jobs.py": "def background(fn):\n    return fn\n",
            "app/models.py": """
                from django.db import models

                class Order(models.Model):
                    status = models.CharField(max_length=8)
            """,
            "app/work.py": """
                from app.jobs import background
                from app.push import send_push
                from app.locks import distributed_lock
                from app.models import Order

                @background
                def remind(user):
                    send_push(user, "hi")

                @background
                def ship(order_id):
                    with distributed_lock(f"order-{order_id}"):
                        order = Order.objects.get(pk=order_id)
                        if order.status == "paid":
                            order.status = "shipped"
                            order.save()
            """,
        },
    )
    findings = check_project(root, cwd=root)
    assert codes(findings) == [("app/work.py", 8, "IDM302")]


JOB_RUNNER_PROJECT = {
    "app/__init__.py": "",
    "app/jobs.py": """
        class JobRunner:
            def run(self, data):
                raise NotImplementedError

            @classmethod
            def enqueue(cls, data):
                cls().run(data)
    """,
    "app/sync.py": """
        import requests
        from app.jobs import JobRunner

        class SyncJob(JobRunner):
            def run(self, data):
                requests.post("https://erp.example.com/sync", json=data)
    """,
}


def test_user_task_classes_from_pyproject(tmp_path: Path) -> None:
    root = write(tmp_path / "plain", JOB_RUNNER_PROJECT)
    assert check_project(root, cwd=root) == []  # a job runner idemlint cannot know about
    configured = write(
        tmp_path / "configured",
        {
            **JOB_RUNNER_PROJECT,
            "pyproject.toml": """
                [[tool.idemlint.task-classes]]
                base = "app.jobs.JobRunner"
                retries = true
            """,
        },
    )
    findings = check_project(configured, cwd=configured)
    assert codes(findings) == [("app/sync.py", 6, "IDM304")]
    assert findings[0].task == "app.sync.SyncJob.run"
    assert "JobRunner subclasses retry by default" in findings[0].message


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ('{method = "run"}', "expected a list of tables"),
        ('{base = "a.B", retries = "yes"}', "retries must be true or false"),
        ('{base = "a.B", retry-attributes = "x"}', "retry-attributes must be a list"),
        ('{base = "a.B", when = 1}', "unknown field 'when'"),
    ],
)
def test_bad_task_classes_config_names_the_problem(
    tmp_path: Path, entry: str, complaint: str
) -> None:
    from idemlint.errors import ConfigError

    root = write(tmp_path, {"pyproject.toml": f"[tool.idemlint]\ntask-classes = [{entry}]\n"})
    with pytest.raises(ConfigError) as err:
        check_project(root)
    assert "task-classes[0]" in str(err.value) and complaint in str(err.value)


def test_bad_knowledge_config_names_file_and_key(tmp_path: Path) -> None:
    from idemlint.errors import ConfigError

    root = write(
        tmp_path,
        {"pyproject.toml": '[tool.idemlint]\nside-effects = [{call = "x.y", kind = "email"}]\n'},
    )
    with pytest.raises(ConfigError) as err:
        check_project(root)
    text = str(err.value)
    assert "pyproject.toml" in text and "side-effects[0]" in text and "row-create" in text


def test_precision_traps_are_clean() -> None:
    source = textwrap.dedent(
        """
        import uuid, logging
        import requests, redis
        from celery import shared_task
        from django.db import models, transaction
        from statsd import StatsClient
        from prometheus_client import Counter

        statsd = StatsClient()
        JOBS = Counter("jobs", "x")
        r = redis.Redis()
        log = logging.getLogger(__name__)

        class Order(models.Model):
            status = models.CharField(max_length=10)
            inventory_updated = models.BooleanField(default=False)

        class Stock(models.Model):
            sku = models.CharField(max_length=10, unique=True)
            quantity = models.IntegerField()

        class Profile(models.Model):
            user_id = models.IntegerField(unique=True)
            bio = models.TextField()

        class OutboxEvent(models.Model):
            payload = models.TextField()

        class Thing:
            def create(self): pass

        @shared_task(bind=True, acks_late=True)
        def precise(self, order_id, sku, user_id):
            attempts = 3
            for i in range(10):
                attempts -= 1
            Thing().create()
            statsd.incr("jobs.done")
            JOBS.inc()
            log.info("done %s", uuid.uuid4())
            requests.get("https://example.com")
            d = {}
            d.update(a=1)
            path = f"/tmp/{uuid.uuid4()}.csv"
            correlation_id = str(uuid.uuid4())
            r.set("k", 1)
            r.setnx("k", 1)
            stock = Stock.objects.get(sku=sku)
            stock.quantity = 10 - 3
            stock.save()
            Profile.objects.update_or_create(user_id=user_id, defaults={"bio": "x"})
            with transaction.atomic():
                OutboxEvent.objects.create(payload="order-paid")
            if Order.objects.filter(pk=order_id, status="pending").update(status="paid") == 0:
                return
            requests.post("https://x.example/", headers={"Idempotency-Key": self.request.id})

        @shared_task(acks_late=True)
        def locked(order_id, sku):
            with transaction.atomic():
                order = Order.objects.select_for_update().get(pk=order_id)
                if order.inventory_updated:
                    return
                stock = Stock.objects.select_for_update().get(sku=sku)
                stock.quantity -= 1
                stock.save()
                order.inventory_updated = True
                order.save()
        """
    )
    assert check_source(source, "app/tasks.py") == []


# -- the summary cache ---------------------------------------------------------


def run_json(root: Path, *extra: str) -> list[dict[str, object]]:
    cfg = load_config([root])
    return [f.to_json() for f in check([root], cfg, cwd=root).findings]


def test_cache_gives_the_same_result_and_is_used(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    cold = check([root], load_config([root]), cwd=root)
    assert cold.cache_hits == 0
    warm = check([root], load_config([root]), cwd=root)
    assert warm.cache_hits == warm.files_read == 5
    no_cache = check([root], Config.default(root).with_overrides(no_cache=True), cwd=root)
    assert cold.findings == warm.findings == no_cache.findings
    assert (root / ".idemlint_cache" / ".gitignore").read_text() == "*\n"


def test_edited_file_is_reanalysed(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    assert ("app/tasks.py", 8, "IDM301") in codes(check_project(root, cwd=root))
    tasks = root / "app" / "tasks.py"
    tasks.write_text(tasks.read_text().replace("Payment.objects.create(user_id=user_id", "pass  #"))
    result = check([root], load_config([root]), cwd=root)
    assert ("app/tasks.py", 8, "IDM301") not in codes(result.findings)
    assert result.cache_hits == 4


def test_version_change_invalidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write(tmp_path, PROJECT)
    check_project(root, cwd=root)
    monkeypatch.setattr(cache_module, "__version__", "999.0")
    result = check([root], load_config([root]), cwd=root)
    assert result.cache_hits == 0


def test_corrupted_cache_entry_is_ignored_and_rewritten(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    first = check([root], load_config([root]), cwd=root).findings
    entries = sorted((root / ".idemlint_cache" / "summaries").rglob("*.json"))
    # the fifth file mentions no task framework: the pre-check rules it out and its
    # (empty) summary is never made, so never stored
    assert len(entries) == 4
    for entry in entries[:2]:
        entry.write_text('{"path": "trunc')
    snapshots = list((root / ".idemlint_cache" / "projects").glob("*.json"))
    assert len(snapshots) == 1
    snapshots[0].unlink()  # else the run answers from the snapshot, reading no summary
    again = check([root], load_config([root]), cwd=root)
    assert again.findings == first
    assert again.cache_hits == 2  # 2 rewritten, 1 ruled out again, 2 read
    for entry in entries[:2]:
        json.loads(entry.read_text())  # rewritten whole


def test_corrupted_snapshot_is_ignored_and_rewritten(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    first = check([root], load_config([root]), cwd=root).findings
    (snap,) = (root / ".idemlint_cache" / "projects").glob("*.json")
    for damage in ('{"format": 1, "files": [["app/x.py"', "", "[]", '{"format": 1}'):
        snap.write_text(damage)
        again = check([root], load_config([root]), cwd=root)
        assert again.findings == first
        assert again.stats.get("analysed") == 2  # computed again, not read from the damage
        json.loads(snap.read_text())  # rewritten whole


def test_unchanged_project_is_answered_from_the_snapshot(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    first = check([root], load_config([root]), cwd=root)
    assert first.stats["analysed"] == 2
    again = check([root], load_config([root]), cwd=root)
    assert again.findings == first.findings
    assert again.stats["analysed"] == 0 and again.stats["summarised"] == 0
    assert again.stats.get("loaded", 0) == 0  # no summary read back at all
    # a touched file (same bytes, new mtime) is hashed again and still reused
    tasks = root / "app" / "tasks.py"
    os.utime(tasks, ns=(tasks.stat().st_atime_ns, tasks.stat().st_mtime_ns + 10**9))
    touched = check([root], load_config([root]), cwd=root)
    assert touched.findings == first.findings and touched.stats["analysed"] == 0


def test_knowledge_change_invalidates_the_snapshot(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    before = codes(check([root], load_config([root]), cwd=root).findings)
    assert ("app/notify.py", 10, "IDM304") in before
    (root / "pyproject.toml").write_text(
        '[tool.idemlint]\nside-effects = [{call = "app.notify.ping", kind = "message"}]\n'
    )
    after = check([root], load_config([root]), cwd=root)
    assert after.stats["analysed"] == 2
    assert (
        after.findings == check([root], load_config([root]), cwd=root, incremental=False).findings
    )


def test_old_entries_the_project_no_longer_uses_are_pruned(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    tasks = root / "app" / "tasks.py"
    original = tasks.read_text()
    for i in range(3):  # three saved edits: three summaries of tasks.py nobody needs now
        tasks.write_text(original + f"\nEDIT = {i}\n")
        check([root], load_config([root]), cwd=root)
    tasks.write_text(original)
    first = check([root], load_config([root]), cwd=root)
    cache = root / ".idemlint_cache"
    entries = [p for p in cache.rglob("*.json") if p.parent.name != "projects"]
    month_ago = time.time() - 31 * 86400
    for entry in [*entries, cache / "last-prune"]:  # everything old, the prune overdue
        os.utime(entry, (month_ago, month_ago))
    again = check([root], load_config([root]), cwd=root)
    assert again.findings == first.findings
    left = {p for p in cache.rglob("*.json") if p.parent.name != "projects"}
    assert len(left) == len(entries) - 6  # 3 summaries + 3 scans of the old edits
    # what the project uses survived, however old: a run from the snapshot's view of
    # the tree and a run without the snapshot both find every summary
    (snap,) = (cache / "projects").glob("*.json")
    snap.unlink()
    fresh = check([root], load_config([root]), cwd=root)
    assert fresh.findings == first.findings
    assert fresh.files_read - fresh.cache_hits == fresh.stats["empty"]  # no summary made
    # the marker says it ran: the next run does not walk the cache again
    marker_age = time.time() - (cache / "last-prune").stat().st_mtime
    assert marker_age < 60
    stale = next(iter(left))
    os.utime(stale, (month_ago, month_ago))
    tasks.write_text(original + "\nEDIT = 9\n")
    check([root], load_config([root]), cwd=root)
    assert stale.exists()


def test_concurrent_runs_do_not_corrupt_the_cache(tmp_path: Path) -> None:
    files = dict(PROJECT)
    for i in range(40):
        files[f"app/mod{i}.py"] = f"def helper{i}(x):\n    return x + {i}\n"
    root = write(tmp_path, files)
    script = (
        "import json, sys; from pathlib import Path;"
        "from idemlint.lint.run.engine import check; from idemlint.config import load_config;"
        "root = Path(sys.argv[1]);"
        "print(json.dumps([f.to_json() for f in check([root], load_config([root]), jobs=1,"
        " cwd=root).findings]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({o for o in outputs}) == 1
    for entry in (root / ".idemlint_cache" / "summaries").rglob("*"):
        if entry.is_file():
            assert entry.suffix == ".json"
            json.loads(entry.read_text())
    (snap,) = (root / ".idemlint_cache" / "projects").iterdir()  # no stray temporary files
    assert snapshot.load(snap.parent.parent, snap.stem) is not None
    assert run_json(root) == json.loads(outputs[0])
    again = check([root], load_config([root]), cwd=root)
    assert again.stats["analysed"] == 0  # the snapshot one of them left is whole and used


def test_git_ignored_and_virtualenv_files_are_skipped(tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    bad = PROJECT["app/tasks.py"]
    write(root, {"generated/tasks.py": bad, ".venv/lib/tasks.py": bad, "build/tasks.py": bad})
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / ".gitignore").write_text("generated/\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    paths = {f.path.split("/")[0] for f in check_project(root, cwd=root)}
    assert paths == {"app"}


def test_batch_task_continuing_itself_is_not_an_unguarded_enqueue() -> None:
    source = textwrap.dedent(
        """
        from celery import shared_task
        from django.core.mail import send_mail
        from django.db import models

        class User(models.Model):
            number = models.IntegerField(null=True)

        @shared_task(acks_late=True)
        def backfill(after=0):
            todo = User.objects.filter(pk__gt=after, number=None)
            ids = list(todo.values_list("pk", flat=True)[:100])
            User.objects.filter(pk__in=ids).update(number=0)
            backfill.delay(ids[-1])
            notify.delay()

        @shared_task(acks_late=True)
        def notify():
            send_mail("Backfill", "done", "ops@example.com", ["ops@example.com"])
        """
    )
    assert [(f.line, f.rule) for f in check_source(source, "app/tasks.py")] == [
        (15, "IDM305"),
        (19, "IDM302"),
    ]


# -- issue 11: following what a call may run ------------------------------------------


BRANCHED = """
    import os

    x = First()
    if os.environ.get("A"):
        sender = Smtp()
    elif os.environ.get("B"):
        sender = Ses()
    else:
        sender = Console()
    try:
        fast = Fast()
    except ImportError:
        fast = Slow()
    maybe = Plain()
    if os.environ.get("C"):
        maybe = Fancy()
    x = Second()
"""


def test_module_names_bound_in_branches_keep_every_binding() -> None:
    from idemlint.lint.summary.codec import decode, encode
    from idemlint.lint.summary.outline import outline
    from idemlint.lint.summary.summarize import summarize_source

    source = textwrap.dedent(BRANCHED)
    summary = summarize_source(source, "m.py", "m")
    alts = {name: [a.path for a in v.alts] for name, v in summary.assigns.items()}
    assert alts == {
        "x": [],  # rebound in sequence: only the last binding holds
        "sender": ["Smtp", "Ses"],  # the last binding (Console) is the value itself
        "fast": ["Fast"],
        "maybe": ["Plain"],
    }
    assert summary.assigns["sender"].path == "Console"
    # the outline (ast) and the cache's codec give the same
    assert outline(source, "m.py", "m").assigns == {
        k: v.to_dict() for k, v in summary.assigns.items()
    }
    assert decode(encode(summary)).to_dict() == summary.to_dict()


SENDER_PROJECT = {
    "pyproject.toml": "[project]\nname = 'demo'\n[tool.idemlint]\n",
    "app/__init__.py": "",
    "app/senders.py": """
        import logging
        import os

        import requests


        class ConsoleSender:
            def send(self, to, text):
                logging.info("%s: %s", to, text)


        class HttpSender:
            def send(self, to, text):
                requests.post("https://sms.example.com/send", json={"to": to, "text": text})


        if os.environ.get("SMS") == "http":
            sender = HttpSender()
        else:
            sender = ConsoleSender()
    """,
    "app/tasks.py": """
        from celery import shared_task

        from app import senders


        @shared_task(acks_late=True)
        def remind(to):
            senders.sender.send(to, "Your order ships today")
    """,
}


SWEEP_HELPER = {
    "pyproject.toml": "[project]\nname = 'demo'\n[tool.idemlint]\n",
    "app/__init__.py": "",
    "app/models.py": """
        from django.db import models

        class Alert(models.Model):
            owner = models.CharField(max_length=64)
            sent_at = models.DateTimeField(null=True)
    """,
    "app/queries.py": """
        from app.models import Alert

        def pending(limit):
            rows = Alert.objects.filter(sent_at__isnull=True)
            return rows[:limit]

        def pending_locked():
            return Alert.objects.filter(sent_at__isnull=True).select_for_update(skip_locked=True)
    """,
    "app/tasks.py": """
        import requests
        from celery import Celery
        from django.db import transaction
        from django.utils import timezone
        from app.models import Alert
        from app.queries import pending, pending_locked

        app = Celery("demo")
        app.conf.beat_schedule = {
            "a": {"task": "app.tasks.push", "schedule": 60.0},
            "b": {"task": "app.tasks.push_locked", "schedule": 60.0},
        }

        @app.task
        def push():
            for alert in pending(50):
                requests.post("https://hooks.example.com", json={"id": alert.pk})
                alert.sent_at = timezone.now()
                alert.save(update_fields=["sent_at"])

        @app.task
        def push_locked():
            with transaction.atomic():
                for alert in pending_locked():
                    requests.post("https://hooks.example.com", json={"id": alert.pk})
                    alert.sent_at = timezone.now()
                    alert.save(update_fields=["sent_at"])
    """,
}


def test_a_call_through_a_name_bound_in_branches_runs_any_binding(tmp_path: Path) -> None:
    root = write(tmp_path, SENDER_PROJECT)
    [found] = check_project(root, cwd=root)
    assert (found.path, found.line, found.rule) == ("app/senders.py", 14, "IDM304")
    assert found.task == "app.tasks.remind"
    assert found.via == ("app.senders.HttpSender.send",)
    # an edit that leaves one binding is seen by a re-check that reuses the cache
    senders = root / "app" / "senders.py"
    text = senders.read_text()
    senders.write_text(text[: text.index("if os.environ")] + "sender = ConsoleSender()\n")
    assert check([root], load_config([root]), cwd=root).findings == []


WEBHOOK = """
    import httpx
    from celery import shared_task


    @shared_task(acks_late=True)
    def deliver(url, payload, signature):
        httpx.post(url, content=payload, headers={{"{header}": signature}})
"""


@pytest.mark.parametrize(
    ("header", "extra", "rule"),
    [
        ("X-Shop-Webhook-Signature", "", "IDM202"),
        ("X-Hub-Signature-256", "", "IDM202"),
        ("X-Signed-By", "", "IDM304"),  # no webhook signature: a plain HTTP write
        ("X-Signed-By", 'webhook-signature-headers = ["x-signed-by"]', "IDM202"),
    ],
)
def test_a_signed_webhook_without_a_delivery_id(
    tmp_path: Path, header: str, extra: str, rule: str
) -> None:
    root = write(
        tmp_path,
        {
            "pyproject.toml": f"[project]\nname = 'demo'\n[tool.idemlint]\n{extra}\n",
            "app/__init__.py": "",
            "app/tasks.py": WEBHOOK.format(header=header),
        },
    )
    [found] = check_project(root, cwd=root)
    assert (found.line, found.rule) == (7, rule)
    if rule == "IDM202":
        assert "webhook-id" in found.message and header in found.message


HOOKS = """
    import requests
    from celery import Task, shared_task


    class Reporting(Task):
        def on_failure(self, exc, task_id, args, kwargs, einfo):
            requests.post("https://alerts.example.com", json={{"task": task_id}})

        def on_retry(self, exc, task_id, args, kwargs, einfo):
            requests.post("https://alerts.example.com/retry", json={{"task": task_id}})


    @shared_task(base=Reporting, bind=True{options})
    def fetch(self, day):
        try:
            return requests.get(f"https://rates.example.com/{{day}}").json()
        except requests.ConnectionError as exc:
            raise self.retry(exc=exc)
"""


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # a retry repeats the hook that runs with every attempt, not the final outcome's
        ("", [(10, "IDM304")]),
        # a redelivery repeats the whole run, hooks included
        (", acks_late=True", [(7, "IDM304"), (10, "IDM304")]),
    ],
)
def test_a_task_base_class_hooks_run_with_the_task(
    tmp_path: Path, options: str, expected: list[tuple[int, str]]
) -> None:
    root = write(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname = 'demo'\n[tool.idemlint]\n",
            "app/__init__.py": "",
            "app/tasks.py": HOOKS.format(options=options),
        },
    )
    findings = check_project(root, cwd=root)
    assert [(f.line, f.rule) for f in findings] == expected
    assert all(f.task == "app.tasks.fetch" for f in findings)
    assert findings[-1].via == ("app.tasks.Reporting.on_retry",)
    if not options:
        assert "`on_retry` runs again with every attempt" in findings[-1].message


def test_a_sweep_whose_query_a_helper_builds(tmp_path: Path) -> None:
    """The rows a helper returns (another module's ``filter(sent_at__isnull=True)``) are
    the sweep's selection; a helper that returns them locked with skip_locked claims them."""
    root = write(tmp_path, SWEEP_HELPER)
    findings = check_project(root, cwd=root)
    assert codes(findings) == [("app/tasks.py", 17, "IDM603")]
    assert "selects by `sent_at` (in `pending()`)" in findings[0].message
    assert "a schedule entry, app/tasks.py:9" in findings[0].message


PROVIDER_PROJECT = {
    "pyproject.toml": "[project]\nname = 'demo'\n[tool.idemlint]\n",
    "app/__init__.py": "",
    "app/base.py": """
        class Sender:
            def send(self, to, text):
                raise NotImplementedError
    """,
    "app/senders.py": """
        import logging

        import requests

        from app.base import Sender


        class ConsoleSender(Sender):
            def send(self, to, text):
                logging.info("%s: %s", to, text)


        class HttpSender(Sender):
            def send(self, to, text):
                requests.post("https://sms.example.com/send", json={"to": to, "text": text})


        class MailSender(HttpSender):
            def send(self, to, text):
                from django.core.mail import send_mail

                send_mail("Reminder", text, "shop@example.com", [to])
    """,
    "app/tasks.py": """
        from celery import Task, shared_task

        from app.base import Sender
        from app.settings import default_sender


        class Reminder:
            def __init__(self, sender: Sender = default_sender):
                self.sender = sender

            def remind(self, to):
                self.sender.send(to, "Your order ships today")

            def send(self, to, text):
                return text


        @shared_task(acks_late=True)
        def remind(to):
            Reminder().remind(to)


        @shared_task(acks_late=True)
        def remind_with(sender: Sender, to):
            sender.send(to, "Your order ships today")


        @shared_task(acks_late=True)
        def remind_console(to):
            from app.senders import ConsoleSender

            ConsoleSender().send(to, "Your order ships today")
    """,
    "app/settings.py": """
        from app.senders import ConsoleSender

        default_sender = ConsoleSender()
    """,
}


def test_init_parameter_annotation_types_the_attribute(tmp_path: Path) -> None:
    from idemlint.lint.index.project import Project
    from idemlint.lint.knowledge import load_knowledge
    from idemlint.lint.summary.summarize import summarize_source

    root = write(tmp_path, PROVIDER_PROJECT)
    summaries = [
        summarize_source((root / rel).read_text(), rel, rel[:-3].replace("/", "."))
        for rel in ("app/base.py", "app/senders.py", "app/tasks.py", "app/settings.py")
    ]
    project = Project(summaries, load_knowledge())
    # `self.sender = sender` with `sender: Sender`: an instance of the annotation
    assert project.init_attribute("app.tasks.Reminder", "sender") == "app.base.Sender()"
    assert project.subclasses("app.base.Sender") == [
        "app.senders.ConsoleSender",
        "app.senders.HttpSender",
        "app.senders.MailSender",
    ]
    found = [r.qualified for r in project.overrides("app.base.Sender().send")]
    assert found == [
        "app.senders.ConsoleSender.send",
        "app.senders.HttpSender.send",
        "app.senders.MailSender.send",
    ]
    # a path that is not a method called on an instance fans out to nothing
    assert project.overrides("app.base.Sender.send") == []


def test_call_through_a_typed_receiver_runs_every_override(tmp_path: Path) -> None:
    root = write(tmp_path, PROVIDER_PROJECT)
    findings = check([root], load_config([root]), cwd=root).findings
    # through an attribute typed in `__init__`, and through an annotated parameter; a
    # constructor call (`ConsoleSender().send`) names its class: no fan-out there
    tasks = {"app.tasks.remind", "app.tasks.remind_with"}
    assert {(f.path, f.line, f.rule): set(f.tasks) for f in findings} == {
        ("app/senders.py", 15, "IDM304"): tasks,
        ("app/senders.py", 22, "IDM302"): tasks,
    }
    # one sender runs per call: its effects and another's are not "several side effects"
    # of one run (no IDM602)


def test_overrides_are_bounded(tmp_path: Path) -> None:
    files = dict(PROVIDER_PROJECT)
    files["app/many.py"] = "from app.base import Sender\n" + "".join(
        f"class S{i}(Sender):\n    def send(self, to, text):\n        return {i}\n"
        for i in range(8)
    )
    files["app/settings.py"] = (
        "from app.many import S0\nfrom app.senders import ConsoleSender\n"
        "default_sender = ConsoleSender() if S0 else None\n"
    )
    root = write(tmp_path, files)
    # 3 + 8 overrides: too general a base to say which run
    assert check([root], load_config([root]), cwd=root).findings == []


def test_several_effects_of_one_override_still_count(tmp_path: Path) -> None:
    files = dict(PROVIDER_PROJECT)
    files["app/senders.py"] = files["app/senders.py"].replace(
        'send_mail("Reminder", text, "shop@example.com", [to])',
        'send_mail("Reminder", text, "shop@example.com", [to])\n'
        '                requests.post("https://log.example.com", json={"to": to})',
    )
    root = write(tmp_path, files)
    findings = check([root], load_config([root]), cwd=root).findings
    # `MailSender.send` mails and posts in the same run: that is several side effects
    several = [f for f in findings if f.rule == "IDM602"]
    assert several and "http-write, message" in several[0].message

"""The delivery model: a finding is reported only where its task can really run twice,
and its message and ``delivery`` name the mechanism and where it is configured.

The fixture projects ``delivery``, ``delivery_settings`` and ``delivery_assumed`` hold one
task per mechanism; ``tests/test_fixtures.py`` checks which lines are reported, and this
module checks *why*: the mechanism and its source, for every finding.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from idemlint.config import load_config
from idemlint.errors import ConfigError
from idemlint.lint.run.engine import check

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

EXPECTED = {
    "delivery": {
        ("mail/client.py", 13): ("schedule", "config/settings.py:7"),
        ("mail/sweeps.py", 14): ("schedule", "config/settings.py:7"),
        ("mail/sweeps.py", 20): ("schedule", "config/celery.py:12"),
        ("mail/tasks.py", 25): ("redelivery", "mail/tasks.py:21"),
        ("mail/tasks.py", 40): ("retry", "mail/tasks.py:37"),
        ("mail/tasks.py", 47): ("retry-call", "mail/tasks.py:51"),
        ("mail/tasks.py", 66): ("redelivery", "mail/tasks.py:63"),
        ("mail/tasks.py", 73): ("redelivery", "mail/tasks.py:69"),
        ("mail/fanout.py", 27): ("redelivery", "mail/fanout.py:23"),
    },
    "delivery_settings": {
        ("proj/tasks.py", 10): ("redelivery", "proj/celeryconfig.py:4"),
    },
    "delivery_classes": {
        ("proj/tasks.py", 12): ("redelivery", "proj/tasks.py:5"),
        ("proj/tasks.py", 17): ("redelivery", "proj/settings.py:1"),
    },
    "delivery_assumed": {
        ("app/tasks.py", 8): ("assumed", ""),
    },
    # plain tasks: only races are reported, at the first place that enqueues the task
    "races": {
        ("awards/tasks.py", 9): ("concurrent", "awards/signals.py:10"),
        ("awards/tasks.py", 18): ("concurrent", "awards/signals.py:13"),
        ("awards/tasks.py", 26): ("concurrent", "awards/views.py:9"),
        ("awards/tasks.py", 32): ("concurrent", "awards/tasks.py:73"),
        ("awards/tasks.py", 84): ("concurrent", "awards/views.py:14"),
        # a helper's status check on a note the message names (its twin on a note the
        # run made, and the other narrowed shapes in awards/narrow.py, stay clean)
        ("awards/narrow.py", 78): ("concurrent", "awards/views.py:27"),
    },
    # a value read, changed in memory and saved, on a row the message names: a lost
    # update when two messages for one row run at once (F(), a row lock, a row the run
    # made itself, a task nothing enqueues: clean)
    "lost_updates": {
        ("ledger/tasks.py", 11): ("concurrent", "ledger/signals.py:13"),
        ("ledger/tasks.py", 16): ("concurrent", "ledger/signals.py:16"),
        # clamped (max(total - n, 0)) through a local, saved by bulk_update
        ("ledger/tasks.py", 60): ("concurrent", "ledger/signals.py:21"),
        # bound in the `if` (walrus) from a slice of the message's ids
        ("ledger/tasks.py", 74): ("concurrent", "ledger/signals.py:26"),
    },
    # guards whose marker comes after the effect: only an overlap (an enqueue, also
    # through the project's `dispatch(task, ...)`, or a schedule) makes them a finding
    "effect_before_claim": {
        ("tracker/tasks.py", 26): ("concurrent", "tracker/views.py:19"),
        ("tracker/tasks.py", 47): ("concurrent", "tracker/views.py:23"),
        ("tracker/tasks.py", 65): ("concurrent", "tracker/views.py:28"),
        ("tracker/tasks.py", 75): ("schedule", "tracker/celery.py:5"),
        ("tracker/tasks.py", 200): ("concurrent", "tracker/views.py:39"),
    },
}


def _prefix(name: str) -> str:
    return f"fixtures/{name}/"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_finding_names_its_mechanism_and_source(name: str) -> None:
    root = FIXTURES / name
    config = load_config([root]).with_overrides(no_cache=True)
    result = check([root], config, cwd=FIXTURES.parent)
    got = {
        (f.path.removeprefix(_prefix(name)), f.line): (f.delivery[0], f.delivery[1])
        for f in result.findings
    }
    assert got == EXPECTED[name]
    for f in result.findings:
        assert f.delivery[2] and f.delivery[2] in f.message, f.message


def test_messages_say_what_repeats_the_work() -> None:
    root = FIXTURES / "delivery"
    config = load_config([root]).with_overrides(no_cache=True)
    by_line = {
        (f.path.rsplit("/", 1)[-1], f.line): f.message
        for f in check([root], config, cwd=FIXTURES.parent).findings
    }
    assert (
        "redelivered after a worker crash (acks_late=True, mail/tasks.py:21)"
        in (by_line[("tasks.py", 25)])
    )
    assert "retried on SendGridException" in by_line[("tasks.py", 40)]
    assert "which can be raised after this" in by_line[("tasks.py", 40)]
    assert "`self.retry()` at line 51, after this" in by_line[("tasks.py", 47)]
    assert (
        "runs on a schedule (add_periodic_task(...), config/celery.py:12)"
        in (by_line[("sweeps.py", 20)])
    )
    assert "a retry" not in " ".join(by_line.values())


def test_a_race_says_what_makes_two_runs_overlap() -> None:
    """``concurrent`` names the enqueue (its function, a loop) and how parallel runs
    happen; it never makes a plain task's unchecked create or message a finding."""
    root = FIXTURES / "races"
    config = load_config([root]).with_overrides(no_cache=True)
    findings = check([root], config, cwd=FIXTURES.parent).findings
    by_line = {f.line: f for f in findings}
    assert {f.rule for f in findings} == {"IDM401", "IDM402", "IDM601"}
    assert (
        "a message is enqueued at each call of `award_badge.delay()` in `on_answer_saved` "
        "(awards/signals.py:10); workers run messages in parallel"
    ) in by_line[9].message
    assert "in `finish_workout`, once per loop pass (awards/views.py:9)" in by_line[26].message
    assert "retried" not in " ".join(f.message for f in findings)


def test_a_lost_update_says_a_change_is_lost_not_applied_twice() -> None:
    """An in-memory relative update exposed only by overlapping messages gets the
    catalog's race message: nothing runs twice, one of two changes is lost."""
    root = FIXTURES / "lost_updates"
    config = load_config([root]).with_overrides(no_cache=True)
    findings = check([root], config, cwd=FIXTURES.parent).findings
    assert [(f.rule, f.line) for f in findings] == [("IDM501", n) for n in (11, 16, 60, 74)]
    for finding in findings:
        assert "two runs at once for the same row" in finding.message
        assert "one change is lost" in finding.message
        assert "applies the change twice" not in finding.message
        assert "workers run messages in parallel" in finding.message


def test_an_enqueue_in_a_test_file_or_none_gives_no_race(tmp_path: Path) -> None:
    """A task enqueued only by a test, or by nothing, has no ``concurrent`` mechanism;
    once application code enqueues it, the race is reported there."""
    root = tmp_path / "proj"
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text("[tool.idemlint]\n")
    (root / "app" / "__init__.py").write_text("")
    (root / "tests" / "__init__.py").write_text("")
    (root / "app" / "tasks.py").write_text(
        "from celery import shared_task\n"
        "from django.db import models\n\n\n"
        "class Seat(models.Model):\n"
        "    user_id = models.IntegerField()\n\n\n"
        "@shared_task\n"
        "def take_seat(user_id):\n"
        "    Seat.objects.get_or_create(user_id=user_id)\n"
    )
    (root / "tests" / "test_tasks.py").write_text(
        "from app.tasks import take_seat\n\n\ndef test_it():\n    take_seat.delay(1)\n"
    )
    config = load_config([root]).with_overrides(no_cache=True)
    assert check([root], config).findings == []
    (root / "app" / "views.py").write_text(
        "from app.tasks import take_seat\n\n\ndef join(request):\n"
        "    take_seat.delay(request.user.id)\n"
    )
    for prefilter in (True, False):
        found = check([root], config, prefilter=prefilter).findings
        assert [(f.rule, f.delivery[:2]) for f in found] == [
            ("IDM401", ("concurrent", "app/views.py:5"))
        ]


def test_json_carries_the_delivery_object() -> None:
    root = FIXTURES / "delivery_settings"
    result = subprocess.run(
        [sys.executable, "-m", "idemlint", "check", "--no-cache", "--format", "json", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout)["findings"]
    assert [f["delivery"] for f in findings] == [
        {
            "mechanism": "redelivery",
            "source": "proj/celeryconfig.py:4",
            "detail": findings[0]["delivery"]["detail"],
        }
    ]
    assert findings[0]["delivery"]["detail"].startswith("the task is redelivered")


def test_assume_retries_must_be_a_boolean(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.idemlint]\nassume-retries = "yes"\n')
    with pytest.raises(ConfigError) as err:
        load_config([tmp_path])
    assert "assume-retries" in str(err.value)
    assert "pyproject.toml" in str(err.value)


def test_one_problem_one_finding_with_every_task_that_reaches_it(tmp_path: Path) -> None:
    """Same-rule findings on one object in one function collapse into one that names the
    other lines; a shared helper's finding lists every task that reaches it."""
    (tmp_path / "pyproject.toml").write_text("[tool.idemlint]\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(
        "from django.db import models\n\n\n"
        "class Note(models.Model):\n    text = models.TextField()\n"
    )
    (app / "tasks.py").write_text(
        "from celery import shared_task\n\n"
        "from app.models import Note\n\n\n"
        "def log(text):\n"
        "    Note.objects.create(text=text)\n"
        "    Note.objects.create(text=text + '!')\n\n\n"
        "@shared_task(acks_late=True)\n"
        "def first(text):\n    log(text)\n\n\n"
        "@shared_task(acks_late=True)\n"
        "def second(text):\n    log(text)\n"
    )
    config = load_config([tmp_path]).with_overrides(no_cache=True)
    (finding,) = check([tmp_path], config, cwd=tmp_path).findings
    assert (finding.path, finding.line, finding.rule) == ("app/tasks.py", 7, "IDM301")
    assert finding.also == (8,)
    assert "(the same at line 8)" in finding.message
    assert finding.tasks == ("app.tasks.first", "app.tasks.second")
    assert finding.to_json()["tasks"] == ["app.tasks.first", "app.tasks.second"]


SEVERITY_PROJECT = {
    "app/__init__.py": "",
    "app/models.py": (
        "from django.db import models\n\n\n"
        "class Order(models.Model):\n    total = models.IntegerField()\n\n\n"
        "class OrderLog(models.Model):\n    text = models.TextField()\n"
    ),
    "app/tasks.py": (
        "from celery import shared_task\n"
        "from django.core.mail import send_mail\n\n"
        "from app.models import Order, OrderLog\n\n\n"
        "@shared_task(acks_late=True)\n"
        "def place(total, email):\n"
        "    Order.objects.create(total=total)\n"
        "    OrderLog.objects.create(text='placed')\n"
        '    send_mail("Placed", "ok", "shop@example.com", [email])\n'
    ),
}


def _severity_project(tmp_path: Path, table: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.idemlint]\n" + table)
    for name, text in SEVERITY_PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_severity_by_effect_kind_and_log_models(tmp_path: Path) -> None:
    from idemlint.report.checking import check_project

    root = _severity_project(tmp_path)
    config = load_config([root]).with_overrides(no_cache=True)
    raw = {f.line: f.severity for f in check([root], config, cwd=root).findings}
    assert raw == {9: "warning", 10: "info", 11: "error"}
    # min-severity defaults to warning: the log row is not reported
    assert [f.line for f in check_project(root, cwd=root)] == [9, 11]


def test_min_severity_and_user_overrides(tmp_path: Path) -> None:
    from idemlint.report.checking import check_project

    root = _severity_project(
        tmp_path,
        'min-severity = "info"\n'
        'severity = [{ model = "Order", level = "error" }, '
        '{ call = "django.core.mail.send_mail", level = "warning" }]\n',
    )
    got = {f.line: f.severity for f in check_project(root, cwd=root)}
    assert got == {9: "error", 10: "info", 11: "warning"}


def test_min_severity_on_the_command_line_and_in_sarif(tmp_path: Path) -> None:
    root = _severity_project(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "idemlint", "check", "--no-cache", "--min-severity", "error",
         "--format", "sarif", str(root)],
        capture_output=True, text=True, check=False, cwd=root,
    )  # fmt: skip
    results = json.loads(out.stdout)["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("IDM302", "error")]
    bad = subprocess.run(
        [sys.executable, "-m", "idemlint", "check", "--min-severity", "fatal", str(root)],
        capture_output=True, text=True, check=False, cwd=root,
    )  # fmt: skip
    assert bad.returncode == 2 and "fatal" in bad.stderr


def test_a_bad_severity_config_names_the_file_and_key(tmp_path: Path) -> None:
    root = _severity_project(tmp_path, 'severity = [{ model = "Order", level = "loud" }]\n')
    with pytest.raises(ConfigError) as err:
        load_config([root])
    assert "severity[0]" in str(err.value) and "loud" in str(err.value)
    root2 = tmp_path / "second"
    root2.mkdir()
    (root2 / "pyproject.toml").write_text('[tool.idemlint]\nmin-severity = "loud"\n')
    with pytest.raises(ConfigError) as err:
        load_config([root2])
    assert "min-severity" in str(err.value)

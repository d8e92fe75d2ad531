"""The pytest plugin: registered through pytest11, cheap to load, importing nothing it hooks."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from idemlint.testing import RetryReport


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert [p.value for p in points if p.name == "idemlint"] == ["idemlint.testing.plugin"]


def test_the_fixture_is_the_helper(assert_retry_safe: Callable[..., RetryReport]) -> None:
    calls: list[int] = []
    report = assert_retry_safe(calls.append, 1)
    assert report.safe and report.effects == [] and calls == [1, 1, 1]


def test_loading_the_plugin_imports_no_orm_client_or_task_framework() -> None:
    hooked = ["django", "sqlalchemy", "celery", "rq", "dramatiq", "huey", "arq", "taskiq"]
    hooked += ["requests", "httpx", "asyncio", "libcst"]
    code = (
        "import sys, idemlint.testing.plugin, idemlint.testing;"
        f"print([m for m in {hooked!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded: Any = ast.literal_eval(out)
    assert loaded == []


def test_a_check_puts_every_patched_library_back() -> None:
    import smtplib

    import requests.adapters

    before = (requests.adapters.HTTPAdapter.send, smtplib.SMTP.sendmail, smtplib.SMTP.connect)
    from idemlint.testing import assert_retry_safe

    assert_retry_safe(lambda: None)
    after = (requests.adapters.HTTPAdapter.send, smtplib.SMTP.sendmail, smtplib.SMTP.connect)
    assert before == after

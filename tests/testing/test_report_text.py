"""``print(report)`` shows a person the verdict, not a dataclass dump (issue 15, item 4)."""

from __future__ import annotations

import pytest
import requests

from idemlint.testing import RetryCheck, RetryReport, assert_retry_safe


def post_twice_unsafe(order_id: int) -> None:
    requests.post("https://api.example.test/orders", json={"id": order_id}, timeout=5)


def test_a_safe_report_prints_its_verdict_and_effects() -> None:
    calls: list[int] = []
    report: RetryReport = assert_retry_safe(calls.append, 1)
    text = str(report)
    assert text == report.render()
    assert text.splitlines()[0] == report.summary
    assert report.summary == "list.append is safe to retry (1 scenario)"
    assert "effects of one clean run: none recorded" in text
    assert "RetryReport(" not in text and "Scenario(" not in text


def test_an_unsafe_report_prints_each_failed_scenario_with_its_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = RetryCheck(post_twice_unsafe).run(7)
    assert not report.safe
    print(report)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == report.summary
    assert "is not safe to retry" in lines[0]
    assert "POST https://api.example.test/orders" in out
    assert "fix: IDM304 [check-prior-art]" in out
    assert "RetryReport(" not in out
    assert str(report.failures[0]) == report.failures[0].render()

"""Report formats: the same findings in text, json, github, junit and gitlab."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from test_cli_support import copy_project, line_of, run_idemlint

from idemlint.catalog import load_catalog
from idemlint.findings import Finding
from idemlint.report.baseline import fingerprint
from idemlint.report.formats import Report, github, gitlab, junit, text
from idemlint.report.formats import json as json_output

ANNOTATION = re.compile(r"^::(error|warning|notice) file=([^,]*),line=(\d+),col=(\d+),.*?::(.*)$")


def sample(tmp_path: Path) -> Report:
    findings = [
        Finding(
            "app/tasks.py",
            3,
            5,
            "IDM301",
            "Row created, with a comma: and a colon",
            3,
            11,
            "app.tasks.charge",
            ("app.helpers.pay",),
            "charge()",
        ),
        Finding("app/tasks.py", 9, 5, "IDM301", "again", 9, 11, "app.tasks.charge", (), "charge()"),
        Finding("bad.py", 1, 1, "IDM001", "does not parse", 1, 2),
    ]
    return Report(findings, 4, tmp_path, tmp_path, files=["app/tasks.py", "bad.py", "ok.py"])


def test_text_line_format() -> None:
    finding = Finding("app/t.py", 12, 5, "IDM301", "msg", 12, 9, "app.t.charge_order")
    docs = "https://idemlint.readthedocs.io/en/latest/rules"
    assert text.finding_line(finding) == (
        "app/t.py:12:5: IDM301 [check-prior-art] warning: msg (task: app.t.charge_order) "
        f"{docs}/IDM301/"
    )
    assert text.finding_line(finding, link=False) == (
        "app/t.py:12:5: IDM301 [check-prior-art] warning: msg (task: app.t.charge_order)"
    )
    notice = Finding("app/t.py", 1, 1, "IDM001", "does not parse", 1, 2)
    assert text.finding_line(notice) == (
        f"app/t.py:1:1: IDM001 [notice] does not parse {docs}/IDM001/"
    )
    coloured = text.finding_line(finding, color=True)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == text.finding_line(finding)


def test_show_source_caret_under_the_columns(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("def f():\n\tx = charge(1)\n")
    finding = Finding("t.py", 2, 6, "IDM301", "m", 2, 15, "t.f", ("t.g",), "x = charge(1)")
    report = Report([finding], 1, tmp_path, tmp_path)
    lines = text.render(report, show_source=True).splitlines()
    assert lines[1] == " 2 | \tx = charge(1)"
    assert lines[2] == "   | \t    ^^^^^^^^^"
    assert lines[3] == "   = via t.f -> t.g"


def test_json_contract(tmp_path: Path) -> None:
    document = json.loads(json_output.render(sample(tmp_path)))
    assert set(document) == {"findings", "summary"}
    first = document["findings"][0]
    assert set(first) >= {
        "rule",
        "checklist",
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "message",
        "task",
        "via",
    }
    assert first["via"] == ["app.helpers.pay"]
    summary = document["summary"]
    assert summary["total"] == 3
    assert summary["files_checked"] == 4
    assert summary["by_rule"] == {"IDM001": 1, "IDM301": 2}
    assert summary["by_checklist"]["check-prior-art"] == 2
    assert summary["by_checklist"]["notice"] == 1
    assert summary["by_checklist"]["assume-retries"] == 0


def test_github_commands_are_escaped(tmp_path: Path) -> None:
    lines = github.render(sample(tmp_path)).splitlines()
    fix = load_catalog()["IDM301"].short_fix
    assert lines[0] == (
        "::warning file=app/tasks.py,line=3,col=5,endLine=3,endColumn=11,title=IDM301::"
        "[check-prior-art] Row created, with a comma: and a colon (task: app.tasks.charge)"
        f"%0AFix: {fix}%0Ahttps://idemlint.readthedocs.io/en/latest/rules/IDM301/"
    )
    assert lines[2].startswith("::notice file=bad.py,line=1,col=1,")
    assert lines[2].endswith("%0Ahttps://idemlint.readthedocs.io/en/latest/rules/IDM001/")
    weird = Finding("a,b:c.py", 1, 1, "IDM301", "two\nlines 100%", 1, 2, "t")
    command = github.command(weird)
    assert "file=a%2Cb%3Ac.py," in command
    assert "::[check-prior-art] two%0Alines 100%25 (task: t)%0AFix: " in command


def test_junit_is_well_formed_with_a_failure_per_finding(tmp_path: Path) -> None:
    root = ET.fromstring(junit.render(sample(tmp_path)).encode())
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == 3
    assert suite.get("tests") == "4"
    assert suite.get("failures") == "3"
    assert [c.get("name") for c in cases if c.find("failure") is None] == ["ok.py"]
    first = failures[0].find("failure")
    assert first is not None
    assert first.get("type") == "IDM301"
    assert "app/tasks.py:3:5: IDM301" in (first.text or "")


def test_junit_without_findings_still_has_a_test(tmp_path: Path) -> None:
    root = ET.fromstring(junit.render(Report([], 0, tmp_path, tmp_path)).encode())
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == 1


def test_gitlab_issues_and_unique_fingerprints(tmp_path: Path) -> None:
    report = sample(tmp_path)
    issues = gitlab.document(report)
    assert len(issues) == 3
    for issue in issues:
        assert {"description", "check_name", "fingerprint", "severity", "location"} <= set(issue)
        assert issue["location"]["lines"]["begin"] >= 1
    assert issues[0]["check_name"] == "IDM301"
    assert issues[0]["location"]["path"] == "app/tasks.py"
    assert issues[0]["severity"] == "major"
    assert issues[2]["severity"] == "info"
    fix = load_catalog()["IDM301"].short_fix
    assert issues[0]["content"]["body"] == (
        f"**Fix:** {fix}\n\n"
        "[IDM301 in the idemlint docs](https://idemlint.readthedocs.io/en/latest/rules/IDM301/)"
    )
    # Same rule, path, task and statement: one baseline fingerprint, two issues.
    same = fingerprint(report.findings[0], tmp_path, cwd=tmp_path)
    assert same == fingerprint(report.findings[1], tmp_path, cwd=tmp_path)
    assert len({i["fingerprint"] for i in issues}) == 3


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("formats"))


@pytest.fixture(scope="module")
def reference(project: Path) -> list[dict[str, Any]]:
    done = run_idemlint("check", "--format", "json", cwd=project)
    assert done.returncode == 1, done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout)["findings"]
    assert findings
    return findings


def places(findings: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(f["path"], f["line"], f["rule"]) for f in findings]


def test_every_format_reports_the_same_findings(
    project: Path, reference: list[dict[str, Any]]
) -> None:
    expected = places(reference)

    done = run_idemlint("check", cwd=project)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    parsed = [re.match(r"^(.*?):(\d+):(\d+): (IDM\d+) ", line) for line in lines[:-1]]
    assert all(parsed), lines
    assert [(m.group(1), int(m.group(2)), m.group(4)) for m in parsed if m] == expected
    assert lines[-1].startswith(f"Found {len(expected)} finding")

    done = run_idemlint("check", "--format", "github", cwd=project)
    assert done.returncode == 1
    matches = [ANNOTATION.match(line) for line in done.stdout.splitlines()]
    assert all(matches)
    found = [(m.group(2), int(m.group(3)), m.group(5)) for m in matches if m]
    assert [(p, n) for p, n, _ in found] == [(p, n) for p, n, _ in expected]
    assert "Found" in done.stderr  # the summary goes to stderr, the report stays clean

    done = run_idemlint("check", "--format", "gitlab", cwd=project)
    assert done.returncode == 1
    issues = json.loads(done.stdout)
    located = [(i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues]
    assert [(*place, i["check_name"]) for place, i in zip(located, issues, strict=True)] == expected

    done = run_idemlint("check", "--format", "junit", cwd=project)
    assert done.returncode == 1
    suite = ET.fromstring(done.stdout.encode()).find("testsuite")
    assert suite is not None
    failed = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [(c.get("file"), int(c.get("line") or 0)) for c in failed] == [
        (p, n) for p, n, _ in expected
    ]
    passing = {c.get("file") for c in suite.findall("testcase") if c.find("failure") is None}
    assert "shop/models.py" in passing


def test_output_file_and_terminal_summary(project: Path, reference: list[dict[str, Any]]) -> None:
    target = project / "report.json"
    done = run_idemlint("check", "--format", "json", "--output", target, cwd=project)
    assert done.returncode == 1
    assert json.loads(target.read_text())["findings"] == reference
    assert done.stdout.strip().startswith(f"Found {len(reference)} finding")
    assert "{" not in done.stdout

    text_target = project / "report.txt"
    done = run_idemlint("check", "--output", text_target, cwd=project)
    assert "IDM301 [check-prior-art]" in text_target.read_text()
    assert "IDM301 [check-prior-art]" not in done.stdout
    assert done.stdout.startswith("Found ")


def test_statistics_and_show_source(project: Path, reference: list[dict[str, Any]]) -> None:
    done = run_idemlint("check", "--statistics", cwd=project)
    counts: dict[str, int] = {}
    for finding in reference:
        counts[finding["rule"]] = counts.get(finding["rule"], 0) + 1
    stats = [line.split() for line in done.stdout.splitlines() if re.match(r"^\d+\s+IDM", line)]
    assert {row[1]: int(row[0]) for row in stats} == counts

    done = run_idemlint("check", "--show-source", "shop/helpers.py", cwd=project)
    helpers = project / "shop" / "helpers.py"
    number = line_of(helpers, "Payment.objects.create")
    lines = done.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"shop/helpers.py:{number}:"))
    column = int(lines[index].split(":")[2])
    source_line = helpers.read_text().splitlines()[number - 1]
    assert lines[index + 1] == f" {number} | {source_line}"
    caret = lines[index + 2].split("| ", 1)[1]
    assert caret.index("^") == column - 1
    assert (
        lines[index + 3].strip()
        == "= via shop.tasks.charge_via_helper -> shop.helpers.record_payment"
    )

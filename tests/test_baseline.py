"""Baselines: fingerprints that survive edits, duplicates counted, stable files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_support import copy_project, line_of, run_idemlint

from idemlint.errors import ConfigError
from idemlint.findings import Finding
from idemlint.report.baseline import (
    build_baseline,
    dump_baseline,
    fingerprint,
    match_baseline,
    read_baseline,
)


def make(line: int, source: str, *, path: str = "app/tasks.py", task: str = "app.t") -> Finding:
    return Finding(path, line, 5, "IDM301", "m", line, 20, task, (), source)


def test_fingerprint_ignores_lines_and_whitespace_not_identity(tmp_path: Path) -> None:
    def fp(finding: Finding, cwd: Path = tmp_path) -> str:
        return fingerprint(finding, tmp_path, cwd=cwd)

    base = fp(make(10, "Payment.objects.create(user=u)"))
    assert fp(make(42, "Payment.objects.create( user = u )")) == base
    assert fp(make(10, "Payment.objects.create(user=v)")) != base
    assert fp(make(10, "Payment.objects.create(user=u)", task="app.other")) != base
    assert fp(make(10, "Payment.objects.create(user=u)", path="app/x.py")) != base
    # The path is taken relative to the project root, whatever the cwd.
    moved = make(10, "Payment.objects.create(user=u)", path="tasks.py")
    assert fp(moved, cwd=tmp_path / "app") == base


def test_duplicates_are_counted_not_collapsed(tmp_path: Path) -> None:
    one = [make(10, "charge()")]
    entries = build_baseline(one, tmp_path, cwd=tmp_path)
    assert [e.count for e in entries] == [1]

    two = [make(10, "charge()"), make(30, "charge()")]
    result = match_baseline(two, entries, tmp_path, cwd=tmp_path)
    assert result.matched == 1
    assert [f.line for f in result.new] == [30]
    assert result.fixed == []

    both = build_baseline(two, tmp_path, cwd=tmp_path)
    assert [e.count for e in both] == [2]
    result = match_baseline(one, both, tmp_path, cwd=tmp_path)
    assert result.new == []
    assert [(e.statement, e.count) for e in result.fixed] == [("charge()", 1)]


def test_file_is_sorted_and_stable(tmp_path: Path) -> None:
    findings = [make(30, "b()"), make(10, "a()", path="app/a.py"), make(20, "b()")]
    text = dump_baseline(build_baseline(findings, tmp_path, cwd=tmp_path))
    shuffled = dump_baseline(build_baseline(findings[::-1], tmp_path, cwd=tmp_path))
    assert text == shuffled
    document = json.loads(text)
    assert [e["path"] for e in document["findings"]] == ["app/a.py", "app/tasks.py"]
    assert text.endswith("\n")
    assert "line" not in text  # line numbers would churn the file on every edit


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"version": 99, "findings": []}', '{"version": 1, "findings": [{}]}'],
)
def test_malformed_baseline_is_a_clear_error(tmp_path: Path, content: str) -> None:
    file = tmp_path / "b.json"
    file.write_text(content)
    with pytest.raises(ConfigError) as info:
        read_baseline(file)
    assert str(file) in str(info.value)


def test_cli_baseline_round_trip_survives_edits_and_counts_copies(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    done = run_idemlint("baseline", cwd=project)
    assert done.returncode == 0, done.stderr
    baseline = project / ".idemlint-baseline.json"
    recorded = json.loads(baseline.read_text())
    assert recorded["findings"], "the fixture has findings to record"

    # Nothing new: exit 0, nothing listed.
    done = run_idemlint("check", "--baseline", baseline, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "IDM" not in done.stdout.replace("known from the baseline", "")

    # Lines added above every finding and a reformatted statement: still known.
    tasks = project / "shop" / "tasks.py"
    text = tasks.read_text()
    text = "# a comment\n# another\n\n" + text.replace(
        "Payment.objects.create(user_id=user_id, amount_cents=amount_cents)",
        "Payment.objects.create(user_id=user_id,  amount_cents=amount_cents )",
    )
    tasks.write_text(text)
    done = run_idemlint("check", "--baseline", baseline, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr

    # A second copy of the same statement in the same function is the same problem: it
    # joins the known finding (one problem, one finding), which names its line.
    line = line_of(tasks, "Payment.objects.create(user_id=user_id,")
    lines = text.splitlines()
    lines.insert(line, lines[line - 1])
    tasks.write_text("\n".join(lines) + "\n")
    done = run_idemlint("check", "--baseline", baseline, cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_idemlint("check", "--format", "json", cwd=project)
    (known,) = [f for f in json.loads(done.stdout)["findings"] if f["line"] == line]
    assert known["also"] == [line + 1]

    # The same statement in another task is new.
    with tasks.open("a") as out:
        out.write(
            "\n\n@shared_task(acks_late=True)\ndef charge_again(user_id, amount_cents):\n"
            "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)\n"
        )
    added = len(tasks.read_text().splitlines())
    done = run_idemlint("check", "--baseline", baseline, "--format", "json", cwd=project)
    assert done.returncode == 1
    new = json.loads(done.stdout)["findings"]
    assert [(f["path"], f["line"], f["rule"]) for f in new] == [("shop/tasks.py", added, "IDM301")]

    # Remove the helper's finding: --show-fixed lists it, in text and JSON.
    helpers = project / "shop" / "helpers.py"
    helpers.write_text("def record_payment(user_id, amount_cents):\n    return None\n")
    done = run_idemlint("check", "--baseline", baseline, "--show-fixed", cwd=project)
    assert "Fixed since the baseline" in done.stdout
    assert "shop/helpers.py: IDM301" in done.stdout
    done = run_idemlint(
        "check", "--baseline", baseline, "--show-fixed", "--format", "json", cwd=project
    )
    fixed = json.loads(done.stdout)["baseline"]["fixed"]
    assert [(e["path"], e["rule"]) for e in fixed] == [("shop/helpers.py", "IDM301")]


def test_cli_baseline_output_option_and_same_findings_as_check(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    target = tmp_path / "elsewhere.json"
    done = run_idemlint("baseline", "shop", "--output", target, "--ignore", "IDM4", cwd=project)
    assert done.returncode == 0, done.stderr
    entries = read_baseline(target)
    check = run_idemlint("check", "shop", "--ignore", "IDM4", "--format", "json", cwd=project)
    reported = json.loads(check.stdout)["findings"]
    assert sum(e.count for e in entries) == len(reported)
    assert not any(e.rule.startswith("IDM4") for e in entries)
    assert not (project / ".idemlint-baseline.json").exists()

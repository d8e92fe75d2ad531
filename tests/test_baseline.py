"""Baselines: fingerprints that survive edits, duplicates counted, stable files."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
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


def test_fingerprint_ignores_comments_but_not_hashes_in_strings(tmp_path: Path) -> None:
    def fp(source: str) -> str:
        return fingerprint(make(10, source), tmp_path, cwd=tmp_path)

    base = fp("Payment.objects.create(user=u)")
    assert fp("Payment.objects.create(user=u)  # TODO: key") == base
    assert fp("Payment.objects.create(user=u)  # noqa: E501") == base
    assert fp("Payment.objects.create(user=u)#type: ignore") == base
    assert fp('send("#1")') != fp('send("#2")')
    assert fp('send("# not a comment")  # a comment') == fp('send("# not a comment")')
    assert fp("send('it''s')  # x") == fp("send('it''s')")
    # the start of a longer statement: an open bracket, a triple-quoted string
    assert fp("Payment.objects.create(  # the charge") == fp("Payment.objects.create(")
    assert fp('notify("""#1') != fp('notify("""#2')
    # a statement that is only a comment (an unused suppression's text) keeps it
    assert fp("# noqa: IDM301") != fp("# noqa: IDM302")


def test_baseline_files_of_the_first_recipe_keep_matching(tmp_path: Path) -> None:
    """A committed baseline must not explode: entries whose stored fingerprint counted
    their comment (the first recipe) match the same finding, with or without it."""
    commented = "Payment.objects.create(user=u)  # TODO: key"
    path, rule, task = "app/tasks.py", "IDM301", "app.t"
    old = "".join(commented.split())  # the first recipe: whitespace out, comment in
    stored = hashlib.sha256("\0".join((rule, path, task, old)).encode()).hexdigest()[:32]
    file = tmp_path / "old-baseline.json"
    file.write_text(
        json.dumps(
            {
                "version": 1,
                "findings": [
                    {
                        "path": path,
                        "rule": rule,
                        "task": task,
                        "statement": commented,
                        "fingerprint": stored,
                        "count": 1,
                    }
                ],
            }
        )
    )
    entries = read_baseline(file)
    for source in (commented, "Payment.objects.create(user=u)", commented + "  # noqa: E501"):
        result = match_baseline([make(10, source)], entries, tmp_path, cwd=tmp_path)
        assert (result.new, result.matched, result.fixed) == ([], 1, []), source
    # an entry whose statement no longer gives its stored fingerprint (edited by hand)
    # is still found by the fingerprint it stores
    edited = [replace(entries[0], statement="something else", fingerprint="x" * 32)]
    result = match_baseline([make(10, commented)], edited, tmp_path, cwd=tmp_path)
    assert result.matched == 1


def test_suppressed_is_not_fixed(tmp_path: Path) -> None:
    entries = build_baseline([make(10, "charge()"), make(20, "refund()")], tmp_path, cwd=tmp_path)
    result = match_baseline([], entries, tmp_path, cwd=tmp_path, silenced=[make(10, "charge()")])
    assert [e.statement for e in result.suppressed] == ["charge()"]
    assert [e.statement for e in result.fixed] == ["refund()"]


def test_cli_comments_keep_a_finding_baselined_and_noqa_is_suppressed_not_fixed(
    tmp_path: Path,
) -> None:
    project = copy_project(tmp_path)
    baseline = project / ".idemlint-baseline.json"
    assert run_idemlint("baseline", cwd=project).returncode == 0
    tasks = project / "shop" / "tasks.py"
    statement = "Payment.objects.create(user_id=user_id, amount_cents=amount_cents)"
    text = tasks.read_text()
    assert text.count(statement) == 1

    # a comment added to the baselined line, then ruff's --add-noqa on top: still known
    for comment in ("  # TODO: idempotency key", "  # TODO: idempotency key  # noqa: E501"):
        tasks.write_text(text.replace(statement, statement + comment))
        done = run_idemlint("check", "--baseline", baseline, "--show-fixed", cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "No baseline entries fixed." in done.stdout

    # silenced by a noqa comment: suppressed, never listed as fixed
    tasks.write_text(text.replace(statement, statement + "  # noqa: IDM301"))
    done = run_idemlint("check", "--baseline", baseline, "--show-fixed", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No baseline entries fixed." in done.stdout
    assert "Suppressed since the baseline" in done.stdout
    assert "shop/tasks.py: IDM301 (task: shop.tasks.charge) " + statement in done.stdout
    assert "1 suppressed (still found, not reported)" in done.stdout
    assert "fixed" not in done.stdout.splitlines()[-1]
    done = run_idemlint("check", "--baseline", baseline, "--format", "json", cwd=project)
    document = json.loads(done.stdout)["baseline"]
    assert document["fixed"] == []
    assert [(e["path"], e["rule"]) for e in document["suppressed"]] == [("shop/tasks.py", "IDM301")]

    # ignored in the configuration: suppressed too, not fixed
    tasks.write_text(text)
    done = run_idemlint("check", "--baseline", baseline, "--ignore", "IDM3", cwd=project)
    assert "fixed" not in done.stdout.splitlines()[-1]
    assert "suppressed" in done.stdout.splitlines()[-1]

"""Inline suppressions: parsing with tokenize, matching by line and code prefix, IDM003."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_support import copy_project, line_of, run_idemlint

from idemlint.findings import Finding
from idemlint.lint.files.comments import parse_suppressions
from idemlint.report.suppression import apply_suppressions


def finding(path: str, line: int, rule: str = "IDM301") -> Finding:
    return Finding(
        path=path,
        line=line,
        column=5,
        rule=rule,
        message="m",
        end_line=line,
        end_column=9,
        task="app.tasks.t",
    )


def test_comments_are_found_by_the_tokenizer_not_in_strings() -> None:
    source = b'''x = "# noqa: IDM301"
y = """
# idemlint: ignore[IDM302]
"""
z = 1  # idemlint: ignore[IDM303, idm304] -- reason, with a comma
w = 2  # noqa: E501, IDM305
v = 3  # noqa: E501
u = 4  # noqa
t = 5  # idemlint: ignore
s = 6  # idemlint: ignore-file is not a thing
'''
    found = {(s.line, s.kind, s.codes, s.reportable) for s in parse_suppressions(source)}
    assert found == {
        (5, "idemlint", ("IDM303", "IDM304"), True),
        (6, "noqa", ("IDM305",), True),
        (8, "noqa", None, False),
        (9, "idemlint", None, True),
    }


def test_tokenize_errors_keep_comments_before_them() -> None:
    source = b"a = 1  # idemlint: ignore[IDM301]\ndef broken(:\n    pass\n"
    assert [s.line for s in parse_suppressions(source)] == [1]


def test_suppression_by_exact_code_prefix_and_blanket(tmp_path: Path) -> None:
    code = tmp_path / "tasks.py"
    code.write_text(
        "a()  # idemlint: ignore[IDM301]\n"
        "b()  # idemlint: ignore[IDM3]\n"
        "c()  # idemlint: ignore\n"
        "d()  # noqa: IDM301\n"
        "e()  # idemlint: ignore[IDM302]\n"
        "f()\n"
    )
    findings = [finding(str(code), n) for n in range(1, 7)]
    kept = apply_suppressions(findings, [code], cwd=tmp_path)
    reported = sorted((f.line, f.rule) for f in kept)
    # Lines 1-4 are silenced; line 5's IDM302 suppression does not cover IDM301
    # (kept) and silences nothing (IDM003); line 6 has no suppression.
    assert reported == [(5, "IDM003"), (5, "IDM301"), (6, "IDM301")]
    notice = next(f for f in kept if f.rule == "IDM003")
    assert notice.column == len("e()  ") + 1
    assert "IDM302" in notice.message
    assert notice.task == ""


def test_unused_part_of_a_suppression_is_reported(tmp_path: Path) -> None:
    code = tmp_path / "tasks.py"
    code.write_text("a()  # idemlint: ignore[IDM301, IDM302]\n")
    kept = apply_suppressions([finding(str(code), 1)], [code], cwd=tmp_path)
    assert [(f.rule, f.line) for f in kept] == [("IDM003", 1)]
    assert "IDM302" in kept[0].message
    assert "IDM301" not in kept[0].message


def test_shared_noqa_is_never_reported_unused(tmp_path: Path) -> None:
    code = tmp_path / "tasks.py"
    code.write_text("a()  # noqa\nb()  # noqa: E501\nc()  # noqa: IDM301\n")
    kept = apply_suppressions([], [code], cwd=tmp_path)
    assert [(f.rule, f.line) for f in kept] == [("IDM003", 3)]


def test_files_without_findings_are_scanned_and_unparsable_files_are_not_judged(
    tmp_path: Path,
) -> None:
    clean = tmp_path / "clean.py"
    clean.write_text("x = 1  # idemlint: ignore[IDM301]\n")
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1  # idemlint: ignore[IDM301]\ndef (:\n")
    syntax = Finding("broken.py", 2, 5, "IDM001", "does not parse", 2, 6)
    kept = apply_suppressions([syntax], [clean, broken], cwd=tmp_path)
    assert sorted((f.path, f.rule) for f in kept) == [
        ("broken.py", "IDM001"),
        ("clean.py", "IDM003"),
    ]


def test_cli_honours_suppressions_and_reports_unused(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    tasks = project / "shop" / "tasks.py"
    text = tasks.read_text()
    text = text.replace(
        "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)\n",
        "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)"
        "  # idemlint: ignore[IDM301] -- test\n",
    )
    text = text.replace(
        "    record_payment(user_id, amount_cents)\n",
        "    record_payment(user_id, amount_cents)  # noqa: IDM305\n",
    )
    text += '\n\nNOT_A_COMMENT = "# idemlint: ignore"\n'
    tasks.write_text(text)

    done = run_idemlint("check", "--format", "json", cwd=project)
    findings = json.loads(done.stdout)["findings"]
    in_tasks = {(f["line"], f["rule"]) for f in findings if f["path"] == "shop/tasks.py"}
    create_line = line_of(tasks, "ignore[IDM301]")
    helper_line = line_of(tasks, "noqa: IDM305")
    assert (create_line, "IDM301") not in in_tasks
    assert (helper_line, "IDM003") in in_tasks
    assert all(f["line"] != line_of(tasks, "NOT_A_COMMENT") for f in findings)
    # The helper's own finding is on its line in helpers.py, untouched by a
    # comment on the call site.
    assert any(f["path"] == "shop/helpers.py" and f["rule"] == "IDM301" for f in findings)


def test_unused_suppression_says_where_the_finding_really_is(tmp_path: Path) -> None:
    """A comment on the last line of a multi-line statement, and one on a task's call of
    the helper that holds the finding: the notice names the line where it is reported."""
    project = copy_project(tmp_path)
    tasks = project / "shop" / "tasks.py"
    text = tasks.read_text()
    text = text.replace(
        "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)\n",
        "    Payment.objects.create(\n"
        "        user_id=user_id,\n"
        "        amount_cents=amount_cents,\n"
        "    )  # noqa: IDM301\n",
    )
    text = text.replace(
        "    record_payment(user_id, amount_cents)\n",
        "    record_payment(user_id, amount_cents)  # idemlint: ignore[IDM301]\n",
    )
    tasks.write_text(text)
    helper_line = line_of(project / "shop" / "helpers.py", "Payment.objects.create")
    create_line = line_of(tasks, "Payment.objects.create(")

    done = run_idemlint("check", "--format", "json", cwd=project)
    notices = {
        f["line"]: f["message"]
        for f in json.loads(done.stdout)["findings"]
        if f["rule"] == "IDM003"
    }
    assert notices[line_of(tasks, "# noqa: IDM301")].endswith(
        f"IDM301 is reported at line {create_line}, where its statement starts: "
        "the comment goes there"
    )
    assert notices[line_of(tasks, "ignore[IDM301]")].endswith(
        f"IDM301 is reported at shop/helpers.py:{helper_line}, in code that "
        "shop.tasks.charge_via_helper reaches: the comment goes there"
    )


def test_unused_suppression_without_a_finding_nearby_says_only_that(tmp_path: Path) -> None:
    code = tmp_path / "tasks.py"
    code.write_text("def t():\n    a()  # noqa: IDM302\n    b()\n")
    kept = apply_suppressions([finding(str(code), 3)], [code], cwd=tmp_path)
    (notice,) = [f for f in kept if f.rule == "IDM003"]
    assert notice.message == "This suppression silences nothing: `# noqa: IDM302`"

"""The fix on every finding: the docs link ending each text line, ``--show-fixes``,
``fix`` and ``help_uri`` in JSON (SARIF: tests/test_sarif.py), and ``--add-noqa``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_cli_support import copy_project, run_idemlint

from idemlint.catalog import SHORT_FIX_WIDTH, load_catalog
from idemlint.findings import Finding
from idemlint.report.noqa import add_noqa

DOCS = "https://idemlint.readthedocs.io/en/latest/rules/"
CHARGE = "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)"
PROFILE = '    Profile.objects.get_or_create(email=email, defaults={"name": name})'


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("fixes"))


def test_every_rule_has_a_one_line_fix() -> None:
    for rule in load_catalog().values():
        assert rule.short_fix, rule.id
        assert "\n" not in rule.short_fix
        assert len(rule.short_fix) <= SHORT_FIX_WIDTH, rule.id
        assert rule.short_fix.endswith("."), rule.id


def test_text_ends_each_finding_with_its_docs_link(project: Path) -> None:
    done = run_idemlint("check", cwd=project)
    assert done.returncode == 1
    *lines, _summary = done.stdout.splitlines()
    assert lines
    for line in lines:
        code = re.search(r": (IDM\d{3}) \[", line)
        assert code, line
        assert line.endswith(f" {DOCS}{code.group(1)}/"), line


def test_show_fixes_prints_the_catalog_fix_under_each_finding(project: Path) -> None:
    catalog = load_catalog()
    plain = run_idemlint("check", cwd=project).stdout.splitlines()[:-1]
    done = run_idemlint("check", "--show-fixes", cwd=project)
    lines = done.stdout.splitlines()[:-1]
    assert len(lines) == 2 * len(plain)
    for finding, fix in zip(lines[::2], lines[1::2], strict=True):
        code = re.search(r": (IDM\d{3}) \[", finding)
        assert code
        assert fix == f"  = fix: {catalog[code.group(1)].short_fix}"
    # with --show-source, the fix closes each finding's block, aligned with its = lines
    done = run_idemlint("check", "--show-fixes", "--show-source", cwd=project)
    blocks = re.split(r"\n(?=\S)", done.stdout.strip())[:-1]
    assert len(blocks) == len(plain)
    for block in blocks:
        *_, last = block.splitlines()
        assert re.fullmatch(r" += fix: .+", last), block


def test_json_findings_carry_fix_and_help_uri(project: Path) -> None:
    catalog = load_catalog()
    done = run_idemlint("check", "--format", "json", cwd=project)
    findings = json.loads(done.stdout)["findings"]
    assert findings
    for finding in findings:
        assert finding["fix"] == catalog[finding["rule"]].short_fix
        assert finding["help_uri"] == f"{DOCS}{finding['rule']}/"


def test_add_noqa_writes_suppressions_keeps_comments_and_is_idempotent(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    tasks = project / "shop" / "tasks.py"
    helpers = project / "shop" / "helpers.py"
    text = tasks.read_text()
    # one line with a comment of its own, one with another tool's noqa
    text = text.replace(CHARGE, CHARGE + "  # TODO: idempotency key")
    text = text.replace(PROFILE, PROFILE + "  # noqa: E501")
    tasks.write_text(text)
    os.chmod(tasks, 0o640)
    before = run_idemlint("check", "--format", "json", cwd=project)
    reported = json.loads(before.stdout)["findings"]
    assert len(reported) == 3

    done = run_idemlint("check", "--add-noqa", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "Added 3 noqa directives to 2 files."
    assert done.stderr == ""
    after = tasks.read_text()
    assert CHARGE + "  # TODO: idempotency key  # noqa: IDM301\n" in after
    assert PROFILE + "  # noqa: E501, IDM401\n" in after
    assert "# noqa: IDM301\n" in helpers.read_text()
    assert after.replace("  # noqa: IDM301", "").replace(", IDM401", "") == text
    assert os.stat(tasks).st_mode & 0o777 == 0o640

    # the findings are suppressed now: a second run adds nothing and changes nothing
    check = run_idemlint("check", cwd=project)
    assert check.returncode == 0, check.stdout
    again = run_idemlint("check", "--add-noqa", cwd=project)
    assert again.stdout.strip() == "Added 0 noqa directives to 0 files."
    assert tasks.read_text() == after


def test_add_noqa_leaves_baselined_findings_alone(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    assert run_idemlint("baseline", cwd=project).returncode == 0
    before = {p: p.read_text() for p in (project / "shop").glob("*.py")}
    done = run_idemlint("check", "--add-noqa", "--baseline", ".idemlint-baseline.json", cwd=project)
    assert done.stdout.strip() == "Added 0 noqa directives to 0 files."
    assert {p: p.read_text() for p in before} == before


def test_add_noqa_refuses_a_report_option(tmp_path: Path) -> None:
    done = run_idemlint("check", "--add-noqa", "--format", "json", cwd=tmp_path)
    assert done.returncode == 2
    assert "--add-noqa" in done.stderr


def finding(path: str, line: int, rule: str = "IDM301") -> Finding:
    return Finding(path, line, 5, rule, "m", line, 9, "app.t")


def test_add_noqa_skips_lines_that_cannot_take_a_comment(tmp_path: Path) -> None:
    source = 'notify("""first\nstill the string""")\ntotal = 1 + \\\n    2\ncharge()\r\ntail()'
    file = tmp_path / "app.py"
    file.write_bytes(b"\xef\xbb\xbf" + source.encode())
    findings = [finding("app.py", n) for n in (1, 2, 3, 5, 6)] + [finding("app.py", 5, "IDM001")]
    result = add_noqa(findings, root=tmp_path, cwd=tmp_path)
    assert (result.added, result.files) == (3, 1)
    assert [why.split(":")[1] for why in result.skipped] == ["1", "3"]
    data = file.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark is kept
    assert data.decode("utf-8-sig") == (
        'notify("""first\n'
        'still the string""")  # noqa: IDM301\n'
        "total = 1 + \\\n"
        "    2\n"
        "charge()  # noqa: IDM301\r\n"
        "tail()  # noqa: IDM301"
    )


def test_add_noqa_never_writes_outside_the_project(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    outside = tmp_path / "outside.py"
    outside.write_text("charge()\n")
    (root / "linked.py").symlink_to(outside)
    result = add_noqa([finding("../outside.py", 1), finding("linked.py", 1)], root=root, cwd=root)
    assert result.added == 0
    assert len(result.skipped) == 2
    assert all("not a file inside the project" in why for why in result.skipped)
    assert outside.read_text() == "charge()\n"


def test_add_noqa_keeps_a_latin_1_file_latin_1(tmp_path: Path) -> None:
    file = tmp_path / "legacy.py"
    file.write_bytes("# -*- coding: latin-1 -*-\nsend('café')\n".encode("latin-1"))
    result = add_noqa([finding("legacy.py", 2, "IDM302")], root=tmp_path, cwd=tmp_path)
    assert result.added == 1
    assert file.read_bytes() == (
        "# -*- coding: latin-1 -*-\nsend('café')  # noqa: IDM302\n".encode("latin-1")
    )

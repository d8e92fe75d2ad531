"""The ``idemlint`` command as a user runs it: exit codes, paths, rules, explain, TTY behaviour."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_support import MINIPROJ, clean_env, copy_project, line_of, run_idemlint

from idemlint.catalog import load_catalog
from idemlint.report.formats.progress import ProgressBar, in_ci

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("cli"))


def test_findings_sorted_with_summary_and_exit_1(project: Path) -> None:
    done = run_idemlint("check", cwd=project)
    assert done.returncode == 1, done.stderr
    *lines, summary = done.stdout.splitlines()
    keys = []
    for line in lines:
        match = re.match(r"^(.*?):(\d+):(\d+): (IDM\d{3}) \[([a-z-]+)\] (.*)$", line)
        assert match, line
        keys.append((match.group(1), int(match.group(2)), int(match.group(3))))
    assert keys == sorted(keys)
    helper = line_of(project / "shop" / "helpers.py", "Payment.objects.create")
    assert any(
        line.startswith(f"shop/helpers.py:{helper}:")
        and line.endswith(
            "(task: shop.tasks.charge_via_helper) "
            "https://idemlint.readthedocs.io/en/latest/rules/IDM301/"
        )
        for line in lines
    )
    assert re.match(r"^Found \d+ findings in 2 files \(5 files checked\): ", summary), summary
    assert "check-prior-art" in summary
    assert "database-constraints" in summary
    # Code no task reaches is never reported.
    assert "views.py" not in done.stdout


def test_clean_paths_exit_0_and_exit_zero(project: Path) -> None:
    done = run_idemlint("check", "shop/views.py", "shop/models.py", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "No findings (2 files checked)."
    assert run_idemlint("check", "--exit-zero", cwd=project).returncode == 0


def test_one_file_keeps_cross_file_knowledge(project: Path) -> None:
    """As pre-commit runs it: only the given file is reported, the rest is read."""
    done = run_idemlint("check", "--format", "json", "shop/tasks.py", cwd=project)
    findings = json.loads(done.stdout)["findings"]
    assert {f["path"] for f in findings} == {"shop/tasks.py"}
    # IDM401 needs models.py to know Profile.email is not unique.
    assert any(f["rule"] == "IDM401" for f in findings)
    assert json.loads(done.stdout)["summary"]["files_checked"] == 1


def test_paths_are_relative_to_the_working_directory(project: Path) -> None:
    top = json.loads(run_idemlint("check", "--format", "json", cwd=project).stdout)
    sub = json.loads(run_idemlint("check", "--format", "json", ".", cwd=project / "shop").stdout)
    assert [f["path"] for f in sub["findings"]] == [
        f["path"].removeprefix("shop/") for f in top["findings"]
    ]
    outside = run_idemlint("check", "--format", "json", project, cwd=project.parent)
    assert {f["path"] for f in json.loads(outside.stdout)["findings"]} == {
        f"{project.name}/{f['path']}" for f in top["findings"]
    }


def test_rules_lists_the_catalog() -> None:
    catalog = load_catalog()
    assert catalog, "the rule catalog is installed"
    done = run_idemlint("rules", cwd=MINIPROJ)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["CODE", "NAME", "CHECKLIST", "REPORTS"]
    rows = [line.split()[:3] for line in lines[1:]]
    assert rows == [[r.id, r.name, r.checklist] for r in catalog.values()]


def test_explain_prints_every_part_of_a_rule() -> None:
    catalog = load_catalog()
    assert "IDM301" in catalog
    rule = catalog["IDM301"]
    done = run_idemlint("explain", "idm301", cwd=MINIPROJ)
    assert done.returncode == 0
    out = done.stdout
    assert out.startswith(f"IDM301 {rule.name} [check-prior-art]")
    for title in ("What it reports:", "Why it breaks on retry:", "Bad:", "Good:", "Fix:"):
        assert title in out
    normalised = " ".join(out.split())
    for part in (rule.why, rule.fix, *rule.bad, *rule.good):
        assert " ".join(part.split()) in normalised
    assert rule.help_uri in out


def test_explain_takes_what_rules_prints_and_prefixes() -> None:
    """The names ``idemlint rules`` prints explain their rule; a prefix or a checklist
    item lists its family, with the table ``rules`` prints."""
    catalog = load_catalog()
    rules_table = run_idemlint("rules", cwd=MINIPROJ).stdout.splitlines()
    for rule in catalog.values():
        by_name = run_idemlint("explain", rule.name, cwd=MINIPROJ)
        assert by_name.returncode == 0, by_name.stderr
        assert by_name.stdout.startswith(f"{rule.id} {rule.name} [{rule.checklist}]")
    underscored = run_idemlint("explain", "unguarded_row_create", cwd=MINIPROJ)
    assert underscored.stdout.startswith("IDM301 ")

    family = [r for r in catalog.values() if r.id.startswith("IDM3")]
    for ask in ("IDM3", "idm3", "check-prior-art"):
        done = run_idemlint("explain", ask, cwd=MINIPROJ)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == rules_table[0]
        listed = [line for line in lines[1:] if line.startswith("IDM")]
        assert [line.split()[0] for line in listed] == [r.id for r in family]
        assert all(line in rules_table for line in listed)
        assert "idemlint explain IDM301" in done.stdout
    every = run_idemlint("explain", "IDM", cwd=MINIPROJ).stdout.splitlines()
    assert every[: len(rules_table)] == rules_table

    wrong = run_idemlint("explain", "unguarded-row", cwd=MINIPROJ)
    assert wrong.returncode == 2
    assert "unknown rule 'unguarded-row'; did you mean unguarded-row-create" in wrong.stderr
    assert run_idemlint("explain", "IDM9", cwd=MINIPROJ).returncode == 2


def test_version_and_the_installed_script() -> None:
    script = shutil.which("idemlint")
    assert script, "pip install -e . provides the idemlint script"
    done = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert re.match(r"^idemlint, version \d", done.stdout)


def run_with_pty(
    args: list[str], cwd: Path, env: dict[str, str], *, tty: str
) -> tuple[int, str, str]:
    """Run with ``tty`` ("stdout" or "stderr") attached to a pseudo-terminal."""
    master, slave = pty.openpty()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, tty: slave}
    proc = subprocess.Popen(
        [sys.executable, "-m", "idemlint", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=streams["stdout"],
        stderr=streams["stderr"],
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    out, err = proc.communicate(timeout=300)
    piped = (out if tty == "stderr" else err).decode()
    return proc.returncode, b"".join(chunks).decode(), piped


def test_colour_on_a_tty_unless_no_color(project: Path) -> None:
    code, shown, _ = run_with_pty(["check"], project, clean_env(), tty="stdout")
    assert code == 1
    assert ANSI.search(shown)
    code, shown, _ = run_with_pty(["check"], project, clean_env(NO_COLOR="1"), tty="stdout")
    assert code == 1
    assert "IDM301" in shown
    assert not ANSI.search(shown)
    piped = run_idemlint("check", cwd=project)
    assert not ANSI.search(piped.stdout)


def test_progress_bar_only_on_a_terminal_outside_ci(project: Path) -> None:
    fast = clean_env(IDEMLINT_PROGRESS_DELAY="0")
    code, terminal, stdout = run_with_pty(["check", "--no-cache"], project, fast, tty="stderr")
    assert code == 1
    assert "idemlint: [" in terminal
    assert "files" in terminal
    assert "idemlint: [" not in stdout

    ci = clean_env(IDEMLINT_PROGRESS_DELAY="0", CI="true")
    _, terminal, _ = run_with_pty(["check", "--no-cache"], project, ci, tty="stderr")
    assert "idemlint: [" not in terminal

    _, terminal, stdout = run_with_pty(
        ["check", "--no-cache", "--format", "json"], project, fast, tty="stderr"
    )
    assert "idemlint: [" not in terminal
    json.loads(stdout)

    piped = run_idemlint("check", "--no-cache", cwd=project, env=fast)
    assert "idemlint: [" not in piped.stderr


def test_progress_bar_waits_then_draws_then_erases() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(stream, delay=1.0, clock=lambda: now[0])
    bar(1, 10)
    now[0] = 0.5
    bar(2, 10)
    assert stream.getvalue() == ""
    bar.close()
    assert stream.getvalue() == ""  # nothing drawn, nothing to erase
    now[0] = 1.5
    bar(5, 10)
    assert stream.getvalue() == "\ridemlint: [" + "#" * 15 + "-" * 15 + "] 5/10 files"
    now[0] = 1.55
    bar(6, 10)  # too soon to redraw
    assert stream.getvalue().count("\r") == 1
    bar(10, 10)  # the last step is always drawn
    assert stream.getvalue().endswith("] 10/10 files")
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[2K")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "false"}, False),
        ({"CI": "1"}, True),
        ({"GITHUB_ACTIONS": "true"}, True),
        ({"GITLAB_CI": "true"}, True),
    ],
)
def test_ci_detection(env: dict[str, str], expected: bool) -> None:
    assert in_ci(env) is expected


def test_a_bug_is_exit_3_not_findings(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import idemlint.lint.run.engine
    from idemlint.cli import main

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(idemlint.lint.run.engine, "check", broken)
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert "RuntimeError: engine bug" in err
    assert err.strip().endswith("please report it with the traceback above")

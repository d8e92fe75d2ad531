"""The flake8 plugin, run through real flake8: the same findings as ``idemlint check``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_support import clean_env, copy_project, fixture_projects, line_of, run_idemlint_here

FLAKE8_LINE = re.compile(r"^(.*?):(\d+):(\d+): (IDM\d{3}) (.*)$")


def run_flake8(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "IDM", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=600,
    )


def flake8_places(output: str) -> list[tuple[str, int, int, str]]:
    places = []
    for line in output.splitlines():
        match = FLAKE8_LINE.match(line)
        assert match, line
        path = match.group(1).removeprefix("./")
        places.append((path, int(match.group(2)), int(match.group(3)), match.group(4)))
    return sorted(places)


def idemlint_places(project: Path, *paths: str) -> list[tuple[str, int, int, str]]:
    done = run_idemlint_here("check", "--format", "json", *paths, cwd=project)
    assert done.returncode in (0, 1), done.stderr
    findings = json.loads(done.stdout)["findings"]
    return sorted((f["path"], f["line"], f["column"], f["rule"]) for f in findings)


@pytest.mark.parametrize("source", fixture_projects(), ids=lambda p: p.name)
def test_flake8_reports_what_idemlint_check_reports(tmp_path: Path, source: Path) -> None:
    project = copy_project(tmp_path, source)
    # flake8 runs no plugin on a file that does not parse: it reports that itself, as E999,
    # where idemlint check says IDM001
    expected = [p for p in idemlint_places(project, ".") if p[3] != "IDM001"]
    done = run_flake8(".", cwd=project)
    assert done.returncode == (1 if expected else 0), done.stderr
    assert flake8_places(done.stdout) == expected
    if source.name == "miniproj":
        rules = {place[3] for place in expected}
        assert {"IDM301", "IDM401"} <= rules  # a helper in another file, a model's fields
        assert any(place[0] == "shop/helpers.py" for place in expected)


def test_one_file_in_the_editor_sees_the_whole_project(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    done = run_flake8("shop/tasks.py", cwd=project)
    places = flake8_places(done.stdout)
    assert places == idemlint_places(project, "shop/tasks.py")
    assert "IDM401" in {p[3] for p in places}, "needs models.py, which flake8 was not given"
    assert {p[0] for p in places} == {"shop/tasks.py"}
    message = next(line for line in done.stdout.splitlines() if " IDM401 " in line)
    assert "[database-constraints]" in message
    assert "(task: shop.tasks.sync_profile)" in message


def test_unsaved_buffer_on_stdin_is_checked_in_place_of_the_file(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    tasks = project / "shop" / "tasks.py"
    saved = tasks.read_text()
    on_disk = flake8_places(run_flake8("shop/tasks.py", cwd=project).stdout)
    assert any(p[3] == "IDM301" for p in on_disk)
    # the buffer: the charge's create() guarded away, an idemlint comment added, and
    # two blank lines on top (every finding moves down two lines)
    buffer = "\n\n" + saved.replace(
        "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)\n",
        "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)"
        "  # idemlint: ignore[IDM301]\n",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flake8",
            "--isolated",
            "--select",
            "IDM",
            "--stdin-display-name",
            "shop/tasks.py",
            "-",
        ],
        cwd=project,
        input=buffer,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=600,
    )
    places = flake8_places(done.stdout)
    expected = [(p, line + 2, col, rule) for p, line, col, rule in on_disk if rule != "IDM301"]
    assert places == expected, done.stderr
    assert tasks.read_text() == saved  # the file on disk is not touched
    # and the next run from disk is not misled by what the buffer held
    assert flake8_places(run_flake8("shop/tasks.py", cwd=project).stdout) == on_disk


def test_noqa_and_idemlint_ignore_work_under_flake8(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    tasks = project / "shop" / "tasks.py"
    text = tasks.read_text()
    text = text.replace(
        '    Profile.objects.get_or_create(email=email, defaults={"name": name})\n',
        '    Profile.objects.get_or_create(email=email, defaults={"name": name})  # noqa: IDM401\n',
    )
    text = text.replace(
        "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)\n",
        "    Payment.objects.create(user_id=user_id, amount_cents=amount_cents)"
        "  # idemlint: ignore[IDM301]\n",
    )
    tasks.write_text(text)
    places = flake8_places(run_flake8("shop/tasks.py", cwd=project).stdout)
    assert places == idemlint_places(project, "shop/tasks.py")
    lines = {p[1] for p in places}
    assert line_of(tasks, "noqa: IDM401") not in lines
    assert line_of(tasks, "ignore[IDM301]") not in lines


def test_plugin_import_is_light() -> None:
    """flake8 imports every plugin on every run, even ``flake8 --select=F``."""
    code = (
        "import sys, idemlint.flake8_plugin;"
        "heavy = [m for m in ('libcst', 'click', 'idemlint.lint.run.engine') if m in sys.modules];"
        "print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_flake8_registers_the_plugin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flake8", "--version"], capture_output=True, text=True, check=True
    )
    assert "idemlint" in done.stdout


def test_stdin_without_a_display_name_answers_as_stdin(tmp_path: Path) -> None:
    """``flake8 -`` names the input ``stdin``, and so does idemlint, as flake8's own
    checks do: the buffer is checked as a module of the current folder's project."""
    project = copy_project(tmp_path)
    buffer = (project / "shop" / "tasks.py").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "IDM", "-"],
        cwd=project,
        input=buffer,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=600,
    )
    places = flake8_places(done.stdout)
    assert places, done.stdout + done.stderr
    assert {path for path, *_ in places} == {"stdin"}
    # the same findings in the buffer as in the file it was read from (the cross-file
    # ones included: shop.models is read from disk)
    on_disk = flake8_places(run_flake8("shop/tasks.py", cwd=project).stdout)
    assert [p[1:] for p in places] == [p[1:] for p in on_disk]
    assert not (project / "stdin.py").exists()  # nothing is written for it

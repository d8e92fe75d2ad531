"""``exclude`` with .gitignore semantics, ``force-exclude`` for named files (pre-commit,
flake8, editors), and the warnings when a configuration leaves nothing to check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_support import clean_env, copy_project, run_idemlint

from idemlint.config import load_config
from idemlint.errors import ConfigError
from idemlint.lint.files.discovery import discover

TASK = """import requests
from celery import shared_task


@shared_task(acks_late=True)
def notify(order_id):
    requests.post("https://hooks.example.com/orders", json={"id": order_id})
"""


def project_with(tmp_path: Path, table: str) -> Path:
    """The fixture project with ``table`` as its ``[tool.idemlint]`` and a bad task in
    ``shop/legacy/old.py`` and ``shop/legacy/deep/older.py``."""
    project = copy_project(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.idemlint]\n" + table + "\n")
    for name in ("shop/legacy/old.py", "shop/legacy/deep/older.py"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(TASK)
    return project


def checked_paths(project: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    done = run_idemlint("check", "--format", "junit", *args, cwd=project)
    assert done.returncode in (0, 1), done.stderr
    names = set()
    for line in done.stdout.splitlines():
        if 'file="' in line:
            names.add(line.split('file="', 1)[1].split('"', 1)[0])
    return names, done


@pytest.mark.parametrize(
    ("patterns", "excluded", "kept"),
    [
        # `*` stops at `/`, as in .gitignore: the deeper file stays
        (["shop/legacy/*.py"], {"shop/legacy/old.py"}, {"shop/legacy/deep/older.py"}),
        (["shop/legacy/**/*.py"], {"shop/legacy/old.py", "shop/legacy/deep/older.py"}, set()),
        # a name without a slash matches at any depth; a folder takes what it holds
        (["legacy/"], {"shop/legacy/old.py", "shop/legacy/deep/older.py"}, set()),
        (["old.py"], {"shop/legacy/old.py"}, {"shop/legacy/deep/older.py"}),
        # anchored at the root: /legacy is not shop/legacy
        (["/legacy"], set(), {"shop/legacy/old.py", "shop/legacy/deep/older.py"}),
        # a file in an excluded folder cannot be re-included (git never enters the folder)
        (["shop/legacy/", "!shop/legacy/old.py"], {"shop/legacy/old.py"}, set()),
        (["*.py", "!older.py"], {"shop/legacy/old.py"}, {"shop/legacy/deep/older.py"}),
    ],
)
def test_exclude_has_gitignore_semantics(
    tmp_path: Path, patterns: list[str], excluded: set[str], kept: set[str]
) -> None:
    project = project_with(tmp_path, f"exclude = {json.dumps(patterns)}")
    config = load_config([project])
    found = {
        f.relative_to(project).as_posix()
        for f in discover(project, (*config.exclude, *config.extend_exclude))
    }
    assert not excluded & found
    assert kept <= found


def test_named_file_is_checked_unless_force_exclude(tmp_path: Path) -> None:
    project = project_with(tmp_path, 'exclude = ["shop/legacy/"]')
    # a folder walk leaves it out
    assert "shop/legacy/old.py" not in checked_paths(project)[0]
    # named on the command line, it is checked (ruff's meaning of exclude)
    names, done = checked_paths(project, "shop/legacy/old.py", "shop/tasks.py")
    assert "shop/legacy/old.py" in names, done.stdout
    # --force-exclude: named paths are excluded too, and the rest is still checked
    names, done = checked_paths(project, "--force-exclude", "shop/legacy/old.py", "shop/tasks.py")
    assert "shop/legacy/old.py" not in names
    assert "shop/tasks.py" in names
    assert "warning" not in done.stderr


def test_force_exclude_in_the_config_and_every_path_excluded(tmp_path: Path) -> None:
    project = project_with(tmp_path, 'exclude = ["shop/legacy/"]\nforce-exclude = true')
    done = run_idemlint("check", "shop/legacy/old.py", "shop/legacy/deep/older.py", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "No findings (0 files checked)."
    assert "idemlint: warning: nothing to check: `exclude` in" in done.stderr
    assert "force-exclude is on" in done.stderr
    # not the whole project instead: nothing of shop/tasks.py is reported
    assert "shop/tasks.py" not in done.stdout
    # --no-force-exclude wins over the file
    done = run_idemlint("check", "--no-force-exclude", "shop/legacy/old.py", cwd=project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "shop/legacy/old.py:7:5: IDM304" in done.stdout


def test_warns_when_exclude_leaves_nothing_to_check(tmp_path: Path) -> None:
    project = project_with(tmp_path, 'exclude = ["shop/"]')
    done = run_idemlint("check", cwd=project)
    assert done.returncode == 0
    assert "No findings (0 files checked)." in done.stdout
    assert "nothing to check: `exclude` in" in done.stderr
    assert "leaves none of the 7 Python files under ." in done.stderr


def test_warns_when_select_and_ignore_leave_no_rule(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    done = run_idemlint("check", "--ignore", "IDM", cwd=project)
    assert done.returncode == 0
    assert "nothing to report: `select`, `extend-select` and `ignore`" in done.stderr
    quiet = run_idemlint("check", "--ignore", "IDM3", cwd=project)
    assert "warning" not in quiet.stderr


def test_no_warning_on_an_ordinary_run(tmp_path: Path) -> None:
    project = project_with(tmp_path, 'exclude = ["shop/legacy/"]')
    done = run_idemlint("check", cwd=project)
    assert done.returncode == 1
    assert done.stderr == ""


def test_flake8_honours_force_exclude(tmp_path: Path) -> None:
    """flake8 names every file it checks: with force-exclude, excluded files are quiet."""

    def flake8(name: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "flake8", "--isolated", "--select", "IDM", name],
            cwd=project,
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=600,
        ).stdout

    project = project_with(tmp_path, 'exclude = ["shop/legacy/"]')
    assert "IDM304" in flake8("shop/legacy/old.py")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "force-exclude = true\n")
    assert flake8("shop/legacy/old.py") == ""
    assert "IDM3" in flake8("shop/tasks.py")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('exclude = ["\\\\"]', "exclude: bad pattern"),
        ('extend-exclude = [""]', "extend-exclude: expected a list of path patterns"),
        ('force-exclude = "yes"', "force-exclude: expected true or false"),
        ('[tool.idemlint.per-file-ignores]\n"\\\\" = ["IDM3"]', "bad pattern"),
    ],
)
def test_bad_patterns_name_file_and_key(tmp_path: Path, table: str, message: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.idemlint]\n" + table + "\n")
    with pytest.raises(ConfigError) as info:
        load_config([tmp_path])
    assert str(pyproject) in str(info.value)
    assert message in str(info.value)

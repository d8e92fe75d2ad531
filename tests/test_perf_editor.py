"""An editor's first call on a big project that idemlint never checked does not wait for
the whole project: it answers with what it can prove alone, says once that the rest is
not checked yet, and leaves a background run that makes the next call complete.

"Big" and "not finished in time" are forced here (``FOREGROUND_FILES`` and the wait are
patched), so nothing depends on this machine's speed; ``bench/lint_speed.py`` measures
the call on saleor. The background run is a real process; each test waits for it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from idemlint import flake8_plugin
from idemlint.config import load_config
from idemlint.flake8_plugin import Plugin, findings_for
from idemlint.lint.run.reuse import cold_start, warming, warming_up

TASKS = """
    import requests
    from celery import shared_task

    from app.helpers import push


    @shared_task(acks_late=True)
    def ping(x):
        requests.post("https://example.com/ping", json=x)
        push(x)
"""
HELPERS = """
    import requests


    def push(x):
        requests.post("https://example.com/push", json=x)
"""


def _project(root: Path, extra: dict[str, str] | None = None) -> Path:
    files = {
        "pyproject.toml": "[project]\nname = 'x'\n",
        "app/__init__.py": "",
        "app/tasks.py": TASKS,
        "app/helpers.py": HELPERS,
        **(extra or {}),
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return root


def _wait_for_the_background_run(root: Path) -> None:
    config = load_config([root])
    folder = root / ".idemlint_cache"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if cold_start(config, config.root) is None and not warming_up(folder):
            return
        time.sleep(0.1)
    raise AssertionError("the background run did not finish")


@pytest.fixture
def big(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every project counts as big, and the background run is never waited for."""
    monkeypatch.setattr(flake8_plugin, "FOREGROUND_FILES", 0)
    monkeypatch.setattr(flake8_plugin, "_wait_for_warm_up", lambda *args: False)


def test_first_call_answers_with_one_notice_and_the_next_one_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: None
) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    first = findings_for(Path("app/helpers.py"), budget=2.0)
    assert [(f.rule, f.line) for f in first] == [("IDM001", 1)]
    assert first[0].message.startswith("Not checked yet: idemlint's first run")
    _wait_for_the_background_run(root)
    # the background run left the snapshot: the next call answers in full, as
    # `idemlint check` does (the helper's finding comes from the task in another file)
    again = findings_for(Path("app/helpers.py"), budget=2.0)
    whole = findings_for(Path("app/helpers.py"))
    assert again == whole and [f.rule for f in again] == ["IDM304"]


def test_a_file_that_does_not_parse_gets_its_error_with_the_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: None
) -> None:
    root = _project(tmp_path, {"app/broken.py": "def f(:\n    pass\n"})
    monkeypatch.chdir(root)
    found = findings_for(Path("app/broken.py"), budget=2.0)
    assert [(f.rule, f.line) for f in found] == [("IDM001", 1), ("IDM001", 1)]
    assert "does not parse" in found[0].message + found[1].message
    assert "Not checked yet" in found[0].message + found[1].message
    _wait_for_the_background_run(root)
    assert [f.rule for f in findings_for(Path("app/broken.py"), budget=2.0)] == ["IDM001"]


def test_one_background_run_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: None
) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    started: list[Path] = []
    monkeypatch.setattr(flake8_plugin, "_start_warm_up", lambda path, root: started.append(path))
    config = load_config([root])
    folder = cold_start(config, config.root)
    assert folder is not None
    with warming(folder) as mine:  # as a background run already at it would
        assert mine
        findings_for(Path("app/tasks.py"), budget=2.0)
    assert started == []
    findings_for(Path("app/tasks.py"), budget=2.0)
    assert started == [root / "app" / "tasks.py"]


def test_small_projects_and_no_budget_are_checked_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    # a fixture-sized project fits the budget: no notice, the whole answer at once
    assert [f.rule for f in findings_for(Path("app/helpers.py"), budget=2.0)] == ["IDM304"]
    monkeypatch.setattr(flake8_plugin, "FOREGROUND_FILES", 0)
    (root / ".idemlint_cache").rename(root / "old_cache")
    assert [f.rule for f in findings_for(Path("app/helpers.py"), budget=0.0)] == ["IDM304"]


@pytest.mark.parametrize(
    ("names", "editor"),
    [(["app/tasks.py"], True), (["-"], True), (["."], False), (["app/tasks.py", "x.py"], False)],
)
def test_only_one_file_named_is_an_editor_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str], editor: bool
) -> None:
    root = _project(tmp_path)
    monkeypatch.chdir(root)
    options = type("Options", (), {"select": [], "filenames": names, "idemlint_budget": 1.5})
    monkeypatch.setattr(Plugin, "editor", Plugin.editor)
    monkeypatch.setattr(Plugin, "budget", Plugin.budget)
    Plugin.parse_options(options())
    assert Plugin.editor is editor and Plugin.budget == 1.5


def test_flake8_takes_the_budget_option(tmp_path: Path) -> None:
    root = _project(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flake8",
            "--select",
            "IDM",
            "--idemlint-budget",
            "0",
            "app/helpers.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "IDM304" in done.stdout, done.stdout + done.stderr

"""The quick record (:mod:`idemlint.lint.run.quick`): an editor's call on an unchanged
project is answered from stats alone, with exactly the findings of the normal path, and
anything that changed makes it step aside.

Speed is measured in ``bench/lint_speed.py`` only; nothing here is timed. The files of
each project are dated ten seconds back before the run that writes the record, since a
time closer than two seconds to that run is never trusted (it is tested too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_cli_support import copy_project, fixture_projects

from idemlint import flake8_plugin
from idemlint.config import Config, load_config
from idemlint.findings import Finding
from idemlint.lint.run import engine, fingerprint, quick
from idemlint.lint.run.engine import check
from idemlint.report.selection import report_filter


def _age(project: Path, seconds: int = 10) -> None:
    """Date every file and folder of the project ``seconds`` back (the cache aside)."""
    then = time.time_ns() - seconds * 1_000_000_000
    for dirpath, _, filenames in os.walk(project, topdown=False):
        if ".idemlint_cache" in Path(dirpath).parts:
            continue
        for name in filenames:
            os.utime(os.path.join(dirpath, name), ns=(then, then), follow_symlinks=False)
        os.utime(dirpath, ns=(then, then))


def _config(project: Path) -> Config:
    return load_config([project])


def _recorded(project: Path) -> quick.Record:
    """Run twice (the first run makes the cache folder, which changes the root's time),
    the files dated back before the second; the record must then hold."""
    config = _config(project)
    check([config.root], config, jobs=1, cwd=project)
    _age(project)
    check([config.root], config, jobs=1, cwd=project)
    record = quick.load(config, config.root.absolute())
    assert record is not None
    return record


def _files(project: Path) -> list[Path]:
    return sorted(
        p for p in project.rglob("*.py") if ".idemlint_cache" not in p.relative_to(project).parts
    )


def _normal(path: Path, config: Config, cwd: Path) -> list[Finding]:
    """What the plugin's normal path takes from the engine for one file."""
    return check([path.absolute()], config, jobs=1, cwd=cwd).findings


@pytest.fixture
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call of the plugin as in a new flake8 process."""
    monkeypatch.setattr(flake8_plugin, "_memo", flake8_plugin._ProjectMemo())


@pytest.mark.parametrize("source", fixture_projects(), ids=lambda p: p.name)
def test_the_record_gives_the_findings_of_the_normal_path(tmp_path: Path, source: Path) -> None:
    project = copy_project(tmp_path, source)
    record = _recorded(project)
    config = _config(project)
    for cwd in (project, project.parent):
        whole = check([config.root], config, jobs=1, cwd=cwd).findings
        files = _files(project)
        for path in files:
            shown = os.path.relpath(path, cwd).replace(os.sep, "/")
            assert record.findings(path, cwd) == [f for f in whole if f.path == shown], path
        # the one-file run itself, for the files with findings and one without
        with_findings = [p for p in files if record.findings(p, cwd)]
        without = [p for p in files if not record.findings(p, cwd)][:1]
        for path in [*with_findings[:3], *without]:
            assert record.findings(path, cwd) == _normal(path, config, cwd), path
    # the checks of one file left the record as it was: it still holds
    assert quick.load(config, config.root.absolute()) is not None


def test_the_plugin_answers_from_the_record_without_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None
) -> None:
    project = copy_project(tmp_path)
    _recorded(project)
    monkeypatch.chdir(project)
    config = _config(project)
    tasks, helpers = project / "shop" / "tasks.py", project / "shop" / "helpers.py"
    expected = report_filter(_normal(tasks, config, project), config, [tasks], cwd=project)
    assert any(f.rule == "IDM401" for f in expected)
    wanted = report_filter(_normal(helpers, config, project), config, [helpers], cwd=project)

    def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine ran")

    monkeypatch.setattr(engine, "check", no_engine)
    assert flake8_plugin.findings_for(Path("shop/tasks.py"), budget=2.0) == expected
    # the next file of the same flake8 process comes from the same record
    assert flake8_plugin.findings_for(Path("shop/helpers.py")) == wanted


def _falls_back(project: Path) -> None:
    """The record does not hold, and the plugin's answer is the normal path's."""
    config = _config(project)
    assert quick.load(config, config.root.absolute()) is None
    for path in _files(project):
        flake8_plugin._memo = flake8_plugin._ProjectMemo()
        got = flake8_plugin.findings_for(path)
        expected = report_filter(_normal(path, config, project), config, [path], cwd=project)
        assert got == expected, path


def _rewrite_same_size(path: Path) -> None:
    """New bytes of the same length, and a new modification time."""
    text = path.read_text("utf-8")
    old = "Payment.objects.create("
    assert old in text
    before = path.stat()
    path.write_text(text.replace(old, "Payment.objects.filter("), "utf-8")
    later = before.st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))
    assert path.stat().st_size == before.st_size


def test_an_edited_file_of_the_same_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None
) -> None:
    project = copy_project(tmp_path)
    record = _recorded(project)
    monkeypatch.chdir(project)
    tasks = project / "shop" / "tasks.py"
    before = record.findings(tasks, project)
    _rewrite_same_size(tasks)
    _falls_back(project)
    after = _normal(tasks, _config(project), project)
    assert before != after  # (the edit changed the findings: the record would have lied)


def test_a_file_added_in_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None
) -> None:
    project = copy_project(tmp_path)
    _recorded(project)
    monkeypatch.chdir(project)
    added = project / "shop" / "more.py"
    added.write_text(
        "from celery import shared_task\n\n"
        "from shop.models import Payment\n\n\n"
        "@shared_task(acks_late=True)\n"
        "def pay_again(user_id):\n"
        "    Payment.objects.create(user_id=user_id, amount_cents=1)\n",
        "utf-8",
    )
    then = time.time_ns() - 10_000_000_000
    os.utime(added, ns=(then, then))  # (an old file copied in: only its folder is new)
    _falls_back(project)
    assert _normal(added, _config(project), project)  # the new file has its findings


def test_a_file_added_in_a_folder_with_no_python_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None
) -> None:
    project = copy_project(tmp_path)
    (project / "docs").mkdir()
    (project / "docs" / "notes.txt").write_text("notes\n", "utf-8")
    _recorded(project)
    monkeypatch.chdir(project)
    (project / "docs" / "conf.py").write_text("x = 1\n", "utf-8")
    _falls_back(project)


def test_a_file_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None) -> None:
    project = copy_project(tmp_path)
    _recorded(project)
    monkeypatch.chdir(project)
    (project / "shop" / "helpers.py").unlink()
    _falls_back(project)


def test_a_configuration_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None
) -> None:
    project = copy_project(tmp_path)
    _recorded(project)
    monkeypatch.chdir(project)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text("utf-8") if pyproject.exists() else ""
    if "[tool.idemlint]" not in text:
        text += "\n[tool.idemlint]\n"
    setting = 'extend-exclude = ["shop/helpers.py"]\n'
    text = text.replace("[tool.idemlint]\n", f"[tool.idemlint]\n{setting}")
    pyproject.write_text(text, "utf-8")
    _age(project)  # (no folder or file time says it: only the configuration)
    _falls_back(project)


def test_another_idemlint_or_analysis_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None
) -> None:
    project = copy_project(tmp_path)
    _recorded(project)
    config = _config(project)
    root = config.root.absolute()
    monkeypatch.setattr(quick, "__version__", "0.0.0+other")
    assert quick.load(config, root) is None
    monkeypatch.undo()
    assert quick.load(config, root) is not None
    fingerprint.findings_fingerprint.cache_clear()
    monkeypatch.setattr(fingerprint, "analysis_fingerprint", lambda: "patched analysis code")
    try:
        assert quick.load(config, root) is None
    finally:
        fingerprint.findings_fingerprint.cache_clear()
    monkeypatch.undo()
    assert quick.load(config, root) is not None


def test_a_buffer_that_differs_from_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_memo: None
) -> None:
    project = copy_project(tmp_path)
    record = _recorded(project)
    monkeypatch.chdir(project)
    config = _config(project)
    tasks = project / "shop" / "tasks.py"
    buffer = "\n\n" + tasks.read_text("utf-8")  # every finding two lines down
    got = flake8_plugin.findings_for(Path("shop/tasks.py"), buffer)
    sources = {tasks: buffer}
    normal = check([tasks], config, jobs=1, sources=sources, cwd=project).findings
    assert got == report_filter(normal, config, [tasks], cwd=project, sources=sources)
    recorded = record.findings(tasks, project)
    assert recorded and [f.line + 2 for f in recorded] == [f.line for f in normal]
    # the run with the buffer left no record of it: the disk's record still holds
    assert quick.load(config, config.root.absolute()) is not None


def test_recent_times_are_not_trusted(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    config = _config(project)
    check([config.root], config, jobs=1, cwd=project)
    _age(project)
    (project / "shop" / "helpers.py").touch()  # modified just now
    check([config.root], config, jobs=1, cwd=project)
    assert quick.load(config, config.root.absolute()) is None


def test_a_damaged_record_is_not_read(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    _recorded(project)
    config = _config(project)
    root = config.root.absolute()
    target = root / ".idemlint_cache" / "quick" / f"{quick.record_key(config, root)}.json"
    text = target.read_text("utf-8")
    target.write_text(text.replace('"IDM', '"IDX', 1), "utf-8")
    assert quick.load(config, root) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_in_git_what_decides_the_listing(tmp_path: Path) -> None:
    """In a work tree git lists the files: a ``.gitignore`` edited in place (no folder
    changes) or a change of the index makes the record step aside."""
    project = copy_project(tmp_path)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q"], cwd=project, check=True, env=env)
    (project / ".gitignore").write_text("*.log\n", "utf-8")
    _recorded(project)
    config = _config(project)
    root = config.root.absolute()
    ignore = project / ".gitignore"
    stamp = ignore.stat().st_mtime_ns
    ignore.write_text("shop/helper*\n", "utf-8")  # (same size, another pattern)
    os.utime(ignore, ns=(stamp + 10**9, stamp + 10**9))
    assert quick.load(config, root) is None
    config = _config(project)
    listed = engine.Scope.of([config.root], config, project, None).files
    assert project / "shop" / "helpers.py" not in listed  # (git reads the new pattern)
    _recorded(project)
    subprocess.run(["git", "add", "shop/tasks.py"], cwd=project, check=True, env=env)
    assert quick.load(config, root) is None


def test_a_cache_folder_in_the_project_under_a_plain_name(tmp_path: Path) -> None:
    """The run writes in its cache folder: when discovery does not skip that folder by its
    name, the record still holds after the run that wrote it."""
    project = copy_project(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text("utf-8") + '\n[tool.idemlint]\ncache-dir = "mycache"\n'
    )
    config = _config(project)
    check([config.root], config, jobs=1, cwd=project)
    assert (project / "mycache" / "quick").is_dir()
    _age(project)
    check([config.root], config, jobs=1, cwd=project)
    assert quick.load(config, config.root.absolute()) is not None

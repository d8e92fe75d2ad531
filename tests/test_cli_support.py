"""Helpers shared by the integration tests that run the real tools as subprocesses.

No tests here: the helpers live in a test-named module so that every test
file of the integrations can import them without a conftest.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MINIPROJ = REPO / "tests" / "data" / "miniproj"
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "TF_BUILD")


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment without CI markers or colour settings, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in (*CI_VARIABLES, "NO_COLOR")}
    env.pop("IDEMLINT_PROGRESS_DELAY", None)
    env.update(overrides)
    return env


def run_idemlint(
    *args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m idemlint ARGS`` in ``cwd``, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "idemlint", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=300,
    )


@contextlib.contextmanager
def _as_a_child(cwd: Path) -> Iterator[None]:
    """This process's folder and environment as :func:`run_idemlint` gives a child's."""
    saved = {
        k: os.environ.pop(k)
        for k in (*CI_VARIABLES, "NO_COLOR", "IDEMLINT_PROGRESS_DELAY")
        if k in os.environ
    }
    here = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        os.environ.update(saved)


def run_idemlint_here(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``idemlint ARGS`` through its entry point in this process: what :func:`run_idemlint`
    gives, without a new interpreter importing idemlint and libcst again (about 0.6 s of
    CPU a call). For tests of a command's output; a test of the installed script, its
    exit on a crash or its terminal keeps :func:`run_idemlint`."""
    from idemlint.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    code: int | str | None = 0
    with _as_a_child(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exit_:
            code = exit_.code
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(
        ["idemlint", *argv], returncode, out.getvalue(), err.getvalue()
    )


def copy_project(tmp_path: Path, source: Path = MINIPROJ, name: str = "proj") -> Path:
    """A fresh copy of a fixture project (so caches and baselines stay out of the repo)."""
    target = tmp_path / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".idemlint_cache", "__pycache__"))
    return target


def check_json(project: Path, *args: str) -> dict[str, Any]:
    """The JSON report of ``idemlint check`` run in ``project``."""
    done = run_idemlint_here("check", "--format", "json", *args, cwd=project)
    assert done.returncode in (0, 1), done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def line_of(file: Path, needle: str) -> int:
    """1-based number of the first line of ``file`` containing ``needle``."""
    for number, text in enumerate(file.read_text().splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {file}")


def fixture_projects() -> list[Path]:
    """The miniature project of these tests, plus every fixture project that exists."""
    found = [REPO / "tests" / "data" / "miniproj"]
    fixtures = REPO / "fixtures"
    if fixtures.is_dir():
        found += sorted(p for p in fixtures.iterdir() if p.is_dir() and any(p.rglob("*.py")))
    return found

"""The project's own quality gates, run by the suite so CI enforces them:
ruff check, ruff format --check, mypy --strict on the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the dev extra")
def test_ruff_check() -> None:
    proc = run("ruff", "check", "--quiet", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the dev extra")
def test_ruff_format() -> None:
    proc = run("ruff", "format", "--check", "--quiet", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is in the dev extra")
    proc = run(sys.executable, "-m", "mypy", "--strict", "idemlint")
    assert proc.returncode == 0, proc.stdout + proc.stderr


IMPORT_CONTRACTS = [c for c in ("lint-imports",) if shutil.which(c)]


def test_layer_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml (the layers in docs/how-it-works.md)."""
    assert IMPORT_CONTRACTS, "lint-imports (import-linter) is in the dev extra"
    proc = run("lint-imports", "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_layer_contracts_can_fail(tmp_path: Path) -> None:
    """The same contracts on a copy of the package where the analyzer imports the report:
    lint-imports must say so (a check that cannot fail proves nothing)."""
    assert IMPORT_CONTRACTS, "lint-imports (import-linter) is in the dev extra"
    shutil.copytree(REPO / "idemlint", tmp_path / "idemlint")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    model = tmp_path / "idemlint" / "lint" / "summary" / "model.py"
    model.write_text(model.read_text("utf-8") + "\nimport idemlint.report.selection\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        ["lint-imports", "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode != 0, proc.stdout
    assert "The analyzer never imports the report" in proc.stdout
    assert "idemlint.lint.summary.model -> idemlint.report.selection" in proc.stdout


def test_engine_check_reads_as_its_stages() -> None:
    """engine.check stays a short list of named stages: at most 60 lines, no nested
    functions (the stages live in their own modules)."""
    import ast

    tree = ast.parse((REPO / "idemlint/lint/run/engine.py").read_text("utf-8"))
    (check,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    assert check.end_lineno is not None
    assert check.end_lineno - check.lineno + 1 <= 60
    nested = [
        n
        for n in ast.walk(check)
        if n is not check and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    ]
    assert nested == []


def test_package_top_level_stays_small() -> None:
    """At most 8 top-level modules besides the packages: the rest lives in a stage."""
    modules = [p.name for p in (REPO / "idemlint").glob("*.py")]
    assert len(modules) <= 8, sorted(modules)


def test_how_it_works_names_every_module_and_only_real_ones() -> None:
    """docs/how-it-works.md's map of stages matches the code: every analyzer and report
    module is named there, and every path it names exists."""
    import re

    doc = (REPO / "docs" / "how-it-works.md").read_text("utf-8")
    named = set(re.findall(r"`(idemlint/[\w/]+(?:\.py|/))`", doc))
    assert named
    missing_on_disk = sorted(p for p in named if not (REPO / p).exists())
    assert missing_on_disk == []
    folders = {p for p in named if p.endswith("/")}
    unnamed = []
    for area in ("lint", "report"):
        for path in sorted((REPO / "idemlint" / area).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if path.name == "__init__.py" or rel in named:
                continue
            if any(rel.startswith(f) for f in folders):
                continue
            unnamed.append(rel)
    assert unnamed == []

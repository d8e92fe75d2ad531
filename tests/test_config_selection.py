"""select / ignore / extend-select / per-file-ignores: which findings a run reports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from test_cli_support import copy_project, run_idemlint

from idemlint.config import Config
from idemlint.findings import Finding
from idemlint.report.selection import glob_matches, report_filter, rule_enabled


@pytest.mark.parametrize(
    ("select", "ignore", "extend", "enabled"),
    [
        (("IDM",), (), (), {"IDM101", "IDM301", "IDM302", "IDM003"}),
        (("IDM3",), ("IDM301",), (), {"IDM302"}),
        (("IDM",), ("IDM3",), ("IDM301",), {"IDM101", "IDM301", "IDM003"}),
        (("IDM301",), ("IDM301",), (), set()),
        (("IDM1",), (), ("IDM0",), {"IDM101", "IDM003"}),
    ],
)
def test_most_specific_code_wins(
    tmp_path: Path,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    extend: tuple[str, ...],
    enabled: set[str],
) -> None:
    config = replace(Config.default(tmp_path), select=select, ignore=ignore, extend_select=extend)
    rules = {"IDM101", "IDM301", "IDM302", "IDM003"}
    assert {r for r in rules if rule_enabled(r, config)} == enabled


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("tests", "tests/test_x.py", True),
        ("tests", "pkg/tests/test_x.py", True),
        ("tests", "pkg/tests_x.py", False),
        ("*_test.py", "a/b/c_test.py", True),
        ("app/legacy/**", "app/legacy/x/y.py", True),
        ("app/legacy/", "app/legacy/y.py", True),
        ("app/legacy/*.py", "app/legacy/x/y.py", False),
        ("app/*.py", "other/app/x.py", False),
        ("**/migrations/*.py", "a/migrations/0001.py", True),
        ("**/migrations/*.py", "migrations/0001.py", True),
        ("./scripts/one_[!x]*.py", "scripts/one_a.py", True),
        ("./scripts/one_[!x]*.py", "scripts/one_x.py", False),
        # .gitignore semantics (pathspec), as for exclude
        ("app/*.py", "app/sub/x.py", False),
        ("legacy/", "a/legacy/x.py", True),
        ("/legacy", "a/legacy/x.py", False),
        ("/legacy", "legacy/x.py", True),
        ("tests/", "tests", False),  # a folder-only pattern never matches a file
        # a key starting with ! applies to the files it does not match (ruff's meaning)
        ("!tests/**", "app/x.py", True),
        ("!tests/**", "tests/x.py", False),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert glob_matches(pattern, path) is matches


def test_per_file_ignores_use_root_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    config = replace(Config.default(root), per_file_ignores={"tests/**": ("IDM3",)})
    findings = [
        Finding("proj/tests/t.py", 1, 1, "IDM301", "m", 1, 2, "t"),
        Finding("proj/tests/t.py", 2, 1, "IDM401", "m", 2, 2, "t"),
        Finding("proj/app/t.py", 1, 1, "IDM301", "m", 1, 2, "t"),
    ]
    kept = report_filter(findings, config, [], cwd=tmp_path)
    assert [(f.path, f.rule) for f in kept] == [
        ("proj/app/t.py", "IDM301"),
        ("proj/tests/t.py", "IDM401"),
    ]


def test_cli_select_ignore_and_per_file_ignores(tmp_path: Path) -> None:
    project = copy_project(tmp_path)

    def rules(*args: str) -> set[tuple[str, str]]:
        done = run_idemlint("check", "--format", "json", *args, cwd=project)
        assert done.returncode in (0, 1), done.stderr
        return {(f["path"], f["rule"]) for f in json.loads(done.stdout)["findings"]}

    everything = rules()
    assert ("shop/tasks.py", "IDM301") in everything
    assert ("shop/tasks.py", "IDM401") in everything
    assert rules("--select", "IDM4") == {r for r in everything if r[1].startswith("IDM4")}
    assert rules("--ignore", "IDM3") == {r for r in everything if not r[1].startswith("IDM3")}
    assert rules("--select", "IDM4", "--extend-select", "IDM301") == {
        r for r in everything if r[1].startswith("IDM4") or r[1] == "IDM301"
    }

    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + '\n[tool.idemlint]\nignore = ["IDM4"]\n\n'
        + '[tool.idemlint.per-file-ignores]\n"shop/helpers.py" = ["IDM3"]\n'
    )
    assert rules() == {
        r for r in everything if not r[1].startswith("IDM4") and r[0] != "shop/helpers.py"
    }
    # The command line replaces the file's ignore list.
    assert ("shop/tasks.py", "IDM401") in rules("--ignore", "IDM602")
    # --isolated ignores the file entirely.
    assert rules("--isolated") == everything

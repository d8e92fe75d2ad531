"""The incremental re-check gives exactly what a run from scratch gives.

Each fixture project is copied, then edited at random, a few edits at a time: text
mutations that change what idemlint sees (uniqueness, locks, guards, effects, task
decorators, imports), lines moved (every position below shifts), lines dropped (some
edits break the parse), module-level names added, whole files swapped. After every
step the re-check (which reuses the last run's snapshot) must report what a run with
no cache reports, and the reuse must be real: a run with no change analyses nothing.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from test_perf_prefilter import TRICKY
from test_perf_prefilter import _write as _write_project

from idemlint.config import Config, load_config
from idemlint.lint.run.engine import CheckResult, check


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True)
    return _write_project(root, files)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROJECTS = sorted(p.parent.name for p in FIXTURES.glob("*/pyproject.toml"))
NO_CACHE = shutil.ignore_patterns(".idemlint_cache")

SWAPS = [
    ("unique=True", "unique=False"),
    ("unique=False", "unique=True"),
    ("primary_key=True", "db_index=True"),
    (".create(", ".get_or_create("),
    (".get_or_create(", ".create("),
    (".select_for_update()", ".all()"),
    ("with transaction.atomic():", "if True:"),
    ("F(", "int("),
    ("-= 1", "= 0"),
    ("return", "pass  #"),
    ("if ", "if not "),
    ("uuid4()", "str(order_id)"),
    ("@shared_task", "@shared_task(acks_late=True)"),
    ("@app.task", "@staticmethod"),
    ("import ", "import os, "),
    ("def ", "def _x(): pass\ndef "),
    ("status", "state"),
    ("send_mail(", "print("),
    ("delay(", "apply_async("),
]


def _edit(rng: random.Random, root: Path) -> str:
    files = sorted(p for p in root.rglob("*.py") if ".idemlint_cache" not in p.parts)
    path = rng.choice(files)
    text = path.read_text("utf-8", "surrogateescape")
    lines = text.splitlines(keepends=True)
    kind = rng.randrange(6)
    if kind == 0:  # a text mutation that changes meaning
        options = [(a, b) for a, b in SWAPS if a in text]
        if options:
            a, b = rng.choice(options)
            starts = [i for i in range(len(text)) if text.startswith(a, i)]
            at = rng.choice(starts)
            path.write_text(text[:at] + b + text[at + len(a) :], "utf-8", "surrogateescape")
            return f"{path.name}: {a!r} -> {b!r}"
    if kind == 1 and lines:  # blank lines above: every later position moves
        at = rng.randrange(len(lines) + 1)
        path.write_text("".join([*lines[:at], "\n\n", *lines[at:]]), "utf-8", "surrogateescape")
        return f"{path.name}: blank lines at {at}"
    if kind == 2 and lines:  # a line dropped (may break the parse: IDM001)
        at = rng.randrange(len(lines))
        path.write_text("".join(lines[:at] + lines[at + 1 :]), "utf-8", "surrogateescape")
        return f"{path.name}: line {at + 1} dropped"
    if kind == 3:  # a module-level name added (the pre-check's scan changes)
        added = f"\nADDED_{rng.randrange(1000)} = {rng.randrange(9)}\n"
        path.write_text(text + added, "utf-8", "surrogateescape")
        return f"{path.name}: name added"
    if kind == 4 and len(files) > 1:  # two files' contents swapped
        other = rng.choice([f for f in files if f != path])
        other_text = other.read_text("utf-8", "surrogateescape")
        path.write_text(other_text, "utf-8", "surrogateescape")
        other.write_text(text, "utf-8", "surrogateescape")
        return f"{path.name} <-> {other.name}"
    # a line duplicated: the same effect twice, or a second definition
    if lines:
        at = rng.randrange(len(lines))
        path.write_text("".join(lines[: at + 1] + lines[at:]), "utf-8", "surrogateescape")
        return f"{path.name}: line {at + 1} doubled"
    return "nothing"


def _scratch(root: Path) -> CheckResult:
    """A run that ignores every snapshot. Its summaries come from a cache of its own,
    outside the project, keyed by file content like every summary (their cache is tested
    on its own): what is compared is the reuse of the last run's results, and summarising
    the same bytes again at every step only cost time."""
    config = load_config([root])
    assert isinstance(config, Config)
    own = str(root.parent / f"{root.name}-scratch-cache")
    return check([root], config.with_overrides(cache_dir=own), cwd=root, incremental=False)


@pytest.mark.parametrize("project", [*PROJECTS, "tricky"])
def test_random_edits_recheck_like_a_run_from_scratch(project: str, tmp_path: Path) -> None:
    root = tmp_path / project
    if project == "tricky":  # re-exports, aliases, files the pre-check rules out
        _write(root, TRICKY)
    else:
        shutil.copytree(FIXTURES / project, root, ignore=NO_CACHE)
    rng = random.Random(f"idemlint-{project}")
    first = check([root], load_config([root]), cwd=root)
    assert first.findings == _scratch(root).findings
    steps: list[str] = []
    for _ in range(8):
        for _ in range(rng.choice((1, 1, 2))):
            steps.append(_edit(rng, root))
        again = check([root], load_config([root]), cwd=root)
        assert again.findings == _scratch(root).findings, steps
    quiet = check([root], load_config([root]), cwd=root)
    assert quiet.stats["analysed"] == 0 and quiet.stats["summarised"] == 0
    assert quiet.findings == again.findings


def test_edit_reanalyses_only_the_tasks_that_read_the_file(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(FIXTURES / "shop", root, ignore=NO_CACHE)
    first = check([root], load_config([root]), cwd=root)
    gateway = next(root.rglob("gateway.py"))
    gateway.write_text(gateway.read_text("utf-8") + "\n\ndef unused_helper():\n    pass\n")
    again = check([root], load_config([root]), cwd=root)
    assert again.findings == _scratch(root).findings == first.findings
    assert 0 < again.stats["analysed"] < first.stats["tasks"]
    assert again.stats["summarised"] == 1


def test_suppressions_of_unchanged_files_come_from_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from idemlint.lint.run import results
    from idemlint.report.selection import report_filter

    root = tmp_path / "sqlalchemy_app"
    shutil.copytree(FIXTURES / "sqlalchemy_app", root, ignore=NO_CACHE)
    tasks = root / "ledger" / "tasks.py"
    line = next(
        i for i, t in enumerate(tasks.read_text().splitlines(), 1) if "# expect: IDM301" in t
    )
    lines = tasks.read_text().splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].rstrip("\n") + "  # noqa: IDM301\n"
    tasks.write_text("".join(lines))
    config = load_config([root])
    first = check([root], config, cwd=root)
    kept = report_filter(first.findings, config, first.files, cwd=root, known=first.suppressions)

    def no_tokenizing(data: bytes) -> list[object]:
        raise AssertionError("an unchanged file was read for suppressions again")

    monkeypatch.setattr(results, "suppressions_in", no_tokenizing)
    again = check([root], config, cwd=root)
    assert again.suppressions.keys() == first.suppressions.keys()
    assert [s.line for s in again.suppressions[tasks]] == [line]
    kept_again = report_filter(
        again.findings, config, again.files, cwd=root, known=again.suppressions
    )
    assert kept_again == kept
    assert (str(tasks.relative_to(root)), line) not in {(f.path, f.line) for f in kept_again}


def test_precheck_is_reused_only_while_it_still_holds(tmp_path: Path) -> None:
    root = _write(tmp_path / "tricky", TRICKY)
    jobs = root / "proj" / "jobs.py"
    original = jobs.read_text()
    first = check([root], load_config([root]), cwd=root)
    assert first.findings == _scratch(root).findings

    def recheck(text: str) -> CheckResult:
        jobs.write_text(text)
        result = check([root], load_config([root]), cwd=root)
        assert result.findings == _scratch(root).findings
        return result

    # a new name: the scan changes, no binding does, and nothing leads anywhere new
    added = recheck(original + "\nRETRIES = 3\n")
    assert added.stats.get("prefilter_reused") == 1
    # a path into a module the pre-check ruled out, with no new binding: not reused
    call = "    h.mail.deep.notify(address)\n"
    into = original.replace(call, call + "    proj.unrelated.report.export([address])\n", 1)
    reached = recheck(into)
    assert "prefilter_reused" not in reached.stats
    assert any(f.path == "proj/unrelated/report.py" for f in reached.findings)
    # a new import (a binding): not reused either
    imported = recheck("from proj.unrelated import report\n" + original)
    assert "prefilter_reused" not in imported.stats
    back = recheck(original)
    assert back.findings == first.findings
    # a file the pre-check ruled out gains a name: reused, and that file is kept from now on
    report = root / "proj" / "unrelated" / "report.py"
    report.write_text(report.read_text() + "\nLIMIT = 10\n")
    ruled_out = check([root], load_config([root]), cwd=root)
    assert ruled_out.stats.get("prefilter_reused") == 1
    assert ruled_out.stats["summarised"] == 1
    assert ruled_out.findings == _scratch(root).findings

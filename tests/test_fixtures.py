"""The fixture corpus: small example projects whose comments say what idemlint must report.

Each folder under ``fixtures/`` with a ``pyproject.toml`` is a project. A trailing
``# expect: IDM301`` (or ``# expect: IDM101, IDM602``) marks a line where that finding
must be reported; every other line must stay silent. ``# expect: clean`` on a task's
decorator or ``def`` line marks a task that must produce no finding at all, in its own
lines or anywhere its run reaches.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from idemlint.config import load_config
from idemlint.findings import Finding
from idemlint.lint.run.engine import check
from idemlint.report.selection import report_filter

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROJECTS = sorted(p.parent.name for p in FIXTURES.glob("*/pyproject.toml"))

FRAMEWORK_PROJECTS = {
    "celery_app",
    "rq_app",
    "dramatiq_app",
    "huey_app",
    "arq_app",
    "taskiq_app",
    "djangoq_app",
}
"""One project per task framework the analyzer supports."""
EXAMPLE_PROJECTS = FRAMEWORK_PROJECTS | {"sqlalchemy_app", "crossfile", "shop"}
"""Projects that must show both sides: at least one finding and at least one clean task."""
ALL_CLEAN_PROJECTS = {"precision"}
"""Projects made only of code that must never be reported."""

MARKER = re.compile(r"#\s*expect:\s*(?P<codes>[A-Za-z0-9, ]+?)\s*$")
CODE = re.compile(r"IDM\d{3}")

Place = tuple[str, int, str]
"""(path relative to the project root, line, rule)."""


@dataclass(frozen=True)
class CleanTask:
    path: str
    name: str
    """Dotted name as the engine reports it in ``Finding.task`` (module path + qualname)."""
    first_line: int
    last_line: int


def _python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def _markers(root: Path) -> tuple[set[Place], dict[str, set[int]]]:
    """Expected findings, and per file the lines marked ``# expect: clean``."""
    expected: set[Place] = set()
    clean_lines: dict[str, set[int]] = {}
    for path in _python_files(root):
        rel = path.relative_to(root).as_posix()
        for number, text in enumerate(path.read_text("utf-8").splitlines(), start=1):
            match = MARKER.search(text)
            if match is None:
                continue
            tokens = [t.strip() for t in match["codes"].split(",") if t.strip()]
            if tokens == ["clean"]:
                clean_lines.setdefault(rel, set()).add(number)
                continue
            bad = [t for t in tokens if not CODE.fullmatch(t)]
            assert not bad, f"{rel}:{number}: malformed marker {match.group(0)!r}"
            expected.update((rel, number, code) for code in tokens)
    return expected, clean_lines


def _module_name(rel: str) -> str:
    parts = rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _clean_tasks(root: Path, clean_lines: dict[str, set[int]]) -> list[CleanTask]:
    """Resolve each ``# expect: clean`` line to the function or class it declares."""
    tasks: list[CleanTask] = []
    for rel, lines in clean_lines.items():
        tree = ast.parse((root / rel).read_text("utf-8"))
        found: set[int] = set()
        for node, qualname in _definitions(tree.body, ""):
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            header = set(range(first, node.lineno + 1))
            hit = lines & header
            if hit:
                found |= hit
                end = node.end_lineno or node.lineno
                tasks.append(CleanTask(rel, f"{_module_name(rel)}.{qualname}", first, end))
        stray = sorted(lines - found)
        assert not stray, f"{rel}: '# expect: clean' is not on a task's header line: {stray}"
    return tasks


def _definitions(
    body: Iterable[ast.stmt], prefix: str
) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, str]]:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qualname = f"{prefix}{node.name}"
            yield node, qualname
            if isinstance(node, ast.ClassDef):
                yield from _definitions(node.body, f"{qualname}.")


def _lint(root: Path, cache: Path) -> list[Finding]:
    """What ``idemlint check <root>`` reports: the engine, then inline suppressions (which
    also yield IDM003) and the project's rule selection. ``report.checking.check_project`` alone
    stops before suppressions. The cache goes to ``cache``, not into the fixture in the work
    tree, where parallel runs with other code would share it."""
    config = load_config([root]).with_overrides(cache_dir=str(cache))
    result = check([root], config)
    return report_filter(result.findings, config, result.files)


def _reported(root: Path, findings: Iterable[Finding]) -> dict[Place, Finding]:
    out: dict[Place, Finding] = {}
    for f in findings:
        path = Path(f.path).resolve()
        assert path.is_relative_to(root), f"finding outside the project: {f}"
        out[(path.relative_to(root).as_posix(), f.line, f.rule)] = f
    return out


def _source_line(root: Path, rel: str, line: int) -> str:
    lines = (root / rel).read_text("utf-8").splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _diff(root: Path, missing: set[Place], unexpected: dict[Place, Finding]) -> str:
    out = []
    for rel, line, code in sorted(missing):
        out.append(f"  missing    {rel}:{line} {code}    | {_source_line(root, rel, line)}")
    for (rel, line, code), f in sorted(unexpected.items()):
        task = f" (task {f.task})" if f.task else ""
        out.append(f"  unexpected {rel}:{line} {code}{task}: {f.message}")
    return "\n".join(out)


def _engine_tasks(root: Path) -> set[str]:
    """Names of the tasks the engine recognises in a project, wired as ``engine.check`` does.

    Without this, a task marked clean would also "pass" if the engine never saw it as a task.
    """
    from idemlint.lint.files.discovery import discover
    from idemlint.lint.index.project import Project
    from idemlint.lint.index.tasks import find_tasks
    from idemlint.lint.knowledge import load_knowledge
    from idemlint.lint.run.summarising import summarize_files

    config = load_config([root])
    files = discover(root, (*config.exclude, *config.extend_exclude))
    knowledge = load_knowledge(
        config.knowledge, frameworks=config.task_frameworks, source=config.source
    )
    return set(find_tasks(Project(summarize_files(files, root, cache=None), knowledge)))


def _is_or_runs(task: str, name: str) -> bool:
    """A class-based task is named by its ``run`` method (``mod.SyncTask.run``)."""
    return task == name or task.startswith(name + ".")


@pytest.fixture(scope="module", params=PROJECTS)
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[Place, Finding]]:
    root = FIXTURES / str(request.param)
    return root, _reported(root, _lint(root, tmp_path_factory.mktemp("cache")))


def test_findings_match_the_expect_markers(project: tuple[Path, dict[Place, Finding]]) -> None:
    root, reported = project
    expected, _ = _markers(root)
    missing = expected - set(reported)
    unexpected = {place: f for place, f in reported.items() if place not in expected}
    assert not missing and not unexpected, (
        f"{root.name}: findings differ from the # expect markers\n"
        + _diff(root, missing, unexpected)
    )


def test_clean_tasks_stay_clean(project: tuple[Path, dict[Place, Finding]]) -> None:
    root, reported = project
    expected, clean_lines = _markers(root)
    known = _engine_tasks(root)
    for task in _clean_tasks(root, clean_lines):
        assert any(_is_or_runs(t, task.name) for t in known), (
            f"{task.name} is marked clean but the engine does not see it as a task"
        )
        inside = range(task.first_line, task.last_line + 1)
        # IDM0xx notices (an unused suppression, say) are about the file, not the task
        marked = sorted(
            line
            for rel, line, code in expected
            if rel == task.path and line in inside and not code.startswith("IDM0")
        )
        assert not marked, f"{task.name} is marked clean but holds # expect markers: {marked}"
        # every task a finding lists, not only the one it is reported for
        attributed = [
            f
            for f in reported.values()
            if any(_is_or_runs(t, task.name) for t in (*f.tasks, f.task or ""))
        ]
        assert not attributed, f"{task.name} is marked clean but reaches:\n" + "\n".join(
            f"  {f.path}:{f.line} {f.rule} {f.message}" for f in attributed
        )


@pytest.mark.parametrize("name", PROJECTS)
def test_project_shape(name: str) -> None:
    """Each fixture is its own project root, with a package, and shows what it is for."""
    root = FIXTURES / name
    assert "[tool.idemlint]" in (root / "pyproject.toml").read_text("utf-8")
    assert any(root.glob("*/__init__.py")), f"{name} has no package folder"
    expected, clean_lines = _markers(root)
    if name in EXAMPLE_PROJECTS:
        assert expected, f"{name} has no expected finding"
        assert clean_lines, f"{name} has no task marked '# expect: clean'"
    if name in ALL_CLEAN_PROJECTS:
        assert not expected, f"{name} must not expect any finding"
        assert clean_lines, f"{name} marks no clean task"


def test_every_framework_has_a_project() -> None:
    assert set(PROJECTS) >= FRAMEWORK_PROJECTS | {"sqlalchemy_app", "precision", "crossfile"}
    assert {"broken", "shop"} <= set(PROJECTS)


@pytest.mark.parametrize("name", PROJECTS)
def test_fixture_sources_compile(name: str) -> None:
    """Fixtures are real code; only files marked IDM001 are broken, on purpose."""
    root = FIXTURES / name
    expected, _ = _markers(root)
    broken = {rel for rel, _, code in expected if code == "IDM001"}
    for path in _python_files(root):
        rel = path.relative_to(root).as_posix()
        source = path.read_text("utf-8")
        if rel in broken:
            with pytest.raises(SyntaxError):
                compile(source, str(path), "exec")
        else:
            compile(source, str(path), "exec")


def test_crossfile_findings_name_the_task_and_the_call_chain(tmp_path: Path) -> None:
    """An effect three or four calls away is reported in the helper, with ``task`` and ``via``."""
    root = FIXTURES / "crossfile"
    reported = _reported(root, _lint(root, tmp_path))
    mail = reported[("orders/mailer.py", 7, "IDM302")]
    assert mail.task == "orders.tasks.fulfil_order"
    assert mail.via == (
        "orders.services.fulfil",
        "orders.notifications.CustomerNotifier.order_fulfilled",
        "orders.mailer.deliver",
    )
    stock = reported[("orders/warehouse.py", 16, "IDM502")]
    assert stock.via[-1] == "orders.warehouse._reserve_line" and len(stock.via) == 4
    refund = reported[("orders/payments.py", 11, "IDM304")]
    assert refund.task == "orders.billing.refund_order"
    assert refund.via[-1] == "orders.payments._post_refund"

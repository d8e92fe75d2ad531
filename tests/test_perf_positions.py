"""The fast summary path gives exactly the summaries of the plain libcst path.

``summarize_source`` computes positions with :mod:`idemlint.lint.summary.positions` and finds
calls by a direct walk; ``reference=True`` uses libcst's ``PositionProvider`` and
its generic visitor. Real code (every file of the installed Django and Celery
packages, and the fixtures) must give identical ``to_dict()`` output both ways.
No timing is asserted here: speed is measured by ``bench/lint_speed.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from idemlint.lint.summary import positions as positions_module
from idemlint.lint.summary.positions import PositionsUnavailable, positions
from idemlint.lint.summary.summarize import summarize_source

REPO = Path(__file__).resolve().parent.parent


def _package_files(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{name} is not installed (it is in the dev extra)")
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(root.rglob("*.py"))


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None


def _assert_same_summaries(files: list[Path]) -> int:
    compared = 0
    for path in files:
        source = _read(path)
        if source is None:
            continue
        fast = summarize_source(source, path.name, "pkg.mod").to_dict()
        reference = summarize_source(source, path.name, "pkg.mod", reference=True).to_dict()
        assert fast == reference, f"summaries differ for {path}"
        compared += 1
    return compared


# Every 3rd Celery file and every 12th Django file (sorted by path, so every
# sub-package is in), to keep this near ten seconds: the reference path costs ~30 ms a
# file. The benchmark's run without the pre-check compares whole trees' findings.
@pytest.mark.parametrize(("package", "step"), [("django", 12), ("celery", 3)])
def test_fast_summaries_equal_reference_on_installed_package(package: str, step: int) -> None:
    files = _package_files(package)[::step]
    assert _assert_same_summaries(files) > 50


def test_fast_summaries_equal_reference_on_fixtures() -> None:
    files = sorted((REPO / "fixtures").rglob("*.py"))
    assert files, "fixtures/ holds the example projects"
    assert _assert_same_summaries(files) == len(files)


TRICKY = """
import os; x = f(g(1), *a, k=h(2), **kw)[i(3):j(4):k(5)]
y = (lambda q=dflt(): q())(outer())
z = [m(v) for v in it(1) if cond(v) for w in it2(v)]
d = {key(): val(), **more(), "s": {n() for n in ns()}}
e = a() if b() else c()
s = f"{fmt(1)!r:>{width()}}" "tail" f'{other()}'
async def co():
    r = await fetch(x := make())
    yield_ = [(yield item()) for _ in ()]
    t = not flag() or (other() and -neg())
    u = sub()[idx()].attr(call())
    with open(p()) as fh, lock(k()):
        pass
    try:
        pass
    except E:
        pass
    finally:
        done()
class K(base(), metaclass=meta()):
    @dec(arg())
    def m(self, a=default()): return self.go(a)
if a(): pass
elif b(): pass
else: c()
match subject():
    case 1: hit()
\tlast = \\
    cont()\r\n
"""


def test_positions_match_position_provider_node_by_node() -> None:
    crlf = "x = 1\r\ny = f(\r\n  2)\r\n"
    sources = [TRICKY.replace("\t", ""), crlf, "", "\n\n# only a comment\n"]
    for path in sorted((REPO / "fixtures").rglob("*.py"))[:40]:
        text = _read(path)
        if text is not None:
            sources.append(text)
    for source in sources:
        try:
            tree = cst.parse_module(source)
        except cst.ParserSyntaxError:
            continue  # fixtures/broken
        reference = MetadataWrapper(tree, unsafe_skip_copy=True).resolve(PositionProvider)
        fast = positions(tree)
        assert fast, "positions of a module's nodes are recorded"
        for node, (line, column, end_line, end_column) in fast.items():
            if isinstance(node, cst.Module):
                continue
            rng = reference[node]
            assert (line, column, end_line, end_column) == (
                rng.start.line,
                rng.start.column,
                rng.end.line,
                rng.end.column,
            ), f"{type(node).__name__} in {source[:40]!r}"
        wanted = (cst.Call, cst.FunctionDef, cst.ClassDef, cst.If, cst.Name, cst.Decorator)
        missing = [n for n in reference if isinstance(n, wanted) and n not in fast]
        assert not missing, f"positions missing for {[type(n).__name__ for n in missing]}"


def test_tricky_source_summary_equals_reference() -> None:
    source = TRICKY.replace("\t", "")
    assert summarize_source(source, "t.py", "t").to_dict() == (
        summarize_source(source, "t.py", "t", reference=True).to_dict()
    )


def test_falls_back_to_position_provider_when_codegen_hooks_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = TRICKY.replace("\t", "")
    expected = summarize_source(source, "t.py", "t", reference=True).to_dict()

    def broken(module: cst.Module) -> dict[cst.CSTNode, tuple[int, int, int, int]]:
        raise PositionsUnavailable("simulated libcst change")

    monkeypatch.setattr(positions_module, "positions", broken)
    assert summarize_source(source, "t.py", "t").to_dict() == expected

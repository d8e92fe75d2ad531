"""Fuzzing the analyzer (issue 12): neither ``idemlint check`` (the engine) nor the flake8
plugin crashes on any file; every file ends as findings (or none) or as a notice.

Inputs come from ``bench/_fuzz_inputs.py`` (mutated fixtures, deep nesting, long chains,
encodings, garbage; the same generators ``bench/fuzz_files.py`` runs ten thousand of)
and from hypothesmith's Python grammar. Damaged project snapshots must give the
findings of a run without one. Example counts are bounded to keep the suite quick.
"""

from __future__ import annotations

import ast
import copy
import itertools
import json
import random
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idemlint.catalog import load_catalog
from idemlint.config import Config, load_config
from idemlint.flake8_plugin import Plugin
from idemlint.lint.files.source import decode_source
from idemlint.lint.run import snapshot_check
from idemlint.lint.run.engine import CheckResult, check

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from _fuzz_inputs import AREAS, generate  # noqa: E402

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_counter = itertools.count()


def fresh(base: Path, files: dict[str, bytes]) -> Path:
    root = base / f"p{next(_counter)}"
    (root / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'fuzz'\n")
    (root / "app" / "__init__.py").write_text("")
    for name, data in files.items():
        (root / "app" / name).write_bytes(data)
    return root


def assert_every_file_handled(root: Path, result: CheckResult, names: list[str]) -> None:
    """Every written file was read (nothing lost) and each notice says why."""
    files = {str(p.relative_to(root)) for p in result.files}
    assert {f"app/{n}" for n in names} <= files
    for finding in result.findings:
        assert finding.rule in load_catalog()
        assert finding.line >= 1 and finding.column >= 1
        if finding.rule == "IDM001":
            assert finding.message.split(": ", 1)[1].strip()


inputs = st.lists(
    st.tuples(st.sampled_from(AREAS), st.integers(0, 2**32 - 1)), min_size=1, max_size=4
)


@FUZZ
@given(batch=inputs)
def test_the_engine_never_crashes(tmp_path: Path, batch: list[tuple[str, int]]) -> None:
    files = {
        f"f{i}.py": generate(area, random.Random(seed)) for i, (area, seed) in enumerate(batch)
    }
    root = fresh(tmp_path, files)
    cold = check([root], load_config([root]), cwd=root, jobs=1)
    assert_every_file_handled(root, cold, list(files))
    warm = check([root], load_config([root]), cwd=root, jobs=1)
    assert warm.findings == cold.findings  # what the cache and snapshot keep is the same


def flake8_lines(data: bytes) -> list[str] | None:
    """The lines flake8 would hand the plugin, or None when flake8 itself stops first
    (E902 for a file it cannot decode, E999 for one ``ast`` does not parse)."""
    try:
        text = decode_source(data)
        ast.parse(text)
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
        return None
    return text.splitlines(keepends=True)


def run_plugin(root: Path, name: str, lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    for line, column, text, kind in Plugin(None, name, lines).run():  # type: ignore[arg-type]
        assert line >= 1 and column >= 0 and text.startswith("IDM") and kind is Plugin


@FUZZ
@given(area=st.sampled_from(AREAS), seed=st.integers(0, 2**32 - 1))
def test_the_flake8_plugin_never_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, area: str, seed: int
) -> None:
    data = generate(area, random.Random(seed))
    lines = flake8_lines(data)
    if lines is None:
        return
    root = fresh(tmp_path, {"f.py": data})
    run_plugin(root, "app/f.py", lines, monkeypatch)
    run_plugin(root, "app/f.py", [*lines, "\n# an unsaved edit\n"], monkeypatch)


def grammar() -> st.SearchStrategy[str]:
    hypothesmith = pytest.importorskip("hypothesmith")
    strategy: st.SearchStrategy[str] = hypothesmith.from_grammar()
    return strategy


@settings(FUZZ, max_examples=20)
@given(source=st.deferred(grammar))
def test_generated_python_never_crashes_the_engine_or_the_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    data = source.encode("utf-8", "surrogatepass")
    root = fresh(tmp_path, {"g.py": data})
    result = check([root], Config.default(root).with_overrides(no_cache=True), cwd=root, jobs=1)
    assert_every_file_handled(root, result, ["g.py"])
    lines = flake8_lines(data)
    if lines is not None:
        run_plugin(root, "app/g.py", lines, monkeypatch)


def test_the_pool_never_crashes(tmp_path: Path) -> None:
    rng = random.Random(12)
    files = {f"f{i}.py": generate(AREAS[i % len(AREAS)], rng) for i in range(30)}
    root = fresh(tmp_path, files)
    result = check([root], load_config([root]), cwd=root, jobs=2)
    assert_every_file_handled(root, result, list(files))
    alone = check([root], Config.default(root).with_overrides(no_cache=True), cwd=root, jobs=1)
    assert alone.findings == result.findings


# -- damaged snapshots ----------------------------------------------------------------
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[object], str]:
    """A copy of the shop fixture, its findings without a cache, and its snapshot."""
    root = tmp_path_factory.mktemp("snapfuzz") / "shop"
    shutil.copytree(
        REPO / "fixtures" / "shop", root, ignore=shutil.ignore_patterns(".idemlint_cache")
    )
    reference = check([root], Config.default(root).with_overrides(no_cache=True), cwd=root)
    check([root], load_config([root]), cwd=root)
    (snap,) = (root / ".idemlint_cache" / "projects").glob("*.json")
    return root, [f.to_json() for f in reference.findings], snap.read_text()


LEAVES: list[object] = [None, 0, -1, 1, 10**12, "", "IDM404", "x", [], {}, True, 2.5, [0], [-1]]


def mutate(data: object, rng: random.Random) -> object:
    """Replace or delete one value somewhere in the decoded snapshot."""
    path: list[object] = []
    node = data
    while isinstance(node, (list, dict)) and node and rng.random() < 0.85:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    if not path:
        return copy.deepcopy(rng.choice(LEAVES))
    parent = data
    for key in path[:-1]:
        parent = parent[key]  # type: ignore[index]
    if isinstance(parent, list) and rng.random() < 0.2:
        del parent[path[-1]]  # type: ignore[arg-type]
    else:
        # a fresh copy: a leaf that is a list or dict must not end up inside itself
        parent[path[-1]] = copy.deepcopy(rng.choice(LEAVES))  # type: ignore[index]
    return data


@settings(FUZZ, max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), reseal=st.booleans(), edits=st.integers(1, 3))
def test_a_damaged_snapshot_never_changes_findings(
    shop: tuple[Path, list[object], str], seed: int, reseal: bool, edits: int
) -> None:
    root, reference, sealed = shop
    (snap,) = (root / ".idemlint_cache" / "projects").glob("*.json")
    rng = random.Random(seed)
    text = snapshot_check.unseal(sealed)
    data: object = json.loads(text)
    for _ in range(edits):
        data = mutate(data, rng)
    damaged = json.dumps(data, separators=(",", ":"))
    try:
        snap.write_text(snapshot_check.seal(damaged) if reseal else sealed.replace(text, damaged))
        result = check([root], load_config([root]), cwd=root)
    finally:
        snap.write_text(sealed)
    found = [f.to_json() for f in result.findings]
    if not reseal or damaged == text:
        assert found == reference  # the checksum turned it away
    else:  # a matching checksum (a foreign writer): never a crash or an unknown rule
        assert all(f["rule"] in load_catalog() for f in found)

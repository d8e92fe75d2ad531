"""The wheel ships what the tool reads at run time: every subpackage, the rule catalog
(rules/ as idemlint.rulefiles), the built-in knowledge and the py.typed marker."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def listed_packages() -> set[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    return set(data["tool"]["setuptools"]["packages"])


def test_every_subpackage_is_listed() -> None:
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "idemlint").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk <= listed_packages(), f"add to pyproject packages: {on_disk - listed_packages()}"
    assert "idemlint.rulefiles" in listed_packages()


def test_wheel_contents(tmp_path: Path) -> None:
    # Built from a copy: pip builds in the source folder, and a build/ written into the work
    # tree would be shared by every run on the machine (and be read by the next build).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("idemlint", "rules"):
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("idemlint-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    rules = sorted(p.name for p in (REPO / "rules").glob("IDM*.toml"))
    assert rules and all(f"idemlint/rulefiles/{r}" in names for r in rules)
    assert "idemlint/lint/knowledge/builtin.toml" in names
    assert "idemlint/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "idemlint = idemlint.cli:main" in text
    assert "IDM = idemlint.flake8_plugin:Plugin" in text

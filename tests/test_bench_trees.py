"""``bench/lint_speed.py`` takes a big application from where it is extracted already
(issue 14: saleor from the real-world set's folder), as it would write it from a bare git
mirror: the ``.py`` files and root markers, no hidden folder (another tool's cache), in a
repository of its own. No timing here; the benchmark measures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import lint_speed  # noqa: E402


def test_copy_tree_takes_python_files_and_root_markers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "app" / "orders").mkdir(parents=True)
    (src / "app" / "orders" / "tasks.py").write_text("x = 1\n")
    (src / "app" / "__init__.py").write_text("")
    (src / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    (src / "README.md").write_text("not read\n")
    (src / ".idemlint_cache" / "summaries").mkdir(parents=True)
    (src / ".idemlint_cache" / "summaries" / "stale.py").write_text("y = 2\n")
    dest = tmp_path / "dest"
    lint_speed.copy_tree(src, dest)
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == ["app/__init__.py", "app/orders/tasks.py", "pyproject.toml"]


def test_prepare_tree_from_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "saleor"
    (src / "saleor" / "order").mkdir(parents=True)
    (src / "saleor" / "order" / "tasks.py").write_text("x = 1\n")
    monkeypatch.setattr(lint_speed, "DATA", tmp_path / "data")
    root = lint_speed.prepare_tree(lint_speed.TREES["saleor"], source=src)
    assert (root / ".git").is_dir()  # its own project root for every tool
    assert (root / "saleor" / "order" / "tasks.py").read_text() == "x = 1\n"
    with pytest.raises(lint_speed.Skip):
        lint_speed.prepare_tree(lint_speed.TREES["pretix"], source=tmp_path / "missing")


def test_commit_from_another_listing(tmp_path: Path) -> None:
    listing = tmp_path / "repos.tsv"
    listing.write_text("repo\tcommit\nsaleor/saleor\tabc123\n")
    assert lint_speed.mirror_commit("saleor/saleor", listing) == "abc123"
    with pytest.raises(lint_speed.Skip):
        lint_speed.mirror_commit("other/app", listing)
    with pytest.raises(lint_speed.Skip):
        lint_speed.mirror_commit("saleor/saleor", tmp_path / "absent.tsv")

"""Which files make up a project, and what their module names are.

git decides what is ignored when the root is in a work tree (so ``.gitignore`` is
honoured exactly as git reads it); otherwise a plain walk. Virtualenvs, build
output, ``node_modules`` and ``__pycache__`` are always skipped, plus the
configured ``exclude`` globs.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

ALWAYS_SKIPPED = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "build",
        "dist",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".idemlint_cache",
        ".eggs",
        "site-packages",
    }
)


def _git_files(root: Path) -> list[Path] | None:
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
            cwd=root,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    return [root / n for n in names if n.endswith(".py")]


def _walk_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d
            for d in dirnames
            if d not in ALWAYS_SKIPPED
            and not d.startswith(".")
            and not d.endswith(".egg-info")
            and not (Path(dirpath) / d / "pyvenv.cfg").exists()
        ]
        out.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return out


def _skipped(rel_parts: Sequence[str], root: Path) -> bool:
    return _folder_skipped(str(root), "/".join(rel_parts[:-1]))


@lru_cache(maxsize=4096)
def _folder_skipped(root: str, rel: str) -> bool:
    """Whether a folder (relative to the root, ``/``-separated) or one of its parents is
    skipped. Asked once per folder and run: files share folders."""
    if not rel:
        return False
    parent, _, part = rel.rpartition("/")
    # hidden folders hold tool data (.semgrep rule tests, .github), not the application
    if part in ALWAYS_SKIPPED or part.endswith(".egg-info") or part.startswith("."):
        return True
    if os.path.exists(os.path.join(root, rel, "pyvenv.cfg")):
        return True
    return _folder_skipped(root, parent)


def _excluded(rel: str, globs: Iterable[str]) -> bool:
    for glob in globs:
        g = glob.rstrip("/")
        if fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(rel, f"{g}/*"):
            return True
        if "/" not in g and any(fnmatch.fnmatch(part, g) for part in rel.split("/")):
            return True
    return False


def discover(root: Path, exclude: Sequence[str] = ()) -> list[Path]:
    """Every Python file of the project under ``root``, sorted."""
    root = root.absolute()
    _package_of.cache_clear()  # folders are read afresh on every run
    _folder_skipped.cache_clear()
    files = _git_files(root)
    if files is None:
        files = _walk_files(root)
    out = []
    top = str(root)
    for f in files:
        name = str(f)
        rel = name[len(top) + 1 :] if name.startswith(top + os.sep) else str(f.relative_to(root))
        rel = rel.replace(os.sep, "/")
        if _skipped(rel.split("/"), root) or _excluded(rel, exclude):
            continue
        if os.path.isfile(name):
            out.append(f)
    return sorted(out)


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Dotted module name of ``path`` and whether it is a package ``__init__``.

    The module starts at the topmost folder of the chain of packages (folders with
    ``__init__.py``) holding the file, so ``src/`` layouts and nested projects work.
    """
    # string work, not pathlib: this runs for every file of the project on every run
    name = str(path) if path.is_absolute() else str(path.absolute())
    top = str(root) if root.is_absolute() else str(root.absolute())
    folder, base = os.path.split(name)
    is_package = base == "__init__.py"
    stem = os.path.splitext(base)[0]
    package = _package_of(folder, top)
    if package is None:
        # namespace folders: name the module from the project root
        if name.startswith(top + os.sep):
            return ".".join(os.path.splitext(name[len(top) + 1 :])[0].split(os.sep)), False
        return stem, False
    if is_package:
        return package, True
    return f"{package}.{stem}" if package else stem, False


@lru_cache(maxsize=4096)
def _package_of(folder_name: str, root_name: str) -> str | None:
    """The dotted package name of a folder (``None`` when it is not a package and not
    the root). Asked once per folder: a project's files share few folders, and the
    editor path checks the whole project on every save."""
    folder, root = folder_name, root_name

    def is_package(name: str) -> bool:
        return os.path.exists(os.path.join(name, "__init__.py"))

    if not is_package(folder) and folder != root:
        return None
    parts: list[str] = []
    while is_package(folder) and folder != os.path.dirname(folder):
        parts.append(os.path.basename(folder))
        if folder == root:
            break
        folder = os.path.dirname(folder)
    return ".".join(reversed(parts))

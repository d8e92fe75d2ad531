"""Which files make up a project, and what their module names are.

git decides what is ignored when the root is in a work tree (so ``.gitignore`` is
honoured exactly as git reads it); otherwise a plain walk. Virtualenvs, build
output, ``node_modules`` and ``__pycache__`` are always skipped, plus the
configured ``exclude`` patterns, matched as ``.gitignore`` lines are
(:mod:`idemlint.lint.files.patterns`).

Nothing outside the project is read: a ``.py`` symlink whose target lies outside the
root is left out (a committed link to ``/etc/passwd`` would otherwise be read, and
``--show-source`` would print it), and so are sockets, FIFOs and folders named
``*.py``. What cannot be read is not silently an empty project: folders that cannot
be listed and files whose names are not UTF-8 come back as :class:`Skipped`, which
the engine reports as notices; files that cannot be read are kept, and reported by
the run that fails to read them.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from idemlint.lint.files.patterns import compiled

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


@dataclass(frozen=True)
class Skipped:
    """A path of the project that was not checked, and why (reported as a notice)."""

    path: Path
    reason: str


@dataclass
class Discovery:
    files: list[Path]
    """Every Python file of the project, sorted."""
    skipped: list[Skipped] = field(default_factory=list)


_GIT_UNREADABLE = re.compile(r"^warning: could not open directory '(.*)': (.*)$", re.M)


def _git_files(root: Path, skipped: list[Skipped]) -> list[Path] | None:
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
            cwd=root,
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANGUAGE": "C"},  # warnings in English
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    for folder, why in _GIT_UNREADABLE.findall(proc.stderr.decode("utf-8", "surrogateescape")):
        skipped.append(Skipped(root / folder.rstrip("/"), f"cannot read folder: {why}"))
    return [root / n for n in names if n.endswith(".py")]


def _walk_files(root: Path, skipped: list[Skipped]) -> list[Path]:
    out: list[Path] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        skipped.append(Skipped(where, f"cannot read folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
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


def discover(root: Path, exclude: Sequence[str] = ()) -> list[Path]:
    """Every Python file of the project under ``root``, sorted."""
    return discover_project(root, exclude).files


def discover_project(root: Path, exclude: Sequence[str] = ()) -> Discovery:
    """Every Python file of the project under ``root``, sorted, and what was skipped."""
    root = root.absolute()
    _package_of.cache_clear()  # folders are read afresh on every run
    _folder_skipped.cache_clear()
    folders: list[Skipped] = []
    files = _git_files(root, folders)
    if files is None:
        folders.clear()
        files = _walk_files(root, folders)
    out = []
    top = str(root)
    real_top = os.path.realpath(top)
    excluded = compiled(tuple(exclude))
    skipped = [
        s
        for s in folders
        if not _folder_skipped(top, _rel(s.path, top))
        and not excluded.matches(_rel(s.path, top), is_dir=True)
    ]
    for f in files:
        name = str(f)
        rel = name[len(top) + 1 :] if name.startswith(top + os.sep) else str(f.relative_to(root))
        rel = rel.replace(os.sep, "/")
        if _skipped(rel.split("/"), root) or excluded.matches(rel):
            continue
        if not is_utf8(name):
            skipped.append(Skipped(f, "the file name is not valid UTF-8"))
            continue
        kind = file_kind(name, real_top)
        if kind == "file":
            out.append(f)
    return Discovery(sorted(out), skipped)


def _rel(path: Path, top: str) -> str:
    name = str(path)
    return name[len(top) + 1 :].replace(os.sep, "/") if name.startswith(top + os.sep) else ""


def is_utf8(name: str) -> bool:
    """Whether a path decoded from the file system is valid UTF-8 (else it holds the
    surrogates of ``surrogateescape``, which no report, cache key or JSON can carry)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def file_kind(name: str, real_root: str) -> str:
    """``file`` for a regular file, or a symlink to one inside ``real_root`` (the
    resolved root); ``outside`` for a symlink leading out of it; ``gone`` when it does
    not exist (deleted but still in git's index); ``other`` otherwise (a folder, a FIFO:
    reading one would block). A file that cannot even be looked at (its folder is not
    searchable) counts as ``file``: reading it fails, and that is reported."""
    try:
        info = os.lstat(name)
    except FileNotFoundError:
        return "gone"
    except OSError:
        return "file"
    if stat.S_ISLNK(info.st_mode):
        if not inside(os.path.realpath(name), real_root):
            return "outside"
        try:
            info = os.stat(name)
        except OSError:
            return "gone"  # a dangling link
    return "file" if stat.S_ISREG(info.st_mode) else "other"


def named_file_kind(name: str, real_root: str) -> str:
    """:func:`file_kind` of a path named on the command line, which may also lead out
    of the project through a symlinked folder (``app/vendor -> /etc``) that discovery
    never enters; a regular file outside the root named as it is stays a ``file``."""
    kind = file_kind(name, real_root)
    real = os.path.realpath(name)
    if kind == "file" and real != os.path.abspath(name) and not inside(real, real_root):
        return "outside"
    return kind


def inside(real: str, real_root: str) -> bool:
    """Whether resolved path ``real`` is ``real_root`` or under it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


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


def _distribution_root(folder: str) -> bool:
    """A folder that is installed as a project of its own: its packages are imported
    from it, not through the folders above it."""
    return any(os.path.exists(os.path.join(folder, n)) for n in ("setup.py", "pyproject.toml"))


@lru_cache(maxsize=4096)
def _package_of(folder_name: str, root_name: str) -> str | None:
    """The dotted package name of a folder (``None`` when no package holds it and it is
    not the root). Asked once per folder: a project's files share few folders, and the
    editor path checks the whole project on every save.

    The name starts at the topmost package above the folder within the root, through
    folders without ``__init__.py`` on the way: Python imports a folder without one that
    lies inside a package as a namespace package (``pkg/app/`` with no ``__init__.py``,
    ``pkg/app/migrations/__init__.py``: ``pkg.app.migrations``, which its relative
    imports, ``from ...conf import x``, count from). Outside the root, and at a folder
    that is a distribution of its own (a plugin with its ``setup.py`` or
    ``pyproject.toml``, installed by itself), the name stops at the first folder that
    is not a package."""
    folder, root = folder_name, root_name
    inside = folder == root or folder.startswith(root.rstrip(os.sep) + os.sep)

    def is_package(name: str) -> bool:
        return os.path.exists(os.path.join(name, "__init__.py"))

    parts: list[str] = []
    name: str | None = None
    while folder != os.path.dirname(folder):
        if is_package(folder):
            parts.append(os.path.basename(folder))
            name = ".".join(reversed(parts))
        elif folder == root or not inside or _distribution_root(folder):
            break
        else:
            parts.append(os.path.basename(folder))  # named only if a package lies above
        if folder == root:
            break
        folder = os.path.dirname(folder)
    if name is None:
        return "" if folder_name == root else None
    return name

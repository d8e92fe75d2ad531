"""Where a project starts, found the same way by every entry point.

The CLI, the flake8 plugin and pre-commit all check files of one project, and
the engine reads the whole project under this root (models, helpers, tasks).
They must agree on the root, or the same file would get different findings in
the editor and in CI; so the walk lives here, once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from idemlint.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
"""A folder holding any of these is a project root."""


def start_folder(paths: Sequence[Path]) -> Path:
    """The folder the walk starts from: the first checked path (or its folder), else the cwd."""
    first = (paths[0] if paths else Path.cwd()).absolute()
    if os.path.isdir(first):
        return first
    return first.parent


def find_project_root(paths: Sequence[Path]) -> Path:
    """The nearest ancestor of the first checked path that holds a root marker.

    Falls back to the first path's own folder, so a loose script still has a root.
    """
    start = start_folder(paths)
    for folder in (start, *start.parents):
        # os.path, not pathlib: a folder that cannot be searched is "no", not an error
        if any(os.path.exists(folder / marker) for marker in ROOT_MARKERS):
            return folder
    return start


def read_toml(file: Path) -> dict[str, Any]:
    """A TOML file's content; a syntax error is a config error naming the file."""
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"invalid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})", file=file
        ) from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply to read", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", file=file) from None


def idemlint_table(data: dict[str, Any]) -> dict[str, Any] | None:
    """The ``[tool.idemlint]`` table of a parsed pyproject, if it has one."""
    tool = data.get("tool")
    if isinstance(tool, dict):
        table = tool.get("idemlint")
        if isinstance(table, dict):
            return table
    return None


def find_config_file(paths: Sequence[Path]) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.idemlint]`` table, walking up.

    A ``pyproject.toml`` without the table does not stop the walk (a sub-package
    of a monorepo is configured from the top); a ``.git`` folder does, so the
    walk never leaves the repository being checked.
    """
    start = start_folder(paths)
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if os.path.isfile(candidate) and idemlint_table(read_toml(candidate)) is not None:
            return candidate
        if os.path.exists(folder / ".git"):
            return None
    return None


def path_from_root(path: str, root: Path, *, cwd: Path) -> str:
    """A finding's path relative to the project root, ``/``-separated (as globs are written).

    Falls back to the absolute path for a file outside the root.
    """
    absolute = Path(os.path.normpath(Path(path) if Path(path).is_absolute() else cwd / path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        resolved = absolute.resolve()
        try:
            return resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            return resolved.as_posix()

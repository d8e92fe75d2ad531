"""What a run is asked to check, after the configuration had its say: ``force-exclude``
on the paths named on the command line, and the warnings when nothing is left.

pre-commit, flake8 and editors always name the files to check, and a named file is
checked even when ``exclude`` matches it (so that ``idemlint check legacy/old.py``
does what it says). ``force-exclude`` (ruff's option) turns that off: ``exclude``
then applies to named paths too. A configuration that leaves nothing to check or no
rule to report passes silently otherwise, which reads as "all clean": hence the
warnings, which go to stderr and never change the exit code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from idemlint.config import Config
from idemlint.report.selection import rule_enabled


def force_excluded(paths: Sequence[Path], config: Config) -> tuple[list[Path], list[Path]]:
    """``paths`` split into those to check and those ``force-exclude`` drops."""
    if not config.force_exclude:
        return list(paths), []
    kept: list[Path] = []
    dropped: list[Path] = []
    for path in paths:
        (dropped if config.excluded(path) else kept).append(path)
    return kept, dropped


def _where(config: Config) -> str:
    return str(config.source) if config.source is not None else "the configuration"


def _patterns(config: Config) -> tuple[str, str]:
    """The exclude keys in use, and the verb's ending that agrees with them."""
    pairs = (("exclude", config.exclude), ("extend-exclude", config.extend_exclude))
    keys = [key for key, patterns in pairs if patterns] or ["exclude"]
    return " and ".join(f"`{key}`" for key in keys), "" if len(keys) > 1 else "s"


def nothing_checked(
    named: Sequence[Path], dropped: Sequence[Path], config: Config, *, files_checked: int
) -> str | None:
    """The warning for a run that checked no file, saying why; None when files were checked.

    ``named`` are the paths the run was given, ``dropped`` those ``force-exclude`` left out.
    """
    if files_checked:
        return None
    shown = ", ".join(str(p) for p in named) or "."
    keys, s = _patterns(config)
    if dropped and len(dropped) == len(named):
        return (
            f"nothing to check: {keys} in {_where(config)} match{'es' if s else ''} every "
            f"path given ({shown}) and force-exclude is on"
        )
    if config.exclude or config.extend_exclude:
        hidden = _python_files_under(named or [Path(".")], config)
        if hidden:
            return (
                f"nothing to check: {keys} in {_where(config)} leave{s} none of the "
                f"{hidden} Python file{'s' if hidden != 1 else ''} under {shown} "
                "(patterns are .gitignore lines, relative to the project root)"
            )
    return f"no Python file found under {shown}"


def _python_files_under(named: Sequence[Path], config: Config) -> int:
    """How many Python files discovery would find under ``named`` without the excludes."""
    from idemlint.lint.files.discovery import discover

    targets = [os.path.abspath(p) for p in named]
    count = 0
    for file in discover(config.root):
        name = str(file)
        if any(name == t or name.startswith(t.rstrip(os.sep) + os.sep) for t in targets):
            count += 1
    return count


def no_rule_selected(config: Config) -> str | None:
    """The warning for a configuration under which no rule of the catalog is reported."""
    from idemlint.catalog import load_catalog

    rules = [rule for rule in load_catalog() if not rule.startswith("IDM0")]
    if not rules or any(rule_enabled(rule, config) for rule in rules):
        return None
    return (
        f"nothing to report: `select`, `extend-select` and `ignore` (in {_where(config)} "
        "or on the command line) leave no rule on"
    )

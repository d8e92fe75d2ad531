"""The flake8 plugin: idemlint's findings in every editor that runs flake8.

One small adapter. The engine knows nothing about flake8; this class finds
the project the way the CLI does, asks the engine about one file (the engine
reads the rest of the project from its cache, for models and helpers in other
files) and applies the same suppressions and selection as ``idemlint check``,
so both report the same codes on the same lines.

flake8 imports this module on every run, even ``flake8 --select=F``, so it
imports nothing heavy until a file is actually checked.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from idemlint import __version__

if TYPE_CHECKING:
    from idemlint.config import Config
    from idemlint.findings import Finding


class _ProjectMemo:
    """Findings of a whole project, computed once per process when flake8 checks many files.

    An editor checks one file per process: only that file is analysed. ``flake8
    src/`` checks many files in the same process: from the second file on, the
    whole project is analysed once and each file's findings are served from
    here instead of re-running the cross-file analysis per file.
    """

    def __init__(self) -> None:
        self.calls: dict[Path, int] = {}
        self.findings: dict[Path, dict[Path, list[Finding]]] = {}


_memo = _ProjectMemo()

STDIN_NAMES = ("stdin", "-")
"""What flake8 names standard input when no ``--stdin-display-name`` is given."""
STDIN_MODULE = "stdin.py"
"""The path standard input is checked as, in the current folder (a ``.py`` name: the
engine reads Python files only). flake8 prints its own display name, ``stdin``."""


class Plugin:
    """flake8 entry point ``IDM`` (see ``[project.entry-points."flake8.extension"]``)."""

    name = "idemlint"
    version = __version__
    enabled = True
    """False when the run selects codes and none of them can be IDM (``flake8 --select=F``):
    flake8 calls every installed plugin on every file, so skip the project analysis."""

    def __init__(self, tree: ast.AST, filename: str, lines: list[str]) -> None:
        # ``tree`` must be accepted: flake8 picks the plugin kind from the
        # parameter names. The engine parses with libcst, not this tree.
        self.filename = filename
        self.lines = lines

    @classmethod
    def parse_options(cls, options: object) -> None:
        select = [*(getattr(options, "select", None) or ())]
        select += [*(getattr(options, "extend_select", None) or ())]
        cls.enabled = not select or any(
            code.startswith("IDM") or "IDM".startswith(code) for code in select
        )

    def run(self) -> Iterator[tuple[int, int, str, type[Plugin]]]:
        path = Path(self.filename)
        if self.filename in STDIN_NAMES and not os.path.isfile(path):
            # ``flake8 -`` without ``--stdin-display-name``: flake8 calls the file
            # ``stdin``; answer for it as a module of the current folder's project
            path = Path(STDIN_MODULE)
        if not self.enabled or not (os.path.isfile(path) or os.path.isdir(path.parent)):
            return  # a display name in a folder that does not exist: no project to read
        text = "".join(self.lines)
        try:
            on_disk = same_text(path.read_bytes(), text)
        except OSError:
            on_disk = False
        # an editor piping its unsaved buffer (``flake8 --stdin-display-name=FILE -``):
        # the buffer stands for the file, the rest of the project is read from disk
        for finding in findings_for(path, None if on_disk else text):
            text = f"{finding.rule} [{finding.checklist}] {finding.message}"
            if finding.task:
                text += f" (task: {finding.task})"
            yield finding.line, max(finding.column - 1, 0), text, type(self)


def same_text(content: bytes, text: str) -> bool:
    """Whether flake8's ``text`` of a file is what the file holds: decoded as Python
    decodes it (a ``# -*- coding: latin-1 -*-`` file is not UTF-8), with flake8's
    universal newlines and without a byte-order mark."""
    from idemlint.lint.files.source import decoded_or_none

    decoded = decoded_or_none(content)
    if decoded is None:
        return False

    def plain(s: str) -> str:
        return s.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")

    return plain(decoded) == plain(text)


def findings_for(path: Path, source: str | None = None) -> list[Finding]:
    """The findings ``idemlint check <path>`` reports, for one file; with ``source``,
    for that text in place of the file's (an unsaved buffer)."""
    from idemlint.config import load_config
    from idemlint.report.selection import report_filter

    cwd = Path.cwd().absolute()
    absolute = Path(os.path.normpath(cwd / path))
    config = load_config([absolute])
    if config.force_exclude and config.excluded(absolute):
        return []  # flake8 and editors name every file: ``force-exclude`` is for them
    if source is not None:
        from idemlint.lint.run.engine import check

        sources = {absolute: source}
        result = check([absolute], config, jobs=1, sources=sources)
        return report_filter(result.findings, config, [absolute], cwd=cwd, sources=sources)
    calls = _memo.calls[config.root] = _memo.calls.get(config.root, 0) + 1
    if calls == 1:
        raw = _engine_findings([absolute], config)
    else:
        project = _memo.findings.get(config.root)
        if project is None:
            project = _by_file(_engine_findings([config.root], config), cwd)
            _memo.findings[config.root] = project
        raw = project.get(absolute, [])
    return report_filter(raw, config, [absolute], cwd=cwd)


def _engine_findings(paths: list[Path], config: Config) -> list[Finding]:
    from idemlint.lint.run.engine import check

    # One process: flake8 runs plugins in daemonic pool workers, which may not
    # start a pool of their own.
    return check(paths, config, jobs=1).findings


def _by_file(findings: list[Finding], cwd: Path) -> dict[Path, list[Finding]]:
    grouped: dict[Path, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(Path(os.path.normpath(cwd / finding.path)), []).append(finding)
    return grouped

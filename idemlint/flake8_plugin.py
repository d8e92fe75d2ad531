"""The flake8 plugin: idemlint's findings in every editor that runs flake8.

One small adapter. The engine knows nothing about flake8; this class finds
the project the way the CLI does, asks the engine about one file (the engine
reads the rest of the project from its cache, for models and helpers in other
files) and applies the same suppressions and selection as ``idemlint check``,
so both report the same codes on the same lines.

flake8 imports this module on every run, even ``flake8 --select=F``, so it
imports nothing heavy until a file is actually checked.

An editor names one file and waits a second or two. On a big project that idemlint
has never checked (no snapshot in its cache), the whole-project run takes longer than
that (about 20 s for 4,300 files), so the first call does not wait for it: it starts
that run in the background (``python -m idemlint.flake8_plugin --warm-up FILE``), waits
for it up to :data:`EDITOR_BUDGET` seconds, and otherwise answers with what it can
prove alone (the file's own parse error, if any) and one notice that the rest is not
checked yet. The next call answers from the snapshot the background run leaves.

Most calls come when nothing in the project changed since the last run (a file opened,
another one saved and checked already): those are answered from the quick record that
run left (:mod:`idemlint.lint.run.quick`), checked with stats only, without the engine.
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idemlint import __version__

if TYPE_CHECKING:
    from idemlint.config import Config
    from idemlint.findings import Finding
    from idemlint.lint.run.quick import Record


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
        self.records: dict[Path, Record | None] = {}
        """The quick record of each project, loaded (and found to match the disk) on the
        first call; None when it did not."""


_memo = _ProjectMemo()

STDIN_NAMES = ("stdin", "-")
"""What flake8 names standard input when no ``--stdin-display-name`` is given."""
STDIN_MODULE = "stdin.py"
"""The path standard input is checked as, in the current folder (a ``.py`` name: the
engine reads Python files only). flake8 prints its own display name, ``stdin``."""

EDITOR_BUDGET = 2.0
"""Seconds an editor's call (one file named) may spend on a project with no snapshot
before it answers without the rest of the project; ``--idemlint-budget`` sets it, 0
waits for the whole project."""

_LOADED = time.monotonic()
"""When flake8 loaded the plugin (at its start): the budget counts from here."""

COLD_SECONDS_PER_FILE = 0.002
"""A first run's time per Python file, on the fast side (saleor's 4,300 files take about
5 ms each on two cores): a project whose first run cannot end within the budget is not
waited for at all."""

FOREGROUND_FILES = 150
"""Projects of at most this many Python files are checked in the editor's call even
when cold: their whole run fits the budget (a fixture-sized project takes well under a
second), and the answer is then complete at once."""


class Plugin:
    """flake8 entry point ``IDM`` (see ``[project.entry-points."flake8.extension"]``)."""

    name = "idemlint"
    version = __version__
    enabled = True
    """False when the run selects codes and none of them can be IDM (``flake8 --select=F``):
    flake8 calls every installed plugin on every file, so skip the project analysis."""
    budget = EDITOR_BUDGET
    editor = False
    """flake8 was given one file (or standard input): an editor's call, which gets the
    budget. ``flake8 src/`` in CI checks the whole project, however long it takes."""

    @classmethod
    def add_options(cls, parser: Any) -> None:
        parser.add_option(
            "--idemlint-budget",
            type=float,
            default=EDITOR_BUDGET,
            parse_from_config=True,
            help="Seconds the first check of one file may wait for idemlint's first run on "
            "a big project before answering without it (0: wait). Default: %(default)s",
        )

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
        budget = getattr(options, "idemlint_budget", EDITOR_BUDGET)
        cls.budget = budget if isinstance(budget, (int, float)) else EDITOR_BUDGET
        names = [*(getattr(options, "filenames", None) or ())]
        cls.editor = len(names) == 1 and (names[0] in STDIN_NAMES or os.path.isfile(names[0]))

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
        budget = self.budget if self.editor else 0.0
        for finding in findings_for(path, None if on_disk else text, budget=budget):
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


def findings_for(path: Path, source: str | None = None, *, budget: float = 0.0) -> list[Finding]:
    """The findings ``idemlint check <path>`` reports, for one file; with ``source``,
    for that text in place of the file's (an unsaved buffer). With a ``budget`` (seconds)
    and a big project idemlint has not checked yet, the answer may come before the whole
    project is checked (see the module docstring)."""
    from idemlint.config import load_config
    from idemlint.report.selection import report_filter

    cwd = Path.cwd().absolute()
    absolute = Path(os.path.normpath(cwd / path))
    config = load_config([absolute])
    if config.force_exclude and config.excluded(absolute):
        return []  # flake8 and editors name every file: ``force-exclude`` is for them
    if source is None:
        quick = _quick_findings(absolute, config, cwd)
        if quick is not None:
            return report_filter(quick, config, [absolute], cwd=cwd)
    if budget > 0:
        early = _before_the_first_run(absolute, config, cwd, source, _LOADED + budget)
        if early is not None:
            return report_filter(early, config, [absolute], cwd=cwd)
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


def _quick_findings(path: Path, config: Config, cwd: Path) -> list[Finding] | None:
    """The file's findings from the project's quick record, when nothing in the project
    changed since the run that wrote it (:mod:`idemlint.lint.run.quick`): the common
    editor call, answered from stats without the analysis. Looked for once per process
    and project; None when it does not hold (then the engine runs, as always)."""
    root = config.root.absolute()
    if root not in _memo.records:
        from idemlint.lint.run import quick

        _memo.records[root] = None if _memo.calls.get(config.root) else quick.load(config, root)
    record = _memo.records[root]
    return record.findings(path, cwd) if record is not None else None


def _before_the_first_run(
    path: Path, config: Config, cwd: Path, source: str | None, deadline: float
) -> list[Finding] | None:
    """The answer for a project with no snapshot yet that is too big to check within the
    budget: its first run starts in the background (once: a second call finds it
    running), and is waited for until ``deadline``. None when the usual answer is due
    (there is a snapshot, the project is small, the background run finished in time);
    else the file's own parse error, if any, and one notice: the rest is not checked."""
    from idemlint.lint.run.engine import parse_error, project_size
    from idemlint.lint.run.reuse import cold_start, warming_up

    folder = cold_start(config, config.root)
    if folder is None:
        return None
    files = project_size(config)
    if files <= FOREGROUND_FILES:
        return None
    if not warming_up(folder):
        _start_warm_up(path, config.root)
    hopeless = time.monotonic() + files * COLD_SECONDS_PER_FILE > deadline
    if not hopeless and _wait_for_warm_up(folder, config, deadline):
        return None
    notice = _not_checked_yet(path, cwd, files)
    return [*parse_error(path, config, cwd, source), notice]


WARM_UP_MARGIN = 0.4
"""Seconds kept from the budget to answer once the background run is found finished
(a warm check of one file)."""


def _wait_for_warm_up(folder: Path, config: Config, deadline: float) -> bool:
    """Whether the background run finished (its snapshot is there) before ``deadline``."""
    from idemlint.lint.run.reuse import cold_start, warming_up

    time.sleep(0.1)  # (it takes the lock as it starts)
    while time.monotonic() < deadline - WARM_UP_MARGIN:
        if not warming_up(folder):
            return cold_start(config, config.root) is None
        time.sleep(0.05)
    return False


def _start_warm_up(path: Path, root: Path) -> None:
    """``python -m idemlint.flake8_plugin --warm-up PATH``, detached: it outlives flake8,
    and holds none of flake8's output open (an editor waits for that to close)."""
    import subprocess

    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with contextlib.suppress(OSError):  # (the next call tries again)
        subprocess.Popen(
            [sys.executable, "-m", "idemlint.flake8_plugin", "--warm-up", str(path)],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def _not_checked_yet(path: Path, cwd: Path, files: int) -> Finding:
    """The one notice of an answer that did not wait for the whole project."""
    from idemlint.findings import Finding, display_path

    return Finding(
        path=display_path(path, cwd),
        line=1,
        column=1,
        rule="IDM001",
        message=(
            f"Not checked yet: idemlint's first run on this project ({files} files) takes "
            "longer than an editor waits. It runs in the background; until it is done, "
            "this file's findings (and those that other files' tasks reach here) are "
            "not shown. The next check answers from it."
        ),
        end_line=1,
        end_column=2,
    )


def warm_up(path: Path) -> int:
    """The background run (``--warm-up``): the whole project of ``path`` checked once,
    filling the cache and leaving the snapshot the editor's next call reads. One at a
    time per cache (:func:`idemlint.lint.run.reuse.warming`); another already at it makes
    this one stop at once."""
    from idemlint.config import load_config
    from idemlint.lint.run.engine import check
    from idemlint.lint.run.reuse import cold_start, warming

    config = load_config([path])
    folder = cold_start(config, config.root)
    if folder is None:
        return 0  # (a snapshot appeared meanwhile, or there is no cache to fill)
    with warming(folder) as mine:
        if mine:
            check([config.root], config, cwd=config.root)
    return 0


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


if __name__ == "__main__":
    if sys.argv[1:2] == ["--warm-up"] and len(sys.argv) == 3:
        try:
            sys.exit(warm_up(Path(sys.argv[2])))
        except Exception:  # a detached run has nobody to tell: the next call tries again
            sys.exit(1)
    sys.exit(2)

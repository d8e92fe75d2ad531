"""The fenced code blocks of README.md and docs/, and what the suite does with each.

Every block is read by ``tests/test_doc_blocks.py``, by its language:

- ``python`` runs. The blocks of one page run in order, in one fresh folder (the
  reader's project), each in a fresh namespace: every name a block uses is imported
  or defined in that block, so any block can be copied and run on its own.

  - A block whose first line is ``# NAME.py`` is a file of the example: it is written
    to ``NAME.py``, imported once, and later blocks of the page import from it.
  - A block that defines ``test_*`` functions is a test file: pytest runs it, and
    every test in it must pass.
  - ``<!-- doc-test: django-shop -->`` before a block runs it inside the example shop
    (``fixtures/shop``, a Django + Celery project), as ``python manage.py shell``
    would, on a fresh PostgreSQL database with the shop's migrations applied.
  - ``<!-- doc-test: skip: REASON -->`` before a block marks a deliberate fragment:
    it is not run, and the suite reports it with its reason. Keep these few.
  - The local services are written as the machine has them: PostgreSQL
    ``127.0.0.1:5432`` database ``test``, MariaDB ``127.0.0.1:3306`` database ``test``,
    Redis ``127.0.0.1:6379``. The suite points those addresses at a database of its own
    on the same servers and at a Redis server of its own, made for the page and removed
    after it, so the fixed table names and keys of the docs never meet another run.
- ``bash``, ``console``, ``shell``: every command is run or checked. ``idemlint`` and
  ``flake8`` commands run in a copy of the example shop (from the shop's root, or from
  a folder holding ``fixtures/shop`` when the command names that path) and must not
  fail with a usage error; in a ``console`` block, the lines after a ``$ `` command are
  its output, compared with the real run (a ``...`` line stands for the lines left
  out). Other commands are checked against the repository: a ``pip install`` names
  this package or its extras, a script exists, the test command is ``.ci/run``'s.
- ``toml`` parses, and its ``[tool.idemlint]`` table passes idemlint's config loader.
- ``yaml`` parses; a ``.pre-commit-config.yaml`` passes pre-commit's own loader, and
  the ``idemlint`` commands of CI steps run like shell commands.
- ``ini`` parses, ``json`` parses (a baseline file loads with idemlint's reader),
  ``sql`` runs on a database of its own and must do what the store's own statements do.
- ``text`` is an output or message sample, not code: it is counted, not run.

``python tests/doc_blocks.py --write`` rewrites the output of every ``console`` block
from a real run, keeping how many lines each shows before and after its ``...``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "fixtures" / "shop"

SHELL = ("bash", "console", "shell", "sh")
CHECKED = ("yaml", "ini", "json")
LANGUAGES = ("python", "toml", "sql", "text", *SHELL, *CHECKED)
ELISION = "..."

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<what>[\w-]+)(?::\s*(?P<why>.*?))?\s*-->\s*$")
_FILE_BLOCK = re.compile(r"^#\s*(?P<name>[A-Za-z_]\w*)\.py\s*$")
_TEST_FUNCTION = re.compile(r"^(?:async\s+)?def\s+test_\w*\(", re.M)
MARKERS = ("skip", "django-shop")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: str
    """Path relative to the repository, with ``/``."""
    line: int
    """1-based line of the opening fence."""
    lang: str
    code: str
    markers: tuple[tuple[str, str], ...] = ()
    """``doc-test`` markers written just before the fence: (what, why)."""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def marker(self, what: str) -> str | None:
        """The reason given with marker ``what``, '' when it has none, None when absent."""
        for name, why in self.markers:
            if name == what:
                return why
        return None

    @property
    def skip_reason(self) -> str | None:
        return self.marker("skip")

    @property
    def file_name(self) -> str | None:
        """``jobs.py`` for a python block that starts with ``# jobs.py``."""
        first = self.code.split("\n", 1)[0]
        found = _FILE_BLOCK.match(first) if self.lang == "python" else None
        return f"{found.group('name')}.py" if found else None

    @property
    def is_test_file(self) -> bool:
        return self.lang == "python" and bool(_TEST_FUNCTION.search(self.code))


def pages() -> list[Path]:
    """README.md and every page under docs/ (the mkdocs hook is code, not a page)."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def parse(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, in order."""
    page = path.relative_to(REPO).as_posix()
    lines = path.read_text("utf-8").split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            text = lines[end]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            end += 1
        if end == len(lines):
            raise ValueError(f"{page}:{index + 1}: the code block is never closed")
        markers: list[tuple[str, str]] = []
        back = index - 1
        while back >= 0 and (lines[back].strip() == "" or _MARKER.match(lines[back])):
            found = _MARKER.match(lines[back])
            if found:
                markers.insert(0, (found.group("what"), found.group("why") or ""))
            back -= 1
        code = "\n".join(body) + "\n"
        blocks.append(Block(page, index + 1, opening.group("lang"), code, tuple(markers)))
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in parse(path)]


def category(block: Block) -> str:
    """``run``, ``check``, ``sample`` or ``skip``: what the suite does with the block."""
    if block.skip_reason is not None:
        return "skip"
    if block.lang == "python":
        return "run"
    if block.lang in SHELL:
        return "run" if any(runs(c) for c in commands(block)) else "check"
    if block.lang in ("toml", "sql"):
        return "run"
    if block.lang == "yaml":
        return "run" if yaml_commands(block.code) else "check"
    if block.lang in CHECKED:
        return "check"
    return "sample"


# --- shell blocks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command of a shell block, with the output a ``console`` block shows for it."""

    line: str
    output: tuple[str, ...] | None
    """The lines shown after a ``$ `` command (None: the block shows none)."""

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.line, comments=True)


def commands(block: Block) -> list[Command]:
    """The commands of a shell block; ``&&`` chains are split into their commands."""
    found: list[Command] = []
    lines = block.code.rstrip("\n").split("\n")
    prompted = any(line.startswith("$ ") for line in lines)
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if prompted and not line.startswith("$ "):
            continue
        text = line[2:] if prompted else line
        while text.endswith("\\") and index < len(lines):
            text = text[:-1] + " " + lines[index].strip()
            index += 1
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        output: list[str] | None = None
        if prompted:
            output = []
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index])
                index += 1
        parts = [part.strip() for part in text.split("&&")]
        for number, part in enumerate(parts):
            last = number == len(parts) - 1
            shown = tuple(output) if last and output else None
            found.append(Command(part, shown))
    return found


def runs(command: Command) -> bool:
    """Whether the suite runs ``command`` (idemlint and flake8) rather than checks it."""
    argv = command.argv
    if not argv:
        return False
    if argv[0] in ("idemlint", "flake8"):
        return True
    return argv[:3] in (["python", "-m", "idemlint"], ["python3", "-m", "idemlint"])


def yaml_commands(code: str) -> list[str]:
    """The ``idemlint`` commands in the ``run:`` and ``script:`` steps of a CI file."""
    found = []
    for line in code.split("\n"):
        step = re.match(r"^\s*(?:-\s+)?(?:run:\s*)?(?P<command>idemlint\s.*)$", line)
        if step:
            found.append(step.group("command").strip())
    return found


def shop_sandbox(folder: Path) -> Path:
    """A copy of the example shop at ``folder/fixtures/shop``; returns ``folder``."""
    target = folder / "fixtures" / "shop"
    shutil.copytree(
        SHOP, target, ignore=shutil.ignore_patterns(".idemlint_cache", "__pycache__", "*.sqlite3")
    )
    return folder


def command_cwd(sandbox: Path, command: Command) -> Path:
    """Where a command runs: the sandbox root when it names ``fixtures/``, else the shop."""
    return sandbox if "fixtures/" in command.line else sandbox / "fixtures" / "shop"


def run_command(
    command: Command, sandbox: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run an idemlint or flake8 command as the reader would, in the sandbox."""
    argv = command.argv
    if argv[0] == "idemlint":
        argv = [sys.executable, "-m", "idemlint", *argv[1:]]
    elif argv[0] == "flake8":
        argv = [sys.executable, "-m", "flake8", *argv[1:]]
    else:
        argv = [sys.executable, *argv[1:]]
    return subprocess.run(
        argv,
        cwd=command_cwd(sandbox, command),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def matches(shown: tuple[str, ...], real: list[str]) -> bool:
    """Whether ``shown`` is ``real`` where each ``...`` line stands for one or more lines."""
    segments: list[list[str]] = [[]]
    for line in shown:
        if line == ELISION:
            segments.append([])
        else:
            segments[-1].append(line)
    if len(segments) == 1:
        return list(shown) == real
    first, *middle, last = segments
    start, end = len(first), len(real) - len(last)
    if real[:start] != first or real[end:] != last or start >= end:
        return False
    for segment in middle:
        found = next(
            (
                at
                for at in range(start + 1, end - len(segment))
                if real[at : at + len(segment)] == segment
            ),
            None,
        )
        if found is None:
            return False
        start = found + len(segment)
    return start < end


def elide_like(shown: tuple[str, ...], real: list[str]) -> list[str]:
    """``real`` cut to the shape of ``shown``: as many lines before and after its ``...``."""
    if ELISION not in shown:
        return real
    head = shown.index(ELISION)
    tail = len(shown) - head - 1
    if head + tail >= len(real):
        return real
    return [*real[:head], ELISION, *real[len(real) - tail :]]


def clean_env() -> dict[str, str]:
    """The environment for commands: no CI markers or colour, no bytecode written."""
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "NO_COLOR", "FORCE_COLOR")
    }
    if "PYTHONPYCACHEPREFIX" not in env:  # (the suite's own folder keeps the tree clean)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def rewrite_console_outputs(work: Path) -> Iterator[str]:
    """Rewrite each ``console`` block's output from a real run; yields the pages changed."""
    for path in pages():
        text = path.read_text("utf-8")
        lines = text.split("\n")
        changed = False
        for block in reversed(parse(path)):
            if block.lang != "console" or not any(c.output for c in commands(block)):
                continue
            sandbox = shop_sandbox(work / f"{path.stem}-{block.line}")
            body: list[str] = []
            for command in commands(block):
                body.append(f"$ {command.line}")
                if not runs(command):
                    continue
                done = run_command(command, sandbox, clean_env())
                real = done.stdout.rstrip("\n").split("\n")
                if command.output is not None:
                    body += elide_like(command.output, real)
            start = block.line  # the fence's index + 1 is the first body line
            end = start + len(block.code.rstrip("\n").split("\n"))
            if lines[start:end] != body:
                lines[start:end] = body
                changed = True
        if changed:
            path.write_text("\n".join(lines), "utf-8")
            yield path.relative_to(REPO).as_posix()


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/doc_blocks.py --write")
    with tempfile.TemporaryDirectory() as scratch:
        for page in rewrite_console_outputs(Path(scratch)):
            print(f"rewrote {page}")

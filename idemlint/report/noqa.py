"""``idemlint check --add-noqa``: a ``# noqa: IDM...`` on the line of every current
finding, as ``ruff check --add-noqa`` writes them, so that a project can turn idemlint
on today and work through the comments later (``grep -rn "noqa: IDM"``).

What it writes and where:

* one directive per line, naming every rule found there (``# noqa: IDM301, IDM402``);
  a line that already has a ``# noqa: CODES`` comment gets its codes added to that
  list, and any other comment stays as it was, the directive after it;
* never on the tool's own notices (IDM0xx: a file that does not parse, an unused
  suppression), whose fix is not a suppression;
* never where a comment cannot go: a line that ends inside a string or continues
  with a backslash is reported instead, and the file is left for the other lines;
* only in regular files inside the project root (symlinks resolved): nothing outside
  the project is written. Files keep their encoding, byte-order mark, line endings
  and permissions, and are replaced atomically; a file that would no longer parse
  after the edit is not written.

Running it twice adds nothing the second time: the findings are suppressed by then.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import tempfile
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from idemlint.findings import Finding

_NOQA_CODES = re.compile(
    r"#\s*noqa\s*:\s*(?P<codes>[A-Z]+[0-9]+(?:(?:\s*,\s*|\s+)[A-Z]+[0-9]+)*)", re.I
)
"""A ``# noqa: CODES`` directive in a comment, the span of its code list."""


@dataclass
class NoqaResult:
    """What ``--add-noqa`` did."""

    added: int = 0
    """Lines that got a directive (or new codes in theirs)."""
    files: int = 0
    """Files written."""
    skipped: list[str] = field(default_factory=list)
    """``path:line: why`` of each finding no directive could be written for."""


def add_noqa(findings: Iterable[Finding], *, root: Path, cwd: Path) -> NoqaResult:
    """Write suppressions for ``findings`` (display paths, relative to ``cwd``)."""
    wanted: dict[str, dict[int, set[str]]] = {}
    shown: dict[str, str] = {}
    for finding in findings:
        if finding.rule.startswith("IDM0"):
            continue
        path = os.path.normpath(os.path.join(cwd, finding.path))
        wanted.setdefault(path, {}).setdefault(finding.line, set()).add(finding.rule)
        shown.setdefault(path, finding.path)
    result = NoqaResult()
    real_root = os.path.realpath(root)
    for path in sorted(wanted):
        name = shown[path]
        real = os.path.realpath(path)
        if not (real.startswith(real_root.rstrip(os.sep) + os.sep) and os.path.isfile(real)):
            result.skipped.append(f"{name}: not a file inside the project {root}, not written")
            continue
        added = _add_to_file(Path(real), wanted[path], name, result.skipped)
        if added:
            result.added += added
            result.files += 1
    return result


def _add_to_file(file: Path, wanted: dict[int, set[str]], name: str, skipped: list[str]) -> int:
    """Add the directives to one file; the number of lines changed (0: file untouched)."""
    try:
        data = file.read_bytes()
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (OSError, SyntaxError, UnicodeDecodeError, LookupError) as exc:
        skipped.append(f"{name}: cannot read it ({exc}), not written")
        return 0
    lines = io.StringIO(text, newline="").readlines()
    ends, comments = _line_ends(text)
    changed = 0
    for number, codes in sorted(wanted.items()):
        if number not in ends or number > len(lines):
            why = "ends inside a string or continues with a backslash"
            skipped.append(f"{name}:{number}: the line {why}; add `# noqa: ...` by hand")
            continue
        edited = _with_codes(lines[number - 1], sorted(codes), comments.get(number))
        if edited != lines[number - 1]:
            lines[number - 1] = edited
            changed += 1
    if not changed:
        return 0
    new_text = "".join(lines)
    if _parses(text) and not _parses(new_text):
        skipped.append(f"{name}: would no longer parse after the edit, not written")
        return 0
    _replace(file, new_text.encode(encoding))
    return changed


def _line_ends(text: str) -> tuple[set[int], dict[int, int]]:
    """Lines whose end a comment may follow (where a NEWLINE or NL token is), and the
    column of each line's comment. Lines inside a multi-line string or ending in a
    backslash have no such token."""
    ends: set[int] = set()
    comments: dict[int, int] = {}
    plain = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        for token in tokenize.generate_tokens(io.StringIO(plain).readline):
            if token.type in (tokenize.NEWLINE, tokenize.NL):
                ends.add(token.start[0])
            elif token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.start[1]
    except (tokenize.TokenError, SyntaxError):
        pass  # the lines read before the error still count
    return ends, comments


def _with_codes(line: str, codes: Sequence[str], comment_at: int | None) -> str:
    """``line`` with ``codes`` in its noqa directive: added to an existing one, or a new
    directive after the code and any comment. Line ending kept."""
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    if comment_at is not None:
        match = _NOQA_CODES.search(body, comment_at)
        if match is not None:
            present = {c.upper() for c in re.split(r"[\s,]+", match.group("codes"))}
            missing = [code for code in codes if code not in present]
            if not missing:
                return line
            end = match.end("codes")
            return body[:end] + ", " + ", ".join(missing) + body[end:] + ending
    return body.rstrip() + "  # noqa: " + ", ".join(codes) + ending


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _replace(file: Path, data: bytes) -> None:
    """Write ``data`` to ``file`` atomically, keeping its permissions."""
    handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        shutil.copymode(file, temporary)
        os.replace(temporary, file)
    except BaseException:
        os.unlink(temporary)
        raise

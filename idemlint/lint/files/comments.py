"""Inline suppression comments, read from a file's tokens: ``# idemlint: ignore[IDM301]``
and ``# noqa: IDM301``.

The analyzer reads them once per file and keeps them with the project snapshot, so an
unchanged file is not tokenized again; applying them to findings is the report's job
(:mod:`idemlint.report.suppression`). Comments are found with :mod:`tokenize`, never
with a regex over raw lines, so that a string holding ``"# noqa"`` is not mistaken for
a suppression.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field

_IDEMLINT = re.compile(r"#\s*idemlint:\s*ignore(?![\w-])(?:\[(?P<codes>[^\]]*)\])?", re.I)
_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
_SPLIT = re.compile(r"[,\s]+")


@dataclass
class Suppression:
    """One suppression comment (or one of two in a comment) and what it silenced."""

    line: int
    column: int
    """1-based column where the suppression starts."""
    end_column: int
    kind: str
    """``idemlint`` or ``noqa``: how the comment was written, echoed in IDM003."""
    codes: tuple[str, ...] | None
    """Codes or prefixes it silences; None silences every idemlint finding on the line."""
    reportable: bool
    """False for a bare ``# noqa``, which other linters share."""
    used: set[str] = field(default_factory=set)

    def silences(self, rule: str) -> bool:
        """Whether this suppression covers ``rule``; records the use."""
        if self.codes is None:
            self.used.add("*")
            return True
        hit = False
        for code in self.codes:
            if rule.startswith(code):
                self.used.add(code)
                hit = True
        return hit

    def unused_codes(self) -> tuple[str, ...] | None:
        """Codes that silenced nothing; ``("*",)`` for a blanket one; None when all used."""
        if not self.reportable:
            return None
        if self.codes is None:
            return None if self.used else ("*",)
        unused = tuple(code for code in self.codes if code not in self.used)
        return unused or None


def parse_suppressions(source: bytes) -> list[Suppression]:
    """Every idemlint-relevant suppression in a file's comments.

    Tokenizing stops at the first error (a file that does not parse); the
    comments before it still count.
    """
    found: list[Suppression] = []
    try:
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            if token.type == tokenize.COMMENT:
                found.extend(_from_comment(token.string, token.start[0], token.start[1]))
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        pass
    return found


def _from_comment(comment: str, line: int, col0: int) -> list[Suppression]:
    out: list[Suppression] = []
    for match in _IDEMLINT.finditer(comment):
        raw = match.group("codes")
        codes = None if raw is None else tuple(c.upper() for c in _SPLIT.split(raw) if c)
        out.append(
            Suppression(
                line=line,
                column=col0 + match.start() + 1,
                end_column=col0 + match.end() + 1,
                kind="idemlint",
                codes=codes,
                reportable=True,
            )
        )
    noqa = _NOQA.search(comment)
    if noqa is not None:
        raw = noqa.group("codes")
        if raw is None:
            codes_or_all: tuple[str, ...] | None = None
        else:
            codes_or_all = tuple(
                c.upper() for c in _SPLIT.split(raw) if c.upper().startswith("IDM")
            )
        if codes_or_all != ():  # a noqa naming only other tools' codes is not ours
            out.append(
                Suppression(
                    line=line,
                    column=col0 + noqa.start() + 1,
                    end_column=col0 + noqa.end() + 1,
                    kind="noqa",
                    codes=codes_or_all,
                    reportable=codes_or_all is not None,
                )
            )
    return out


def suppressions_in(data: bytes) -> list[Suppression]:
    """The suppressions in a file's bytes (tokenized only when one may be there)."""
    lowered = data.lower()
    if b"idemlint" not in lowered and b"noqa" not in lowered:
        return []  # the common case, without the cost of tokenizing
    return parse_suppressions(data)

"""Which SQL statements are writes, and to which table.

Only the statement's head is read: enough to name the verb and the table for
a report and a state snapshot, never a parser of the whole dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+)'
_QUALIFIED = rf"({_NAME}(?:\s*\.\s*{_NAME})?)"
_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*\n|/\*.*?\*/)+", re.S)
_HEADS = (
    ("INSERT", re.compile(rf"INSERT\s+(?:OR\s+\w+\s+|IGNORE\s+)?INTO\s+{_QUALIFIED}", re.I)),
    ("INSERT", re.compile(rf"REPLACE\s+INTO\s+{_QUALIFIED}", re.I)),
    ("UPDATE", re.compile(rf"UPDATE\s+(?:ONLY\s+)?{_QUALIFIED}", re.I)),
    ("DELETE", re.compile(rf"DELETE\s+FROM\s+(?:ONLY\s+)?{_QUALIFIED}", re.I)),
    ("MERGE", re.compile(rf"MERGE\s+INTO\s+{_QUALIFIED}", re.I)),
)
_RELATIVE = re.compile(r"\bSET\s.*?\b(\w+)\s*=\s*\(?\s*(?:\w+\.)?\1\s*[-+]", re.I | re.S)
_UPSERT = re.compile(r"\bON\s+CONFLICT\b|\bON\s+DUPLICATE\s+KEY\b", re.I)


@dataclass(frozen=True)
class Write:
    """A write statement: ``verb`` (INSERT/UPDATE/DELETE/MERGE) and its table."""

    verb: str
    table: str
    """Unquoted, possibly schema-qualified (``public.shop_payment``)."""
    parts: tuple[str, ...]
    """The table name's parts, unquoted, for quoting again in a snapshot."""
    upsert: bool = False
    relative: bool = False
    """``SET n = n - 1`` (or ``+``): the new value depends on the old one."""

    @property
    def label(self) -> str:
        return f"{self.verb} {self.table}" + (" (upsert)" if self.upsert else "")


def _unquote(name: str) -> str:
    if name[:1] in '"`[' and len(name) >= 2:
        return name[1:-1]
    return name


def classify(sql: str) -> Write | None:
    """The write ``sql`` performs, or None for reads, DDL and transaction control."""
    head = _COMMENTS.sub("", sql, count=1)
    if head[:4].upper() == "WITH":
        # a CTE in front of the write: look for the write after it
        found = re.search(r"\)\s*(INSERT|UPDATE|DELETE|MERGE)\b", head, re.I)
        if found is None:
            return None
        head = head[found.start(1) :]
    for verb, pattern in _HEADS:
        match = pattern.match(head)
        if match:
            parts = tuple(_unquote(p.strip()) for p in re.findall(_NAME, match.group(1)))
            relative = verb == "UPDATE" and bool(_RELATIVE.search(re.sub(r'["`\[\]]', "", head)))
            return Write(verb, ".".join(parts), parts, bool(_UPSERT.search(head)), relative)
    return None


__all__ = ["Write", "classify"]

"""The state a run leaves behind, and how two of them differ.

By default the state is read straight from the database: every table the
clean run wrote to, row by row. Two clean runs from the same start tell
which columns are noise - ids from a sequence that a rollback does not
rewind, timestamps, generated uuids - and those columns are left out of
every comparison; row counts always count. A user's ``state=`` callable
replaces all this with whatever it returns.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from idemlint.testing.effects import DB, Effect


class DbTarget(Protocol):
    """A database the task wrote to, readable table by table."""

    name: str

    def rows(self, parts: tuple[str, ...]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]: ...


@dataclass(frozen=True)
class Table:
    """One table's content: column names and rows."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


Snapshot = dict[str, Table]
"""Table display name -> content."""


class NonDeterministicTask(Exception):
    """Two clean runs from the same start left different row counts."""


def written_tables(effects: Iterable[Effect]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Display name -> (target name, table name parts) of every table written."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    targets = {e.target for e in effects if e.kind == DB and e.target}
    for effect in effects:
        if effect.kind != DB or effect.table is None or effect.target is None:
            continue
        name = effect.table if len(targets) == 1 else f"{effect.table} ({effect.target})"
        found.setdefault(name, (effect.target, tuple(effect.table.split("."))))
    return found


_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
WHEN = "<a timestamp>"
"""What every date and time becomes: *whether* a row has one is state, *when* is not."""


def _normalise(value: Any) -> Any:
    """Dates and times (objects, or ISO text as SQLite returns them) compare by presence only.

    Two runs a second apart would otherwise differ, and a calibration of two
    quick clean runs can land in the same second and miss it.
    """
    if isinstance(value, (datetime.date, datetime.time)):
        return WHEN
    if isinstance(value, str) and len(value) <= 40 and _TIMESTAMP.match(value):
        return WHEN
    return value


def take_snapshot(
    tables: dict[str, tuple[str, tuple[str, ...]]], targets: dict[str, DbTarget]
) -> Snapshot:
    snapshot: Snapshot = {}
    for name, (target_name, parts) in sorted(tables.items()):
        columns, rows = targets[target_name].rows(parts)
        snapshot[name] = Table(columns, tuple(tuple(_normalise(v) for v in row) for row in rows))
    return snapshot


def _column(table: Table, index: int) -> list[str]:
    return sorted(repr(row[index]) for row in table.rows)


def volatile_columns(a: Snapshot, b: Snapshot) -> dict[str, frozenset[int]]:
    """Columns whose values differ between two clean runs: noise, not state."""
    noise: dict[str, frozenset[int]] = {}
    for name, table in a.items():
        other = b.get(name)
        if other is None or len(other.rows) != len(table.rows):
            raise NonDeterministicTask(
                f"two clean runs from the same start left {len(table.rows)} and "
                f"{len(other.rows) if other else 0} rows in {name}; pass state= to say "
                "what must stay the same"
            )
        noise[name] = frozenset(
            i for i in range(len(table.columns)) if _column(table, i) != _column(other, i)
        )
    return noise


@dataclass(frozen=True)
class Projected:
    """A snapshot without its noisy columns, in a canonical row order."""

    tables: dict[str, tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]]


def project(snapshot: Snapshot, noise: dict[str, frozenset[int]]) -> Projected:
    tables = {}
    for name, table in snapshot.items():
        keep = [i for i in range(len(table.columns)) if i not in noise.get(name, frozenset())]
        columns = tuple(table.columns[i] for i in keep)
        rows = tuple(sorted((tuple(row[i] for i in keep) for row in table.rows), key=repr))
        tables[name] = (columns, rows)
    return Projected(tables)


def _value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class StateChange:
    """One way the state after a scenario differs from one clean run."""

    table: str | None
    message: str
    rows_before: int | None = None
    rows_after: int | None = None


def diff_projected(clean: Projected, actual: Projected) -> list[StateChange]:
    """What differs, table by table: row counts first, else the first changed values."""
    changes: list[StateChange] = []
    for name, (columns, rows) in clean.tables.items():
        _, other_rows = actual.tables.get(name, (columns, ()))
        if len(rows) != len(other_rows):
            changes.append(
                StateChange(
                    name, f"{name} rows {len(rows)} → {len(other_rows)}", len(rows), len(other_rows)
                )
            )
            continue
        if rows == other_rows:
            continue
        for row, other in zip(rows, other_rows, strict=True):
            if row != other:
                moved = [
                    f"{columns[i]} {_value(row[i])} → {_value(other[i])}"
                    for i in range(len(columns))
                    if row[i] != other[i]
                ]
                changes.append(StateChange(name, f"{name}: {', '.join(moved)}"))
                break
    return changes


def diff_custom(clean: Any, actual: Any) -> list[StateChange]:
    """The difference of two values of the user's ``state=`` callable."""
    if clean == actual:
        return []
    if isinstance(clean, dict) and isinstance(actual, dict):
        keys = sorted(set(clean) | set(actual), key=repr)
        moved = [
            f"{k} {_value(clean.get(k))} → {_value(actual.get(k))}"
            for k in keys
            if clean.get(k) != actual.get(k)
        ]
        return [StateChange(None, "state: " + ", ".join(moved))]
    return [StateChange(None, f"state {_value(clean)} → {_value(actual)}")]


StateFn = Callable[[], Any]

__all__ = [
    "DbTarget",
    "NonDeterministicTask",
    "Projected",
    "Snapshot",
    "StateChange",
    "StateFn",
    "Table",
    "diff_custom",
    "diff_projected",
    "project",
    "take_snapshot",
    "volatile_columns",
    "written_tables",
]

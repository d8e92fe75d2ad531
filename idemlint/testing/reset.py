"""Restoring the starting state between scenarios.

Three ways, in order of preference:

1. the user's ``reset`` callable (real commits stay real; after a crash
   "after COMMIT" the committed write is there for the retry to find);
2. Django without one: each scenario runs inside a transaction of the check
   (one per database alias) that is rolled back afterwards. The task's own
   outermost ``atomic`` block becomes a savepoint whose release is its
   commit, durable for the rest of the scenario, gone after it;
3. nothing to restore: the task wrote no database state (effects that leave
   no readable state - mail, HTTP, enqueues - are recorded, not performed).

Anything else cannot be restored automatically, and the check says so
(:class:`CannotReset`) rather than compare scenarios that started from
different states. ``idemlint.runtime`` keys claimed during a scenario are
deleted at every reset, since the store lives outside the rolled-back
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any


class CannotReset(Exception):
    """The check cannot bring the starting state back between scenarios."""


class Restorer:
    """Restores the starting state; :meth:`scope` wraps one scenario."""

    description = "nothing to restore"
    rolls_back: frozenset[str] = frozenset()
    """Database targets whose writes this restorer undoes."""

    def __init__(self) -> None:
        self._scenarios = 0
        self.runtime_keys: set[tuple[Any, str]] = set()

    @contextmanager
    def scope(self) -> Iterator[None]:
        if self._scenarios:
            self.restore()
        self._scenarios += 1
        yield

    def restore(self) -> None:
        self.forget_runtime_keys()

    def finish(self) -> None:
        """Leave the starting state behind once the check is done."""
        if self._scenarios:
            self.restore()

    def forget_runtime_keys(self) -> None:
        for store, key in sorted(self.runtime_keys, key=lambda sk: sk[1]):
            store.delete(key)
        self.runtime_keys.clear()

    def check(self, targets: Sequence[str]) -> None:
        """Raise :class:`CannotReset` for durable writes to databases it cannot restore."""
        left = sorted(t for t in targets if t not in self.rolls_back)
        if left:
            raise CannotReset(
                "idemlint.testing cannot restore the starting state between scenarios: the "
                f"task committed writes to {', '.join(left)}. Pass reset=, a callable that "
                "restores it (for SQLAlchemy: reset=idemlint.testing.table_snapshot(engine), "
                "taken before the check), or run the task on Django, whose writes the check "
                "rolls back itself."
            )


class UserReset(Restorer):
    """The user's ``reset`` callable, called before every scenario but the first."""

    def __init__(self, reset: Callable[[], Any]) -> None:
        super().__init__()
        self._reset = reset
        self.description = f"the reset callable {getattr(reset, '__qualname__', reset)!r}"

    def restore(self) -> None:
        self.forget_runtime_keys()
        self._reset()

    def check(self, targets: Sequence[str]) -> None:
        return None


class DjangoRollback(Restorer):
    """Each scenario inside a rolled-back transaction on each Django database alias."""

    def __init__(self, aliases: Sequence[str] | None) -> None:
        super().__init__()
        from django.db import connections  # type: ignore[import-untyped]

        if aliases is None:
            dummy = "django.db.backends.dummy"
            aliases = [
                a for a in connections if connections.settings[a].get("ENGINE", dummy) != dummy
            ]
        self.aliases = list(aliases)
        self.rolls_back = frozenset(f"django:{a}" for a in self.aliases)
        self.description = (
            "a transaction rolled back after each scenario on Django database "
            + ", ".join(repr(a) for a in self.aliases)
        )

    def narrow(self, used: set[str]) -> None:
        """After the clean run: wrap only the aliases the task queried."""
        self.aliases = [a for a in self.aliases if a in used]

    @contextmanager
    def scope(self) -> Iterator[None]:
        from django.db import transaction

        self.forget_runtime_keys()
        with ExitStack() as stack:
            for alias in self.aliases:
                block = transaction.atomic(using=alias)
                block._from_testcase = True  # lets the task open durable=True blocks inside
                try:
                    stack.enter_context(block)
                except Exception:  # unreachable or unconfigured (dummy) database:
                    continue  # a task that uses it fails its clean run with the real error
                stack.callback(transaction.set_rollback, True, using=alias)
            yield

    def finish(self) -> None:
        self.forget_runtime_keys()


def table_snapshot(engine: Any, tables: Sequence[str] | None = None) -> Callable[[], None]:
    """A ``reset`` for SQLAlchemy: capture ``tables`` (default: all) now, restore them on call.

    Restoring deletes every row and inserts the captured ones, in foreign-key
    order, in one transaction. Sequences are not rewound; the check treats
    ids as noise anyway.
    """
    from sqlalchemy import MetaData

    metadata = MetaData()
    metadata.reflect(bind=engine, only=list(tables) if tables is not None else None)
    ordered = metadata.sorted_tables
    with engine.connect() as conn:
        saved = {t.name: [dict(r._mapping) for r in conn.execute(t.select())] for t in ordered}

    def restore() -> None:
        with engine.begin() as conn:
            for table in reversed(ordered):
                conn.execute(table.delete())
            for table in ordered:
                if saved[table.name]:
                    conn.execute(table.insert(), saved[table.name])

    restore.__qualname__ = f"table_snapshot({engine.url.render_as_string(hide_password=True)})"
    return restore


__all__ = ["CannotReset", "DjangoRollback", "Restorer", "UserReset", "table_snapshot"]

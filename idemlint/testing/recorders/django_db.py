"""Django: database writes, commits and ``on_commit`` callbacks.

Writes are seen through ``connection.execute_wrapper`` (installed per attempt
on every connection of the thread). Commits are seen at the exit of
``transaction.atomic`` blocks: the outermost block the *task* opened is its
commit, whether it is a real COMMIT or - when the check wraps each scenario
in its own transaction to roll it back afterwards - a savepoint release.
Either way the writes are durable for the rest of the scenario, which is
what a crash "after COMMIT" must leave behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from idemlint.testing.effects import COMMIT, DB, Effect, Recording, active, mask
from idemlint.testing.recorders._patch import Patches
from idemlint.testing.recorders.sql import classify


class DjangoTarget:
    """Reads a table back through a Django connection (inside the scenario's transaction)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.name = f"django:{alias}"

    def rows(self, parts: tuple[str, ...]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        from django.db import connections  # type: ignore[import-untyped]

        connection = connections[self.alias]
        quoted = ".".join(connection.ops.quote_name(p) for p in parts)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {quoted}")  # names come from the task's own SQL
            columns = tuple(col[0] for col in cursor.description)
            return columns, [tuple(row) for row in cursor.fetchall()]


def _execute_wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    result = execute(sql, params, many, context)
    rec = active()
    if rec is None:
        return result
    rec.databases_used.add(context["connection"].alias)
    write = classify(sql)
    if write is None:
        return result
    connection = context["connection"]
    target = DjangoTarget(connection.alias)
    rec.targets.setdefault(target.name, target)
    cursor = context.get("cursor")
    rowcount = getattr(cursor, "rowcount", None)
    rec.point(
        Effect(
            DB,
            write.label,
            mask(write.label),
            table=write.table,
            verb=write.verb,
            relative=write.relative,
            rows=rowcount if isinstance(rowcount, int) and rowcount >= 0 else None,
            target=target.name,
        ),
        conn=connection,
    )
    return result


class DjangoHooks:
    """Patches ``Atomic`` and ``on_commit`` while installed; wraps execution per attempt."""

    def __init__(self, patches: Patches) -> None:
        from django.db import transaction
        from django.db.backends.base.base import BaseDatabaseWrapper  # type: ignore[import-untyped]

        self._on_commit_start: dict[int, int] = {}
        atomic = transaction.Atomic
        if patches.done(atomic, "__enter__"):
            return
        enter = atomic.__enter__
        exit_ = atomic.__exit__
        on_commit = BaseDatabaseWrapper.on_commit
        hooks = self

        def patched_enter(self: Any) -> None:
            rec = active()
            connection = transaction.get_connection(self.using)
            # The task's outermost block is a real transaction in production; inside the
            # check's rollback transaction it must still be undoable on its own, so a
            # savepoint=False block at that level gets a savepoint.
            force = (
                rec is not None
                and not self.savepoint
                and connection.in_atomic_block
                and not rec.in_transaction(connection)
            )
            if force:
                self.savepoint = True
            try:
                enter(self)
            finally:
                if force:
                    self.savepoint = False
            if rec is not None:
                rec.begin(connection)

        def patched_exit(self: Any, exc_type: Any, exc: Any, tb: Any) -> None:
            rec = active()
            connection = transaction.get_connection(self.using)
            try:
                exit_(self, exc_type, exc, tb)
            except BaseException:
                if rec is not None:
                    rec.end(connection, committed=False)
                raise
            if rec is None:
                return
            if rec.end(connection, committed=exc_type is None) > 0:
                rec.point(Effect(COMMIT, f"COMMIT ({connection.alias})", "COMMIT"))
                hooks.flush_on_commit(connection)

        def patched_on_commit(self: Any, func: Any, robust: bool = False) -> None:
            on_commit(self, func, robust)
            rec = active()
            if rec is not None and self.in_atomic_block and not rec.in_transaction(self):
                # outside any block of the task: Django would run it now, were it not
                # for the scenario's own rollback transaction around the task
                hooks.flush_on_commit(self)

        patches.replace(atomic, "__enter__", patched_enter)
        patches.replace(atomic, "__exit__", patched_exit)
        patches.replace(BaseDatabaseWrapper, "on_commit", patched_on_commit)

    def flush_on_commit(self, connection: Any) -> None:
        """Run the ``on_commit`` callbacks the task registered, as its commit would have."""
        if not connection.in_atomic_block:
            return  # a real commit: Django ran them itself
        start = self._on_commit_start.get(id(connection), len(connection.run_on_commit))
        pending = connection.run_on_commit[start:]
        del connection.run_on_commit[start:]
        for _sids, func, _robust in pending:
            func()

    @contextmanager
    def attempt(self, rec: Recording) -> Iterator[None]:
        """Record writes on every connection of this thread for one attempt."""
        from django.db import connections

        with ExitStack() as stack:
            for connection in connections.all():
                self._on_commit_start[id(connection)] = len(connection.run_on_commit)
                stack.enter_context(connection.execute_wrapper(_execute_wrapper))
            yield
        self._on_commit_start.clear()


__all__ = ["DjangoHooks", "DjangoTarget"]

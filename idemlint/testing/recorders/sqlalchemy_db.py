"""SQLAlchemy: database writes and commits, for Core connections and ORM sessions.

Writes are seen through the ``after_cursor_execute`` event of every engine
(``before_cursor_execute`` would fire for statements that then fail; a
failed statement is not an effect). SQLAlchemy has no "after commit" event
on a connection, so the connection's commit/rollback/savepoint methods are
wrapped while the check runs; a session's commit goes through them too.
"""

from __future__ import annotations

from typing import Any

from idemlint.testing.effects import COMMIT, DB, Effect, active, mask
from idemlint.testing.recorders._patch import Patches
from idemlint.testing.recorders.sql import classify


class SqlAlchemyTarget:
    """Reads a table back through a fresh connection of the engine (committed data)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = f"sqlalchemy:{engine.url.render_as_string(hide_password=True)}"

    def rows(self, parts: tuple[str, ...]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        quote = self.engine.dialect.identifier_preparer.quote
        quoted = ".".join(quote(p) for p in parts)
        with self.engine.connect() as conn:
            result = conn.exec_driver_sql(f"SELECT * FROM {quoted}")
            return tuple(result.keys()), [tuple(row) for row in result]


def _autocommit(conn: Any) -> bool:
    check = getattr(conn, "_is_autocommit_isolation", None)
    return bool(check()) if callable(check) else False


def _after_cursor_execute(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    rec = active()
    if rec is None:
        return
    write = classify(statement)
    if write is None:
        return
    target = SqlAlchemyTarget(conn.engine)
    rec.targets.setdefault(target.name, target)
    autocommit = _autocommit(conn)
    if not autocommit and not rec.in_transaction(conn):
        rec.begin(conn)  # SQLAlchemy began the transaction implicitly
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
        conn=None if autocommit else conn,
    )


class SqlAlchemyHooks:
    """The engine event and the transaction-method wrappers, while installed."""

    def __init__(self, patches: Patches) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Connection, Engine

        if patches.done(Connection, "_commit_impl"):
            return
        event.listen(Engine, "after_cursor_execute", _after_cursor_execute)
        self._event = event
        self._engine_cls = Engine
        commit = Connection._commit_impl
        rollback = Connection._rollback_impl
        savepoint = Connection._savepoint_impl
        rollback_to = Connection._rollback_to_savepoint_impl
        release = Connection._release_savepoint_impl

        def patched_commit(self: Any) -> None:
            try:
                commit(self)
            except BaseException:
                rec = active()
                if rec is not None:
                    rec.drop_transactions(self)
                raise
            rec = active()
            if rec is not None and rec.commit_all(self) > 0:
                rec.point(Effect(COMMIT, "COMMIT (sqlalchemy)", "COMMIT"))

        def patched_rollback(self: Any) -> None:
            rec = active()
            if rec is not None:
                rec.drop_transactions(self)
            rollback(self)

        def patched_savepoint(self: Any, name: str | None = None) -> str:
            result: str = savepoint(self, name)
            rec = active()
            if rec is not None:
                if not rec.in_transaction(self):
                    rec.begin(self)
                rec.begin(self)
            return result

        def patched_rollback_to(self: Any, name: str) -> None:
            rollback_to(self, name)
            rec = active()
            if rec is not None:
                rec.end(self, committed=False)

        def patched_release(self: Any, name: str) -> None:
            release(self, name)
            rec = active()
            if rec is not None:
                rec.end(self, committed=True)

        patches.replace(Connection, "_commit_impl", patched_commit)
        patches.replace(Connection, "_rollback_impl", patched_rollback)
        patches.replace(Connection, "_savepoint_impl", patched_savepoint)
        patches.replace(Connection, "_rollback_to_savepoint_impl", patched_rollback_to)
        patches.replace(Connection, "_release_savepoint_impl", patched_release)

    def uninstall(self) -> None:
        if hasattr(self, "_event"):
            self._event.remove(self._engine_cls, "after_cursor_execute", _after_cursor_execute)


__all__ = ["SqlAlchemyHooks", "SqlAlchemyTarget"]

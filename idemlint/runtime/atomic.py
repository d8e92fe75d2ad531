"""Atomic steps: a step's database writes and its record commit in one transaction.

A plain :func:`~idemlint.runtime.step` runs its side effect, then records the
result in the store: a worker that dies between the two repeats the effect on
the retry. When the effect *is* a database write, the window can be closed:
:func:`atomic_step` runs ``fn`` in a transaction on the caller's connection
(``using=``: a Django alias, a SQLAlchemy ``Session`` or ``Connection``),
writes the step record in that same transaction and commits both. A crash
leaves both or neither; the retry replays the step or runs it once. This is
the "atomic phase" of Brandur Leach's Stripe-style idempotency keys.

That needs the store's tables in the database ``using`` talks to, so the
record write is an ordinary statement of the caller's transaction. It is
fenced like every store write, *inside* the transaction: it inserts the step
from the record row only while that row still names this holder's epoch and
owner token, and it locks the row until the commit (``FOR SHARE`` /
``LOCK IN SHARE MODE``; SQLite's writer holds the whole file), so no takeover
can commit between the check and the commit. A holder that lost its lease
inserts nothing, and the whole transaction rolls back: its writes vanish.

The same machinery serves whole-task atomic mode (``@idempotent(atomic_using=...)``),
where the completion is the fenced statement and the function's writes are
the transaction: :func:`run_atomic_task` and :func:`arun_atomic_task`.

The check that ``using`` is the store's database is exact and free: the
claim wrote a random owner token through the store's connection, and the
fenced statement finds that token through the caller's. When it finds no
row, the store is asked (after the rollback) whether this holder still holds
the key: if it does, the two connections see different databases, which is a
:class:`ConfigurationError`, not a lost lease.

Nothing here imports Django or SQLAlchemy until a caller passes their objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from idemlint.runtime.errors import ConfigurationError, IdempotencyError, LeaseLost, StoreError
from idemlint.runtime.execution import Execution
from idemlint.runtime.observability import STEP_REPLAY, STEP_RUN, RuntimeEvent, emit
from idemlint.runtime.serializers import deserialize
from idemlint.runtime.steps import _encode, _execution_for
from idemlint.runtime.stores._sql import SQLStore, describe_error
from idemlint.runtime.stores.base import IN_PROGRESS, Lease, Store

R = TypeVar("R")

_NAMED = re.compile(r"%\((\w+)\)s")
_DIALECTS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
_STORE_DIALECT = {"postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}


# -- the caller's connection ------------------------------------------------------------


@dataclass(frozen=True)
class Using:
    """What ``using=`` named, reduced to what an atomic step needs of it."""

    kind: str
    """``django``, ``sqlalchemy`` or ``sqlalchemy-async``."""
    target: Any
    """The Django alias, or the SQLAlchemy Session / Connection (sync or async)."""
    dialect: str
    """``postgresql``, ``mysql`` or ``sqlite``."""
    sqlite_file: str | None
    """The database file of a SQLite connection (None: in memory)."""
    label: str

    @property
    def is_async(self) -> bool:
        return self.kind == "sqlalchemy-async"


def resolve_using(using: Any) -> Using:
    """Identify ``using``: a Django alias or connection, a SQLAlchemy Session or Connection,
    or their asyncio forms; anything else is a :class:`ConfigurationError`."""
    if isinstance(using, str):
        return _django_using(using)
    if "django" in sys.modules:
        from django.db.backends.base.base import (  # type: ignore[import-untyped]
            BaseDatabaseWrapper,
        )

        if isinstance(using, BaseDatabaseWrapper):
            return _django_using(str(using.alias))
    if "sqlalchemy" in sys.modules:
        found = _sqlalchemy_using(using)
        if found is not None:
            return found
    raise ConfigurationError(
        f"using={using!r} is not a database connection atomic_step can run in: pass a Django "
        "database alias, a SQLAlchemy Session or Connection, or (for aatomic_step) an "
        "AsyncSession or AsyncConnection"
    )


def _django_using(alias: str) -> Using:
    try:
        from django.db import connections  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigurationError(
            f"using={alias!r} names a Django database alias, but Django cannot be imported ({exc})"
        ) from exc
    try:
        connection = connections[alias]
    except Exception as exc:  # ConnectionDoesNotExist, ImproperlyConfigured
        raise ConfigurationError(f"using={alias!r} is not a Django database alias: {exc}") from exc
    dialect = _DIALECTS.get(str(connection.vendor))
    if dialect is None:
        raise ConfigurationError(
            f"Django database {alias!r} is {connection.vendor}; atomic steps run on PostgreSQL, "
            "MariaDB/MySQL or SQLite"
        )
    name = connection.settings_dict.get("NAME")
    return Using(
        "django",
        alias,
        dialect,
        _sqlite_file(name) if dialect == "sqlite" else None,
        (f"Django database {alias!r}"),
    )


def _sqlalchemy_using(using: Any) -> Using | None:
    from sqlalchemy.engine import Connection

    kind = "sqlalchemy"
    session_type = _loaded("sqlalchemy.orm", "Session")  # a Session means the ORM is loaded
    if session_type is not None and isinstance(using, session_type):
        engine = using.get_bind().engine
    elif isinstance(using, Connection):
        engine = using.engine
    else:
        if "sqlalchemy.ext.asyncio" not in sys.modules:
            return None
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        kind = "sqlalchemy-async"
        if isinstance(using, AsyncSession):
            engine = using.sync_session.get_bind().engine
        elif isinstance(using, AsyncConnection):
            engine = using.sync_engine
        else:
            return None
    name = str(engine.dialect.name)
    dialect = _DIALECTS.get(name)
    if dialect is None:
        raise ConfigurationError(
            f"{type(using).__name__} on {name}: atomic steps run on PostgreSQL, MariaDB/MySQL "
            "or SQLite"
        )
    sqlite_file = _sqlite_file(engine.url.database) if dialect == "sqlite" else None
    return Using(kind, using, dialect, sqlite_file, f"{type(using).__name__} on {name}")


def _loaded(module: str, name: str) -> Any:
    """``module.name`` if the module is imported already, else None (importing
    ``sqlalchemy.orm`` only to learn that a Connection is not a Session costs 0.25 s)."""
    loaded = sys.modules.get(module)
    return None if loaded is None else getattr(loaded, name, None)


def _sqlite_file(name: object) -> str | None:
    """The real path of a SQLite database name, or None for an in-memory database."""
    text = "" if name is None else str(name)
    if not text or text == ":memory:" or "mode=memory" in text:
        return None
    if text.startswith("file:"):
        text = text[len("file:") :].split("?", 1)[0]
    return os.path.realpath(text)


def check_store(store: Store, using: Using) -> SQLStore:
    """The store as a SQL store in ``using``'s database, or a ConfigurationError saying why not.

    The dialect and (for SQLite) the file are compared here, before anything
    runs; whether a PostgreSQL or MySQL connection reaches the store's database
    is proved by the fenced statement itself (see the module docstring).
    """
    if not isinstance(store, SQLStore):
        raise ConfigurationError(
            f"an atomic step needs its store in the same database as using= ({using.label}), "
            f"but the store is {store.url}: its records cannot be written in a database "
            "transaction, so they could not commit together with the step's writes. Open the "
            "store on that database (open_store('postgresql://...'), 'mysql://...' or "
            "'sqlite:///same-file.db')"
        )
    dialect = _STORE_DIALECT.get(store.dialect)
    if dialect != using.dialect:
        raise ConfigurationError(
            f"an atomic step needs its store in the same database as using= ({using.label}), "
            f"but the store is a {store.dialect} store ({store.url}); the step record would "
            "commit in another database than the step's writes"
        )
    if dialect == "sqlite":
        path = getattr(store, "path", None)
        mine = os.path.realpath(str(path)) if path else None
        if mine is None or using.sqlite_file is None or mine != using.sqlite_file:
            raise ConfigurationError(
                f"an atomic step needs its store in the same database as using= ({using.label}, "
                f"file {using.sqlite_file or 'in memory'}), but the store is {store.url}: "
                "one SQLite file must hold both (an in-memory database cannot be shared)"
            )
    return store


def _refuse_open_transaction(using: Using, what: str) -> None:
    """An atomic step owns its transaction: it must begin it and commit it."""
    if using.kind == "django":
        from django.db import connections

        connection = connections[using.target]
        open_ = bool(connection.in_atomic_block) or not connection.get_autocommit()
    else:
        open_ = bool(using.target.in_transaction())
    if open_:
        raise ConfigurationError(
            f"{what} needs {using.label} outside a transaction: it begins the transaction "
            "and commits the step record with the step's writes, and nothing else. In an "
            "outer transaction the commit would be someone else's, and the record row would "
            "stay locked until then. Commit or roll back first, or pass a fresh Session"
        )


# -- statements on the caller's connection ------------------------------------------------


def _positional(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``%(name)s`` placeholders as ``%s`` with the values in order (Django's cursors)."""
    values: list[Any] = []

    def take(match: re.Match[str]) -> str:
        values.append(params[match.group(1)])
        return "%s"

    return _NAMED.sub(take, sql), values


def _colon(sql: str) -> str:
    """``%(name)s`` placeholders as ``:name`` (SQLAlchemy's ``text()``)."""
    return _NAMED.sub(r":\1", sql)


class _Transaction:
    """The caller's transaction: begin/commit, and the few statements this module runs."""

    def __init__(self, using: Using) -> None:
        self.using = using

    @contextlib.contextmanager
    def begin(self) -> Iterator[None]:
        if self.using.kind == "django":
            from django.db import transaction

            with transaction.atomic(using=self.using.target):
                yield
        else:
            with self.using.target.begin():
                yield

    def rowcount(self, sql: str, params: dict[str, Any]) -> int:
        if self.using.kind == "django":
            from django.db import connections

            text, values = _positional(sql, params)
            with connections[self.using.target].cursor() as cursor:
                cursor.execute(text, values)
                return int(cursor.rowcount)
        from sqlalchemy import text as sa_text

        return int(self.using.target.execute(sa_text(_colon(sql)), params).rowcount)

    def first(self, sql: str, params: dict[str, Any]) -> Any:
        if self.using.kind == "django":
            from django.db import connections

            text, values = _positional(sql, params)
            with connections[self.using.target].cursor() as cursor:
                cursor.execute(text, values)
                return cursor.fetchone()
        from sqlalchemy import text as sa_text

        return self.using.target.execute(sa_text(_colon(sql)), params).first()


class _AsyncTransaction:
    """The same for SQLAlchemy's AsyncSession / AsyncConnection."""

    def __init__(self, using: Using) -> None:
        self.using = using

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        async with self.using.target.begin():
            yield

    async def rowcount(self, sql: str, params: dict[str, Any]) -> int:
        from sqlalchemy import text as sa_text

        result = await self.using.target.execute(sa_text(_colon(sql)), params)
        return int(result.rowcount)

    async def first(self, sql: str, params: dict[str, Any]) -> Any:
        from sqlalchemy import text as sa_text

        result = await self.using.target.execute(sa_text(_colon(sql)), params)
        return result.first()


class _NotWritten(Exception):
    """The fenced statement matched no row; raised inside the transaction to roll it back.

    ``recorded`` is the stored result when the step turned out to be recorded
    already in this run (the first recorded result stands), else None.
    """

    def __init__(self, recorded: bytes | None = None) -> None:
        super().__init__("fenced statement matched no row")
        self.recorded = recorded


def _fence_params(lease: Lease) -> dict[str, Any]:
    return {"key": lease.key, "epoch": lease.epoch, "owner": lease.owner}


def _missing_table(exc: BaseException) -> bool:
    """Whether a driver error (or one it wraps) says a table does not exist."""
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if getattr(err, "sqlstate", None) == "42P01" or getattr(err, "pgcode", None) == "42P01":
            return True
        args = getattr(err, "args", ())
        if args and args[0] == 1146:  # MySQL: table doesn't exist
            return True
        if "no such table" in str(err):
            return True
        err = getattr(err, "orig", None) or err.__cause__
    return False


def _statement_error(
    store: SQLStore, using: Using, what: str, key: str, exc: Exception
) -> Exception:
    """A failure of one of our statements on the caller's connection, said plainly."""
    if isinstance(exc, IdempotencyError):
        return exc
    if _missing_table(exc):
        return ConfigurationError(
            f"{what} of key {key!r}: the store's table {store.table!r} is not in the database "
            f"of {using.label} ({describe_error(exc)}); an atomic step needs its store in the "
            "same database. Nothing was committed",
            key=key,
        )
    return StoreError(
        f"{store.dialect} store {store.table!r}: {what} of key {key!r} on {using.label} failed: "
        f"{describe_error(exc)}; the transaction was rolled back, nothing was committed",
        key=key,
        transient=isinstance(exc, store.connection_errors) or "OperationalError" in repr(exc),
    )


def _not_written(store: Store, using: Using, lease: Lease, what: str) -> Exception:
    """Why the fenced statement matched no row: this holder was fenced off, or ``using`` is
    not the store's database. Asked of the store after the rollback (on SQLite the
    caller's transaction held the write lock until then)."""
    from idemlint.runtime.stores._sql import _lease_lost

    row = store.get(lease.key)
    if (
        row is not None
        and row.owner == lease.owner
        and row.epoch == lease.epoch
        and row.status == IN_PROGRESS
    ):
        return ConfigurationError(
            f"{what} of key {lease.key!r}: {using.label} does not see the record the store "
            f"holds for this call ({store.url}), so it is another database (or another schema "
            "search path); an atomic step needs its store in the same database. Nothing was "
            "committed",
            key=lease.key,
        )
    return _lease_lost(lease, what, row)


# -- atomic_step ----------------------------------------------------------------------------


def _replay(execution: Execution, name: str, data: bytes) -> Any:
    emit(
        RuntimeEvent(STEP_REPLAY, execution.key, execution.epoch, extra={"step": name}),
        execution.hooks,
    )
    return deserialize(execution.serializer, data, key=execution.key, what=f"step {name!r}")


def _prepare(
    execution: Execution, name: str, using: Any, *, want_async: bool
) -> tuple[Using, SQLStore]:
    resolved = resolve_using(using)
    if resolved.is_async != want_async:
        raise ConfigurationError(
            f"{'aatomic_step' if want_async else 'atomic_step'}({name!r}) got {resolved.label}; "
            f"use {'atomic_step' if want_async else 'await aatomic_step'}(...) with it",
            key=execution.key,
        )
    store = check_store(execution.store, resolved)
    _refuse_open_transaction(resolved, f"atomic_step({name!r})")
    return resolved, store


def atomic_step(name: str, fn: Callable[..., R], /, *args: Any, using: Any, **kwargs: Any) -> R:
    """Run ``fn(*args, **kwargs)`` in a transaction on ``using`` with its step record.

    ``using`` is a Django database alias (the step runs in
    ``transaction.atomic(using=...)``), or a SQLAlchemy ``Session`` or
    ``Connection`` outside a transaction (the step begins and commits one).
    ``fn`` does its writes through that connection (pass the session to it
    yourself). The step record is written in the same transaction, fenced by
    the lease, and the two commit together: a crash anywhere before the commit
    leaves neither, so the retry runs ``fn`` once; after it, the retry replays
    the stored result without calling ``fn``.

    The store must live in the same database (PostgreSQL, MariaDB/MySQL, or the
    same SQLite file), else :class:`ConfigurationError`. A holder fenced off
    by a takeover gets :class:`LeaseLost` and commits nothing. Only the
    database writes of ``fn`` are covered: an email or an HTTP call inside it
    happens whether or not the transaction commits (docs/runtime/steps.md).
    """
    execution = _execution_for(name)
    stored = execution._stored_steps()
    if name in stored:
        return cast(R, _replay(execution, name, stored[name]))
    resolved, store = _prepare(execution, name, using, want_async=False)
    execution._ensure_live()
    tx = _Transaction(resolved)
    lease = execution.lease
    params = {**_fence_params(lease), "name": name}
    what = f"atomic step {name!r}"
    started = time.perf_counter()
    try:
        with tx.begin():
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                raise ConfigurationError(
                    f"atomic_step({name!r}) got a coroutine; use 'await aatomic_step(...)'"
                )
            params["result"] = _encode(execution, name, value)
            try:
                if not tx.rowcount(store.atomic_step_sql(), params):
                    row = tx.first(store.atomic_step_recorded_sql(), params)
                    raise _NotWritten(None if row is None else bytes(row[0]))
            except (_NotWritten, IdempotencyError):
                raise
            except Exception as exc:
                raise _statement_error(store, resolved, what, lease.key, exc) from exc
    except _NotWritten as missed:
        if missed.recorded is not None:  # recorded in this run already: the first one stands
            return cast(R, _replay(execution, name, missed.recorded))
        error = _not_written(store, resolved, lease, what)
        if isinstance(error, LeaseLost):
            execution._mark_lost()
        raise error from None
    _ran(execution, name, started)
    return value


async def aatomic_step(
    name: str, fn: Callable[..., Awaitable[R] | R], /, *args: Any, using: Any, **kwargs: Any
) -> R:
    """:func:`atomic_step` for SQLAlchemy's ``AsyncSession`` / ``AsyncConnection``.

    ``fn`` may be a coroutine function or a plain one; the store's own calls
    run in a worker thread, the step's statements on ``using``.
    """
    execution = _execution_for(name)
    stored = await asyncio.to_thread(execution._stored_steps)
    if name in stored:
        return cast(R, _replay(execution, name, stored[name]))
    resolved, store = _prepare(execution, name, using, want_async=True)
    await asyncio.to_thread(execution._ensure_live)
    tx = _AsyncTransaction(resolved)
    lease = execution.lease
    params = {**_fence_params(lease), "name": name}
    what = f"atomic step {name!r}"
    started = time.perf_counter()
    try:
        async with tx.begin():
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
            params["result"] = _encode(execution, name, value)
            try:
                if not await tx.rowcount(store.atomic_step_sql(), params):
                    row = await tx.first(store.atomic_step_recorded_sql(), params)
                    raise _NotWritten(None if row is None else bytes(row[0]))
            except (_NotWritten, IdempotencyError):
                raise
            except Exception as exc:
                raise _statement_error(store, resolved, what, lease.key, exc) from exc
    except _NotWritten as missed:
        if missed.recorded is not None:
            return cast(R, _replay(execution, name, missed.recorded))
        error = await asyncio.to_thread(_not_written, store, resolved, lease, what)
        if isinstance(error, LeaseLost):
            execution._mark_lost()
        raise error from None
    _ran(execution, name, started)
    return cast(R, value)


def _ran(execution: Execution, name: str, started: float) -> None:
    emit(
        RuntimeEvent(
            STEP_RUN,
            execution.key,
            execution.epoch,
            time.perf_counter() - started,
            {"step": name, "atomic": True},
        ),
        execution.hooks,
    )


# -- whole-task atomic mode -------------------------------------------------------------------


def prepare_atomic_task(store: Store, using: Any, *, want_async: bool, key: str) -> Using:
    """Check ``using`` for a whole-task atomic call before the function runs."""
    resolved = resolve_using(using)
    if resolved.is_async != want_async:
        raise ConfigurationError(
            f"atomic_using for key {key!r} gave {resolved.label}, which "
            f"{'only async' if resolved.is_async else 'only sync'} functions can run in",
            key=key,
        )
    check_store(store, resolved)
    _refuse_open_transaction(resolved, "an atomic task")
    return resolved


def run_atomic_task(
    store: Store,
    lease: Lease,
    using: Using,
    call: Callable[[], Any],
    encode: Callable[[Any], bytes],
    ttl: float | None,
) -> Any:
    """Run ``call()`` in a transaction on ``using`` and commit its completion with it.

    The completion is the fenced UPDATE of :meth:`SQLStore.complete`, run as
    the transaction's last statement; it matched no row means fenced off (or
    another database), and the whole transaction rolls back. Raises whatever
    ``call`` or ``encode`` raised, after the rollback.
    """
    sql_store = cast(SQLStore, store)
    tx = _Transaction(using)
    params: dict[str, Any] = {**_fence_params(lease), "ttl": ttl}
    try:
        with tx.begin():
            value = call()
            params["result"] = encode(value)
            try:
                matched = tx.rowcount(sql_store.atomic_complete_sql(), params)
            except Exception as exc:
                raise _statement_error(sql_store, using, "the completion", lease.key, exc) from exc
            if not matched:
                raise _NotWritten()
    except _NotWritten:
        raise _not_written(store, using, lease, "the completion") from None
    return value


async def arun_atomic_task(
    store: Store,
    lease: Lease,
    using: Using,
    call: Callable[[], Awaitable[Any]],
    encode: Callable[[Any], bytes],
    ttl: float | None,
) -> Any:
    """:func:`run_atomic_task` for an async function on an AsyncSession / AsyncConnection."""
    sql_store = cast(SQLStore, store)
    tx = _AsyncTransaction(using)
    params: dict[str, Any] = {**_fence_params(lease), "ttl": ttl}
    try:
        async with tx.begin():
            value = await call()
            params["result"] = encode(value)
            try:
                matched = await tx.rowcount(sql_store.atomic_complete_sql(), params)
            except Exception as exc:
                raise _statement_error(sql_store, using, "the completion", lease.key, exc) from exc
            if not matched:
                raise _NotWritten()
    except _NotWritten:
        error = await asyncio.to_thread(_not_written, store, using, lease, "the completion")
        raise error from None
    return value


__all__ = [
    "Using",
    "aatomic_step",
    "arun_atomic_task",
    "atomic_step",
    "check_store",
    "prepare_atomic_task",
    "resolve_using",
    "run_atomic_task",
]

"""Lock one row, then re-check it: the guard for "do this once per row".

A retried job that reads ``order.inventory_updated``, sees False and goes on
to update the inventory races with the first attempt (or a duplicate
delivery) doing the same. The fix is a pattern, and this helper makes it one
call::

    with locked_row(Order.objects, pk=order_id) as order:   # SELECT ... FOR UPDATE
        if order.inventory_updated:                          # re-check under the lock
            return
        adjust_inventory(order)
        order.inventory_updated = True
        order.save(update_fields=["inventory_updated"])
    # commit: the flag and the side effect land together, the lock is released

The row is read *after* the lock is granted, so a second worker blocks at the
``with`` until the first commits and then sees the flag the first one set.

Transactions follow each ORM: with Django the block runs in
``transaction.atomic()`` (nested blocks use a savepoint and the lock lasts
until the outermost commit); with SQLAlchemy the helper begins and commits a
transaction when the session has none, and otherwise joins the open one,
leaving the commit (and so the lock's release) to the caller.

SQLite has no row locks. There the helper first issues a no-op ``UPDATE`` of
the row, which takes SQLite's database write lock for the rest of the
transaction: coarser than a row lock, but the pattern stays correct.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from idemlint.runtime.locks.errors import LockError, LockTimeout

__all__ = ["locked_row"]


@contextmanager
def locked_row(
    source: Any,
    /,
    *,
    session: Any = None,
    nowait: bool = False,
    **lookup: Any,
) -> Iterator[Any]:
    """Yield the one row matching ``lookup``, locked for update, freshly read.

    ``source`` is a Django model class, manager or queryset, or a SQLAlchemy
    mapped class together with ``session=``. ``lookup`` are the filter
    arguments (``pk=...``, ``order_id=...``). A missing row raises the ORM's
    own error (``Model.DoesNotExist``, ``sqlalchemy.exc.NoResultFound``).
    With ``nowait=True`` a row locked by another transaction raises
    :class:`LockTimeout` at once instead of waiting.
    """
    if not lookup:
        raise LockError("locked_row() needs a lookup, e.g. pk=order_id")
    if _is_django_source(source):
        if session is not None:
            raise LockError("session= is for SQLAlchemy; a Django queryset knows its database")
        with _django_locked_row(source, nowait, lookup) as row:
            yield row
        return
    if session is not None and _is_sqlalchemy_mapped(source):
        with _sqlalchemy_locked_row(source, session, nowait, lookup) as row:
            yield row
        return
    raise LockError(
        f"locked_row() takes a Django model/manager/queryset, or a SQLAlchemy mapped class "
        f"with session=; got {source!r}"
    )


def _is_django_source(source: Any) -> bool:
    if "django" not in sys.modules:
        return False
    from django.db import models  # type: ignore[import-untyped]

    if isinstance(source, type):
        return issubclass(source, models.Model)
    return isinstance(source, (models.Manager, models.QuerySet))


def _is_sqlalchemy_mapped(source: Any) -> bool:
    if "sqlalchemy" not in sys.modules or not isinstance(source, type):
        return False
    from sqlalchemy import inspect as sa_inspect

    return sa_inspect(source, raiseerr=False) is not None


def _is_lock_not_available(exc: BaseException) -> bool:
    """Whether a driver error means "row locked and NOWAIT was asked"."""
    for err in (exc, exc.__cause__, getattr(exc, "orig", None)):
        if err is None:
            continue
        if getattr(err, "sqlstate", None) == "55P03" or getattr(err, "pgcode", None) == "55P03":
            return True
        args = getattr(err, "args", ())
        if args and args[0] in (3572, 1205):  # MySQL: NOWAIT conflict, lock wait timeout
            return True
    return False


@contextmanager
def _django_locked_row(source: Any, nowait: bool, lookup: dict[str, Any]) -> Iterator[Any]:
    from django.db import DatabaseError, connections, models, transaction
    from django.db.models import F  # type: ignore[import-untyped]

    model: Any = source
    if isinstance(source, type):
        queryset = model._default_manager.all()
    elif isinstance(source, models.Manager):
        queryset = source.all()
    else:
        queryset = source
    alias = queryset.db
    connection = connections[alias]
    with transaction.atomic(using=alias):
        try:
            if connection.features.has_select_for_update:
                row = queryset.select_for_update(nowait=nowait).get(**lookup)
            else:  # SQLite: the no-op write takes the database write lock first
                pk_name = queryset.model._meta.pk.attname
                queryset.filter(**lookup).update(**{pk_name: F(pk_name)})
                row = queryset.get(**lookup)
        except DatabaseError as exc:
            if nowait and _is_lock_not_available(exc):
                raise LockTimeout(f"row {lookup!r} is locked by another transaction") from exc
            raise
        yield row


@contextmanager
def _sqlalchemy_locked_row(
    model: Any, session: Any, nowait: bool, lookup: dict[str, Any]
) -> Iterator[Any]:
    from sqlalchemy import inspect as sa_inspect
    from sqlalchemy import select, update
    from sqlalchemy.exc import OperationalError

    owns = not session.in_transaction()
    with session.begin() if owns else nullcontext():
        try:
            dialect = session.get_bind(mapper=sa_inspect(model)).dialect.name
            if dialect == "sqlite":  # no FOR UPDATE: take the database write lock
                pk = sa_inspect(model).primary_key[0]
                session.execute(
                    update(model).filter_by(**lookup).values({pk.key: pk}),
                    execution_options={"synchronize_session": False},
                )
            query = (
                select(model)
                .filter_by(**lookup)
                .with_for_update(nowait=nowait)
                .execution_options(populate_existing=True)  # re-read, never the cached copy
            )
            row = session.execute(query).scalar_one()
        except OperationalError as exc:
            if nowait and _is_lock_not_available(exc):
                raise LockTimeout(f"row {lookup!r} is locked by another transaction") from exc
            raise
        yield row

"""One ``upsert`` for Django models and SQLAlchemy tables.

A retried job that does ``Model.objects.create(...)`` or ``session.add(...)``
inserts a second row. The fix is a single statement the database makes atomic:
``INSERT ... ON CONFLICT (cols) DO UPDATE`` on PostgreSQL and SQLite, and
``INSERT ... ON DUPLICATE KEY UPDATE`` on MySQL/MariaDB. That statement is only
safe when a unique constraint stands behind the conflict columns: without one,
PostgreSQL and SQLite refuse the statement at run time, and MySQL silently
inserts a duplicate, which is the bug the upsert was meant to fix. So
:func:`upsert` checks the model's metadata first and names the model, the
fields and the unique sets it does have when ``unique_by`` matches none.

Neither Django nor SQLAlchemy is imported here until a call needs it, so that
``import idemlint.runtime`` stays cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from idemlint.runtime.errors import IdempotencyError

if TYPE_CHECKING:
    from sqlalchemy import Column, Table
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

__all__ = ["UpsertError", "UpsertResult", "UpsertedRow", "upsert"]

# Rows per statement. Every backend caps bound parameters per statement
# (SQLite at 32766, PostgreSQL and MySQL at 65535); staying well under the
# lowest keeps one batch one statement.
_MAX_PARAMS = 30_000


class UpsertError(IdempotencyError):
    """The upsert cannot be made safe as asked: the error says which model and fields."""


@dataclass(frozen=True)
class UpsertedRow:
    """One row as the database holds it after the upsert."""

    pk: Any
    """Primary key; a tuple for a composite key."""
    key: Mapping[str, Any]
    """The ``unique_by`` values, by field name, as the database returned them."""
    created: bool | None
    """True when this call inserted the row, False when it existed, None when the
    backend cannot tell (SQLite and MySQL after ``DO UPDATE``)."""


@dataclass(frozen=True)
class UpsertResult:
    """What :func:`upsert` did, one :class:`UpsertedRow` per input row.

    For a batch the order of ``rows`` is the order the database reported
    them in; look a row up by its key with :meth:`row_for`.
    """

    rows: tuple[UpsertedRow, ...] = field(default=())

    @property
    def pk(self) -> Any:
        """The primary key, for a single-row upsert."""
        return self._only().pk

    @property
    def created(self) -> bool | None:
        """Whether the single row was inserted (None: the backend cannot tell)."""
        return self._only().created

    @property
    def pks(self) -> tuple[Any, ...]:
        """Primary keys of every row."""
        return tuple(row.pk for row in self.rows)

    @property
    def inserted(self) -> int | None:
        """How many rows this call inserted, or None when the backend cannot tell."""
        if any(row.created is None for row in self.rows):
            return None
        return sum(1 for row in self.rows if row.created)

    def row_for(self, **key: Any) -> UpsertedRow:
        """The row whose ``unique_by`` values equal ``key``."""
        for row in self.rows:
            if dict(row.key) == key:
                return row
        raise KeyError(key)

    def _only(self) -> UpsertedRow:
        if len(self.rows) != 1:
            raise ValueError(
                f"this upsert touched {len(self.rows)} rows; use .rows or .row_for(...)"
            )
        return self.rows[0]


def upsert(
    target: Any,
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    unique_by: Sequence[str],
    update: Sequence[str] | None = None,
    using: str | None = None,
    session: Session | Connection | None = None,
) -> UpsertResult:
    """Insert rows, or update the ones whose ``unique_by`` values already exist.

    ``target`` is a Django model class, or a SQLAlchemy mapped class or
    :class:`~sqlalchemy.Table` together with ``session=`` (a Session or a
    Connection). ``values`` is one mapping or a sequence of mappings keyed by
    field (Django) or attribute/column (SQLAlchemy) name.

    ``update`` names the fields overwritten on conflict. ``None`` (the default)
    means every field given in ``values`` other than ``unique_by`` and the
    primary key (plus Django ``auto_now`` fields); an empty sequence means
    ``DO NOTHING``: the existing row is kept as it is.

    Transactions follow each ORM's own convention: with Django the statement
    runs in ``atomic(using)`` (joining an outer transaction), with SQLAlchemy
    it joins the session's or connection's transaction and the caller commits.

    Raises :class:`UpsertError` before touching the database when no unique
    constraint covers exactly ``unique_by``, when a row lacks a ``unique_by``
    value or gives it as NULL (NULLs never conflict, so the row would be
    duplicated), or when a batch names the same key twice.
    """
    rows = [values] if isinstance(values, Mapping) else list(values)
    if isinstance(unique_by, str):
        raise UpsertError(
            f"unique_by must be a sequence of field names, not the string {unique_by!r}"
        )
    if not unique_by:
        raise UpsertError("unique_by names no field: an upsert needs the unique fields to match on")
    for row in rows:
        if not isinstance(row, Mapping):
            raise UpsertError(
                f"each row must be a mapping of field to value, got {type(row).__name__}"
            )
    if _is_django_model(target):
        if session is not None:
            raise UpsertError("session= is for SQLAlchemy; a Django model takes using=")
        return _django_upsert(target, rows, tuple(unique_by), _opt_tuple(update), using)
    if _is_sqlalchemy_target(target):
        if session is None:
            raise UpsertError(
                f"upsert({_sa_label(target)}, ...) needs session=, "
                f"a SQLAlchemy Session or Connection"
            )
        if using is not None:
            raise UpsertError("using= is for Django; SQLAlchemy takes session=")
        return _sqlalchemy_upsert(target, rows, tuple(unique_by), _opt_tuple(update), session)
    raise UpsertError(
        f"upsert() takes a Django model class or a SQLAlchemy mapped class or Table, not {target!r}"
    )


def _opt_tuple(update: Sequence[str] | None) -> tuple[str, ...] | None:
    if update is None:
        return None
    if isinstance(update, str):
        raise UpsertError(f"update must be a sequence of field names, not the string {update!r}")
    return tuple(update)


# --------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------


def _require_unique_set(
    label: str,
    unique_by: Sequence[str],
    key_columns: Sequence[str],
    unique_sets: list[frozenset[str]],
) -> None:
    """Refuse ``unique_by`` unless a unique constraint has exactly these columns.

    Exactly, not "contains": PostgreSQL and SQLite pick the arbiter index by
    its exact column set, and a superset of a unique set would let MySQL
    update on a different key than the caller meant.
    """
    wanted = frozenset(key_columns)
    if wanted in unique_sets:
        return
    described = ", ".join("(" + ", ".join(sorted(s)) + ")" for s in unique_sets) or "none"
    raise UpsertError(
        f"upsert({label}, unique_by={tuple(unique_by)!r}): no unique constraint covers exactly "
        f"the columns ({', '.join(sorted(wanted))}); the unique column sets of {label} are: "
        f"{described}. Without one, a retry inserts a duplicate (MySQL) or the statement "
        f"fails (PostgreSQL, SQLite). Add a unique constraint on these fields, or pick one "
        f"of the sets above."
    )


def _check_keys(label: str, key_names: Sequence[str], keys: list[tuple[Any, ...]]) -> None:
    """Reject NULL keys and keys repeated inside one batch."""
    seen: dict[tuple[Any, ...], int] = {}
    for index, key in enumerate(keys):
        for name, value in zip(key_names, key, strict=True):
            if value is None:
                raise UpsertError(
                    f"upsert({label}): row {index} has {name}=None; a NULL never conflicts, "
                    f"so the row would be inserted again on every retry"
                )
        try:
            first = seen.setdefault(key, index)
        except TypeError:  # unhashable key values: the database will judge them
            continue
        if first != index:
            raise UpsertError(
                f"upsert({label}): rows {first} and {index} have the same key "
                f"{dict(zip(key_names, key, strict=True))!r}; a batch may name each key once"
            )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    size = max(1, size)
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------
# Django
# --------------------------------------------------------------------------


def _is_django_model(target: Any) -> bool:
    if "django" not in sys.modules or not isinstance(target, type):
        return False
    from django.db import models  # type: ignore[import-untyped]

    return issubclass(target, models.Model)


def _django_unique_sets(model: Any) -> list[frozenset[str]]:
    meta = model._meta
    by_name = {f.name: f for f in meta.concrete_fields}
    sets: list[frozenset[str]] = []
    for f in meta.concrete_fields:
        if f.unique:  # true for the primary key as well
            sets.append(frozenset([f.column]))
    for together in meta.unique_together:
        sets.append(frozenset(by_name[name].column for name in together))
    for constraint in meta.total_unique_constraints:  # no condition, no expressions
        sets.append(frozenset(by_name[name].column for name in constraint.fields))
    return sets


def _django_field(model: Any, name: str) -> Any:
    meta = model._meta
    for f in meta.concrete_fields:
        if name in (f.name, f.attname):
            return f
    raise UpsertError(f"upsert({meta.label}): {model.__name__} has no field {name!r}")


def _django_upsert(
    model: Any,
    rows: list[Mapping[str, Any]],
    unique_by: tuple[str, ...],
    update: tuple[str, ...] | None,
    using: str | None,
) -> UpsertResult:
    from django.db import connections, router, transaction
    from django.db.models.expressions import DatabaseDefault  # type: ignore[import-untyped]

    meta = model._meta
    label = meta.label
    if meta.parents:
        raise UpsertError(
            f"upsert({label}): multi-table inheritance spreads a row over several tables, "
            f"which one statement cannot upsert"
        )
    key_fields = [_django_field(model, name) for name in unique_by]
    _require_unique_set(
        label, unique_by, [f.column for f in key_fields], _django_unique_sets(model)
    )
    if not rows:
        return UpsertResult()

    given = {_django_field(model, name) for name in rows[0]}
    for index, row in enumerate(rows):
        if {_django_field(model, name) for name in row} != given:
            raise UpsertError(f"upsert({label}): row {index} gives other fields than row 0")
    missing = [f.name for f in key_fields if f not in given]
    if missing:
        raise UpsertError(
            f"upsert({label}): the rows give no value for unique_by field(s) {missing}"
        )

    pk = meta.pk
    if update is None:
        update_fields = [
            f
            for f in meta.concrete_fields
            if f not in key_fields
            and not f.primary_key
            and (f in given or getattr(f, "auto_now", False))
        ]
    else:
        update_fields = [_django_field(model, name) for name in update]
        clash = [f.name for f in update_fields if f in key_fields or f.primary_key]
        if clash:
            raise UpsertError(f"upsert({label}): update names key field(s) {clash}")

    try:
        objs = [model(**row) for row in rows]
    except (TypeError, ValueError) as exc:
        raise UpsertError(f"upsert({label}): {exc}") from exc

    alias = using or router.db_for_write(model)
    connection = connections[alias]
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite", "mysql"):
        raise UpsertError(f"upsert({label}): database vendor {vendor!r} is not supported")

    insert_fields = []
    for f in meta.local_concrete_fields:
        if getattr(f, "generated", False):
            continue
        if f.primary_key and f not in given and getattr(f, "db_returning", False):
            continue  # auto-increment key the database assigns
        insert_fields.append(f)
    matrix: list[list[Any]] = []
    for obj in objs:
        matrix.append([f.pre_save(obj, True) for f in insert_fields])
    # A db_default the caller did not override is left to the database; a
    # column where only some rows rely on it cannot share one statement.
    keep = []
    for col, f in enumerate(insert_fields):
        defaults = [isinstance(r[col], DatabaseDefault) for r in matrix]
        if all(defaults):
            continue
        if any(defaults):
            raise UpsertError(f"upsert({label}): give {f.name} in every row or in none")
        keep.append(col)
    insert_fields = [insert_fields[c] for c in keep]
    params = [
        [f.get_db_prep_save(row[c], connection) for f, c in zip(insert_fields, keep, strict=True)]
        for row in matrix
    ]
    if any(f not in insert_fields for f in update_fields):
        bad = [f.name for f in update_fields if f not in insert_fields]
        raise UpsertError(f"upsert({label}): update names field(s) {bad} the rows do not give")
    key_index = [insert_fields.index(f) for f in key_fields]
    keys = [tuple(row[i] for i in key_index) for row in params]
    _check_keys(label, unique_by, keys)

    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    columns = ", ".join(qn(f.column) for f in insert_fields)
    key_cols = ", ".join(qn(f.column) for f in key_fields)
    row_sql = "(" + ", ".join(["%s"] * len(insert_fields)) + ")"
    if vendor == "mysql":
        if update_fields:
            assignments = ", ".join(
                f"{qn(f.column)} = VALUES({qn(f.column)})" for f in update_fields
            )
        else:  # a no-op assignment: INSERT IGNORE would also swallow unrelated errors
            first = qn(key_fields[0].column)
            assignments = f"{first} = {first}"
        conflict = f"ON DUPLICATE KEY UPDATE {assignments}"
        returning = ""
    else:
        excluded = "EXCLUDED" if vendor == "postgresql" else "excluded"
        if update_fields:
            sets = ", ".join(f"{qn(f.column)} = {excluded}.{qn(f.column)}" for f in update_fields)
            conflict = f"ON CONFLICT ({key_cols}) DO UPDATE SET {sets}"
        else:
            conflict = f"ON CONFLICT ({key_cols}) DO NOTHING"
        returning = f" RETURNING {qn(pk.column)}, {key_cols}"
        if vendor == "postgresql":
            # xmax is 0 on a tuple this transaction inserted and set on one
            # that ON CONFLICT locked and updated: created vs updated, free.
            returning += ", (xmax = 0)"

    def to_row(pk_value: Any, key_values: Sequence[Any], created: bool | None) -> UpsertedRow:
        key = {f.name: f.to_python(v) for f, v in zip(key_fields, key_values, strict=True)}
        return UpsertedRow(pk=pk.to_python(pk_value), key=key, created=created)

    result: list[UpsertedRow] = []
    batch = max(1, _MAX_PARAMS // max(1, len(insert_fields)))
    with transaction.atomic(using=alias, savepoint=False), connection.cursor() as cursor:
        for chunk in _chunks(list(range(len(params))), batch):
            flat = [v for i in chunk for v in params[i]]
            tuples = ", ".join([row_sql] * len(chunk))
            sql = f"INSERT INTO {table} ({columns}) VALUES {tuples} {conflict}{returning}"
            cursor.execute(sql, flat)
            returned = cursor.fetchall() if returning else []
            if returning and update_fields:
                for r in returned:
                    created = bool(r[-1]) if vendor == "postgresql" else None
                    result.append(to_row(r[0], r[1 : 1 + len(key_fields)], created))
                continue
            inserted = {r[0] for r in returned}
            where = " OR ".join(
                ["(" + " AND ".join(f"{qn(f.column)} = %s" for f in key_fields) + ")"] * len(chunk)
            )
            lock = " FOR UPDATE" if vendor == "mysql" else ""
            cursor.execute(
                f"SELECT {qn(pk.column)}, {key_cols} FROM {table} WHERE {where}{lock}",
                [v for i in chunk for v in keys[i]],
            )
            for r in cursor.fetchall():
                created = (r[0] in inserted) if returning else None
                result.append(to_row(r[0], r[1:], created))
    return UpsertResult(tuple(result))


# --------------------------------------------------------------------------
# SQLAlchemy
# --------------------------------------------------------------------------


def _is_sqlalchemy_target(target: Any) -> bool:
    if "sqlalchemy" not in sys.modules:
        return False
    from sqlalchemy import Table

    return isinstance(target, Table) or isinstance(getattr(target, "__table__", None), Table)


def _sa_label(target: Any) -> str:
    return target.__name__ if isinstance(target, type) else str(getattr(target, "name", target))


def _sa_columns(target: Any) -> tuple[Table, Callable[[str], Column[Any]]]:
    """The table behind ``target`` and a resolver from attribute/column name to Column."""
    from sqlalchemy import Column, Table
    from sqlalchemy import inspect as sa_inspect

    if isinstance(target, Table):
        table = target
        attrs: dict[str, Column[Any]] = {}
    else:
        mapper = sa_inspect(target)
        table = target.__table__
        attrs = {}
        for prop in mapper.column_attrs:
            cols = [c for c in prop.columns if isinstance(c, Column) and c.table is table]
            if len(cols) == 1:
                attrs[prop.key] = cols[0]
    label = _sa_label(target)

    def resolve(name: str) -> Column[Any]:
        if name in attrs:
            return attrs[name]
        column = table.c.get(name)
        if isinstance(column, Column):
            return column
        raise UpsertError(f"upsert({label}): {label} has no column {name!r}")

    return table, resolve


def _sa_unique_sets(table: Table) -> list[frozenset[str]]:
    from sqlalchemy import Column, UniqueConstraint

    sets: list[frozenset[str]] = []
    if table.primary_key.columns:
        sets.append(frozenset(c.name for c in table.primary_key.columns))
    for column in table.columns:
        if column.unique:
            sets.append(frozenset([column.name]))
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and constraint.columns:
            sets.append(frozenset(c.name for c in constraint.columns))
    for index in table.indexes:
        if not index.unique:
            continue
        partial = any(
            index.dialect_kwargs.get(f"{dialect}_where") is not None
            for dialect in ("postgresql", "sqlite")
        )
        plain = all(isinstance(e, Column) for e in index.expressions)
        if plain and not partial:
            sets.append(frozenset(c.name for c in index.columns))
    return sets


def _sqlalchemy_upsert(
    target: Any,
    rows: list[Mapping[str, Any]],
    unique_by: tuple[str, ...],
    update: tuple[str, ...] | None,
    session: Session | Connection,
) -> UpsertResult:
    from sqlalchemy import and_, literal_column, or_, select
    from sqlalchemy.orm import Session

    table, resolve = _sa_columns(target)
    label = _sa_label(target)
    key_cols = [resolve(name) for name in unique_by]
    _require_unique_set(label, unique_by, [c.name for c in key_cols], _sa_unique_sets(table))
    if not rows:
        return UpsertResult()

    converted: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        by_key = {resolve(name).key: value for name, value in row.items()}
        if index and by_key.keys() != converted[0].keys():
            raise UpsertError(f"upsert({label}): row {index} gives other columns than row 0")
        converted.append(by_key)
    missing = [
        name for name, c in zip(unique_by, key_cols, strict=True) if c.key not in converted[0]
    ]
    if missing:
        raise UpsertError(
            f"upsert({label}): the rows give no value for unique_by column(s) {missing}"
        )
    keys = [tuple(row[c.key] for c in key_cols) for row in converted]
    _check_keys(label, unique_by, keys)

    pk_cols = list(table.primary_key.columns)
    if update is None:
        update_cols = [
            table.c[k]
            for k in converted[0]
            if table.c[k] not in key_cols and not table.c[k].primary_key
        ]
    else:
        update_cols = [resolve(name) for name in update]
        clash = [c.name for c in update_cols if c in key_cols or c.primary_key]
        if clash:
            raise UpsertError(f"upsert({label}): update names key column(s) {clash}")

    if isinstance(session, Session):
        dialect = session.get_bind(clause=table).dialect
    else:
        dialect = session.dialect
    name = dialect.name
    returning = name in ("postgresql", "sqlite")
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        make: Callable[[Table], Any] = pg_insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        make = sqlite_insert
    elif name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        make = mysql_insert
    else:
        raise UpsertError(f"upsert({label}): database dialect {name!r} is not supported")

    def pk_of(values: Sequence[Any]) -> Any:
        return values[0] if len(pk_cols) == 1 else tuple(values)

    result: list[UpsertedRow] = []
    width = len(converted[0])
    for chunk in _chunks(list(range(len(converted))), _MAX_PARAMS // max(1, width)):
        stmt = make(table).values([converted[i] for i in chunk])
        if returning:
            if update_cols:
                stmt = stmt.on_conflict_do_update(
                    index_elements=key_cols, set_={c: stmt.excluded[c.key] for c in update_cols}
                )
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=key_cols)
            extra: list[Any] = (
                [literal_column("(xmax = 0)")] if name == "postgresql" and update_cols else []
            )
            stmt = stmt.returning(*pk_cols, *key_cols, *extra)
        elif update_cols:
            stmt = stmt.on_duplicate_key_update({c.name: stmt.inserted[c.key] for c in update_cols})
        else:
            stmt = stmt.on_duplicate_key_update({key_cols[0].name: key_cols[0]})
        executed = session.execute(stmt)
        returned = executed.all() if returning else []
        npk, nkey = len(pk_cols), len(key_cols)
        if returning and update_cols:
            for r in returned:
                created = bool(r[-1]) if name == "postgresql" else None
                key = dict(zip(unique_by, r[npk : npk + nkey], strict=True))
                result.append(UpsertedRow(pk=pk_of(r[:npk]), key=key, created=created))
            continue
        inserted = {pk_of(r[:npk]) for r in returned}
        query = select(*pk_cols, *key_cols).where(
            or_(*(and_(*(c == v for c, v in zip(key_cols, keys[i], strict=True))) for i in chunk))
        )
        if not returning:
            query = query.with_for_update()
        for r in session.execute(query).all():
            pk_value = pk_of(r[:npk])
            created = (pk_value in inserted) if returning else None
            result.append(
                UpsertedRow(
                    pk=pk_value, key=dict(zip(unique_by, r[npk:], strict=True)), created=created
                )
            )
    return UpsertResult(tuple(result))

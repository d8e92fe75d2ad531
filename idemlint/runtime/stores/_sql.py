"""What the SQL stores (SQLite, PostgreSQL, MariaDB/MySQL) share.

Statements are written once with ``%(name)s`` parameters and ``{t}`` /
``{s}`` / ``{now}`` slots. The slots are filled only with validated
identifiers and a fixed per-dialect clock expression; every value travels as
a bound parameter. ``{now}`` is the *database's* clock, so workers on other
machines agree with the lease arithmetic.

Every write is fenced: it names the key, the epoch and the owner token of the
holder and requires the record to be in progress, so a holder that lost its
lease matches no row. Completion, release and step writes are also safe to
repeat after a lost reply: when no row matched, a second read tells "already
done by me" (success) from "someone else holds it" (:class:`LeaseLost`).
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from idemlint.runtime.errors import IdempotencyError, LeaseLost, StoreError
from idemlint.runtime.stores._deadline import bounded, unbounded
from idemlint.runtime.stores.base import (
    COMPLETED,
    IN_PROGRESS,
    RELEASED,
    ClaimResult,
    Lease,
    RecordRow,
    Store,
    interpret_claim,
    new_owner_token,
    validate_fingerprint,
    validate_identifier,
    validate_key,
    validate_max_result_bytes,
    validate_seconds,
    validate_step_name,
)

T = TypeVar("T")

COLUMNS = (
    "idem_key, status, epoch, run, owner, fingerprint,"
    " lease_expires, expires_at, result, claim_kind"
)

DEAD = (
    "({t}.expires_at IS NOT NULL AND {t}.expires_at <= {now} "
    "AND ({t}.status <> 'in_progress' OR {t}.lease_expires <= {now}))"
)
"""A record past its ttl and not held: the next claim starts a new run."""

TAKEABLE = (
    DEAD + " OR ({t}.fingerprint = %(fp)s AND ({t}.status = 'released' "
    "OR ({t}.status = 'in_progress' AND {t}.lease_expires <= {now})))"
)
"""Whether a claim may take an existing record (see stores/base.py)."""

UPSERT_CLAIM = (
    f"INSERT INTO {{t}} ({COLUMNS}, updated_at) VALUES (%(key)s, 'in_progress', 1, 1,"
    " %(owner)s, %(fp)s, {now} + %(lease)s, {now} + %(keep)s, NULL, 'new', {now})"
    " ON CONFLICT (idem_key) DO UPDATE SET status = 'in_progress', epoch = {t}.epoch + 1,"
    f" run = CASE WHEN {DEAD} THEN {{t}}.epoch + 1 ELSE {{t}}.run END,"
    " owner = excluded.owner, fingerprint = excluded.fingerprint,"
    " lease_expires = excluded.lease_expires, expires_at = excluded.expires_at,"
    " result = NULL, updated_at = excluded.updated_at,"
    f" claim_kind = CASE WHEN {DEAD} THEN 'new' WHEN {{t}}.status = 'released' THEN 'retry'"
    " ELSE 'takeover' END"
    f" WHERE {TAKEABLE}"
)
"""The claim as one upsert (SQLite and PostgreSQL): insert, or take the record if allowed."""

FENCE = "idem_key = %(key)s AND epoch = %(epoch)s AND owner = %(owner)s AND status = 'in_progress'"

COMPLETE_ASSIGNMENTS = (
    "status = 'completed', result = %(result)s, lease_expires = {now}, expires_at = {now} + %(ttl)s"
)
"""What a completion sets, on the store's connection or in a caller's transaction."""


class SQLStore(Store):
    """Shared statements and the fenced-write logic of the SQL backends."""

    dialect = "sql"
    now_sql = ""
    connection_errors: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        *,
        table: str = "idemlint_keys",
        create: bool = True,
        max_result_bytes: int | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        statement_timeout: float | None = None,
        require_durable: bool = False,
    ) -> None:
        super().__init__(
            timeout=timeout, connect_timeout=connect_timeout, require_durable=require_durable
        )
        self.table = validate_identifier(table)
        self.steps_table = validate_identifier(f"{table}_steps", "steps table name")
        if max_result_bytes is not None:
            self.max_result_bytes = validate_max_result_bytes(max_result_bytes)
        self.statement_timeout = validate_seconds(statement_timeout, "statement_timeout")
        """Server-side cap on one statement; None: the operation's budget (tied to the lease)."""
        self._statements: dict[str, str] = {}
        self._create = create
        self._schema_ready = not create
        self._schema_lock = threading.Lock()

    # -- dialect hooks --------------------------------------------------------
    @abstractmethod
    def _transact(self, fn: Callable[[Any], T], *, round_trips: int = 1) -> T:
        """Run ``fn(cursor)`` in one transaction; retry once on a dropped connection."""

    @abstractmethod
    def _schema_statements(self) -> Sequence[str]:
        """DDL creating the records and steps tables (idempotent)."""

    def _param(self, sql: str) -> str:
        """Convert ``%(name)s`` placeholders to the driver's style (identity by default)."""
        return sql

    def _sql(self, template: str) -> str:
        """The statement for ``template``, built once per store (formatting is not free)."""
        sql = self._statements.get(template)
        if sql is None:
            sql = self._param(template.format(t=self.table, s=self.steps_table, now=self.now_sql))
            self._statements[template] = sql
        return sql

    def _ensure_schema(self) -> None:
        """Create the schema on first use, under its own budget (``admin_timeout``), not the
        operation's: it happens once per store, and concurrent creators queue on locks."""
        if not self._schema_ready:
            with self._schema_lock, unbounded():
                if not self._schema_ready:
                    self.create_schema()

    def create_schema(self) -> None:
        statements = [self._sql(s) for s in self._schema_statements()]

        def run(cur: Any) -> None:
            for statement in statements:
                cur.execute(statement)

        with bounded(self.admin_timeout()):
            self._guarded(
                lambda: self._transact(run, round_trips=len(statements)), "schema creation"
            )
        self._schema_ready = True

    def drop_schema(self) -> None:
        def run(cur: Any) -> None:
            cur.execute(self._sql("DROP TABLE IF EXISTS {s}"))
            cur.execute(self._sql("DROP TABLE IF EXISTS {t}"))

        with bounded(self.admin_timeout()):
            self._guarded(lambda: self._transact(run, round_trips=2), "drop_schema")
        self._schema_ready = not self._create

    def _guarded(self, fn: Callable[[], T], what: str, key: str | None = None) -> T:
        """``fn()`` with driver errors as a short :class:`StoreError` saying what failed."""
        try:
            return fn()
        except IdempotencyError:
            raise
        except Exception as exc:
            raise StoreError(
                f"{self.dialect} store {self.table!r}: {what} failed: {describe_error(exc)}",
                key=key,
                transient=self._transient(exc),
            ) from exc

    def _transient(self, exc: BaseException) -> bool:
        """Whether a driver error may pass on its own (so a completion is worth retrying)."""
        return isinstance(exc, self.connection_errors)

    def _op(
        self,
        fn: Callable[[Any], T],
        *,
        round_trips: int = 1,
        what: str = "operation",
        key: str | None = None,
    ) -> T:
        """Run a store operation, translating driver errors to :class:`StoreError`."""
        self._ensure_schema()
        return self._guarded(lambda: self._transact(fn, round_trips=round_trips), what, key)

    def _timed_out(self, seconds: float, attempts: int) -> StoreError:
        """The error for an operation that ran out of its budget (the server did not answer)."""
        tries = f", {attempts} attempt{'s' if attempts > 1 else ''}" if attempts else ""
        return StoreError(
            f"{self.dialect} store {self.table!r}: no answer within {seconds:.2f}s{tries}; "
            "the operation timeout is tied to the lease (timeout= to change it)",
            transient=True,
        )

    def _wanted_statement_timeout(self, budget: float) -> float:
        return self.statement_timeout if self.statement_timeout is not None else budget

    def _row(self, values: Sequence[Any] | None) -> RecordRow | None:
        if values is None:
            return None
        key, status, epoch, run, owner, fp, lease_expires, expires_at, result, kind, now = values
        return RecordRow(
            key=_text(key),
            status=_text(status),
            epoch=int(epoch),
            run=int(run),
            owner=_text(owner),
            fingerprint=_text(fp),
            lease_expires=float(lease_expires),
            expires_at=None if expires_at is None else float(expires_at),
            result=None if result is None else bytes(result),
            claim_kind=_text(kind),
            now=float(now),
        )

    def _claim_params(
        self, key: str, fingerprint: str, lease: float, ttl: float | None, owner: str
    ) -> dict[str, Any]:
        return {
            "key": key,
            "fp": fingerprint,
            "owner": owner,
            "lease": float(lease),
            "ttl": None if ttl is None else float(ttl),
            "keep": None if ttl is None else float(lease) + float(ttl),
        }

    def claim(self, key: str, fingerprint: str, *, lease: float, ttl: float | None) -> ClaimResult:
        validate_key(key)
        validate_fingerprint(fingerprint, key)
        owner = new_owner_token()
        params = self._claim_params(key, fingerprint, lease, ttl, owner)

        def attempt() -> ClaimResult:
            sent = time.monotonic()
            row = self._op(
                lambda cur: self._claim_row(cur, params),
                round_trips=self._claim_round_trips,
                what=f"claim of key {key!r}",
                key=key,
            )
            return interpret_claim(
                row, key=key, owner=owner, fingerprint=fingerprint, lease_seconds=lease, sent=sent
            )

        self._ensure_schema()
        with bounded(self.operation_timeout(lease)):
            return self._claim_loop(attempt)

    _claim_round_trips = 1

    @abstractmethod
    def _claim_row(self, cur: Any, params: dict[str, Any]) -> RecordRow | None:
        """Run the claim statement(s) and return the record as it now stands."""

    def _select_row(self, cur: Any, key: str) -> RecordRow | None:
        cur.execute(
            self._sql(f"SELECT {COLUMNS}, {{now}} FROM {{t}} WHERE idem_key = %(key)s"),
            {"key": key},
        )
        return self._row(cur.fetchone())

    # -- fenced writes ----------------------------------------------------------
    def _fenced_update(
        self,
        lease: Lease,
        assignments: str,
        extra: dict[str, Any],
        done_status: str | None,
        op: str,
    ) -> None:
        params = {"key": lease.key, "epoch": lease.epoch, "owner": lease.owner, **extra}
        sql = self._sql(f"UPDATE {{t}} SET {assignments} WHERE {FENCE}")
        what = f"{op} of key {lease.key!r}"
        self._ensure_schema()
        with bounded(self.operation_timeout(lease.lease_seconds)):
            matched = self._op(lambda cur: _rowcount(cur, sql, params), what=what, key=lease.key)
            if matched:
                return
            row = self._op(lambda cur: self._select_row(cur, lease.key), what=what, key=lease.key)
        if (
            done_status is not None
            and row is not None
            and row.status == done_status
            and row.owner == lease.owner
            and row.epoch == lease.epoch
        ):
            return  # our earlier attempt went through; its reply was lost
        raise _lease_lost(lease, op, row)

    def complete(self, lease: Lease, result: bytes, *, ttl: float | None) -> None:
        self._fenced_update(
            lease,
            COMPLETE_ASSIGNMENTS,
            {"result": result, "ttl": ttl},
            COMPLETED,
            "complete",
        )

    def release(self, lease: Lease, *, ttl: float | None) -> None:
        self._fenced_update(
            lease,
            "status = 'released', lease_expires = {now}, expires_at = {now} + %(ttl)s",
            {"ttl": ttl},
            RELEASED,
            "release",
        )

    def heartbeat(self, lease: Lease, *, lease_seconds: float | None = None) -> None:
        seconds = lease.lease_seconds if lease_seconds is None else float(lease_seconds)
        self._fenced_update(
            lease,
            "lease_expires = {now} + %(lease)s, "
            "expires_at = CASE WHEN expires_at IS NULL THEN NULL "
            "WHEN expires_at < {now} + %(lease)s THEN {now} + %(lease)s ELSE expires_at END",
            {"lease": seconds},
            None,
            "heartbeat",
        )

    # -- steps --------------------------------------------------------------------
    def load_steps(self, lease: Lease) -> dict[str, bytes]:
        sql = self._sql("SELECT name, result FROM {s} WHERE idem_key = %(key)s AND run = %(run)s")

        def run(cur: Any) -> dict[str, bytes]:
            cur.execute(sql, {"key": lease.key, "run": lease.run})
            return {_text(name): bytes(result) for name, result in cur.fetchall()}

        self._ensure_schema()
        with bounded(self.operation_timeout(lease.lease_seconds)):
            return self._op(run, what=f"loading the steps of key {lease.key!r}", key=lease.key)

    @abstractmethod
    def _insert_step_sql(self) -> str:
        """INSERT ... SELECT from the record row under FENCE (locking it), ignoring duplicates."""

    # -- statements for a caller's own transaction (atomic steps, atomic tasks) -----
    share_lock = ""
    """The clause that makes a SELECT lock the rows it reads until commit (none on SQLite,
    whose writer holds the whole database)."""

    def raw_sql(self, template: str) -> str:
        """``template`` with this store's tables and clock filled in and its ``%(name)s``
        placeholders left alone: for a connection that is not the store's own (the
        caller's transaction in :mod:`idemlint.runtime.atomic`), whose driver wants its
        own placeholder style."""
        key = "raw:" + template
        sql = self._statements.get(key)
        if sql is None:
            sql = template.format(t=self.table, s=self.steps_table, now=self.now_sql)
            self._statements[key] = sql
        return sql

    def atomic_step_sql(self) -> str:
        """The step record written in the caller's transaction: inserted from the record row
        under FENCE, which it locks until the caller commits; 0 rows when fenced off or
        when the step is recorded already (never an error, never an update)."""
        return self.raw_sql(self._insert_step_sql())

    def atomic_step_recorded_sql(self) -> str:
        """The stored result of step ``name`` in the holder's run, read under the fence."""
        return self.raw_sql(
            "SELECT result FROM {s} WHERE idem_key = %(key)s AND name = %(name)s"
            f" AND run IN (SELECT run FROM {{t}} WHERE {FENCE}){self.share_lock}"
        )

    def atomic_complete_sql(self) -> str:
        """The completion written in the caller's transaction (whole-task atomic mode): the
        same fenced UPDATE as :meth:`complete`; its row lock holds until the caller commits."""
        return self.raw_sql(f"UPDATE {{t}} SET {COMPLETE_ASSIGNMENTS} WHERE {FENCE}")

    def save_step(self, lease: Lease, name: str, result: bytes) -> None:
        validate_step_name(name, lease.key)
        self._ensure_schema()
        with bounded(self.operation_timeout(lease.lease_seconds)):
            self._save_step(lease, name, result)

    def _save_step(self, lease: Lease, name: str, result: bytes) -> None:
        what = f"step {name!r} of key {lease.key!r}"
        params = {
            "key": lease.key,
            "epoch": lease.epoch,
            "owner": lease.owner,
            "name": name,
            "result": result,
        }
        sql = self._sql(self._insert_step_sql())
        if self._op(lambda cur: _rowcount(cur, sql, params), what=what, key=lease.key):
            return
        # Nothing inserted: either the fence failed, or the step is already recorded in
        # this run (our own write whose reply was lost, or an earlier attempt's): the
        # first recorded result stands, and that is success as long as we still hold.
        check = self._sql(
            f"SELECT 1 FROM {{t}} WHERE {FENCE} AND EXISTS (SELECT 1 FROM {{s}}"
            " WHERE {s}.idem_key = {t}.idem_key AND {s}.run = {t}.run AND {s}.name = %(name)s)"
        )

        def mine(cur: Any) -> bool:
            cur.execute(check, params)
            return cur.fetchone() is not None

        if self._op(mine, what=what, key=lease.key):
            return  # our earlier write went through; its reply was lost
        row = self._op(lambda cur: self._select_row(cur, lease.key), what=what, key=lease.key)
        raise _lease_lost(lease, f"step {name!r}", row)

    # -- administration -----------------------------------------------------------
    def get(self, key: str) -> RecordRow | None:
        validate_key(key)
        self._ensure_schema()
        with bounded(self.operation_timeout()):
            return self._op(
                lambda cur: self._select_row(cur, key), what=f"reading key {key!r}", key=key
            )

    def delete(self, key: str) -> bool:
        validate_key(key)

        def run(cur: Any) -> bool:
            cur.execute(self._sql("DELETE FROM {s} WHERE idem_key = %(key)s"), {"key": key})
            cur.execute(self._sql("DELETE FROM {t} WHERE idem_key = %(key)s"), {"key": key})
            return bool(cur.rowcount)

        self._ensure_schema()
        with bounded(self.operation_timeout()):
            return self._op(run, round_trips=2, what=f"deleting key {key!r}", key=key)

    def purge_expired(self) -> int:
        expired = self._sql(
            "DELETE FROM {t} WHERE expires_at IS NOT NULL AND expires_at <= {now} "
            "AND (status <> 'in_progress' OR lease_expires <= {now})"
        )
        orphans = self._sql(
            "DELETE FROM {s} WHERE NOT EXISTS "
            "(SELECT 1 FROM {t} WHERE {t}.idem_key = {s}.idem_key AND {t}.run = {s}.run)"
        )

        def run(cur: Any) -> int:
            cur.execute(expired)
            count = int(cur.rowcount)
            cur.execute(orphans)
            return count

        self._ensure_schema()
        with bounded(self.admin_timeout()):
            return self._op(run, round_trips=2, what="purge_expired")


def _text(value: Any) -> str:
    """A text column as str (MySQL's binary key columns come back as bytes)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    return str(value)


_MAX_DETAIL = 240


def describe_error(exc: BaseException) -> str:
    """A driver error in one short line: its type and message, never the statement it ran.

    Driver messages can carry a whole SQL statement (PyMySQL's encoding
    errors hold the formatted query, values and all; PostgreSQL adds a
    ``LINE 1:`` excerpt); an operator needs the error's kind and the server's
    words, not a kilobyte of SQL.
    """
    name = type(exc).__name__
    if isinstance(exc, UnicodeError):
        reason = getattr(exc, "reason", "")
        start = getattr(exc, "start", None)
        where = f" at position {start} of a value" if isinstance(start, int) else ""
        return f"{name}: {reason}{where}"
    args = exc.args
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    if isinstance(primary, str) and primary:
        text = primary  # psycopg: the server's message without its "LINE 1: <statement>"
    elif len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = f"({args[0]}) {args[1]}"  # PyMySQL: (code, message)
    else:
        text = str(exc)
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1] + "…"
    return f"{name}: {text}" if text else name


def _rowcount(cur: Any, sql: str, params: dict[str, Any]) -> int:
    cur.execute(sql, params)
    return int(cur.rowcount)


def _lease_lost(lease: Lease, op: str, row: RecordRow | None) -> LeaseLost:
    if row is None:
        now = "the record is gone (purged or deleted)"
    elif row.owner != lease.owner:
        now = f"the record is now held at epoch {row.epoch} ({row.status})"
    else:
        now = f"the record is {row.status}"
    return LeaseLost(
        f"{op} of key {lease.key!r} refused: this holder's epoch {lease.epoch} "
        f"was fenced off; {now}",
        key=lease.key,
        epoch=lease.epoch,
    )


__all__ = ["COLUMNS", "DEAD", "FENCE", "IN_PROGRESS", "TAKEABLE", "SQLStore", "describe_error"]

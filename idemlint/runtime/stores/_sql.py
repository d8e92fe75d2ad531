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
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from idemlint.runtime.errors import ConfigurationError, IdempotencyError, LeaseLost, StoreError
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
    validate_identifier,
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
    ) -> None:
        super().__init__()
        self.table = validate_identifier(table)
        self.steps_table = validate_identifier(f"{table}_steps", "steps table name")
        if max_result_bytes is not None:
            if max_result_bytes <= 0:
                raise ConfigurationError("max_result_bytes must be positive")
            self.max_result_bytes = int(max_result_bytes)
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
        if not self._schema_ready:
            with self._schema_lock:
                if not self._schema_ready:
                    self.create_schema()

    def create_schema(self) -> None:
        statements = [self._sql(s) for s in self._schema_statements()]

        def run(cur: Any) -> None:
            for statement in statements:
                cur.execute(statement)

        self._guarded(lambda: self._transact(run, round_trips=len(statements)))
        self._schema_ready = True

    def drop_schema(self) -> None:
        def run(cur: Any) -> None:
            cur.execute(self._sql("DROP TABLE IF EXISTS {s}"))
            cur.execute(self._sql("DROP TABLE IF EXISTS {t}"))

        self._guarded(lambda: self._transact(run, round_trips=2))
        self._schema_ready = not self._create

    def _guarded(self, fn: Callable[[], T]) -> T:
        """``fn()`` with driver errors turned into :class:`StoreError`."""
        try:
            return fn()
        except IdempotencyError:
            raise
        except Exception as exc:
            raise StoreError(f"{self.dialect} store {self.table!r} failed: {exc!r}") from exc

    def _op(self, fn: Callable[[Any], T], *, round_trips: int = 1) -> T:
        """Run a store operation, translating driver errors to :class:`StoreError`."""
        self._ensure_schema()
        return self._guarded(lambda: self._transact(fn, round_trips=round_trips))

    def _row(self, values: Sequence[Any] | None) -> RecordRow | None:
        if values is None:
            return None
        key, status, epoch, run, owner, fp, lease_expires, expires_at, result, kind, now = values
        return RecordRow(
            key=key,
            status=status,
            epoch=int(epoch),
            run=int(run),
            owner=owner,
            fingerprint=fp,
            lease_expires=float(lease_expires),
            expires_at=None if expires_at is None else float(expires_at),
            result=None if result is None else bytes(result),
            claim_kind=kind,
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
        owner = new_owner_token()
        params = self._claim_params(key, fingerprint, lease, ttl, owner)

        def attempt() -> ClaimResult:
            import time

            sent = time.monotonic()
            row = self._op(
                lambda cur: self._claim_row(cur, params), round_trips=self._claim_round_trips
            )
            return interpret_claim(
                row, key=key, owner=owner, fingerprint=fingerprint, lease_seconds=lease, sent=sent
            )

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
        matched = self._op(lambda cur: _rowcount(cur, sql, params))
        if matched:
            return
        row = self._op(lambda cur: self._select_row(cur, lease.key))
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
            "status = 'completed', result = %(result)s, lease_expires = {now}, "
            "expires_at = {now} + %(ttl)s",
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
            return {name: bytes(result) for name, result in cur.fetchall()}

        return self._op(run)

    @abstractmethod
    def _insert_step_sql(self) -> str:
        """INSERT ... SELECT from the record row under FENCE (locking it), ignoring duplicates."""

    def save_step(self, lease: Lease, name: str, result: bytes) -> None:
        params = {
            "key": lease.key,
            "epoch": lease.epoch,
            "owner": lease.owner,
            "name": name,
            "result": result,
        }
        sql = self._sql(self._insert_step_sql())
        if self._op(lambda cur: _rowcount(cur, sql, params)):
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

        if self._op(mine):
            return  # our earlier write went through; its reply was lost
        raise _lease_lost(lease, f"step {name!r}", self.get(lease.key))

    # -- administration -----------------------------------------------------------
    def get(self, key: str) -> RecordRow | None:
        return self._op(lambda cur: self._select_row(cur, key))

    def delete(self, key: str) -> bool:
        def run(cur: Any) -> bool:
            cur.execute(self._sql("DELETE FROM {s} WHERE idem_key = %(key)s"), {"key": key})
            cur.execute(self._sql("DELETE FROM {t} WHERE idem_key = %(key)s"), {"key": key})
            return bool(cur.rowcount)

        return self._op(run, round_trips=2)

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

        return self._op(run, round_trips=2)


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


__all__ = ["COLUMNS", "DEAD", "FENCE", "IN_PROGRESS", "TAKEABLE", "SQLStore"]

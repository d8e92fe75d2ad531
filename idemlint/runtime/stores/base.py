"""The store contract every backend implements, and the logic they share.

A *record* per idempotency key holds::

    status         in_progress | completed | released
    epoch          fencing token, +1 on every successful claim of the key
    run            epoch at which the current logical run began; step records
                   belong to a run, so a record that outlived its ttl starts
                   afresh while a crashed or failed attempt keeps its steps
    owner          random token of the claim that holds (or held) the record;
                   with the epoch it fences every write, and it stays unique
                   even if a purge resets the epoch counter
    fingerprint    hash of the call's arguments (KeyReuseError on mismatch)
    lease_expires  store-clock time the holder's lease ends
    expires_at     store-clock time the record may be purged (ttl), or NULL
    result         serialised result once completed

A claim takes the record when it is absent, released (same arguments), an
in-progress record whose lease ran out (same arguments), or any record past
its ttl. All times come from the store's clock, never the client's, so
workers on different machines agree on who holds a lease.

The decision "did *I* get it?" is made by comparing the owner token the
claim wrote with the one the store returns (:func:`interpret_claim`); that
makes one statement (or one script) enough for a claim on every backend, and
a claim retried after a lost reply recognises its own success.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from idemlint.runtime.errors import (
    ConfigurationError,
    DurabilityError,
    KeyBuildError,
    KeyReuseError,
    StoreError,
)

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
RELEASED = "released"

MAX_KEY_LENGTH = 255
"""Longest key every backend indexes (a MariaDB primary key is the tight one)."""

# fullmatch, not match with "$": "$" also matches before a trailing newline, which let
# "jobs\n" through as a table name and "idemlint\n" as a Redis prefix
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")

LEASE_FRACTION = 0.25
"""Default time budget of a store operation, as a fraction of the caller's lease."""
MIN_TIMEOUT = 2.0
"""Floor of the default budget: a tiny lease must not turn a normal round trip into a timeout."""
MAX_TIMEOUT = 10.0
"""Ceiling of the default budget, and the budget of ``get``/``delete`` (no lease)."""
ADMIN_TIMEOUT = 60.0
"""Default budget of the whole-table operations: schema creation, ``drop_schema``, purge."""


def validate_identifier(name: str, what: str = "table name") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise.

    Table names are the one piece of SQL text that cannot be a parameter, so
    they must match this pattern before they come near a statement.
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"invalid {what} {name!r}: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 48 characters"
        )
    return name


def validate_prefix(prefix: str) -> str:
    """Return a Redis key prefix if it is tame (no spaces, newlines, braces or globs)."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(
            f"invalid key prefix {prefix!r}: use letters, digits and _ . : -, at most 64 characters"
        )
    return prefix


def _text_problem(text: object, limit: int) -> str | None:
    """What makes ``text`` unstorable by some backend, or None when every backend keeps it."""
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not a str"
    if not text:
        return "is empty"
    if len(text) > limit:
        return f"is {len(text)} characters long; the limit is {limit}"
    nul = text.find("\x00")
    if nul >= 0:
        return f"contains a NUL character (at position {nul}), which PostgreSQL cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate {text[exc.start]!r} (at position {exc.start}), "
            "which has no UTF-8 form"
        )
    return None


def validate_key(key: str) -> str:
    """Return ``key`` if every store can keep it exactly as given, else :class:`KeyBuildError`.

    Checked by every store, so all of them refuse the same keys with the same
    error (and say what is wrong), instead of one storing a key another
    cannot, or failing with a driver's encoding error.
    """
    problem = _text_problem(key, MAX_KEY_LENGTH)
    if problem is not None:
        shown = key[:64] + "…" if isinstance(key, str) and len(key) > 64 else key
        raise KeyBuildError(
            f"the idempotency key {shown!r} {problem}",
            key=shown if isinstance(shown, str) else None,
        )
    return key


def validate_fingerprint(fingerprint: str, key: str) -> str:
    """Return ``fingerprint`` if every store can keep it (a hash, normally), else KeyBuildError."""
    problem = _text_problem(fingerprint, 64)
    if problem is not None:
        raise KeyBuildError(f"the argument fingerprint of key {key!r} {problem}", key=key)
    return fingerprint


def validate_step_name(name: str, key: str | None = None) -> str:
    """Return a step name if every store can keep it exactly, else :class:`ConfigurationError`."""
    problem = _text_problem(name, MAX_KEY_LENGTH)
    if problem is not None:
        raise ConfigurationError(f"the step name {name!r} {problem}", key=key)
    return name


def validate_max_result_bytes(value: object) -> int:
    """A positive whole number of bytes, else :class:`ConfigurationError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(
            f"max_result_bytes must be a positive whole number of bytes, not {value!r}"
        )
    return value


def validate_seconds(value: object, name: str) -> float | None:
    """None, or a positive finite number of seconds, else :class:`ConfigurationError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def new_owner_token() -> str:
    """A fresh claim token: 128 random bits, never reused across claims."""
    return secrets.token_hex(16)


@dataclass(slots=True)
class RecordRow:
    """A record as a store returns it, plus the store's clock at read time."""

    key: str
    status: str
    epoch: int
    run: int
    owner: str
    fingerprint: str
    lease_expires: float
    expires_at: float | None
    result: bytes | None
    claim_kind: str
    now: float

    @property
    def dead(self) -> bool:
        """Past its ttl (and not held by a live lease): the next claim starts a new run."""
        if self.expires_at is None or self.expires_at > self.now:
            return False
        return self.status != IN_PROGRESS or self.lease_expires <= self.now


@dataclass
class Lease:
    """What a successful claim hands its holder: the fencing credentials.

    ``epoch`` is the fencing token to pass on to downstream systems;
    ``owner`` makes every write of this holder unforgeable by another.
    ``deadline`` is a *local* monotonic estimate of when the lease ends (the
    store's clock decides; the estimate is conservative because it starts
    before the claim was sent).
    """

    key: str
    epoch: int
    run: int
    owner: str
    lease_seconds: float
    kind: str
    """``new`` (first claim of a run), ``retry`` (after a released attempt) or ``takeover``."""
    deadline: float = 0.0
    lost: bool = False


@dataclass(frozen=True)
class Claimed:
    """The claim succeeded; run the function under ``lease``."""

    lease: Lease


@dataclass(frozen=True)
class Completed:
    """The key is done; ``result`` is the stored, serialised result."""

    key: str
    epoch: int
    result: bytes


@dataclass(frozen=True)
class InProgress:
    """Another holder's lease is live for ``retry_after`` more seconds."""

    key: str
    epoch: int
    retry_after: float


ClaimResult = Claimed | Completed | InProgress


class _Retry(Exception):
    """The row changed between the claim and the read; claim again."""


def interpret_claim(
    row: RecordRow | None,
    *,
    key: str,
    owner: str,
    fingerprint: str,
    lease_seconds: float,
    sent: float,
) -> ClaimResult:
    """Turn the row a claim statement left behind into the caller's outcome.

    ``sent`` is the monotonic time the claim was sent, the start of the local
    lease estimate. Raises :class:`KeyReuseError` on a fingerprint mismatch and
    ``_Retry`` when the row shows a state the claim should have taken (only
    possible when a concurrent writer slipped in between statement and read).
    """
    if row is None:
        raise _Retry()
    if row.owner == owner:
        lease = Lease(
            key=key,
            epoch=row.epoch,
            run=row.run,
            owner=owner,
            lease_seconds=lease_seconds,
            kind=row.claim_kind,
            deadline=sent + lease_seconds,
        )
        return Claimed(lease)
    if row.dead:
        raise _Retry()
    if row.fingerprint != fingerprint:
        raise KeyReuseError(
            f"idempotency key {key!r} was used before with different arguments "
            f"(stored fingerprint {row.fingerprint[:12]}…, this call {fingerprint[:12]}…); "
            "make the key include whatever tells the calls apart",
            key=key,
            stored_fingerprint=row.fingerprint,
            fingerprint=fingerprint,
        )
    if row.status == COMPLETED:
        return Completed(key=key, epoch=row.epoch, result=row.result or b"")
    if row.status == IN_PROGRESS and row.lease_expires > row.now:
        return InProgress(
            key=key, epoch=row.epoch, retry_after=max(0.0, row.lease_expires - row.now)
        )
    raise _Retry()


@dataclass
class StoreStats:
    """Requests sent to the store (each one network round trip for remote stores)."""

    round_trips: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.round_trips += n


C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """A minimal thread-safe pool: reuse idle connections, drop broken ones.

    A per-call connect would cost more round trips than the claim itself, and
    one shared connection would serialise every thread of a worker.
    """

    def __init__(
        self, connect: Callable[[], C], close: Callable[[C], None], max_idle: int = 16
    ) -> None:
        self._connect = connect
        self._close = close
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[C]:
        """Lend a connection; it goes back to the pool only if no error escaped."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            self._discard(conn)
            raise
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        self._discard(conn)

    def _discard(self, conn: C) -> None:
        with suppress(Exception):
            self._close(conn)

    def close(self) -> None:
        """Close every idle connection; later use reconnects."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)


T = TypeVar("T")


class Store(ABC):
    """An idempotency-key store. All methods are thread-safe and synchronous.

    The async side of the runtime calls them in a worker thread, so one store
    object serves sync and async code alike.
    """

    url: str = ""
    max_result_bytes: int = 1024 * 1024
    """Largest serialised result (or step result) the store accepts."""
    durability: str = "database"
    """How records survive a restart of the store: ``database`` (a SQL server's commits),
    ``file`` (SQLite), ``memory`` (lost with the store object), and on Redis ``aof``,
    ``rdb``, ``none`` or ``unknown`` (see docs/runtime/stores.md#durability)."""
    durability_warning: str | None = None
    """Why records may be lost on a restart (also logged as a warning), or None."""

    def __init__(
        self,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        require_durable: bool = False,
    ) -> None:
        self.stats = StoreStats()
        self.timeout = validate_seconds(timeout, "timeout")
        """Budget of every operation; None: a fraction of the caller's lease
        (see :meth:`operation_timeout`)."""
        self.connect_timeout = validate_seconds(connect_timeout, "connect_timeout")
        """Cap on opening a connection; None: whatever is left of the operation's budget."""
        self.require_durable = bool(require_durable)

    def operation_timeout(self, lease_seconds: float | None = None) -> float:
        """The time budget of one operation for a caller holding (or asking) a lease.

        The ``timeout=`` option if given; else a quarter of the lease, at least
        1 s and at most 10 s (``get``/``delete``, which have no lease: 10 s).
        Tying it to the lease is the point: an answer that arrives after the
        lease is over is worth nothing, so waiting longer only holds the
        worker; the quarter leaves room for the completion retries within
        the lease.
        """
        if self.timeout is not None:
            return self.timeout
        if lease_seconds is None:
            return MAX_TIMEOUT
        return min(max(float(lease_seconds) * LEASE_FRACTION, MIN_TIMEOUT), MAX_TIMEOUT)

    def admin_timeout(self) -> float:
        """Budget of whole-table operations (schema, purge): at least ``ADMIN_TIMEOUT``."""
        return max(self.timeout or 0.0, ADMIN_TIMEOUT)

    def _durability_found(self, durability: str, warning: str | None, *, log: bool = True) -> None:
        """Record how the store keeps records; warn, or refuse under ``require_durable``.

        ``log=False`` for a store whose loss is its documented nature (SQLite in
        memory, for tests): the warning is kept on the store, not logged.
        """
        from idemlint.runtime.observability import logger

        self.durability = durability
        self.durability_warning = warning
        if warning is None:
            return
        if self.require_durable:
            raise DurabilityError(f"{self.url}: {warning} (require_durable=True)")
        if log:
            logger.warning("idempotency store %s: %s", self.url, warning)

    # -- schema -------------------------------------------------------------
    @abstractmethod
    def create_schema(self) -> None:
        """Create the table(s) or scripts this store needs; safe to repeat."""

    @abstractmethod
    def drop_schema(self) -> None:
        """Remove everything this store created (tests, teardown)."""

    # -- record lifecycle ---------------------------------------------------
    @abstractmethod
    def claim(self, key: str, fingerprint: str, *, lease: float, ttl: float | None) -> ClaimResult:
        """Atomically claim ``key`` or report why not (one round trip in the common case)."""

    @abstractmethod
    def complete(self, lease: Lease, result: bytes, *, ttl: float | None) -> None:
        """Store the result and mark the key done; ``LeaseLost`` if fenced off."""

    @abstractmethod
    def release(self, lease: Lease, *, ttl: float | None) -> None:
        """Give the claim up after a failure (steps are kept); ``LeaseLost`` if fenced off."""

    @abstractmethod
    def heartbeat(self, lease: Lease, *, lease_seconds: float | None = None) -> None:
        """Extend the lease from the store's now; ``LeaseLost`` if fenced off."""

    # -- steps --------------------------------------------------------------
    @abstractmethod
    def load_steps(self, lease: Lease) -> dict[str, bytes]:
        """The step results recorded in the lease's run, by step name."""

    @abstractmethod
    def save_step(self, lease: Lease, name: str, result: bytes) -> None:
        """Record a step result, fenced by the lease; ``LeaseLost`` if fenced off."""

    # -- administration -----------------------------------------------------
    @abstractmethod
    def get(self, key: str) -> RecordRow | None:
        """The record for ``key`` as stored (inspection, tests, tooling)."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Forget a key and its steps; True if it existed."""

    @abstractmethod
    def purge_expired(self) -> int:
        """Delete records past their ttl (never a live lease); returns how many."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store reconnects if used again."""

    # -- shared helpers -----------------------------------------------------
    def _claim_loop(self, attempt: Callable[[], ClaimResult]) -> ClaimResult:
        """Repeat a claim attempt that raced a concurrent writer (bounded)."""
        for _ in range(50):
            try:
                return attempt()
            except _Retry:
                time.sleep(0.001)
        raise StoreError("claim kept racing concurrent writers; giving up after 50 attempts")

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


def lease_bounds(lease: float) -> float:
    """Validate a lease length in seconds."""
    if not lease > 0:
        raise ConfigurationError(f"lease must be a positive number of seconds, not {lease!r}")
    return float(lease)

"""The Redis store (redis-py): a plain ``SET`` for the common claim, Lua for the rest.

A record is one string ``<prefix>:r:<key>`` (layout and scripts in
:mod:`idemlint.runtime.stores._redis_record`); its steps are a hash
``<prefix>:s:<key>`` with fields ``<run>:<step name>``. Both carry the
record's ttl as a native expiry, so Redis drops finished records itself.

Round trips and server work per call:

* first call on a key with a ttl: ``SET key <record> PX <lease+ttl> NX GET``
  claims it (atomic; no script, no clock read: the lease end is implied by
  the key's expiry), then one small ``FINISH`` script completes it, fenced by
  ``owner|epoch`` - two round trips;
* replay: the same ``SET ... NX GET`` returns the completed record instead
  of writing - one round trip;
* a key in progress, released or past its lease (and every claim without a
  ttl): the ``CLAIM`` script reads the server's ``TIME`` and decides
  atomically, as one more round trip when the ``SET`` went first.

Every script reads, decides and writes atomically on the server, so no other
client slips in between a check and its write. Servers older than Redis 7.0
(where ``SET`` rejects ``NX`` with ``GET``) are detected on the first claim
and served by the script alone.

Redis keeps data in memory; whether a record survives a restart is the
server's configuration (``appendonly``, ``save``) and whether it survives
memory pressure is its ``maxmemory-policy``. Opening the store reads them
(``CONFIG GET``) and warns - or, with ``require_durable=True``, refuses -
when records would be lost: a completed job whose record is gone runs again.

Every request is bounded by the operation's budget (tied to the caller's
lease): the connections are redis-py's own classes with their socket
timeouts taken from the deadline of the call (``stores/_deadline.py``), so a
frozen server fails the call with :class:`StoreError` instead of hanging it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from idemlint.runtime.errors import ConfigurationError, IdempotencyError, StoreError
from idemlint.runtime.stores._deadline import bounded, deadline, remaining
from idemlint.runtime.stores._redis_record import (
    SCRIPTS,
    Record,
    decode,
    fresh,
    lease_end_ms,
    to_row,
)
from idemlint.runtime.stores._sql import describe_error
from idemlint.runtime.stores._url import check_network_url, strip_our_options
from idemlint.runtime.stores.base import (
    COMPLETED,
    Claimed,
    ClaimResult,
    Completed,
    InProgress,
    Lease,
    RecordRow,
    Store,
    interpret_claim,
    validate_fingerprint,
    validate_key,
    validate_max_result_bytes,
    validate_prefix,
    validate_step_name,
)

T = TypeVar("T")

try:
    import redis
except ImportError as _exc:  # pragma: no cover - exercised without the extra installed
    redis = None  # type: ignore[assignment]
    _import_error: ImportError | None = _exc
else:
    _import_error = None

_NO_FAST_PATH = object()
"""What :meth:`RedisStore._set_claim` returns when the server cannot do ``SET NX GET``."""

DURABILITY_CHECK_TIMEOUT = 2.0
"""How long opening the store waits for the server's settings (``timeout=`` replaces it)."""

_TRANSIENT_REPLIES = ("BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "LOADING", "CLUSTERDOWN")
"""Error replies that pass on their own (a script running, a failover, a restart loading)."""


class _BoundedConnection:
    """Mixin over a redis-py connection class: every wait is bounded by the call's deadline.

    redis-py sets one socket timeout per connection (``socket_timeout=``), and
    none by default. This sets it from the deadline of the store operation in
    progress (``stores/_deadline.py``) before each connect and each command,
    never above a ``socket_timeout`` / ``socket_connect_timeout`` the caller
    passed, which stay caps. It relies on redis-py's ``connect()``,
    ``send_packed_command()`` and ``_sock`` (stable from redis-py 4 to 5).
    """

    socket_timeout: float | None
    socket_connect_timeout: float | None
    _sock: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idemlint_caps = (self.socket_timeout, self.socket_connect_timeout)

    def _idemlint_bound(self) -> float | None:
        read_cap, connect_cap = self._idemlint_caps
        left = remaining()
        if left is None:
            self.socket_timeout, self.socket_connect_timeout = read_cap, connect_cap
            return read_cap
        left = max(0.001, left)  # 0 would make the socket non-blocking, not timed
        self.socket_timeout = left if read_cap is None else min(left, read_cap)
        self.socket_connect_timeout = left if connect_cap is None else min(left, connect_cap)
        return self.socket_timeout

    def connect(self) -> None:
        self._idemlint_bound()
        super().connect()  # type: ignore[misc]

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        timeout = self._idemlint_bound()
        if self._sock is not None:
            self._sock.settimeout(timeout)
        super().send_packed_command(command, check_health)  # type: ignore[misc]


_BOUNDED: dict[type, type] = {}


def _bounded_class(base: type) -> type:
    """``base`` (Connection, SSLConnection, UnixDomainSocketConnection) with the mixin."""
    cls = _BOUNDED.get(base)
    if cls is None:
        if issubclass(base, _BoundedConnection):
            return base
        cls = type(f"Bounded{base.__name__}", (_BoundedConnection, base), {})
        _BOUNDED[base] = cls
    return cls


class RedisStore(Store):
    """Idempotency records as Redis strings, claimed with ``SET NX`` and fenced by Lua."""

    claim_set_options: tuple[str, ...] = ("NX", "GET")
    """The options of the fast claim's ``SET`` (``NX GET`` needs Redis 7.0).

    A server that answers them with a syntax error turns the fast claim off
    for the store; the tests emulate such a server by adding an option.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "idemlint",
        max_result_bytes: int | None = None,
        fast_claim: bool = True,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        require_durable: bool = False,
        **options: Any,
    ) -> None:
        if redis is None:
            from idemlint.runtime.stores import missing_driver

            assert _import_error is not None
            raise missing_driver("redis", "redis", _import_error)
        super().__init__(
            timeout=timeout, connect_timeout=connect_timeout, require_durable=require_durable
        )
        self.prefix = validate_prefix(prefix)
        if max_result_bytes is not None:
            self.max_result_bytes = validate_max_result_bytes(max_result_bytes)
        self.fast_claim = bool(fast_claim)
        """Claim with a plain ``SET NX GET`` first (off: every claim is the script)."""
        from idemlint.runtime.stores import _redact

        self.url = _redact(url)
        check_network_url(url)
        options.pop("create", None)
        options.setdefault("client_name", "idemlint")
        if self.connect_timeout is not None:
            options.setdefault("socket_connect_timeout", self.connect_timeout)
        try:
            self.client: redis.Redis = redis.Redis.from_url(url, **options)
        except ValueError as exc:  # redis-py's URL parser: a bad db number, option value...
            raise ConfigurationError(f"bad Redis URL {self.url!r}: {exc}") from None
        pool = self.client.connection_pool
        pool.connection_class = _bounded_class(pool.connection_class)
        self._scripts = {
            name: (hashlib.sha1(source.encode()).hexdigest(), source)
            for name, source in SCRIPTS.items()
        }
        self.durability = "unknown"
        self._durability_pending = True
        self.check_durability()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        check_network_url(url)
        return cls(strip_our_options(url), **options)

    # -- durability -------------------------------------------------------------
    def check_durability(self) -> str:
        """Read the server's persistence and eviction settings; warn or refuse if records may go.

        Sets :attr:`durability` (``aof``, ``rdb``, ``none`` or ``unknown``) and
        :attr:`durability_warning`, logs the warning, and raises
        :class:`~idemlint.runtime.errors.DurabilityError` instead under
        ``require_durable=True``. A server that cannot be reached now is
        checked again before the first claim. Returns :attr:`durability`.
        """

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for name in ("save", "appendonly", "maxmemory", "maxmemory-policy"):
                pipe.config_get(name)
            return list(pipe.execute())

        limit = self.timeout if self.timeout is not None else DURABILITY_CHECK_TIMEOUT
        try:
            with bounded(limit):
                replies = self._call(read, "reading the persistence settings (CONFIG GET)")
        except StoreError as exc:
            if exc.transient:  # unreachable or busy: decide before the first claim instead
                self._durability_pending = True
                return self.durability
            self._durability_pending = False
            cause = exc.__cause__
            self._durability_found(
                "unknown",
                "cannot read the server's persistence settings (CONFIG GET refused: "
                f"{describe_error(cause) if cause else exc}); if it keeps no append-only file "
                "or snapshots, a restart loses every idempotency record and completed jobs "
                "run again",
            )
            return self.durability
        self._durability_pending = False
        settings: dict[str, str] = {}
        for reply in replies:
            settings.update({_s(k): _s(v) for k, v in dict(reply).items()})
        self._durability_found(*_durability_of(settings))
        return self.durability

    def _check_durability_once(self) -> None:
        """Before a claim: finish a check the server was unreachable for at open."""
        if not self._durability_pending:
            return
        self.check_durability()
        if self._durability_pending and self.require_durable:
            raise StoreError(
                f"redis store {self.url}: cannot confirm the server persists its data "
                "(require_durable=True) because it does not answer",
                transient=True,
            )

    # -- requests ---------------------------------------------------------------
    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}:r:{key}", f"{self.prefix}:s:{key}"]

    def _call(self, fn: Callable[[], T], what: str = "request", key: str | None = None) -> T:
        """One request; a dropped connection is retried once (every request is repeatable),
        if the operation's deadline leaves time for it."""
        end = deadline()
        for attempt in (1, 2):
            self.stats.add(1)
            try:
                return fn()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                out_of_time = end is not None and time.monotonic() >= end - 0.001
                if attempt == 2 or out_of_time:
                    raise self._error(what, exc, key, attempt, out_of_time) from exc
            except redis.RedisError as exc:
                raise self._error(what, exc, key, attempt, False) from exc
        raise AssertionError("unreachable")

    def _error(
        self, what: str, exc: BaseException, key: str | None, attempts: int, out_of_time: bool
    ) -> StoreError:
        if out_of_time or isinstance(exc, redis.TimeoutError):
            detail = (
                f"no answer in time ({attempts} attempt{'s' if attempts > 1 else ''}; the "
                f"operation timeout is tied to the lease, timeout= to change it): "
                f"{describe_error(exc)}"
            )
        else:
            detail = describe_error(exc)
        transient = isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) or (
            isinstance(exc, redis.ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)
        )
        return StoreError(
            f"redis store {self.url}: {what} failed: {detail}", key=key, transient=transient
        )

    def _script(self, name: str, key: str, *args: Any, what: str | None = None) -> Any:
        """EVALSHA a script: one round trip (two if the server lost its script cache)."""
        sha, source = self._scripts[name]
        record, steps = f"{self.prefix}:r:{key}", f"{self.prefix}:s:{key}"

        def run() -> Any:
            try:
                return self.client.evalsha(sha, 2, record, steps, *args)
            except redis.exceptions.NoScriptError:
                self.client.script_load(source)  # after a restart or SCRIPT FLUSH
                return self.client.evalsha(sha, 2, record, steps, *args)

        return self._call(run, what or f"{name} of key {key!r}", key)

    def _set_claim(self, key: str, record: bytes, px: int) -> Any:
        """``SET record NX GET``: None if it claimed the key, else the record that stands.

        Repeating it after a lost reply is safe: the repeat finds the record
        the first one wrote, whose owner token is the caller's own.
        """
        name = f"{self.prefix}:r:{key}"

        def run() -> Any:
            try:
                return self.client.execute_command(  # type: ignore[no-untyped-call]
                    "SET", name, record, "PX", px, *self.claim_set_options, get=True
                )
            except redis.ResponseError as exc:
                if "syntax" not in str(exc).lower():
                    raise  # a StoreError, from _call
                self.fast_claim = False  # Redis < 7.0: NX and GET do not combine
                return _NO_FAST_PATH

        return self._call(run, f"claim of key {key!r}", key)

    def create_schema(self) -> None:
        """Load the scripts into the server's script cache (keys need no schema)."""
        with bounded(self.admin_timeout()):
            for _, source in self._scripts.values():
                self._load(source)

    def _load(self, source: Any) -> None:
        self._call(lambda: self.client.script_load(source), "loading a script")

    def _delete(self, names: list[Any]) -> None:
        self._call(lambda: self.client.delete(*names), "deleting keys")

    def _scan(self, pattern: str) -> list[Any]:
        """Every key name matching ``pattern`` (SCAN in batches, each a bounded request)."""
        names: list[Any] = []
        cursor: Any = 0
        while True:
            reply: Any = self._call(partial(self.client.scan, cursor, pattern, 500), "scanning")
            cursor, batch = reply
            names.extend(batch)
            if not int(cursor):
                return names

    def drop_schema(self) -> None:
        """Delete every key under this store's prefix."""
        with bounded(self.admin_timeout()):
            names = self._scan(f"{self.prefix}:[rs]:*")
            for start in range(0, len(names), 500):
                self._delete(names[start : start + 500])

    def claim(self, key: str, fingerprint: str, *, lease: float, ttl: float | None) -> ClaimResult:
        validate_key(key)
        validate_fingerprint(fingerprint, key)
        with bounded(self.operation_timeout(lease)):
            self._check_durability_once()
            return self._claim(key, fingerprint, lease, ttl)

    def _claim(self, key: str, fingerprint: str, lease: float, ttl: float | None) -> ClaimResult:
        owner = secrets.token_hex(16)
        lease_ms = max(1, int(lease * 1000))
        ttl_ms = None if ttl is None else max(1, int(ttl * 1000))
        if ttl_ms is not None and self.fast_claim:
            sent = time.monotonic()
            fp = fingerprint.encode("utf-8", "surrogateescape")
            value = self._set_claim(key, fresh(owner, fp, ttl_ms), lease_ms + ttl_ms)
            if value is None:  # the key was free: epoch 1 of a new run is ours
                return Claimed(Lease(key, 1, 1, owner, lease, "new", deadline=sent + lease))
            if value is not _NO_FAST_PATH:
                record = decode(value)
                if record.owner == owner:  # our SET went through; its reply was lost
                    return self._claimed(key, record, owner, lease, sent)
                if record.status == COMPLETED and record.fingerprint == fingerprint:
                    return Completed(key=key, epoch=record.epoch, result=record.result)
                if record.fingerprint != fingerprint:
                    # a visible record is within its ttl (Redis expires it at the ttl), so
                    # it is never "dead": reuse is decided without the clock
                    return interpret_claim(
                        to_row(key, record, 0, -1),
                        key=key,
                        owner=owner,
                        fingerprint=fingerprint,
                        lease_seconds=lease,
                        sent=sent,
                    )
                # in progress or released: whether it can be taken needs the server clock
        args = (owner, fingerprint, lease_ms, "" if ttl_ms is None else ttl_ms)

        def attempt() -> ClaimResult:
            sent = time.monotonic()
            value, now, pttl = self._script("claim", key, *args)
            record = decode(value)
            if record.owner == owner:
                return self._claimed(key, record, owner, lease, sent)
            outcome = interpret_claim(
                to_row(key, record, int(now), int(pttl)),
                key=key,
                owner=owner,
                fingerprint=fingerprint,
                lease_seconds=lease,
                sent=sent,
            )
            if isinstance(outcome, InProgress):  # in whole ms: float seconds since 1970 round
                left = lease_end_ms(record, int(now), int(pttl)) - int(now)
                return InProgress(key=key, epoch=record.epoch, retry_after=left / 1000.0)
            return outcome

        return self._claim_loop(attempt)

    @staticmethod
    def _claimed(key: str, record: Record, owner: str, lease: float, sent: float) -> Claimed:
        return Claimed(
            Lease(key, record.epoch, record.run, owner, lease, record.kind, deadline=sent + lease)
        )

    def _finish(self, lease: Lease, status: bytes, result: bytes, op: str) -> None:
        with bounded(self.operation_timeout(lease.lease_seconds)):
            fence = f"{lease.owner}|{lease.epoch}|"
            what = f"{op} of key {lease.key!r}"
            if not self._script("finish", lease.key, fence, status, result, what=what):
                raise self._lost(lease, op)

    def complete(self, lease: Lease, result: bytes, *, ttl: float | None) -> None:
        # the ttl was fixed at claim time (stored in the record) so a lost reply's retry agrees
        self._finish(lease, b"c", result, "complete")

    def release(self, lease: Lease, *, ttl: float | None) -> None:
        self._finish(lease, b"r", b"", "release")

    def heartbeat(self, lease: Lease, *, lease_seconds: float | None = None) -> None:
        seconds = lease.lease_seconds if lease_seconds is None else float(lease_seconds)
        fence = f"{lease.owner}|{lease.epoch}|"
        with bounded(self.operation_timeout(lease.lease_seconds)):
            if not self._script("heartbeat", lease.key, fence, max(1, int(seconds * 1000))):
                raise self._lost(lease, "heartbeat")

    def load_steps(self, lease: Lease) -> dict[str, bytes]:
        with bounded(self.operation_timeout(lease.lease_seconds)):
            fields = self._script("load_steps", lease.key)
        prefix = f"{lease.run}:"
        steps: dict[str, bytes] = {}
        for field, value in zip(fields[::2], fields[1::2], strict=True):
            name = _s(field)
            if name.startswith(prefix):
                steps[name[len(prefix) :]] = bytes(value)
        return steps

    def save_step(self, lease: Lease, name: str, result: bytes) -> None:
        validate_step_name(name, lease.key)
        fence = f"{lease.owner}|{lease.epoch}|"
        what = f"step {name!r} of key {lease.key!r}"
        with bounded(self.operation_timeout(lease.lease_seconds)):
            field = f"{lease.run}:{name}"
            if not self._script("save_step", lease.key, fence, field, result, what=what):
                raise self._lost(lease, f"step {name!r}")

    def get(self, key: str) -> RecordRow | None:
        validate_key(key)
        with bounded(self.operation_timeout()):
            values = self._script("get", key, what=f"reading key {key!r}")
        if not values:
            return None
        value, now, pttl = values
        return to_row(key, decode(value), int(now), int(pttl))

    def delete(self, key: str) -> bool:
        validate_key(key)
        with bounded(self.operation_timeout()):
            return bool(
                self._call(
                    lambda: self.client.delete(*self._keys(key)), f"deleting key {key!r}", key
                )
            )

    def purge_expired(self) -> int:
        """Delete steps hashes whose record is gone; returns how many.

        Redis itself removes a record when its ttl passes (its steps hash
        expires with it), so no record past its ttl is ever left to purge.
        What can be left is a steps hash whose record was deleted or evicted
        on its own; no run can use it (a new run ignores and replaces it),
        and this sweep frees its memory.
        """
        count = 0
        start = len(self.prefix) + 3
        with bounded(self.admin_timeout()):
            for name in self._scan(f"{self.prefix}:s:*"):
                count += int(self._script("purge", _s(name)[start:], what="purge_expired"))
        return count

    def _lost(self, lease: Lease, op: str) -> IdempotencyError:
        from idemlint.runtime.stores._sql import _lease_lost

        return _lease_lost(lease, op, self.get(lease.key))

    def close(self) -> None:
        self.client.close()


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _durability_of(settings: dict[str, str]) -> tuple[str, str | None]:
    """``(durability, warning or None)`` from the server's CONFIG values."""
    save = settings.get("save", "").strip()
    aof = settings.get("appendonly", "no").strip().lower() == "yes"
    if aof:
        durability = "aof"
    elif save:
        durability = "rdb"
    else:
        durability = "none"
    warnings: list[str] = []
    if durability == "none":
        warnings.append(
            "the server keeps no append-only file and no snapshots (appendonly no, save ''): "
            "a restart loses every idempotency record, and completed jobs run again. "
            "Turn on appendonly yes, or pass require_durable=True to refuse such a server"
        )
    policy = settings.get("maxmemory-policy", "noeviction").strip().lower()
    try:
        maxmemory = int(settings.get("maxmemory", "0") or 0)
    except ValueError:
        maxmemory = 0
    if maxmemory > 0 and policy != "noeviction":
        warnings.append(
            f"the server evicts keys when full (maxmemory {maxmemory}, maxmemory-policy "
            f"{policy}): an evicted record's job runs again. Use maxmemory-policy noeviction "
            "or a Redis of its own for idempotency records"
        )
    return durability, "; ".join(warnings) or None


__all__ = ["RedisStore"]

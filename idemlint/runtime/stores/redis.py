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
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from idemlint.runtime.errors import IdempotencyError, StoreError
from idemlint.runtime.stores._redis_record import (
    SCRIPTS,
    Record,
    decode,
    fresh,
    lease_end_ms,
    to_row,
)
from idemlint.runtime.stores._url import strip_our_options
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
    validate_prefix,
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
        **options: Any,
    ) -> None:
        if redis is None:
            from idemlint.runtime.stores import missing_driver

            assert _import_error is not None
            raise missing_driver("redis", "redis", _import_error)
        super().__init__()
        self.prefix = validate_prefix(prefix)
        if max_result_bytes is not None:
            self.max_result_bytes = int(max_result_bytes)
        self.fast_claim = bool(fast_claim)
        """Claim with a plain ``SET NX GET`` first (off: every claim is the script)."""
        from idemlint.runtime.stores import _redact

        self.url = _redact(url)
        options.pop("create", None)
        options.setdefault("client_name", "idemlint")
        self.client: redis.Redis = redis.Redis.from_url(url, **options)
        self._scripts = {
            name: (hashlib.sha1(source.encode()).hexdigest(), source)
            for name, source in SCRIPTS.items()
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        return cls(strip_our_options(url), **options)

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}:r:{key}", f"{self.prefix}:s:{key}"]

    def _call(self, fn: Callable[[], T]) -> T:
        """One request; a dropped connection is retried once (every request is repeatable)."""
        for attempt in (1, 2):
            self.stats.add(1)
            try:
                return fn()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == 2:
                    raise StoreError(f"redis store {self.url} failed: {exc!r}") from exc
            except redis.RedisError as exc:
                raise StoreError(f"redis store {self.url} failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _script(self, name: str, key: str, *args: Any) -> Any:
        """EVALSHA a script: one round trip (two if the server lost its script cache)."""
        sha, source = self._scripts[name]
        record, steps = f"{self.prefix}:r:{key}", f"{self.prefix}:s:{key}"

        def run() -> Any:
            try:
                return self.client.evalsha(sha, 2, record, steps, *args)
            except redis.exceptions.NoScriptError:
                self.client.script_load(source)  # after a restart or SCRIPT FLUSH
                return self.client.evalsha(sha, 2, record, steps, *args)

        return self._call(run)

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

        return self._call(run)

    def create_schema(self) -> None:
        """Load the scripts into the server's script cache (keys need no schema)."""
        for _, source in self._scripts.values():
            self._load(source)

    def _load(self, source: Any) -> None:
        self._call(lambda: self.client.script_load(source))

    def _delete(self, names: list[Any]) -> None:
        self._call(lambda: self.client.delete(*names))

    def drop_schema(self) -> None:
        """Delete every key under this store's prefix."""
        pattern = f"{self.prefix}:[rs]:*"
        batch: list[Any] = []
        for name in self.client.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                self._delete(batch)
                batch = []
        if batch:
            self._call(lambda: self.client.delete(*batch))

    def claim(self, key: str, fingerprint: str, *, lease: float, ttl: float | None) -> ClaimResult:
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
        if not self._script("finish", lease.key, f"{lease.owner}|{lease.epoch}|", status, result):
            raise self._lost(lease, op)

    def complete(self, lease: Lease, result: bytes, *, ttl: float | None) -> None:
        # the ttl was fixed at claim time (stored in the record) so a lost reply's retry agrees
        self._finish(lease, b"c", result, "complete")

    def release(self, lease: Lease, *, ttl: float | None) -> None:
        self._finish(lease, b"r", b"", "release")

    def heartbeat(self, lease: Lease, *, lease_seconds: float | None = None) -> None:
        seconds = lease.lease_seconds if lease_seconds is None else float(lease_seconds)
        fence = f"{lease.owner}|{lease.epoch}|"
        if not self._script("heartbeat", lease.key, fence, max(1, int(seconds * 1000))):
            raise self._lost(lease, "heartbeat")

    def load_steps(self, lease: Lease) -> dict[str, bytes]:
        fields = self._script("load_steps", lease.key)
        prefix = f"{lease.run}:"
        steps: dict[str, bytes] = {}
        for field, value in zip(fields[::2], fields[1::2], strict=True):
            name = _s(field)
            if name.startswith(prefix):
                steps[name[len(prefix) :]] = bytes(value)
        return steps

    def save_step(self, lease: Lease, name: str, result: bytes) -> None:
        fence = f"{lease.owner}|{lease.epoch}|"
        if not self._script("save_step", lease.key, fence, f"{lease.run}:{name}", result):
            raise self._lost(lease, f"step {name!r}")

    def get(self, key: str) -> RecordRow | None:
        values = self._script("get", key)
        if not values:
            return None
        value, now, pttl = values
        return to_row(key, decode(value), int(now), int(pttl))

    def delete(self, key: str) -> bool:
        return bool(self._call(lambda: self.client.delete(*self._keys(key))))

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
        for name in self.client.scan_iter(match=f"{self.prefix}:s:*", count=500):
            count += int(self._script("purge", _s(name)[start:]))
        return count

    def _lost(self, lease: Lease, op: str) -> IdempotencyError:
        from idemlint.runtime.stores._sql import _lease_lost

        return _lease_lost(lease, op, self.get(lease.key))

    def close(self) -> None:
        self.client.close()


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


__all__ = ["RedisStore"]

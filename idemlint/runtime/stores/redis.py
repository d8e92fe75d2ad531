"""The Redis store (redis-py), one Lua script per operation.

Every operation is one ``EVALSHA`` of a script that reads, decides and
writes atomically on the server, so a claim is one round trip and no other
client can slip in between the check and the write. The clock is Redis's
``TIME`` (scripts replicate their effects, so reading it is allowed).

A record is a hash ``<prefix>:r:<key>``; its steps are a hash
``<prefix>:s:<key>`` with fields ``<run>:<step name>``. Both carry the
record's ttl as a native expiry, so Redis drops finished records itself;
:meth:`RedisStore.purge_expired` only sweeps what is left (there rarely is
anything). Times inside the scripts are integer milliseconds.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from idemlint.runtime.errors import IdempotencyError, StoreError
from idemlint.runtime.stores._url import strip_our_options
from idemlint.runtime.stores.base import (
    Claimed,
    ClaimResult,
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

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_EXPIRE = """
local function expire_both(at)
  -- the steps hash follows the record's expiry (a no-op when it does not exist)
  if at then
    redis.call('PEXPIREAT', KEYS[1], at)
    redis.call('PEXPIREAT', KEYS[2], at)
  else
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
  end
end
"""

_ROW = """
local function row(now)
  local r = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'run', 'owner', 'fp',
                       'lease_exp', 'exp_at', 'result', 'kind')
  if not r[1] then return false end
  return {r[1], r[2], r[3], r[4], r[5], r[6], r[7] or '', r[8] or '', r[9], tostring(now)}
end
"""

CLAIM = (
    _NOW
    + _EXPIRE
    + _ROW
    + """
-- ARGV: owner, fingerprint, lease_ms, ttl_ms ('' = keep forever)
local lease, ttl = tonumber(ARGV[3]), ARGV[4]
local r = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'run', 'fp', 'lease_exp', 'exp_at')
local status = r[1]
local kind, epoch, run = 'new', 1, 1
if status then
  local lease_exp, exp_at = tonumber(r[5]), tonumber(r[6])
  local dead = exp_at ~= nil and exp_at <= now and (status ~= 'in_progress' or lease_exp <= now)
  epoch, run = tonumber(r[2]) + 1, tonumber(r[3])
  if dead then
    run = epoch
  elseif r[4] == ARGV[2] and (status == 'released'
                              or (status == 'in_progress' and lease_exp <= now)) then
    if status == 'released' then kind = 'retry' else kind = 'takeover' end
  else
    return row(now)  -- not ours to take: report the record as it stands
  end
end
local at = ''
if ttl ~= '' then at = now + lease + tonumber(ttl) end
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'epoch', epoch, 'run', run,
           'owner', ARGV[1], 'fp', ARGV[2], 'lease_exp', now + lease, 'kind', kind,
           'ttl', ttl, 'exp_at', at, 'result', '')
if kind == 'new' then
  redis.call('DEL', KEYS[2])  -- a new run starts without steps
  if at ~= '' then redis.call('PEXPIREAT', KEYS[1], at) else redis.call('PERSIST', KEYS[1]) end
elseif at ~= '' then expire_both(at) else expire_both(nil) end
return {'in_progress', tostring(epoch), tostring(run), ARGV[1], ARGV[2],
        tostring(now + lease), tostring(at), '', kind, tostring(now)}
"""
)

_FENCED = """
local r = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'owner', 'ttl', 'exp_at')
local mine = r[3] == ARGV[1] and tonumber(r[2]) == tonumber(ARGV[2])
"""

FINISH = (
    _NOW
    + _EXPIRE
    + _FENCED
    + """
-- ARGV: owner, epoch, new status, result ('' for release)
if not mine then return 0 end
if r[1] == ARGV[3] then return 1 end  -- our earlier call went through; its reply was lost
if r[1] ~= 'in_progress' then return 0 end
local at = ''
if r[4] ~= '' then at = now + tonumber(r[4]) end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'lease_exp', now, 'result', ARGV[4], 'exp_at', at)
if at ~= '' then expire_both(at) else expire_both(nil) end
return 1
"""
)

HEARTBEAT = (
    _NOW
    + _EXPIRE
    + _FENCED
    + """
-- ARGV: owner, epoch, lease_ms
if not mine or r[1] ~= 'in_progress' then return 0 end
local lease_exp = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_exp', lease_exp)
local exp_at = tonumber(r[5])
if exp_at ~= nil and exp_at < lease_exp + tonumber(r[4]) then
  redis.call('HSET', KEYS[1], 'exp_at', lease_exp + tonumber(r[4]))
  expire_both(lease_exp + tonumber(r[4]))
end
return 1
"""
)

SAVE_STEP = (
    _FENCED
    + """
-- ARGV: owner, epoch, field (run:name), result
if not mine or r[1] ~= 'in_progress' then return 0 end
redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4])  -- a duplicate under the fence is our own write
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
)

GET = _NOW + _ROW + "return row(now)"

PURGE = (
    _NOW
    + """
local r = redis.call('HMGET', KEYS[1], 'status', 'lease_exp', 'exp_at')
local exp_at = tonumber(r[3])
if r[1] and exp_at ~= nil and exp_at <= now
   and (r[1] ~= 'in_progress' or tonumber(r[2]) <= now) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""
)


class RedisStore(Store):
    """Idempotency records as Redis hashes, driven by Lua scripts."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "idemlint",
        max_result_bytes: int | None = None,
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
        from idemlint.runtime.stores import _redact

        self.url = _redact(url)
        options.pop("create", None)
        options.setdefault("client_name", "idemlint")
        self.client: redis.Redis = redis.Redis.from_url(url, **options)
        self._scripts = {
            name: (hashlib.sha1(source.encode()).hexdigest(), source)
            for name, source in (
                ("claim", CLAIM),
                ("finish", FINISH),
                ("heartbeat", HEARTBEAT),
                ("save_step", SAVE_STEP),
                ("get", GET),
                ("purge", PURGE),
            )
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        return cls(strip_our_options(url), **options)

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}:r:{key}", f"{self.prefix}:s:{key}"]

    def _call(self, fn: Callable[[], T]) -> T:
        """One request; a dropped connection is retried once (every script is repeatable)."""
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
        for attempt in (1, 2):
            self.stats.add(1)
            try:
                return self.client.evalsha(sha, 2, record, steps, *args)
            except redis.exceptions.NoScriptError:
                self.client.script_load(source)  # after a restart or SCRIPT FLUSH
                return self.client.evalsha(sha, 2, record, steps, *args)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if attempt == 2:
                    raise StoreError(f"redis store {self.url} failed: {exc!r}") from exc
            except redis.RedisError as exc:
                raise StoreError(f"redis store {self.url} failed: {exc!r}") from exc
        raise AssertionError("unreachable")

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

    def _row(self, key: str, values: Any) -> RecordRow | None:
        if not values:
            return None
        status, epoch, run, owner, fp, lease_exp, exp_at, result, kind, now = values
        return RecordRow(
            key=key,
            status=_s(status),
            epoch=int(epoch),
            run=int(run),
            owner=_s(owner),
            fingerprint=_s(fp),
            lease_expires=int(lease_exp) / 1000.0,
            expires_at=int(exp_at) / 1000.0 if exp_at not in (b"", "", None) else None,
            result=bytes(result) if _s(status) == "completed" else None,
            claim_kind=_s(kind),
            now=int(now) / 1000.0,
        )

    def claim(self, key: str, fingerprint: str, *, lease: float, ttl: float | None) -> ClaimResult:
        owner = secrets.token_hex(16)
        mine = owner.encode()
        args = (owner, fingerprint, int(lease * 1000), "" if ttl is None else str(int(ttl * 1000)))

        def attempt() -> ClaimResult:
            sent = time.monotonic()
            values = self._script("claim", key, *args)
            if values and values[3] == mine:  # the common case: ours, no need for a RecordRow
                return Claimed(
                    Lease(
                        key=key,
                        epoch=int(values[1]),
                        run=int(values[2]),
                        owner=owner,
                        lease_seconds=lease,
                        kind=_s(values[8]),
                        deadline=sent + lease,
                    )
                )
            row = self._row(key, values)
            return interpret_claim(
                row, key=key, owner=owner, fingerprint=fingerprint, lease_seconds=lease, sent=sent
            )

        return self._claim_loop(attempt)

    def _finish(self, lease: Lease, status: str, result: bytes, op: str) -> None:
        if not self._script("finish", lease.key, lease.owner, lease.epoch, status, result):
            raise self._lost(lease, op)

    def complete(self, lease: Lease, result: bytes, *, ttl: float | None) -> None:
        # the ttl was fixed at claim time (stored in the record) so a lost reply's retry agrees
        self._finish(lease, "completed", result, "complete")

    def release(self, lease: Lease, *, ttl: float | None) -> None:
        self._finish(lease, "released", b"", "release")

    def heartbeat(self, lease: Lease, *, lease_seconds: float | None = None) -> None:
        seconds = lease.lease_seconds if lease_seconds is None else float(lease_seconds)
        if not self._script("heartbeat", lease.key, lease.owner, lease.epoch, int(seconds * 1000)):
            raise self._lost(lease, "heartbeat")

    def load_steps(self, lease: Lease) -> dict[str, bytes]:
        fields: dict[Any, Any] = self._call(
            lambda: self.client.hgetall(self._keys(lease.key)[1])  # type: ignore[arg-type,return-value]
        )
        prefix = f"{lease.run}:"
        steps: dict[str, bytes] = {}
        for field, value in fields.items():
            name = _s(field)
            if name.startswith(prefix):
                steps[name[len(prefix) :]] = bytes(value)
        return steps

    def save_step(self, lease: Lease, name: str, result: bytes) -> None:
        field = f"{lease.run}:{name}"
        if not self._script("save_step", lease.key, lease.owner, lease.epoch, field, result):
            raise self._lost(lease, f"step {name!r}")

    def get(self, key: str) -> RecordRow | None:
        return self._row(key, self._script("get", key))

    def delete(self, key: str) -> bool:
        return bool(self._call(lambda: self.client.delete(*self._keys(key))))

    def purge_expired(self) -> int:
        """Delete records past their ttl that Redis has not expired yet; returns how many.

        Native expiry removes finished records on time, so this is a sweep
        for completeness (and for records written with a clock jump).
        """
        count = 0
        start = len(self.prefix) + 3
        for name in self.client.scan_iter(match=f"{self.prefix}:r:*", count=500):
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

"""A Redis lock with fencing tokens (Kleppmann), sync and asyncio.

A lock with a TTL alone is not safe: a holder that stalls past its TTL (GC
pause, swapped VM, slow network) wakes up believing it still holds the lock
while a successor does too. Two things close that gap:

* every acquisition gets a **fencing token**, a number taken with ``INCR`` on
  a per-lock counter, so it rises strictly with every new holder. Pass it to
  the resource you protect and have the resource refuse a write whose token is
  lower than the last it saw (``UPDATE ... WHERE fence < :token``);
* **release and extend check the owner** in one Lua script: the lock's value
  is ``<token>:<random owner id>``, and a holder whose value is gone (expired,
  taken over) gets :class:`~idemlint.runtime.errors.LeaseLost` and changes
  nothing, so a late holder can never delete or prolong its successor's lock.

Keys: the lock is ``<prefix>{<name>}`` and the counter ``<prefix>{<name>}:fence``.
The braces are a Redis Cluster hash tag, putting both in one slot so the
scripts may touch both. The counter never expires: if it did, tokens would
start again from 1 and a stale holder's token could look new.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from types import TracebackType
from typing import Any

from idemlint.runtime.errors import LeaseLost
from idemlint.runtime.locks.errors import LockError, LockTimeout

__all__ = ["AsyncRedisLock", "RedisLock"]

DEFAULT_PREFIX = "idemlint:lock:"

# Returns {token, 0} when acquired, {0, pttl} when held by someone else.
_ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then
  return {0, redis.call('pttl', KEYS[1])}
end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return {token, 0}
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# Polling bounds while waiting for a held lock, in seconds.
_POLL_FIRST = 0.005
_POLL_MAX = 0.1


class _LockState:
    """What the sync and async locks share: naming, validation, ownership."""

    def __init__(self, name: str, ttl: float, prefix: str) -> None:
        if not name:
            raise LockError("a lock name cannot be empty")
        if ttl <= 0:
            raise LockError(f"a lock ttl must be positive, got {ttl}")
        self.name = name
        self.ttl = ttl
        self.key = f"{prefix}{{{name}}}"
        self.fence_key = f"{self.key}:fence"
        self._owner = uuid.uuid4().hex
        self.token: int | None = None
        """The fencing token of the current hold; None when not held."""

    @property
    def _value(self) -> str:
        return f"{self.token}:{self._owner}"

    def _ms(self, seconds: float | None) -> int:
        return max(1, round((self.ttl if seconds is None else seconds) * 1000))

    def _require_held(self, action: str) -> None:
        if self.token is None:
            raise LockError(f"cannot {action} lock {self.name!r}: it is not held")

    def _delay(self, attempt: int, pttl_ms: int, remaining: float | None) -> float:
        delay = min(_POLL_MAX, _POLL_FIRST * (2.0**attempt))
        if pttl_ms > 0:
            delay = min(delay, pttl_ms / 1000)
        if remaining is not None:
            delay = min(delay, remaining)
        return max(0.0, delay * random.uniform(0.5, 1.0))  # jitter: waiters do not march in step

    def _lost(self, action: str) -> LeaseLost:
        token = self.token
        self.token = None
        return LeaseLost(
            f"lock {self.name!r} (token {token}) was no longer ours at {action}: it expired "
            f"and may have been taken by another holder; nothing was changed",
            key=self.name,
            epoch=token,
        )


class RedisLock(_LockState):
    """A fenced Redis lock for synchronous code.

    ::

        with RedisLock(redis_client, f"invoice:{invoice_id}", ttl=30) as lock:
            write_invoice(invoice_id, fence=lock.token)
            lock.extend()        # long work: push the expiry out again

    Leaving the block releases the lock; if it had already expired (and so may
    have had another holder meanwhile), the exit raises ``LeaseLost``.
    """

    def __init__(
        self, client: Any, name: str, *, ttl: float = 30.0, prefix: str = DEFAULT_PREFIX
    ) -> None:
        super().__init__(name, ttl, prefix)
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)

    def acquire(self, *, blocking: bool = True, timeout: float | None = None) -> int:
        """Take the lock and return its fencing token.

        Non-blocking, or when ``timeout`` seconds pass first, raises
        :class:`LockTimeout`. ``timeout=None`` with ``blocking=True`` waits
        until the lock is free (at the latest when the holder's TTL runs out).
        """
        if self.token is not None:
            raise LockError(f"lock {self.name!r} is already held by this object")
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            token, pttl = self._acquire(
                keys=[self.key, self.fence_key], args=[self._owner, self._ms(None)]
            )
            if int(token):
                self.token = int(token)
                return self.token
            remaining = None if deadline is None else deadline - time.monotonic()
            if not blocking or (remaining is not None and remaining <= 0):
                raise LockTimeout(f"lock {self.name!r} is held by another owner", key=self.name)
            time.sleep(self._delay(attempt, int(pttl), remaining))
            attempt += 1

    def release(self) -> None:
        """Release the lock; :class:`LeaseLost` if it was no longer ours."""
        self._require_held("release")
        if not int(self._release(keys=[self.key], args=[self._value])):
            raise self._lost("release")
        self.token = None

    def extend(self, ttl: float | None = None) -> None:
        """Set the remaining life to ``ttl`` (default: the lock's ttl) if still ours."""
        self._require_held("extend")
        if not int(self._extend(keys=[self.key], args=[self._value, self._ms(ttl)])):
            raise self._lost("extend")

    def owned(self) -> bool:
        """Whether this object holds the lock right now (one round trip)."""
        if self.token is None:
            return False
        value = self.client.get(self.key)
        if isinstance(value, bytes):
            value = value.decode()
        return bool(value == self._value)

    def __enter__(self) -> RedisLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.token is None:
            return
        try:
            self.release()
        except LeaseLost:
            if exc is None:
                raise  # the block's work was not protected to its end: say so


class AsyncRedisLock(_LockState):
    """The same lock for ``redis.asyncio`` clients (arq, taskiq, asyncio code)::

    async with AsyncRedisLock(client, "report:42") as lock:
        await build_report(fence=lock.token)
    """

    def __init__(
        self, client: Any, name: str, *, ttl: float = 30.0, prefix: str = DEFAULT_PREFIX
    ) -> None:
        super().__init__(name, ttl, prefix)
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)

    async def acquire(self, *, blocking: bool = True, timeout: float | None = None) -> int:
        """Take the lock and return its fencing token (see :meth:`RedisLock.acquire`)."""
        if self.token is not None:
            raise LockError(f"lock {self.name!r} is already held by this object")
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            token, pttl = await self._acquire(
                keys=[self.key, self.fence_key], args=[self._owner, self._ms(None)]
            )
            if int(token):
                self.token = int(token)
                return self.token
            remaining = None if deadline is None else deadline - time.monotonic()
            if not blocking or (remaining is not None and remaining <= 0):
                raise LockTimeout(f"lock {self.name!r} is held by another owner", key=self.name)
            await asyncio.sleep(self._delay(attempt, int(pttl), remaining))
            attempt += 1

    async def release(self) -> None:
        """Release the lock; :class:`LeaseLost` if it was no longer ours."""
        self._require_held("release")
        if not int(await self._release(keys=[self.key], args=[self._value])):
            raise self._lost("release")
        self.token = None

    async def extend(self, ttl: float | None = None) -> None:
        """Set the remaining life to ``ttl`` (default: the lock's ttl) if still ours."""
        self._require_held("extend")
        if not int(await self._extend(keys=[self.key], args=[self._value, self._ms(ttl)])):
            raise self._lost("extend")

    async def __aenter__(self) -> AsyncRedisLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.token is None:
            return
        try:
            await self.release()
        except LeaseLost:
            if exc is None:
                raise

"""The Redis record: one string per key, its codec, and the Lua scripts over it.

A record is a plain string so that the common claim (a key never seen, or
past its ttl) can be one ``SET key <record> PX <lease+ttl> NX GET``: no Lua,
no clock read, about a tenth of a script's server time. That command either
creates the record (the claim is ours: epoch 1, run 1, a new run) or sends
back the record that stands, which says on its own whether it is a replay
(``completed``) or a key reused with other arguments. Only a record that is
in progress or released needs the server clock and a conditional write: the
``CLAIM`` script decides those.

Layout, ``|``-separated, fixed fields first::

    owner|epoch|status|steps|ttl|lease|run|kind|fp_len|<fingerprint><result>

``owner``   32 hex digits: the token of the claim that holds (held) the record.
            It comes first so that "is this still mine?" is one prefix
            comparison of ``owner|epoch|`` in every fenced script.
``epoch``   fencing token, +1 on every claim; 1 for the first claim of a key.
``status``  ``i`` in progress, ``c`` completed, ``r`` released.
``steps``   ``1``: the steps hash (if any) belongs to this run. ``0``: the run
            began with the plain ``SET``, which cannot delete a steps hash
            left over from an earlier life of the key (a record deleted or
            evicted on its own); whatever is there is ignored, and deleted
            by the first step write or the next claim (both scripts).
``ttl``     the record's ttl in ms, fixed at claim time ('' = keep forever).
``lease``   absolute lease end in server ms, or '' meaning *key expiry minus
            ttl*. Every claim with a ttl sets the key to expire at
            ``now + lease + ttl``, so the lease end is implied by the key's own
            expiry, on the server's clock, without the claim reading it. A
            heartbeat writes the end explicitly; so does a claim without a ttl.
``run``     epoch at which the current logical run began (steps belong to it).
``kind``    ``n`` new, ``r`` retry (after a release), ``t`` takeover.
``fp_len``  byte length of the fingerprint that follows (fingerprints are
            free text to the store, so they are length-delimited, not parsed).
``result``  the serialised result once completed (binary-safe: it is last).

Redis expires a key at ``lease + ttl`` after its claim and ``ttl`` after its
completion or release, so a record past its ttl is simply absent, as the
store contract wants (a claim on it starts a new run). Times in the scripts
are integer milliseconds of the server's clock (``TIME`` and key expiry).
"""

from __future__ import annotations

from dataclasses import dataclass

from idemlint.runtime.errors import StoreError
from idemlint.runtime.stores.base import COMPLETED, IN_PROGRESS, RELEASED, RecordRow

STATUS = {b"i": IN_PROGRESS, b"c": COMPLETED, b"r": RELEASED}
KIND = {b"n": "new", b"r": "retry", b"t": "takeover"}


@dataclass(slots=True)
class Record:
    """A decoded record (times are server milliseconds)."""

    owner: str
    epoch: int
    status: str
    steps_ok: bool
    ttl_ms: int | None
    lease_ms: int | None
    run: int
    kind: str
    fingerprint: str
    result: bytes


def fresh(owner: str, fingerprint: bytes, ttl_ms: int) -> bytes:
    """The record the plain-``SET`` claim writes: epoch 1 of a new run, lease implied."""
    return b"%s|1|i|0|%d||1|n|%d|%s" % (owner.encode(), ttl_ms, len(fingerprint), fingerprint)


def decode(value: bytes | str) -> Record:
    """Parse a stored record; anything else under our key is a clear StoreError."""
    if isinstance(value, str):  # a client opened with decode_responses=True
        value = value.encode("utf-8", "surrogateescape")
    try:
        owner, epoch, status, steps, ttl, lease, run, kind, fp_len, tail = value.split(b"|", 9)
        n = int(fp_len)
        return Record(
            owner=owner.decode("ascii"),
            epoch=int(epoch),
            status=STATUS[status],
            steps_ok=steps == b"1",
            ttl_ms=int(ttl) if ttl else None,
            lease_ms=int(lease) if lease else None,
            run=int(run),
            kind=KIND[kind],
            fingerprint=tail[:n].decode("utf-8", "surrogateescape"),
            result=tail[n:],
        )
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise StoreError(f"unreadable idempotency record {value[:80]!r}: {exc!r}") from exc


def lease_end_ms(record: Record, now_ms: int, pttl_ms: int) -> int:
    """When the record's lease ends (server ms), written or implied by the key's expiry."""
    if record.lease_ms is not None:
        return record.lease_ms
    if pttl_ms >= 0 and record.ttl_ms is not None:
        return now_ms + pttl_ms - record.ttl_ms  # the key expires ttl after the lease ends
    return now_ms  # a finished record without a ttl: its lease is over


def to_row(key: str, record: Record, now_ms: int, pttl_ms: int) -> RecordRow:
    """The store-neutral view of a record, given the server clock and the key's PTTL."""
    expires = now_ms + pttl_ms if pttl_ms >= 0 else None
    lease = lease_end_ms(record, now_ms, pttl_ms)
    return RecordRow(
        key=key,
        status=record.status,
        epoch=record.epoch,
        run=record.run,
        owner=record.owner,
        fingerprint=record.fingerprint,
        lease_expires=lease / 1000.0,
        expires_at=None if expires is None else expires / 1000.0,
        result=record.result if record.status == COMPLETED else None,
        claim_kind=record.kind,
        now=now_ms / 1000.0,
    )


_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Fenced scripts: ARGV[1] is 'owner|epoch|' of the caller's lease. The record
# is the caller's only if it starts with exactly that (owner tokens are never
# reused, and the epoch pins the claim).
_MINE = """
local v = redis.call('GET', KEYS[1])
local n = #ARGV[1]
if not v or string.sub(v, 1, n) ~= ARGV[1] then return 0 end
local status = string.sub(v, n + 1, n + 1)
"""

CLAIM = (
    _NOW
    + """
-- KEYS: record, steps. ARGV: owner, fingerprint, lease_ms, ttl_ms ('' = keep forever)
-- Claims an absent, released or lease-expired record; otherwise returns it as it stands.
local lease, ttl = tonumber(ARGV[3]), ARGV[4]
local epoch, run, kind, steps = 1, 1, 'n', '0'
local v = redis.call('GET', KEYS[1])
if v then
  local pttl = redis.call('PTTL', KEYS[1])
  local e, s, ok, rttl, rlease, r, fp_len, p =
    string.match(v, '^%x+|(%d+)|(%a)|(%d)|(%d*)|(%d*)|(%d+)|%a|(%d+)|()')
  if not e then return redis.error_reply('unreadable idempotency record') end
  local lease_exp = tonumber(rlease)
  if not lease_exp then  -- implied by the key's expiry (a finished record's lease ended)
    if rttl ~= '' then lease_exp = now + pttl - tonumber(rttl) else lease_exp = now end
  end
  epoch, run = tonumber(e) + 1, tonumber(r)
  if pttl == 0 and (s ~= 'i' or lease_exp <= now) then
    run = epoch  -- past its ttl this very millisecond: a new run, as if already expired
  elseif string.sub(v, p, p + tonumber(fp_len) - 1) == ARGV[2]
         and (s == 'r' or (s == 'i' and lease_exp <= now)) then
    if s == 'r' then kind = 'r' else kind = 't' end
    steps = ok
  else
    return {v, now, pttl}  -- not ours to take: the caller reads why
  end
end
-- a retried or taken-over run keeps its steps, which follow the record's expiry; a new
-- run, or one that began with the plain SET and never checked, drops whatever is there
local kept = steps == '1'
if not kept then redis.call('DEL', KEYS[2]) end
local head = ARGV[1] .. '|' .. epoch .. '|i|1|'
local tail = '|' .. run .. '|' .. kind .. '|' .. #ARGV[2] .. '|' .. ARGV[2]
if ttl == '' then
  local rec = head .. '|' .. (now + lease) .. tail
  redis.call('SET', KEYS[1], rec)
  if kept then redis.call('PERSIST', KEYS[2]) end
  return {rec, now, -1}
end
local px = lease + tonumber(ttl)
local rec = head .. ttl .. '|' .. tail
redis.call('SET', KEYS[1], rec, 'PX', px)
if kept then redis.call('PEXPIRE', KEYS[2], px) end
return {rec, now, px}
"""
)

FINISH = (
    _MINE
    + """
-- ARGV: 'owner|epoch|', new status ('c' or 'r'), result ('' for a release)
if status ~= 'i' then
  if status == ARGV[2] then
    -- our earlier call went through; its reply was lost. Touch the key (same expiry) so
    -- that this call writes too, and a WAIT after it covers the earlier write
    local pttl = redis.call('PTTL', KEYS[1])
    if pttl > 0 then redis.call('PEXPIRE', KEYS[1], pttl) end
    return 1
  end
  return 0
end
local steps, ttl, p = string.match(v, '^|(%d)|(%d*)|%d*()', n + 2)
-- the lease field becomes implied again: key expiry minus ttl, i.e. now
local rec = ARGV[1] .. ARGV[2] .. '|' .. steps .. '|' .. ttl .. '|' .. string.sub(v, p) .. ARGV[3]
if ttl == '' then
  redis.call('SET', KEYS[1], rec)
  if steps == '1' then redis.call('PERSIST', KEYS[2]) end
else
  redis.call('SET', KEYS[1], rec, 'PX', ttl)
  if steps == '1' then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return 1
"""
)

HEARTBEAT = (
    _MINE
    + _NOW
    + """
-- ARGV: 'owner|epoch|', lease_ms
if status ~= 'i' then return 0 end
local steps, ttl, p = string.match(v, '^|(%d)|(%d*)|%d*()', n + 2)
local lease_exp = now + tonumber(ARGV[2])
local pttl = redis.call('PTTL', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1] .. 'i|' .. steps .. '|' .. ttl .. '|' .. lease_exp
           .. string.sub(v, p))
if ttl == '' then return 1 end  -- kept forever, as before
local at = lease_exp + tonumber(ttl)
if at > now + pttl then
  -- keep the record at least ttl past the new lease end
  redis.call('PEXPIREAT', KEYS[1], at)
  if steps == '1' then redis.call('PEXPIREAT', KEYS[2], at) end
else
  redis.call('PEXPIRE', KEYS[1], pttl)  -- never shortened (SET cleared it; no KEEPTTL on Redis 5)
end
return 1
"""
)

SAVE_STEP = (
    _MINE
    + """
-- ARGV: 'owner|epoch|', field (run:name), result
if status ~= 'i' then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if string.sub(v, n + 3, n + 3) == '0' then
  -- the first step of a run that began with the plain SET: drop any leftover hash first
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], string.sub(v, 1, n + 2) .. '1' .. string.sub(v, n + 4))
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end  -- SET cleared it (no KEEPTTL on 5)
end
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])  -- a duplicate under the fence is our own write
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
)

LOAD_STEPS = """
-- the steps hash, if the record says it belongs to the record's run
local v = redis.call('GET', KEYS[1])
if not v or string.match(v, '^%x+|%d+|%a|(%d)|') ~= '1' then return {} end
return redis.call('HGETALL', KEYS[2])
"""

GET = (
    """
local v = redis.call('GET', KEYS[1])
if not v then return false end
"""
    + _NOW
    + """
return {v, now, redis.call('PTTL', KEYS[1])}
"""
)

PURGE_ORPHAN_STEPS = """
-- a steps hash whose record is gone (deleted or evicted on its own) belongs to no run
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
return redis.call('DEL', KEYS[2])
"""

SCRIPTS = {
    "claim": CLAIM,
    "finish": FINISH,
    "heartbeat": HEARTBEAT,
    "save_step": SAVE_STEP,
    "load_steps": LOAD_STEPS,
    "get": GET,
    "purge": PURGE_ORPHAN_STEPS,
}

__all__ = ["SCRIPTS", "Record", "decode", "fresh", "lease_end_ms", "to_row"]

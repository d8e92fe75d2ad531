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

import contextlib
import contextvars
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
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
        self._idemlint_sent: Any = None

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

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._idemlint_sent = args[0] if args else None
        super().send_command(*args, **kwargs)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """The reply; then, if a replicated write is awaited and this reply says the command
        wrote, ``WAIT`` on this same connection (see :class:`_Replicated`)."""
        response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        sent, self._idemlint_sent = self._idemlint_sent, None
        wait = _REPLICATED.get()
        if wait is None or sent is None or _s(sent).upper() != wait.command:
            return response
        if not wait.wrote(response):
            return response
        left = 10.0 if remaining() is None else float(remaining() or 0.0)
        # WAIT answers with a count when its own timeout ends, so it must end well before
        # the socket's (the operation's budget): a count is an answer, a timeout is not
        millis = max(1, int(min(left * 0.8, left - 0.1) * 1000))  # never 0: that is for ever
        super().send_command("WAIT", wait.replicas, millis)  # type: ignore[misc]
        wait.acked = int(super().read_response())  # type: ignore[misc]
        return response


class _Replicated:
    """A write that must reach ``replicas`` replicas before it counts (``wait_replicas=``).

    Redis replicates asynchronously: a write the primary acknowledged and then
    lost in a failover (the promoted replica never got it) would let a retry
    run a completed job again, silently. ``WAIT`` blocks until this
    connection's earlier writes reached that many replicas, so it must follow
    the write on the *same* connection; redis-py's cluster client picks the
    connection (and follows MOVED and ASK), so the connection itself sends the
    ``WAIT`` right after reading the reply of ``command``, when ``wrote(reply)``
    says the command wrote. ``acked`` is what ``WAIT`` answered, None if it
    was not sent (the command did not write: a replay, a fenced-off holder).
    """

    def __init__(self, command: str, replicas: int, wrote: Callable[[Any], bool]) -> None:
        self.command = command
        self.replicas = replicas
        self.wrote = wrote
        self.acked: int | None = None


_REPLICATED: contextvars.ContextVar[_Replicated | None] = contextvars.ContextVar(
    "idemlint_redis_replicated", default=None
)


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
        cluster: bool = False,
        wait_replicas: int | None = None,
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
        self.cluster = bool(cluster)
        """Redis Cluster: keys carry a hash tag, the client is redis-py's ``RedisCluster``."""
        if self.cluster:
            scheme, _, rest = self.url.partition("://")
            self.url = f"{scheme}+cluster://{rest}"
        self.wait_replicas = _replicas(wait_replicas, default=1 if self.cluster else 0)
        """Replicas a claim, completion, heartbeat or step write must reach (``WAIT``) before
        it counts; 1 by default on a cluster, 0 (no wait) on a single server."""
        options.pop("create", None)
        options.setdefault("client_name", "idemlint")
        if self.connect_timeout is not None:
            options.setdefault("socket_connect_timeout", self.connect_timeout)
        self.client: Any = self._cluster_client(url, options) if cluster else None
        if self.client is None:
            try:
                self.client = redis.Redis.from_url(url, **options)
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
        scheme, _, rest = url.partition("://")
        base, _, variant = scheme.lower().partition("+")
        if variant not in ("", "cluster"):
            raise ConfigurationError(
                f"unknown Redis URL scheme {scheme!r}: use redis://, rediss://, "
                "redis+cluster:// or rediss+cluster://"
            )
        if variant:
            options.setdefault("cluster", True)
        return cls(strip_our_options(f"{base}://{rest}"), **options)

    def _cluster_client(self, url: str, options: dict[str, Any]) -> Any:
        """redis-py's ``RedisCluster`` over the URL's host list (``host:port,host:port``).

        It reads the cluster's slot map from the first node that answers, and
        follows MOVED and ASK redirections itself. Its connections are the
        bounded ones of this module, so every wait (and the ``WAIT`` after a
        replicated write) stays within the operation's budget.
        """
        from urllib.parse import urlsplit

        from redis.cluster import ClusterNode, RedisCluster

        from idemlint.runtime.stores._url import _authority

        parts = _authority(url)
        assert parts is not None  # check_network_url passed
        _, userinfo, hostports, _ = parts
        database = urlsplit(url).path.strip("/")
        if database not in ("", "0"):
            raise ConfigurationError(
                f"Redis Cluster URL {self.url!r} names database {database!r}; a cluster has "
                "only database 0"
            )
        nodes = []
        for hostport in hostports.split(","):
            if hostport.startswith("["):  # [ipv6]:port
                close = hostport.index("]")
                host, port = hostport[1:close], hostport[close + 2 :]
            else:
                host, _, port = hostport.partition(":")
            nodes.append(ClusterNode(host, int(port or 6379)))  # type: ignore[no-untyped-call]
        # the first node as a URL: only then does redis-py build each node's connection
        # pool from the options, connection_class included (else Redis() refuses it)
        scheme = "rediss" if url.startswith("rediss") else "redis"
        first = hostports.split(",")[0]
        options["url"] = f"{scheme}://{userinfo + '@' if userinfo else ''}{first}"
        options["connection_class"] = _bounded_class(
            redis.SSLConnection if scheme == "rediss" else redis.Connection
        )
        limit = self.timeout if self.timeout is not None else DURABILITY_CHECK_TIMEOUT
        try:
            with bounded(limit):  # the constructor reads the slot map: bounded like a request
                return RedisCluster(startup_nodes=nodes, **options)
        except redis.RedisError as exc:
            raise StoreError(
                f"redis store {self.url}: no node of the cluster answered: {describe_error(exc)}",
                transient=True,
            ) from exc

    # -- durability -------------------------------------------------------------
    def check_durability(self) -> str:
        """Read the server's persistence and eviction settings; warn or refuse if records may go.

        Sets :attr:`durability` (``aof``, ``rdb``, ``none`` or ``unknown``) and
        :attr:`durability_warning`, logs the warning, and raises
        :class:`~idemlint.runtime.errors.DurabilityError` instead under
        ``require_durable=True``. A server that cannot be reached now is
        checked again before the first claim. Returns :attr:`durability`.
        """

        names = ("save", "appendonly", "maxmemory", "maxmemory-policy")

        def read() -> list[Any]:
            if self.cluster:  # each primary's own settings; the weakest decides
                primaries = self.client.PRIMARIES
                return [self.client.config_get(n, target_nodes=primaries) for n in names]
            pipe = self.client.pipeline(transaction=False)
            for name in names:
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
        per_node: dict[str, dict[str, str]] = {}
        for reply in replies:
            nodes = dict(reply).items() if self.cluster else [("", reply)]
            for node, values in nodes:
                per_node.setdefault(_s(node), {}).update(
                    {_s(k): _s(v) for k, v in dict(values).items()}
                )
        self._durability_found(*_weakest(_durability_of(v) for v in per_node.values()))
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
        """The record's and the steps hash's names.

        On a cluster the key is a hash tag (``idemlint:r:{charge:42}``): both
        names hash to the slot of the key itself, so the scripts that touch both
        run on one node, and so does a ``RedisLock`` named after the key
        (``idemlint:lock:{charge:42}``). Whatever braces the key holds, the two
        names differ only before the first ``{``, so they share the tag.
        """
        if self.cluster:
            return [f"{self.prefix}:r:{{{key}}}", f"{self.prefix}:s:{{{key}}}"]
        return [f"{self.prefix}:r:{key}", f"{self.prefix}:s:{key}"]

    @contextlib.contextmanager
    def _replicated(
        self, command: str, wrote: Callable[[Any], bool], what: str
    ) -> Iterator[_Replicated | None]:
        """Around a write: ``WAIT`` for ``wait_replicas`` replicas when it wrote, else raise.

        A transient :class:`StoreError` when fewer acknowledged within the
        budget: the write stands on the primary, but a failover could lose it,
        so it is not reported as done (a completion is tried again within the
        lease; see :class:`_Replicated`).
        """
        if self.wait_replicas <= 0:
            yield None
            return
        wait = _Replicated(command, self.wait_replicas, wrote)
        token = _REPLICATED.set(wait)
        try:
            yield wait
        finally:
            _REPLICATED.reset(token)
        if wait.acked is not None and wait.acked < wait.replicas:
            raise StoreError(
                f"redis store {self.url}: {what} was written on the primary but reached "
                f"{wait.acked} of {wait.replicas} replicas in time (WAIT); a failover now could "
                "lose it, so it is not reported done (should the primary keep it, a retry "
                "replays it)",
                transient=True,
            )

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
        # a cluster in failover: CLUSTERDOWN, a slot without a node, redirections that ran out
        transient = transient or isinstance(
            exc, (redis.exceptions.ClusterError, redis.exceptions.RedisClusterException)
        )
        return StoreError(
            f"redis store {self.url}: {what} failed: {detail}", key=key, transient=transient
        )

    def _script(self, name: str, key: str, *args: Any, what: str | None = None) -> Any:
        """EVALSHA a script: one round trip (two if the server lost its script cache)."""
        sha, source = self._scripts[name]
        record, steps = self._keys(key)

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
        name = self._keys(key)[0]

        def run() -> Any:
            try:
                return self.client.execute_command(
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
        if self.cluster:  # one cursor per node: redis-py's scan_iter walks them all
            return self._call(
                lambda: list(self.client.scan_iter(match=pattern, count=500)), "scanning"
            )
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
            with self._replicated("SET", _is_none, f"the claim of key {key!r}") as wait:
                value = self._set_claim(key, fresh(owner, fp, ttl_ms), lease_ms + ttl_ms)
            if value is None:  # the key was free: epoch 1 of a new run is ours
                return Claimed(Lease(key, 1, 1, owner, lease, "new", deadline=sent + lease))
            if value is not _NO_FAST_PATH:
                record = decode(value)
                if record.owner == owner:  # our SET went through; its reply was lost
                    self._confirm_claim(key, wait)
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
            mine = partial(_owned_by, owner)
            with self._replicated("EVALSHA", mine, f"the claim of key {key!r}") as wait:
                value, now, pttl = self._script("claim", key, *args)
            record = decode(value)
            if record.owner == owner:
                self._confirm_claim(key, wait)
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

    def _confirm_claim(self, key: str, wait: _Replicated | None) -> None:
        """A claim found to be ours without a write of this call (an earlier attempt's reply
        was lost, and redis-py sent it again): no ``WAIT`` covered that earlier write, so
        under ``wait_replicas`` it cannot count. The record stays ours until its lease ends."""
        if wait is not None and wait.acked is None:
            raise StoreError(
                f"redis store {self.url}: the claim of key {key!r} went through on a request "
                "whose reply was lost, so whether it reached the replicas is unknown; it does "
                "not count (the key frees when its lease ends)",
                key=key,
                transient=True,
            )

    @staticmethod
    def _claimed(key: str, record: Record, owner: str, lease: float, sent: float) -> Claimed:
        return Claimed(
            Lease(key, record.epoch, record.run, owner, lease, record.kind, deadline=sent + lease)
        )

    def _finish(self, lease: Lease, status: bytes, result: bytes, op: str) -> None:
        with bounded(self.operation_timeout(lease.lease_seconds)):
            fence = f"{lease.owner}|{lease.epoch}|"
            what = f"{op} of key {lease.key!r}"
            # a completion must survive a failover; a lost release only delays a retry
            wanted = self._replicated("EVALSHA", _is_one, what) if status == b"c" else None
            with wanted or contextlib.nullcontext():
                done = self._script("finish", lease.key, fence, status, result, what=what)
            if not done:
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
            with self._replicated("EVALSHA", _is_one, f"the heartbeat of key {lease.key!r}"):
                beat = self._script("heartbeat", lease.key, fence, max(1, int(seconds * 1000)))
            if not beat:
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
            with self._replicated("EVALSHA", _is_one, what):
                saved = self._script("save_step", lease.key, fence, field, result, what=what)
            if not saved:
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
                key = _s(name)[start:]
                if self.cluster:
                    key = key[1:-1]  # the hash tag's braces
                count += int(self._script("purge", key, what="purge_expired"))
        return count

    def _lost(self, lease: Lease, op: str) -> IdempotencyError:
        from idemlint.runtime.stores._sql import _lease_lost

        return _lease_lost(lease, op, self.get(lease.key))

    def close(self) -> None:
        self.client.close()


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _is_none(reply: Any) -> bool:
    return reply is None


def _is_one(reply: Any) -> bool:
    return bool(reply == 1)


def _owned_by(owner: str, reply: Any) -> bool:
    """Whether the claim script's reply is a record held by ``owner`` (it wrote it)."""
    try:
        return decode(reply[0]).owner == owner
    except (StoreError, TypeError, IndexError):
        return False


def _replicas(value: object, *, default: int) -> int:
    """``wait_replicas``: a whole number of replicas, 0 for no wait."""
    if value is None:
        return default
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if isinstance(value, bool) or number < 0:
        raise ConfigurationError(
            f"wait_replicas must be a whole number of replicas (0: do not wait), not {value!r}"
        )
    return number


_RANK = {"none": 0, "unknown": 1, "rdb": 2, "aof": 3}


def _weakest(found: Any) -> tuple[str, str | None]:
    """The weakest durability of a cluster's primaries, with every node's warnings."""
    results = list(found)
    durability = min((d for d, _ in results), key=lambda d: _RANK.get(d, 1), default="unknown")
    warnings = sorted({w for _, w in results if w})
    return durability, "; ".join(warnings) or None


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

"""Per-call overhead of ``@idempotent`` on each store, against the bare function
and against AWS Lambda Powertools' ``idempotent_function`` on the same Redis.

    python bench/runtime_overhead.py [--calls N] [--skip-missing]

For each store it times N first calls (each a new key: claim + run + complete)
and N replays (stored result returned), and prints p50/p99 per call in
microseconds, the overhead over the bare function measured in the same run,
and ratios. It also counts requests to the store per call (the issue's target:
a first call costs at most two round trips, claim and complete): for the SQL
stores from the store's own counter, for Redis by counting the responses
redis-py reads off the socket, which is the same yardstick for Powertools.

``--atomic`` adds (``--atomic-only`` runs alone) a third measurement on the SQL
stores: one row written bare (its own transaction), through a plain ``step``
(the write commits, then the step record), and through an ``atomic_step`` (the
write and the step record in one transaction), interleaved call by call in
one run, with each one's p50 against the bare write's.

Powertools is a benchmark-only dependency:
``pip install 'aws-lambda-powertools[redis]'``. If its Redis layer cannot be
imported the script says why and benchmarks the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from idemlint.runtime import AlreadyInProgress, Store, atomic_step, idempotent, open_store, step

PG_URL = os.environ.get("IDEMLINT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("IDEMLINT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("IDEMLINT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def work(order_id: int) -> dict[str, Any]:
    """The benchmarked job: trivial, so that what is measured is the wrapper."""
    return {"order": order_id, "total": 4200, "currency": "EUR"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    """Per-call wall time in microseconds."""
    out = []
    for call in calls:
        start = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - start) / 1000.0)
    return out


class RedisResponses:
    """Counts responses read by redis-py: one per round trip (no pipelining here)."""

    def __init__(self) -> None:
        import redis.connection

        self.count = 0
        self._cls = redis.connection.AbstractConnection
        self._orig = self._cls.read_response
        counter = self

        def counting(conn: Any, *args: Any, **kwargs: Any) -> Any:
            counter.count += 1
            return counter._orig(conn, *args, **kwargs)

        self._cls.read_response = counting  # type: ignore[method-assign]

    def close(self) -> None:
        self._cls.read_response = self._orig  # type: ignore[method-assign]


class Flaky(Exception):
    """The failure of the first attempt in :func:`slow_path_trips`."""


def slow_path_trips(store: Store, count: Callable[[], int], n: int = 50) -> tuple[float, float]:
    """Requests per call on the paths that are neither a first call nor a replay.

    ``retry``: the call after an attempt that raised (the claim is released,
    the retry claims it again and completes). ``busy``: a call that finds
    another holder's live lease and raises ``AlreadyInProgress``. Returns the
    mean requests per call of each, counted like the main measurement.
    """
    failed: set[int] = set()

    def flaky(order_id: int) -> dict[str, Any]:
        if order_id not in failed:
            failed.add(order_id)
            raise Flaky()
        return work(order_id)

    run = uuid.uuid4().hex[:8]
    retried = idempotent(f"retry:{run}:{{order_id}}", store=store, ttl=3600)(flaky)
    # no fingerprint ("-"), so the holder below claims with the same arguments
    busy = idempotent(f"busy:{run}:{{order_id}}", store=store, ttl=3600, fingerprint=False)(work)
    retry_trips = busy_trips = 0
    for k in range(n):
        with contextlib.suppress(Flaky):
            retried(k)
        before = count()
        assert retried.call_detailed(k).replayed is False
        retry_trips += count() - before
        store.claim(f"busy:{run}:{k}", "-", lease=60, ttl=3600)  # another holder
        before = count()
        refused = False
        try:
            busy(k)
        except AlreadyInProgress:
            refused = True
        busy_trips += count() - before
        assert refused, "the busy key was not reported in progress"
    return retry_trips / n, busy_trips / n


def bench_store(
    name: str,
    url: str,
    n: int,
    bare_p50: float,
    rows: list[dict[str, Any]],
    counter: RedisResponses | None,
) -> None:
    try:
        store = open_store(url)
        store.create_schema()
    except Exception as exc:
        print(f"{name}: unavailable ({exc})")
        return
    fn = idempotent("order:{order_id}", store=store, ttl=3600)(work)
    for i in range(200):  # warm the connections and prepared statements
        fn(-1 - i)
        fn(-1 - i)
    base = 10_000_000
    keys = list(range(base, base + n))
    rt_before = counter.count if counter else store.stats.round_trips
    first = timed([lambda k=k: fn(k) for k in keys])
    rt_mid = counter.count if counter else store.stats.round_trips
    replay = timed([lambda k=k: fn(k) for k in keys])
    rt_after = counter.count if counter else store.stats.round_trips
    assert fn.call_detailed(keys[0]).replayed
    rt_retry, rt_busy = slow_path_trips(
        store, (lambda: counter.count) if counter else (lambda: store.stats.round_trips)
    )
    rows.append(
        {
            "impl": f"idemlint {name}",
            "first": first,
            "replay": replay,
            "rt_first": (rt_mid - rt_before) / n,
            "rt_replay": (rt_after - rt_mid) / n,
            "rt_retry": rt_retry,
            "rt_busy": rt_busy,
            "bare": bare_p50,
        }
    )
    store.drop_schema()
    store.close()


def head_to_head(
    n: int, bare_p50: float, rows: list[dict[str, Any]], counter: RedisResponses
) -> None:
    """idemlint's Redis store against Powertools' Redis layer, calls interleaved.

    Both run against the same Redis, and each iteration times one call of
    each, alternating which goes first, so that background load on the
    machine falls on both alike instead of on whichever ran second.
    """
    try:
        import redis
        from aws_lambda_powertools.utilities.idempotency import (
            IdempotencyConfig,
            idempotent_function,
        )
        from aws_lambda_powertools.utilities.idempotency.persistence.redis import (
            RedisCachePersistenceLayer,
        )
    except Exception as exc:
        print(
            f"Powertools: its Redis persistence layer cannot be imported ({exc!r}); "
            "pip install 'aws-lambda-powertools[redis]' to compare"
        )
        return
    import warnings

    warnings.simplefilter("ignore")  # Powertools warns outside Lambda (no remaining-time context)
    client = redis.Redis.from_url(REDIS_URL)
    layer = RedisCachePersistenceLayer(client=client)
    config = IdempotencyConfig(expires_after_seconds=3600)
    run = uuid.uuid4().hex[:8]

    @idempotent_function(data_keyword_argument="order", persistence_store=layer, config=config)
    def pt_work(order: dict[str, Any]) -> dict[str, Any]:
        return work(order["id"])

    store = open_store(f"{REDIS_URL}?prefix=h2h{run}")
    ours = idempotent("order:{order_id}", store=store, ttl=3600)(work)
    for i in range(200):
        for _ in range(2):
            pt_work(order={"id": -1 - i, "run": run})
            ours(-1 - i)
    samples: dict[str, list[float]] = {
        "ours first": [],
        "ours replay": [],
        "pt first": [],
        "pt replay": [],
    }
    trips = dict.fromkeys(samples, 0)

    def one(label: str, call: Callable[[], Any]) -> None:
        before = counter.count
        start = time.perf_counter_ns()
        call()
        samples[label].append((time.perf_counter_ns() - start) / 1000.0)
        trips[label] += counter.count - before

    for phase in ("first", "replay"):
        for k in range(n):
            pair = [
                (f"ours {phase}", lambda k=k: ours(k)),
                (f"pt {phase}", lambda k=k: pt_work(order={"id": k, "run": run})),
            ]
            if k % 2:
                pair.reverse()
            for label, call in pair:
                one(label, call)
    for impl, label in (("idemlint redis (h2h)", "ours"), ("Powertools redis", "pt")):
        rows.append(
            {
                "impl": impl,
                "first": samples[f"{label} first"],
                "replay": samples[f"{label} replay"],
                "rt_first": trips[f"{label} first"] / n,
                "rt_replay": trips[f"{label} replay"] / n,
                "bare": bare_p50,
            }
        )
    for name in client.scan_iter(match="*pt_work*", count=1000):
        client.delete(name)
    client.close()
    store.drop_schema()
    store.close()


SA_URLS = {
    "postgresql": PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
    "mariadb": MYSQL_URL.replace("mysql://", "mysql+pymysql://", 1),
}


def atomic_vs_plain(name: str, store_url: str, sa_url: str, n: int) -> dict[str, Any] | None:
    """One row per call: bare, through a plain step, through an atomic step, interleaved.

    All three run in one process against one database, alternating which goes
    first, so that load on the machine falls on each alike. The steps run inside
    one idempotent call (a step needs one); each has its own name.
    """
    import sqlalchemy as sa

    try:
        store = open_store(store_url)
        store.create_schema()
        engine = sa.create_engine(sa_url, pool_size=2)
        rows = f"bench_rows_{uuid.uuid4().hex[:8]}"
        auto = {
            "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
            "postgresql": "SERIAL PRIMARY KEY",
            "mariadb": "INTEGER AUTO_INCREMENT PRIMARY KEY",
        }["sqlite" if name.startswith("sqlite") else name]
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {rows} (id {auto}, k VARCHAR(64) NOT NULL)"))
    except Exception as exc:
        print(f"{name}: unavailable for the atomic-step measurement ({exc})")
        return None
    insert = sa.text(f"INSERT INTO {rows} (k) VALUES (:k)")

    def write(conn: Any, k: str) -> str:
        conn.execute(insert, {"k": k})
        return k

    def bare(k: str) -> str:
        with engine.begin() as conn:
            return write(conn, k)

    def atomic(k: str) -> str:
        with engine.connect() as conn:
            return atomic_step(k, write, conn, k, using=conn)

    samples: dict[str, list[float]] = {"bare": [], "step": [], "atomic": []}

    @idempotent("bench-atomic:{run}", store=store, lease=3600)
    def measure(run: str) -> None:
        calls = {
            "bare": lambda i: bare(f"b{i}"),
            "step": lambda i: step(f"s{i}", bare, f"s{i}"),
            "atomic": lambda i: atomic(f"a{i}"),
        }
        order = list(calls)
        for i in range(-200, n):  # the first 200 warm connections and statements up
            order = order[1:] + order[:1]
            for label in order:
                start = time.perf_counter_ns()
                calls[label](i)
                if i >= 0:
                    samples[label].append((time.perf_counter_ns() - start) / 1000.0)

    try:
        measure(uuid.uuid4().hex[:8])
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {rows}"))
        engine.dispose()
        store.drop_schema()
        store.close()
    return {"name": name, **samples}


def print_atomic(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'store':<14}{'bare p50':>10}{'step p50':>10}{'atomic p50':>12}"
        f"{'step/bare':>11}{'atomic/bare':>13}{'atomic/step':>13}"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        bare, plain, atomic = (statistics.median(row[k]) for k in ("bare", "step", "atomic"))
        print(
            f"{row['name']:<14}{bare:>10.1f}{plain:>10.1f}{atomic:>12.1f}"
            f"{plain / bare:>11.2f}{atomic / bare:>13.2f}{atomic / plain:>13.2f}"
        )
    print(
        "(one row per call, microseconds; bare: its own transaction; step: the row commits, "
        "then the step record; atomic: both in one transaction)"
    )


def run_atomic(n: int, folder: str, token: str) -> None:
    results = []
    for name, store_url, sa_url in (
        (
            "sqlite-file",
            f"sqlite:///{folder}/atomic.sqlite3?table=abench_{token}",
            f"sqlite:///{folder}/atomic.sqlite3",
        ),
        ("postgresql", f"{PG_URL}?table=abench_{token}", SA_URLS["postgresql"]),
        ("mariadb", f"{MYSQL_URL}?table=abench_{token}", SA_URLS["mariadb"]),
    ):
        found = atomic_vs_plain(name, store_url, sa_url, n)
        if found is not None:
            results.append(found)
    print()
    print_atomic(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--atomic", action="store_true", help="also atomic vs plain steps")
    parser.add_argument("--atomic-only", action="store_true", help="only atomic vs plain steps")
    args = parser.parse_args()
    n = args.calls
    import logging

    logging.getLogger("idemlint.runtime").setLevel(logging.WARNING)
    if args.atomic_only:
        import tempfile

        print(f"python {sys.version.split()[0]}, {n} calls per measurement, {os.cpu_count()} CPUs")
        run_atomic(n, tempfile.mkdtemp(prefix="idemlint-bench-"), uuid.uuid4().hex[:10])
        return 0
    bare_samples = timed([lambda k=k: work(k) for k in range(n)])
    bare_p50 = statistics.median(bare_samples)
    print(f"python {sys.version.split()[0]}, {n} calls per measurement, {os.cpu_count()} CPUs")
    print(f"bare function: p50 {bare_p50:.2f} us, p99 {percentile(bare_samples, 0.99):.2f} us")
    rows: list[dict[str, Any]] = []
    token = uuid.uuid4().hex[:10]
    import tempfile

    folder = tempfile.mkdtemp(prefix="idemlint-bench-")
    counter: RedisResponses | None = None
    stores = [
        ("sqlite-file", f"sqlite:///{folder}/bench.sqlite3"),
        ("sqlite-memory", "sqlite://"),
        ("postgresql", f"{PG_URL}?table=bench_{token}"),
        ("mariadb", f"{MYSQL_URL}?table=bench_{token}"),
    ]
    for name, url in stores:
        bench_store(name, url, n, bare_p50, rows, None)
    try:
        counter = RedisResponses()
    except ImportError as exc:
        print(f"redis-py missing ({exc}); skipping the Redis stores")
    else:
        bench_store("redis", f"{REDIS_URL}?prefix=bench{token}", n, bare_p50, rows, counter)
        head_to_head(n, bare_p50, rows, counter)
        counter.close()
    if args.atomic:
        run_atomic(n, folder, token)

    print()
    header = (
        f"{'implementation':<22}{'first p50':>10}{'first p99':>10}"
        f"{'replay p50':>11}{'replay p99':>11}{'overhead 1st':>13}"
        f"{'x bare':>9}{'RT 1st':>8}{'RT replay':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        p50 = statistics.median(row["first"])
        print(
            f"{row['impl']:<22}{p50:>10.1f}{percentile(row['first'], 0.99):>10.1f}"
            f"{statistics.median(row['replay']):>11.1f}{percentile(row['replay'], 0.99):>11.1f}"
            f"{p50 - row['bare']:>13.1f}{p50 / row['bare']:>9.0f}"
            f"{row['rt_first']:>8.2f}{row['rt_replay']:>10.2f}"
        )
    print("(times in microseconds per call; overhead = p50 minus the bare function's p50)")

    ours = next((r for r in rows if r["impl"] == "idemlint redis (h2h)"), None)
    theirs = next((r for r in rows if r["impl"] == "Powertools redis"), None)
    if ours and theirs:
        print()
        for phase in ("first", "replay"):
            a, b = statistics.median(ours[phase]), statistics.median(theirs[phase])
            c, d = percentile(ours[phase], 0.99), percentile(theirs[phase], 0.99)
            print(
                f"redis {phase:<6} (interleaved): idemlint p50 {a:.1f} / p99 {c:.1f} us vs "
                f"Powertools p50 {b:.1f} / p99 {d:.1f} us -> p50 ratio {a / b:.2f}"
            )
    print()
    ok = True
    for row in rows:
        fine = row["rt_first"] <= 2.0 + 1e-9 and row["rt_replay"] <= 1.0 + 1e-9
        if row["impl"].startswith("idemlint"):
            ok &= fine
            verdict = "ok" if fine else "OVER TARGET"
            print(
                f"round trips {row['impl']}: first {row['rt_first']:.2f} (target <= 2), "
                f"replay {row['rt_replay']:.2f} (target <= 1): {verdict}"
            )
    print()
    for row in rows:
        if "rt_retry" in row:
            print(
                f"round trips {row['impl']}: retry after a failure {row['rt_retry']:.2f}, "
                f"call while another holds the key {row['rt_busy']:.2f}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

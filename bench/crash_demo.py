"""Crash-in-the-dark: real Celery workers SIGKILLed mid-job, naive vs idempotent tasks.

The first thing a skeptic runs::

    python3 bench/crash_demo.py            # N=200 jobs per variant, >= 20 kills each

It starts a real Celery worker (prefork pool, ``acks_late=True``,
``task_reject_on_worker_lost=True``, broker: the local Redis on a dedicated
db and key prefix) against a fresh PostgreSQL database, enqueues N
order-confirmation jobs (each: an "email" row in ``outbox``, one unit of
stock off ``products``, a row in ``shipments``), and while they run kills
worker processes with SIGKILL at random moments - mostly pool children,
sometimes the main worker - restarting it like a rogue deployment would.
The broker redelivers what was in flight.

The naive task, the idempotent one (``idemlint.runtime``: an
``IdempotentTask`` keyed by the order, a step per effect, ``upsert`` on
unique keys, a stock ledger) and the atomic one (the naive task's own
statements on the naive tables, each in an ``atomic_step`` whose record
commits in the statement's transaction) run on the same seeded kill
schedule. At the end it counts duplicate emails and shipments, extra stock
decrements against the truth, and lost jobs, prints a table and writes a bar
chart.

Every process it starts is stopped by its id at the end; its database and
Redis keys are removed. The run is bounded (``--budget`` seconds per
variant). It is a benchmark, not a test: it exits 1 if the idempotent or the
atomic run shows a duplicate or a lost job, or fewer kills than ``--min-kills``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SKUS = ("MUG", "TEE", "CAP", "PEN", "BAG")
START_STOCK = 10_000


@dataclass
class Outcome:
    """What one variant's run left behind."""

    variant: str
    jobs: int
    kills_children: int = 0
    kills_main: int = 0
    seconds: float = 0.0
    duplicate_emails: int = 0
    double_decrements: int = 0
    duplicate_shipments: int = 0
    lost_jobs: int = 0
    resent: int = 0
    """Jobs the broker lost (nothing queued or in flight, job not done), sent again."""
    notes: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return self.kills_children + self.kills_main

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0

    @property
    def duplicates(self) -> int:
        return self.duplicate_emails + self.double_decrements + self.duplicate_shipments


# -- processes ---------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc (the pool processes of a Celery worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def kill(pid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


class Worker:
    """One ``celery worker`` process and its pool; every pid it ever had is remembered."""

    def __init__(self, env: dict[str, str], concurrency: int, log: Path) -> None:
        self.env = env
        self.concurrency = concurrency
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: set[int] = set()
        self.seen: dict[int, float] = {}
        self.restarts = 0

    def start(self) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "bench.crash_demo_app.worker", "worker",
            "--pool=prefork", f"--concurrency={self.concurrency}", "--prefetch-multiplier=1",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel=WARNING", "-Q", self.env["DEMO_QUEUE"],
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=out)
        self.pids.add(self.proc.pid)

    def ready(self) -> bool:
        """The worker signalled ``worker_ready`` (its consumer runs)."""
        marker = Path(self.env["DEMO_READY"])
        return self.alive() and marker.exists() and marker.read_text() == str(self.proc.pid)  # type: ignore[union-attr]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pool(self) -> list[int]:
        if not self.alive():
            return []
        assert self.proc is not None
        kids = children_of(self.proc.pid)
        self.pids.update(kids)
        now = time.monotonic()
        for pid in kids:
            self.seen.setdefault(pid, now)
        return kids

    def settled(self, age: float = 0.3) -> list[int]:
        """Pool processes of a ready worker that finished starting.

        Celery gives up ("Could not start worker processes") when a pool
        process dies before its consumer starts; a real deployment would see
        that too, but it would only measure our timing, not the task.
        """
        if not self.ready():
            return []
        now = time.monotonic()
        return [p for p in self.pool() if now - self.seen[p] >= age]

    def ensure_running(self) -> None:
        """A worker that died on its own (not by our hand) is restarted too."""
        if not self.alive():
            self.restarts += 1
            self.start()

    def kill_child(self, rng: random.Random) -> bool:
        kids = self.settled()
        return bool(kids) and kill(rng.choice(kids))

    def kill_main(self) -> None:
        """SIGKILL the main process and its pool (orphans would finish their jobs), restart."""
        assert self.proc is not None
        kids = self.pool()
        kill(self.proc.pid)
        for pid in kids:
            kill(pid)
        self.proc.wait()
        self.start()

    def stop(self) -> None:
        """Stop everything this worker ever started, by pid: TERM, then KILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.pool()
            kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        for pid in sorted(self.pids):
            kill(pid)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


# -- services ----------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(admin_dsn: str, names: str) -> Iterator[str]:
    """A new PostgreSQL database for one variant (its SQLAlchemy URL); dropped afterwards."""
    import psycopg

    name = f"{names}_crash_demo_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_dsn.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_schema(dsn: str, variant: str) -> None:
    import sqlalchemy as sa

    from bench.crash_demo_app.worker import SCHEMAS

    schema = SCHEMAS[variant]
    engine = sa.create_engine(dsn)
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(schema.products.insert(), [{"sku": s, "stock": START_STOCK} for s in SKUS])
    engine.dispose()


def broker_keys(client: Any, prefix: str, queue: str) -> tuple[int, int]:
    """Messages waiting in the queue, and delivered but not acknowledged."""
    return int(client.llen(f"{prefix}{queue}")), int(client.hlen(f"{prefix}unacked"))


def purge_prefix(client: Any, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        client.delete(key)


# -- one variant -------------------------------------------------------------------------


def schedule(seed: int, kills: int, main_every: int) -> list[tuple[float, str]]:
    """The kill schedule, the same for both variants: (seconds to wait, "child"/"main")."""
    rng = random.Random(seed)
    plan = []
    for i in range(kills):
        target = "main" if main_every and (i + 1) % main_every == 0 else "child"
        plan.append((rng.uniform(0.1, 0.4), target))
    return plan


def unfinished(dsn: str, orders: dict[int, str]) -> list[int]:
    """Orders without their email or their shipment."""
    import sqlalchemy as sa

    engine = sa.create_engine(dsn)
    with engine.connect() as conn:
        emailed = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT order_id FROM outbox"))}
        shipped = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT order_id FROM shipments"))}
    engine.dispose()
    return [o for o in orders if o not in emailed or o not in shipped]


def count(dsn: str, orders: dict[int, str]) -> tuple[int, int, int, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(dsn)
    with engine.connect() as conn:
        emails = dict(
            conn.execute(sa.text("SELECT order_id, count(*) FROM outbox GROUP BY order_id")).all()
        )
        ships = dict(
            conn.execute(
                sa.text("SELECT order_id, count(*) FROM shipments GROUP BY order_id")
            ).all()
        )
        stock = dict(conn.execute(sa.text("SELECT sku, stock FROM products")).all())
    engine.dispose()
    done = sum(1 for o in orders if emails.get(o, 0) and ships.get(o, 0))
    dup_emails = sum(max(0, c - 1) for c in emails.values())
    dup_ships = sum(max(0, c - 1) for c in ships.values())
    # what each sku should have lost: one unit per order that completed its move
    truth = {s: sum(1 for o, sku in orders.items() if sku == s) for s in SKUS}
    extra = sum(max(0, (START_STOCK - stock[s]) - truth[s]) for s in SKUS)
    return done, dup_emails, extra, dup_ships


def diagnose(dsn: str, orders: dict[int, str], variant: str) -> str:
    """Where each unfinished job stands: its rows and, for the idempotent run, its key."""
    import sqlalchemy as sa

    engine = sa.create_engine(dsn)
    parts = []
    with engine.connect() as conn:
        # the store makes its table at its first claim: none yet means no job started
        claimed = sa.inspect(conn).has_table("idem_keys")
        for order_id in orders:
            emails = conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE order_id = :o"), {"o": order_id}
            ).scalar_one()
            ships = conn.execute(
                sa.text("SELECT count(*) FROM shipments WHERE order_id = :o"), {"o": order_id}
            ).scalar_one()
            if emails and ships:
                continue
            key = ""
            if variant in ("idempotent", "atomic") and not claimed:
                key = ", key never claimed (no job of this run reached the store)"
            elif variant in ("idempotent", "atomic"):
                row = conn.execute(
                    sa.text("SELECT status, epoch FROM idem_keys WHERE idem_key = :k"),
                    {"k": f"confirm:{order_id}"},
                ).first()
                key = f", key {tuple(row) if row else 'never claimed'}"
            parts.append(f"order {order_id}: {emails} emails, {ships} shipments{key}")
    engine.dispose()
    return "; ".join(parts)


def run_variant(variant: str, args: argparse.Namespace, log_dir: Path) -> Outcome:
    import redis

    run = uuid.uuid4().hex[:8]
    prefix = f"{args.names}_demo_{run}:"
    queue = f"crash_demo_{variant}"
    client = redis.Redis.from_url(args.redis)
    outcome = Outcome(variant, args.n)
    with fresh_database(args.postgres, args.names) as dsn:
        create_schema(dsn, variant)
        store = dsn.replace("postgresql+psycopg://", "postgresql://", 1) + "?table=idem_keys"
        env = {
            **os.environ,
            "DEMO_DSN": dsn,
            "DEMO_BROKER": args.redis,
            "DEMO_PREFIX": prefix,
            "DEMO_QUEUE": queue,
            "DEMO_STORE": store,
            "DEMO_PAUSE": str(args.pause),
            "DEMO_READY": str(log_dir / f"ready-{variant}"),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        os.environ.update({k: env[k] for k in env if k.startswith("DEMO_")})
        from bench.crash_demo_app import worker as demo

        demo.app.conf.update(
            broker_url=demo.broker_url(args.redis),
            broker_transport_options={**demo.TRANSPORT_OPTIONS, "global_keyprefix": prefix},
            task_default_queue=queue,
        )
        rng = random.Random(args.seed)
        orders = {i: rng.choice(SKUS) for i in range(1, args.n + 1)}
        log = log_dir / f"worker-{variant}.log"
        log.write_bytes(b"")
        worker = Worker(env, args.concurrency, log)
        waiting = unacked = 0
        try:
            worker.start()
            deadline = time.monotonic() + args.budget
            while len(worker.settled()) < args.concurrency and time.monotonic() < deadline:
                time.sleep(0.05)
            started = time.monotonic()
            task = demo.TASKS[variant]
            with demo.app.connection_for_write() as conn:
                for order_id, sku in orders.items():
                    task.apply_async((order_id, sku), connection=conn, queue=queue)
            kill_rng = random.Random(args.seed + 1)
            plan = schedule(args.seed, args.kills, args.main_every)
            finished_at, last_done, empty_since = started, 0, None
            while time.monotonic() < deadline:
                done = count(dsn, orders)[0]
                if done > last_done:
                    finished_at, last_done = time.monotonic(), done
                waiting, unacked = broker_keys(client, prefix, queue)
                if done == len(orders) and waiting == 0 and unacked == 0:
                    break
                if waiting == 0 and unacked == 0 and worker.ready():
                    # nothing queued, nothing in flight, jobs unfinished: the broker lost them
                    empty_since = empty_since or time.monotonic()
                    if time.monotonic() - empty_since >= args.sweep_after:
                        lost = unfinished(dsn, orders)
                        with demo.app.connection_for_write() as conn:
                            for order_id in lost:
                                task.apply_async((order_id, orders[order_id]), connection=conn)
                        outcome.resent += len(lost)
                        empty_since = None
                else:
                    empty_since = None
                worker.ensure_running()
                if plan and done < len(orders):
                    wait, target = plan.pop(0)
                    time.sleep(wait)
                    if target == "main" and worker.settled():
                        worker.kill_main()
                        outcome.kills_main += 1
                    elif target == "child" and worker.kill_child(kill_rng):
                        outcome.kills_children += 1
                    else:
                        plan.insert(0, (0.05, target))  # no pool yet: try again shortly
                else:
                    time.sleep(0.1)
            outcome.seconds = finished_at - started
            if worker.restarts:
                outcome.notes.append(f"the worker died on its own {worker.restarts} times")
        finally:
            worker.stop()
            purge_prefix(client, prefix)
        done, outcome.duplicate_emails, outcome.double_decrements, outcome.duplicate_shipments = (
            count(dsn, orders)
        )
        outcome.lost_jobs = len(orders) - done
        if outcome.lost_jobs:
            outcome.notes.append(f"{outcome.lost_jobs} jobs unfinished after {args.budget:.0f}s")
            outcome.notes.append(
                f"broker at the end: {waiting} waiting, {unacked} unacked; "
                + diagnose(dsn, orders, variant)
            )
    return outcome


# -- output ------------------------------------------------------------------------------


ROWS = (
    ("kills (children + main)", lambda o: f"{o.kills} ({o.kills_children} + {o.kills_main})"),
    ("duplicate emails", lambda o: str(o.duplicate_emails)),
    ("double decrements", lambda o: str(o.double_decrements)),
    ("duplicate shipments", lambda o: str(o.duplicate_shipments)),
    ("lost jobs", lambda o: str(o.lost_jobs)),
    ("resent (lost by the broker)", lambda o: str(o.resent)),
    ("jobs/second", lambda o: f"{o.jobs_per_second:.1f}"),
)


def table(outcomes: list[Outcome]) -> str:
    head = ["", *(f"{o.variant} (N={o.jobs})" for o in outcomes)]
    rows = [[name, *(fmt(o) for o in outcomes)] for name, fmt in ROWS]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    out.append(line)
    for row in rows:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    out.append(line)
    return "\n".join(out)


def chart(outcomes: list[Outcome], paths: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["duplicate\nemails", "double\ndecrements", "duplicate\nshipments", "lost\njobs"]
    colours = {"naive": "#d62728", "idempotent": "#2ca02c", "atomic": "#1f77b4"}
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    width = 0.8 / max(1, len(outcomes))
    for i, o in enumerate(outcomes):
        values = [o.duplicate_emails, o.double_decrements, o.duplicate_shipments, o.lost_jobs]
        xs = [x + (i - (len(outcomes) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(
            xs,
            values,
            width,
            label=f"{o.variant}: {o.kills} kills, {o.jobs_per_second:.1f} jobs/s",
            color=colours.get(o.variant),
        )
        ax.bar_label(bars, padding=2)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("count")
    ax.set_title(
        f"{outcomes[0].jobs} order confirmations, Celery prefork + acks_late, workers SIGKILLed"
    )
    ax.legend()
    fig.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--n", type=int, default=200, help="jobs per variant (default 200)")
    parser.add_argument("--kills", type=int, default=30, help="kills scheduled per variant")
    parser.add_argument("--min-kills", type=int, default=20, help="fail below this many kills")
    parser.add_argument("--main-every", type=int, default=6, help="every k-th kill hits main")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between effects")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per variant")
    parser.add_argument(
        "--sweep-after",
        type=float,
        default=2.0,
        help="resend unfinished jobs once the broker has been empty this long",
    )
    parser.add_argument("--variants", default="naive,idempotent,atomic")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--names",
        default="idemlint",
        help="start of the database and Redis key prefix names (the test suite's own prefix)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--chart", type=Path, action="append", default=None)
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # bench.crash_demo_app, run as a script
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ".gitignore").write_text("*\n")
    outcomes = []
    for variant in args.variants.split(","):
        print(f"running {variant}: {args.n} jobs, {args.kills} kills scheduled ...", flush=True)
        outcomes.append(run_variant(variant, args, args.out))
    text = table(outcomes)
    print(text)
    (args.out / "crash_demo.txt").write_text(text + "\n")
    for o in outcomes:
        for note in o.notes:
            print(f"note ({o.variant}): {note}")
    if not args.no_chart:
        paths = args.chart or [
            args.out / "crash_demo.png",
            ROOT / "docs" / "img" / "crash_demo.png",
        ]
        chart(outcomes, paths)
        print("chart:", ", ".join(str(p) for p in paths))
    safe = [o for o in outcomes if o.variant in ("idempotent", "atomic")]
    bad = [o for o in safe if o.duplicates or o.lost_jobs or o.kills < args.min_kills]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

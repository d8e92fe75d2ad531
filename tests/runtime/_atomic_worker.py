"""The crash worker of tests/runtime/test_atomic_crash.py, run as a script.

    python _atomic_worker.py SA_URL STORE_URL ROWS_TABLE OUT PREFIX COUNT LEASE SEED

It imports everything once, then forks one child per job, ``COUNT`` of each
kind: ``PREFIX:a<i>`` with an atomic step, ``PREFIX:p<i>`` with a plain step
(the control), ``PREFIX:t<i>`` a whole-task atomic call. Each child opens its
own engine and store, claims its key, inserts one row into ROWS_TABLE inside
the step, and SIGKILLs itself at a point drawn at random (seeded) between the
row's write and the commit of the step record:

atomic step: 1 inside ``fn`` right after the INSERT, 2 after ``fn`` returned and
before the step record is written, 3 after the step record was written and
before COMMIT, 4 a timer of 0-3 ms after the step record, which may land
before, during or after the COMMIT.

plain step (the control): 1 inside ``fn`` after its own COMMIT, 2 after ``fn``
returned and before the step record is saved: the window an atomic step closes.

whole-task atomic mode (``@idempotent(atomic_using=)``): kill points 1-4 as
for the atomic step, around the completion's fenced UPDATE. Each child writes
``KILL <key> <stage>`` before it dies. Forking keeps the 20x loops fast: one
interpreter start, then a fork per kill.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm  # imported once here, not in every forked child
from sqlalchemy.pool import NullPool

import idemlint.runtime.atomic as atomic_module
import idemlint.runtime.steps as steps_module
from idemlint.runtime import atomic_step, idempotent, open_store, step


def main() -> None:
    sa_url, store_url, table, out_path, prefix, count, lease, seed = sys.argv[1:]
    rng = random.Random(int(seed))
    # import the drivers and dialects once, here, before forking (objects only: no
    # connection is opened, so no child inherits one); each child then starts in ms
    open_store(store_url).close()
    sa.create_engine(sa_url, poolclass=NullPool).dispose()
    kinds = (("a", "atomic", 4), ("p", "plain", 2), ("t", "task", 4))
    failed = []
    for letter, kind, stages in kinds:  # one kind at a time: at most COUNT connections open
        children = []
        for i in range(int(count)):
            key, stage = f"{prefix}:{letter}{i}", rng.randint(1, stages)
            pid = os.fork()
            if pid == 0:
                try:
                    child(sa_url, store_url, table, out_path, key, kind, stage, float(lease))
                finally:
                    os._exit(3)  # only reached when the kill did not happen
            children.append((pid, key))
        for pid, key in children:
            _, status = os.waitpid(pid, 0)
            if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
                failed.append(f"{key}: status {status}")
    if failed:
        raise SystemExit("children that were not killed: " + ", ".join(failed))


def child(
    sa_url: str,
    store_url: str,
    table: str,
    out_path: str,
    key: str,
    kind: str,
    stage: int,
    lease: float,
) -> None:
    out = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def die() -> None:
        os.write(out, f"KILL {key} {stage}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)

    # PyMySQL builds a TLS context per connection when TLS is not turned off (about 80 ms
    # of CPU): on loopback, with 60 children, that is most of the test's time
    mysql = store_url.startswith("mysql")
    engine = sa.create_engine(
        sa_url, poolclass=NullPool, connect_args={"ssl_disabled": True} if mysql else {}
    )
    store = open_store(store_url, create=False, **({"ssl_disabled": True} if mysql else {}))
    insert = sa.text(f"INSERT INTO {table} (k) VALUES (:k)")

    def insert_row(conn: Any) -> str:
        conn.execute(insert, {"k": key})
        if stage == 1:
            die()
        return f"row of {key}"

    def insert_committed() -> str:
        with engine.begin() as conn:
            conn.execute(insert, {"k": key})
        if stage == 1:
            die()
        return f"row of {key}"

    if kind in ("atomic", "task"):
        statement = "INSERT" if kind == "atomic" else "UPDATE"  # the record's statement
        original = atomic_module._Transaction.rowcount

        def rowcount(self: Any, sql: str, params: dict[str, Any]) -> int:
            head = sql.lstrip().upper()
            ours = head.startswith(statement) and (kind == "task" or "_steps" in sql)
            if ours and stage == 2:
                die()
            matched = original(self, sql, params)
            if ours and stage == 3:
                die()
            if ours and stage == 4:
                timer = threading.Timer(random.uniform(0, 0.003), die)
                timer.daemon = True
                timer.start()
            return matched

        atomic_module._Transaction.rowcount = rowcount  # type: ignore[method-assign]
    else:
        original_save = steps_module._save

        def save(*args: Any) -> None:
            if stage == 2:
                die()
            original_save(*args)

        steps_module._save = save

    if kind == "task":

        @idempotent(
            "{key}",
            store=store,
            lease=lease,
            fingerprint=["key"],
            atomic_using=lambda key, conn: conn,
        )
        def task(key: str, conn: Any) -> str:
            return insert_row(conn)

        with engine.connect() as conn:
            task(key, conn)
    else:

        @idempotent("{key}", store=store, lease=lease)
        def job(key: str) -> str:
            if kind == "atomic":
                with engine.connect() as conn:
                    return atomic_step("insert", insert_row, conn, using=conn)
            return step("insert", insert_committed)

        job(key)
    time.sleep(5)  # stage 4: the timer fires after the commit, maybe after completion too
    die()


if __name__ == "__main__":
    main()

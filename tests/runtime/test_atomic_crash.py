"""SIGKILL between a step's write and its commit, 20 times per backend and kind.

One worker process (``_atomic_worker.py``) forks a child per job; each child
inserts a row inside an atomic step (or an atomic task) and kills itself at a
point drawn at random between the INSERT and the COMMIT of the step record
(see the worker's docstring for the points). After the dead holders' leases
end, each job is retried here: an atomic step or task must leave exactly one
row and one record per job, its ``fn`` run once more only when the killed
attempt committed nothing. The control, the same job with a plain ``step``
killed between its committed write and its record, leaves two rows per job:
the window an atomic step closes.

The seed is printed on failure; ``IDEMLINT_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _databases import SQL_BACKENDS, database

from idemlint.runtime import atomic_step, idempotent, open_store, step

sa = pytest.importorskip("sqlalchemy")

WORKER = Path(__file__).with_name("_atomic_worker.py")
KILLS = 20
LEASE = 0.5


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_sigkill_between_the_write_and_the_commit(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db = database(backend, request, tmp_path)
    db.create_rows()
    seed = int(os.environ.get("IDEMLINT_CRASH_SEED", time.time_ns() % 1_000_000_007))
    prefix = f"crash{uuid.uuid4().hex[:8]}"
    out = tmp_path / "kills.log"
    store = open_store(db.store_url)
    store.create_schema()
    try:
        done = subprocess.run(
            [
                *(sys.executable, str(WORKER), db.sa_url, db.store_url, db.rows, str(out)),
                *(prefix, str(KILLS), str(LEASE), str(seed)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"seed {seed}: {done.stderr[-3000:]}"
        stages = Counter(tuple(line.split()[1:]) for line in out.read_text().splitlines())
        assert len(stages) == 3 * KILLS, f"seed {seed}: {len(stages)} kills logged"
        time.sleep(LEASE + 0.1)  # the dead holders' leases end
        engine = db.engine()
        ran: list[str] = []

        def write(conn: Any, key: str) -> str:
            ran.append(key)
            conn.execute(sa.text(f"INSERT INTO {db.rows} (k) VALUES (:k)"), {"k": key})
            return f"row of {key}"

        def write_committed(key: str) -> str:
            with engine.begin() as conn:
                return write(conn, key)

        @idempotent("{key}", store=store, lease=30, on_in_progress="wait", wait_timeout=10)
        def job(key: str) -> str:
            if ":a" in key:
                with engine.connect() as conn:
                    return atomic_step("insert", write, conn, key, using=conn)
            return step("insert", write_committed, key)

        @idempotent(
            "{key}",
            store=store,
            lease=30,
            on_in_progress="wait",
            wait_timeout=10,
            fingerprint=["key"],
            atomic_using=lambda key, conn: conn,
        )
        def task(key: str, conn: Any) -> str:
            return write(conn, key)

        for i in range(KILLS):
            for letter in "ap":
                assert job(f"{prefix}:{letter}{i}") == f"row of {prefix}:{letter}{i}"
            with engine.connect() as conn:
                assert task(f"{prefix}:t{i}", conn) == f"row of {prefix}:t{i}"

        report = []
        for (key, stage), _ in sorted(stages.items()):
            rows = db.count_rows(key)
            records = db.step_records(key) if ":t" not in key else None
            report.append((key, stage, rows, records, ran.count(key)))
        atomic = [r for r in report if ":p" not in r[0]]
        control = [r for r in report if ":p" in r[0]]
        bad = [r for r in atomic if r[2] != 1 or r[3] not in (1, None)]
        assert not bad, f"seed {seed}: (key, kill point, rows, step records, reruns) {bad}"
        for key, *_ in atomic:
            row = store.get(key)
            assert row is not None and row.status == "completed", (seed, key, row)
        # the control shows the window: every plain step killed after its write committed
        # and before its record ran the write again on the retry
        assert all(r[2] == 2 and r[3] == 1 for r in control), f"seed {seed}: {control}"
    finally:
        store.close()
        db.drop()

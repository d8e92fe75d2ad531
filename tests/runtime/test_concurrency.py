"""Races: 8 processes x 4 threads plus 32 threads in the test process hit one key,
then 200 keys at once, on every backend. Exactly one execution per key; every
other caller gets a replay or AlreadyInProgress."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from _spawn import finish, spawn, tally, wait_for_lines

from idemlint.runtime import AlreadyInProgress, idempotent, open_store

PROCESSES = 8
THREADS_PER_PROCESS = 4
LOCAL_THREADS = 32


def test_one_key_many_processes_and_threads_run_once(store_url: str, tmp_path: Path) -> None:
    out, go = tmp_path / "out.log", tmp_path / "go"
    procs = [
        spawn("race", store_url, out, go, THREADS_PER_PROCESS, 5.0, "race-key")
        for _ in range(PROCESSES)
    ]
    store = open_store(store_url)
    local_runs: list[str] = []
    local_outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    @idempotent("{key}", store=store, lease=5.0)
    def work(key: str) -> str:
        with lock:
            local_runs.append(key)
        return f"result of {key}"

    gate = threading.Event()

    def caller() -> None:
        gate.wait()
        try:
            outcome = work.call_detailed("race-key")
        except AlreadyInProgress:
            kind = "IN_PROGRESS"
        else:
            assert outcome.result == "result of race-key"
            kind = "REPLAY" if outcome.replayed else "RAN"
        with lock:
            local_outcomes[kind] += 1

    threads = [threading.Thread(target=caller) for _ in range(LOCAL_THREADS)]
    for thread in threads:
        thread.start()
    wait_for_lines(out, "READY", PROCESSES)
    go.touch()
    gate.set()
    for thread in threads:
        thread.join(60)
    finish(procs)
    counts = tally(out)
    executions = counts[("EXEC", "race-key")] + len(local_runs)
    ran = counts[("RAN", "race-key")] + local_outcomes["RAN"]
    others = (
        counts[("REPLAY", "race-key")]
        + counts[("IN_PROGRESS", "race-key")]
        + local_outcomes["REPLAY"]
        + local_outcomes["IN_PROGRESS"]
    )
    assert executions == 1
    assert ran == 1
    assert others == PROCESSES * THREADS_PER_PROCESS + LOCAL_THREADS - 1
    row = store.get("race-key")
    assert row is not None and row.status == "completed" and row.epoch == 1
    store.close()


def test_two_hundred_keys_at_once_each_run_once(store_url: str, tmp_path: Path) -> None:
    out, go = tmp_path / "out.log", tmp_path / "go"
    keys = 200
    procs = [
        spawn("keys", store_url, out, go, THREADS_PER_PROCESS, 5.0, "many", keys)
        for _ in range(PROCESSES)
    ]
    wait_for_lines(out, "READY", PROCESSES)
    go.touch()
    finish(procs)
    counts = tally(out)
    callers = PROCESSES * THREADS_PER_PROCESS
    for i in range(keys):
        key = f"many:{i}"
        assert counts[("EXEC", key)] == 1, key
        assert counts[("RAN", key)] == 1, key
        assert counts[("REPLAY", key)] + counts[("IN_PROGRESS", key)] == callers - 1, key
    store = open_store(store_url)
    assert all(store.get(f"many:{i}").status == "completed" for i in (0, 99, 199))  # type: ignore[union-attr]
    store.close()

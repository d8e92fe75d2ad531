"""Crashes, against every backend: a worker SIGKILLed mid-function, a worker
stalled (SIGSTOP) past its lease, and a pipeline killed after each step."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from _spawn import finish, lines, spawn, tally, wait_for_lines, wait_stopped

from idemlint.runtime import AlreadyInProgress, idempotent, open_store, step

LEASE = 1.0


def test_sigkilled_holder_is_taken_over_after_its_lease_and_runs_once(
    store_url: str, tmp_path: Path
) -> None:
    out, go = tmp_path / "out.log", tmp_path / "go"
    child = spawn("crash", store_url, out, go, "crash-key", LEASE)
    wait_for_lines(out, "EXEC crash-key", 1)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL
    store = open_store(store_url)
    runs: list[int] = []

    @idempotent("{key}", store=store, lease=LEASE)
    def retry(key: str) -> str:
        runs.append(1)
        return "retried"

    try:
        retry("crash-key")
        raise AssertionError("the dead holder's lease should still be live")
    except AlreadyInProgress as busy:
        assert busy.retry_after is not None and 0 < busy.retry_after <= LEASE
        time.sleep(busy.retry_after + 0.05)
    outcome = retry.call_detailed("crash-key")
    assert outcome.replayed is False and outcome.epoch == 2 and outcome.result == "retried"
    assert retry.call_detailed("crash-key").replayed is True
    assert runs == [1]
    assert tally(out)[("EXEC", "crash-key")] == 1  # the killed attempt ran exactly once, too
    store.close()


def test_stalled_holder_wakes_after_takeover_and_is_fenced(store_url: str, tmp_path: Path) -> None:
    out, go = tmp_path / "out.log", tmp_path / "go"
    child = spawn("stall", store_url, out, go, "stall-key", 0.5)
    wait_for_lines(out, "EXEC stall-key", 1)
    wait_stopped(child.pid)
    time.sleep(0.6)
    store = open_store(store_url)

    @idempotent("{key}", store=store, lease=30)
    def successor(key: str) -> str:
        return "successor result"

    taken = successor.call_detailed("stall-key")
    assert taken.epoch == 2 and taken.replayed is False
    os.kill(child.pid, signal.SIGCONT)
    finish([child])
    assert "LEASE_LOST stall-key epoch=1" in lines(out)
    assert not any(line.startswith("COMPLETED") for line in lines(out))
    row = store.get("stall-key")
    assert row is not None and (row.status, row.epoch) == ("completed", 2)
    assert successor.call_detailed("stall-key").result == "successor result"
    store.close()


def test_crash_after_each_step_then_retry_runs_each_step_once(
    store_url: str, tmp_path: Path
) -> None:
    out, go = tmp_path / "out.log", tmp_path / "go"
    lease = 0.5
    children = [spawn("steps", store_url, out, go, f"pipe{k}", lease, k) for k in (1, 2, 3)]
    for child in children:
        child.wait(60)
        assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    store = open_store(store_url)
    emitted: list[str] = []

    @idempotent("{key}", store=store, lease=lease, on_in_progress="wait", wait_timeout=10)
    def pipeline(key: str) -> list[str]:
        results = []
        for n in (1, 2, 3):

            def effect(n: int = n) -> str:
                emitted.append(f"STEP{n} {key}")
                return f"step {n} of {key}"

            results.append(step(f"step{n}", effect))
        return results

    for k in (1, 2, 3):
        outcome = pipeline.call_detailed(f"pipe{k}")
        assert outcome.result == [f"step {n} of pipe{k}" for n in (1, 2, 3)]
        assert outcome.epoch == 2 and outcome.replayed is False
    counts = tally(out)
    for k in (1, 2, 3):
        for n in (1, 2, 3):
            in_child = counts[(f"STEP{n}", f"pipe{k}")]
            in_retry = emitted.count(f"STEP{n} pipe{k}")
            assert in_child + in_retry == 1, (k, n, in_child, in_retry)
            assert in_child == (1 if n <= k else 0)
    store.close()

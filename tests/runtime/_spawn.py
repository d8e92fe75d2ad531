"""Helpers for tests that race or crash worker processes (see _worker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

WORKER = Path(__file__).with_name("_worker.py")


def spawn(mode: str, url: str, out: Path, go: Path, *args: object) -> subprocess.Popen[bytes]:
    """Start ``_worker.py MODE URL OUT GO ARGS...`` as a separate Python process."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, url, str(out), str(go), *map(str, args)],
        stderr=subprocess.PIPE,
    )


def lines(out: Path) -> list[str]:
    return out.read_text().splitlines() if out.exists() else []


def wait_for_lines(out: Path, prefix: str, count: int, timeout: float = 60) -> None:
    """Block until ``count`` lines starting with ``prefix`` were written."""
    deadline = time.monotonic() + timeout
    while sum(line.startswith(prefix) for line in lines(out)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {count} {prefix!r} lines: {lines(out)[-5:]}"
            )
        time.sleep(0.01)


def wait_stopped(pid: int, timeout: float = 10) -> None:
    """Block until process ``pid`` is stopped by a signal (state T in /proc)."""
    deadline = time.monotonic() + timeout
    while True:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not stop (state {state})")
        time.sleep(0.01)


def finish(procs: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    """Wait for every worker; a worker that failed fails the test with its stderr."""
    for proc in procs:
        proc.wait(timeout)
        if proc.returncode != 0:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"worker {proc.pid} exited {proc.returncode}: {err[-2000:]}")


def tally(out: Path) -> Counter[tuple[str, str]]:
    """(kind, key) counts of the worker lines."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in lines(out):
        kind, _, rest = line.partition(" ")
        counts[(kind, rest.split(" ")[0])] += 1
    return counts


__all__ = ["finish", "lines", "os", "spawn", "tally", "wait_for_lines", "wait_stopped"]

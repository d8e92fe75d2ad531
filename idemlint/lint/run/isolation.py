"""Summaries made where a crash or a hang costs one file, not the run.

libcst parses in native code: a file it cannot handle may kill the process (SIGSEGV) or
run for minutes, and no Python ``try`` helps. :mod:`idemlint.lint.summary.screen` turns
away what is known to do that; this module contains the rest:

* :func:`run_pool`, the worker pool of a cold run: one file per job, so a worker that
  dies is known to have died on that file. The worker is replaced, the file is run again
  alone in a fresh process (:func:`run_alone`), and reported if that dies too. A file
  whose job outlives :func:`file_timeout` has its worker killed and is reported. Unlike
  ``concurrent.futures``, whose pool is broken for good by one dead worker, the run goes on.
* :func:`run_alone`, one file in a new interpreter (``python -m
  idemlint.lint.run.isolation``) with a time limit: for the files a run would parse in its
  own process but that are too big to trust there, and for the retries above. A
  subprocess, not ``multiprocessing``: flake8 runs plugins in daemonic workers, which
  may not have children of their own.

Either way the caller gets the summary's cache text (:func:`idemlint.lint.summary.codec.encode`),
or None with the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# multiprocessing, subprocess and pickle are imported where used: a warm run (every
# summary from the cache) never starts a process, and imports cost it ~10 ms

DEFAULT_FILE_TIMEOUT = 120.0
"""Seconds one file may take to be summarised in a worker before it is given up. The
largest file of pretix takes under 2 s on a loaded two-core machine; a file 300
levels deep, the most the screen lets through, under 1 s."""

Job = tuple[str, str, str, bool]
"""What a worker needs to summarise one file: path, relative path, module, is-package."""

Work = Callable[[Job], str]
"""Summarises one job into the cache's text form (runs in the worker)."""


def file_timeout() -> float:
    """:data:`DEFAULT_FILE_TIMEOUT`, or ``IDEMLINT_FILE_TIMEOUT`` (seconds) when set."""
    raw = os.environ.get("IDEMLINT_FILE_TIMEOUT", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_FILE_TIMEOUT
    return value if value > 0 else DEFAULT_FILE_TIMEOUT


def can_start_processes() -> bool:
    """False inside a daemonic process (a flake8 worker), which may not start a pool."""
    import multiprocessing

    return not multiprocessing.current_process().daemon


def died(exitcode: int | None) -> str:
    """How a process ended, in words: ``killed by SIGSEGV``, ``exit status 1``."""
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}"
    return f"exit status {exitcode}"


# -- one file alone ----------------------------------------------------------------
@dataclass(frozen=True)
class Alone:
    """What :func:`run_alone` needs: the file's bytes (or its path) and its names."""

    rel: str
    module: str
    is_package: bool
    content: bytes | None = None
    path: str = ""


def run_alone(job: Alone, timeout: float | None = None) -> tuple[str | None, str]:
    """Summarise one file in a new interpreter: ``(text, "")``, or ``(None, why)`` when
    that process crashed or ran out of time."""
    import pickle
    import subprocess

    limit = file_timeout() if timeout is None else timeout
    package_parent = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "idemlint.lint.run.isolation"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError as exc:
        return None, f"could not start a process to parse it alone: {exc.strerror}"
    try:
        out, _ = proc.communicate(pickle.dumps(job), timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None, f"parsing took longer than {limit:g} s"
    if proc.returncode != 0 or not out:
        return None, f"the parser crashed ({died(proc.returncode)})"
    return out.decode("utf-8"), ""


def _alone_main() -> int:
    """The child side of :func:`run_alone`: a pickled :class:`Alone` on stdin, the
    summary's cache text on stdout."""
    import pickle

    from idemlint.lint.run.summarising import summarize_alone

    job = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.write(summarize_alone(job))
    sys.stdout.flush()
    return 0


# -- the pool ----------------------------------------------------------------------
def _serve(conn: Connection, work: Work) -> None:
    """A worker: summarise the jobs it is sent, one at a time, until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send(work(job))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    job: int = -1
    started: float = 0.0


Done = Callable[[int, "str | None", str], None]
"""Called once per job: its index, the summary's text (None when the file was given up)
and, then, why."""


def run_pool(
    jobs: Sequence[Job],
    workers: int,
    work: Work,
    done: Done,
    *,
    alone: Callable[[Job], tuple[str | None, str]],
    timeout: float | None = None,
) -> None:
    """Run every job in up to ``workers`` processes; ``done`` hears of each. A job whose
    worker dies is run again through ``alone`` (a fresh process, on its own)."""
    import multiprocessing
    from multiprocessing.connection import wait

    limit = file_timeout() if timeout is None else timeout
    context = multiprocessing.get_context()
    queue: deque[int] = deque(range(len(jobs)))
    retry: list[tuple[int, str]] = []
    idle: list[_Worker] = []
    busy: list[_Worker] = []

    def start() -> _Worker:
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, work), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def stop(worker: _Worker, *, kill: bool) -> None:
        if kill and worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.conn.close()

    try:
        while queue or busy:
            while queue and len(busy) < workers:
                worker = idle.pop() if idle else start()
                worker.job, worker.started = queue.popleft(), time.monotonic()
                worker.conn.send(jobs[worker.job])
                busy.append(worker)
            now = time.monotonic()
            wait_for = max(0.0, min(w.started + limit for w in busy) - now)
            watched = [*(w.conn for w in busy), *(w.process.sentinel for w in busy)]
            ready = set(wait(watched, wait_for))
            now = time.monotonic()
            for worker in list(busy):
                text: str | None = None
                if worker.conn in ready:
                    try:
                        text = worker.conn.recv()
                    except (EOFError, OSError):
                        text = None
                if text is not None:
                    busy.remove(worker)
                    idle.append(worker)
                    done(worker.job, text, "")
                elif worker.conn in ready or worker.process.sentinel in ready:
                    busy.remove(worker)
                    stop(worker, kill=True)
                    retry.append((worker.job, died(worker.process.exitcode)))
                elif now - worker.started >= limit:
                    busy.remove(worker)
                    stop(worker, kill=True)
                    done(worker.job, None, f"parsing took longer than {limit:g} s")
    finally:
        for worker in idle:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            stop(worker, kill=False)
        for worker in busy:  # only after an exception (Ctrl-C): their jobs are abandoned
            stop(worker, kill=True)
    for index, how in retry:
        text, why = alone(jobs[index])
        if text is None:
            why = f"{why}; its worker process was {how} and it was retried alone"
        done(index, text, why)


if __name__ == "__main__":
    sys.exit(_alone_main())

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
from collections.abc import Callable, Hashable, Sequence
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
def _serve(conn: Connection, work: Callable[[Any], str]) -> None:
    """A worker: run the jobs it is sent, one at a time, until told to stop."""
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
    key: Hashable = None
    job: Any = None
    started: float = 0.0


@dataclass(frozen=True)
class Finished:
    """One job's end: its key, its text (None when it was given up) and, then, why.
    ``died`` when its worker process died (the caller may run it again alone)."""

    key: Hashable
    job: Any
    text: str | None
    why: str = ""
    died: bool = False


class Pool:
    """Worker processes that run jobs as they are submitted, for as long as a run needs
    them: the pre-check's per-file work, then summaries, then the summaries the analysis
    is likely to read next, so that both cores stay busy while the parent does the
    serial work. One job per message, so a dead worker is known to have died on that
    job; the worker is replaced. A job that outlives :func:`file_timeout` has its
    worker killed.

    A thread of the parent hands out the jobs and takes the results (it waits on the
    workers' pipes, so it holds the interpreter only to move a message): the parent
    computes undisturbed while the workers never idle. :meth:`wait` blocks for one job,
    :meth:`take` removes a job that has not started (the parent runs it itself rather
    than wait behind others), :meth:`next_finished` hands out results in the order they
    come."""

    def __init__(
        self, size: int, work: Callable[[Any], str], *, timeout: float | None = None
    ) -> None:
        import multiprocessing
        import threading

        self.size = max(1, size)
        self.work = work
        self.limit = file_timeout() if timeout is None else timeout
        self._context = multiprocessing.get_context()
        self._lock = threading.Condition()
        self._queue: deque[Hashable] = deque()
        self._queued: dict[Hashable, Any] = {}
        self._idle: list[_Worker] = []
        self._busy: list[_Worker] = []
        self._done: dict[Hashable, Finished] = {}
        self._order: deque[Hashable] = deque()
        self._closed = False
        self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._service, name="idemlint-pool", daemon=True)
        self._thread.start()

    # -- the parent's side -------------------------------------------------------------
    def submit(self, key: Hashable, job: Any, *, front: bool = False) -> None:
        """Queue ``job`` under ``key``; a key queued, running or finished already is left
        as it is (``front`` moves a queued one to the front)."""
        with self._lock:
            if key in self._done or any(w.key == key for w in self._busy):
                return
            if key in self._queued:
                if front:
                    self._queue.remove(key)
                    self._queue.appendleft(key)
            else:
                self._queued[key] = job
                if front:
                    self._queue.appendleft(key)
                else:
                    self._queue.append(key)
        self._wake()

    def resize(self, size: int) -> None:
        """Run at most ``size`` jobs at once from now on (running ones finish)."""
        with self._lock:
            self.size = max(1, size)
        self._wake()

    def take(self, key: Hashable) -> bool:
        """Remove ``key`` from the queue if it has not started; whether it was there."""
        with self._lock:
            if key not in self._queued:
                return False
            del self._queued[key]
            self._queue.remove(key)
            return True

    def known(self, key: Hashable) -> bool:
        """Whether ``key`` is queued, running or finished (and not yet handed out)."""
        with self._lock:
            return key in self._queued or key in self._done or any(w.key == key for w in self._busy)

    def pending(self) -> int:
        """Jobs queued, running or finished and not yet handed out."""
        with self._lock:
            return len(self._queued) + len(self._busy) + len(self._done)

    def wait(self, key: Hashable) -> Finished | None:
        """The end of job ``key`` (waiting for it); None when it is not in the pool."""
        with self._lock:
            while key not in self._done:
                if key not in self._queued and not any(w.key == key for w in self._busy):
                    return None
                self._lock.wait(1.0)
            self._order.remove(key)
            return self._done.pop(key)

    def next_finished(self, timeout: float | None = None) -> Finished | None:
        """The next job to finish, in the order they did (waiting up to ``timeout``
        seconds, forever when None); None when there is none left or the time ran out."""
        with self._lock:
            while not self._order:
                if not self._queued and not self._busy:
                    return None
                woken = self._lock.wait(timeout if timeout is not None else 1.0)
                if not woken and timeout is not None:
                    return None
            key = self._order.popleft()
            return self._done.pop(key)

    def close(self) -> None:
        """Stop every worker; jobs still queued or running are abandoned."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._queued.clear()
        self._wake()
        self._thread.join(10)
        with self._lock:
            for worker in self._idle:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
                _stop(worker, kill=False)
            for worker in self._busy:
                _stop(worker, kill=True)
            self._idle, self._busy = [], []
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"w")

    # -- the thread's side -------------------------------------------------------------
    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child, self.work), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def _dispatch(self) -> None:
        """Hand queued jobs to idle workers (under the lock)."""
        while self._queue and len(self._busy) < self.size:
            key = self._queue.popleft()
            job = self._queued.pop(key)
            worker = self._idle.pop() if self._idle else self._start()
            worker.key, worker.job, worker.started = key, job, time.monotonic()
            try:
                worker.conn.send(job)
            except OSError:  # an idle worker that died: a fresh one
                _stop(worker, kill=True)
                worker = self._start()
                worker.key, worker.job, worker.started = key, job, time.monotonic()
                worker.conn.send(job)
            self._busy.append(worker)

    def _finish(self, end: Finished) -> None:
        self._done[end.key] = end
        self._order.append(end.key)

    def _service(self) -> None:
        from multiprocessing.connection import wait

        while True:
            with self._lock:
                if self._closed:
                    return
                self._dispatch()
                busy = list(self._busy)
            now = time.monotonic()
            wait_for = max(0.0, min(w.started + self.limit for w in busy) - now) if busy else None
            watched: list[Any] = [self._wake_r, *(w.conn for w in busy)]
            watched += [w.process.sentinel for w in busy]
            ready = set(wait(watched, wait_for))
            if self._wake_r in ready:
                with contextlib.suppress(OSError, EOFError):
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
            now = time.monotonic()
            with self._lock:
                if self._closed:
                    return
                for worker in busy:
                    text: str | None = None
                    if worker.conn in ready:
                        try:
                            text = worker.conn.recv()
                        except (EOFError, OSError):
                            text = None
                    if text is not None:
                        self._busy.remove(worker)
                        self._idle.append(worker)
                        self._finish(Finished(worker.key, worker.job, text))
                    elif worker.conn in ready or worker.process.sentinel in ready:
                        self._busy.remove(worker)
                        _stop(worker, kill=True)
                        self._finish(
                            Finished(
                                worker.key, worker.job, None, died(worker.process.exitcode), True
                            )
                        )
                    elif now - worker.started >= self.limit:
                        self._busy.remove(worker)
                        _stop(worker, kill=True)
                        why = f"parsing took longer than {self.limit:g} s"
                        self._finish(Finished(worker.key, worker.job, None, why))
                self._dispatch()
                self._lock.notify_all()


def _stop(worker: _Worker, *, kill: bool) -> None:
    if kill and worker.process.is_alive():
        worker.process.kill()
    worker.process.join(5)
    worker.conn.close()


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
    pool = Pool(workers, work, timeout=timeout)
    retry: list[tuple[int, str]] = []
    try:
        for index, job in enumerate(jobs):
            pool.submit(index, job)
        while (end := pool.next_finished()) is not None:
            assert isinstance(end.key, int)
            if end.died:
                retry.append((end.key, end.why))
            else:
                done(end.key, end.text, end.why)
    finally:
        pool.close()  # after an exception (Ctrl-C) the jobs left are abandoned
    for index, how in retry:
        text, why = alone(jobs[index])
        if text is None:
            why = f"{why}; its worker process was {how} and it was retried alone"
        done(index, text, why)


if __name__ == "__main__":
    sys.exit(_alone_main())

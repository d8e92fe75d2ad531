"""Servers of the test's own, for fault tests that must never touch the shared services.

``redis_server`` starts a private ``redis-server`` on a free port (in a temporary
folder, with whatever persistence the test asks for) and stops it by its pid.
``tcp_proxy`` starts ``_proxy.py`` in front of a shared server (PostgreSQL,
MariaDB): freezing the *proxy* with SIGSTOP freezes that server as far as the
store can tell - connections are accepted by the kernel and then nothing
answers - while the shared server itself is never paused. ``frozen`` sends
SIGSTOP, waits until every thread of the process has stopped (the signal
takes effect later than ``os.kill`` returns), and SIGCONT on the way out (or
after ``limit`` seconds at the latest, so a hanging test cannot keep a
process stopped).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

PROXY = Path(__file__).with_name("_proxy.py")


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"server exited {proc.returncode}: {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGCONT (in case it is frozen), then SIGTERM, then SIGKILL: by pid, this process only."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def start_redis(directory: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    """``redis-server`` on ``port`` with its files in ``directory``; ``args`` add config."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, proc)
    except BaseException:
        _stop(proc)
        raise
    return proc


@contextmanager
def redis_server(directory: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private Redis (URL, process); ``args`` override the no-persistence default."""
    port = free_port()
    proc = start_redis(directory, port, *args)
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        _stop(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started here, by its pid (SIGTERM: Redis saves what it persists)."""
    _stop(proc)


@contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A forwarding proxy to ``host:port`` in a process of its own: (its port, process)."""
    listen = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(PROXY), str(listen), host, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(listen, proc)
        yield listen, proc
    finally:
        _stop(proc)


def wait_stopped(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Return once every thread of ``proc`` is stopped (or it has exited).

    ``os.kill(pid, SIGSTOP)`` returns as soon as the signal is queued; the
    process stops only when one of its threads takes the signal and then stops
    the others. Until then it runs on: a request sent right after ``os.kill``
    could still be forwarded by the proxy to the shared server (a few times in
    a hundred, more on a loaded machine), whose answer then stayed in the
    stopped proxy - a "frozen" server that had applied the write.
    """
    tasks = Path(f"/proc/{proc.pid}/task")
    if not tasks.is_dir():
        if proc.poll() is None:  # no procfs: the stop of a child of ours is reported to us
            os.waitpid(proc.pid, os.WUNTRACED)
        return
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for stat in tasks.glob("*/stat"):
            with suppress(OSError):  # the thread ended meanwhile
                # "tid (comm) STATE ...": comm may hold spaces and parentheses
                states.append(stat.read_text().rpartition(")")[2].split()[0])
        if all(state in "TtZX" for state in states):  # stopped (or gone), every one
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {proc.pid} not stopped {timeout}s after SIGSTOP: {states}")
        time.sleep(0.001)


@contextmanager
def frozen(proc: subprocess.Popen[bytes], limit: float = 20.0) -> Iterator[None]:
    """SIGSTOP ``proc`` for the block (SIGCONT after ``limit`` s at the latest).

    The block starts only once the process has stopped (:func:`wait_stopped`).
    """
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        wait_stopped(proc)
    except BaseException:
        os.kill(proc.pid, signal.SIGCONT)
        raise
    thaw = threading.Timer(limit, lambda: os.kill(proc.pid, signal.SIGCONT))
    thaw.daemon = True
    thaw.start()
    try:
        yield
    finally:
        thaw.cancel()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)

"""A worker process for the concurrency and crash tests, run as a script.

    python _worker.py MODE STORE_URL OUT_FILE GO_FILE [ARGS...]

Every line it writes to OUT_FILE is one ``os.write`` on an ``O_APPEND``
descriptor, so lines from many processes and threads never interleave. Lines
are ``EXEC <key>`` for each real execution of a side effect, and
``<outcome> <key>`` for each call's outcome. It waits for GO_FILE to exist
before racing, so that all processes start together.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time

from idemlint.runtime import (
    AlreadyInProgress,
    LeaseLost,
    current_execution,
    idempotent,
    open_store,
    step,
)


def main() -> None:
    mode, url, out_path, go_path, *args = sys.argv[1:]
    out = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(line: str) -> None:
        os.write(out, (line + "\n").encode())

    store = open_store(url)

    def wait_for_go() -> None:
        emit(f"READY {os.getpid()}")
        deadline = time.monotonic() + 60
        while not os.path.exists(go_path):
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            time.sleep(0.001)

    if mode in ("race", "keys"):
        threads, lease = int(args[0]), float(args[1])
        keys = [args[2]] if mode == "race" else [f"{args[2]}:{i}" for i in range(int(args[3]))]
        pause = 0.2 if mode == "race" else 0.0

        @idempotent("{key}", store=store, lease=lease)
        def work(key: str) -> str:
            emit(f"EXEC {key}")
            time.sleep(pause)
            return f"result of {key}"

        failures: list[str] = []

        def caller() -> None:
            order = list(keys)
            random.shuffle(order)
            for key in order:
                try:
                    outcome = work.call_detailed(key)
                except AlreadyInProgress:
                    emit(f"IN_PROGRESS {key}")
                    continue
                except Exception as exc:  # a thread's error must fail the worker, loudly
                    failures.append(f"{key}: {type(exc).__name__}: {exc}")
                    emit(f"ERROR {key} {type(exc).__name__}: {exc}")
                    continue
                if outcome.result != f"result of {key}":
                    failures.append(f"{key}: wrong result {outcome!r}")
                    emit(f"ERROR {key} wrong result")
                    continue
                emit(f"{'REPLAY' if outcome.replayed else 'RAN'} {key}")

        wait_for_go()
        pool = [threading.Thread(target=caller) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        emit("DONE")
        if failures:
            raise SystemExit("calls failed:\n" + "\n".join(failures[:20]))
        return

    if mode in ("crash", "stall"):
        key, lease = args[0], float(args[1])

        @idempotent("{key}", store=store, lease=lease)
        def hang(key: str) -> str:
            execution = current_execution()
            assert execution is not None
            emit(f"EXEC {key} epoch={execution.epoch}")
            if mode == "crash":
                time.sleep(600)  # killed with SIGKILL before this ends
            else:
                os.kill(os.getpid(), signal.SIGSTOP)  # stalled until the parent sends SIGCONT
            return f"stale result of {key}"

        try:
            hang(key)
            emit(f"COMPLETED {key}")
        except LeaseLost as exc:
            emit(f"LEASE_LOST {key} epoch={exc.epoch}")
        return

    if mode == "steps":
        key, lease, crash_after = args[0], float(args[1]), int(args[2])

        @idempotent("{key}", store=store, lease=lease)
        def pipeline(key: str) -> list[str]:
            results = []
            for n in (1, 2, 3):

                def effect(n: int = n) -> str:
                    emit(f"STEP{n} {key}")
                    return f"step {n} of {key}"

                results.append(step(f"step{n}", effect))
                if n == crash_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            emit(f"EXEC {key}")
            return results

        pipeline(key)
        emit(f"COMPLETED {key}")
        return

    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

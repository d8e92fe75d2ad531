"""Run one command and print its wall time, CPU time and peak RSS as JSON.

``bench/lint_speed.py`` starts every timed command through this wrapper, so that
``getrusage(RUSAGE_CHILDREN)`` here covers exactly that command and its
descendants (a process pool included) and nothing the benchmark ran before.

    python bench/_measure.py [--cwd DIR] [--timeout SECONDS] -- CMD [ARG ...]

``cpu`` is user + system seconds of the command and every descendant it waited
for; ``rss_mb`` is the peak resident set of the largest single process among
them (what ``ru_maxrss`` reports for children), not a sum over a pool.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    cwd = None
    timeout: float | None = None
    if argv[:1] == ["--cwd"]:
        cwd, argv = argv[1], argv[2:]
    if argv[:1] == ["--timeout"]:
        timeout, argv = float(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    timed_out = False
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and every worker it started
        _, stderr = proc.communicate()
        timed_out = True
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": usage.ru_utime + usage.ru_stime,
                "rss_mb": usage.ru_maxrss / 1024,
                "returncode": proc.returncode,
                "timed_out": timed_out,
                "stderr": stderr.decode("utf-8", "replace")[-2000:],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

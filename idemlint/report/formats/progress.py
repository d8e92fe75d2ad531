"""The progress bar: on a terminal, for long runs only, never in logs.

It stays silent for the first second (``IDEMLINT_PROGRESS_DELAY`` seconds) so
that quick runs, the common case, print nothing extra; it is only created by
the CLI when stderr is a TTY outside CI and the terminal shows text, so a CI log
or a machine-readable report never holds carriage-return noise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TextIO

DEFAULT_DELAY = 1.0
WIDTH = 30
_CI_FALSE = ("", "0", "false", "no")


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether we run under a CI service (they set ``CI``; a few only their own variable)."""
    env = os.environ if environ is None else environ
    if env.get("CI", "").strip().lower() not in _CI_FALSE:
        return True
    return any(env.get(name) for name in ("GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "TF_BUILD"))


def delay_from_env(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    try:
        return max(float(env.get("IDEMLINT_PROGRESS_DELAY", DEFAULT_DELAY)), 0.0)
    except ValueError:
        return DEFAULT_DELAY


class ProgressBar:
    """A ``progress(done, total)`` callback for the engine that draws one updating line."""

    def __init__(
        self,
        stream: TextIO,
        *,
        delay: float = DEFAULT_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._delay = delay
        self._clock = clock
        self._started = clock()
        self._last_drawn = -1.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        if now - self._started < self._delay:
            return
        if done < total and now - self._last_drawn < 0.1:
            return  # redrawing faster than the eye reads only costs time
        self._last_drawn = now
        filled = WIDTH * done // total if total else WIDTH
        bar = "#" * filled + "-" * (WIDTH - filled)
        self._stream.write(f"\ridemlint: [{bar}] {done}/{total} files")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        """Erase the bar so the report starts on a clean line."""
        if self._shown:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._shown = False

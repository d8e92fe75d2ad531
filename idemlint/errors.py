"""Errors a user can cause and fix: bad configuration, bad paths.

They carry enough to print one line that names the problem (the file, the key
and what is accepted), which the CLI turns into exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class IdemlintError(Exception):
    """Base class of the errors the CLI reports as usage/config errors (exit 2)."""


class ConfigError(IdemlintError):
    """A configuration value is unknown or malformed."""

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        key: str | None = None,
        accepted: Iterable[str] | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.problem = problem
        self.accepted = tuple(accepted) if accepted is not None else ()
        where = f"{self.file}: " if self.file else ""
        what = f"[tool.idemlint] {key}: " if key else ""
        tail = f" (accepted: {', '.join(self.accepted)})" if self.accepted else ""
        super().__init__(f"{where}{what}{problem}{tail}")

"""The checks: one module per checklist item, each adding ``Hit``s to a ``TaskContext``.

A check sees one task at a time with every function its run reaches
(:class:`idemlint.lint.analysis.walk.TaskContext`). Checks in ``STATEMENT_CHECKS`` look at
statements; ``TASK_CHECKS`` run after them and may read their hits (IDM101 reports a
retried task only when something it reaches is unsafe). Adding a rule means adding
its catalog file under ``rules/`` and a function here.
"""

from __future__ import annotations

from collections.abc import Callable

from idemlint.lint.analysis.walk import TaskContext
from idemlint.lint.checks import (
    claims,
    constraints,
    keys,
    prior_art,
    relative,
    retries,
    sweeps,
    transitions,
)

Check = Callable[[TaskContext], None]

STATEMENT_CHECKS: tuple[tuple[str, Check], ...] = (
    ("IDM2xx", keys.check),
    ("IDM3xx", prior_art.check),
    ("IDM4xx", constraints.check),
    ("IDM5xx", relative.check),
    ("IDM601", transitions.check_transitions),
)
TASK_CHECKS: tuple[tuple[str, Check], ...] = (
    ("IDM603", sweeps.check),
    ("IDM604", claims.check),
    ("IDM602", transitions.check_terminal_state),
    ("IDM101", retries.check),
)

"""assume-retries: IDM101, a retry or redelivery setting that cannot be read statically.

Every other finding already names the mechanism that repeats its work (its message and
``delivery``), so this rule never restates them. What is left for the checklist item
itself is the configuration: where a task's ``autoretry_for`` or a project setting is
not a literal (a constant built elsewhere, a value from the environment), idemlint
assumes the task runs twice, and says so here once, at the task.
"""

from __future__ import annotations

from idemlint.lint.analysis.walk import TaskContext


def check(ctx: TaskContext) -> None:
    unread = [m for m in ctx.task.mechanisms if not m.resolved]
    if unread:
        m = unread[0]
        where = f" at {m.source}" if m.source else ""
        ctx.hit("IDM101", ctx.reached[0], ctx.task.span, f"{m.detail}{where}")

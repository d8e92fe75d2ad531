"""assume-retries: IDM101, a task configured to retry that reaches unguarded unsafe work."""

from __future__ import annotations

from idemlint.analysis import TaskContext


def check(ctx: TaskContext) -> None:
    if not ctx.task.retries:
        return
    if any(not h.rule.startswith(("IDM0", "IDM1")) for h in ctx.hits):
        ctx.hit("IDM101", ctx.reached[0], ctx.task.span, ctx.task.retry_reason)

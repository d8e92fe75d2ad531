"""assume-retries: IDM101, a task configured to retry that reaches unguarded unsafe work."""

from __future__ import annotations

from idemlint.lint.analysis.walk import TaskContext


def check(ctx: TaskContext) -> None:
    if not ctx.task.retries:
        return
    unsafe = [h for h in ctx.hits if not h.rule.startswith(("IDM0", "IDM1"))]
    if unsafe:
        # name one finding: it may be reported under another task that reaches it too
        first = min(unsafe, key=lambda h: (h.path, h.span.line))
        where = f"{first.rule} at {first.path}:{first.span.line}"
        ctx.hit("IDM101", ctx.reached[0], ctx.task.span, f"{ctx.task.retry_reason}; {where}")

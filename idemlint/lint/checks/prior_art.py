"""check-prior-art: IDM301-IDM305, a side effect with nothing showing it was already done."""

from __future__ import annotations

from idemlint.lint.analysis.walk import TaskContext
from idemlint.lint.checks.keys import key_values, missing_key

RULE_BY_KIND = {
    "row-create": "IDM301",
    "message": "IDM302",
    "payment": "IDM303",
    "http-write": "IDM304",
    "enqueue": "IDM305",
}


def _continues_itself(ctx: TaskContext, resolved: str) -> bool:
    """A batch task that enqueues itself for the next batch: the chain is driven by what is
    left to do in the database, not by this run having happened, so it is not reported."""
    prefix = ctx.project.task_prefix(resolved)
    return prefix is not None and prefix[0] == ctx.task.name


def check(ctx: TaskContext) -> None:
    for r, c in ctx.effects():
        effect = c.effect
        if effect is None or r.guarded or r.facts.guarded(c.event):
            continue
        if key_values(r.facts, c) or missing_key(r.facts, c) is not None:
            continue  # keyed: safe, or judged by identify-the-key (IDM2xx) instead
        if effect.kind == "enqueue" and _continues_itself(ctx, c.resolved):
            continue
        ctx.hit(RULE_BY_KIND[effect.kind], r, c.event, f"{c.value.path}()")

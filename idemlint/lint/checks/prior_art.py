"""check-prior-art: IDM301-IDM305, a side effect with nothing showing it was already done."""

from __future__ import annotations

from idemlint.lint.analysis.walk import CallFact, Reached, TaskContext, origin_up
from idemlint.lint.checks.keys import key_values, missing_key
from idemlint.lint.index.project import split_root
from idemlint.lint.summary.model import Value

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


def _row_values(r: Reached, c: CallFact) -> list[Value]:
    """The values a create stores: its keywords, or those of the object it saves or adds."""
    values = list(c.value.kwargs.values())
    built: list[Value] = []
    if c.value.args and c.value.args[0].kind in ("call", "name"):
        built.append(c.value.args[0])
    if c.value.recv is not None:
        built.append(c.value.recv)  # `Note(project=p).save()`
    elif c.value.path and c.value.path.endswith(".save"):
        built.append(Value("name", path=c.value.path[: -len(".save")]))
    for v in built:
        if v.kind == "name" and v.path:
            bound = r.facts.locals().get(v.path, [])
            v = bound[-1] if bound else v
        if v.kind == "call":
            values += v.kwargs.values()
    return values


def _under_new_parent(r: Reached, c: CallFact) -> bool:
    """``Milestone.objects.create(project=project)`` or ``project.milestones.create(...)``
    where ``project`` was created by this run: a second run creates another parent, and
    its rows under it; the parent's own create is the finding."""
    line = c.event.span.line
    root, rest = split_root(c.value.path or "")
    if rest.count(".") > 1 and "(" not in rest and origin_up(r, root, line) == "new":
        return True
    return any(
        v.kind == "name" and v.path and origin_up(r, v.path, line) == "new"
        for v in _row_values(r, c)
    )


def check(ctx: TaskContext) -> None:
    for r, c in ctx.effects():
        effect = c.effect
        if effect is None or r.guarded or r.facts.guarded(c.event):
            continue
        line = c.event.span.line
        if c.param_object is not None and origin_up(r, c.param_object, line) != "new":
            continue  # saves an object it was given: an update, unless the caller built it
        if effect.kind == "row-create" and _under_new_parent(r, c):
            continue
        if key_values(r.facts, c) or missing_key(r.facts, c) is not None:
            continue  # keyed: safe, or judged by identify-the-key (IDM2xx) instead
        if effect.key_kwarg and "**" in c.value.kwargs:
            continue  # the key comes from the callers' keywords: IDM202 judges it there
        if effect.kind == "enqueue" and _continues_itself(ctx, c.resolved):
            continue
        ctx.hit(RULE_BY_KIND[effect.kind], r, c.event, f"{c.value.path}()")

"""database-constraints: IDM401/IDM402, uniqueness that rests on a field no constraint backs.

Where the model cannot be found in the project, say nothing rather than guess.
"""

from __future__ import annotations

from idemlint.lint.analysis.walk import (
    EQUALITY_SUFFIXES,
    NON_FIELD_KWARGS,
    CallFact,
    FunctionFacts,
    TaskContext,
    compared_attrs,
)
from idemlint.lint.index.project import ModelInfo, last_segment
from idemlint.lint.summary.model import Event, Value

UPSERT_METHODS = ("get_or_create", "update_or_create")
QUERY_METHODS = ("query", "select")


def _kw_fields(value: Value) -> set[str] | None:
    fields: set[str] = set()
    for key in value.kwargs:
        if key == "**":
            return None
        if key in NON_FIELD_KWARGS:
            continue
        if "__" not in key or key.endswith(EQUALITY_SUFFIXES):
            fields.add(key.split("__", 1)[0])
    return fields


def lookup_target(facts: FunctionFacts, c: CallFact) -> tuple[ModelInfo, set[str]] | None:
    """The model a lookup reads and the equality fields it filters on."""
    chain = _statement_chain(facts, c.value)
    model = c.model or _query_model(facts, chain)
    if model is None:
        return None
    fields: set[str] = set()
    for link in chain:
        seg = last_segment(link.path or "")
        if seg in ("filter", "get", "filter_by"):
            if link.args and seg != "filter":
                return None
            kw = _kw_fields(link)
            if kw is None:
                return None
            fields |= kw
            for arg in link.args:
                found = compared_attrs(arg)
                if not found:
                    return None  # Q objects and friends: opaque
                fields |= found
        elif seg == "where":
            for arg in link.args:
                fields |= compared_attrs(arg)
    return (model, fields) if fields else None


def _statement_chain(facts: FunctionFacts, value: Value) -> list[Value]:
    """The calls of a query chain, outermost first, following ``stmt = select(...)`` locals."""
    out: list[Value] = []
    cur: Value | None = value
    while cur is not None:
        out.append(cur)
        for arg in cur.args:
            if arg.kind == "name" and arg.path:
                for bound in facts.locals().get(arg.path, []):
                    if bound.kind == "call":
                        out.extend(_statement_chain(facts, bound))
            elif arg.kind == "call":
                out.extend(_statement_chain(facts, arg))
        cur = cur.recv
    return out


def _query_model(facts: FunctionFacts, chain: list[Value]) -> ModelInfo | None:
    for link in chain:
        if last_segment(link.path or "") in QUERY_METHODS and link.args:
            resolved = facts.resolve_value(link.args[0])
            if resolved:
                model = facts.project.model_of(resolved)
                if model is not None:
                    return model
    return None


def _guard_lookups(facts: FunctionFacts, branch: Event) -> list[CallFact]:
    """Lookups an ``if`` test reads, directly or through a local bound to one."""
    out: list[CallFact] = []
    test_block = f"t{branch.id}"
    names = {
        v.path.split(".")[0].split("(")[0]
        for v in (branch.value.walk() if branch.value else [])
        if v.kind in ("name", "attr") and v.path
    }
    for c in facts.calls:
        if not c.lookup or c.chain_inner:
            continue
        if test_block in c.event.blocks or any(t in names for t in c.event.targets):
            out.append(c)
    return out


def _create_is_unique(facts: FunctionFacts, create: CallFact) -> bool:
    """The create sets every field of a unique constraint (``unique_together = ("hash",
    "option")`` and ``create(hash=h, option=o)``): a second run's create fails instead of
    duplicating, whatever the check before it looked up."""
    fields = facts.create_fields(create)
    return bool(fields) and create.model is not None and create.model.is_unique(fields)


def check(ctx: TaskContext) -> None:
    for r in ctx.reached:
        facts = r.facts
        for c in facts.calls:
            if c.upsert and c.model is not None and last_segment(c.resolved) in UPSERT_METHODS:
                fields = _kw_fields(c.value)
                if fields is None or c.value.args:
                    continue
                fields |= facts.chain_filters(c.value) or set()
                if fields and not c.model.is_unique(fields):
                    ctx.hit("IDM401", r, c.event, _describe(c.model, fields))
        creates = [
            c
            for c in facts.calls
            if c.effect is not None and c.effect.kind == "row-create" and c.model is not None
        ]
        if not creates or r.locked:
            continue
        for branch in facts.branches:
            if branch.id in facts.try_guards:
                # `try: get(...) except DoesNotExist: create(...)`: the same check-then-create
                lookups = [c for c in facts.calls if c.lookup and f"b{branch.id}" in c.event.blocks]
            elif branch.id in facts.guard_branches:
                lookups = _guard_lookups(facts, branch)
            else:
                continue
            for lookup in lookups:
                if facts.under_row_lock(lookup.event):
                    continue  # serialised by a row lock the run holds
                target = lookup_target(facts, lookup)
                if target is None:
                    continue
                model, fields = target
                if model.is_unique(fields):
                    continue
                if any(
                    cr.model is not None
                    and cr.model.qualname == model.qualname
                    and cr.event.span.line > lookup.event.span.line
                    and not _create_is_unique(facts, cr)
                    for cr in creates
                ):
                    where = branch if f"t{branch.id}" in lookup.event.blocks else lookup.event
                    ctx.hit("IDM402", r, where, _describe(model, fields))


def _describe(model: ModelInfo, fields: set[str]) -> str:
    return f"{model.qualname.rsplit('.', 1)[-1]}.{'/'.join(sorted(fields))}"

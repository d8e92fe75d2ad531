"""database-constraints: IDM401/IDM402, uniqueness that rests on a field no constraint backs.

Where the model cannot be found in the project, say nothing rather than guess.
"""

from __future__ import annotations

import re

from idemlint.lint.analysis.walk import (
    EQUALITY_SUFFIXES,
    NON_FIELD_KWARGS,
    CallFact,
    FunctionFacts,
    Reached,
    TaskContext,
    blocks_contain,
    caller_argument,
    compared_attrs,
    origin_up,
)
from idemlint.lint.index.project import ModelInfo, last_segment, split_root
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


def _guard_lookups(
    facts: FunctionFacts, branch: Event
) -> list[tuple[FunctionFacts, CallFact, CallFact]]:
    """Lookups an ``if`` test reads, directly or through a local bound to one, each with
    the facts of the function it is in and the call of this function it stands for: a
    project function the test calls whose result is a lookup's (``if badge.
    is_awarded_to(user):`` with ``return Award.objects.filter(...).exists()``) reads it
    too."""
    out: list[tuple[FunctionFacts, CallFact, CallFact]] = []
    test_block = f"t{branch.id}"
    names = {
        v.path.split(".")[0].split("(")[0]
        for v in (branch.value.walk() if branch.value else [])
        if v.kind in ("name", "attr") and v.path
    }
    for c in facts.calls:
        if c.chain_inner:
            continue
        # a lookup the test reads: in the test, or bound to a name it reads before it (a
        # rebinding inside the branch is not what the test saw)
        bound = c.event.span.line < branch.span.line and any(t in names for t in c.event.targets)
        if not (test_block in c.event.blocks or bound):
            continue
        # a project method's own body says more than a name that looks like a lookup
        # (`Badge.objects.get().held_by` is the method, not the query)
        peer = facts.peer(c.target) if c.target is not None and not c.upsert else None
        if peer is not None and peer.returns.guard and peer.returns.sense > 0:
            out += [(peer, inner, c) for inner in _returned_lookups(peer)]
        elif c.lookup and peer is None:
            out.append((facts, c, c))
    return out


def _returned_lookups(facts: FunctionFacts) -> list[CallFact]:
    """The lookups whose result ``facts``' function returns: in a ``return`` statement,
    or bound to a name it returns."""
    returns = [ev for ev in facts.func.events if ev.type == "exit" and ev.op == "return"]
    lines = {ev.span.line for ev in returns}
    names = {
        v.path
        for ev in returns
        if ev.value is not None
        for v in ev.value.walk()
        if v.kind == "name" and v.path
    }
    return [
        c
        for c in facts.calls
        if c.lookup
        and not c.chain_inner
        and (c.event.span.line in lines or any(t in names for t in c.event.targets))
    ]


def _creates_through(facts: FunctionFacts, c: CallFact, model: str, depth: int = 2) -> bool:
    """Project call ``c`` creates a row of ``model`` in the function it calls (or one
    that calls, ``depth`` levels down), with no unique constraint behind that create."""
    peer = facts.peer(c.target) if c.target is not None else None
    if peer is None or depth <= 0:
        return False
    for inner in peer.calls:
        if (
            inner.effect is not None
            and inner.effect.kind == "row-create"
            and inner.model is not None
            and inner.model.qualname == model
            and not _create_is_unique(peer, inner)
        ):
            return True
        if inner.target is not None and _creates_through(peer, inner, model, depth - 1):
            return True
    return False


Frames = tuple[tuple[FunctionFacts, int], ...]
"""The callers of a function, from the task down, each with the line of its call
(:attr:`idemlint.lint.analysis.walk.Reached.callers`)."""


def from_message(facts: FunctionFacts, value: Value, callers: Frames = (), depth: int = 3) -> bool:
    """``value`` is built from the message's arguments: from a parameter of the task (not
    ``self``/``cls``), through locals, loops, and the arguments each caller in
    ``callers`` passes down to a helper's parameter. Two messages race on the same rows
    only when the rows a check reads are named by the message; rows a run finds on its
    own (a seed file, every row of a table), a model method's own instance, or an object
    the run itself built (a model constructed, a row created: no other message can name
    it) are one per event, not per key."""
    # `ids[:100]`, `rows[0]`, `f(x)`: the name the expression starts from
    roots = {
        re.split(r"[(\[]", split_root(v.path)[0], maxsplit=1)[0] for v in value.walk() if v.path
    }
    return any(_derived(facts, name, callers, depth) for name in roots if name)


def _keyed_by_own_row(r: Reached, lookup: Value, line: int) -> bool:
    """One of the lookup's values is a row this run created (``get_or_create(project=
    project, ...)`` where the task made ``project``, here or in a caller): no other
    message can name the rows it looks up, so two runs never race on them."""
    for name, value in lookup.kwargs.items():
        if name in NON_FIELD_KWARGS:
            continue
        for v in value.walk():
            root = split_root(v.path)[0] if v.kind in ("name", "attr") and v.path else ""
            if root and origin_up(r, root, line) == "new":
                return True
    return False


def _derived(facts: FunctionFacts, name: str, callers: Frames, depth: int) -> bool:
    if name in facts.params:
        if name in ("self", "cls"):
            return False
        if not callers:
            return True  # the task's own parameter: the message's argument
        caller, line = callers[-1]
        arg = caller_argument(facts, caller, line, name)
        # not passed (a default) or passed opaquely: not known to come from the message
        return arg is not None and from_message(caller, arg, callers[:-1])
    if depth <= 0:
        return False
    bounds = facts.locals().get(name, [])
    if bounds and all(facts.value_origin(b) == "new" for b in bounds):
        return False  # made in this run: no other message names it
    for bound in bounds:
        if bound.kind == "other" and not bound.path:  # a loop variable: what it runs over
            loops = [
                b.value
                for b in facts.branches
                if b.kind == "for" and name in b.targets and b.value is not None
            ]
            if any(from_message(facts, v, callers, depth - 1) for v in loops):
                return True
        elif from_message(facts, bound, callers, depth - 1):
            return True
    return False


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
                    if facts.unique_error_handled(c.event):
                        continue  # the loser's IntegrityError is caught: a constraint is there
                    race = from_message(facts, c.value, r.callers) and not _keyed_by_own_row(
                        r, c.value, c.event.span.line
                    )
                    ctx.hit("IDM401", r, c.event, _describe(c.model, fields), race=race)
        creates = [
            c
            for c in facts.calls
            if c.effect is not None and c.effect.kind == "row-create" and c.model is not None
        ]
        helpers = [c for c in facts.calls if c.target is not None and not c.chain_inner]
        if not (creates or helpers) or r.locked:
            continue
        for branch in facts.branches:
            if branch.id in facts.try_guards:
                # `try: get(...) except DoesNotExist: create(...)`: the same check-then-create
                lookups = [
                    (facts, c, c)
                    for c in facts.calls
                    if c.lookup and f"b{branch.id}" in c.event.blocks
                ]
            elif branch.id in facts.guard_branches:
                lookups = _guard_lookups(facts, branch)
            else:
                continue
            for home, lookup, here in lookups:
                if facts.under_row_lock(here.event) or home.under_row_lock(lookup.event):
                    continue  # serialised by a row lock the run holds
                target = lookup_target(home, lookup)
                if target is None:
                    continue
                model, fields = target
                if model.is_unique(fields):
                    continue
                line = here.event.span.line
                if any(
                    cr.model is not None
                    and cr.model.qualname == model.qualname
                    and cr.event.span.line > line
                    and _gated(facts, branch, cr.event)
                    and not _create_is_unique(facts, cr)
                    and not facts.unique_error_handled(cr.event)
                    for cr in creates
                ) or any(
                    h.event.span.line > line
                    and h is not here
                    and _gated(facts, branch, h.event)
                    and _creates_through(facts, h, model.qualname)
                    for h in helpers
                ):
                    where = branch if f"t{branch.id}" in here.event.blocks else here.event
                    # an existence check (found / not found), on rows the message names
                    up = r.callers if home is facts else (*r.callers, (facts, line))
                    race = facts.guard_sense.get(branch.id, 1) != 0 and from_message(
                        home, lookup.value, up
                    )
                    ctx.hit("IDM402", r, where, _describe(model, fields), race=race)


def _gated(facts: FunctionFacts, branch: Event, ev: Event) -> bool:
    """``ev`` runs only when the check found no row: the ``if``'s side for "not found"
    (its body for ``if not exists:``, its ``else`` or what follows an early exit for
    ``if exists: return``). A create that runs either way (``last = ...first()``, then
    ``if last: start = last.end``, then a create after the ``if``) does not follow from
    the check: the lookup read a row for another purpose. A ``try`` guard's handler, and a
    check of unknown sense, keep any later create."""
    sense = facts.guard_sense.get(branch.id, 0) if branch.kind == "if" else 0
    return True if sense == 0 else on_miss(branch, sense, ev)


def on_miss(branch: Event, sense: int, ev: Event) -> bool:
    """``ev`` is on the side of the ``if`` ``branch`` where its check found nothing:
    for a check true when found (``sense > 0``: ``if exists: return``) its ``else`` or
    what follows a body that exits; otherwise its body (``if not exists:``)."""
    if sense > 0:
        after = (
            branch.body_exits
            and ev.span.line > branch.end_line
            and blocks_contain(branch.blocks, ev.blocks)
        )
        return f"e{branch.id}" in ev.blocks or after
    return f"b{branch.id}" in ev.blocks


def _describe(model: ModelInfo, fields: set[str]) -> str:
    return f"{model.qualname.rsplit('.', 1)[-1]}.{'/'.join(sorted(fields))}"

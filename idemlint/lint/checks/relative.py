"""declarative-over-imperative: IDM501-IDM503, relative updates that a retry applies twice."""

from __future__ import annotations

from idemlint.lint.analysis.walk import FunctionFacts, Reached, TaskContext
from idemlint.lint.index.project import last_segment, split_root
from idemlint.lint.summary.model import Event, Value

UPDATE_METHODS = ("update", "values", "update_or_create")


def _persisted_object(facts: FunctionFacts, root: str) -> bool:
    """``root`` is an ORM object: its type resolves to a model, or the function saves it."""
    if facts.bound_model(root) is not None:
        return True
    return any(c.value.path == f"{root}.save" for c in facts.calls)


def _relative_operand(facts: FunctionFacts, value: Value) -> bool:
    """An arithmetic expression over a column reference (``F('n') - 1``, ``Model.n + 1``)."""
    for v in value.walk():
        if v.kind != "binop" or v.op not in ("+", "-"):
            continue
        for side in v.walk():
            if side.kind == "call" and side.path:
                if facts.k.relative_calls.match(facts.project.candidates(facts.resolve(side.path))):
                    return True
            elif side.kind == "attr" and side.path:
                resolved = facts.resolve(side.path)
                if (
                    facts.project.class_prefix(resolved) is not None
                    and "(" not in resolved
                    and facts.k.relative_attributes.match(facts.project.candidates(resolved))
                ):
                    return True
    return False


def _read_modify_write(facts: FunctionFacts, target: str, value: Value) -> bool:
    """``x = obj.f; x -= n; obj.f = x``: a balance read, changed and written back."""
    if value.kind != "name" or not value.path:
        return False
    name = value.path
    read = any(v.path == target for v in facts.locals().get(name, []))
    changed = any(
        ev.type == "assign"
        and ev.targets == [name]
        and (
            ev.op in ("+", "-")
            or (
                ev.value is not None
                and ev.value.kind == "binop"
                and ev.value.op in ("+", "-")
                and any(a.path == name for a in ev.value.args)
            )
        )
        for ev in facts.func.events
    )
    return read and changed


def _relative_assign(facts: FunctionFacts, ev: Event, target: str) -> bool:
    """``obj.f -= n``, ``obj.f = obj.f - n``, or a read-modify-write through a local.

    Appending text or items (``attempt.response += "..."``) is not a counter."""
    if ev.value is None or _not_a_number(ev.value):
        return False
    if ev.op in ("+", "-"):
        return True
    if ev.op is not None:
        return False
    value = ev.value
    if value.kind == "binop" and value.op in ("+", "-"):
        return any(a.path == target for a in value.args) and not any(
            _not_a_number(a) for a in value.args
        )
    return _read_modify_write(facts, target, value)


def _not_a_number(value: Value) -> bool:
    return value.kind in ("str", "fstring", "seq", "dict")


def _reset_before(facts: FunctionFacts, ev: Event, target: str) -> bool:
    """``meter.amount = 0`` or ``meter.reset()`` earlier in the function: the total is
    recomputed, not adjusted."""
    owner = target.rsplit(".", 1)[0]
    for other in facts.func.events:
        if other.span.line >= ev.span.line or other.value is None:
            continue
        if other.type == "assign":
            if (
                other.op is None
                and other.targets == [target]
                and not (
                    other.value.kind == "binop" and any(a.path == target for a in other.value.args)
                )
            ):
                return True
        elif other.type == "call" and other.value.path is not None:
            base, _, method = other.value.path.rpartition(".")
            if base == owner and facts.k.reset_methods.match([method]):
                return True
    return False


def _unsafe(r: Reached, ev: Event) -> bool:
    return not (r.guarded or r.facts.guarded(ev))


def check(ctx: TaskContext) -> None:
    for r in ctx.reached:
        facts = r.facts
        for ev in facts.func.events:
            if ev.type != "assign" or ev.value is None or len(ev.targets) != 1:
                continue
            target = ev.targets[0]
            root, rest = split_root(target)
            if not rest.startswith(".") or "(" in rest or not _unsafe(r, ev):
                continue
            if _relative_assign(facts, ev, target) and not _reset_before(facts, ev, target):
                if _persisted_object(facts, root):
                    ctx.hit("IDM501", r, ev, target)
            elif ev.op is None and _relative_operand(facts, ev.value):
                ctx.hit("IDM502", r, ev, target)
        for c in facts.calls:
            if c.chain_inner or not _unsafe(r, c.event):
                continue
            if last_segment(c.resolved) in UPDATE_METHODS:
                values = list(c.value.kwargs.values())
                if any(_relative_operand(facts, v) for v in values):
                    ctx.hit("IDM502", r, c.event, f"{c.value.path}()")
                    continue
            if c.counter:
                key = facts.literal_text(c.value.args[0]) if c.value.args else None
                if key is not None and facts.k.counter_unless_key.search(key):
                    continue
                ctx.hit("IDM503", r, c.event, f"{c.value.path}()")

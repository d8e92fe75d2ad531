"""declarative-over-imperative: IDM501-IDM503, relative updates that a retry applies twice.

IDM501 (a value read, changed in memory and saved) is also a lost update when two runs
of different messages for the same row overlap (:func:`_lost_update`): that finding is
exposed by a ``concurrent`` mechanism too, with the catalog's ``race_message``."""

from __future__ import annotations

from idemlint.lint.analysis.walk import (
    FunctionFacts,
    Reached,
    TaskContext,
    caller_argument,
    origin_up,
)
from idemlint.lint.checks.constraints import from_message
from idemlint.lint.index.project import last_segment, split_root
from idemlint.lint.summary.model import Event, Value

Frames = list[tuple[FunctionFacts, int]]

UPDATE_METHODS = ("update", "values", "update_or_create")


def _persisted_object(facts: FunctionFacts, root: str) -> bool:
    """``root`` is an ORM object: its type resolves to a model, or the function saves it
    (``root.save()``, or ``bulk_update`` of the rows a loop binds it to)."""
    if facts.bound_model(root) is not None:
        return True
    if any(c.value.path == f"{root}.save" for c in facts.calls):
        return True
    # ``for row in rows: row.f = ...`` then ``Model.objects.bulk_update(rows, [...])``
    loops = {
        b.value.path
        for b in facts.branches
        if b.kind == "for" and root in b.targets and b.value is not None and b.value.path
    }
    return any(
        last_segment(c.value.path or "") == "bulk_update"
        and bool(c.value.args)
        and c.value.args[0].path in loops
        for c in facts.calls
    )


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
    value = _unclamped(ev.value)
    if value.kind == "binop" and value.op in ("+", "-"):
        if any(_not_a_number(a) for a in value.args):
            return False
        return any(a.path == target or _read_from(facts, a, target) for a in value.args)
    return _read_modify_write(facts, target, value)


CLAMPS = frozenset({"max", "min"})
"""``used = max(used - n, 0)``: a relative change kept within bounds is still relative."""


def _unclamped(value: Value) -> Value:
    """The changed operand of ``max(x - n, 0)`` / ``min(x + n, cap)`` (else ``value``):
    the one argument that is arithmetic, when the others are not."""
    if value.kind != "call" or value.path not in CLAMPS or len(value.args) != 2:
        return value
    sums = [a for a in value.args if a.kind == "binop" and a.op in ("+", "-")]
    return sums[0] if len(sums) == 1 else value


def _read_from(facts: FunctionFacts, operand: Value, target: str) -> bool:
    """``operand`` is a local bound only to ``target`` (``total = obj.used``)."""
    if operand.kind != "name" or not operand.path:
        return False
    bounds = facts.locals().get(operand.path, [])
    return bool(bounds) and all(b.path == target for b in bounds)


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
    # rows marked first stop a rerun, not an overlapping run that read them before the mark
    return not (r.guarded_strict or r.facts.guarded(ev, marked=False))


def _roots(value: Value) -> set[str]:
    return {split_root(v.path)[0] for v in value.walk() if v.path and v.kind != "str"}


def _is_zero(value: Value | None) -> bool:
    return value is not None and (
        value.kind == "none" or (value.kind == "num" and value.text in ("0", "0.0"))
    )


def _locked(facts: FunctionFacts, value: Value) -> bool:
    """``value`` reads rows under a lock: ``select_for_update()``, or a getter that locks."""
    if facts.holds_row_lock(value):
        return True
    paths = {v.path for v in value.walk() if v.kind == "call" and v.path}
    return any(c.value.path in paths and facts.takes_row_lock(c) for c in facts.calls)


def _rows_consumed(facts: FunctionFacts, name: str, rows: Value) -> bool:
    """The rows bound to ``name`` (read by ``rows``) are deleted in this step, or zeroed
    under the lock they were read with."""
    links = [v.to_dict() for v in rows.walk() if v.kind == "call"]
    for c in facts.calls:
        path = c.value.path or ""
        if path == f"{name}.delete":
            return True
        recv = c.value.recv
        if last_segment(path) == "delete" and recv is not None and recv.to_dict() in links:
            return True  # the same query, deleted
        zeroed = path == f"{name}.update" and any(_is_zero(v) for v in c.value.kwargs.values())
        if zeroed and _locked(facts, rows):
            return True
    return False


def _row_consumed(facts: FunctionFacts, loop: Event, name: str) -> bool:
    """Each row of ``for name in rows`` is deleted, or zeroed under the rows' lock."""
    body = f"b{loop.id}"
    for ev in facts.func.events:
        if body not in ev.blocks:
            continue
        if ev.type == "call" and ev.value is not None and ev.value.path == f"{name}.delete":
            return True
        if (
            ev.type == "assign"
            and ev.op is None
            and len(ev.targets) == 1
            and ev.targets[0].startswith(f"{name}.")
            and _is_zero(ev.value)
            and loop.value is not None
            and _locked(facts, loop.value)
        ):
            return True
    return False


def _consumed(frames: Frames, name: str, seen: frozenset[str] = frozenset()) -> bool:
    """The amount read through ``name`` comes from rows this step consumes: a retry finds
    them gone (deleted) or at zero (zeroed under a lock), so it changes nothing twice."""
    facts = frames[-1][0]
    if name in seen or len(seen) > 12:
        return False
    seen = seen | {name}
    bound = False
    for ev in facts.func.events:
        if ev.type == "branch" and ev.kind == "for" and name in ev.targets and ev.value:
            bound = True
            if _row_consumed(facts, ev, name):
                return True
            if any(_consumed(frames, root, seen) for root in _roots(ev.value)):
                return True
        elif ev.type == "assign" and ev.value is not None:
            if not any(split_root(t)[0] == name for t in ev.targets):
                continue
            bound = True
            if ev.targets == [name] and _rows_consumed(facts, name, ev.value):
                return True
            if any(_consumed(frames, root, seen) for root in _roots(ev.value)):
                return True
    if bound or name not in facts.params or len(frames) < 2:
        return False
    caller, call_line = frames[-2]
    arg = caller_argument(facts, caller, call_line, name)
    if arg is None:
        return False
    return any(_consumed(frames[:-1], root, frozenset()) for root in _roots(arg))


def _lost_update(r: Reached, ev: Event, root: str) -> bool:
    """Two runs at once lose one of their changes: the object is a row the message names
    (so two messages can name the same one), read without a row lock and written back
    from memory. A ``concurrent`` mechanism exposes that even when the task is never
    retried; a row read ``select_for_update()`` (or any lock the walk sees) is safe."""
    facts = r.facts
    if r.locked or facts.under_row_lock(ev):
        return False
    if any(_locked(facts, bound) for bound in facts.locals().get(root, [])):
        return False
    return from_message(facts, Value("name", root), r.callers)


def _safe_by_construction(r: Reached, ev: Event, target: str | None, amount: list[Value]) -> bool:
    """The object changed was created by this run (a retry makes another), or the amount
    comes from rows the step consumes."""
    line = ev.span.line
    if target is not None and origin_up(r, split_root(target)[0], line) == "new":
        return True
    frames: Frames = [*r.callers, (r.facts, line)]
    return any(_consumed(frames, root) for v in amount for root in _roots(v))


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
                if _persisted_object(facts, root) and not _safe_by_construction(
                    r, ev, target, [ev.value]
                ):
                    ctx.hit("IDM501", r, ev, target, race=_lost_update(r, ev, root))
            elif (
                ev.op is None
                and _relative_operand(facts, ev.value)
                and not _safe_by_construction(r, ev, target, [ev.value])
            ):
                ctx.hit("IDM502", r, ev, target)
        for c in facts.calls:
            if c.chain_inner or not _unsafe(r, c.event):
                continue
            if last_segment(c.resolved) in UPDATE_METHODS:
                values = list(c.value.kwargs.values())
                if any(_relative_operand(facts, v) for v in values):
                    if not _safe_by_construction(r, c.event, None, values):
                        ctx.hit("IDM502", r, c.event, f"{c.value.path}()")
                    continue
            if c.counter:
                key = facts.literal_text(c.value.args[0]) if c.value.args else None
                if key is not None and facts.k.counter_unless_key.search(key):
                    continue
                ctx.hit("IDM503", r, c.event, f"{c.value.path}()")

"""obvious-state-transitions: IDM601 (check-then-transition with no lock or compare-and-set)
and IDM602 (a task doing several side effects that never records a state a retry could see)."""

from __future__ import annotations

from idemlint.lint.analysis.walk import (
    CallFact,
    FunctionFacts,
    Reached,
    TaskContext,
    blocks_contain,
)
from idemlint.lint.checks.constraints import from_message, lookup_target
from idemlint.lint.checks.keys import key_values
from idemlint.lint.index.project import last_segment, split_root
from idemlint.lint.knowledge import Patterns
from idemlint.lint.summary.model import Event, Value


def _in_region(branch: Event, ev: Event) -> bool:
    """``ev`` runs only when the check passed: inside the branch, or after an early exit."""
    if f"b{branch.id}" in ev.blocks or f"e{branch.id}" in ev.blocks:
        return True
    return (
        branch.body_exits
        and ev.span.line > branch.end_line
        and blocks_contain(branch.blocks, ev.blocks)
    )


_STATUS = Patterns(["status", "state", "*_status", "*_state"])


def _is_status(target: str) -> bool:
    return _STATUS.match([last_segment(target)])


def _work_in_region(facts: FunctionFacts, branch: Event) -> bool:
    """Something besides the transition runs when the check passes: a side effect, a counter,
    or a project function. A bare set-if-unset of a field is harmless when it runs twice."""
    return any(
        (c.effect is not None or c.counter or c.target is not None) and _in_region(branch, c.event)
        for c in facts.calls
    )


def _work_beside(
    facts: FunctionFacts, branch: Event, transition: Event, *, harmful: bool = False
) -> bool:
    """A side effect, a counter, or a project function that has (or may have) one, in the
    part of the check that moves the state: its body (and what follows an early exit), or
    the ``else`` it sits in. Work in the other part runs on another path. ``harmful``:
    only work that is wrong done twice (see :func:`_harmful_twice`)."""
    part = f"e{branch.id}" if f"e{branch.id}" in transition.blocks else f"b{branch.id}"
    for c in facts.calls:
        after = (
            part.startswith("b")
            and branch.body_exits
            and c.event.span.line > branch.end_line
            and blocks_contain(branch.blocks, c.event.blocks)
        )
        if part not in c.event.blocks and not after:
            continue
        if _harmful_twice(facts, c) if harmful else facts.call_has_effect(c):
            return True
    return False


def _harmful_twice(facts: FunctionFacts, c: CallFact, depth: int = 2) -> bool:
    """``c`` does something that is wrong done twice: an external effect (a message, an
    HTTP write, a payment, an enqueue), a row create, a relative update, or calls a
    project function that does, or that cannot be read (``depth`` levels down; a call of
    the function itself adds nothing). Absolute writes (``row.deleted_at = now();
    row.save()``) are not."""
    if c.effect is not None or c.counter:
        return True
    if c.target is None or c.target.qualified == facts.ref.qualified:
        return False
    peer = facts.peer(c.target) if depth > 0 else None
    return peer is None or any(_harmful_twice(peer, inner, depth - 1) for inner in peer.calls)


def _absolute(facts: FunctionFacts, obj: str, value: Value | None) -> bool:
    """The new state does not depend on the old one: a literal, a constant named through a
    class or module (``Status.DISABLED``), a parameter, or a value built without reading
    ``obj`` (``new_status`` from the event being handled). Two passes write the same."""
    if value is None:
        return False
    if value.kind in ("str", "num", "bool", "none"):
        return True
    if value.kind not in ("attr", "name") or not value.path or "(" in value.path:
        return False
    root = split_root(value.path)[0]
    if root == obj:
        return False
    if value.kind == "attr" or root in facts.params:
        return True
    bound = facts.locals().get(root, [])
    return bool(bound) and not any(
        split_root(v.path)[0] == obj for b in bound for v in b.walk() if v.path
    )


def _reads_object(facts: FunctionFacts, obj: str, value: Value | None) -> bool:
    """The new state is computed from ``obj`` (``alert.evaluate()``, or a local bound to
    it): not the same whichever run writes it."""
    if value is None:
        return False
    roots = {split_root(v.path)[0] for v in value.walk() if v.path}
    if obj in roots:
        return True
    return any(
        split_root(v.path)[0] == obj
        for root in roots
        for bound in facts.locals().get(root, [])
        for v in bound.walk()
        if v.path
    )


def _existence_only(test: Value, obj: str) -> bool:
    """The test reads nothing of ``obj`` but whether it is there (``if not obj``,
    ``if obj is None``): no state of it is checked, so nothing transitions from it."""
    return not any(
        v.path is not None and v.path.startswith((f"{obj}.", f"{obj}[")) for v in test.walk()
    )


def _non_unique_source(facts: FunctionFacts, obj: str) -> bool:
    """``obj`` came from a lookup on non-unique fields: IDM402 reports that, not IDM601."""
    for c in facts.calls:
        if obj in c.event.targets and c.lookup:
            target = lookup_target(facts, c)
            if target is not None and not target[0].is_unique(target[1]):
                return True
    return False


def check_transitions(ctx: TaskContext) -> None:
    for r in ctx.reached:
        facts = r.facts
        for branch in facts.branches:
            objs = facts.guard_branches.get(branch.id)
            # reached only past a caller's guard (a dedupe, a transition function's result):
            # a second run does not get here
            if not objs or r.locked or r.guarded or facts.under_row_lock(branch):
                continue
            checked = facts.checked_fields.get(branch.id, set())
            for obj in sorted(objs):
                if facts.row_locked(obj) or _non_unique_source(facts, obj):
                    continue
                fields = {f for f in checked if split_root(f)[0] == obj}
                # `if not obj: return` is a precondition, not a status check; a project
                # function the test calls may read a state of it (`should_send(alert)`)
                if not fields and branch.value is not None and _existence_only(branch.value, obj):
                    continue
                transition = next(
                    (
                        ev
                        for ev in facts.func.events
                        if ev.type == "assign"
                        and ev.op is None
                        and len(ev.targets) == 1
                        and split_root(ev.targets[0])[0] == obj
                        and facts.is_state_field(last_segment(ev.targets[0]))
                        # the transition moves the field the check read, when it read one
                        and (not fields or ev.targets[0] in fields)
                        and _in_region(branch, ev)
                    ),
                    None,
                )
                if transition is None:
                    continue
                # moving a status can clobber a concurrent transition (pending -> settled
                # overwritten by pending -> cancelled); setting a flag or timestamp that was
                # unset only matters when work depends on it
                if not _is_status(transition.targets[0]) and not _work_in_region(facts, branch):
                    continue
                # writing a constant with nothing else to do: two passes leave the same state
                if _absolute(facts, obj, transition.value) and not _work_beside(
                    facts, branch, transition
                ):
                    continue
                if any(
                    branch.span.line < claim.span.line < transition.span.line
                    for claim in facts.claims
                ):
                    continue
                detail = f"{obj}.{last_segment(transition.targets[0])}"
                # two messages racing through the check both do what it guards: that is a
                # fault only when doing it twice is (an absolute write, twice, is not): a
                # new state computed from what the run read of the object (a later run's
                # stale read overwrites a newer state), or work that is wrong done twice
                race = from_message(facts, Value("name", path=obj), r.callers) and (
                    _reads_object(facts, obj, transition.value)
                    or _work_beside(facts, branch, transition, harmful=True)
                )
                ctx.hit("IDM601", r, branch, detail, race=race)
                break


def _records_state(facts: FunctionFacts) -> bool:
    if facts.decorated_guard:
        return True
    for ev in facts.func.events:
        if (
            ev.type == "assign"
            and ev.op is None
            and len(ev.targets) == 1
            and split_root(ev.targets[0])[1].startswith(".")
            and facts.is_state_field(last_segment(ev.targets[0]))
        ):
            return True
    return any(c.state_write or c.runner or c.upsert for c in facts.calls)


def check_terminal_state(ctx: TaskContext) -> None:
    found: list[tuple[Reached, str]] = []
    for r, c in ctx.effects():
        if c.effect is None or r.guarded or r.facts.guarded(c.event) or key_values(r.facts, c):
            continue
        if c.effect.kind != "row-create":  # a created row is itself a record a retry can see
            found.append((r, c.effect.kind))
    # effects behind different choices of one call (`self.provider.send()` runs one
    # provider's `send`) never happen in the same run: count the most one run can do
    kinds: set[str] = set()
    for world, _ in found or [(ctx.reached[0], "")]:
        here = {kind for r, kind in found if world.compatible(r)}
        if len(here) > len(kinds):
            kinds = here
    if any(h.rule.startswith("IDM5") for h in ctx.hits):
        kinds.add("relative-update")
    if len(kinds) < 2 or any(_records_state(r.facts) for r in ctx.reached):
        return
    first = ctx.reached[0]
    ctx.hit("IDM602", first, ctx.task.span, ", ".join(sorted(kinds)))

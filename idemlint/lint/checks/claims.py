"""obvious-state-transitions: IDM604, a guard whose marker is written only after the effect
it guards.

``if order.has_invoice: return`` then ``billing.create_invoice(order)`` then
``Invoice.objects.create(order=order, ...)``: the guard reads a marker (a field, a row, a
related row), and the marker is written only once the external effect is done, on the
path where the guard found nothing. Two runs that overlap (a slow run and the next tick
of a schedule, two messages for the same object on a worker pool) both read "nothing
yet", both perform the effect, and both write the marker; a unique constraint on the
marker row fires only after the second effect. The guard stops a later run, never a
concurrent one: the work is not *claimed* before it is done.

Not a finding: the marker is claimed before the effect (a compare-and-set, a create on a
unique key, an upsert, a row lock, a lock block), the marker is written before the
effect (a non-atomic claim is IDM601's), the effect carries an idempotency key, or the
task has no schedule and no enqueue in the project's code (a second run after a crash is
the at-least-once window every effect has, and not what this rule says).

Stage: a task check, after the statement checks (it does not restate an IDM601 or
IDM603 hit). Inputs: the task's reached functions and their facts. Output: hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from idemlint.lint.analysis.walk import (
    REMOTE_KINDS,
    CallFact,
    FunctionFacts,
    Reached,
    TaskContext,
)
from idemlint.lint.checks.constraints import from_message, on_miss
from idemlint.lint.checks.keys import key_values
from idemlint.lint.index.project import ModelInfo, last_segment
from idemlint.lint.summary.model import Event, Value

RULE = "IDM604"
EFFECT_KINDS = REMOTE_KINDS | {"enqueue"}
"""Effects another party sees, that a later marker cannot take back."""

Path = tuple[int, ...]
"""Where something runs, from the guard's function down: the line of each call that
leads to it, then its own line."""


@dataclass
class Marker:
    """What a guard reads: fields (last segments) and models whose rows it looks up."""

    fields: set[str]
    models: set[str]
    """Qualified names of the models a lookup in the test reads."""
    names: set[str]
    """Attribute names read in the test that may name a related row (``has_invoice``)."""


@dataclass
class Step:
    """An effect or a marker write reached from the guard's function."""

    path: Path
    event: Event
    reached: Reached
    frames: list[tuple[FunctionFacts, int]]
    """The functions from the guard's down to this one's, each with its line."""
    what: str


def _not_done(facts: FunctionFacts, branch: Event, sense: int, ev: Event) -> bool:
    """``ev`` runs on the path where the guard found no marker."""
    return on_miss(branch, sense, ev)


def _test_models(facts: FunctionFacts, branch: Event) -> set[str]:
    """Models whose rows the test looks up, inline, in a helper predicate it calls, or in
    a property of the object it reads (``order.is_billed`` returning ``Invoice.objects
    .filter(order=self).exists()``)."""
    out: set[str] = set()
    test = f"t{branch.id}"
    for c in facts.calls:
        if test not in c.event.blocks:
            continue
        if c.lookup:
            model = facts.lookup_model(c)
            if model is not None:
                out.add(model.qualname)
        elif c.target is not None:
            peer = facts.peer(c.target)
            if peer is not None and peer.returns.guard:
                out |= _returned_models(peer)
    for v in branch.value.walk() if branch.value is not None else []:
        if v.kind != "attr" or not v.path or "(" in v.path:
            continue
        owner, _, name = v.path.rpartition(".")
        model = facts.bound_model(owner) if owner.isidentifier() else None
        ref = facts.project.method(model.qualname, name) if model is not None else None
        if ref is None or not any(
            last_segment(d.value.path or "") in PROPERTIES for d in ref.func.decorators
        ):
            continue
        peer = facts.peer(ref)
        if peer is not None:
            out |= _returned_models(peer)
    return out


PROPERTIES = frozenset({"property", "cached_property"})


def _returned_models(peer: FunctionFacts) -> set[str]:
    """Models whose rows a function's returned value looks up."""
    out: set[str] = set()
    returns = [e for e in peer.func.events if e.type == "exit" and e.op == "return"]
    for inner in peer.calls:
        if inner.lookup and any(
            r.span.line <= inner.event.span.line <= r.span.end_line for r in returns
        ):
            model = peer.lookup_model(inner)
            if model is not None:
                out.add(model.qualname)
    return out


def _marker(facts: FunctionFacts, branch: Event) -> Marker:
    fields = {last_segment(f) for f in facts.checked_fields.get(branch.id, set())}
    names: set[str] = set()
    if branch.value is not None:
        for v in branch.value.walk():
            if v.kind == "attr" and v.path and "(" not in v.path:
                names.add(last_segment(v.path))
    return Marker(fields, _test_models(facts, branch), names)


_COMMENT = re.compile(r"\s+#.*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _relation_names(ctx: TaskContext, model: ModelInfo) -> set[str]:
    """How another model names rows of ``model``: Django's default accessors (the class
    name in lower case, ``invoice``, ``invoice_set``), its snake-case spelling, and any
    ``related_name`` a field of it declares."""
    name = model.qualname.rsplit(".", 1)[-1]
    lower = name.lower()
    snake = _CAMEL.sub("_", name).lower().replace("__", "_")
    out = {lower, snake, f"{lower}_set", f"{lower}s", f"{snake}s"}
    entry = ctx.project.classes.get(model.qualname)
    if entry is not None:
        ctx.project.tracker.touch(entry[0].path)
        for value in entry[1].attributes.values():
            related = value.kwargs.get("related_name")
            if related is not None and related.kind == "str" and related.text:
                out.add(related.text)
    return out


def _names_rows(names: set[str], relations: set[str]) -> bool:
    """An attribute the guard reads names the related rows: ``invoice``, ``has_invoice``,
    ``invoice_set``."""
    for name in names:
        bare = name.removeprefix("has_").removeprefix("is_").removeprefix("_")
        if name in relations or bare in relations:
            return True
    return False


def _frames(r: Reached, line: int) -> list[tuple[FunctionFacts, int]]:
    return [*r.callers, (r.facts, line)]


def _below(r0: Reached, r: Reached) -> bool:
    """``r``'s run goes through ``r0``'s function, by the same calls."""
    if r is r0:
        return True
    depth = len(r0.callers)
    return (
        not r.hook
        and len(r.callers) > depth
        and r.via[: len(r0.via)] == r0.via
        and r.callers[:depth] == r0.callers
        and r.callers[depth][0].ref.qualified == r0.facts.ref.qualified
    )


def _event_at(facts: FunctionFacts, line: int) -> Event | None:
    for c in facts.calls:
        if c.event.span.line == line and not c.chain_inner:
            return c.event
    return next((e for e in facts.func.events if e.span.line == line), None)


def _after(first: Step, then: Step) -> bool:
    """``then`` runs after ``first`` in one run: at the first frame where their lines
    differ, its line is later (the same line calls the same function down to where they
    part), and the two are not in the two parts of one ``if`` (or ``try``)."""
    for k, (a, b) in enumerate(zip(first.path, then.path, strict=False)):
        if a == b:
            continue
        facts = first.frames[k][0]
        one = first.event if k == len(first.frames) - 1 else _event_at(facts, a)
        other = then.event if k == len(then.frames) - 1 else _event_at(facts, b)
        if one is not None and other is not None and _exclusive(one, other):
            return False
        return b > a
    return False


def _exclusive(one: Event, other: Event) -> bool:
    """One runs in the body of a branch and the other in its ``else``: never both."""
    return any(
        (block.startswith("b") and f"e{block[1:]}" in other.blocks)
        or (block.startswith("e") and f"b{block[1:]}" in other.blocks)
        for block in one.blocks
    )


def _claims_before(facts: FunctionFacts, start: int, line: int) -> bool:
    """Something in ``facts`` between ``start`` and ``line`` takes the work first: a
    compare-and-set, a create on a unique key, an upsert, a claim call, a row lock."""
    for c in facts.calls:
        at = c.event.span.line
        if start < at < line and (c.cas or c.upsert or facts.is_claim_call(c)):
            return True
    if any(start < ev.span.line < line for ev in facts.claims):
        return True
    return facts.locked_at(line)


def _claimed_first(step: Step) -> bool:
    """Something takes the work before the effect, in the guard's function (before the
    guard too: a lock taken first) or down the calls that lead to the effect."""
    for facts, line in step.frames:
        if facts.decorated_guard or _claims_before(facts, 0, line):
            return True
        ev = _event_at(facts, line)
        if ev is not None and (
            facts.in_lock(ev) or any(b in facts.runner_blocks for b in ev.blocks)
        ):
            return True
    return False


def _effects(ctx: TaskContext, r0: Reached, branch: Event, sense: int) -> list[Step]:
    out: list[Step] = []
    depth = len(r0.callers)
    for r in ctx.reached:
        if r.locked or not _below(r0, r):
            continue
        for c in r.facts.calls:
            if c.effect is None or c.effect.kind not in EFFECT_KINDS:
                continue
            if key_values(r.facts, c):
                continue  # an idempotency key: the other side absorbs the second call
            if c.effect.kind == "enqueue" and ctx.enqueues_safe_task(r, c.event):
                continue  # a task that only recomputes: twice is harmless
            frames = _frames(r, c.event.span.line)[depth:]
            step = Step(tuple(f[1] for f in frames), c.event, r, frames, _call_name(c))
            if _on_path(r0.facts, branch, sense, step):
                out.append(step)
    return out


def _call_name(c: CallFact) -> str:
    return f"`{c.value.path or c.resolved}()`"


def _on_path(facts: FunctionFacts, branch: Event, sense: int, step: Step) -> bool:
    ev = step.event if len(step.frames) == 1 else _event_at(facts, step.path[0])
    return ev is not None and _not_done(facts, branch, sense, ev)


def _writes(ctx: TaskContext, r0: Reached, branch: Event, sense: int, marker: Marker) -> list[Step]:
    """Where the run writes the marker the guard reads, on the path where it found none."""
    out: list[Step] = []
    depth = len(r0.callers)
    relations: dict[str, set[str]] = {}
    for r in ctx.reached:
        if not _below(r0, r):
            continue
        facts = r.facts
        for c in facts.calls:
            if c.effect is None or c.effect.kind != "row-create" or c.model is None:
                continue
            model = c.model
            if model.qualname not in relations:
                relations[model.qualname] = _relation_names(ctx, model)
            if model.qualname in marker.models or _names_rows(
                marker.names, relations[model.qualname]
            ):
                frames = _frames(r, c.event.span.line)[depth:]
                name = model.qualname.rsplit(".", 1)[-1]
                step = Step(tuple(f[1] for f in frames), c.event, r, frames, f"a row of `{name}`")
                if _on_path(r0.facts, branch, sense, step):
                    out.append(step)
        for line, written in facts.field_writes:
            if written not in marker.fields:
                continue
            ev = _event_at(facts, line)
            if ev is None:
                continue
            frames = _frames(r, line)[depth:]
            step = Step(tuple(f[1] for f in frames), ev, r, frames, f"`{written}`")
            if _on_path(r0.facts, branch, sense, step):
                out.append(step)
    return out


def _where(step: Step, top: FunctionFacts) -> str:
    facts = step.frames[-1][0]
    line = step.event.span.line
    if facts is top:
        return f"line {line}"
    return f"`{facts.func.name}()` line {line}"


def _race_on_message(r0: Reached, branch: Event) -> bool:
    """The guard reads something the message names (two messages can name the same)."""
    facts = r0.facts
    objs = facts.guard_branches.get(branch.id, set())
    if objs:
        return any(from_message(facts, Value("name", path=o), r0.callers) for o in objs)
    if branch.value is None:
        return False
    return from_message(facts, branch.value, r0.callers)


def check(ctx: TaskContext) -> None:
    if any(r.facts.decorated_guard for r in ctx.reached[:1]):
        return
    mechanism = ctx.overlapping()
    if mechanism is None:
        return
    done = {(h.path, h.span.line) for h in ctx.hits if h.rule in ("IDM601", "IDM603")}
    if any(h.rule == "IDM603" for h in ctx.hits):
        return  # a sweep's own finding says it
    for r0 in ctx.reached:
        facts = r0.facts
        if r0.guarded or r0.locked or r0.hook:
            continue
        for branch in facts.branches:
            sense = facts.guard_sense.get(branch.id, 0)
            if branch.kind != "if" or branch.id not in facts.guard_branches or sense == 0:
                continue
            if (facts.file.path, branch.span.line) in done or facts.under_row_lock(branch):
                continue
            marker = _marker(facts, branch)
            if not marker.fields and not marker.models and not marker.names:
                continue
            effects = _effects(ctx, r0, branch, sense)
            if not effects:
                continue
            writes = _writes(ctx, r0, branch, sense, marker)
            found = _first_unclaimed(effects, writes)
            if found is None:
                continue
            if mechanism.kind == "concurrent" and not _race_on_message(r0, branch):
                continue
            effect, write = found
            test = _COMMENT.sub("", branch.stmt).rstrip().removesuffix(":") or "the check"
            detail = (
                f"`{test}` (line {branch.span.line}) guards {effect.what} "
                f"({_where(effect, facts)}), but the marker it reads, {write.what}, is written "
                f"only after it ({_where(write, facts)})"
            )
            level = ctx.severity("IDM3", effect.reached, effect.event)
            ctx.hit(RULE, r0, branch, detail, severity=level, overlap=True)
            return


def _first_unclaimed(effects: list[Step], writes: list[Step]) -> tuple[Step, Step] | None:
    """The first effect with a marker write after it, nothing claiming the work before it,
    and no marker write before it."""
    for effect in sorted(effects, key=lambda s: s.path):
        if _claimed_first(effect):
            continue
        if any(_after(w, effect) for w in writes):
            continue  # marked before the effect: a claim, atomic or not (IDM601's)
        later = [w for w in writes if _after(effect, w)]
        if later:
            return effect, min(later, key=lambda s: s.path)
    return None

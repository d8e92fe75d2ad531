"""obvious-state-transitions: IDM603, a batch sweep that acts on the rows it selects
before anything claims them.

The commonest scheduled job selects rows by a status, a flag or a time window, does
something another service sees for each (an email, an HTTP call, a payment), and marks
the rows afterwards, or never. Nothing claims a row before its effect: no
``select_for_update(skip_locked=True)``, no per-row compare-and-set, no transition
written first. Two runs that overlap select the same rows; a run after a crash selects
again every row the crashed one acted on but never marked. Each repeats the effect.

Stage: a task check (it runs after the statement checks, and takes over their IDM3xx
hit on the effect it explains: one problem, one finding). Inputs: the task's reached
functions and their facts. Output: hits.
"""

from __future__ import annotations

from dataclasses import dataclass

from idemlint.lint.analysis.walk import (
    REMOTE_KINDS,
    CallFact,
    FunctionFacts,
    Reached,
    TaskContext,
)
from idemlint.lint.summary.model import Event

RULE = "IDM603"


@dataclass
class Reach:
    """An effect on another service, seen from one function of the chain that leads to it."""

    line: int
    """The line, in that function, of the call that is or leads to the effect."""
    effect: CallFact
    reached: Reached
    below: list[tuple[FunctionFacts, int]]
    """The functions after that one down to the effect's, each with its call's line."""


def _remote_reach(ctx: TaskContext) -> dict[str, list[Reach]]:
    """Every unguarded effect on another service in the task's run, listed under each
    function of the chain that reaches it."""
    out: dict[str, list[Reach]] = {}
    for r in ctx.reached:
        if r.guarded:
            continue
        for c in r.facts.calls:
            if c.effect is None or c.effect.kind not in REMOTE_KINDS:
                continue
            if r.facts.guarded(c.event):
                continue
            frames = [*r.callers, (r.facts, c.event.span.line)]
            for i, (facts, line) in enumerate(frames):
                out.setdefault(facts.ref.qualified, []).append(Reach(line, c, r, frames[i + 1 :]))
    return out


def _claims(facts: FunctionFacts) -> list[int]:
    """Lines where ``facts`` takes a row: a compare-and-set, a create on a unique key, an
    upsert."""
    lines = [c.event.span.line for c in facts.calls if c.cas or c.upsert]
    return lines + [ev.span.line for ev in facts.claims]


def _claimed_first(facts: FunctionFacts, query: CallFact, reach: Reach, markers: set[str]) -> bool:
    """Something takes the rows (or the one row) before the effect: a lock, a claim, or
    a marker written between the query and the effect, in this function or down the
    chain before its call."""
    if facts.holds_row_lock(query.value) or facts.under_row_lock(query.event):
        return True
    start, line = query.event.span.line, reach.line
    if any(start <= w < line for w in _claims(facts)):
        return True
    if any(start <= w < line and f in markers for w, f in facts.field_writes):
        return True
    if any(
        facts.in_lock(c.event) or c.runner
        for c in facts.calls
        if start <= c.event.span.line <= line
    ):
        return True
    for below, call_line in reach.below:
        if below.decorated_guard or below.under_row_lock(below.func.span):
            return True
        if any(w < call_line for w in _claims(below)):
            return True
        if any(w < call_line and f in markers for w, f in below.field_writes):
            return True
    return False


def _marked_after(facts: FunctionFacts, reach: Reach, markers: set[str]) -> str | None:
    """Where a marker the query selected by is written after the effect: ``line N``, or
    the function down the chain that writes it; None when nothing does."""
    for below, call_line in reach.below:
        if any(w > call_line and f in markers for w, f in below.field_writes):
            name = below.ref.qualified.rsplit(".", 1)[-1]
            return f"`{name}()` marks them only after it"
    later = [w for w, f in facts.field_writes if w > reach.line and f in markers]
    return f"marks them only after it (line {min(later)})" if later else None


def _call_event(facts: FunctionFacts, line: int, effect: CallFact) -> Event | None:
    if effect.event in (c.event for c in facts.calls):
        return effect.event
    for c in facts.calls:
        if c.event.span.line == line and c.target is not None and not c.chain_inner:
            return c.event
    return None


def check(ctx: TaskContext) -> None:
    if any(r.facts.decorated_guard for r in ctx.reached[:1]):
        return
    reach = _remote_reach(ctx)
    for r in ctx.reached:
        facts = r.facts
        if r.guarded or r.locked:
            continue
        found = reach.get(facts.ref.qualified)
        if not found:
            continue
        for query, markers in facts.selections:
            after = [x for x in found if x.line > query.event.span.line]
            if not after:
                continue
            first = min(after, key=lambda x: x.line)
            if _claimed_first(facts, query, first, markers):
                continue
            marked = _marked_after(facts, first, markers)
            ev = _call_event(facts, first.line, first.effect)
            if marked is None or ev is None:
                continue  # a sweep that never marks its rows may be meant to repeat
            effect = first.effect.value.path or first.effect.resolved
            call = ev.value.path if ev.value is not None and ev.value.path else effect
            name = f"`{call}()`" + (f" (which reaches `{effect}()`)" if call != effect else "")
            fields = ", ".join(f"`{f}`" for f in sorted(markers))
            if query.target is not None:  # the query is built in a helper
                fields += f" (in `{query.target.qualified.rsplit('.', 1)[-1]}()`)"
            detail = f"{name} on rows it selects by {fields}, and {marked}"
            level = ctx.severity("IDM3", first.reached, first.effect.event)
            before = len(ctx.hits)
            ctx.hit(RULE, r, ev, detail, severity=level)
            if len(ctx.hits) > before:
                _drop_restated(ctx, first)
            return


def _drop_restated(ctx: TaskContext, reach: Reach) -> None:
    """The IDM3xx hit on the effect itself says less than the sweep does: drop it."""
    span = reach.effect.event.span
    path = reach.reached.facts.file.path
    ctx.hits[:] = [
        h
        for h in ctx.hits
        if not (h.rule.startswith("IDM3") and h.path == path and h.span.line == span.line)
    ]

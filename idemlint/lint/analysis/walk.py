"""Facts about functions, and the walk from each task through the code it runs.

``FunctionFacts`` classifies one function's events once (which calls are side
effects, lookups, upserts, locks; which ``if`` statements are guards; where work is
claimed) using only the knowledge base. ``TaskContext`` walks from a task into the
project functions it calls, carrying whether the call site was already guarded, so
the checks in :mod:`idemlint.lint.checks` see each reached function with its context and
its call chain (``via``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from idemlint.lint.index.project import FunctionRef, ModelInfo, Project, last_segment, split_root
from idemlint.lint.index.tasks import Task
from idemlint.lint.knowledge import Effect, Knowledge, Patterns, glob
from idemlint.lint.summary.model import Event, Span, Value

MAX_CALL_DEPTH = 4
"""How many calls deep the walk follows helpers from a task (the issue asks for at least 3)."""

EQUALITY_SUFFIXES = ("__exact", "__iexact")
MODEL_ARG_CALLS = frozenset({"get", "query", "select", "scalars", "get_one"})
"""SQLAlchemy calls whose first argument is the model they return rows of."""
NON_FIELD_KWARGS = frozenset({"defaults", "create_defaults", "using"})


@dataclass
class CallFact:
    event: Event
    value: Value
    resolved: str
    candidates: list[str]
    effect: Effect | None = None
    lookup: bool = False
    upsert: bool = False
    lock: bool = False
    counter: bool = False
    runner: bool = False
    chain_inner: bool = False
    cas: bool = False
    """A conditional update whose filter names a state field (compare-and-set)."""
    state_write: bool = False
    target: FunctionRef | None = None
    model: ModelInfo | None = None


@dataclass
class Hit:
    """A rule's raw result, before precedence and formatting."""

    rule: str
    span: Span
    detail: str
    path: str
    """The file, relative to the project root."""
    via: tuple[str, ...]
    stmt: str


def blocks_contain(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """``inner`` is the same block as ``outer`` or nested in it."""
    return inner[: len(outer)] == outer


def is_truthy(value: Value | None) -> bool:
    return value is not None and not (
        value.kind == "none"
        or (value.kind == "bool" and value.text == "False")
        or (value.kind == "num" and value.text in ("0", "0.0"))
    )


class FunctionFacts:
    """Everything the checks ask about one function, computed once."""

    def __init__(self, project: Project, ref: FunctionRef) -> None:
        self.project = project
        self.k: Knowledge = project.knowledge
        self.ref = ref
        self.file = ref.file
        self.func = ref.func
        call_events = [
            ev
            for ev in self.func.events
            if ev.type == "call" and ev.value is not None and ev.value.path is not None
        ]
        outermost = self._chain_outermost(call_events)
        self.calls: list[CallFact] = [
            self._classify(ev, ev.value, outermost[id(ev)]) for ev in call_events if ev.value
        ]
        self._mark_chain_inner()
        self.branches = [e for e in self.func.events if e.type == "branch"]
        self.lock_blocks = {
            f"b{b.id}"
            for b in self.branches
            if b.kind == "with" and self._with_matches(b, self.k.locks)
        }
        self.guard_branches: dict[int, set[str]] = {}
        """Guarding ``if`` ids -> the objects whose state fields the test reads."""
        self.checked_fields: dict[int, set[str]] = {}
        """Guarding ``if`` ids -> the state fields the test reads (``"order.status"``)."""
        for b in self.branches:
            if b.kind == "if":
                objs = self._guard_objects(b)
                if objs is not None:
                    self.guard_branches[b.id] = objs
        self.claims = [c.event for c in self.calls if c.upsert or self._is_claim(c)]
        self.decorated_guard = (
            any(
                self.k.guard_decorators.match(self._decorator_paths(d.value))
                or self._guard_base(d.value.kwargs.get("base"))
                for d in self.func.decorators
            )
            or self._class_guarded()
        )
        self.runner_blocks = {
            f"b{b.id}"
            for b in self.branches
            if b.kind == "with" and self._with_matches(b, self.k.guard_runners)
        }
        # `for row in Model.objects.select_for_update(skip_locked=True)`: each row is
        # claimed by the lock for the transaction, so the loop body is a claim's work
        self.runner_blocks |= {
            f"b{b.id}"
            for b in self.branches
            if b.kind == "for" and b.value is not None and self.holds_row_lock(b.value)
        }

    # -- classification ----------------------------------------------------
    def resolve(self, path: str) -> str:
        return self.project.resolve(path, self.file, self.func)

    def resolve_value(self, value: Value) -> str | None:
        return self.project.resolve_value(value, self.file, self.func)

    def _decorator_paths(self, value: Value) -> list[str]:
        if value.path is None:
            return []
        return [value.path, self.project.resolve(value.path, self.file, None)]

    def _guard_base(self, value: Value | None) -> bool:
        """``@app.task(base=IdempotentTask)``: the task class makes every run keyed."""
        if value is None or value.path is None:
            return False
        return self.k.guard_bases.match(self._decorator_paths(value))

    def _class_guarded(self) -> bool:
        if self.func.class_name is None:
            return False
        qual = f"{self.file.module}.{self.func.class_name}"
        return self.k.guard_bases.match(self.project.class_bases(qual))

    @staticmethod
    def _chain_outermost(events: list[Event]) -> dict[int, Event]:
        """Each call's outermost call in the same chain (calls of a chain start together)."""
        by_start: dict[tuple[int, int], list[Event]] = {}
        for ev in events:
            by_start.setdefault((ev.span.line, ev.span.column), []).append(ev)
        out: dict[int, Event] = {}
        for group in by_start.values():
            longest = max(group, key=lambda e: (e.span.end_line, e.span.end_column))
            for ev in group:
                out[id(ev)] = longest
        return out

    def _classify(self, ev: Event, value: Value, outer: Event) -> CallFact:
        resolved = self.resolve(value.path or "")
        cands = self.project.candidates(resolved)
        fact = CallFact(ev, value, resolved, cands)
        fact.model = self.project.model_of(resolved)
        chain = resolved
        if outer is not ev and outer.value is not None and outer.value.path:
            chain = self.resolve(outer.value.path)
        for effect in self.k.effect_for(cands):
            if self._effect_applies(effect, fact, chain):
                fact.effect = effect
                break
        fact.upsert = self.k.upserts.match(cands)
        if fact.upsert:
            fact.effect = None
        fact.counter = self.k.counters.match(cands)
        fact.runner = self.k.guard_runners.match(cands)
        fact.lock = self.k.locks.match(cands)
        seg = last_segment(resolved)
        if fact.model is not None and seg == "update":
            filters = self.chain_filters(value)
            fact.state_write = any(self.is_state_field(k) for k in value.kwargs)
            fact.cas = filters is not None and any(self.is_state_field(f) for f in filters)
        fact.lookup = (
            fact.effect is None and not fact.upsert and (self.k.lookups.match(cands) or fact.cas)
        )
        if fact.effect is None and not fact.upsert:
            fact.target = self.project.function_for_call(resolved)
        return fact

    def _effect_applies(self, effect: Effect, fact: CallFact, chain: str) -> bool:
        value = fact.value
        if any(is_truthy(value.kwargs.get(kw)) for kw in effect.unless_kwargs):
            return False
        if effect.unless_chain and any(
            f".{m}(" in chain or chain.endswith(f".{m}") for m in effect.unless_chain
        ):
            return False
        if effect.arg_type is not None:
            if not value.args:
                return False
            arg = value.args[0]
            resolved = self.resolve_value(arg)
            if arg.kind == "seq":
                resolved = self.resolve_value(arg.args[0]) if arg.args else None
            if resolved is None or not self.k_match(effect.arg_type, resolved):
                return False
            fact.model = self.project.model_of(resolved)
        if effect.arg_text is not None:
            text = self.literal_text(value.args[0]) if value.args else None
            if text is None or not effect.arg_text.search(text):
                return False
        return fact.model is None or not self.k.not_effect_models.match(
            [fact.model.qualname.rsplit(".", 1)[-1]]
        )

    def k_match(self, pattern: str, resolved: str) -> bool:
        return glob(pattern).match(self.project.candidates(resolved))

    def literal_text(self, value: Value) -> str | None:
        """The literal text of a string, an f-string, ``text("...")``, or a local bound to one."""
        if value.kind in ("str", "fstring"):
            return value.text
        if value.kind == "call" and value.args:
            return self.literal_text(value.args[0])
        if value.kind == "name" and value.path:
            for bound in reversed(self.locals().get(value.path, [])):
                if bound.kind in ("str", "fstring", "call"):
                    return self.literal_text(bound)
            module_value = self.file.assigns.get(value.path)
            if module_value is not None and module_value.kind in ("str", "fstring"):
                return module_value.text
        return None

    def _mark_chain_inner(self) -> None:
        """Calls that are the receiver of a later call in the same chain (``q.filter()`` in
        ``q.filter().first()``): the chain is judged by its outermost call, except that a side
        effect inside a chain (``requests.post(...).raise_for_status()``) stays one unless an
        outer call of the chain is itself the effect (``Model(...).save()``)."""
        by_start: dict[tuple[int, int], list[CallFact]] = {}
        for c in self.calls:
            by_start.setdefault((c.event.span.line, c.event.span.column), []).append(c)
        for group in by_start.values():
            if len(group) < 2:
                continue
            group.sort(key=lambda c: (c.event.span.end_line, c.event.span.end_column))
            outer_effect = False
            for c in reversed(group):  # outermost first
                if c is not group[-1]:
                    c.chain_inner = True
                if c.effect is not None:
                    if outer_effect:
                        c.effect = None
                    outer_effect = True

    def _with_matches(self, branch: Event, patterns: Patterns) -> bool:
        """A ``with`` item is a call that ``patterns`` names (a lock, a recovery point)."""
        return any(
            v.kind == "call"
            and v.path is not None
            and patterns.match(self.project.candidates(self.resolve(v.path)))
            for item in branch.items
            for v in item.walk()
        )

    def locals(self) -> dict[str, list[Value]]:
        return self.project.locals_of(self.file, self.func)

    def is_state_field(self, name: str) -> bool:
        base = name.split("__", 1)[0]
        return self.k.state_fields.match([base])

    # -- guards ------------------------------------------------------------
    def _guard_objects(self, branch: Event) -> set[str] | None:
        """If ``branch`` tests whether work was done, the objects it reads state from."""
        if branch.value is None:
            return None
        test_block = f"t{branch.id}"
        is_guard = False
        objs: set[str] = set()
        for c in self.calls:
            if test_block in c.event.blocks and (
                c.lookup or c.upsert or c.cas or (c.target is not None and branch.body_exits)
            ):
                is_guard = True
        assigned = {t for ev in self.func.events if ev.type == "assign" for t in ev.targets}
        for v in branch.value.walk():
            # `if review.decision is not None:` then `review.decision = ...`: whatever its
            # name, a field tested for being unset and then set is a state
            if v.kind == "compare" and v.op in ("is", "is not"):
                sides = [a for a in v.args if a.kind == "attr" and a.path in assigned]
                if sides and any(a.kind == "none" for a in v.args):
                    path = sides[0].path or ""
                    is_guard = True
                    objs.add(split_root(path)[0])
                    self.checked_fields.setdefault(branch.id, set()).add(path)
            if v.kind not in ("name", "attr") or v.path is None:
                continue
            root, rest = split_root(v.path)
            if rest.startswith(".") and self.is_state_field(last_segment(v.path)):
                is_guard = True
                objs.add(root)
                self.checked_fields.setdefault(branch.id, set()).add(v.path)
            elif not rest and (self.is_state_field(root) or root == "created"):
                is_guard = True
            elif self._bound_to_check(root):
                is_guard = True
                objs.add(root)
        return objs if is_guard else None

    def _bound_to_check(self, name: str) -> bool:
        """A local assigned from a lookup, an upsert or a compare-and-set, also when the
        call is wrapped (``ids = list(qs.values_list("pk", flat=True)[:100])``)."""
        statements = [
            ev.span
            for ev in self.func.events
            if ev.type == "assign" and ev.op is None and name in ev.targets
        ]
        for c in self.calls:
            if (c.lookup or c.upsert or c.cas) and any(
                s.line <= c.event.span.line <= s.end_line for s in statements
            ):
                return True
        for value in self.locals().get(name, []):
            if value.kind == "attr" and value.path and value.path.endswith("()[]"):
                cands = self.project.candidates(self.resolve(value.path[:-4]))
                if self.k.upserts.match(cands):
                    return True
        return False

    def _is_claim(self, c: CallFact) -> bool:
        """A create keyed by a field the model declares unique: a duplicate fails, so work
        after it runs at most once per key."""
        if c.effect is None or c.effect.kind != "row-create" or c.model is None:
            return False
        fields = self.create_fields(c)
        return bool(fields) and c.model.is_unique(fields)

    def create_fields(self, c: CallFact) -> set[str]:
        """Keyword fields a create sets (for ``obj.save()``, those of ``obj``'s constructor)."""
        kwargs = c.value.kwargs
        if c.resolved.endswith("().save"):
            receiver = c.value.path.rsplit(".", 1)[0] if c.value.path else ""
            for bound in self.locals().get(receiver, []):
                if bound.kind == "call":
                    kwargs = bound.kwargs
        elif c.value.args and c.value.args[0].kind == "call":
            kwargs = c.value.args[0].kwargs or kwargs
        return {k for k in kwargs if k != "**"}

    def guarded(self, ev: Event) -> bool:
        """Whether something before ``ev`` in this function checks that the work was done."""
        if self.decorated_guard or any(b in self.runner_blocks for b in ev.blocks):
            return True
        for b in self.branches:
            if b.id not in self.guard_branches:
                continue
            if f"b{b.id}" in ev.blocks or f"e{b.id}" in ev.blocks:
                return True
            if b.body_exits and ev.span.line > b.end_line and blocks_contain(b.blocks, ev.blocks):
                return True
        for claim in self.claims:
            if claim is ev:
                continue
            if ev.span.line > claim.span.line and blocks_contain(claim.blocks, ev.blocks):
                return True
        return False

    def in_lock(self, ev: Event) -> bool:
        return any(b in self.lock_blocks for b in ev.blocks)

    def row_locked(self, name: str) -> bool:
        """The object bound to ``name`` was fetched with a row lock."""
        return any(self.holds_row_lock(value) for value in self.locals().get(name, []))

    def holds_row_lock(self, value: Value) -> bool:
        """``value`` reads rows with a lock: ``...select_for_update()...``,
        ``session.get(Model, pk, with_for_update=True)``."""
        for v in value.walk():
            path = v.path or ""
            if any(f".{m}(" in path or path.endswith(f".{m}") for m in self.k.row_lock_methods):
                return True
            if v.kind == "call" and any(
                is_truthy(v.kwargs.get(m)) for m in self.k.row_lock_methods
            ):
                return True
        return False

    def bound_model(self, name: str) -> ModelInfo | None:
        """The model of the object bound to ``name``: ``Order.objects.get(...)``,
        ``session.get(Order, pk)``, ``session.query(Order).one()``, ``Order(...)``."""
        model = self.project.model_of(self.resolve(name))
        if model is not None:
            return model
        for value in self.locals().get(name, []):
            for v in value.walk():
                if v.kind == "call" and v.args and last_segment(v.path or "") in MODEL_ARG_CALLS:
                    resolved = self.resolve_value(v.args[0])
                    found = self.project.model_of(resolved) if resolved else None
                    if found is not None:
                        return found
        return None

    def chain_filters(self, value: Value) -> set[str] | None:
        """Equality fields a query chain filters on; ``None`` if it filters on something opaque."""
        fields: set[str] = set()
        cur: Value | None = value.recv
        opaque = False
        while cur is not None:
            seg = last_segment(cur.path or "")
            if seg in ("filter", "get", "filter_by", "exclude") or seg == "where":
                if seg == "exclude":
                    cur = cur.recv
                    continue
                if cur.args and seg != "where":
                    opaque = True
                for key in cur.kwargs:
                    if key == "**":
                        opaque = True
                    elif "__" not in key or key.endswith(EQUALITY_SUFFIXES):
                        fields.add(key.split("__", 1)[0])
                for arg in cur.args if seg == "where" else []:
                    fields |= compared_attrs(arg)
            cur = cur.recv
        return None if opaque else fields


def compared_attrs(value: Value) -> set[str]:
    """Fields compared for equality in ``M.a == x`` / ``and_(...)`` style expressions."""
    out: set[str] = set()
    for v in value.walk():
        if v.kind == "compare" and v.op == "==":
            for side in v.args:
                if side.kind == "attr" and side.path and "." in side.path:
                    out.add(side.path.rsplit(".", 1)[-1])
    return out


@dataclass
class Reached:
    facts: FunctionFacts
    guarded: bool
    """The call site that led here was already guarded."""
    via: tuple[str, ...]


@dataclass
class TaskContext:
    """One task, the functions its run reaches, and the hits found so far."""

    project: Project
    task: Task
    facts_cache: dict[str, tuple[FunctionFacts, frozenset[str]]]
    """Shared by the tasks of one run, with the files each entry was computed from."""
    hits: list[Hit] = field(default_factory=list)

    def facts(self, ref: FunctionRef) -> FunctionFacts:
        def compute() -> FunctionFacts:
            self.project.tracker.touch(ref.path)
            return FunctionFacts(self.project, ref)

        return self.project.tracker.memo(self.facts_cache, ref.qualified, compute)

    @cached_property
    def reached(self) -> list[Reached]:
        out: list[Reached] = []
        seen: set[tuple[str, bool]] = set()
        queue: deque[tuple[FunctionRef, bool, tuple[str, ...]]] = deque(
            [(self.task.ref, False, ())]
        )
        while queue:
            ref, guarded, via = queue.popleft()
            if (ref.qualified, guarded) in seen or (ref.qualified, False) in seen:
                continue
            seen.add((ref.qualified, guarded))
            facts = self.facts(ref)
            out.append(Reached(facts, guarded, via))
            if len(via) >= MAX_CALL_DEPTH:
                continue
            for c in facts.calls:
                here = guarded or facts.guarded(c.event)
                if c.target is not None and not c.chain_inner:
                    queue.append((c.target, here, (*via, c.target.qualified)))
                if c.runner:
                    for arg in c.value.args:
                        if arg.kind in ("name", "attr") and arg.path:
                            target = self.project.function_for_call(facts.resolve(arg.path))
                            if target is not None:
                                queue.append((target, True, (*via, target.qualified)))
        return out

    def effects(self) -> Iterator[tuple[Reached, CallFact]]:
        for r in self.reached:
            for c in r.facts.calls:
                if c.effect is not None:
                    yield r, c

    def hit(self, rule: str, r: Reached, ev: Event | Span, detail: str = "") -> None:
        span = ev if isinstance(ev, Span) else ev.span
        # a task-level finding has no statement: the task's name keeps its fingerprint stable
        stmt = f"task {self.task.name}" if isinstance(ev, Span) else ev.stmt
        self.hits.append(Hit(rule, span, detail, r.facts.file.path, r.via, stmt))

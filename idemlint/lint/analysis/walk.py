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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from weakref import WeakKeyDictionary

from idemlint.lint.index.delivery import RACE_RULES, Mechanism
from idemlint.lint.index.project import FunctionRef, ModelInfo, Project, last_segment, split_root
from idemlint.lint.index.tasks import Task
from idemlint.lint.knowledge import Effect, Knowledge, Patterns, glob
from idemlint.lint.summary.model import Event, FunctionSummary, Span, Value

ENQUEUE_RULE = "IDM305"
ASSUMED = "assume-retries = true treats every task as one that runs twice"
REMOTE_KINDS = frozenset({"payment", "http-write", "message"})
"""Effects on another service: their call can fail after the other side acted."""
INERT_ROOTS = frozenset({"logging", "logger", "log", "print", "len", "str", "int", "isinstance"})
MAX_CALL_DEPTH = 4
"""How many calls deep the walk follows helpers from a task (the issue asks for at least 3)."""

EQUALITY_SUFFIXES = ("__exact", "__iexact")
MODEL_ARG_CALLS = frozenset({"get", "query", "select", "scalars", "get_one"})
"""SQLAlchemy calls whose first argument is the model they return rows of."""
NON_FIELD_KWARGS = frozenset({"defaults", "create_defaults", "using"})
PEER_DEPTH = 2
"""How many calls deep a function's facts read the project functions it calls: a getter
that returns a lookup, a dedupe function, the state fields a helper writes."""
TRANSPARENT_CALLS = frozenset({"len", "bool", "list", "tuple", "set", "any", "all"})
"""Builtins whose result is true exactly when their argument is (for ``if`` tests)."""
WRITE_CALLS = frozenset({"update", "update_or_create", "bulk_update", "save"})
SELECTING = frozenset({"filter", "exclude", "filter_by", "where"})
"""Query methods whose keywords (or comparisons) say which rows a query takes."""
LOOKUPS = frozenset(
    {"lt", "lte", "gt", "gte", "range", "isnull", "in", "exact", "iexact", "date", "year"}
)
"""Django lookup suffixes: ``profile__welcome_sent__exact`` names the field ``welcome_sent``."""


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
    param_object: str | None = None
    """A save or ``session.add`` of an object the function was given: a create only when
    the caller built it (see :func:`origin_up`)."""
    alt_targets: list[FunctionRef] = field(default_factory=list)
    """Other project functions the call may run: its receiver is a module-level name that
    branches bind to different objects (see :meth:`Project.resolve_alternatives`), or is
    typed as a project class whose subclasses override the method
    (:meth:`Project.overrides`)."""

    @property
    def targets(self) -> list[FunctionRef]:
        """Every project function the call may run."""
        return [self.target, *self.alt_targets] if self.target is not None else self.alt_targets


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
    delivery: tuple[str, str, str] = ("", "", "")
    """How the task can run twice for this hit: mechanism kind, where it is configured
    (``path:line``), and the words the message uses; empty for notices."""
    severity: str = "warning"
    """``error``, ``warning`` or ``info`` (see :meth:`TaskContext.severity`)."""


def blocks_contain(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """``inner`` is the same block as ``outer`` or nested in it."""
    return inner[: len(outer)] == outer


def is_truthy(value: Value | None) -> bool:
    return value is not None and not (
        value.kind == "none"
        or (value.kind == "bool" and value.text == "False")
        or (value.kind == "num" and value.text in ("0", "0.0"))
    )


def _through_params(peer: FunctionFacts, call: Value) -> tuple[set[str], set[str]]:
    """The objects and state fields a project function's result reads
    (:attr:`FunctionFacts.returns`), named as the caller passes them: ``should_send(alert,
    state)`` whose result compares ``alert.state`` reads the caller's ``alert.state``.
    Only parameters given a plain name are followed; anything else reads nothing the
    caller can move."""
    params = [p.name for p in peer.func.params]
    if peer.func.class_name and params and not _static_method(peer.func):
        params = params[1:]  # self / cls: the receiver, not an argument
    given: dict[str, str] = {}
    for name, arg in zip(params, call.args, strict=False):
        if arg.kind == "name" and arg.path:
            given[name] = arg.path
    for name, arg in call.kwargs.items():
        if name in params and arg.kind == "name" and arg.path:
            given[name] = arg.path
    objs = {given[o] for o in peer.returns.objs if o in given}
    fields = set()
    for f in peer.returns.fields:
        root, rest = split_root(f)
        if root in given:
            fields.add(given[root] + rest)
    return objs, fields


def _static_method(func: FunctionSummary) -> bool:
    return any(d.value.path == "staticmethod" for d in func.decorators)


@dataclass
class Check:
    """What an ``if`` test, or a value a function returns, says about whether the work was
    already done."""

    guard: bool = False
    sense: int = 0
    """+1: true when the work was done (a row was found); -1: true when it was not (a claim
    was won, nothing was found); 0: unknown (a state compared to a value)."""
    objs: set[str] = field(default_factory=set)
    """The objects whose state the test reads."""
    fields: set[str] = field(default_factory=set)
    """The state fields the test reads (``"order.status"``)."""

    def flipped(self) -> Check:
        return Check(self.guard, -self.sense, self.objs, self.fields)


def combine(parts: list[Check]) -> Check:
    """``a and b`` / ``a or b``: a guard when one side is; its sense when they agree."""
    guards = [p for p in parts if p.guard]
    if not guards:
        return Check()
    senses = {p.sense for p in guards}
    out = Check(True, senses.pop() if len(senses) == 1 else 0)
    for p in guards:
        out.objs |= p.objs
        out.fields |= p.fields
    return out


_PEERS: WeakKeyDictionary[Project, dict[tuple[str, int], tuple[FunctionFacts, frozenset[str]]]]
_PEERS = WeakKeyDictionary()
"""Facts of the functions a function calls, per project, by (function, depth left)."""


class FunctionFacts:
    """Everything the checks ask about one function, computed once.

    ``depth`` bounds how far its facts read the functions it calls (:meth:`peer`): what a
    project getter returns, whether a helper refuses duplicates, which fields it writes.
    """

    def __init__(self, project: Project, ref: FunctionRef, depth: int = PEER_DEPTH) -> None:
        self.project = project
        self.depth = depth
        self.k: Knowledge = project.knowledge
        self.ref = ref
        self.file = ref.file
        self.func = ref.func
        self.params = {p.name for p in self.func.params}
        self._peers: dict[str, FunctionFacts | None] = {}
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
        self.written = self._written_fields()
        """Fields (last segments) this function, or a function it calls, writes."""
        self.guard_branches: dict[int, set[str]] = {}
        """Guarding ``if`` ids -> the objects whose state fields the test reads."""
        self.checked_fields: dict[int, set[str]] = {}
        """Guarding ``if`` ids -> the state fields the test reads (``"order.status"``)."""
        self.guard_sense: dict[int, int] = {}
        """Guarding ``if`` ids -> the sense of the test (see :attr:`Check.sense`)."""
        for b in self.branches:
            if b.kind == "if" and b.value is not None:
                check = self.check(b.value, b.span)
                if check.guard:
                    self.guard_branches[b.id] = check.objs
                    self.guard_sense[b.id] = check.sense
                    if check.fields:
                        self.checked_fields[b.id] = check.fields
        self.try_guards = self._try_guards()
        """``try`` ids whose body looks a row up and whose handler creates it."""
        self.claims = [
            c.event for c in self.calls if c.upsert or self._is_claim(c) or self._raises_dup(c)
        ]
        self.returns = combine(
            [
                self.check(ev.value, ev.span)
                for ev in self.func.events
                if ev.type == "exit" and ev.op == "return" and ev.value is not None
            ]
        )
        """What the function's result says when a caller tests it (a project getter's
        result is a lookup's)."""
        self.returns_new = self._returns_new()
        self.dedupe = self._dedupe()
        """``"raise"`` / ``"bool"``: the function records a marker and refuses a duplicate by
        raising / by returning a false value; ``None`` otherwise."""
        self.lock_param = self._lock_param()
        """The parameter that makes the function read its rows with a lock (``for_update``)."""
        self.returns_locked = self._returns_locked()
        self.row_lock_lines = sorted(
            c.event.span.line for c in self.calls if self.takes_row_lock(c)
        )
        self.effectful = self._effectful()
        """This function, or one it calls, has a side effect or a counter (or calls past
        what its facts read)."""
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
            if b.kind == "for" and b.value is not None and self._iterates_locked(b)
        }
        # `with handling(event_id) as event:` where `handling` refuses a duplicate
        self.runner_blocks |= {
            f"b{b.id}"
            for b in self.branches
            if b.kind == "with"
            and any(f"t{b.id}" in claim.blocks and claim.type == "call" for claim in self.claims)
        }

    def _iterates_locked(self, b: Event) -> bool:
        """The loop reads its rows with a lock: inline, or from a helper that returns
        locked rows (``for row in due_rows_locked():``)."""
        assert b.value is not None
        if self.holds_row_lock(b.value):
            return True
        if b.value.kind != "call":
            return False
        return any(
            c.event.span.line == b.span.line
            and c.value.path == b.value.path
            and self.takes_row_lock(c)
            for c in self.calls
        )

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
        fact = self._classify_as(ev, value, outer, self.resolve(value.path or ""))
        if fact.effect is not None or fact.upsert or fact.lookup:
            return fact
        # a name bound in branches (`if prod: sender = Smtp() else: sender = Console()`):
        # the call is an effect if any binding's is, and may run any binding's method
        for alt in self.project.resolve_alternatives(value.path or "", self.file, self.func):
            other = self._classify_as(ev, value, outer, alt)
            if other.effect is not None:
                other.alt_targets = fact.targets
                return other
            for ref in other.targets:
                if all(ref.qualified != t.qualified for t in fact.targets):
                    fact.alt_targets.append(ref)
        if self._typed_receiver(value.path or ""):
            # `self.sender.send()` with `sender: Sender` given to `__init__`: the object
            # may be any subclass, so the call may run any override of `send`
            for ref in self.project.overrides(fact.resolved):
                if all(ref.qualified != t.qualified for t in fact.targets):
                    fact.alt_targets.append(ref)
        return fact

    def _typed_receiver(self, path: str) -> bool:
        """The call's receiver is a parameter, or an attribute of ``self``, whose type comes
        from an annotation or ``__init__``: not ``self.m()`` (the task's own class) nor
        what a call returned (``Smtp().send()`` names its class)."""
        receiver, _, _ = path.rpartition(".")
        if not receiver or "(" in receiver or "[" in receiver:
            return False
        params = self.func.params
        root = receiver.split(".", 1)[0]
        if not any(p.name == root for p in params):
            return False
        is_self = bool(self.func.class_name) and params[0].name == root
        return not is_self or "." in receiver

    def _classify_as(self, ev: Event, value: Value, outer: Event, resolved: str) -> CallFact:
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
            # `filter(pk=x, sent_at__isnull=True).update(sent_at=now)`: any lookup on a
            # state field makes the update a compare-and-set
            fact.cas = filters is not None and any(
                self.is_state_field(f) for f in self.filter_keys(value)
            )
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
        if effect.unless_chain and self._chain_continues(fact.event, effect.unless_chain):
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
        obj = self._saved_object(effect, value)
        if obj is not None:
            # `obj.save()` / `session.add(obj)` of a row read from the database is an update
            origin = self.origin(obj, fact.event.span.line)
            if origin == "loaded":
                return False
            if origin == "param":
                fact.param_object = obj
        return fact.model is None or not self.k.not_effect_models.match(
            [fact.model.qualname.rsplit(".", 1)[-1]]
        )

    @staticmethod
    def _saved_object(effect: Effect, value: Value) -> str | None:
        """The local an effect persists: ``obj`` in ``obj.save()`` or ``session.add(obj)``."""
        if effect.arg_type is not None:
            arg = value.args[0] if value.args else None
            return arg.path if arg is not None and arg.kind == "name" else None
        if effect.call.endswith("().save") and value.path:
            root, rest = split_root(value.path)
            return root if rest == ".save" else None
        return None

    def origin(self, name: str, line: int) -> str:
        """Where the object bound to ``name`` before ``line`` comes from: ``"new"`` (built
        here: a model constructed, a row created, a factory's result), ``"loaded"`` (a
        lookup, a project getter, an attribute of another object), ``"param"``, or ``""``.
        One loading binding is enough: ``x = get(...)`` then ``if x is None: x = X()`` is
        the row found, or the one the check allowed to create."""
        bindings = [
            ev
            for ev in self.func.events
            if ev.type == "assign"
            and ev.op is None
            and ev.targets == [name]
            and ev.value is not None
            and ev.span.line < line
        ]
        # the last binding runs on every path (not in a branch or a loop): it replaces the
        # earlier ones (`project = client.get(...)`, then `project = Project.objects
        # .create(...)`), unless a loop binds the name too
        looped = any(
            b.kind == "for" and name in b.targets and b.span.line < line for b in self.func.events
        )
        last = bindings[-1].value if bindings else None
        if last is not None and not bindings[-1].blocks and not looped:
            return self.value_origin(last)
        origins = [self.value_origin(ev.value) for ev in bindings if ev.value is not None]
        if looped:
            origins.append("loaded")  # a row of a loop over a query
        if not origins:
            return "param" if name in self.params else ""
        return "loaded" if "loaded" in origins else origins[-1]

    def value_origin(self, value: Value) -> str:
        if value.kind == "attr":
            return "loaded"
        if value.kind != "call" or not value.path:
            return ""
        resolved = self.resolve(value.path)
        prefix = self.project.class_prefix(f"{resolved}()")
        if prefix is not None and prefix[1] == "()" and self.project.model_info(prefix[0]):
            return "new"
        cands = self.project.candidates(resolved)
        if any(e.kind == "row-create" for e in self.k.effect_for(cands)):
            return "new"
        if self.k.lookups.match(cands) or self.k.upserts.match(cands):
            return "loaded"
        target = self.project.function_for_call(resolved)
        peer = self.peer(target) if target is not None else None
        if peer is not None:
            if peer.returns.guard:
                return "loaded"
            if peer.returns_new:
                return "new"
        return ""

    def _returns_new(self) -> bool:
        """The function returns an object it built (a factory)."""
        for ev in self.func.events:
            if ev.type == "exit" and ev.op == "return" and ev.value is not None:
                v = ev.value
                if v.kind == "name" and v.path:
                    if self.origin(v.path, ev.span.line) == "new":
                        return True
                elif self.value_origin(v) == "new":
                    return True
        return False

    def _chain_continues(self, ev: Event, methods: tuple[str, ...]) -> bool:
        """``stmt = insert(T).values(...)`` then ``stmt = stmt.on_conflict_do_nothing()``
        (or ``execute(stmt.on_conflict_do_nothing())``): the chain goes on through a local."""
        if len(ev.targets) != 1 or "." in ev.targets[0]:
            return False
        prefix = f"{ev.targets[0]}."
        return any(
            other.type == "call"
            and other.value is not None
            and (other.value.path or "").startswith(prefix)
            and any(
                f".{m}(" in (other.value.path or "") or (other.value.path or "").endswith(f".{m}")
                for m in methods
            )
            for other in self.func.events
        )

    def k_match(self, pattern: str, resolved: str) -> bool:
        return glob(pattern).match(self.project.candidates(resolved))

    def literal_text(self, value: Value, seen: frozenset[str] = frozenset()) -> str | None:
        """The literal text of a string, an f-string, ``text("...")``, or a local bound to one
        (``seen``: the locals followed so far, so ``url = quote(url)`` ends)."""
        if value.kind in ("str", "fstring"):
            return value.text
        if value.kind == "call" and value.args:
            return self.literal_text(value.args[0], seen)
        if value.kind == "name" and value.path and value.path not in seen:
            for bound in reversed(self.locals().get(value.path, [])):
                if bound.kind in ("str", "fstring", "call"):
                    return self.literal_text(bound, seen | {value.path})
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

    # -- the functions this one calls ----------------------------------------
    def peer(self, ref: FunctionRef) -> FunctionFacts | None:
        """The facts of a project function this one calls, ``None`` past :data:`PEER_DEPTH`."""
        if self.depth <= 0:
            return None
        if ref.qualified not in self._peers:
            cache = _PEERS.setdefault(self.project, {})

            def compute() -> FunctionFacts:
                self.project.tracker.touch(ref.path)
                return FunctionFacts(self.project, ref, self.depth - 1)

            key = (ref.qualified, self.depth - 1)
            self._peers[ref.qualified] = self.project.tracker.memo(cache, key, compute)
        return self._peers[ref.qualified]

    def _peer_of(self, c: CallFact) -> FunctionFacts | None:
        return self.peer(c.target) if c.target is not None else None

    def _written_fields(self) -> set[str]:
        out: set[str] = set()
        for ev in self.func.events:
            if ev.type == "assign" and ev.op is None:
                out |= {last_segment(t) for t in ev.targets if "." in t}
        for c in self.calls:
            seg = last_segment(c.resolved)
            if seg in WRITE_CALLS:
                out |= {k.split("__", 1)[0] for k in c.value.kwargs}
                fields = c.value.kwargs.get("update_fields")
                out |= {a.text for a in fields.args if a.text} if fields is not None else set()
            elif seg == "setattr" and len(c.value.args) > 1 and c.value.args[1].text:
                out.add(c.value.args[1].text)
            peer = self._peer_of(c)
            if peer is not None:
                out |= peer.written
        return out

    # -- guards ------------------------------------------------------------
    def check(self, value: Value, span: Span, seen: frozenset[str] = frozenset()) -> Check:
        """Whether ``value``, tested in the statement at ``span``, shows the work was done."""
        kind = value.kind
        if kind == "not":
            return self.check(value.args[0], span, seen).flipped() if value.args else Check()
        if kind == "boolop":
            return combine([self.check(a, span, seen) for a in value.args])
        if kind == "compare":
            return self._compare_check(value, span, seen)
        if kind == "call":
            return self._call_check(value, span, seen)
        if kind == "name" and value.path:
            return self._name_check(value.path, span, seen)
        if kind == "attr" and value.path:
            return self._attr_check(value.path)
        return Check()

    def _compare_check(self, value: Value, span: Span, seen: frozenset[str]) -> Check:
        op, sides = value.op, value.args
        if len(sides) != 2:
            return combine([self.check(a, span, seen) for a in sides])
        nones = [a for a in sides if a.kind == "none"]
        if nones and op in ("is", "is not", "==", "!="):
            side = sides[0] if sides[1].kind == "none" else sides[1]
            found = self.check(side, span, seen)
            if not found.guard and side.kind == "attr" and side.path in self._assigned:
                # `if review.decision is not None:` then `review.decision = ...`: whatever
                # its name, a field tested for being unset and then set is a state
                root = split_root(side.path)[0]
                found = Check(True, 1, {root}, {side.path})
            return found.flipped() if op in ("is", "==") else found
        numbers = [a for a in sides if a.kind == "num"]
        if len(numbers) == 1:
            other = sides[0] if sides[1] is numbers[0] else sides[1]
            found = self.check(other, span, seen)
            try:
                n = float(numbers[0].text or "")
            except ValueError:
                return Check(found.guard, 0, found.objs, found.fields)
            if sides[0] is numbers[0]:  # `0 < n`: read as `n > 0`
                op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op or "", op)
            present = (op == ">" and n >= 0) or (op == ">=" and n == 1) or (op == "!=" and n == 0)
            absent = (op in ("==", "<=") and n == 0) or (op == "<" and n == 1)
            sense = found.sense if present else -found.sense if absent else 0
            return Check(found.guard, sense, found.objs, found.fields)
        found = combine([self.check(a, span, seen) for a in sides])
        return Check(found.guard, 0, found.objs, found.fields)

    def _call_check(self, value: Value, span: Span, seen: frozenset[str]) -> Check:
        if value.path in TRANSPARENT_CALLS and value.args:
            return self.check(value.args[0], span, seen)
        c = self._call_at(value, span)
        if c is None:
            return Check()
        if c.cas or self.is_claim_call(c):
            return Check(True, -1)  # true when this run took it
        peer = self._peer_of(c)
        if peer is not None and peer.dedupe == "bool":
            # the project function's own body says more than a name pattern that matched
            # its path (`Model.objects.get().update_stable()` is not a lookup)
            return Check(True, -1)  # true when this run recorded the marker
        if c.lookup or c.upsert:
            return Check(True, 1)
        if peer is not None and peer.returns.guard:
            objs, fields = _through_params(peer, c.value)
            return Check(True, peer.returns.sense, objs, fields)
        return Check()

    def _name_check(self, name: str, span: Span, seen: frozenset[str]) -> Check:
        """A local: what the value last bound to it before ``span`` shows. A parameter is an
        input, not something this run looked up (``if cancelled: raise``)."""
        if name in seen:
            return Check()
        binding = None
        for ev in self.func.events:
            if ev.span.line >= span.line:
                break
            if ev.type == "assign" and ev.op is None and name in ev.targets:
                binding = ev
        if binding is None or binding.value is None:
            return Check()
        if len(binding.targets) > 1:
            # `obj, created = M.objects.get_or_create(...)`: `created` is true for a new row
            c = self._call_at(binding.value, binding.span)
            if c is not None and c.upsert and binding.targets.index(name) == 1:
                return Check(True, -1, {name})
            return Check()
        found = self.check(binding.value, binding.span, seen | {name})
        if found.guard:
            found.objs = found.objs | {name}
        return found

    def _attr_check(self, path: str) -> Check:
        """``order.sent_at``: a state field, or any field this run (or what it calls) sets;
        a precondition field it never sets is not (``if invoice.cancelled: return``)."""
        root, rest = split_root(path)
        field_name = last_segment(path)
        if not rest.startswith(".") or "(" in rest:
            return Check()
        if path in self._assigned or field_name in self.written:
            return Check(True, 1, {root}, {path})
        if self.is_state_field(field_name) and not self.k.precondition_fields.match([field_name]):
            return Check(True, 1, {root}, {path})
        return Check()

    @cached_property
    def _assigned(self) -> set[str]:
        return {t for ev in self.func.events if ev.type == "assign" for t in ev.targets}

    def _call_at(self, value: Value, span: Span) -> CallFact | None:
        """The classified call that ``value`` is, in the statement at ``span``."""
        for c in self.calls:
            if c.value.path == value.path and span.line <= c.event.span.line <= span.end_line:
                return c
        return None

    def is_claim_call(self, c: CallFact) -> bool:
        """``r.set(key, 1, nx=True)``, ``cache.add(key, 1)``: true only for the first taker."""
        if any(is_truthy(c.value.kwargs.get(k)) for k in self.k.claim_kwargs):
            return True
        return self.k.claims.match(c.candidates)

    def lookup_model(self, c: CallFact) -> ModelInfo | None:
        """The model a lookup reads: ``Tag.objects.get(...)``, ``session.get(Tag, pk)``."""
        if c.model is not None:
            return c.model
        for v in c.value.walk():
            if v.kind == "call" and v.args and last_segment(v.path or "") in MODEL_ARG_CALLS:
                resolved = self.resolve_value(v.args[0])
                found = self.project.model_of(resolved) if resolved else None
                if found is not None:
                    return found
        return None

    def _try_guards(self) -> set[int]:
        """``try: Tag.objects.get(slug=s) except Tag.DoesNotExist: Tag.objects.create(...)``:
        the handler runs only when the row was not found. When the body also exits after
        the lookup (``try: get(...); continue``), so does what follows the ``try``
        (:attr:`try_exits`)."""
        out: set[int] = set()
        self.try_exits: set[int] = set()
        """``try`` ids whose body exits once the lookup found the row."""
        for b in self.branches:
            if b.kind != "try":
                continue
            lookups = [c for c in self.calls if c.lookup and f"b{b.id}" in c.event.blocks]
            looked_up = {m.qualname for c in lookups for m in [self.lookup_model(c)] if m}
            if not looked_up:
                continue

            made = [
                c.event
                for c in self.calls
                if c.effect is not None
                and c.effect.kind == "row-create"
                and c.model is not None
                and c.model.qualname in looked_up
            ]
            first = min(c.event.span.line for c in lookups)
            exits = any(
                ev.type == "exit"
                and ev.op != "raise"
                and ev.blocks
                and ev.blocks[-1] == f"b{b.id}"
                and ev.span.line > first
                for ev in self.func.events
            )
            in_handler = any(f"e{b.id}" in ev.blocks for ev in made)
            after = exits and any(
                ev.span.line > b.end_line and blocks_contain(b.blocks, ev.blocks) for ev in made
            )
            if in_handler or after:
                out.add(b.id)
                if exits:
                    self.try_exits.add(b.id)
        return out

    def _raises_dup(self, c: CallFact) -> bool:
        """A call to a function that raises when its work was already done: what follows
        the call runs once."""
        peer = self._peer_of(c)
        return peer is not None and peer.dedupe == "raise"

    def _dedupe(self) -> str | None:
        """Whether this function refuses a duplicate: a check that the work was done exits by
        raising (or returning a false value), and the function records it otherwise."""
        for c in self.calls:
            if self._raises_dup(c) and not any(
                b.kind == "try" and f"b{b.id}" in c.event.blocks for b in self.branches
            ):
                return "raise"
        for b in self.branches:
            if b.id not in self.guard_branches or self.guard_sense[b.id] < 0 or not b.body_exits:
                continue
            body = f"b{b.id}"
            exits = [
                ev
                for ev in self.func.events
                if ev.type == "exit" and ev.blocks and ev.blocks[-1] == body
            ]
            if not exits or not self._records_after(b):
                continue
            last = exits[-1]
            if last.op == "raise":
                return "raise"
            if last.op == "return" and not is_truthy(last.value):
                return "bool"
        return "bool" if self._returns_what_it_changed() else None

    def _returns_what_it_changed(self) -> bool:
        """A transition function: it returns ``None``/``False`` when nothing changed, and
        every other return follows a write it made on the way (``obj.save()``, an update,
        a field set): a caller that acts only on a true result acts once per change
        (``if promoted := project.update_stable(): trigger_build(...)``)."""
        returns = [ev for ev in self.func.events if ev.type == "exit" and ev.op == "return"]
        empty = [ev for ev in returns if ev.value is None or ev.value.kind in ("none", "bool")]
        valued = [ev for ev in returns if ev not in empty]
        if not empty or not valued or any(is_truthy(ev.value) for ev in empty):
            return False
        writes = [
            c.event
            for c in self.calls
            if last_segment(c.resolved) in WRITE_CALLS
            or (c.effect is not None and c.effect.kind == "row-create")
            or last_segment(c.resolved).startswith("create")
        ]
        return all(
            any(w.span.line < ev.span.line and blocks_contain(w.blocks, ev.blocks) for w in writes)
            for ev in valued
        )

    def _records_after(self, branch: Event) -> bool:
        """After ``branch``, the function records that the work was done: a created row, an
        upsert, a claim, or a state field set."""

        def after(ev: Event) -> bool:
            return ev.span.line > branch.end_line and blocks_contain(branch.blocks, ev.blocks)

        for c in self.calls:
            if not after(c.event):
                continue
            if c.upsert or c.state_write or self.is_claim_call(c):
                return True
            if c.effect is not None and c.effect.kind == "row-create":
                return True
            if self._sets_state(c.value):
                return True
        return any(
            ev.type == "assign"
            and ev.op is None
            and after(ev)
            and any("." in t and self.is_state_field(last_segment(t)) for t in ev.targets)
            for ev in self.func.events
        )

    def _sets_state(self, value: Value) -> bool:
        """A call passing a state field by name: ``update(e, handled_at=now)``,
        ``repo.update(e, update_dict={"handled_at": now})``."""
        named = [*value.kwargs, *(k for a in value.args if a.kind == "dict" for k in a.kwargs)]
        named += [k for v in value.kwargs.values() if v.kind == "dict" for k in v.kwargs]
        return any(self.is_state_field(k.split("__", 1)[0]) for k in named if k != "**")

    # -- locks -------------------------------------------------------------
    def takes_row_lock(self, c: CallFact) -> bool:
        """The call reads rows with a lock held to the end of the transaction:
        ``select_for_update()``, ``for_update=True`` to a getter, a getter that locks."""
        if self.holds_row_lock(c.value):
            return True
        peer = self._peer_of(c)
        if peer is None:
            return False
        if peer.returns_locked:
            return True
        return peer.lock_param is not None and is_truthy(c.value.kwargs.get(peer.lock_param))

    def _lock_param(self) -> str | None:
        """``if for_update: qs = qs.select_for_update()``: the lock is the caller's choice."""
        for b in self.branches:
            if b.kind != "if" or b.value is None or b.value.kind != "name":
                continue
            if b.value.path not in self.params:
                continue
            if any(
                f"b{b.id}" in c.event.blocks and self.holds_row_lock(c.value) for c in self.calls
            ):
                return b.value.path
        return None

    def _returns_locked(self) -> bool:
        """The function returns rows it read with a lock it always takes."""
        conditional = {
            f"b{b.id}"
            for b in self.branches
            if b.kind == "if" and b.value is not None and b.value.path == self.lock_param
        }
        for ev in self.func.events:
            if ev.type != "exit" or ev.op != "return" or ev.value is None:
                continue
            if self.holds_row_lock(ev.value):
                return True
            for c in self.calls:
                if ev.span.line <= c.event.span.line <= ev.span.end_line:
                    peer = self._peer_of(c)
                    if peer is not None and peer.returns_locked:
                        return True
            if ev.value.kind == "name" and ev.value.path:
                for bound in self.func.events:
                    if (
                        bound.type == "assign"
                        and bound.targets == [ev.value.path]
                        and bound.value is not None
                        and not conditional & set(bound.blocks)
                        and self.holds_row_lock(bound.value)
                    ):
                        return True
        return False

    def under_row_lock(self, ev: Event | Span) -> bool:
        """A row lock was taken before ``ev`` in this function, or ``ev`` is in a lock."""
        span = ev if isinstance(ev, Span) else ev.span
        if isinstance(ev, Event) and self.in_lock(ev):
            return True
        return self.locked_at(span.line)

    def locked_at(self, line: int) -> bool:
        """Something at ``line`` runs under a lock this function holds."""
        if any(lock_line <= line for lock_line in self.row_lock_lines):
            return True
        return any(
            b.kind == "with"
            and f"b{b.id}" in self.lock_blocks
            and b.span.line <= line <= b.end_line
            for b in self.branches
        )

    def _effectful(self) -> bool:
        return any(self.call_has_effect(c) for c in self.calls)

    def call_has_effect(self, c: CallFact) -> bool:
        """``c`` is a side effect or a counter, or calls a project function that has one
        (or that cannot be read)."""
        if c.effect is not None or c.counter:
            return True
        for target in c.targets:
            peer = self.peer(target)
            if peer is None or peer.effectful:
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
            if c.value.recv is not None and c.value.recv.kind == "call":
                kwargs = c.value.recv.kwargs  # `Model(a=1, b=2).save()`: made in place
        elif c.value.args and c.value.args[0].kind == "call":
            kwargs = c.value.args[0].kwargs or kwargs
        return {k for k in kwargs if k != "**"}

    def guarded(self, ev: Event, *, marked: bool = True) -> bool:
        """Whether something before ``ev`` in this function checks that the work was done.

        Which side of a guarding ``if`` runs only when the work was not done follows from
        its sense: ``if exists: return`` guards what comes after, ``if not exists:`` its body;
        ``if obj is None: return`` guards nothing (the object was missing: a precondition)."""
        if self.decorated_guard or any(b in self.runner_blocks for b in ev.blocks):
            return True
        if any(f"e{t}" in ev.blocks for t in self.try_guards):
            return True
        for b in self.branches:
            after = ev.span.line > b.end_line and blocks_contain(b.blocks, ev.blocks)
            if b.id in self.try_exits and after:
                return True
        for b in self.branches:
            if b.id not in self.guard_branches:
                continue
            sense = self.guard_sense.get(b.id, 0)
            in_body = f"b{b.id}" in ev.blocks
            in_else = f"e{b.id}" in ev.blocks
            after = (
                b.body_exits and ev.span.line > b.end_line and blocks_contain(b.blocks, ev.blocks)
            )
            if sense > 0 and (in_else or after):
                return True
            if sense < 0 and in_body:
                return True
            if sense == 0 and (in_body or in_else or after):
                return True
        for claim in self.claims:
            if claim is ev:
                continue
            if ev.span.line > claim.span.line and blocks_contain(claim.blocks, ev.blocks):
                return True
        # ``marked=False``: a mark written first stops a rerun, not an overlapping run that
        # read the rows before it (what a relative update double-counts)
        return marked and self.marked_before(ev)

    def unique_error_handled(self, ev: Event) -> bool:
        """``ev`` runs in a ``try:`` whose handler catches what a unique constraint raises
        (``except IntegrityError:``): the loser of a race on a create lands there, so the
        create is handled (and a constraint is there, even if no model shows it)."""
        for b in self.branches:
            if b.kind != "try" or f"b{b.id}" not in ev.blocks:
                continue
            for item in b.items:
                for v in item.walk():
                    if (
                        v.kind in ("name", "attr")
                        and v.path
                        and self.k.unique_errors.match([v.path, self.resolve(v.path)])
                    ):
                        return True
        return False

    def in_lock(self, ev: Event) -> bool:
        return any(b in self.lock_blocks for b in ev.blocks)

    # -- rows selected by their state, and the fields written --------------------
    @cached_property
    def selections(self) -> list[tuple[CallFact, set[str]]]:
        """Queries that select rows by a state field, with those fields (``status="failed"``,
        ``sent=False``, ``profile__welcome_sent=False``, ``Row.status == "new"``): what a
        sweep reads to know which rows are still to do."""
        out: list[tuple[CallFact, set[str]]] = []
        for c in self.calls:
            if c.chain_inner or c.effect is not None or c.upsert:
                continue
            peer = self._peer_of(c)
            if peer is not None and peer.returns_selection:
                # `due = get_due_reminders()`: the helper builds the query, the sweep
                # acts on what it returns
                out.append((c, set(peer.returns_selection)))
                continue
            if self.project.model_of(c.resolved) is None and not c.lookup:
                continue
            fields = self._selected_by(c.value)
            if fields:
                out.append((c, fields))
        return out

    @cached_property
    def returns_selection(self) -> set[str]:
        """The state fields of a query this function returns (``return Row.objects.filter(
        notified_at__isnull=True)``, or a local bound to one, sliced or not): a caller that
        loops over the result sweeps the rows the helper selected."""
        spans: list[Span] = []
        roots: set[str] = set()
        for ev in self.func.events:
            if ev.type == "exit" and ev.op == "return" and ev.value is not None:
                spans.append(ev.span)
                roots |= {split_root(v.path)[0] for v in ev.value.walk() if v.path}
        out: set[str] = set()
        for q, fields in self.selections:
            line = q.event.span.line
            inline = any(s.line <= line <= s.end_line for s in spans)
            bound = bool(set(q.event.targets) & roots)
            if inline or bound:
                out |= fields
        return out

    def _selected_by(self, value: Value) -> set[str]:
        out: set[str] = set()
        cur: Value | None = value
        while cur is not None:
            if last_segment(cur.path or "") in SELECTING:
                self._lookup_fields(cur.kwargs, out)
                for arg in cur.args:
                    for v in self._expanded(arg):
                        if v.kind == "call":  # Q(status="failed") & Q(...)
                            self._lookup_fields(v.kwargs, out)
                        for side in v.args if v.kind == "compare" else []:
                            name = last_segment(side.path or "")
                            if side.kind == "attr" and self.is_state_field(name):
                                out.add(name)
            cur = cur.recv
        return out

    def _lookup_fields(self, kwargs: dict[str, Value], out: set[str]) -> None:
        for key in kwargs:
            # any step of the path: `welcome__sent=False`, and `state__group__in=[...]`
            # (the related state the work then replaces)
            if key != "**":
                out |= {p for p in key.split("__") if p not in LOOKUPS and self.is_state_field(p)}

    def _expanded(self, value: Value) -> list[Value]:
        """``value`` and what it is built of, through the locals it names: a filter built
        up as ``cond = Q(...)`` then ``cond &= Q(...)`` is read whole."""
        out: list[Value] = []
        todo, seen = [value], set[str]()
        while todo:
            for v in todo.pop().walk():
                out.append(v)
                if v.kind == "name" and v.path and v.path not in seen:
                    seen.add(v.path)
                    todo += [
                        ev.value
                        for ev in self.func.events
                        if ev.type == "assign" and ev.targets == [v.path] and ev.value is not None
                    ]
        return out

    @cached_property
    def field_writes(self) -> list[tuple[int, str]]:
        """Where this function writes a field, and which: ``row.status = x``,
        ``.update(status=x)``, ``bulk_update(rows, ["status"])``."""
        out: list[tuple[int, str]] = []
        for c in self.calls:
            seg = last_segment(c.resolved)
            if c.state_write or c.cas or (c.model is not None and seg == "update"):
                line = c.event.span.line
                out += [(line, k.split("__", 1)[0]) for k in c.value.kwargs if k != "**"]
            elif seg == "bulk_update":
                named = c.value.kwargs.get("fields") or (
                    c.value.args[1] if len(c.value.args) > 1 else None
                )
                if named is not None:
                    out += [(c.event.span.line, a.text) for a in named.args if a.text]
        for ev in self.func.events:
            if (
                ev.type == "assign"
                and ev.op is None
                and len(ev.targets) == 1
                and split_root(ev.targets[0])[1].startswith(".")
            ):
                out.append((ev.span.line, last_segment(ev.targets[0])))
        return out

    def marked_before(self, ev: Event) -> bool:
        """``ev`` follows a query that selects rows by a state field and a write of that
        field: the rows are marked before the work, so a later run does not select them
        again (``for i in Issue.objects.filter(archived_at__isnull=True): i.archived_at =
        now`` then ``bulk_update(...)`` then the enqueue)."""
        line = ev.span.line
        return any(
            q.event.span.line < line
            and any(q.event.span.line <= w < line and f in fields for w, f in self.field_writes)
            for q, fields in self.selections
        )

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
                is_truthy(v.kwargs.get(m))
                for m in (*self.k.row_lock_methods, *self.k.row_lock_kwargs)
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

    @staticmethod
    def filter_keys(value: Value) -> set[str]:
        """The fields a query chain's filters name, whatever their lookup (``x__isnull``)."""
        out: set[str] = set()
        cur: Value | None = value.recv
        while cur is not None:
            if last_segment(cur.path or "") in ("filter", "get", "filter_by"):
                out |= {k.split("__", 1)[0] for k in cur.kwargs if k != "**"}
            cur = cur.recv
        return out

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


def caller_argument(
    callee: FunctionFacts, caller: FunctionFacts, line: int, param: str
) -> Value | None:
    """The value ``caller`` passes, in its call at ``line``, for ``callee``'s ``param``."""
    names = [p.name for p in callee.func.params]
    if param not in names:
        return None
    skip = 1 if callee.func.class_name and names and names[0] in ("self", "cls") else 0
    for c in caller.calls:
        if c.event.span.line != line or c.target is None:
            continue
        if c.target.qualified != callee.ref.qualified:
            continue
        if param in c.value.kwargs:
            return c.value.kwargs[param]
        index = names.index(param) - skip
        if 0 <= index < len(c.value.args):
            return c.value.args[index]
    return None


def origin_up(r: Reached, name: str, line: int) -> str:
    """:meth:`FunctionFacts.origin`, following a parameter up the callers that led here:
    ``"new"`` when a caller built the object (a model constructed, a row created)."""
    frames = [*r.callers, (r.facts, line)]
    for i in range(len(frames) - 1, -1, -1):
        facts, at = frames[i]
        found = facts.origin(name, at)
        if found != "param" or i == 0:
            return found
        caller, call_line = frames[i - 1]
        arg = caller_argument(facts, caller, call_line, name)
        if arg is None:
            return ""
        if arg.kind != "name" or not arg.path:
            return caller.value_origin(arg)
        name = arg.path
    return ""


@dataclass
class Reached:
    facts: FunctionFacts
    guarded: bool
    """The call site that led here was already guarded."""
    via: tuple[str, ...]
    callers: tuple[tuple[FunctionFacts, int], ...] = ()
    """Each caller from the task down, with the line of its call that led here: what runs
    after an effect in a helper includes what its callers do after the call."""
    locked: bool = False
    """The call site that led here runs under a lock a caller holds (a row it read with
    ``select_for_update``, a ``with lock(...)``): checks here cannot race."""
    guarded_strict: bool = False
    """Guarded by something other than rows marked before the call (see
    :meth:`FunctionFacts.marked_before`): what an overlapping run cannot get past either."""
    hook: str = ""
    """Reached from a lifecycle hook of the task's base class rather than from the task's
    function: ``"attempt"`` (it runs around every attempt) or ``"outcome"`` (once the run
    has an outcome); see :meth:`TaskContext.hooks`."""
    choices: tuple[tuple[str, int], ...] = ()
    """Each call on the way here that may run one of several functions (its receiver is
    one of several objects, :attr:`CallFact.alt_targets`), with which one led here: what
    two different choices at one call reach never runs in the same run."""

    def compatible(self, other: Reached) -> bool:
        """Whether this and ``other`` can both run in one run of the task."""
        mine = dict(self.choices)
        return all(mine.get(site, pick) == pick for site, pick in other.choices)


@dataclass
class TaskContext:
    """One task, the functions its run reaches, and the hits found so far."""

    project: Project
    task: Task
    facts_cache: dict[str, tuple[FunctionFacts, frozenset[str]]]
    """Shared by the tasks of one run, with the files each entry was computed from."""
    hits: list[Hit] = field(default_factory=list)
    enqueue_safe: Callable[[str], bool] | None = None
    """Whether running the named task twice is harmless (the run stage answers it with
    the checks): an enqueue of such a task is not reported."""
    assume: bool = False
    """Report as if the task runs twice (analysing a task that another one enqueues)."""
    _raises: dict[tuple[str, tuple[str, ...]], bool] = field(default_factory=dict)

    def facts(self, ref: FunctionRef) -> FunctionFacts:
        def compute() -> FunctionFacts:
            self.project.tracker.touch(ref.path)
            return FunctionFacts(self.project, ref)

        return self.project.tracker.memo(self.facts_cache, ref.qualified, compute)

    def hooks(self) -> list[tuple[FunctionRef, str]]:
        """The lifecycle hooks of the task's base class that the project overrides, with
        when they run (``"attempt"``, ``"outcome"``): the framework runs them as part of
        the task's run (``@app.task(base=CountingTask)`` whose ``after_return`` counts the
        task done), so what they do happens again when the run does."""
        ref = self.task.ref
        func, file = ref.func, ref.file
        classes: list[str] = []
        if func.class_name is not None:
            classes.append(f"{file.module}.{func.class_name}")  # a class-based task
        for dec in func.decorators:
            base = dec.value.kwargs.get("base") if dec.value.kind == "call" else None
            if base is not None and base.path and base.kind in ("name", "attr"):
                classes.append(self.project.resolve(base.path, file, None))
        out: list[tuple[FunctionRef, str]] = []
        for cls in classes:
            if cls not in self.project.classes:
                continue
            bases = self.project.class_bases(cls)
            for tc in self.project.knowledge.task_classes:
                if tc.base not in bases:
                    continue
                named = [(h, "attempt") for h in tc.attempt_hooks]
                named += [(h, "outcome") for h in tc.outcome_hooks]
                for name, when in named:
                    hook = self.project.method(cls, name)
                    if hook is not None and all(h.qualified != hook.qualified for h, _ in out):
                        out.append((hook, when))
                break
        return out

    @cached_property
    def reached(self) -> list[Reached]:
        out: list[Reached] = []
        seen: set[tuple[str, bool, bool, bool]] = set()
        Callers = tuple[tuple[FunctionFacts, int], ...]
        Choices = tuple[tuple[str, int], ...]
        Item = tuple[FunctionRef, bool, tuple[str, ...], Callers, bool, bool, str, Choices]
        queue: deque[Item] = deque([(self.task.ref, False, (), (), False, False, "", ())])
        queue += [
            (h, False, (h.qualified,), (), False, False, when, ()) for h, when in self.hooks()
        ]
        while queue:
            ref, guarded, via, callers, locked, strict, hook, choices = queue.popleft()
            # a visit at least as exposed (unguarded, unlocked) already covers this one
            if any(
                (ref.qualified, g, lk, st) in seen
                for g in {False, guarded}
                for lk in {False, locked}
                for st in {False, strict}
            ):
                continue
            seen.add((ref.qualified, guarded, locked, strict))
            facts = self.facts(ref)
            out.append(Reached(facts, guarded, via, callers, locked, strict, hook, choices))
            if len(via) >= MAX_CALL_DEPTH:
                continue
            for c in facts.calls:
                here = guarded or facts.guarded(c.event)
                firm = strict or facts.guarded(c.event, marked=False)
                held = locked or facts.under_row_lock(c.event)
                site = (*callers, (facts, c.event.span.line))
                if not c.chain_inner:
                    targets = c.targets
                    at = f"{facts.func.qualname}:{c.event.span.line}:{c.event.span.column}"
                    for i, ref in enumerate(targets):
                        picked = (*choices, (at, i)) if len(targets) > 1 else choices
                        step = (*via, ref.qualified)
                        queue.append((ref, here, step, site, held, firm, hook, picked))
                if c.runner:
                    for arg in c.value.args:
                        if arg.kind in ("name", "attr") and arg.path:
                            target = self.project.function_for_call(facts.resolve(arg.path))
                            if target is not None:
                                step = (*via, target.qualified)
                                queue.append((target, True, step, site, held, True, hook, choices))
        return out

    def effects(self) -> Iterator[tuple[Reached, CallFact]]:
        for r in self.reached:
            for c in r.facts.calls:
                if c.effect is not None:
                    yield r, c

    def hit(
        self,
        rule: str,
        r: Reached,
        ev: Event | Span,
        detail: str = "",
        *,
        severity: str | None = None,
        race: bool | None = None,
        overlap: bool = False,
    ) -> None:
        """Record a finding, if the task can really run twice at this point: a checklist
        finding (IDM2xx-IDM6xx) needs a mechanism that repeats ``ev`` (see
        :meth:`exposure`), or ``assume-retries = true``. A race rule's finding is exposed by
        two overlapping messages (``concurrent``) unless the rule says ``race=False`` (its
        check reads rows the message does not name); another rule's finding is, where it
        says ``race=True`` (a lost update on a row the message names). ``overlap``: the
        finding is true only of two runs at the same time, so only a schedule or an enqueue
        (``concurrent``) exposes it, not a second run after a crash or a failure."""
        span = ev if isinstance(ev, Span) else ev.span
        # a task-level finding has no statement: the task's name keeps its fingerprint stable
        stmt = f"task {self.task.name}" if isinstance(ev, Span) else ev.stmt
        delivery = ("", "", "")
        if rule == ENQUEUE_RULE and not isinstance(ev, Span) and self._enqueues_safe_task(r, ev):
            return
        if rule[3] not in "01":
            remote = None if isinstance(ev, Span) else self._remote_call(r, ev)
            exposed_to_race = race is True or (rule in RACE_RULES and race is not False)
            mechanism = (
                self.overlapping()
                if overlap
                else self.exposure(r, span.line, remote, race=exposed_to_race)
            )
            if mechanism is not None:
                itself = (
                    remote is not None
                    and mechanism.kind == "retry"
                    and not any(
                        c is not remote and self._can_raise(c, mechanism.exceptions, 0)
                        for c in self._calls_after(r, span.line)
                    )
                )
                hook = last_segment(r.via[0]) if r.hook == "attempt" else ""
                words = mechanism.words(itself=itself and not hook, hook=hook)
                if mechanism.kind == "concurrent":
                    words += self._other_sites(mechanism)
                delivery = (mechanism.kind, mechanism.source, words)
            elif self.assume or self.project.knowledge.assume_retries:
                delivery = ("assumed", "", ASSUMED)
            else:
                return
        if severity is None:
            severity = self.severity(rule, r, ev)
        self.hits.append(
            Hit(rule, span, detail, r.facts.file.path, r.via, stmt, delivery, severity)
        )

    def severity(self, rule: str, r: Reached, ev: Event | Span) -> str:
        """How bad a duplicate is: a user override for the call or its model, else by the
        effect's kind (a row of an audit or log model is ``info``), else by rule."""
        k = self.project.knowledge
        fact = None
        if not isinstance(ev, Span):
            fact = next((c for c in r.facts.calls if c.event is ev), None)
        if fact is not None:
            for calls, level in k.severity_calls:
                if calls.match(fact.candidates):
                    return level
            model = fact.model.qualname.rsplit(".", 1)[-1] if fact.model is not None else None
            if model is not None:
                for models, level in k.severity_models:
                    if models.match([model]):
                        return level
            if fact.effect is not None and rule[3] == "3":
                if fact.effect.kind == "row-create" and model and k.info_models.match([model]):
                    return "info"
                return k.severity_kinds.get(fact.effect.kind, "warning")
        return k.severity_rules.get(rule[:4], "warning")

    # -- delivery: can this point of the run happen twice? ---------------------
    def _other_sites(self, first: Mechanism) -> str:
        """How many more files enqueue the task, as the end of a message (the task has one
        ``concurrent`` mechanism per file that enqueues it: the first call there)."""
        more = sum(1 for m in self.task.mechanisms if m.kind == "concurrent") - 1
        if more <= 0:
            return ""
        return f" (and {more} more file{'s' if more > 1 else ''} enqueue it)"

    def exposure(
        self, r: Reached, line: int, remote: CallFact | None = None, *, race: bool = False
    ) -> Mechanism | None:
        """The first of the task's mechanisms that repeats what runs at ``line`` of
        ``r``'s function: redelivery and schedules repeat anything; a retry on failure
        repeats it when a failure can follow it (a later call, in this function or in a
        caller after its call); a retry on given exception types, when a later call can
        raise one; a ``self.retry()`` call, when it comes after it in the task body.
        ``remote`` is the effect's own call when it acts on another service: it can fail
        after the other side acted (a lost response), so its own errors count too.
        ``race``: the finding is a race two overlapping runs lose (a non-atomic check,
        :data:`~idemlint.lint.index.delivery.RACE_RULES`), so a task enqueued in the
        project's code (``concurrent``) is exposed too, even when it is never retried."""
        if r.hook:
            return self._hook_exposure(r.hook)
        for m in self.task.mechanisms:
            if m.kind == "concurrent":
                if race:
                    return m
                continue
            if m.kind in ("redelivery", "schedule"):
                return m
            if m.kind == "retry-call":
                task_line = r.callers[0][1] if r.callers else line
                if m.line > task_line and not self._exits_before(r, task_line, m.line):
                    return m
            elif m.kind == "retry":
                if remote is not None and self._can_raise(remote, m.exceptions, 0):
                    return m
                if self._raises_after(r, line, m.exceptions):
                    return m
        return None

    def overlapping(self) -> Mechanism | None:
        """The first of the task's mechanisms that runs two of its runs at the same time:
        a schedule (a slow run and the next tick) or an enqueue per event (two messages
        on a worker pool)."""
        return next((m for m in self.task.mechanisms if m.kind in ("schedule", "concurrent")), None)

    def _hook_exposure(self, when: str) -> Mechanism | None:
        """What repeats a lifecycle hook: a redelivery or a schedule repeats the whole run;
        a retry repeats a hook that runs around every attempt, when the task's function
        can fail the way the retry is set for."""
        for m in self.task.mechanisms:
            if m.kind in ("redelivery", "schedule"):
                return m
            if when != "attempt":
                continue
            if m.kind == "retry-call":
                return m
            task_calls = self.facts(self.task.ref).calls
            if m.kind == "retry" and any(self._can_raise(c, m.exceptions, 0) for c in task_calls):
                return m
        return None

    def _exits_before(self, r: Reached, line: int, retry_line: int) -> bool:
        """In the task's body, the statement at ``line`` sits in a branch that returns or
        raises before the retry call at ``retry_line`` can run (``if last attempt: notify;
        return`` then ``raise self.retry()``)."""
        facts = r.callers[0][0] if r.callers else r.facts
        events = facts.func.events
        here = next((e for e in events if e.span.line == line and e.type != "branch"), None)
        retry = next((e for e in events if e.span.line == retry_line), None)
        if here is None or retry is None:
            return False
        for b in facts.branches:
            block = f"b{b.id}"
            if b.body_exits and block in here.blocks and block not in retry.blocks:
                return True
        return False

    def enqueues_safe_task(self, r: Reached, ev: Event) -> bool:
        """``ev`` enqueues a project task that is safe to run twice (see below)."""
        return self._enqueues_safe_task(r, ev)

    def _enqueues_safe_task(self, r: Reached, ev: Event) -> bool:
        """``ev`` enqueues a project task that is safe to run twice: a fan-out of work that
        only recomputes is not a problem, whatever enqueues it twice."""
        if self.enqueue_safe is None:
            return False
        for c in r.facts.calls:
            if c.event is ev:
                target = self.project.task_prefix(c.resolved)
                return target is not None and self.enqueue_safe(target[0])
        return False

    def _remote_call(self, r: Reached, ev: Event) -> CallFact | None:
        for c in r.facts.calls:
            if c.event is ev and c.effect is not None and c.effect.kind in REMOTE_KINDS:
                return c
        return None

    @staticmethod
    def _runs_after(facts: FunctionFacts, line: int) -> list[Event]:
        """The events of ``facts`` that can run after the statement at ``line``: later in
        the source, and not past the end of a branch that ``line`` sits in and that exits
        (``if last_attempt: notify(); return`` then ``raise Retry()``: the raise cannot
        follow the notify)."""
        events = facts.func.events
        here = next((e for e in events if e.span.line == line and e.type != "branch"), None)
        # a body that ends the function (not `continue`/`break`, which stay in the loop)
        leaves = {
            e.blocks[-1]
            for e in events
            if e.type == "exit" and e.op in ("return", "raise") and e.blocks
        }
        exits = [
            f"b{b.id}"
            for b in facts.branches
            if b.body_exits
            and f"b{b.id}" in leaves
            and here is not None
            and f"b{b.id}" in here.blocks
        ]
        return [
            e for e in events if e.span.line > line and all(block in e.blocks for block in exits)
        ]

    @classmethod
    def _calls_after(cls, r: Reached, line: int) -> list[CallFact]:
        frames = [(r.facts, line), *reversed(r.callers)]
        out: list[CallFact] = []
        for facts, after in frames:
            later = {id(e) for e in cls._runs_after(facts, after)}
            out += [c for c in facts.calls if id(c.event) in later]
        return out

    def _raises_after(self, r: Reached, line: int, types: tuple[str, ...]) -> bool:
        if any(self._can_raise(c, types, 0) for c in self._calls_after(r, line)):
            return True
        frames = [(r.facts, line), *reversed(r.callers)]
        for facts, after in frames:
            for ev in self._runs_after(facts, after):
                raises = ev.type == "exit" and ev.op == "raise"
                if raises and (not types or self._names_type(facts, ev.value, types)):
                    return True
        return False

    def _can_raise(self, c: CallFact, types: tuple[str, ...], depth: int) -> bool:
        """Whether call ``c`` can raise one of ``types`` (any failure when empty)."""
        if not types:
            return not self._inert(c)
        roots = {t.split(".", 1)[0] for t in types if "." in t}
        if any(t.rsplit(".", 1)[0] in ("", "builtins") or "." not in t for t in types):
            return not self._inert(c)  # a builtin type: almost any call raises it
        if c.target is None:
            if c.resolved.split(".", 1)[0] in roots:
                return True
            for calls, raised in self.project.knowledge.raises:
                if calls.match(c.candidates) and raised.match(types):
                    return True
        if depth >= MAX_CALL_DEPTH:
            return False
        return any(self._target_raises(t, types, depth) for t in c.targets)

    def _target_raises(self, target: FunctionRef, types: tuple[str, ...], depth: int) -> bool:
        key = (target.qualified, types)
        if key not in self._raises:
            self._raises[key] = False  # a cycle answers no
            facts = self.facts(target)
            self._raises[key] = any(
                self._can_raise(inner, types, depth + 1) for inner in facts.calls
            ) or any(
                ev.type == "exit" and ev.op == "raise" and self._names_type(facts, ev.value, types)
                for ev in facts.func.events
            )
        return self._raises[key]

    def _names_type(
        self, facts: FunctionFacts, value: Value | None, types: tuple[str, ...]
    ) -> bool:
        """``raise X(...)`` / ``raise X`` where X is one of ``types`` or a project subclass."""
        if value is None or value.path is None:
            return False
        resolved = facts.resolve(value.path.removesuffix("()"))
        names = {resolved, *self.project.class_bases(resolved)}
        return any(t in names for t in types)

    def _inert(self, c: CallFact) -> bool:
        """Logging calls and builtins: they do not fail a task in practice."""
        root = c.resolved.split(".", 1)[0]
        return root in INERT_ROOTS or ("." not in c.resolved and c.target is None)

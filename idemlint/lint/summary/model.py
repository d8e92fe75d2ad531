"""The per-file summary: everything the cross-file analysis needs, and nothing more.

Each Python file is parsed once (see :mod:`idemlint.lint.summary.summarize`) into a
``FileSummary``. The summary holds names as written in the source (``"Payment.objects
.filter().first"``); resolving them to qualified names needs the whole project and
happens in :mod:`idemlint.lint.index.project`. Keeping the summary free of project knowledge is
what lets it be cached by content hash and shared between the CLI and the editor.

Every class here is plain data that round-trips through JSON (``to_dict`` /
``from_dict``) so it can go through a process pool or an on-disk cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Span:
    """A source range; lines and columns are 1-based, as editors and flake8 print them."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass
class Value:
    """An expression, reduced to what the rules look at.

    ``kind`` is one of ``name``, ``attr``, ``call``, ``str``, ``num``, ``bool``,
    ``none``, ``fstring``, ``dict``, ``seq``, ``binop``, ``compare``, ``not``,
    ``boolop``, ``other``. ``path`` is the dotted path as written for names,
    attributes and calls (for a call: the callee's path, ``"a.b().c"`` style).
    """

    kind: str
    path: str | None = None
    text: str | None = None
    """Literal text of a string, or the literal parts of an f-string."""
    op: str | None = None
    args: list[Value] = field(default_factory=list)
    """Call arguments; operands of binop/compare/boolop/not; elements of a sequence;
    the values of an f-string's expressions; the non-string-keyed values of a dict."""
    kwargs: dict[str, Value] = field(default_factory=dict)
    """Call keyword arguments; string-keyed items of a dict literal."""
    recv: Value | None = None
    """For a method call on an expression that itself holds a call (``q.filter(x).first()``),
    the receiver (``q.filter(x)``), so the inner call's arguments stay visible."""
    alts: list[Value] = field(default_factory=list)
    """For a module-level binding: the other values the name may hold when the module has
    run, bound in other branches of an ``if``/``try`` (``if prod: sender = Smtp() else:
    sender = Console()``). The binding itself is the last one in the source; which branch
    runs is configuration, so a call through the name may run any of them."""

    def walk(self) -> list[Value]:
        """This value and every value nested in it, outermost first."""
        out: list[Value] = []
        stack: list[Value] = [self]
        while stack:
            v = stack.pop()
            out.append(v)
            stack.extend(reversed(v.args))
            stack.extend(v.kwargs.values())
            if v.recv is not None:
                stack.append(v.recv)
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.kind}
        if self.path is not None:
            out["p"] = self.path
        if self.text is not None:
            out["t"] = self.text
        if self.op is not None:
            out["o"] = self.op
        if self.args:
            out["a"] = [a.to_dict() for a in self.args]
        if self.kwargs:
            out["kw"] = {k: v.to_dict() for k, v in self.kwargs.items()}
        if self.recv is not None:
            out["r"] = self.recv.to_dict()
        if self.alts:
            out["al"] = [a.to_dict() for a in self.alts]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Value:
        return cls(
            kind=data["k"],
            path=data.get("p"),
            text=data.get("t"),
            op=data.get("o"),
            args=[cls.from_dict(a) for a in data.get("a", ())],
            kwargs={k: cls.from_dict(v) for k, v in data.get("kw", {}).items()},
            recv=cls.from_dict(data["r"]) if "r" in data else None,
            alts=[cls.from_dict(a) for a in data.get("al", ())],
        )


@dataclass
class Event:
    """One thing a function does, in source order.

    ``type`` is ``call``, ``assign`` (``op`` set for augmented assignments),
    ``branch`` (an ``if``/``with``/``for``/``while``/``try`` block), or ``exit``
    (``return``/``raise``/``continue``/``break``, in ``op``).
    ``blocks`` lists the ids of the enclosing blocks, innermost last: ``"b3"`` is the
    body of branch 3, ``"e3"`` its ``else``/``except``/``finally`` part, ``"t3"`` its test.
    """

    type: str
    span: Span
    blocks: tuple[str, ...] = ()
    value: Value | None = None
    """The call, the assigned value, the branch test, or the returned/raised value."""
    targets: list[str] = field(default_factory=list)
    """Assignment targets as paths (``"order.status"``), or ``with ... as`` names."""
    op: str | None = None
    id: int = 0
    """Branch id (branches only)."""
    kind: str | None = None
    """Branch kind: if, with, for, while, try."""
    end_line: int = 0
    """Last line of a branch's body (branches only)."""
    body_exits: bool = False
    """The branch body ends in return/raise/continue/break (an early exit)."""
    items: list[Value] = field(default_factory=list)
    """``with`` items (branches of kind ``with``); the exception types the handlers catch
    (branches of kind ``try``)."""
    stmt: str = ""
    """The first line of the enclosing statement, stripped (fingerprints, --show-source)."""

    def to_dict(self) -> dict[str, Any]:
        s = self.span
        out: dict[str, Any] = {
            "y": self.type,
            "s": [s.line, s.column, s.end_line, s.end_column],
        }
        if self.blocks:
            out["b"] = list(self.blocks)
        if self.value is not None:
            out["v"] = self.value.to_dict()
        if self.targets:
            out["tg"] = self.targets
        if self.op is not None:
            out["o"] = self.op
        if self.type == "branch":
            out.update(i=self.id, kd=self.kind, el=self.end_line, ex=self.body_exits)
            if self.items:
                out["it"] = [v.to_dict() for v in self.items]
        if self.stmt:
            out["st"] = self.stmt
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        line, col, end_line, end_col = data["s"]
        value = data.get("v")
        return cls(
            type=data["y"],
            span=Span(line, col, end_line, end_col),
            blocks=tuple(data.get("b", ())),
            value=Value.from_dict(value) if value is not None else None,
            targets=list(data.get("tg", ())),
            op=data.get("o"),
            id=data.get("i", 0),
            kind=data.get("kd"),
            end_line=data.get("el", 0),
            body_exits=data.get("ex", False),
            items=[Value.from_dict(v) for v in data.get("it", ())],
            stmt=data.get("st", ""),
        )


@dataclass
class Decorator:
    value: Value
    """The decorator expression: a ``call`` for ``@app.task(bind=True)``, else a name/attr."""
    span: Span


@dataclass
class Param:
    name: str
    annotation: str | None = None
    """Dotted path of the annotation as written, when it is a plain name or attribute."""
    default: Value | None = None


@dataclass
class FunctionSummary:
    name: str
    qualname: str
    """Dotted name within the module: ``charge``, ``PaymentTask.run``, ``outer.inner``."""
    span: Span
    """The ``def`` line (decorators excluded)."""
    decorators: list[Decorator] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    class_name: str | None = None
    """Qualified name (within the module) of the class this is a method of."""
    is_async: bool = False
    events: list[Event] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "qualname": self.qualname,
            "span": _span_list(self.span),
            "decorators": [
                {"v": d.value.to_dict(), "s": _span_list(d.span)} for d in self.decorators
            ],
            "params": [
                {
                    "n": p.name,
                    "a": p.annotation,
                    "d": p.default.to_dict() if p.default else None,
                }
                for p in self.params
            ],
            "class_name": self.class_name,
            "is_async": self.is_async,
            "events": [e.to_dict() for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunctionSummary:
        return cls(
            name=data["name"],
            qualname=data["qualname"],
            span=Span(*data["span"]),
            decorators=[
                Decorator(Value.from_dict(d["v"]), Span(*d["s"])) for d in data["decorators"]
            ],
            params=[
                Param(p["n"], p["a"], Value.from_dict(p["d"]) if p["d"] else None)
                for p in data["params"]
            ],
            class_name=data["class_name"],
            is_async=data["is_async"],
            events=[Event.from_dict(e) for e in data["events"]],
        )


@dataclass
class ClassSummary:
    name: str
    qualname: str
    span: Span
    bases: list[Value] = field(default_factory=list)
    decorators: list[Decorator] = field(default_factory=list)
    attributes: dict[str, Value] = field(default_factory=dict)
    """Class-level assignments (model fields, ``functions = [...]``, ``__table_args__``)."""
    methods: list[str] = field(default_factory=list)
    """Method names defined in the body."""
    inner: dict[str, ClassSummary] = field(default_factory=dict)
    """Nested classes by name (Django's ``Meta``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "qualname": self.qualname,
            "span": _span_list(self.span),
            "bases": [b.to_dict() for b in self.bases],
            "decorators": [
                {"v": d.value.to_dict(), "s": _span_list(d.span)} for d in self.decorators
            ],
            "attributes": {k: v.to_dict() for k, v in self.attributes.items()},
            "methods": self.methods,
            "inner": {k: v.to_dict() for k, v in self.inner.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassSummary:
        return cls(
            name=data["name"],
            qualname=data["qualname"],
            span=Span(*data["span"]),
            bases=[Value.from_dict(b) for b in data["bases"]],
            decorators=[
                Decorator(Value.from_dict(d["v"]), Span(*d["s"])) for d in data["decorators"]
            ],
            attributes={k: Value.from_dict(v) for k, v in data["attributes"].items()},
            methods=list(data["methods"]),
            inner={k: cls.from_dict(v) for k, v in data["inner"].items()},
        )


@dataclass
class ParseError:
    message: str
    line: int
    column: int


@dataclass
class FileSummary:
    """What one file holds. ``module`` is its dotted module name within the project."""

    path: str
    """Path relative to the project root, ``/`` separators."""
    module: str
    imports: dict[str, str] = field(default_factory=dict)
    """Local name -> qualified name it was imported as (``"st" -> "celery.shared_task"``)."""
    assigns: dict[str, Value] = field(default_factory=dict)
    """Module-level ``name = value`` (the last one wins)."""
    functions: dict[str, FunctionSummary] = field(default_factory=dict)
    classes: dict[str, ClassSummary] = field(default_factory=dict)
    module_events: list[Event] = field(default_factory=list)
    """Calls made at module level (task registrations such as ``q.enqueue(f)``), and
    assignments to attributes or items there (``app.conf.task_acks_late = True``)."""
    error: ParseError | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "module": self.module,
            "imports": self.imports,
            "assigns": {k: v.to_dict() for k, v in self.assigns.items()},
            "functions": {k: v.to_dict() for k, v in self.functions.items()},
            "classes": {k: v.to_dict() for k, v in self.classes.items()},
            "module_events": [e.to_dict() for e in self.module_events],
            "error": (
                None
                if self.error is None
                else [self.error.message, self.error.line, self.error.column]
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileSummary:
        err = data["error"]
        return cls(
            path=data["path"],
            module=data["module"],
            imports=dict(data["imports"]),
            assigns={k: Value.from_dict(v) for k, v in data["assigns"].items()},
            functions={k: FunctionSummary.from_dict(v) for k, v in data["functions"].items()},
            classes={k: ClassSummary.from_dict(v) for k, v in data["classes"].items()},
            module_events=[Event.from_dict(e) for e in data["module_events"]],
            error=None if err is None else ParseError(err[0], err[1], err[2]),
        )


class Bindings:
    """What each module-level name may hold once the module has run, followed through the
    branches of ``if``/``elif``/``else`` and ``try``/``except``/``else``: a binding in a
    branch replaces the name's values on that path, and the paths join after the statement.
    Both the summariser (libcst) and the outline (``ast``) walk a module through this, so
    the two give the same :attr:`Value.alts`."""

    def __init__(self) -> None:
        self.now: dict[str, list[Value]] = {}

    def bind(self, name: str, value: Value) -> None:
        self.now[name] = [value]

    def state(self) -> dict[str, list[Value]]:
        """A copy of the values bound so far (to start a branch from, or to end one)."""
        return {k: list(v) for k, v in self.now.items()}

    def restore(self, state: dict[str, list[Value]]) -> None:
        self.now = {k: list(v) for k, v in state.items()}

    def join(self, ends: list[dict[str, list[Value]]]) -> None:
        """After a branching statement: a name holds what any path that ran left in it."""
        merged: dict[str, list[Value]] = {}
        for end in ends:
            for name, values in end.items():
                held = merged.setdefault(name, [])
                held.extend(v for v in values if v not in held)
        self.now = merged

    def finish(self, assigns: dict[str, Value]) -> None:
        """Set :attr:`Value.alts` on each binding in ``assigns`` (the last one in the
        source) that other paths may have replaced."""
        for name, values in self.now.items():
            last = assigns.get(name)
            if last is None:
                continue
            others = [v for v in values if v != last]
            if others:
                assigns[name] = replace(last, alts=others)


def relative_package(module: str, is_package: bool, level: int) -> str:
    """The package a relative import starts from: ``level`` dots in ``module`` (a package's
    ``__init__`` when ``is_package``). Shared by the summariser and the pre-check, which
    must resolve ``from .x import y`` the same way."""
    parts = module.split(".") if module else []
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)] if level - 1 <= len(parts) else []
    return ".".join(parts)


def _span_list(span: Span) -> list[int]:
    return [span.line, span.column, span.end_line, span.end_column]

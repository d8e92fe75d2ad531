"""A file's outline from ``ast``: the module-level names a summary would give, at a tenth
of libcst's cost.

Resolving names across files reads only a file's module-level facts (its imports,
module-level assignments, the qualified names of its functions and classes, and the
classes' bases: :class:`~idemlint.lint.index.project.FileIndex`). A cold run builds the
project index from these outlines and makes a file's full summary (libcst, with
positions) only when the analysis first reads one of its functions or classes: on a
large application that is a fraction of the files the pre-check keeps.

The outline is *exactly* what :mod:`idemlint.lint.summary.summarize` would give for the
same file, its quirks included (a one-line suite such as ``if x: import y`` is not read,
a class's compound statements are not read, a module-level ``with`` names its functions
``<module>.f``). Where ``ast`` cannot tell two sources apart that libcst tells apart
(an f-string, implicitly concatenated strings used as a dictionary key, a suite joined
by a backslash), :func:`outline` raises :class:`Unsure` and the caller makes the full
summary instead. ``tests/test_perf_outline.py`` compares both on every file of the
fixtures and of installed packages; a run compares them again whenever it loads a full
summary (see :mod:`idemlint.lint.run.lazy`).

A file ``ast`` cannot parse (a newer syntax than this Python's, or broken code) has no
outline: :class:`Unsure` again, and libcst decides.

Given the methods that enqueue a message for a task object (``tails``: ``delay``,
``apply_async``...), the outline also lists the file's *enqueue sites*
(:class:`EnqueueSite`): each call ``receiver.tail(...)`` the summary would hold as a call
event, with its function, its line and whether a loop of that function runs it, in the
order the summary's events give them. The task finder reads nothing else of a file kept
only because it enqueues a task (:meth:`idemlint.lint.index.tasks.TaskFinder.enqueues_of`),
so such a file needs no full summary. A site is resolved as a module-level name, which is
what the summary's resolution gives when the receiver's first name is bound nowhere in
its function. A site that can name no function whatever it is bound to (a parameter
itself, ``self.send()``; an item, ``jobs[0].delay()``) is left out. Where the name may be
bound in the function otherwise (an assignment, a loop target, a nested ``def``, a
parameter's attribute: the summary resolves those through the function), or a site's
line holds other than ASCII (``ast`` normalises identifiers, libcst does not), the sites
are unsure (``enqueues`` is None) and the caller makes the full summary.
"""

from __future__ import annotations

import ast
import bisect
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, cast

from idemlint.lint.summary.model import Bindings, Value, relative_package


class Unsure(Exception):
    """``ast`` cannot give this file's outline exactly as libcst would: summarise it."""


@dataclass
class Outline:
    """The module-level facts of one file, in the shape of a ``FileIndex``."""

    path: str
    module: str
    functions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    imports: dict[str, str] = field(default_factory=dict)
    assigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Module-level assignments in :meth:`Value.to_dict` form."""
    bases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Each class's bases (by qualified name within the module), in the same form."""
    enqueues: list[EnqueueSite] | None = field(default_factory=list)
    """The enqueue sites, in the order of the summary's events (module level first, then
    each function's); None when only the full summary can say (see the module docstring)."""

    def to_json(self) -> str:
        return json.dumps(
            [
                list(self.functions),
                list(self.classes),
                self.imports,
                self.assigns,
                self.bases,
                None if self.enqueues is None else [list(e) for e in self.enqueues],
            ],
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, path: str, module: str) -> Outline:
        functions, classes, imports, assigns, bases, enqueues = json.loads(text)
        sites = None if enqueues is None else [EnqueueSite(*e) for e in enqueues]
        return cls(path, module, tuple(functions), tuple(classes), imports, assigns, bases, sites)


class EnqueueSite(NamedTuple):
    """A call ``receiver.tail(...)`` as the task finder reads it off the summary's events."""

    function: str
    """The qualified name of the function whose events hold it ("" at module level)."""
    name: str
    """That function's own name ("" at module level)."""
    receiver: str
    """The dotted path the method is called on, as the summary writes it (``tasks.send``)."""
    tail: str
    line: int
    in_loop: bool
    """Inside the body of a ``for``/``while`` of the same function (or of the module)."""


_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
}
_COMPOPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_NAMED_CONSTANTS = {True: "True", False: "False", None: "None"}
_STRING_PREFIX = frozenset("rRuUbB")


class _Reader:
    """The mirror of ``summarize._Summarizer``'s traversal, for the names only."""

    def __init__(
        self,
        lines: Sequence[str],
        module: str,
        is_package: bool,
        tails: Collection[str] = (),
        hot: Sequence[int] = (),
    ) -> None:
        self.lines = lines
        self.module = module
        self.is_package = is_package
        self.imports: dict[str, str] = {}
        self.assigns: dict[str, Value] = {}
        self.bindings = Bindings()
        self.functions: dict[str, None] = {}
        self.classes: dict[str, list[Value]] = {}
        self.tails = tails
        self.hot = hot
        """The lines holding one of ``tails`` as a word (sorted): only their statements
        can hold an enqueue site."""
        self.sites: dict[str, list[EnqueueSite]] = {"": []}
        """Enqueue sites by the function whose events hold them ("": the module's), in
        the order of the summary's ``functions``."""
        self.sites_unsure = False

    # -- the source's shape --------------------------------------------------
    def is_suite(self, body: Sequence[ast.stmt]) -> bool:
        """Whether a compound statement's body is written on its header's line (libcst's
        ``SimpleStatementSuite``) rather than as an indented block."""
        first = body[0]
        line = self.lines[first.lineno - 1]
        before = line.encode("utf-8")[: first.col_offset].decode("utf-8", "replace")
        if before.strip():
            return True  # `if x: y`: the header is on the same line
        # an indented block: its first statement starts a line, and the last line of
        # code before it ends the header; a backslash there joins the two (a suite)
        for n in range(first.lineno - 2, -1, -1):
            text = self.lines[n].strip()
            if text and not text.startswith("#"):
                if text.endswith("\\"):
                    raise Unsure("a body joined to its header by a backslash")
                return False
        return False

    def text(self, node: ast.expr) -> str:
        """The source text of a one-line node (numbers: libcst keeps them as written)."""
        if node.end_lineno != node.lineno or node.end_col_offset is None:
            raise Unsure("a literal over several lines")
        line = self.lines[node.lineno - 1].encode("utf-8")
        return line[node.col_offset : node.end_col_offset].decode("utf-8")

    def one_literal(self, node: ast.Constant) -> bool:
        """Whether a string constant is one literal (libcst's ``SimpleString``), not several
        implicitly concatenated (``ConcatenatedString``)."""
        if node.end_lineno != node.lineno:
            raise Unsure("a string over several lines")
        text = self.text(node)
        i = 0
        while i < len(text) and text[i] in _STRING_PREFIX:
            i += 1
        quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else text[i : i + 1]
        if quote not in ('"', "'", '"""', "'''"):
            raise Unsure("an unexpected string literal")
        end = text.find(quote, i + len(quote))
        raw = "r" in text[:i].lower()
        while end != -1 and not raw and _escaped(text, end):
            end = text.find(quote, end + 1)
        if end == -1:
            raise Unsure("an unexpected string literal")
        return end + len(quote) == len(text)

    # -- expressions (``summarize.value_of`` and ``dotted``) -----------------
    def dotted(self, node: ast.expr) -> str | None:
        parts: list[str] = []
        cur = node
        while True:
            if isinstance(cur, ast.Name):
                parts.append(cur.id)
                break
            if isinstance(cur, ast.Constant) and _named_constant(cur):
                parts.append(repr(cur.value))  # `True.real`: a name for libcst
                break
            if isinstance(cur, ast.Attribute):
                parts.append("." + cur.attr)
                cur = cur.value
            elif isinstance(cur, ast.Call):
                parts.append("()")
                cur = cur.func
            elif isinstance(cur, ast.Subscript):
                parts.append("[]")
                cur = cur.value
            elif isinstance(cur, ast.Await):
                cur = cur.value
            else:
                return None
        return "".join(reversed(parts))

    @staticmethod
    def contains_call(node: ast.expr) -> bool:
        cur = node
        while isinstance(cur, (ast.Attribute, ast.Subscript, ast.Call, ast.Await)):
            if isinstance(cur, ast.Call):
                return True
            cur = cur.value
        return False

    def value(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Name):
            return Value("name", path=node.id)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Attribute):
            recv = self.value(node.value) if self.contains_call(node.value) else None
            return Value("attr", path=self.dotted(node), recv=recv)
        if isinstance(node, ast.Call):
            args: list[Value] = []
            kwargs: dict[str, Value] = {}
            for arg in node.args:
                args.append(self.value(arg.value if isinstance(arg, ast.Starred) else arg))
            for kw in node.keywords:
                kwargs["**" if kw.arg is None else kw.arg] = self.value(kw.value)
            recv = None
            if isinstance(node.func, ast.Attribute) and self.contains_call(node.func.value):
                recv = self.value(node.func.value)
            return Value("call", path=self.dotted(node.func), args=args, kwargs=kwargs, recv=recv)
        if isinstance(node, ast.Await):
            return self.value(node.value)
        if isinstance(node, ast.JoinedStr):
            raise Unsure("an f-string")  # libcst keeps its literal parts as written
        if isinstance(node, ast.Dict):
            items: dict[str, Value] = {}
            rest: list[Value] = []
            for key, item in zip(node.keys, node.values, strict=True):
                if key is None:
                    rest.append(self.value(item))
                elif (
                    isinstance(key, ast.Constant)
                    and isinstance(key.value, str)
                    and self.one_literal(key)
                ):
                    items[key.value] = self.value(item)
                else:
                    rest.extend((self.value(key), self.value(item)))
            return Value("dict", kwargs=items, args=rest)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return Value(
                "seq",
                args=[self.value(e.value if isinstance(e, ast.Starred) else e) for e in node.elts],
            )
        if isinstance(node, ast.BinOp):
            return Value(
                "binop",
                op=_BINOPS.get(type(node.op), "?"),
                args=[self.value(node.left), self.value(node.right)],
            )
        if isinstance(node, ast.Compare):
            return Value(
                "compare",
                op=_COMPOPS.get(type(node.ops[0]), "?") if node.ops else None,
                args=[self.value(node.left), *(self.value(c) for c in node.comparators)],
            )
        if isinstance(node, ast.UnaryOp):
            inner = self.value(node.operand)
            if isinstance(node.op, ast.Not):
                return Value("not", args=[inner])
            if isinstance(node.op, ast.USub) and inner.kind == "num":
                return Value("num", text="-" + (inner.text or ""))
            return Value("other", args=[inner])
        if isinstance(node, ast.BoolOp):
            # libcst's boolean operations are binary, nested to the left
            op = "and" if isinstance(node.op, ast.And) else "or"
            acc = self.value(node.values[0])
            for operand in node.values[1:]:
                acc = Value("boolop", op=op, args=[acc, self.value(operand)])
            return acc
        if isinstance(node, ast.Subscript):
            return Value("other", path=self.dotted(node), args=[self.value(node.value)])
        if isinstance(node, ast.IfExp):
            return Value(
                "other",
                args=[self.value(node.body), self.value(node.test), self.value(node.orelse)],
            )
        if isinstance(node, ast.NamedExpr):
            return self.value(node.value)
        return Value("other")

    def constant(self, node: ast.Constant) -> Value:
        value = node.value
        if value is True or value is False:
            return Value("bool", text=_NAMED_CONSTANTS[value])
        if value is None:
            return Value("none")
        if isinstance(value, str):
            return Value("str", text=value)
        if isinstance(value, bytes):
            return Value("str", text=None)
        if isinstance(value, (int, float, complex)):
            return Value("num", text=self.text(node))
        return Value("other")  # `...`

    # -- statements (``_Summarizer.module_body``, ``block``, ``function``) ---
    def add_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is not None:
                    self.imports[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    self.imports[top] = top
            return
        base = node.module or ""
        if node.level:
            pkg = relative_package(self.module, self.is_package, node.level)
            base = f"{pkg}.{base}" if base and pkg else (base or pkg)
        for alias in node.names:
            if alias.name == "*":
                return
            local = alias.asname if alias.asname is not None else alias.name
            self.imports[local] = f"{base}.{alias.name}" if base else alias.name

    def module_body(self, body: Sequence[ast.stmt]) -> None:
        for stmt in body:
            if self.hot and isinstance(stmt, _VALUED):
                # a module-level line's calls are module events (compound statements'
                # parts at module level are not read for calls, but with/for/while/match)
                self.calls(getattr(stmt, "value", None), "", "", loop=False)
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                self.add_import(stmt)
            elif isinstance(stmt, ast.Assign):
                names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                if names:  # (only then: `app.conf.x = f"..."` needs no value here)
                    v = self.value(stmt.value)
                    for name in names:
                        self.assigns[name] = v
                        self.bindings.bind(name, v)
            elif isinstance(stmt, ast.AnnAssign):
                if stmt.value is not None and isinstance(stmt.target, ast.Name):
                    self.assigns[stmt.target.id] = self.value(stmt.value)
                    self.bindings.bind(stmt.target.id, self.assigns[stmt.target.id])
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(stmt, "")
            elif isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = self.class_def(stmt, "")
            elif isinstance(stmt, ast.If):
                self.module_if(stmt)
            elif isinstance(stmt, _TRY):
                tried = cast(ast.Try, stmt)  # (a `try ... except*` has the same fields)
                self.module_try(tried)
            elif isinstance(stmt, _COMPOUND):
                self.block([stmt], "<module>", "", "", loop=False)

    def module_if(self, stmt: ast.If) -> None:
        # an `elif` is an `If` in `orelse` that starts its line (at the keyword), so
        # `elif` and `else:` with an `if` in it are read alike, as libcst's chain reads them
        # (a loop over the chain, not recursion: an elif chain may be hundreds long; the
        # paths join in the same order as nested joins would)
        start = self.bindings.state()
        ends = []
        arm: ast.If | None = stmt
        while arm is not None:
            self.bindings.restore(start)
            self.part(arm.body)
            ends.append(self.bindings.state())
            orelse = arm.orelse
            arm = orelse[0] if len(orelse) == 1 and isinstance(orelse[0], ast.If) else None
            if arm is None:
                self.bindings.restore(start)
                self.part(orelse)
        self.bindings.join([*ends, self.bindings.state()])

    def module_try(self, tried: ast.Try) -> None:
        """The body (then its ``else``) or a handler ran: the summariser's paths."""
        start = self.bindings.state()
        self.part(tried.body)
        after_body = self.bindings.state()
        ends = []
        for handler in tried.handlers:
            self.bindings.restore(start)
            self.part(handler.body)
            ends.append(self.bindings.state())
        self.bindings.restore(after_body)
        self.part(tried.orelse)
        self.bindings.join([self.bindings.state(), *ends])

    def part(self, body: Sequence[ast.stmt]) -> None:
        """A block of a compound statement at module level (a suite holds no names)."""
        if body and not self.is_suite(body):
            self.module_body(body)

    def class_def(self, node: ast.ClassDef, prefix: str) -> list[Value]:
        qual = f"{prefix}{node.name}"
        bases = [self.value(b.value if isinstance(b, ast.Starred) else b) for b in node.bases]
        if node.body and not self.is_suite(node.body):
            for stmt in node.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.function(stmt, f"{qual}.")
                elif isinstance(stmt, ast.ClassDef):
                    self.class_def(stmt, f"{qual}.")  # inner: the class's, not the file's
        return bases

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str) -> None:
        qual = f"{prefix}{node.name}"
        self.functions[qual] = None
        self.sites[qual] = []  # a second `def` of the name: its events replace the first's
        if self.is_suite(node.body):  # def f(): import x; ...
            for small in node.body:
                if isinstance(small, (ast.Import, ast.ImportFrom)):
                    self.add_import(small)
                else:
                    self.small(small, qual, node.name, loop=False)
        else:
            self.block(node.body, qual, qual, node.name, loop=False)
        if self.sites[qual]:
            self.sites[qual] = self.resolvable(node, self.sites[qual])

    def block(
        self, body: Sequence[ast.stmt], qualname: str, scope: str, name: str, *, loop: bool
    ) -> None:
        """A function's statements (``qualname``: the prefix of what they define) whose
        calls are the events of ``scope`` (named ``name``); ``loop``: a loop of that scope
        runs them."""
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                self.add_import(stmt)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(stmt, f"{qualname}.")
            elif isinstance(stmt, ast.ClassDef):
                self.classes[f"{qualname}.{stmt.name}"] = self.class_def(stmt, f"{qualname}.")
            elif isinstance(stmt, ast.If):
                self.calls(stmt.test, scope, name, loop=loop)
                self.suite_or_block(stmt.body, qualname, scope, name, loop=loop)
                # `elif` or `else:`, as above
                self.suite_or_block(stmt.orelse, qualname, scope, name, loop=loop)
            elif isinstance(stmt, ast.Match):
                for case in stmt.cases:  # (the subject's and guards' calls are not read)
                    self.suite_or_block(case.body, qualname, scope, name, loop=loop)
            elif isinstance(stmt, _TRY):
                tried = cast(ast.Try, stmt)
                self.suite_or_block(tried.body, qualname, scope, name, loop=loop)
                for handler in tried.handlers:
                    self.suite_or_block(handler.body, qualname, scope, name, loop=loop)
                self.suite_or_block(tried.orelse, qualname, scope, name, loop=loop)
                self.suite_or_block(tried.finalbody, qualname, scope, name, loop=loop)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                for item in stmt.items:
                    self.calls(item.context_expr, scope, name, loop=loop)
                self.suite_or_block(stmt.body, qualname, scope, name, loop=loop)
            elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
                test = stmt.test if isinstance(stmt, ast.While) else stmt.iter
                self.calls(test, scope, name, loop=loop)
                self.suite_or_block(stmt.body, qualname, scope, name, loop=True)
                self.suite_or_block(stmt.orelse, qualname, scope, name, loop=loop)
            else:
                self.small(stmt, scope, name, loop=loop)

    def suite_or_block(
        self, body: Sequence[ast.stmt], qualname: str, scope: str, name: str, *, loop: bool
    ) -> None:
        """A body's statements, as ``block`` reads ``body_of`` it: a one-line suite's small
        statements match none of its cases, so nothing of it is read."""
        if body and not self.is_suite(body):
            self.block(body, qualname, scope, name, loop=loop)

    # -- enqueue sites (``_Summarizer.small_statement``, ``expr_calls``) ---------
    def small(self, stmt: ast.stmt, scope: str, name: str, *, loop: bool) -> None:
        """The calls of one small statement of a function, as its events hold them."""
        if not self.hot:
            return
        if isinstance(stmt, ast.Raise):
            self.calls(stmt.exc, scope, name, loop=loop)
        elif isinstance(stmt, _SMALL_VALUED):
            self.calls(getattr(stmt, "value", None), scope, name, loop=loop)

    def calls(self, expr: ast.expr | None, scope: str, name: str, *, loop: bool) -> None:
        """The enqueue sites among the calls of ``expr``, in the summary's order (its
        children in source order, a call after its arguments)."""
        if expr is None or not self.hot:
            return
        at = bisect.bisect_left(self.hot, expr.lineno)
        if at == len(self.hot) or self.hot[at] > (expr.end_lineno or expr.lineno):
            return
        found: list[ast.Call] = []
        _calls_in(expr, found)
        for call in found:
            path = self.dotted(call.func)
            split = enqueue_call(path, self.tails) if path else None
            if split is None:
                continue
            end = call.func.end_lineno or call.lineno
            if not all(self.lines[n].isascii() for n in range(call.lineno - 1, end)):
                self.sites_unsure = True  # ast normalises identifiers (NFKC); libcst not
            self.sites[scope].append(EnqueueSite(scope, name, *split, call.lineno, loop))

    def resolvable(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, sites: list[EnqueueSite]
    ) -> list[EnqueueSite]:
        """The sites of a function that resolve as module-level names (its receiver's
        first name is bound nowhere in it), without those that can name no function (a
        parameter itself, or an item of something: ``job[0]``); any other makes the
        sites unsure (the summary resolves it through the function's locals)."""
        args = node.args
        params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        bound = _bound_names(node.body)
        bound |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        out = []
        for site in sites:
            root, rest = _split_root(site.receiver)
            if root not in params and root not in bound:
                out.append(site)
            elif "[" in rest or (rest == "" and root not in bound):
                continue
            else:
                self.sites_unsure = True
        return out


_LINES = re.compile(r"\r\n|\r|\n")
_TRY: tuple[type[ast.stmt], ...] = (ast.Try, *([ast.TryStar] if hasattr(ast, "TryStar") else []))
_LOOPS = (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)
_COMPOUND = (*_LOOPS, ast.Match)
_SMALL_VALUED: tuple[type[ast.stmt], ...] = (
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.Expr,
    ast.Return,
)
_VALUED: tuple[type[ast.stmt], ...] = (
    *_SMALL_VALUED,
    *[t for t in (getattr(ast, "TypeAlias", None),) if t is not None],  # (Python 3.12)
)
"""Small statements with a ``value`` (libcst's name too): a module-level line's calls."""
_SEGMENT = re.compile(r"[.(\[]")
_LEAVES = (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop)


def enqueue_call(path: str, tails: Collection[str]) -> tuple[str, str] | None:
    """``(receiver, tail)`` of a call's dotted callee that enqueues a message for what it is
    called on (``tasks.send.delay`` -> ``("tasks.send", "delay")``), as the task finder
    takes it: on a name or an attribute path, not on a call's result."""
    receiver, _, tail = path.rpartition(".")
    if tail not in tails or not receiver or "(" in receiver:
        return None
    return receiver, tail


def _split_root(path: str) -> tuple[str, str]:
    """As :func:`idemlint.lint.index.project.split_root`."""
    m = _SEGMENT.search(path)
    return (path[: m.start()], path[m.start() :]) if m else (path, "")


def _calls_in(node: ast.AST, found: list[ast.Call]) -> None:
    """The calls of ``node`` in the order libcst's visitor leaves them: children in source
    order (``ast`` lists a dict's keys before its values, an ``IfExp``'s test first), a
    call after its callee and arguments."""
    children = [c for c in ast.iter_child_nodes(node) if not isinstance(c, _LEAVES)]
    if len(children) > 1 and all(hasattr(c, "lineno") for c in children):
        children.sort(key=lambda c: (getattr(c, "lineno", 0), getattr(c, "col_offset", 0)))
    for child in children:
        _calls_in(child, found)
    if isinstance(node, ast.Call):
        found.append(node)


def _bound_names(body: Sequence[ast.stmt]) -> set[str]:
    """Every name a function body may bind, its nested scopes' included (more than the
    summary's locals: only what is bound nowhere here surely resolves at module level).
    Imports are left out: the summary keeps a function's imports with the module's."""
    out: set[str] = set()
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name):
                if not isinstance(node.ctx, ast.Load):
                    out.add(node.id)
            elif isinstance(node, ast.arg):
                out.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                out.update(node.names)
            elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
                if node.name:
                    out.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                out.add(node.rest)
    return out


@lru_cache(maxsize=8)
def _tail_words(tails: frozenset[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, sorted(tails))) + r")(?!\w)")


def _hot_lines(lines: Sequence[str], source: str, tails: frozenset[str]) -> list[int]:
    """The lines (1-based) holding one of ``tails`` as a word."""
    if not tails:
        return []
    words = _tail_words(tails)
    if words.search(source) is None:
        return []
    return [n for n, line in enumerate(lines, 1) if words.search(line)]


def _named_constant(node: ast.Constant) -> bool:
    return node.value is None or node.value is True or node.value is False


def _escaped(text: str, at: int) -> bool:
    """Whether the quote at ``at`` is escaped (an odd number of backslashes before it)."""
    n = 0
    while at - n - 1 >= 0 and text[at - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def outline(
    source: str,
    path: str,
    module: str,
    is_package: bool = False,
    tails: frozenset[str] = frozenset(),
) -> Outline:
    """The outline of one file's text; :class:`Unsure` when only libcst can tell.
    ``tails``: the enqueue methods whose sites it lists."""
    try:
        tree = ast.parse(source, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise Unsure(f"ast cannot parse it: {exc}") from None
    return outline_tree(tree, source, path, module, is_package, tails)


def outline_tree(
    tree: ast.Module,
    source: str,
    path: str,
    module: str,
    is_package: bool = False,
    tails: frozenset[str] = frozenset(),
) -> Outline:
    """:func:`outline` of a tree ``ast`` parsed from ``source`` already."""
    # lines as the tokenizer counts them (``str.splitlines`` also splits at a form feed)
    lines = _LINES.split(source)
    reader = _Reader(lines, module, is_package, tails, _hot_lines(lines, source, tails))
    try:
        reader.module_body(tree.body)
        reader.bindings.finish(reader.assigns)
    except RecursionError:
        raise Unsure("too deep for the outline") from None
    sites = [site for found in reader.sites.values() for site in found]
    return Outline(
        path,
        module,
        tuple(reader.functions),
        tuple(reader.classes),
        reader.imports,
        {k: v.to_dict() for k, v in reader.assigns.items()},
        {k: [b.to_dict() for b in v] for k, v in reader.classes.items()},
        None if reader.sites_unsure else sites,
    )

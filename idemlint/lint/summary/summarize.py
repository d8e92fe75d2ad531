"""Parse one file with libcst and reduce it to a :class:`~idemlint.lint.summary.model.FileSummary`.

The walk is a hand-written recursion over statements rather than a generic
``CSTVisitor``: it needs to know, for every call, which ``if``/``with``/``try``
blocks enclose it, and carrying that block stack explicitly is both simpler and
faster than reconstructing it from visitor callbacks. No rule knowledge lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import libcst as cst
from libcst.metadata import CodeRange

from idemlint.lint.summary.model import (
    Bindings,
    ClassSummary,
    Decorator,
    Event,
    FileSummary,
    FunctionSummary,
    Param,
    ParseError,
    Span,
    Value,
    relative_package,
)
from idemlint.lint.summary.positions import code_ranges, reference_code_ranges

_BINOPS: dict[type[cst.BaseBinaryOp], str] = {
    cst.Add: "+",
    cst.Subtract: "-",
    cst.Multiply: "*",
    cst.Divide: "/",
    cst.FloorDivide: "//",
    cst.Modulo: "%",
    cst.Power: "**",
    cst.BitOr: "|",
    cst.BitAnd: "&",
    cst.BitXor: "^",
    cst.LeftShift: "<<",
    cst.RightShift: ">>",
    cst.MatrixMultiply: "@",
}
_AUGOPS: dict[type[cst.BaseAugOp], str] = {
    cst.AddAssign: "+",
    cst.SubtractAssign: "-",
    cst.MultiplyAssign: "*",
    cst.DivideAssign: "/",
    cst.FloorDivideAssign: "//",
    cst.ModuloAssign: "%",
    cst.PowerAssign: "**",
    cst.BitOrAssign: "|",
    cst.BitAndAssign: "&",
    cst.BitXorAssign: "^",
    cst.LeftShiftAssign: "<<",
    cst.RightShiftAssign: ">>",
    cst.MatrixMultiplyAssign: "@",
}
_COMPOPS: dict[type[cst.BaseCompOp], str] = {
    cst.Equal: "==",
    cst.NotEqual: "!=",
    cst.LessThan: "<",
    cst.LessThanEqual: "<=",
    cst.GreaterThan: ">",
    cst.GreaterThanEqual: ">=",
    cst.In: "in",
    cst.NotIn: "not in",
    cst.Is: "is",
    cst.IsNot: "is not",
}


SETTING_KINDS = frozenset({"dict", "seq", "bool", "num"})
"""Module-level values that may be settings (``X = True``, ``SCHEDULE = {...}``): their
assignment is kept as an event too, so a message can point at its line."""


def dotted(node: cst.BaseExpression) -> str | None:
    """``a.b(x).c`` -> ``"a.b().c"``; ``None`` when the chain starts at no name."""
    parts: list[str] = []
    cur: cst.BaseExpression = node
    while True:
        if isinstance(cur, cst.Name):
            parts.append(cur.value)
            break
        if isinstance(cur, cst.Attribute):
            parts.append("." + cur.attr.value)
            cur = cur.value
        elif isinstance(cur, cst.Call):
            parts.append("()")
            cur = cur.func
        elif isinstance(cur, cst.Subscript):
            parts.append("[]")
            cur = cur.value
        elif isinstance(cur, cst.Await):
            cur = cur.expression
        else:
            return None
    return "".join(reversed(parts))


def _contains_call(node: cst.BaseExpression) -> bool:
    cur: cst.BaseExpression = node
    while isinstance(cur, (cst.Attribute, cst.Subscript, cst.Call, cst.Await)):
        if isinstance(cur, cst.Call):
            return True
        cur = cur.expression if isinstance(cur, cst.Await) else cur.value
    return False


def value_of(node: cst.BaseExpression) -> Value:
    """Reduce an expression to a :class:`Value`."""
    if isinstance(node, cst.Name):
        if node.value in ("True", "False"):
            return Value("bool", text=node.value)
        if node.value == "None":
            return Value("none")
        return Value("name", path=node.value)
    if isinstance(node, cst.Attribute):
        path = dotted(node)
        recv = value_of(node.value) if _contains_call(node.value) else None
        return Value("attr", path=path, recv=recv)
    if isinstance(node, cst.Call):
        args: list[Value] = []
        kwargs: dict[str, Value] = {}
        for arg in node.args:
            v = value_of(arg.value)
            if arg.keyword is not None:
                kwargs[arg.keyword.value] = v
            elif arg.star == "**":
                kwargs["**"] = v
            else:
                args.append(v)
        recv = None
        if isinstance(node.func, cst.Attribute) and _contains_call(node.func.value):
            recv = value_of(node.func.value)
        return Value("call", path=dotted(node.func), args=args, kwargs=kwargs, recv=recv)
    if isinstance(node, cst.Await):
        return value_of(node.expression)
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        ev = node.evaluated_value
        return Value("str", text=ev if isinstance(ev, str) else None)
    if isinstance(node, cst.FormattedString):
        text = "".join(p.value for p in node.parts if isinstance(p, cst.FormattedStringText))
        exprs = [
            value_of(p.expression)
            for p in node.parts
            if isinstance(p, cst.FormattedStringExpression)
        ]
        return Value("fstring", text=text, args=exprs)
    if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary)):
        return Value("num", text=node.value)
    if isinstance(node, cst.Dict):
        items: dict[str, Value] = {}
        rest: list[Value] = []
        for el in node.elements:
            if isinstance(el, cst.DictElement):
                key = el.key
                if isinstance(key, cst.SimpleString) and isinstance(key.evaluated_value, str):
                    items[key.evaluated_value] = value_of(el.value)
                else:
                    rest.extend((value_of(key), value_of(el.value)))
            else:
                rest.append(value_of(el.value))
        return Value("dict", kwargs=items, args=rest)
    if isinstance(node, (cst.List, cst.Tuple, cst.Set)):
        return Value("seq", args=[value_of(el.value) for el in node.elements])
    if isinstance(node, cst.BinaryOperation):
        return Value(
            "binop",
            op=_BINOPS.get(type(node.operator), "?"),
            args=[value_of(node.left), value_of(node.right)],
        )
    if isinstance(node, cst.Comparison):
        first = node.comparisons[0].operator if node.comparisons else None
        return Value(
            "compare",
            op=_COMPOPS.get(type(first), "?") if first is not None else None,
            args=[value_of(node.left), *(value_of(c.comparator) for c in node.comparisons)],
        )
    if isinstance(node, cst.UnaryOperation):
        inner = value_of(node.expression)
        if isinstance(node.operator, cst.Not):
            return Value("not", args=[inner])
        if isinstance(node.operator, cst.Minus) and inner.kind == "num":
            return Value("num", text="-" + (inner.text or ""))
        return Value("other", args=[inner])
    if isinstance(node, cst.BooleanOperation):
        op = "and" if isinstance(node.operator, cst.And) else "or"
        return Value("boolop", op=op, args=[value_of(node.left), value_of(node.right)])
    if isinstance(node, cst.Subscript):
        return Value("other", path=dotted(node), args=[value_of(node.value)])
    if isinstance(node, cst.IfExp):
        return Value(
            "other", args=[value_of(node.body), value_of(node.test), value_of(node.orelse)]
        )
    if isinstance(node, cst.NamedExpr):
        return value_of(node.value)
    return Value("other")


def _walrus_targets(test: cst.BaseExpression) -> list[cst.NamedExpr]:
    """The ``name := value`` bindings an ``if`` test makes at its top level (also inside
    ``and``/``or``/``not`` and a comparison), in source order."""
    found: list[cst.NamedExpr] = []
    todo: list[cst.BaseExpression] = [test]
    while todo:
        node = todo.pop(0)
        if isinstance(node, cst.NamedExpr):
            if isinstance(node.target, cst.Name):
                found.append(node)
        elif isinstance(node, cst.BooleanOperation):
            todo[:0] = [node.left, node.right]
        elif isinstance(node, cst.UnaryOperation):
            todo.insert(0, node.expression)
        elif isinstance(node, cst.Comparison):
            todo[:0] = [node.left, *(c.comparator for c in node.comparisons)]
    return found


class _CallCollector(cst.CSTVisitor):
    """The generic walk, for expression kinds :func:`_collect_calls` does not know."""

    def __init__(self, found: list[cst.Call]) -> None:
        super().__init__()
        self.found = found

    def leave_Call(self, original_node: cst.Call) -> None:
        self.found.append(original_node)


_NO_CALLS: frozenset[type[cst.CSTNode]] = frozenset(
    {
        cst.Name,
        cst.SimpleString,
        cst.Integer,
        cst.Float,
        cst.Imaginary,
        cst.Ellipsis,
        cst.FormattedStringText,
    }
)


def _collect_calls(node: cst.CSTNode, found: list[cst.Call]) -> None:
    """Calls of ``node`` in the order libcst's visitor leaves them (children in source order,
    a call after its arguments), by direct recursion over the common expression kinds.

    A ``CSTVisitor`` rebuilds every node it passes (``_visit_and_replace_children``)
    and dispatches through several method lookups per node; walking the fields that
    can hold a call is about 5x cheaper. Kinds not listed fall back to the visitor,
    which gives the same order for their subtree.
    """
    kind = type(node)
    if kind in _NO_CALLS:
        return
    if kind is cst.Call:
        assert isinstance(node, cst.Call)
        _collect_calls(node.func, found)
        for arg in node.args:
            _collect_calls(arg.value, found)
        found.append(node)
    elif kind is cst.Attribute:
        assert isinstance(node, cst.Attribute)
        _collect_calls(node.value, found)
    elif kind is cst.Subscript:
        assert isinstance(node, cst.Subscript)
        _collect_calls(node.value, found)
        for sub in node.slice:
            _collect_calls(sub.slice, found)
    elif kind is cst.Index:
        assert isinstance(node, cst.Index)
        _collect_calls(node.value, found)
    elif kind is cst.Slice:
        assert isinstance(node, cst.Slice)
        for bound in (node.lower, node.upper, node.step):
            if bound is not None:
                _collect_calls(bound, found)
    elif kind is cst.BinaryOperation or kind is cst.BooleanOperation:
        assert isinstance(node, (cst.BinaryOperation, cst.BooleanOperation))
        _collect_calls(node.left, found)
        _collect_calls(node.right, found)
    elif kind is cst.UnaryOperation or kind is cst.Await:
        assert isinstance(node, (cst.UnaryOperation, cst.Await))
        _collect_calls(node.expression, found)
    elif kind is cst.Comparison:
        assert isinstance(node, cst.Comparison)
        _collect_calls(node.left, found)
        for target in node.comparisons:
            _collect_calls(target.comparator, found)
    elif kind is cst.IfExp:
        assert isinstance(node, cst.IfExp)
        _collect_calls(node.body, found)
        _collect_calls(node.test, found)
        _collect_calls(node.orelse, found)
    elif kind is cst.Tuple or kind is cst.List or kind is cst.Set:
        assert isinstance(node, (cst.Tuple, cst.List, cst.Set))
        for item in node.elements:
            _collect_calls(item.value, found)
    elif kind is cst.Dict:
        assert isinstance(node, cst.Dict)
        for entry in node.elements:
            if isinstance(entry, cst.DictElement):
                _collect_calls(entry.key, found)
            _collect_calls(entry.value, found)
    elif kind is cst.FormattedString:
        assert isinstance(node, cst.FormattedString)
        for part in node.parts:
            _collect_calls(part, found)
    elif kind is cst.FormattedStringExpression:
        assert isinstance(node, cst.FormattedStringExpression)
        _collect_calls(node.expression, found)
        for part in node.format_spec or ():
            _collect_calls(part, found)
    elif kind is cst.ConcatenatedString:
        assert isinstance(node, cst.ConcatenatedString)
        _collect_calls(node.left, found)
        _collect_calls(node.right, found)
    elif kind is cst.NamedExpr:
        assert isinstance(node, cst.NamedExpr)
        _collect_calls(node.target, found)
        _collect_calls(node.value, found)
    elif kind is cst.Lambda:
        # its body runs later, but within the task's run in practice
        # (`transaction.on_commit(lambda: notify.delay(order_id))`, a sort key):
        # its calls are the task's calls, at this statement
        assert isinstance(node, cst.Lambda)
        node.params.visit(_CallCollector(found))  # defaults: evaluated right here
        _collect_calls(node.body, found)
    else:
        node.visit(_CallCollector(found))


def _calls_in(node: cst.CSTNode) -> list[cst.Call]:
    """Every call in an expression, innermost first (evaluation order, roughly)."""
    found: list[cst.Call] = []
    _collect_calls(node, found)
    return found


def _calls_in_reference(node: cst.CSTNode) -> list[cst.Call]:
    """:func:`_calls_in` through libcst's generic visitor (the reference for the tests)."""
    found: list[cst.Call] = []
    node.visit(_CallCollector(found))
    return found


class _Summarizer:
    def __init__(
        self,
        positions: Mapping[cst.CSTNode, CodeRange],
        lines: Sequence[str],
        module: str,
        is_package: bool,
    ) -> None:
        self.positions = positions
        self.calls_in = _calls_in
        self.lines = lines
        self.module = module
        self.is_package = is_package
        self.next_branch = 1
        self.imports: dict[str, str] = {}
        self.assigns: dict[str, Value] = {}
        self.bindings = Bindings()
        """What each module-level name may hold (its alternatives, for :attr:`Value.alts`)."""
        self.functions: dict[str, FunctionSummary] = {}
        self.classes: dict[str, ClassSummary] = {}
        self.module_events: list[Event] = []

    # -- positions ---------------------------------------------------------
    def span(self, node: cst.CSTNode) -> Span:
        rng: CodeRange = self.positions[node]
        return Span(rng.start.line, rng.start.column + 1, rng.end.line, rng.end.column + 1)

    def stmt_text(self, node: cst.CSTNode) -> str:
        line = self.positions[node].start.line
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""

    # -- imports -----------------------------------------------------------
    def add_import(self, node: cst.Import | cst.ImportFrom) -> None:
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = dotted(alias.name) or ""
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self.imports[alias.asname.name.value] = full
                else:
                    top = full.split(".")[0]
                    self.imports[top] = top
            return
        base = dotted(node.module) if node.module is not None else ""
        level = len(node.relative)
        if level:
            pkg = relative_package(self.module, self.is_package, level)
            base = f"{pkg}.{base}" if base and pkg else (base or pkg)
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            name = dotted(alias.name) or ""
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.imports[local] = f"{base}.{name}" if base else name

    # -- module level ------------------------------------------------------
    def module_body(self, body: Sequence[cst.BaseStatement | cst.BaseSmallStatement]) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, (cst.Import, cst.ImportFrom)):
                        self.add_import(small)
                    elif isinstance(small, cst.Assign):
                        v = value_of(small.value)
                        for t in small.targets:
                            if isinstance(t.target, cst.Name):
                                self.assigns[t.target.value] = v
                                self.bindings.bind(t.target.value, v)
                                if v.kind in SETTING_KINDS:  # its line, for messages
                                    self.module_attribute_assign(stmt, t.target, v)
                            elif isinstance(t.target, (cst.Attribute, cst.Subscript)):
                                # `app.conf.x = True`, `app.conf.beat_schedule["b"] = {...}`:
                                # project-wide settings the delivery model reads
                                self.module_attribute_assign(stmt, t.target, v)
                    elif (
                        isinstance(small, cst.AnnAssign)
                        and small.value is not None
                        and isinstance(small.target, cst.Name)
                    ):
                        self.assigns[small.target.value] = value_of(small.value)
                        self.bindings.bind(small.target.value, self.assigns[small.target.value])
                self.events_of_simple(stmt, (), self.module_events)
            elif isinstance(stmt, cst.FunctionDef):
                self.function(stmt, prefix="", class_name=None)
            elif isinstance(stmt, cst.ClassDef):
                self.classes[stmt.name.value] = self.class_def(stmt, prefix="")
            elif isinstance(stmt, cst.If):
                self.module_if(stmt)
            elif isinstance(stmt, (cst.Try, cst.TryStar)):
                # the body (then its `else`) or a handler: each path may bind a name
                start = self.bindings.state()
                self.module_body(stmt.body.body)
                after_body = self.bindings.state()
                ends = []
                for handler in stmt.handlers:
                    self.bindings.restore(start)
                    self.module_body(handler.body.body)
                    ends.append(self.bindings.state())
                self.bindings.restore(after_body)
                if stmt.orelse is not None:
                    self.module_body(stmt.orelse.body.body)
                self.bindings.join([self.bindings.state(), *ends])
            elif isinstance(stmt, cst.BaseCompoundStatement):
                # with/for/while at module level: keep their calls as module events
                self.block(
                    [stmt],
                    (),
                    self.module_events,
                    FunctionSummary("<module>", "<module>", Span(1, 1, 1, 1)),
                )

    def module_if(self, stmt: cst.If) -> None:
        """An ``if``: its body or its ``elif``/``else`` part runs, not both; with no ``else``,
        the names keep what they held before."""
        start = self.bindings.state()
        ends = []
        arm: cst.If | None = stmt
        while arm is not None:  # a loop, not recursion: an elif chain may be hundreds long
            self.bindings.restore(start)
            self.module_body(arm.body.body)
            ends.append(self.bindings.state())
            orelse = arm.orelse
            arm = orelse if isinstance(orelse, cst.If) else None
            if arm is None:
                self.bindings.restore(start)
                if isinstance(orelse, cst.Else):
                    self.module_body(orelse.body.body)
        self.bindings.join([*ends, self.bindings.state()])

    def module_attribute_assign(
        self, stmt: cst.SimpleStatementLine, target: cst.BaseExpression, value: Value
    ) -> None:
        base = target.value if isinstance(target, cst.Subscript) else target
        path = dotted(base)
        if path is None:
            return
        if isinstance(target, cst.Subscript):
            path += "[]"
        self.module_events.append(
            Event("assign", self.span(stmt), (), value, [path], stmt=self.stmt_text(stmt))
        )

    def class_def(self, node: cst.ClassDef, prefix: str) -> ClassSummary:
        qual = f"{prefix}{node.name.value}"
        summary = ClassSummary(
            name=node.name.value,
            qualname=qual,
            span=self.span(node.name),
            bases=[value_of(a.value) for a in node.bases],
            decorators=[Decorator(value_of(d.decorator), self.span(d)) for d in node.decorators],
        )
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign):
                        v = value_of(small.value)
                        for t in small.targets:
                            if isinstance(t.target, cst.Name):
                                summary.attributes[t.target.value] = v
                    elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                        if small.value is not None:
                            summary.attributes[small.target.value] = value_of(small.value)
                        else:
                            summary.attributes[small.target.value] = Value(
                                "other", path=dotted(small.annotation.annotation)
                            )
            elif isinstance(stmt, cst.FunctionDef):
                summary.methods.append(stmt.name.value)
                self.function(stmt, prefix=f"{qual}.", class_name=qual)
            elif isinstance(stmt, cst.ClassDef):
                summary.inner[stmt.name.value] = self.class_def(stmt, prefix=f"{qual}.")
        return summary

    def function(self, node: cst.FunctionDef, prefix: str, class_name: str | None) -> None:
        qual = f"{prefix}{node.name.value}"
        params: list[Param] = []
        all_params = [
            *node.params.posonly_params,
            *node.params.params,
            *node.params.kwonly_params,
        ]
        for p in all_params:
            ann = dotted(p.annotation.annotation) if p.annotation is not None else None
            if p.annotation is not None and isinstance(p.annotation.annotation, cst.SimpleString):
                raw = p.annotation.annotation.evaluated_value
                ann = raw if isinstance(raw, str) and raw.replace(".", "").isidentifier() else None
            params.append(
                Param(p.name.value, ann, value_of(p.default) if p.default is not None else None)
            )
        start = self.positions[node].start  # the `def` keyword; decorators are separate nodes
        name_end = self.positions[node.name].end
        summary = FunctionSummary(
            name=node.name.value,
            qualname=qual,
            span=Span(start.line, start.column + 1, name_end.line, name_end.column + 1),
            decorators=[Decorator(value_of(d.decorator), self.span(d)) for d in node.decorators],
            params=params,
            class_name=class_name,
            is_async=node.asynchronous is not None,
        )
        self.functions[qual] = summary
        if isinstance(node.body, cst.SimpleStatementSuite):  # def f(): return x
            for small in node.body.body:
                self.small_statement(small, node.body, (), summary.events, summary)
            return
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        self.block(body, (), summary.events, summary)

    # -- statements --------------------------------------------------------
    def block(
        self,
        body: Sequence[cst.BaseStatement | cst.BaseSmallStatement],
        blocks: tuple[str, ...],
        out: list[Event],
        func: FunctionSummary,
    ) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    self.small_statement(small, stmt, blocks, out, func)
            elif isinstance(stmt, cst.FunctionDef):
                self.function(stmt, prefix=f"{func.qualname}.", class_name=None)
            elif isinstance(stmt, cst.ClassDef):
                self.classes[f"{func.qualname}.{stmt.name.value}"] = self.class_def(
                    stmt, prefix=f"{func.qualname}."
                )
            elif isinstance(stmt, cst.If):
                self.if_stmt(stmt, blocks, out, func)
            elif isinstance(stmt, cst.With):
                bid = self.new_branch()
                items = [value_of(i.item) for i in stmt.items]
                names = [
                    (dotted(i.asname.name) or "") if i.asname is not None else ""
                    for i in stmt.items
                ]
                out.append(
                    Event(
                        "branch",
                        self.span(stmt),
                        blocks,
                        id=bid,
                        kind="with",
                        end_line=self.positions[stmt].end.line,
                        items=items,
                        targets=names,
                        stmt=self.stmt_text(stmt),
                    )
                )
                for item in stmt.items:
                    self.expr_calls(item.item, stmt, (*blocks, f"t{bid}"), out, [])
                self.block(self.body_of(stmt.body), (*blocks, f"b{bid}"), out, func)
            elif isinstance(stmt, (cst.For, cst.While)):
                bid = self.new_branch()
                test = stmt.iter if isinstance(stmt, cst.For) else stmt.test
                targets = []
                if isinstance(stmt, cst.For):
                    # `for key, amount in totals.items()`: each name the loop binds
                    targets = _target_paths(stmt.target)
                out.append(
                    Event(
                        "branch",
                        self.span(stmt),
                        blocks,
                        value=value_of(test),
                        id=bid,
                        kind="for" if isinstance(stmt, cst.For) else "while",
                        end_line=self.positions[stmt].end.line,
                        targets=targets,
                        stmt=self.stmt_text(stmt),
                    )
                )
                self.expr_calls(test, stmt, (*blocks, f"t{bid}"), out, [])
                self.block(self.body_of(stmt.body), (*blocks, f"b{bid}"), out, func)
                if stmt.orelse is not None:
                    self.block(self.body_of(stmt.orelse.body), (*blocks, f"e{bid}"), out, func)
            elif isinstance(stmt, (cst.Try, cst.TryStar)):
                bid = self.new_branch()
                out.append(
                    Event(
                        "branch",
                        self.span(stmt),
                        blocks,
                        id=bid,
                        kind="try",
                        end_line=self.positions[stmt].end.line,
                        # what the handlers catch (`except IntegrityError:`)
                        items=[value_of(h.type) for h in stmt.handlers if h.type is not None],
                        stmt=self.stmt_text(stmt),
                    )
                )
                self.block(self.body_of(stmt.body), (*blocks, f"b{bid}"), out, func)
                for handler in stmt.handlers:
                    self.block(self.body_of(handler.body), (*blocks, f"e{bid}"), out, func)
                if stmt.orelse is not None:
                    self.block(self.body_of(stmt.orelse.body), (*blocks, f"b{bid}"), out, func)
                if stmt.finalbody is not None:
                    self.block(self.body_of(stmt.finalbody.body), (*blocks, f"e{bid}"), out, func)
            elif isinstance(stmt, cst.Match):
                bid = self.new_branch()
                out.append(
                    Event(
                        "branch",
                        self.span(stmt),
                        blocks,
                        value=value_of(stmt.subject),
                        id=bid,
                        kind="match",
                        end_line=self.positions[stmt].end.line,
                        stmt=self.stmt_text(stmt),
                    )
                )
                for case in stmt.cases:
                    self.block(self.body_of(case.body), (*blocks, f"b{bid}"), out, func)

    @staticmethod
    def body_of(suite: cst.BaseSuite) -> Sequence[cst.BaseStatement | cst.BaseSmallStatement]:
        if isinstance(suite, cst.IndentedBlock):
            return suite.body
        if isinstance(suite, cst.SimpleStatementSuite):
            return suite.body
        return ()

    def new_branch(self) -> int:
        bid = self.next_branch
        self.next_branch += 1
        return bid

    def if_stmt(
        self, stmt: cst.If, blocks: tuple[str, ...], out: list[Event], func: FunctionSummary
    ) -> None:
        bid = self.new_branch()
        body = self.body_of(stmt.body)
        body_end = self.positions[stmt.body].end.line
        out.append(
            Event(
                "branch",
                self.span(stmt.test),
                blocks,
                value=value_of(stmt.test),
                id=bid,
                kind="if",
                end_line=body_end,
                body_exits=_ends_in_exit(body),
                stmt=self.stmt_text(stmt),
            )
        )
        # report an `if` at the `if` keyword, not its test
        first = out[-1]
        first.span = Span(
            self.positions[stmt].start.line,
            self.positions[stmt].start.column + 1,
            first.span.end_line,
            first.span.end_column,
        )
        self.expr_calls(stmt.test, stmt, (*blocks, f"t{bid}"), out, [])
        for named in _walrus_targets(stmt.test):
            # `if rows := Model.objects.filter(...):` binds `rows` for the body and after
            out.append(
                Event(
                    "assign",
                    self.span(named),
                    blocks,
                    value_of(named.value),
                    [named.target.value],  # type: ignore[attr-defined]
                    stmt=self.stmt_text(stmt),
                )
            )
        self.block(body, (*blocks, f"b{bid}"), out, func)
        orelse = stmt.orelse
        if isinstance(orelse, cst.If):
            self.if_stmt(orelse, (*blocks, f"e{bid}"), out, func)
        elif isinstance(orelse, cst.Else):
            self.block(self.body_of(orelse.body), (*blocks, f"e{bid}"), out, func)

    def small_statement(
        self,
        small: cst.BaseSmallStatement,
        stmt: cst.CSTNode,
        blocks: tuple[str, ...],
        out: list[Event],
        func: FunctionSummary,
    ) -> None:
        text = self.stmt_text(stmt)
        if isinstance(small, (cst.Import, cst.ImportFrom)):
            self.add_import(small)
            return
        if isinstance(small, cst.Assign):
            targets: list[str] = []
            for t in small.targets:
                targets.extend(_target_paths(t.target))
            self.expr_calls(small.value, stmt, blocks, out, targets)
            out.append(
                Event("assign", self.span(small), blocks, value_of(small.value), targets, stmt=text)
            )
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            targets = _target_paths(small.target)
            self.expr_calls(small.value, stmt, blocks, out, targets)
            out.append(
                Event("assign", self.span(small), blocks, value_of(small.value), targets, stmt=text)
            )
        elif isinstance(small, cst.AugAssign):
            self.expr_calls(small.value, stmt, blocks, out, [])
            out.append(
                Event(
                    "assign",
                    self.span(small),
                    blocks,
                    value_of(small.value),
                    _target_paths(small.target),
                    op=_AUGOPS.get(type(small.operator), "?"),
                    stmt=text,
                )
            )
        elif isinstance(small, cst.Expr):
            self.expr_calls(small.value, stmt, blocks, out, [])
        elif isinstance(small, (cst.Return, cst.Raise)):
            value = small.value if isinstance(small, cst.Return) else small.exc
            if value is not None:
                self.expr_calls(value, stmt, blocks, out, [])
            out.append(
                Event(
                    "exit",
                    self.span(small),
                    blocks,
                    value_of(value) if value is not None else None,
                    op="return" if isinstance(small, cst.Return) else "raise",
                    stmt=text,
                )
            )
        elif isinstance(small, (cst.Continue, cst.Break)):
            op = "continue" if isinstance(small, cst.Continue) else "break"
            out.append(Event("exit", self.span(small), blocks, op=op, stmt=text))

    def events_of_simple(
        self, stmt: cst.SimpleStatementLine, blocks: tuple[str, ...], out: list[Event]
    ) -> None:
        for small in stmt.body:
            if isinstance(small, (cst.Import, cst.ImportFrom)):
                continue
            value = getattr(small, "value", None)
            if isinstance(value, cst.BaseExpression):
                self.expr_calls(value, stmt, blocks, out, [])

    def expr_calls(
        self,
        expr: cst.BaseExpression,
        stmt: cst.CSTNode,
        blocks: tuple[str, ...],
        out: list[Event],
        targets: list[str],
    ) -> None:
        calls = self.calls_in(expr)
        text = self.stmt_text(stmt)
        for call in calls:
            # the call that *is* the assigned value carries the targets (``x = f()``)
            inner = expr.expression if isinstance(expr, cst.Await) else expr
            tg = targets if call is inner else []
            out.append(Event("call", self.span(call), blocks, value_of(call), list(tg), stmt=text))


def _target_paths(node: cst.BaseExpression) -> list[str]:
    if isinstance(node, (cst.Tuple, cst.List)):
        out: list[str] = []
        for el in node.elements:
            out.extend(_target_paths(el.value))
        return out
    p = dotted(node)
    return [p] if p else []


def _ends_in_exit(body: Sequence[cst.BaseStatement | cst.BaseSmallStatement]) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, cst.SimpleStatementLine):
        return any(
            isinstance(s, (cst.Return, cst.Raise, cst.Continue, cst.Break)) for s in last.body
        )
    return isinstance(last, (cst.Return, cst.Raise, cst.Continue, cst.Break))


def _syntax_error(source: str, path: str, exc: cst.ParserSyntaxError) -> ParseError:
    """Where the file is broken. libcst's position can be a line past the error (it reports
    where it gave up); CPython's compiler names the offending line, so prefer it."""
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as err:
        if err.lineno:
            return ParseError(err.msg or exc.message, err.lineno, max(err.offset or 1, 1))
    except (ValueError, RecursionError):
        pass
    return ParseError(exc.message, exc.raw_line, exc.raw_column + 1)


def summarize_source(
    source: str,
    path: str,
    module: str,
    is_package: bool = False,
    *,
    reference: bool = False,
) -> FileSummary:
    """Summarise one file's text. A file that does not parse yields a summary with ``error``.

    Positions come from :func:`idemlint.lint.summary.positions.code_ranges`, a cheaper
    computation of what libcst's ``PositionProvider`` gives, and calls are found by a direct walk;
    ``reference=True`` uses the provider and libcst's generic visitor instead (slow:
    the tests check on real code that both give the same summary).
    """
    try:
        tree = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return FileSummary(path=path, module=module, error=_syntax_error(source, path, exc))
    except (RecursionError, ValueError) as exc:
        return FileSummary(path=path, module=module, error=ParseError(str(exc), 1, 1))
    ranges = reference_code_ranges(tree) if reference else code_ranges(tree)
    summarizer = _Summarizer(ranges, source.splitlines(), module, is_package)
    if reference:
        summarizer.calls_in = _calls_in_reference
    summarizer.module_body(tree.body)
    summarizer.bindings.finish(summarizer.assigns)
    return FileSummary(
        path=path,
        module=module,
        imports=summarizer.imports,
        assigns=summarizer.assigns,
        functions=summarizer.functions,
        classes=summarizer.classes,
        module_events=summarizer.module_events,
    )

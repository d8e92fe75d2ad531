"""A compact text form of :class:`~idemlint.lint.summary.model.FileSummary`, for the cache
and the pool.

``FileSummary.to_dict()`` is the readable form; decoding it back costs more than
the analysis itself on a warm run (pretix: 994 files, 28 MB of JSON, ~5 s), for
two reasons this codec removes:

* **Repetition.** A call event holds the whole expression tree of its call, and
  every call nested in its arguments is an event of its own holding its own
  subtree again; five in six ``Value`` nodes of a real project are copies. Here
  each distinct value is written once, in a table, and referred to by index; the
  decoder builds it once and shares the object. (Summaries are read-only once
  made; nothing in the analysis mutates a ``Value`` or compares them by identity.)
  Statement texts are tabled the same way.
* **Shape.** Objects are JSON arrays in a fixed field order, decoded positionally
  instead of key by key.

The result has exactly the content of the original (``tests/test_perf_codec.py``
round-trips every file of the installed Django and Celery packages through both
forms and compares ``to_dict()``), and ``FIELDS`` pins the dataclass fields this
codec knows: a field added to ``summary.py`` fails that test until it is added
here, instead of being dropped silently.
"""

from __future__ import annotations

import json
from typing import Any

from idemlint.lint.summary.model import (
    ClassSummary,
    Decorator,
    Event,
    FileSummary,
    FunctionSummary,
    Param,
    ParseError,
    Span,
    Value,
)

VERSION = 2
"""Bump with any change of the layout below (the cache key includes it via cache.FORMAT)."""

FIELDS: dict[type, tuple[str, ...]] = {
    Value: ("kind", "path", "text", "op", "args", "kwargs", "recv", "alts"),
    Event: (
        "type",
        "span",
        "blocks",
        "value",
        "targets",
        "op",
        "id",
        "kind",
        "end_line",
        "body_exits",
        "items",
        "stmt",
    ),
    Span: ("line", "column", "end_line", "end_column"),
    Decorator: ("value", "span"),
    Param: ("name", "annotation", "default"),
    FunctionSummary: (
        "name",
        "qualname",
        "span",
        "decorators",
        "params",
        "class_name",
        "is_async",
        "events",
    ),
    ClassSummary: (
        "name",
        "qualname",
        "span",
        "bases",
        "decorators",
        "attributes",
        "methods",
        "inner",
    ),
    ParseError: ("message", "line", "column"),
    FileSummary: (
        "path",
        "module",
        "imports",
        "assigns",
        "functions",
        "classes",
        "module_events",
        "error",
    ),
}
"""The fields of each summary dataclass, in the order this codec writes them."""


class _Encoder:
    def __init__(self) -> None:
        self.values: list[list[Any]] = []
        self.value_ids: dict[tuple[Any, ...], int] = {}
        self.strings: list[str] = []
        self.string_ids: dict[str, int] = {}

    def value(self, v: Value | None) -> int:
        if v is None:
            return -1
        args = tuple(self.value(a) for a in v.args)
        kwargs = tuple((k, self.value(x)) for k, x in v.kwargs.items())
        recv = self.value(v.recv)
        alts = tuple(self.value(a) for a in v.alts)
        # children are tabled first, so equal subtrees have equal indices
        key = (v.kind, v.path, v.text, v.op, args, kwargs, recv, alts)
        found = self.value_ids.get(key)
        if found is None:
            found = self.value_ids[key] = len(self.values)
            row = [v.kind, v.path, v.text, v.op, list(args), [list(kv) for kv in kwargs], recv]
            if alts:  # (module-level bindings only: most rows have none)
                row.append(list(alts))
            self.values.append(row)
        return found

    def string(self, s: str) -> int:
        found = self.string_ids.get(s)
        if found is None:
            found = self.string_ids[s] = len(self.strings)
            self.strings.append(s)
        return found

    @staticmethod
    def span(s: Span) -> list[int]:
        return [s.line, s.column, s.end_line, s.end_column]

    def event(self, e: Event) -> list[Any]:
        return [
            e.type,
            self.span(e.span),
            list(e.blocks),
            self.value(e.value),
            e.targets,
            e.op,
            e.id,
            e.kind,
            e.end_line,
            e.body_exits,
            [self.value(v) for v in e.items],
            self.string(e.stmt),
        ]

    def decorators(self, decorators: list[Decorator]) -> list[Any]:
        return [[self.value(d.value), self.span(d.span)] for d in decorators]

    def function(self, f: FunctionSummary) -> list[Any]:
        return [
            f.name,
            f.qualname,
            self.span(f.span),
            self.decorators(f.decorators),
            [[p.name, p.annotation, self.value(p.default)] for p in f.params],
            f.class_name,
            f.is_async,
            [self.event(e) for e in f.events],
        ]

    def cls(self, c: ClassSummary) -> list[Any]:
        return [
            c.name,
            c.qualname,
            self.span(c.span),
            [self.value(b) for b in c.bases],
            self.decorators(c.decorators),
            [[k, self.value(v)] for k, v in c.attributes.items()],
            c.methods,
            [[k, self.cls(v)] for k, v in c.inner.items()],
        ]


def encode(summary: FileSummary) -> str:
    """The compact text form of ``summary``."""
    enc = _Encoder()
    err = summary.error
    body = [
        summary.path,
        summary.module,
        summary.imports,
        [[k, enc.value(v)] for k, v in summary.assigns.items()],
        [[k, enc.function(f)] for k, f in summary.functions.items()],
        [[k, enc.cls(c)] for k, c in summary.classes.items()],
        [enc.event(e) for e in summary.module_events],
        None if err is None else [err.message, err.line, err.column],
    ]
    return json.dumps([VERSION, enc.values, enc.strings, body], separators=(",", ":"))


class _Decoder:
    def __init__(self, rows: list[list[Any]], strings: list[str]) -> None:
        self.strings = strings
        # rows are written children first, so one pass builds every value
        values: list[Value] = []
        for kind, path, text, op, args, kwargs, recv, *alts in rows:
            values.append(
                Value(
                    kind,
                    path,
                    text,
                    op,
                    [values[a] for a in args],
                    {k: values[x] for k, x in kwargs},
                    values[recv] if recv >= 0 else None,
                    [values[a] for a in alts[0]] if alts else [],
                )
            )
        self.values = values

    def value(self, i: int) -> Value | None:
        return self.values[i] if i >= 0 else None

    def event(self, row: list[Any]) -> Event:
        typ, span, blocks, value, targets, op, eid, kind, end_line, exits, items, stmt = row
        return Event(
            typ,
            Span(*span),
            tuple(blocks),
            self.values[value] if value >= 0 else None,
            targets,
            op,
            eid,
            kind,
            end_line,
            exits,
            [self.values[i] for i in items],
            self.strings[stmt],
        )

    def decorators(self, rows: list[Any]) -> list[Decorator]:
        return [Decorator(self.values[v], Span(*s)) for v, s in rows]

    def function(self, row: list[Any]) -> FunctionSummary:
        name, qualname, span, decorators, params, class_name, is_async, events = row
        return FunctionSummary(
            name,
            qualname,
            Span(*span),
            self.decorators(decorators),
            [Param(n, a, self.value(d)) for n, a, d in params],
            class_name,
            is_async,
            [self.event(e) for e in events],
        )

    def cls(self, row: list[Any]) -> ClassSummary:
        name, qualname, span, bases, decorators, attributes, methods, inner = row
        return ClassSummary(
            name,
            qualname,
            Span(*span),
            [self.values[b] for b in bases],
            self.decorators(decorators),
            {k: self.values[v] for k, v in attributes},
            methods,
            {k: self.cls(v) for k, v in inner},
        )


def decode(text: str) -> FileSummary:
    """The summary :func:`encode` wrote. Raises ``ValueError`` (or ``KeyError``,
    ``TypeError``, ``IndexError``) on anything else: the cache treats that as a miss."""
    version, rows, strings, body = json.loads(text)
    if version != VERSION:
        raise ValueError(f"summary codec version {version}, expected {VERSION}")
    dec = _Decoder(rows, strings)
    path, module, imports, assigns, functions, classes, module_events, err = body
    return FileSummary(
        path,
        module,
        dict(imports),
        {k: dec.values[v] for k, v in assigns},
        {k: dec.function(f) for k, f in functions},
        {k: dec.cls(c) for k, c in classes},
        [dec.event(e) for e in module_events],
        None if err is None else ParseError(err[0], err[1], err[2]),
    )

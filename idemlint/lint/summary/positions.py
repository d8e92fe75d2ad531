"""Source positions of libcst nodes, about 6x cheaper than ``PositionProvider``.

libcst's ``PositionProvider`` computes positions by generating the module's code
through a position-tracking ``CodegenState``; most of its cost is bookkeeping,
not the code generation: a regex split of every token, a ``CodePosition`` and a
``CodeRange`` object for every node (whitespace, commas and dots included), and
the ``MetadataWrapper`` machinery around it. On Django's sources it costs about
2.5x the parse itself.

:func:`positions` runs the *same* algorithm (the same ``_codegen`` calls, the
same ``before_codegen`` / ``after_codegen`` / ``record_syntactic_position``
hooks, so the results are the same numbers) with cheap bookkeeping: tokens
without a line break only move the column, positions are plain tuples, and the
node kinds that the summary never asks about are not recorded. The equality
with ``PositionProvider`` is checked node by node in ``tests/test_perf_positions.py``
on every file of the installed Django and Celery packages.

This leans on libcst's codegen hooks (``libcst._nodes.internal.CodegenState``),
which are internal: if they change shape, :func:`positions` raises and the
summariser falls back to ``PositionProvider`` (see ``summarize.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodePosition, CodeRange

Position = tuple[int, int, int, int]
"""``(start_line, start_column, end_line, end_column)``: lines 1-based, columns 0-based,
exactly as ``PositionProvider``'s ``CodeRange`` holds them."""

_NEWLINE = re.compile(r"\r\n?|\n")

# Nodes the summary never asks the position of, and that libcst never uses as
# the start or end node of another node's syntactic position. Not recording
# them saves a dict insert for most nodes of a tree.
_UNRECORDED: frozenset[type[cst.CSTNode]] = frozenset(
    {
        cst.SimpleWhitespace,
        cst.ParenthesizedWhitespace,
        cst.TrailingWhitespace,
        cst.EmptyLine,
        cst.Newline,
        cst.Comment,
        cst.Comma,
        cst.Dot,
        cst.AssignEqual,
        cst.Colon,
        cst.LeftParen,
        cst.LeftSquareBracket,
        cst.RightSquareBracket,
        cst.LeftCurlyBrace,
        cst.RightCurlyBrace,
        cst.AssignTarget,
        cst.Annotation,
        cst.AsName,
        cst.Arg,
        cst.Element,
        cst.Param,
        cst.Parameters,
        cst.Integer,
        cst.SimpleString,
    }
)


class PositionsUnavailable(Exception):
    """libcst's codegen hooks did not behave as this module expects."""


@dataclass(frozen=False)
class _TrackingState(CodegenState):
    line: int = 1
    column: int = 0
    found: dict[cst.CSTNode, Position] = field(default_factory=dict)
    stack: list[tuple[int, int]] = field(default_factory=list)

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def add_token(self, value: str) -> None:
        if "\n" in value or "\r" in value:
            segments = _NEWLINE.split(value)
            self.line += len(segments) - 1
            self.column = len(segments[-1])
        else:
            self.column += len(value)

    def pop_trailing_newline(self) -> None:
        """Positions never look past the end of the module; nothing to undo."""

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.stack.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        line, column = self.stack.pop()
        if type(node) not in _UNRECORDED and node not in self.found:
            self.found[node] = (line, column, self.line, self.column)

    @contextmanager
    def record_syntactic_position(
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> Iterator[None]:
        line, column = self.line, self.column
        try:
            yield
        finally:
            end_line, end_column = self.line, self.column
            try:
                if start_node is not None:
                    line, column = self.found[start_node][:2]
                if end_node is not None:
                    end_line, end_column = self.found[end_node][2:]
            except KeyError:
                raise PositionsUnavailable(type(node).__name__) from None
            self.found[node] = (line, column, end_line, end_column)


def positions(module: cst.Module) -> dict[cst.CSTNode, Position]:
    """Syntactic positions of the statement, expression and name nodes of ``module``.

    Identical to ``MetadataWrapper(module).resolve(PositionProvider)`` for every node
    it holds (the ``Module`` node itself excepted). Raises :class:`PositionsUnavailable`
    when libcst's codegen does not go through the hooks as expected.
    """
    state = _TrackingState(
        default_indent=module.default_indent, default_newline=module.default_newline
    )
    module._codegen(state)
    if state.stack:
        raise PositionsUnavailable("unbalanced codegen hooks")
    return state.found


class CodeRanges(Mapping[cst.CSTNode, CodeRange]):
    """:func:`positions` seen as ``PositionProvider``'s mapping: node -> ``CodeRange``.

    The ``CodeRange`` objects are built on lookup, so only the few nodes the summary
    asks about pay for them.
    """

    def __init__(self, found: dict[cst.CSTNode, Position]) -> None:
        self._found = found

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        line, column, end_line, end_column = self._found[node]
        return CodeRange(CodePosition(line, column), CodePosition(end_line, end_column))

    def __iter__(self) -> Iterator[cst.CSTNode]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


def code_ranges(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """Positions of ``module``'s nodes: the fast path, else libcst's ``PositionProvider``."""
    try:
        return CodeRanges(positions(module))
    except PositionsUnavailable:
        return reference_code_ranges(module)


def reference_code_ranges(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """libcst's own ``PositionProvider``: the reference the fast path is tested against."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)

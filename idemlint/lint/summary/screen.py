"""Whether a file's text may be handed to libcst at all: a cheap check for nesting depth.

libcst parses with a native (Rust) parser, then walks the tree in Python. Neither copes
with very deep nesting: a 490-term ``a + a + ...`` exceeds Python's recursion limit in
libcst's code generation, ``not not ... a`` 10,000 times or a 50,000-long attribute chain
overflows the native stack (the process dies with SIGSEGV, no message), and parse time
grows with the square of the depth (a 100,000-term sum runs for minutes). Real code is
shallow: the deepest file of 34,000 in this machine's site-packages and a Django + Celery
application is 569 syntax-tree levels deep (sympy's generated lookup tables), the next
230; application code stays under 100.

So every file is screened before libcst sees it, and one deeper than :data:`MAX_DEPTH`
becomes a notice instead. The screen is sound for everything that nests:

* ``ast``, in C and at about a twentieth of libcst's cost, measures the syntax tree: its
  construction raises :class:`RecursionError` past the interpreter's recursion limit,
  which is set for the call so that exactly the trees deeper than ``MAX_DEPTH`` fail.
* What ``ast`` keeps flat but libcst nests (``a and b and c``, implicit string
  concatenation, dotted names in imports) and files ``ast`` does not parse (a syntax
  error, deeper parentheses than CPython allows, NUL bytes) go through
  :func:`nesting_estimate`, a token scan that over-estimates depth. It runs only when a
  count of those constructs could reach the limit, or ``ast`` failed: rarely.

Big files are parsed in a separate process with a time limit (see
:mod:`idemlint.lint.run.isolation`); this module only says which (:data:`LARGE`).
"""

from __future__ import annotations

import ast
import re
import sys
import threading
from dataclasses import dataclass
from functools import cache

MAX_DEPTH = 300
"""Deepest syntax tree handed to libcst (in ``ast`` levels). The whole pipeline handles
450 levels under the default recursion limit of 1000 (measured on sums, attribute,
call, subscript, boolean, conditional and lambda chains, elif chains and nested
literals); the margin is for callers that are deep already (flake8, pytest)."""

LARGE = 1_000_000
"""Files of more characters than this are parsed in a separate process with a time
limit when the run would otherwise parse them in its own process."""

_BOOLEAN = r"\b(?:and|or)\b"
_ADJACENT_STRINGS = r"""['"][ \t]*(?:\\?\r?\n[ \t]*)*[rRbBuUfF]{0,2}['"]"""
_DOTTED_RUN = r"(?:\.[ \t\\\r\n]*\w+[ \t]*){" + str(MAX_DEPTH) + "}"
_TOKEN = r"""
    (?P<string>(?P<prefix>[rRbBuUfF]{0,2})
        (?:'''(?:[^'\\]|\\.|'(?!''))*(?:'''|\Z)
          |\"\"\"(?:[^"\\]|\\.|"(?!""))*(?:\"\"\"|\Z)
          |'(?:[^'\\\n]|\\.)*(?:'|$)
          |"(?:[^"\\\n]|\\.)*(?:"|$)))
    |(?P<comment>\#[^\n]*)
    |(?P<open>[(\[{])
    |(?P<close>[)\]}])
    |(?P<continuation>\\\r?\n)
    |(?P<newline>\n[ \t]*)
    |(?P<separator>[,;]|:(?!=)|(?<![=!<>:*/%+\-&|^@~])=(?!=))
    |(?P<operator>\*\*|//|<<|>>|:=|->|[-+*/%@&|^~.<>]
        |\b(?:not|and|or|if|else|lambda|await|yield|in|is|import|from|elif)\b)
    """


@cache
def _pattern(source: str, flags: int = 0) -> re.Pattern[str]:
    """Compiled on first use: a warm run imports this module and never screens."""
    return re.compile(source, flags)


@dataclass(frozen=True)
class Verdict:
    """What the screen found: ``problem`` is "" when libcst may parse the text."""

    problem: str = ""
    line: int = 1
    column: int = 1


OK = Verdict()


def screen(text: str) -> Verdict:
    """Whether libcst may be trusted with ``text``; else why not, and where."""
    return screen_tree(text)[0]


def screen_tree(text: str) -> tuple[Verdict, ast.Module | None]:
    """:func:`screen`, and the ``ast`` tree it parsed on the way (None when ``ast`` could
    not parse the text within :data:`MAX_DEPTH`): a caller that needs the tree too (the
    pre-check's parse check, an outline) parses once."""
    try:
        try:
            probed: ast.Module | None = _probe_ast(text)
        except RecursionError:
            # the limit counts from the caller's depth as the interpreter counts it,
            # which can be more than the frames it sees (calls made from C add to it
            # unseen, as pytest's do): decide again from a fresh thread, whose count
            # starts at zero
            probed = _probe_in_fresh_thread(text)
    except MemoryError:
        return _too_deep(), None
    except (SyntaxError, ValueError) as exc:
        return _unparsed(text, exc), None
    if probed is None:
        return _too_deep(), None
    tree = probed
    if _flat_chains_possible(text) and nesting_estimate(text) > MAX_DEPTH:
        return _too_deep(), tree
    return OK, tree


def _unparsed(text: str, exc: SyntaxError | ValueError) -> Verdict:
    # not Python this interpreter parses: the scan alone decides; a file that is
    # deep as well keeps the interpreter's own syntax error as its notice
    if max(nesting_estimate(text), text.count("elif")) > MAX_DEPTH:
        if isinstance(exc, SyntaxError):
            message = f"{exc.msg} (and more than {MAX_DEPTH} levels deep, not parsed)"
            return Verdict(message, exc.lineno or 1, max(exc.offset or 1, 1))
        return _too_deep()
    return OK


def _too_deep() -> Verdict:
    return Verdict(
        f"too deeply nested to analyse (more than {MAX_DEPTH} levels); "
        "split the expression or the elif chain"
    )


def _stack_depth() -> int:
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


def _probe_ast(text: str) -> ast.Module:
    """Parse ``text`` with ``ast`` under a recursion limit that lets exactly the trees of
    at most :data:`MAX_DEPTH` levels through. CPython builds the tree with three levels
    per unit of the recursion limit, counted from the current depth."""
    depth = _stack_depth()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 5 + MAX_DEPTH // 3)
    try:
        tree = compile(text, "<idemlint>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    finally:
        sys.setrecursionlimit(old)
    assert isinstance(tree, ast.Module)
    return tree


def _probe_in_fresh_thread(text: str) -> ast.Module | None:
    """:func:`_probe_ast` on a new thread (None: deeper than :data:`MAX_DEPTH`). Only a
    file the first probe refused gets here: a deep one, or one near the limit under a
    deep caller, so the thread's start-up is paid rarely."""
    out: list[ast.Module] = []
    errors: list[BaseException] = []

    def probe() -> None:
        try:
            out.append(_probe_ast(text))
        except (RecursionError, MemoryError):
            pass
        except BaseException as exc:  # SyntaxError, ValueError: the caller's to handle
            errors.append(exc)

    worker = threading.Thread(target=probe, name="idemlint-depth-probe")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    return out[0] if out else None


def _flat_chains_possible(text: str) -> bool:
    """Whether ``text`` holds enough of what ``ast`` keeps flat but libcst nests for a
    chain to reach :data:`MAX_DEPTH` (a cheap count, in C)."""
    # each pattern runs only when a count of what every match holds (substrings, quote
    # characters, dots: ``str.count`` is far cheaper than a regex) allows enough matches
    return (
        (
            text.count("and") + text.count("or") >= MAX_DEPTH
            and len(_pattern(_BOOLEAN).findall(text)) >= MAX_DEPTH
        )
        or (
            text.count("'") + text.count('"') >= 2 * MAX_DEPTH
            and len(_pattern(_ADJACENT_STRINGS).findall(text)) >= MAX_DEPTH
        )
        or (text.count(".") >= MAX_DEPTH and _pattern(_DOTTED_RUN).search(text) is not None)
    )


def nesting_estimate(text: str) -> int:
    """An upper bound of how deep libcst's tree of ``text`` nests, from its tokens: each
    bracket opens a level; within a level, every operator, keyword operator, dot or
    string since the last separator (``,`` ``;`` ``:`` ``=``, a new statement) may nest
    one more; a statement's indentation adds its width. Runs in Python: used only when
    :func:`screen` needs it."""
    chain = [0]
    """Operators since the last separator, per open bracket."""
    base = [0]
    """Depth of the enclosing brackets, per open bracket."""
    indent = 0
    deepest = 0
    for match in _pattern(_TOKEN, re.S | re.M | re.X).finditer(text):
        kind = match.lastgroup
        if kind in ("operator", "string"):
            chain[-1] += 1
            here = base[-1] + chain[-1] + indent
            if kind == "string" and "f" in (match.group("prefix") or "").lower():
                here += nesting_estimate(match.group("string")[2:])
            deepest = max(deepest, here)
        elif kind == "open":
            chain[-1] += 1
            base.append(base[-1] + chain[-1])
            chain.append(0)
            deepest = max(deepest, base[-1] + indent)
        elif kind == "close":
            if len(chain) > 1:
                chain.pop()
                base.pop()
        elif kind == "separator":
            chain[-1] = 0
        elif kind == "newline" and len(chain) == 1:
            chain[-1] = 0
            indent = len(match.group()) - 1
    return deepest

"""What the pre-check reads of the functions that register tasks for their callers.

The task finder (:mod:`idemlint.lint.index.tasks`) reads some functions' bodies where
they are *called*:

* a wrapper that registers its parameter as a task (``def enqueue_job(f, *a):
  get_queue().enqueue(f, *a)``, then ``enqueue_job(refresh, 1)`` in a module that never
  spells the queue library's name), also through ``functools.partial``;
* a class whose method does (``Job.enqueue(f)``), or that hands a method of its own to
  one (``Job.enqueue(cls.handle)`` in a base class: each subclass's override of the step
  ``handle`` runs is a task, and a subclass may live in any module).

The pre-check (:mod:`idemlint.lint.files.prefilter`) knows names by what they are bound
to, and a function by what it returns; that says nothing of a wrapper. So the scan also
keeps, per module-level ``def`` and ``class``, the dotted chains of its functions that
may register a task (:func:`body_uses`), and the name graph makes such a definition hot
when those chains reach a name hot by its bindings (:func:`wrapper_names`): a file that
names it may then declare a task.

Soundness, as in the pre-check: a body may be read too wide, never too narrow. A
function may register a task when its text holds the last name of a registering or
scheduling call of the knowledge base (``enqueue``, ``enqueue_call``, ``schedule``...),
or passes an attribute of ``cls`` on; other functions add nothing, which keeps a model
or a view that merely calls a task out of this. Wrappers are followed one level, as the
task finder follows them: a function that calls a wrapper is no wrapper itself.
"""

from __future__ import annotations

import keyword
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping

from idemlint.lint.knowledge import Knowledge

_HEADER = re.compile(r"^([ \t]*)(?:async[ \t]+)?(def|class)[ \t]+([^\W\d]\w*)", re.M)
_SPACES = re.compile(r"[\s\\]+")
OWN = "cls"
"""In a definition's uses: one of its functions hands a method of its class on."""
# `Job.submit(cls.handle, ...)`: a method of the class handed to a call (a method of
# `self` handed on is too common to count; it counts by a registering call's name)
_PASSES_OWN = re.compile(r"[(,][ \t\n]*cls[ \t]*\.[ \t]*[^\W\d]\w*[ \t\n]*[,)]")
_NOT_NAMES = frozenset(keyword.kwlist) | {"self", "cls"}

_WORDS: dict[str, tuple[tuple[str, ...], re.Pattern[str]]] = {}
"""Per trigger pattern (the scan's tag), the registering calls' names (as literals, for a
quick ``in`` test, and as a regex): the knowledge the scan was made with, without handing
the knowledge to every scan."""

Key = tuple[str, str]
"""(module, name), as the pre-check's name graph keys names."""


_APP_METHODS: dict[str, frozenset[str]] = {}
"""Per trigger pattern, the methods that mark a framework's app object (``app.
autodiscover_tasks()``), from the knowledge's ``app-object`` entries."""


def remember(trigger: re.Pattern[str], knowledge: Knowledge) -> None:
    """Keep what scans made with ``trigger`` read of ``knowledge``: the registering
    calls' names, and the methods that mark an app object."""
    _WORDS[trigger.pattern] = (_literals(knowledge), registering(knowledge))
    _APP_METHODS[trigger.pattern] = frozenset(m for a in knowledge.app_objects for m in a.methods)


def app_roots(knowledge: Knowledge) -> list[str]:
    """The methods marking an app object, as trigger roots: a module that configures one
    (``app = app_class("x"); app.autodiscover_tasks()``) may declare tasks."""
    return [m for a in knowledge.app_objects for m in a.methods]


def app_bindings(
    text: str, chains: Iterable[str], trigger: re.Pattern[str] | None
) -> list[tuple[str, str]]:
    """``app.autodiscover_tasks``: ``app`` may stand for a framework's app whatever built
    it (the task finder reads it so, :class:`~idemlint.lint.knowledge.AppObject`), so it
    is bound to the method's name, a trigger root: a module decorating with ``@app.task``
    may declare a task."""
    methods = _APP_METHODS.get(trigger.pattern) if trigger is not None else None
    if not methods or not any(m in text for m in methods):
        return []
    out = []
    for chain in chains:
        root, _, rest = chain.partition(".")
        if rest and rest.rpartition(".")[2] in methods:
            out.append((root, rest.rpartition(".")[2]))
    return out


def _tails(knowledge: Knowledge) -> set[str]:
    tails = {r.call.rsplit(".", 1)[-1] for r in knowledge.task_registrations}
    tails |= {c.call.rsplit(".", 1)[-1] for c in knowledge.schedule_calls}
    return {t for t in tails if t.rstrip("*").isidentifier()}


def _literals(knowledge: Knowledge) -> tuple[str, ...]:
    """Words one of which every text that may register a task holds (``cls`` for one
    handing its own method on)."""
    return (*sorted({t.rstrip("*") for t in _tails(knowledge)}), "cls")


def registering(knowledge: Knowledge) -> re.Pattern[str]:
    """A regex finding a registering or scheduling call's last name (``enqueue``,
    ``enqueue_call``, ``async_task``, ``schedule``) in a text, as a whole identifier
    (``enqueue*``: any identifier it starts)."""
    words = sorted(
        re.escape(t[:-1]) + r"\w*" if t.endswith("*") else re.escape(t) + r"(?!\w)"
        for t in _tails(knowledge)
    )
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + ")") if words else re.compile(r"(?!)")


def body_uses(
    text: str, chain: re.Pattern[str], trigger: re.Pattern[str] | None
) -> dict[str, set[str]]:
    """Each module-level ``def`` or ``class`` with the dotted chains (matches of
    ``chain``) of its functions that may register a task. A method counts for its class:
    other modules look the class up, never the method.

    A body runs from its ``def`` to the decorators of the next definition no deeper:
    code after it at a shallower depth is counted too, which keeps more, never less (a
    string or a bracket that dedents cannot cut it short). A definition's own decorators
    are not its text (``@app.task`` makes a task, not a wrapper)."""
    found = _WORDS.get(trigger.pattern) if trigger is not None else None
    if found is None:
        return {}
    literals, words = found
    if not any(w in text for w in literals) or (
        words.search(text) is None and _PASSES_OWN.search(text) is None
    ):
        return {}
    spots = [(m.start(), m.group(0)) for m in chain.finditer(text)]
    starts = [pos for pos, _ in spots]
    open_: list[tuple[int, int, bool, str]] = []
    spans: list[tuple[int, int, bool, str]] = []
    for m in _HEADER.finditer(text):
        pos, indent = m.start(), len(m.group(1).expandtabs())
        cut = _decorators_start(text, pos, indent)
        while open_ and open_[-1][1] >= indent:
            start, _, is_def, owner = open_.pop()
            spans.append((start, cut, is_def, owner))
        owner = open_[0][3] if open_ else m.group(3)
        open_.append((pos, indent, m.group(2) == "def", owner))
    spans += [(start, len(text), is_def, owner) for start, _, is_def, owner in open_]
    uses: dict[str, set[str]] = {}
    for start, end, is_def, owner in spans:
        body = text[start:end]
        passes_own = _PASSES_OWN.search(body) is not None
        if not is_def or (words.search(body) is None and not passes_own):
            continue
        acc = uses.setdefault(owner, set())
        if passes_own:
            acc.add(OWN)
        for _, text_chain in spots[bisect_left(starts, start) : bisect_left(starts, end)]:
            if text_chain.partition(".")[0].strip() not in _NOT_NAMES:
                acc.add(_SPACES.sub("", text_chain))
        acc.discard(owner)
    return uses


def _decorators_start(text: str, header: int, indent: int) -> int:
    """Where the decorators of the definition at ``header`` begin (``header`` without
    any): back over lines that start with ``@`` at its depth, and the deeper or closing
    lines of their arguments."""
    cut = header
    end = header
    while end > 0:
        start = text.rfind("\n", 0, end - 1) + 1
        line = text[start:end]
        stripped = line.lstrip(" \t")
        depth = len(line[: len(line) - len(stripped)].expandtabs())
        if not stripped.strip() or stripped.startswith("#"):
            pass
        elif stripped.startswith("@") and depth == indent:
            cut = start
        elif depth <= indent and not stripped.startswith((")", "]", "}")):
            break
        end = start
    return cut


# found from the `=` outwards: a pattern that starts at every identifier costs more than
# the rest of the scan (as prefilter's _ASSIGN_VALUE)
_PARTIAL = re.compile(
    r"(?<![=!<>+\-*/%&|^@:])=[ \t]*(?:functools[ \t]*\.[ \t]*)?partial[ \t]*\("
    r"[\s\\]*([^\W\d]\w*(?:[ \t]*\.[ \t]*[^\W\d]\w*)*)"
)
_TARGET = re.compile(r"([^\W\d]\w*)[ \t]*(?::[^=\n]*)?$")


def partial_bindings(text: str) -> list[tuple[str, str]]:
    """``job = partial(JobDecorator, connection=c)``: ``job`` stands for ``JobDecorator``
    too, as the project index reads it (``partial(X, ...)`` stands for ``X``), so a
    module decorating with ``@job(...)`` may declare a task."""
    if "partial" not in text:
        return []
    out = []
    for m in _PARTIAL.finditer(text):
        line = text[text.rfind("\n", 0, m.start()) + 1 : m.start()]
        target = _TARGET.search(line.rstrip())
        if target is not None:
            out.append((target.group(1), _SPACES.sub("", m.group(1))))
    return out


def wrapper_names(
    module_uses: Mapping[str, Mapping[str, set[str]]],
    lookups: Callable[[str, str], set[Key]],
    trigger: re.Pattern[str],
    hot: set[Key],
    modules: set[str],
) -> set[Key]:
    """The definitions that register a task for their callers, given the names ``hot``
    by their bindings: those whose chains reach one (``lookups(module, chain)``: the
    names resolving a chain may look up), and the classes that hand a method of their
    own to such a wrapper (``Job.enqueue(cls.handle)``)."""
    found: set[Key] = set()
    for mod, uses in module_uses.items():
        for name, chains in uses.items():
            key = (mod, name)
            if key in hot:
                continue
            if mod in modules or any(
                trigger.match(c) or not lookups(mod, c).isdisjoint(hot) for c in chains
            ):
                found.add(key)
    templates: set[Key] = set()
    for mod, uses in module_uses.items():
        for name, chains in uses.items():
            key = (mod, name)
            if OWN not in chains or key in hot or key in found:
                continue
            if any(not lookups(mod, c).isdisjoint(found) for c in chains):
                templates.add(key)
    return found | templates

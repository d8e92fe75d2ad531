"""Which files need a full summary: a cheap text scan in front of the libcst pass.

Findings only ever come from code that a task reaches, and the analysis only
looks at a file when resolving a name leads into it. So a file matters when

* it may define or register a task: its resolution can produce a name that a
  task rule of the knowledge base matches (``celery.shared_task``,
  ``rq.Queue().enqueue``, a ``WorkerSettings`` class, a user's own decorator), or
* resolving some name of a file that matters can lead into it (helpers, models,
  their base classes, re-exports, the targets of ``async_task("dotted.path")``).

Every other file gets an empty summary and is never parsed by libcst. On a library
such as Django itself (no tasks) that is nearly every file.

How the scan stays sound (it may keep too much, never too little):

* The names the analysis resolves are built only from the identifiers of the files
  that the resolution passes through, and from their module names. A task rule
  matches a resolved name from its start, so that name starts with the rule's
  literal root (``celery``, ``rq``, ``taskiq``...). **Seeds** are the files whose
  text or module name contains one of those roots, anywhere (comments included).
  The roots come from the knowledge data (built-in plus ``[tool.idemlint]``); a rule
  with no literal root (``*.task``) turns the pre-check off.
* Resolution enters another module ``M`` only to look up the name that follows
  ``M`` in a dotted path (``resolve_global`` on imports, re-exports, class and
  function tables). That lookup can only succeed when the name is an identifier
  of ``M``'s text. So the scan builds, per file, every dotted path resolution could
  form there: each identifier chain with its root replaced by what the root may be
  bound to (imports, relative imports, ``name = dotted.path`` assignments anywhere
  in the file, ``class X(Base)`` bases, the file's own module), followed across
  modules the same way (re-exports of re-exports). Such a path *looks up* name
  ``n`` in module ``M`` when it runs through ``M`` and the segment after ``M`` is
  ``n``, an identifier of ``M``; an **edge** F -> M exists when a path of F does.
* A name ``n`` of module ``M`` is **hot** when one of its bindings starts with a
  task-rule root, or looks up a hot name (a fixpoint over all modules: an app
  object re-exported twice, a task base class two modules away). A file may hold
  a task only if it is a seed or one of its paths looks up a hot name. Those are
  the *candidates*; the files that matter are the candidates and everything
  reachable from them over edges. A file that merely imports a task function
  (a view calling ``.delay()``) is not a candidate: resolving its names never
  yields a task rule's root.
* Dropped files get an empty summary; one that ``ast`` cannot parse is summarised
  in full after all, so its parse error is reported exactly as without the scan.

``tests/test_perf_prefilter.py`` checks that the findings are the same with and
without the pre-check on the fixtures, on generated projects with re-exports,
aliases and string registrations, and ``bench/lint_speed.py`` on real trees.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from idemlint.lint.files.wrappers import (
    app_bindings,
    app_roots,
    body_uses,
    partial_bindings,
    remember,
    wrapper_names,
)
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.summary.model import relative_package

# A pattern that starts with its keyword and checks the word boundary behind it
# (`import(?<!\wimport)`, not `\bimport`) is searched for by that literal, which is 15-25
# times faster than trying `\b` at every position; the matches are the same.

# dotted chains may run over lines inside brackets (`Order.objects\n    .filter`)
_CHAIN = re.compile(r"[^\W\d]\w*(?:(?:\s|\\\n)*\.(?:\s|\\\n)*[^\W\d]\w*)*")
_SPACES = re.compile(r"[\s\\]+")
# `from .x import (a, b as c)` / `from x import a, \` ... / `from . import y`
_FROM = re.compile(
    r"from(?<!\wfrom)(?:[ \t\\\n]+|(?=\.))(\.*)[ \t]*([\w.]*)[ \t\\\n]+import[ \t\\\n]*"
    r"(\([^)]*\)|(?:[^\n\\;]|\\\r?\n)*)"
)
_IMPORT = re.compile(r"import(?<!\wimport)[ \t\\\n]+((?:[^\n\\;()]|\\\r?\n)*)")
# `name = a.b.c` and `name: T = a.b.c`, at any indentation (module and function level),
# and `with a.b as name`. Found from the `=` / `as` outwards: a pattern that starts
# at every identifier costs more than the rest of the scan together.
_ASSIGN_VALUE = re.compile(
    r"(?<![=!<>+\-*/%&|^@:])=(?!=)[\s(\\]*([^\W\d]\w*(?:[ \t]*\.[ \t]*[^\W\d]\w*)*)"
)
_ASSIGN_TARGET = re.compile(r"([^\W\d]\w*)[ \t]*(?::[^=\n]*)?$")
# `class X(Base, mod.Mixin, metaclass=M):` - a class stands for its bases (a task class
# made from a project base class is found through them)
_CLASS = re.compile(r"class(?<!\wclass)[ \t]+([^\W\d]\w*)[ \t]*\((.*?)\)[ \t]*:", re.DOTALL)
_AS_NAME = re.compile(r"[ \t]as[ \t]+([^\W\d]\w*)")
_CHAIN_BEFORE = re.compile(r"([^\W\d]\w*(?:[ \t]*\.[ \t]*[^\W\d]\w*)*)[ \t]*$")
_DEF_OR_RETURN = re.compile(
    r"^([ \t]*)(?:(?:async[ \t]+)?def[ \t]+([^\W\d]\w*)|return[ \t]+"
    r"([^\W\d]\w*(?:[ \t]*\.[ \t]*[^\W\d]\w*)*))",
    re.M,
)
MAX_DEPTH = 12
"""As :data:`idemlint.lint.index.project.MAX_DEPTH`: resolution gives up after this many hops."""


@dataclass
class FileScan:
    """What the pre-check reads off one file's text."""

    module: str
    is_package: bool
    tokens: frozenset[str]
    chains: frozenset[str]
    """Every dotted identifier chain of the text, spaces removed (``a.b.c``, ``x``)."""
    bindings: dict[str, set[str]] = field(default_factory=dict)
    """Local name -> dotted paths it may stand for (imports, ``x = a.b`` assignments)."""
    text_has_trigger: bool = False
    uses: dict[str, set[str]] = field(default_factory=dict)
    """``def``/``class`` name -> the dotted chains of its text: what the task finder may
    read through it (a wrapper's ``queue.enqueue(func)``), not what the name stands for."""
    params: frozenset[str] = frozenset()
    """The parameter names of the file's ``def``s (but ``self``/``cls``): an enqueue on
    one of them may make the function a wrapper that enqueues the task it is passed."""

    def to_json(self) -> str:
        return json.dumps(
            [
                sorted(self.chains),
                {k: sorted(v) for k, v in self.bindings.items()},
                self.text_has_trigger,
                {k: sorted(v) for k, v in self.uses.items()},
                sorted(self.params),
            ],
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, module: str, is_package: bool) -> FileScan:
        chains, bindings, triggered, uses, params = json.loads(text)
        return cls(
            module=module,
            is_package=is_package,
            tokens=_tokens_of(chains),
            chains=_interned(chains),
            bindings={sys.intern(k): set(map(sys.intern, v)) for k, v in bindings.items()},
            text_has_trigger=bool(triggered),
            uses={k: set(v) for k, v in uses.items()},
            params=frozenset(params),
        )


def _tokens_of(chains: Iterable[str]) -> frozenset[str]:
    tokens: set[str] = set()
    for chain in chains:
        tokens.update(map(sys.intern, chain.split(".")))
    return frozenset(tokens)


def _interned(values: Iterable[str]) -> frozenset[str]:
    """One copy of each string across the project's scans: identifiers repeat from file
    to file, and a tree of thousands of files holds millions of them."""
    return frozenset(map(sys.intern, values))


def _names(spec: str) -> list[tuple[str, str]]:
    """``"a.b as c, d"`` -> ``[("a.b", "c"), ("d", "d")]`` (comments and parens dropped)."""
    spec = re.sub(r"#[^\n]*", " ", spec).replace("\\", " ").strip("() \t\r\n")
    out = []
    for item in spec.split(","):
        words = item.split()
        if not words:
            continue
        name = words[0]
        local = words[2] if len(words) >= 3 and words[1] == "as" else name
        out.append((name, local))
    return out


def scan(text: str, module: str, is_package: bool, trigger: re.Pattern[str] | None) -> FileScan:
    """Read the identifiers, dotted chains and name bindings off ``text``."""
    bindings: dict[str, set[str]] = {}

    def bind(local: str, value: str) -> None:
        if local and value:
            bindings.setdefault(local, set()).add(value)

    for m in _FROM.finditer(text):
        dots, base, spec = m.group(1), m.group(2), m.group(3)
        if dots:
            pkg = relative_package(module, is_package, len(dots))
            base = f"{pkg}.{base}" if base and pkg else (base or pkg)
        for name, local in _names(spec):
            if name != "*":
                bind(local, f"{base}.{name}" if base else name)
    for m in _IMPORT.finditer(text):
        for name, local in _names(m.group(1)):
            bind(local, name)
            if local == name and "." in name:
                bind(name.split(".")[0], name.split(".")[0])
    for m in _ASSIGN_VALUE.finditer(text):
        start = m.start()
        line = text[text.rfind("\n", 0, start) + 1 : start]
        value = _SPACES.sub("", m.group(1))
        # the name right before `=`; with an annotation (`x: T = ...`) the regex too
        head = line.rstrip()
        cut = len(head)
        while cut and (head[cut - 1].isalnum() or head[cut - 1] == "_"):
            cut -= 1
        bind(head[cut:], value)
        if ":" in line:
            target = _ASSIGN_TARGET.search(line)
            if target is not None:
                bind(target.group(1), value)
    for name, value in partial_bindings(text):
        bind(name, value)
    for m in _AS_NAME.finditer(text):
        start = m.start()
        line = text[text.rfind("\n", 0, start) + 1 : start]
        found = _CHAIN_BEFORE.search(line)
        if found is not None:
            bind(m.group(1), _SPACES.sub("", found.group(1)))
    for m in _CLASS.finditer(text):
        for base in _CHAIN.findall(m.group(2)):
            bind(m.group(1), _SPACES.sub("", base))
    # `def make_app(): ... return app`: a function stands for what it returns, as the
    # project index resolves a factory's result (``Project.returned_by``)
    stack: list[tuple[int, str]] = []
    for m in _DEF_OR_RETURN.finditer(text):
        indent = len(m.group(1).expandtabs())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if m.group(2) is not None:
            stack.append((indent, m.group(2)))
        elif stack and m.group(3):
            bind(stack[-1][1], _SPACES.sub("", m.group(3)))
    raw = set(_CHAIN.findall(text))
    chains = {_SPACES.sub("", c) if any(w in c for w in " \t\n\r\\") else c for c in raw}
    for name, value in app_bindings(text, chains, trigger):
        bind(name, value)
    triggered = trigger is not None and (
        has_trigger(trigger, text) or trigger.search(module) is not None
    )
    return FileScan(
        module=module,
        is_package=is_package,
        tokens=_tokens_of(chains),
        chains=_interned(chains),
        bindings={sys.intern(k): set(map(sys.intern, v)) for k, v in bindings.items()},
        text_has_trigger=triggered,
        uses=body_uses(text, _CHAIN, trigger),
        params=_parameters(text),
    )


_DEF_PARAMS = re.compile(r"def(?<!\wdef)\s+\w+\s*\(([^)]*)\)")
_PARAM_NAME = re.compile(r"\s*\**\s*([^\W\d]\w*)")


def _parameters(text: str) -> frozenset[str]:
    """The parameter names of every ``def`` in ``text`` (an over-approximation: a
    default holding a call, or a tuple annotation, adds a name or two)."""
    names: set[str] = set()
    for m in _DEF_PARAMS.finditer(text):
        for piece in m.group(1).split(","):
            found = _PARAM_NAME.match(piece)
            if found is not None:
                names.add(found.group(1))
    return frozenset(names - SELF_NAMES)


def _literal_root(glob: str) -> str:
    """The literal text a glob's matches start with, up to its first segment's end."""
    m = re.match(r"[^\W\d]\w*", glob)
    return m.group(0) if m else ""


def trigger_roots(knowledge: Knowledge) -> list[str] | None:
    """The literal roots of every task rule; ``None`` when a rule has none (no pre-check)."""
    globs: list[str] = []
    for td in knowledge.task_decorators:
        if knowledge.uses_framework(td.framework):
            globs.append(td.name)
    for tc in knowledge.task_classes:
        if knowledge.uses_framework(tc.framework):
            globs.append(tc.base)
    for reg in knowledge.task_registrations:
        if knowledge.uses_framework(reg.framework):
            globs.append(reg.call)
    for tl in knowledge.task_lists:
        if knowledge.uses_framework(tl.framework):
            globs.append(tl.class_name)
    for sc in knowledge.schedule_calls:  # `*.add_periodic_task`: the method's name
        globs.append(sc.call if _literal_root(sc.call) else sc.call.rsplit(".", 1)[-1])
    roots = []
    for glob in globs:
        root = _literal_root(glob)
        if not root:
            return None
        roots.append(root)
    # files that configure how tasks run twice: project-wide settings by name
    roots += [n for setting in knowledge.delivery_settings for n in setting.names]
    roots += app_roots(knowledge)
    return sorted(set(roots))


def _dict_keys(knowledge: Knowledge) -> list[str]:
    """Regexes for the string keys of schedule dicts (``"task": ...`` in a beat schedule)."""
    return [rf"""["']{re.escape(sd.key)}["']\s*:""" for sd in knowledge.schedule_dicts]


def trigger_pattern(knowledge: Knowledge) -> re.Pattern[str] | None:
    """A regex finding any task-rule root in a text; ``None`` means "keep every file"."""
    roots = trigger_roots(knowledge)
    if roots is None:
        return None
    if not roots:
        return re.compile(r"(?!)")  # no task rules at all: nothing can be a task
    # a resolved name's first segment is a whole identifier (of some text, or the
    # start of a module name), so a root only counts at an identifier's start
    words = r"(?<!\w)(?:" + "|".join(re.escape(r) for r in roots) + ")"
    pattern = re.compile("|".join([words, *_dict_keys(knowledge)]))
    _LITERALS[pattern.pattern] = (*roots, *(sd.key for sd in knowledge.schedule_dicts))
    remember(pattern, knowledge)
    return pattern


_LITERALS: dict[str, tuple[str, ...]] = {}
"""Per trigger pattern, the words any match of it contains (its roots and keys)."""


def has_trigger(trigger: re.Pattern[str], text: str) -> bool:
    """``trigger.search(text)``, about 2.5 times faster: most files hold none of the
    pattern's words, and ``in`` tells that quicker than the regex (Python's ``re`` tries
    every alternative at every position)."""
    words = _LITERALS.get(trigger.pattern)
    if words is not None and not any(w in text for w in words):
        return False
    return trigger.search(text) is not None


class TooComplex(Exception):
    """The name graph is too tangled to follow cheaply: keep every file."""


class _Graph:
    """Edges between modules, from the dotted paths resolution could form in each file.

    Per module, ``local[name]`` is what a name may stand for *within* the module
    (imports, relative imports, ``name = a.b`` anywhere in it, the module's own
    ``module.name``), found by a small fixpoint over its own bindings. A path that
    runs through another project module is followed there by the edges; the one
    thing edges cannot carry is a suffix written in *this* file appended to a module
    (or package) that a name of the other module stands for (``from G import pkg``
    then ``pkg.sub.Thing``). ``exports[(G, name)]`` holds those module-like values of
    ``G``'s names, themselves followed through re-exports by a fixpoint across modules.
    """

    def __init__(self, scans: Sequence[FileScan]) -> None:
        self.scans = scans
        self.by_module: dict[str, list[int]] = {}
        for i, sc in enumerate(scans):
            self.by_module.setdefault(sc.module, []).append(i)
        self.module_tokens: dict[str, frozenset[str]] = {}
        self.module_bindings: dict[str, dict[str, set[str]]] = {}
        self.module_uses: dict[str, dict[str, set[str]]] = {}
        for mod, idx in self.by_module.items():
            if len(idx) == 1:  # the file's own (read only from here on), not a copy
                self.module_tokens[mod] = scans[idx[0]].tokens
                self.module_bindings[mod] = scans[idx[0]].bindings
                self.module_uses[mod] = scans[idx[0]].uses
                continue
            self.module_tokens[mod] = frozenset().union(*(scans[i].tokens for i in idx))
            merged: dict[str, set[str]] = {}
            uses: dict[str, set[str]] = {}
            for i in idx:
                for name, values in scans[i].bindings.items():
                    merged.setdefault(name, set()).update(values)
                for name, values in scans[i].uses.items():
                    uses.setdefault(name, set()).update(values)
            self.module_bindings[mod] = merged
            self.module_uses[mod] = uses
        self._modules(self.by_module)
        self.local = {mod: self._local(mod) for mod in self.by_module}
        self.exports = self._exports()

    def _modules(self, modules: Iterable[str]) -> None:
        """What the project's module names say (top packages, every package prefix)."""
        modules = list(modules)
        self.tops = {m.split(".")[0] for m in modules}
        self.children: dict[str, list[str]] = {}
        for mod in modules:
            parent = mod.rpartition(".")[0]
            if parent:
                self.children.setdefault(parent, []).append(mod)
        self.prefixes: set[str] = set()
        for mod in modules:
            parts = mod.split(".")
            self.prefixes.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        self.depth = max(m.count(".") + 1 for m in modules) if modules else 1
        self._through_memo: dict[str, set[str]] = {}
        self._lookups_memo: dict[str, list[tuple[str, str]]] = {}
        self._file_lookups: dict[int, set[tuple[str, str]]] = {}

    def tokens(self, module: str) -> frozenset[str] | None:
        """The identifiers of a module's text (None when no file holds the module)."""
        return self.module_tokens.get(module)

    def _cut(self, path: str) -> str | None:
        """``path`` cut to the segments a module lookup can use; ``None`` when it starts
        at no project package (then it never leads into a project module)."""
        parts = path.split(".", self.depth + 1)
        if parts[0] not in self.tops:
            return None
        return ".".join(parts[: self.depth + 1])

    def roots(self, module: str, name: str) -> set[str]:
        """The project paths ``name`` may stand for in ``module``."""
        found = self.local[module].get(name)
        if found is not None:
            return found
        return {p for p in (self._cut(name), f"{module}.{name}") if p is not None}

    def _local(self, module: str) -> dict[str, set[str]]:
        bindings = self.module_bindings[module]
        out: dict[str, set[str]] = {}
        for n in bindings:
            out[n] = {p for p in (self._cut(n), f"{module}.{n}") if p is not None}
        for _ in range(MAX_DEPTH):
            changed = False
            for name, values in bindings.items():
                acc = out[name]
                before = len(acc)
                for value in values:
                    root, _, rest = value.partition(".")
                    if root == name or root not in out:
                        cut = self._cut(value)
                        if cut is not None:
                            acc.add(cut)
                        continue
                    suffix = f".{rest}" if rest else ""
                    for r in list(out[root]):
                        cut = self._cut(r + suffix)
                        if cut is not None:
                            acc.add(cut)
                changed |= len(acc) != before
            if not changed:
                break
        return out

    def _module_like(self, path: str) -> bool:
        return path in self.prefixes

    def _exports(self) -> dict[tuple[str, str], set[str]]:
        exports: dict[tuple[str, str], set[str]] = {}
        for mod, names in self.local.items():
            for name, values in names.items():
                like = {v for v in values if self._module_like(v)}
                if like:
                    exports[(mod, name)] = like
        for _ in range(MAX_DEPTH):
            changed = False
            for values in list(exports.values()):
                added = set()
                for value in values:
                    added |= self._through_exports(value, exports) - values
                added = {v for v in added if self._module_like(v)}
                if added:
                    values |= added
                    changed = True
            if not changed:
                break
        return exports

    def _through_exports(self, path: str, exports: dict[tuple[str, str], set[str]]) -> set[str]:
        """``path`` with any ``G.name`` prefix replaced by the module-like values of
        ``G``'s ``name`` (one hop)."""
        out = {path}
        parts = path.split(".")
        if parts[0] not in self.tops:
            return out
        for i in range(1, len(parts)):
            values = exports.get((".".join(parts[:i]), parts[i]))
            if values:
                rest = ".".join(parts[i + 1 :])
                out.update(f"{v}.{rest}" if rest else v for v in values)
        return out

    def through_exports(self, path: str) -> set[str]:
        found = self._through_memo.get(path)
        if found is None:
            found = self._through_memo[path] = self._through_exports(path, self.exports)
        return found

    def lookups_in(self, path: str) -> list[tuple[str, str]]:
        """(module, name) for each project module that prefixes ``path`` and holds an
        identifier equal to the segment after it: the lookups resolving ``path`` may do."""
        found = self._lookups_memo.get(path)
        if found is not None:
            return found
        parts = path.split(".")
        out = []
        if parts[0] in self.tops:
            for i in range(1, len(parts)):
                mod = ".".join(parts[:i])
                tokens = self.tokens(mod)
                if tokens is not None and parts[i] in tokens:
                    out.append((mod, parts[i]))
                elif mod in self.children and f"{mod}.{parts[i]}" not in self.prefixes:
                    # a package re-exporting a submodule's name (`from .jobs import *`):
                    # resolution looks it up in the submodule that defines it
                    for child in self.children[mod]:
                        held = self.tokens(child)
                        if held is not None and parts[i] in held:
                            out.append((child, parts[i]))
        self._lookups_memo[path] = out
        return out

    def lookups(self, i: int, *, memo: bool = True) -> set[tuple[str, str]]:
        """The (module, name) lookups the resolution of file ``i``'s names may do
        (remembered unless ``memo`` is False)."""
        found = self._file_lookups.get(i)
        if found is None:
            found = self._lookups(i)
            if memo:
                self._file_lookups[i] = found
        return found

    def chain_lookups(self, module: str, chain: str) -> set[tuple[str, str]]:
        """The (module, name) lookups resolving one chain of ``module`` may do (as
        :meth:`lookups` does for every chain of a file)."""
        local = self.local[module]
        root, _, rest = chain.partition(".")
        own = f"{module}.{root}"
        if root not in local and root not in self.tops and own not in self.prefixes:
            return {(module, root)}
        out: set[tuple[str, str]] = set()
        suffix = f".{rest}" if rest else ""
        for r in self.roots(module, root):
            if r == own and own not in self.prefixes:
                out.add((module, root))
                continue
            path = self._cut(r + suffix)
            if path is not None:
                for p in self.through_exports(path):
                    out.update(self.lookups_in(p))
        return out

    def _lookups(self, i: int) -> set[tuple[str, str]]:
        scan = self.scans[i]
        local = self.local[scan.module]
        # the file's own `module.name` paths: its own module, and the ancestors
        # whose text holds the next segment of the module's name
        out: set[tuple[str, str]] = set(self.lookups_in(scan.module))
        seen: set[str] = set()
        for chain in scan.chains:
            root, _, rest = chain.partition(".")
            if (
                root not in local
                and root not in self.tops
                and f"{scan.module}.{root}" not in self.prefixes
            ):
                out.add((scan.module, root))  # stands for `module.root`: its own module
                continue
            suffix = f".{rest}" if rest else ""
            own = f"{scan.module}.{root}"
            for r in self.roots(scan.module, root):
                if r == own and own not in self.prefixes:
                    # the file's own `module.root`: nothing but its own module (and its
                    # ancestors, added above) can follow; resolution never walks it
                    out.add((scan.module, root))
                    continue
                path = self._cut(r + suffix)
                if path is None or path in seen:
                    continue
                seen.add(path)
                for p in self.through_exports(path):
                    out.update(self.lookups_in(p))
        for values in scan.bindings.values():
            for value in values:
                out.update(self.lookups_in(value))
        return out


class _OneFileGraph(_Graph):
    """The graph as one file sees it, for its own lookups only: the module names of the
    project, the ``exports`` of the last full pre-check (valid while no binding changed),
    and the identifiers of other modules read on demand."""

    def __init__(
        self,
        scan: FileScan,
        modules: Iterable[str],
        exports: dict[tuple[str, str], set[str]],
        tokens_of: Callable[[str], frozenset[str] | None],
    ) -> None:
        self.scans = [scan]
        self.by_module = {scan.module: [0]}
        self.module_tokens = {scan.module: scan.tokens}
        self.module_bindings = {scan.module: {k: set(v) for k, v in scan.bindings.items()}}
        self._tokens_of = tokens_of
        self._modules(modules)
        self.local = {scan.module: self._local(scan.module)}
        self.exports = exports

    def tokens(self, module: str) -> frozenset[str] | None:
        if module not in self.module_tokens:
            found = self._tokens_of(module)
            if found is None:
                return None
            self.module_tokens[module] = found
        return self.module_tokens[module]


def edge_modules(
    scan: FileScan,
    modules: Iterable[str],
    exports: dict[tuple[str, str], set[str]],
    tokens_of: Callable[[str], frozenset[str] | None],
) -> set[str]:
    """The modules resolving the names of one file may enter (its edges), computed without
    the whole graph: for a re-check where this file changed but no binding anywhere did
    (see :meth:`idemlint.lint.run.precheck.PreCheck.still_needed`)."""
    return {mod for mod, _ in _OneFileGraph(scan, modules, exports, tokens_of).lookups(0)}


def _trigger_names(
    graph: _Graph, trigger: re.Pattern[str]
) -> tuple[set[tuple[str, str]], set[str]]:
    """The (module, name) pairs whose resolution may start with a task-rule root, and the
    modules whose own name does (every name of theirs may)."""
    modules = {m for m in graph.by_module if trigger.match(m)}
    hot: set[tuple[str, str]] = set()
    users: dict[tuple[str, str], set[tuple[str, str]]] = {}
    todo: list[tuple[str, str]] = []
    for mod, bindings in graph.module_bindings.items():
        local = graph.local[mod]
        for name, values in bindings.items():
            key = (mod, name)
            if mod in modules or any(trigger.match(v) for v in values):
                hot.add(key)
                todo.append(key)
                continue
            for value in values:
                users.setdefault((mod, value.partition(".")[0]), set()).add(key)
            own = f"{mod}.{name}"
            for path in local.get(name, ()):
                if path == own and own not in graph.prefixes:
                    continue  # the name itself: depends on nothing else
                for p in graph.through_exports(path):
                    for dep in graph.lookups_in(p):
                        users.setdefault(dep, set()).add(key)
    _spread(hot, users, todo)
    # a def or class whose functions register a task for its callers (wrappers.py)
    todo += wrapper_names(graph.module_uses, graph.chain_lookups, trigger, hot, modules)
    hot.update(todo)
    _spread(hot, users, todo)
    return hot, modules


def _spread(
    hot: set[tuple[str, str]],
    users: dict[tuple[str, str], set[tuple[str, str]]],
    todo: list[tuple[str, str]],
) -> None:
    """Mark hot every name that uses a hot one, from ``todo`` on (emptied)."""
    while todo:
        for user in users.get(todo.pop(), ()):
            if user not in hot:
                hot.add(user)
                todo.append(user)


def needed_files(
    scans: Sequence[FileScan],
    trigger: re.Pattern[str],
    keep: dict[str, object] | None = None,
    *,
    consume: bool = False,
    enqueue_tails: frozenset[str] = frozenset(),
) -> set[int]:
    """Indexes of the files that need a full summary (see the module docstring).
    ``keep["exports"]`` receives the graph's exports (what :func:`edge_modules` needs),
    ``keep["candidates"]`` the files that may declare a task (the others are kept only
    for what resolution reads of them: the run looks for no declaration there). With
    ``consume``, each scan's chains are let go of once read (the caller has no further
    use for them: a big tree's memory stays flat).

    A file that calls one of ``enqueue_tails`` on a dotted name (``x.delay(...)``) and
    whose paths lead into a candidate's module is kept too, with what it reaches: it may
    enqueue a task defined there, which is how the task finder learns that the task's
    messages can run at the same time (a ``concurrent`` mechanism; a view calling
    ``.delay()`` is such a file). It is not a candidate (it declares nothing else);
    ``keep["enqueuers"]`` receives those files: the run reads only their enqueue sites.
    A file whose paths lead into a candidate's module and into the module of such a file
    that enqueues through a parameter or a local (:func:`_enqueues_a_local`) is a
    candidate: it may pass a task to a project function that enqueues it, which only its
    full summary shows."""
    if not any(s.text_has_trigger for s in scans):
        if keep is not None:
            keep["candidates"] = set()
            keep["enqueuers"] = set()
        return set()  # no file can hold a task: no finding can come from any file
    graph = _Graph(scans)
    if keep is not None:
        keep["exports"] = graph.exports
    hot, hot_modules = _trigger_names(graph, trigger)
    # candidates: seeds, and files with a name that may stand for a task rule's root;
    # each file's lookups are made once, and only the modules they enter are kept (the
    # lookups of thousands of files would be most of the run's memory)
    candidates = set()
    edges: dict[int, set[str]] = {}
    enqueuers: list[int] = []
    wrappers: set[str] = set()
    for i, sc in enumerate(scans):
        lookups = graph.lookups(i, memo=False)
        edges[i] = {sys.intern(mod) for mod, _ in lookups}
        if enqueue_tails and _enqueues(sc, enqueue_tails):
            enqueuers.append(i)
            if _enqueues_a_local(sc, enqueue_tails):
                wrappers.add(sc.module)
        if consume:
            sc.chains = frozenset()  # read once: memory stays flat on a big tree
        if sc.text_has_trigger or sc.module in hot_modules:
            candidates.add(i)
            continue
        if any(lookup in hot or lookup[0] in hot_modules for lookup in lookups):
            candidates.add(i)
    task_modules = {scans[i].module for i in candidates}
    # a file that passes a task to a project function that enqueues it (`dispatch(task,
    # ...)` where `dispatch` calls `task.apply_async()`): it reaches a module that
    # enqueues through a name it does not bind at module level (a parameter, a local
    # built from one), and one that holds tasks
    candidates.update(
        i
        for i, found in edges.items()
        if found & task_modules and (found & wrappers or scans[i].module in wrappers)
    )
    enqueuing = {i for i in enqueuers if i not in candidates and edges[i] & task_modules}
    if keep is not None:
        keep["candidates"] = set(candidates)
        keep["enqueuers"] = set(enqueuing)
    # needed: the candidates, the enqueuers and everything their resolution can reach
    needed: set[int] = set()
    todo = [*candidates, *enqueuing]
    while todo:
        i = todo.pop()
        if i in needed:
            continue
        needed.add(i)
        for mod in edges[i]:
            todo.extend(graph.by_module.get(mod, ()))
    # a module name shared by several files: all of them or none (the project
    # keeps the first one it sees, so dropping one would change which one that is)
    for idx in graph.by_module.values():
        if any(i in needed for i in idx):
            needed.update(idx)
    return needed


def _enqueues(scan: FileScan, tails: frozenset[str]) -> bool:
    """``scan`` has a dotted chain ending in an enqueue method (``task.delay``)."""
    if scan.tokens.isdisjoint(tails):
        return False
    return any(c.rpartition(".")[2] in tails for c in scan.chains if "." in c)


def _enqueues_a_local(scan: FileScan, tails: frozenset[str]) -> bool:
    """``scan`` has an enqueue chain whose first name, followed through the file's
    bindings, ends at a parameter of one of its functions (``def dispatch(task): sig =
    make(task); sig.apply_async()``): the file may hold a function that enqueues the task
    it is passed. An imported task (``from app.tasks import send``) is bound, not a
    parameter; ``self``/``cls`` are the class's own."""
    for chain in scan.chains:
        head, _, tail = chain.rpartition(".")
        if head and tail in tails and _from_a_parameter(scan, head.split(".", 1)[0], 4):
            return True
    return False


def _from_a_parameter(scan: FileScan, name: str, depth: int) -> bool:
    if name in SELF_NAMES or name in scan.uses:
        return False
    bound = scan.bindings.get(name)
    if not bound:
        return name in scan.params
    if depth <= 0:
        return False
    return (
        any(
            _from_a_parameter(scan, first, depth - 1)
            for first in {path.split(".", 1)[0].split("(", 1)[0] for path in bound}
            if first and first != name
        )
        or name in scan.params
    )


SELF_NAMES = frozenset({"self", "cls"})


def enqueue_tails(knowledge: Knowledge) -> frozenset[str]:
    """The methods that enqueue a message for a task object (``<task>.delay``)."""
    return frozenset(
        e.call.removeprefix("<task>.")
        for e in knowledge.effects
        if e.kind == "enqueue"
        and e.call.startswith("<task>.")
        and e.call.removeprefix("<task>.").isidentifier()
    )


def select(
    texts: Sequence[tuple[str, str, bool]],
    knowledge: Knowledge,
    *,
    stored: Callable[[int, str], str | None] | None = None,
    store: Callable[[int, str, str], None] | None = None,
) -> set[int] | None:
    """Indexes of the ``(text, module, is_package)`` entries that need a full summary.

    ``None`` when the knowledge has a task rule without a literal root: then every
    file is needed and the scan is not worth doing. ``stored(i, tag)`` and
    ``store(i, tag, text)`` let the caller keep each file's scan (in
    :meth:`FileScan.to_json` form) between runs; ``tag`` names the trigger the
    scan was made with.
    """
    trigger = trigger_pattern(knowledge)
    if trigger is None:
        return None
    if not any(has_trigger(trigger, t) or trigger.search(m) for t, m, _ in texts):
        return set()  # no file can hold a task, so no finding can come from any file
    tag = trigger.pattern
    scans = []
    for i, (text, module, is_package) in enumerate(texts):
        found = stored(i, tag) if stored is not None else None
        if found is not None:
            try:
                scans.append(FileScan.from_json(found, module, is_package))
                continue
            except (ValueError, TypeError, AttributeError):
                pass  # a damaged entry: scan again
        result = scan(text, module, is_package, trigger)
        if store is not None:
            store(i, tag, result.to_json())
        scans.append(result)
    try:
        return needed_files(scans, trigger, enqueue_tails=enqueue_tails(knowledge))
    except TooComplex:
        return None

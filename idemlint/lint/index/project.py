"""The project index: every file's summary, and name resolution across files.

Resolution turns a path as written (``"app.task"``, ``"session.add"``) into the
qualified path the knowledge base speaks (``"celery.Celery().task"``,
``"sqlalchemy.orm.Session().add"``) by following imports, module-level
assignments, local assignments, parameters' annotations and ``self``. Project
classes keep their own qualified name; :meth:`Project.candidates` also offers them
under their kind (``<django-model>``, ``<sa-model>``, ``<model>``, ``<task>``), which
is how the knowledge base names "any model" without the engine knowing Django.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar

from idemlint.lint.index.deps import Tracker
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.summary.model import ClassSummary, FileSummary, FunctionSummary, Value

_SEG = re.compile(r"[.(\[]")
_BOUNDARY = re.compile(r"(?=[.(\[])")
MAX_DEPTH = 12
MAX_OVERRIDES = 8
"""A method overridden in more project subclasses than this is not fanned out to them."""
PARTIALS = frozenset({"functools.partial"})
DYNAMIC_LOOKUPS = frozenset({"getattr", "import_module", "importlib.import_module"})
"""Calls that pick a value by a name known only at run time."""


def split_root(path: str) -> tuple[str, str]:
    m = _SEG.search(path)
    return (path[: m.start()], path[m.start() :]) if m else (path, "")


def last_segment(path: str) -> str:
    """``"a.b().c"`` -> ``"c"``; ``"a.b()"`` -> ``"b"``."""
    stripped = path.rstrip("()[]")
    return stripped.rsplit(".", 1)[-1]


@dataclass
class ModelInfo:
    """What the project's models declare unique."""

    qualname: str
    kind: str
    fields: set[str] = field(default_factory=set)
    unique_sets: list[frozenset[str]] = field(default_factory=list)

    def is_unique(self, lookup_fields: Iterable[str]) -> bool:
        given: set[str] = set()
        for name in lookup_fields:
            name = self._norm(name)
            given.add(name)
            # a foreign key matches by its column too: `customer_id=` is `customer=`
            given.add(name[:-3] if name.endswith("_id") else f"{name}_id")
        return any(s <= given for s in self.unique_sets)

    @staticmethod
    def _norm(name: str) -> str:
        return "id" if name == "pk" else name


class FunctionRef:
    """A project function: its qualified name and the file it is in; the summary is
    loaded when first asked for (a call target that the walk never follows, past its
    depth, costs nothing)."""

    __slots__ = ("_file", "_func", "_load", "path", "qualified")

    def __init__(
        self,
        qualified: str,
        file: FileSummary | None = None,
        func: FunctionSummary | None = None,
        *,
        path: str | None = None,
        load: Callable[[], tuple[FileSummary, FunctionSummary]] | None = None,
    ) -> None:
        self.qualified = qualified
        self._file, self._func, self._load = file, func, load
        self.path = path if path is not None else (file.path if file is not None else "")

    def _loaded(self) -> tuple[FileSummary, FunctionSummary]:
        if self._file is None or self._func is None:
            assert self._load is not None
            self._file, self._func = self._load()
        return self._file, self._func

    @property
    def file(self) -> FileSummary:
        return self._loaded()[0]

    @property
    def func(self) -> FunctionSummary:
        return self._loaded()[1]


class ModuleScope(Protocol):
    """What resolving a module-level name reads of a file: a full summary, or the
    :class:`FileIndex` of one that was not loaded."""

    @property
    def path(self) -> str: ...
    @property
    def module(self) -> str: ...
    @property
    def imports(self) -> Mapping[str, str]: ...
    @property
    def assigns(self) -> Mapping[str, Value]: ...
    @property
    def functions(self) -> Collection[str]: ...
    @property
    def classes(self) -> Collection[str]: ...


@dataclass(frozen=True)
class FileIndex:
    """What the project index needs of a file without holding its summary: an
    incremental re-check (:mod:`idemlint.lint.run.snapshot`) builds the index from these and
    loads a summary only when the analysis asks about the file's functions or
    classes. Its module-level names (imports, assignments) are here too: resolving a
    name through a module is most of what the analysis asks of other files."""

    path: str
    module: str
    functions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    error: bool = False
    imports: Mapping[str, str] = field(default_factory=dict)
    raw_assigns: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Module-level assignments in :meth:`Value.to_dict` form, decoded on first use."""
    raw_bases: Mapping[str, list[Any]] = field(default_factory=dict, compare=False)
    """Each class's bases (by name within the module), in the same form."""

    @cached_property
    def assigns(self) -> dict[str, Value]:
        return {k: Value.from_dict(v) for k, v in self.raw_assigns.items()}

    @cached_property
    def bases(self) -> dict[str, list[Value]]:
        return {k: [Value.from_dict(b) for b in v] for k, v in self.raw_bases.items()}

    @classmethod
    def of(cls, f: FileSummary) -> FileIndex:
        index = cls(
            f.path,
            f.module,
            tuple(f.functions),
            tuple(f.classes),
            f.error is not None,
            dict(f.imports),
            {k: v.to_dict() for k, v in f.assigns.items()},
            {k: [b.to_dict() for b in c.bases] for k, c in f.classes.items()},
        )
        # already decoded: no need to again
        index.__dict__["assigns"] = f.assigns
        index.__dict__["bases"] = {k: c.bases for k, c in f.classes.items()}
        return index


T = TypeVar("T")


class _Table(Generic[T]):
    """Qualified name -> a function or class of the project, made on first use.

    Every lookup records the file it reads (see :class:`idemlint.lint.index.deps.Tracker`); a
    lookup that finds nothing records the files whose module could define the name."""

    def __init__(self, project: Project, make: Callable[[Project, str, str, str], T]) -> None:
        self._project = project
        self._make = make
        self.where: dict[str, tuple[str, str]] = {}
        """Qualified name -> (file path, name within the module)."""
        self._made: dict[str, T] = {}

    def get(self, name: str) -> T | None:
        loc = self.where.get(name)
        if loc is None:
            self._project.touch_definers(name)
            return None
        self._project.tracker.touch(loc[0])
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = self._make(self._project, loc[0], loc[1], name)
        return made

    def __contains__(self, name: object) -> bool:
        """Whether the project defines ``name`` (records the file read; loads nothing)."""
        if not isinstance(name, str):
            return False
        loc = self.where.get(name)
        if loc is None:
            self._project.touch_definers(name)
            return False
        self._project.tracker.touch(loc[0])
        return True

    def names(self) -> list[str]:
        """Every qualified name (reads no file)."""
        return list(self.where)


def _function_ref(project: Project, path: str, qual: str, name: str) -> FunctionRef:
    def load() -> tuple[FileSummary, FunctionSummary]:
        file = project.file(path)
        return file, file.functions[qual]

    return FunctionRef(name, path=path, load=load)


def _class_entry(
    project: Project, path: str, qual: str, name: str
) -> tuple[FileSummary, ClassSummary]:
    file = project.file(path)
    return (file, file.classes[qual])


class Project:
    """All summaries of one project root, indexed for resolution.

    ``summaries`` holds each file's summary, or only its :class:`FileIndex` with
    ``load`` to read the summary when the analysis first needs it."""

    def __init__(
        self,
        summaries: Iterable[FileSummary | FileIndex],
        knowledge: Knowledge,
        load: Callable[[str], FileSummary] | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.tracker = Tracker()
        self._load = load
        self._loaded: dict[str, FileSummary] = {}
        self.index: list[FileIndex] = []
        self._index_by_path: dict[str, FileIndex] = {}
        self.modules: dict[str, str] = {}
        """Module name -> the path of the file that holds it (the first one seen)."""
        self._module_paths: dict[str, list[str]] = {}
        self._tops: set[str] = set()
        self.functions: _Table[FunctionRef] = _Table(self, _function_ref)
        self.classes: _Table[tuple[FileSummary, ClassSummary]] = _Table(self, _class_entry)
        for entry in summaries:
            if isinstance(entry, FileSummary):
                self._loaded[entry.path] = entry
                entry = FileIndex.of(entry)
            self.index.append(entry)
            self._index_by_path[entry.path] = entry
            if entry.error:
                continue
            self.modules.setdefault(entry.module, entry.path)
            self._module_paths.setdefault(entry.module, []).append(entry.path)
            self._tops.add(entry.module.split(".", 1)[0])
            for qual in entry.functions:
                self.functions.where[f"{entry.module}.{qual}"] = (entry.path, qual)
            for qual in entry.classes:
                self.classes.where[f"{entry.module}.{qual}"] = (entry.path, qual)
        self._resolve_cache: dict[tuple[str, str, str], tuple[str, frozenset[str]]] = {}
        self._locals_cache: dict[str, dict[str, list[Value]]] = {}
        self._kinds: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self.task_names: dict[str, str] = {}
        """Task function -> its framework (filled in by :mod:`idemlint.lint.index.tasks`)."""
        self._models: dict[str, tuple[ModelInfo | None, frozenset[str]]] = {}
        self._definers: dict[str, tuple[str, ...]] = {}
        self._class_prefixes: dict[str, tuple[tuple[str, str] | None, frozenset[str]]] = {}
        self._children: dict[str, list[str]] | None = None
        """Package -> its direct submodules (made on first use)."""
        self._init_attrs: dict[tuple[str, str], tuple[str | None, frozenset[str]]] = {}
        self._subclass_map: dict[str, list[str]] | None = None
        """Project class -> the project classes that name it as a base (made on first use)."""
        self._subclass_paths: frozenset[str] = frozenset()
        """The files the subclass index was read from: what any answer from it depends on."""

    # -- files -------------------------------------------------------------
    def file(self, path: str) -> FileSummary:
        """The summary of the file at ``path`` (loaded on first use)."""
        found = self._loaded.get(path)
        if found is None:
            if self._load is None:
                raise KeyError(path)
            found = self._loaded[path] = self._load(path)
        return found

    @property
    def files(self) -> list[FileSummary]:
        """Every file's summary (loads them all)."""
        return [self.file(e.path) for e in self.index]

    def scope_of(self, path: str) -> ModuleScope:
        """The module-level names of the file at ``path``: its summary if loaded, else its
        index entry (no load)."""
        return self._loaded.get(path) or self._index_by_path[path]

    def module_file(self, module: str) -> FileSummary | None:
        path = self.modules.get(module)
        return None if path is None else self.file(path)

    def module_scope(self, module: str) -> ModuleScope | None:
        """The module-level names of a module: its summary if loaded, else its index
        entry (no load)."""
        path = self.modules.get(module)
        if path is None:
            return None
        return self._loaded.get(path) or self._index_by_path[path]

    def touch_definers(self, name: str) -> None:
        """Record the files whose module is a prefix of ``name``: an edit of one of them
        could define it."""
        if not self.tracker.frames:
            return
        found = self._definers.get(name)
        if found is None:
            paths: list[str] = []
            if name.split(".", 1)[0] in self._tops:
                parts = name.split(".")
                for i in range(1, len(parts)):
                    paths.extend(self._module_paths.get(".".join(parts[:i]), ()))
            found = self._definers[name] = tuple(paths)
        if found:
            self.tracker.merge(found)

    # -- resolution --------------------------------------------------------
    def locals_of(self, file: FileSummary, func: FunctionSummary) -> dict[str, list[Value]]:
        """Local name -> every value assigned to it, in source order."""
        self.tracker.touch(file.path)
        key = f"{file.module}:{func.qualname}"
        cached = self._locals_cache.get(key)
        if cached is not None:
            return cached
        out: dict[str, list[Value]] = {}
        for ev in func.events:
            if ev.type == "assign" and ev.op is None and ev.value is not None:
                if len(ev.targets) == 1 and "." not in ev.targets[0]:
                    out.setdefault(ev.targets[0], []).append(ev.value)
                elif len(ev.targets) > 1 and ev.value.kind == "call" and ev.value.path:
                    # `obj, created = M.objects.get_or_create(...)`: items of the result
                    for t in ev.targets:
                        if "." not in t and "[" not in t:
                            out.setdefault(t, []).append(Value("attr", path=f"{ev.value.path}()[]"))
            elif ev.type == "branch" and ev.kind == "with":
                for item, name in zip(ev.items, ev.targets, strict=True):
                    if name and "." not in name:
                        out.setdefault(name, []).append(item)
            elif ev.type == "branch" and ev.kind == "for":
                for name in ev.targets:
                    out.setdefault(name, []).append(Value("other"))
        self._locals_cache[key] = out
        return out

    def resolve(
        self,
        path: str,
        file: ModuleScope,
        func: FunctionSummary | None = None,
        depth: int = 0,
        seen: frozenset[str] = frozenset(),
    ) -> str:
        """Qualified path of ``path`` as written in ``func`` (or at module level) of ``file``."""
        if seen:
            return self._resolve(path, file, func, depth, seen)
        return self.tracker.memo(
            self._resolve_cache,
            (file.module, func.qualname if func else "", path),
            lambda: self._resolve(path, file, func, depth, seen),
        )

    def _resolve(
        self,
        path: str,
        file: ModuleScope,
        func: FunctionSummary | None,
        depth: int,
        seen: frozenset[str],
    ) -> str:
        if depth > MAX_DEPTH:
            return path
        self.tracker.touch(file.path)
        root, rest = split_root(path)
        if func is not None:
            assert isinstance(file, FileSummary)  # a function comes with its summary
            nested = f"{file.module}.{func.qualname}.{root}"
            if nested in self.functions:
                return nested + rest
            local = self.locals_of(file, func).get(root)
            # a local is followed once per function: the same name in a function this
            # one's value comes from (`jira = connect()` in both) is another local
            own = f"{nested}:"
            if local is not None and own not in seen:
                for value in reversed(local):
                    if value.path is not None and split_root(value.path)[0] == root:
                        continue  # `qs = qs.filter(...)`: the earlier binding says more
                    base = self.resolve_value(value, file, func, depth + 1, seen | {own})
                    return base + rest if base else path
                return path
            for param in func.params:
                if param.name != root:
                    continue
                if func.class_name and param is func.params[0] and not _is_static(func):
                    if root == "cls" or _is_classmethod(func):
                        return f"{file.module}.{func.class_name}{rest}"
                    return self.instance_path(f"{file.module}.{func.class_name}", rest, depth)
                if param.annotation:
                    ann = self.resolve(param.annotation, file, None, depth + 1)
                    return self.instance_path(ann, rest, depth)
                return path
        resolved = self.resolve_global(root, file, depth + 1)
        if resolved is not None and rest and resolved in self.modules:
            # `from .. import celeryconf` then `celeryconf.app.task`: the rest is looked
            # up in that module (`app` is bound there), not appended to its name
            return self.resolve_qualified(resolved + rest, depth + 1)
        return (resolved if resolved is not None else root) + rest

    def resolve_alternatives(
        self, path: str, file: FileSummary, func: FunctionSummary | None = None
    ) -> list[str]:
        """Other qualified paths ``path`` may denote besides :meth:`resolve`'s: its root is
        a module-level name (here, or imported from a project module) that branches of an
        ``if``/``try`` bind to different values (:attr:`Value.alts`). ``if settings.PROD:
        sender = Smtp() else: sender = Console()`` makes ``sender.send`` both classes'
        ``send``, so what the branch not taken last in the source does is seen too."""
        root, rest = split_root(path)
        if func is not None and (
            root in self.locals_of(file, func)
            or any(p.name == root for p in func.params)
            or f"{file.module}.{func.qualname}.{root}" in self.functions
        ):
            return []
        primary = self.resolve(path, file, func)
        out: list[str] = []
        for found in self._global_alternatives(root, file, rest, 0):
            if found != primary and found not in out:
                out.append(found)
        return out

    def _global_alternatives(
        self, name: str, scope: ModuleScope, rest: str, depth: int
    ) -> list[str]:
        if depth > MAX_DEPTH:
            return []
        self.tracker.touch(scope.path)
        if name in scope.classes or name in scope.functions:
            return []
        value = scope.assigns.get(name)
        if value is not None:
            if not value.alts:
                return []
            out = []
            for alt in [value, *value.alts]:
                resolved = self.resolve_value(alt, scope, None, depth + 1)
                if resolved:
                    out.append(resolved + rest)
            return out
        imported = scope.imports.get(name)
        if imported is None:
            return []
        # `from .sender import email_sender`, or `from . import sender` then
        # `sender.email_sender.send`: the name bound in the module it comes from
        parts = f"{imported}{rest}".split(".")
        for i in range(len(parts) - 1, 0, -1):
            target = self.module_scope(".".join(parts[:i]))
            if target is not None:
                tail = "".join(f".{p}" for p in parts[i + 1 :])
                return self._global_alternatives(parts[i], target, tail, depth + 1)
        return []

    def instance_path(self, cls: str, rest: str, depth: int) -> str:
        """``rest`` read on an instance of ``cls``: ``.client.tickets.create`` on a class
        whose ``__init__`` sets ``self.client = Zenpy(...)`` is ``zenpy.Zenpy().tickets.create``,
        so what the library call means applies to a client kept in an attribute."""
        if not rest.startswith(".") or depth > MAX_DEPTH:
            return f"{cls}(){rest}"
        attr, _, more = rest[1:].partition(".")
        bound = self.init_attribute(cls, attr) if attr.isidentifier() else None
        if bound is not None:
            return f"{bound}{'.' if more else ''}{more}"
        return f"{cls}(){rest}"

    def init_attribute(self, cls: str, attr: str) -> str | None:
        """What ``__init__`` of project class ``cls`` (or of a project base) binds
        ``self.<attr>`` to, when it is one call that resolves: ``Zenpy(...)`` ->
        ``"zenpy.Zenpy()"``. A model field or any other value says nothing here."""
        if cls not in self.classes:
            return None
        return self.tracker.memo(
            self._init_attrs, (cls, attr), lambda: self._init_attribute(cls, attr)
        )

    def _init_attribute(self, cls: str, attr: str) -> str | None:
        init = self.method(cls, "__init__")
        if init is None:
            return None
        func, file = init.func, init.file
        self_name = func.params[0].name if func.params else "self"
        values = [
            ev.value
            for ev in func.events
            if ev.type == "assign"
            and ev.op is None
            and ev.targets == [f"{self_name}.{attr}"]
            and ev.value is not None
        ]
        if len(values) == 1 and values[0].kind == "name" and values[0].path:
            # `def __init__(self, sender: Sender = default): self.sender = sender`: the
            # attribute holds what the parameter's annotation says, an instance of it
            param = next((p for p in func.params[1:] if p.name == values[0].path), None)
            if param is None or not param.annotation:
                return None
            # at depth 0: the answer is memoised by name, whatever the depth it was asked at
            ann = self.resolve(param.annotation, file, None)
            if not ann or not all(p.isidentifier() for p in ann.split(".")):
                return None
            return f"{ann}()"
        if len(values) != 1 or values[0].kind != "call" or not values[0].path:
            return None
        if split_root(values[0].path)[0] == self_name:
            return None
        resolved = self.resolve_value(values[0], file, func, MAX_DEPTH - 2)
        if not resolved or resolved.startswith(cls):
            return None
        return resolved

    def overrides(self, resolved: str) -> list[FunctionRef]:
        """The overrides of the project method ``resolved`` calls on an instance of a
        project class (``Sender().send``) in that class's project subclasses, nearest
        first: a receiver typed by an annotation may be any subclass, and the base's
        method is often abstract (``...``, ``raise NotImplementedError``) while the
        overrides do the work. None when more than :data:`MAX_OVERRIDES` override it:
        such a base is too general to say which ones run."""
        cp = self.class_prefix(resolved)
        if cp is None:
            return []
        cls, rest = cp
        name = last_segment(rest)
        if rest != f"().{name}" or not name.isidentifier():
            return []
        out: list[FunctionRef] = []
        for sub in self.subclasses(cls):
            ref = self.functions.get(f"{sub}.{name}")
            if ref is not None:
                out.append(ref)
                if len(out) > MAX_OVERRIDES:
                    return []
        return out

    def subclasses(self, cls: str) -> list[str]:
        """The project subclasses of project class ``cls``, direct and indirect, nearest
        first. Any file could declare one, so the answer depends on every file; the
        reverse index of bases is made once per run. Only the files the analysis reads
        are in it: a subclass in a module that nothing a task reaches imports (so the
        pre-check, :mod:`idemlint.lint.files.prefilter`, leaves it out) is not seen."""
        children = self._subclass_index()
        out: list[str] = []
        todo = list(children.get(cls, ()))
        while todo:
            sub = todo.pop(0)
            if sub in out or sub == cls:
                continue
            out.append(sub)
            todo.extend(children.get(sub, ()))
        return out

    def _subclass_index(self) -> dict[str, list[str]]:
        if self._subclass_map is None:
            children: dict[str, list[str]] = {}
            paths: set[str] = set()
            self.tracker.open()
            try:
                for entry in self.index:
                    # any file, edited, could come to declare a subclass
                    paths.add(entry.path)
                    if entry.error or not entry.classes:
                        continue
                    scope: ModuleScope = self._loaded.get(entry.path) or entry
                    for qual, bases in entry.bases.items():
                        for base in bases:
                            resolved = self.resolve_value(base, scope, None)
                            if resolved:
                                resolved = resolved.removesuffix("[]")
                            if resolved and resolved in self.classes:
                                sub = f"{entry.module}.{qual}"
                                children.setdefault(resolved, []).append(sub)
            finally:
                paths |= self.tracker.close()
            self._subclass_paths = frozenset(paths)
            self._subclass_map = children
        self.tracker.merge(self._subclass_paths)
        return self._subclass_map

    def resolve_global(self, name: str, file: ModuleScope, depth: int) -> str | None:
        """A module-level name of ``file``, qualified; ``None`` when the module lacks it."""
        if depth > MAX_DEPTH:
            return None
        self.tracker.touch(file.path)
        if name in file.classes or name in file.functions:
            return f"{file.module}.{name}"
        if name in file.imports:
            return self.resolve_qualified(file.imports[name], depth + 1)
        if name in file.assigns:
            value = file.assigns[name]
            if value.kind in ("call", "name", "attr") and value.path is not None:
                resolved = self.resolve_value(value, file, None, depth + 1)
                if resolved:
                    return resolved
            return f"{file.module}.{name}"
        return None

    def resolve_qualified(self, qualified: str, depth: int = 0) -> str:
        """Follow a qualified name into the project's modules (re-exports, aliases)."""
        if depth > MAX_DEPTH:
            return qualified
        parts = qualified.split(".")
        for i in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:i])
            target = self.module_scope(module)
            if target is None:
                continue
            name, rest = parts[i], parts[i + 1 :]
            resolved = self.resolve_global(name, target, depth + 1)
            if resolved is None:
                if f"{module}.{name}" in self.modules:
                    continue
                resolved = self._star_export(module, name, depth)
                if resolved is None:
                    return qualified
            return ".".join([resolved, *rest])
        return qualified

    def _star_export(self, package: str, name: str, depth: int) -> str | None:
        """``name`` of a package whose ``__init__`` does not bind it: the one submodule
        that defines it (``from .jobs import *`` re-exports ``Job``: summaries do not keep
        star imports, and a name imported from a package must come from somewhere)."""
        if name.startswith("_") or not name.isidentifier():
            return None
        if self._children is None:
            self._children = {}
            for module in self.modules:
                parent, _, _ = module.rpartition(".")
                if parent:
                    self._children.setdefault(parent, []).append(module)
        found: list[ModuleScope] = []
        for child in self._children.get(package, ()):
            scope = self.module_scope(child)
            if scope is None:
                continue
            self.tracker.touch(scope.path)
            if name in scope.classes or name in scope.functions or name in scope.assigns:
                found.append(scope)
        if len(found) != 1:
            return None
        return self.resolve_global(name, found[0], depth + 1)

    def resolve_value(
        self,
        value: Value,
        file: ModuleScope,
        func: FunctionSummary | None,
        depth: int = 0,
        seen: frozenset[str] = frozenset(),
    ) -> str | None:
        """The qualified path a value denotes: ``Foo(...)`` -> ``"pkg.Foo()"``."""
        if value.path is None:
            return None
        if value.kind == "call":
            callee = self._resolve(value.path, file, func, depth, seen)
            if callee in PARTIALS and value.args:  # partial(X, ...) stands for X
                return self.resolve_value(value.args[0], file, func, depth + 1, seen)
            return self.returned_by(callee, depth, seen) or callee + "()"
        if value.kind in ("name", "attr", "other"):
            return self._resolve(value.path, file, func, depth, seen)
        return None

    def returned_by(self, callee: str, depth: int, seen: frozenset[str]) -> str | None:
        """What a project function returns, when it ends by returning one value that
        resolves (a factory: ``def make_celery(): app = Celery(...); ...; return app``),
        so ``app = make_celery()`` then ``@app.task`` reads as ``celery.Celery().task``."""
        if depth > MAX_DEPTH or callee in seen or callee not in self.functions:
            return None
        ref = self.functions.get(callee)
        if ref is None or ref.func.class_name is not None:
            return None
        returns = [
            ev.value
            for ev in ref.func.events
            if ev.type == "exit" and ev.op == "return" and ev.value is not None
        ]
        # `return None` when there is nothing to make (no configuration, no account) says
        # nothing of what the function makes otherwise; nor does a dynamic lookup beside a
        # default (`return getattr(module, name)` for a configured factory, else
        # `return connect`): what the code returns by default is what is read
        returns = [r for r in returns if r.kind != "none"]
        static = [r for r in returns if not (r.kind == "call" and r.path in DYNAMIC_LOOKUPS)]
        returns = static or returns
        if not returns or any(r.path is None for r in returns):
            return None
        found: list[str] = []
        for value in returns:
            inner = self.resolve_value(value, ref.file, ref.func, depth + 1, seen | {callee})
            if not inner or inner.startswith(callee) or inner.split(".", 1)[0] in ("self", "cls"):
                return None
            found.append(inner)
        if len(found) == 1:
            return found[0]
        # `try: return Badge.objects.get(...) except ...: return Badge.objects.create(...)`:
        # every return is a call made on one project class (an instance of it, fetched or
        # made), so the result stands for the first
        owners = {self.class_prefix(f) for f in found}
        if all(f.endswith(")") for f in found) and len({o[0] if o else "" for o in owners}) == 1:
            owner = next(iter(owners))
            if owner is not None and self.model_info(owner[0]) is not None:
                return found[0]
        return None

    # -- classes, models, tasks --------------------------------------------
    def class_prefix(self, resolved: str) -> tuple[str, str] | None:
        """The longest leading project class in ``resolved``: (class, rest of the path)."""
        return self.tracker.memo(
            self._class_prefixes, resolved, lambda: self._class_prefix(resolved)
        )

    def _class_prefix(self, resolved: str) -> tuple[str, str] | None:
        cuts = [m.start() for m in _BOUNDARY.finditer(resolved)]
        for cut in reversed([*cuts, len(resolved)]):
            head = resolved[:cut]
            if head in self.classes:
                return head, resolved[cut:]
        return None

    def task_prefix(self, resolved: str) -> tuple[str, str] | None:
        cuts = [m.start() for m in _BOUNDARY.finditer(resolved)]
        for cut in reversed([*cuts, len(resolved)]):
            head = resolved[:cut]
            if head in self.task_names:
                return head, resolved[cut:]
        return None

    def class_kinds(self, qualname: str, _seen: frozenset[str] = frozenset()) -> frozenset[str]:
        """Kinds of a project class (``django-model``, ``sa-model``), inherited through bases."""
        if qualname in _seen and qualname not in self._kinds:
            return frozenset()
        return self.tracker.memo(self._kinds, qualname, lambda: self._class_kinds(qualname, _seen))

    def class_base_values(self, qualname: str) -> tuple[ModuleScope, list[Value]] | None:
        """A project class's bases as written, with the module scope they are written in
        (from the index: no summary is loaded for this)."""
        loc = self.classes.where.get(qualname)
        if loc is None:
            self.touch_definers(qualname)
            return None
        path, qual = loc
        self.tracker.touch(path)
        loaded = self._loaded.get(path)
        if loaded is not None:
            return loaded, loaded.classes[qual].bases
        index = self._index_by_path[path]
        return index, index.bases.get(qual, [])

    def _class_kinds(self, qualname: str, _seen: frozenset[str]) -> frozenset[str]:
        entry = self.class_base_values(qualname)
        if entry is None:
            return frozenset()
        file, bases = entry
        kinds: set[str] = set()
        for base in bases:
            resolved = self.resolve_value(base, file, None)
            if resolved is None:
                continue
            kind = next(
                (
                    self.knowledge.model_bases[s]
                    for s in self.library_spellings(resolved)
                    if s in self.knowledge.model_bases
                ),
                None,
            )
            if kind:
                kinds.add(kind)
            elif resolved in self.classes:
                kinds |= self.class_kinds(resolved, _seen | {qualname})
        return frozenset(kinds)

    def class_bases(self, qualname: str) -> list[str]:
        """Resolved bases of a project class, nearest first, project bases expanded."""
        out: list[str] = []
        todo = [qualname]
        while todo:
            current = todo.pop(0)
            entry = self.class_base_values(current)
            if entry is None:
                continue
            file, bases = entry
            for base in bases:
                resolved = self.resolve_value(base, file, None)
                if resolved:
                    # `class Service(Reader[Model])`: a generic base is its class
                    resolved = resolved.removesuffix("[]")
                if resolved and resolved not in out:
                    out.append(resolved)
                    todo.append(resolved)
        return out

    def library_spellings(self, resolved: str) -> list[str]:
        """``resolved``, and the same path through each library base class of the project
        class it starts at: with ``class Queue(rq.Queue)``, ``app.Queue().enqueue`` is also
        ``rq.Queue().enqueue``, so the knowledge about the library applies to the subclass."""
        out = [resolved]
        cp = self.class_prefix(resolved)
        if cp is not None:
            cls, rest = cp
            out += [f"{b}{rest}" for b in self.class_bases(cls) if b not in self.classes]
        return out

    def candidates(self, resolved: str) -> list[str]:
        """``resolved`` plus its spellings under the kinds of the project symbols it starts at."""
        out = self.library_spellings(resolved)
        cp = self.class_prefix(resolved)
        if cp is not None:
            cls, rest = cp
            kinds = self.class_kinds(cls)
            for kind in sorted(kinds):
                out.append(f"<{kind}>{rest}")
            if kinds:
                out.append(f"<model>{rest}")
        tp = self.task_prefix(resolved)
        if tp is not None:
            out.append(f"<task>{tp[1]}")
            out.append(f"<task:{self.task_names[tp[0]]}>{tp[1]}")
        return out

    def model_of(self, resolved: str) -> ModelInfo | None:
        """The model a resolved path is about: ``pkg.models.Order.objects.filter`` and
        ``pkg.models.Order().save`` are Order; ``pkg.models.Order().customer.orders.filter``
        goes through a relation to a model this path does not name, so it is None."""
        cp = self.class_prefix(resolved)
        if cp is None or _through_relation(cp[1]):
            return None
        return self.model_info(cp[0])

    def model_info(self, qualname: str) -> ModelInfo | None:
        return self.tracker.memo(self._models, qualname, lambda: self._model_info(qualname))

    def _model_info(self, qualname: str) -> ModelInfo | None:
        kinds = self.class_kinds(qualname)
        info: ModelInfo | None = None
        if kinds:
            kind = sorted(kinds)[0]
            info = ModelInfo(qualname, kind)
            for cls_name in [*reversed(self.class_bases(qualname)), qualname]:
                entry = self.classes.get(cls_name)
                if entry is not None:
                    self._collect_uniques(info, entry[0], entry[1])
            info.unique_sets.append(frozenset({"id"}))
        return info

    def _collect_uniques(self, info: ModelInfo, file: FileSummary, cls: ClassSummary) -> None:
        for name, value in cls.attributes.items():
            if value.kind != "call" or value.path is None:
                if name == "__table_args__":
                    self._table_args(info, file, value)
                continue
            callee = last_segment(self.resolve(value.path, file))
            is_field = callee.endswith(("Field", "Key")) or callee in (
                "Column",
                "mapped_column",
                "ForeignKey",
                "relationship",
            )
            if not is_field or callee == "relationship":
                continue
            info.fields.add(name)
            if callee in ("ForeignKey", "OneToOneField"):
                info.fields.add(f"{name}_id")
            unique = _truthy(value.kwargs.get("unique")) or _truthy(value.kwargs.get("primary_key"))
            if callee == "OneToOneField" or unique:
                info.unique_sets.append(frozenset({name}))
                if callee in ("ForeignKey", "OneToOneField"):
                    info.unique_sets.append(frozenset({f"{name}_id"}))
                if _truthy(value.kwargs.get("primary_key")):
                    info.unique_sets.append(frozenset({"id"}))
        meta = cls.inner.get("Meta")
        if meta is not None:
            together = meta.attributes.get("unique_together")
            if together is not None:
                groups = together.args if together.kind == "seq" else []
                if groups and all(g.kind == "str" for g in groups):
                    groups = [together]
                for group in groups:
                    names = _str_items(group)
                    if names:
                        info.unique_sets.append(frozenset(names))
            constraints = meta.attributes.get("constraints")
            for c in constraints.args if constraints is not None else []:
                # a conditional constraint (`condition=Q(deleted_at__isnull=True)`) still
                # makes the second of two racing inserts fail: the rows a lookup creates
                # are the ones it covers (live rows), and the loser gets IntegrityError
                if c.kind == "call" and c.path and last_segment(c.path) == "UniqueConstraint":
                    names = _str_items(c.kwargs.get("fields"))
                    if names:
                        info.unique_sets.append(frozenset(names))
        table_args = cls.attributes.get("__table_args__")
        if table_args is not None:
            self._table_args(info, file, table_args)

    def _table_args(self, info: ModelInfo, file: FileSummary, value: Value) -> None:
        for item in value.args if value.kind == "seq" else [value]:
            if item.kind != "call" or item.path is None:
                continue
            name = last_segment(item.path)
            cols = [a.text for a in item.args if a.kind == "str" and a.text]
            if name == "UniqueConstraint" and cols:
                info.unique_sets.append(frozenset(cols))
            elif name == "Index" and _truthy(item.kwargs.get("unique")) and len(cols) > 1:
                info.unique_sets.append(frozenset(cols[1:]))
            elif name == "PrimaryKeyConstraint" and cols:
                info.unique_sets.append(frozenset(cols))

    def method(self, class_qual: str, name: str) -> FunctionRef | None:
        """A method of a project class, looked up through its project bases."""
        for cls in [class_qual, *self.class_bases(class_qual)]:
            ref = self.functions.get(f"{cls}.{name}")
            if ref is not None:
                return ref
        return None

    def function_for_call(self, resolved: str) -> FunctionRef | None:
        """The project function or method a resolved call path runs, if any."""
        ref = self.functions.get(resolved)
        if ref is not None:
            return ref
        cp = self.class_prefix(resolved)
        if cp is None:
            return None
        cls, rest = cp
        if rest == "()":
            return self.method(cls, "__init__")
        name = last_segment(rest)
        if not name.isidentifier() or not _instance_receiver(rest[: -len(name) - 1]):
            # `Model.objects.filter(...).delete()` is the queryset's delete, not the
            # model's `delete()` method
            return None
        return self.method(cls, name)


_RELATION = re.compile(r"\(\)\.\w+\.")
"""An attribute of an instance (``().customer.``), then more: a relation traversal."""


INSTANCE_CALLS = frozenset(
    {"get", "first", "last", "earliest", "latest", "create", "get_or_create", "aget", "afirst"}
)
"""Manager and queryset calls that return a model instance, not another queryset."""


def _instance_receiver(receiver: str) -> bool:
    """What a method is called on, after a project class, is the class or one instance of
    it: ``Cls.m``, ``Cls().m``, ``Cls.objects.get(...).m``, ``Cls.objects.get_or_create()[]``;
    not a manager or a queryset (``Cls.objects.m``, ``Cls.objects.filter(...).m``)."""
    if receiver in ("", "()"):
        return True
    receiver = receiver.removesuffix("[]")
    if not receiver.endswith("()"):
        return False
    return last_segment(receiver[:-2]) in INSTANCE_CALLS


def _through_relation(rest: str) -> bool:
    return _RELATION.search(rest) is not None


def _is_static(func: FunctionSummary) -> bool:
    return any(d.value.path == "staticmethod" for d in func.decorators)


def _is_classmethod(func: FunctionSummary) -> bool:
    return any(d.value.path == "classmethod" for d in func.decorators)


def _truthy(value: Value | None) -> bool:
    return value is not None and not (
        value.kind == "none" or (value.kind == "bool" and value.text == "False")
    )


def _str_items(value: Value | None) -> list[str]:
    if value is None:
        return []
    if value.kind == "str" and value.text:
        return [value.text]
    if value.kind == "seq":
        return [a.text for a in value.args if a.kind == "str" and a.text]
    return []

"""Find the project's tasks: decorated functions, task classes, and registered callables.

Recognition is by resolved name (``from celery import shared_task as st`` and
``app = Celery(); @app.task`` both resolve to a known task decorator), and every
framework's spelling comes from the knowledge base, not from this module.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from idemlint.lint.files.prefilter import enqueue_tails
from idemlint.lint.index.delivery import (
    KINDS,
    REPEATING,
    Mechanism,
    Options,
    Scheduled,
    decorator_mechanisms,
    is_test_path,
    retry_call,
    schedule_targets,
    scheduled_task,
    setting_mechanisms,
    truthy,
)
from idemlint.lint.index.project import (
    PARTIALS,
    FunctionRef,
    ModuleScope,
    Project,
    last_segment,
    split_root,
)
from idemlint.lint.knowledge import Knowledge, TaskDecorator, TaskRegistration
from idemlint.lint.summary.model import Event, FileSummary, FunctionSummary, Span, Value
from idemlint.lint.summary.outline import EnqueueSite, enqueue_call

PHASES = 4
"""Declarations are merged in phase order (decorated functions, task classes and lists,
registrations, then delivery: schedules and project-wide settings), then by file, then
in source order: the first one for a function sets its framework and span; a later one
can only add ways it runs twice (:class:`~idemlint.lint.index.delivery.Mechanism`)."""

DELIVERY_PHASE = 3
ALL_TASKS = "*"
"""A delivery declaration's ``qualified`` prefix for a setting that applies to every
task of its framework (``"*celery"``)."""


@dataclass
class Task:
    name: str
    """Qualified name of the function that runs (``app.tasks.charge``, ``app.tasks.Charge.run``)."""
    framework: str
    span: Span
    """Where task-level findings go: the task decorator's line, else the ``def``/class line."""
    mechanisms: list[Mechanism] = field(default_factory=list)
    """How it can run twice (:mod:`idemlint.lint.index.delivery`); empty: at most once."""
    project: Project | None = field(default=None, repr=False, compare=False)
    _ref: FunctionRef | None = field(default=None, repr=False, compare=False)

    @property
    def retries(self) -> bool:
        """Whether the task's own delivery lets it run the same message twice (a
        ``concurrent`` enqueue only lets two messages overlap)."""
        return any(m.kind in REPEATING for m in self.mechanisms)

    @property
    def retry_reason(self) -> str:
        repeating = [m for m in self.mechanisms if m.kind in REPEATING]
        return repeating[0].words() if repeating else ""

    def add(self, mechanisms: tuple[Mechanism, ...] | list[Mechanism]) -> None:
        for m in mechanisms:
            if m not in self.mechanisms:
                self.mechanisms.append(m)
        self.mechanisms.sort(key=lambda m: KINDS.index(m.kind))

    @property
    def ref(self) -> FunctionRef:
        """The function (its file is loaded on first use: a task whose findings are
        reused from the last run never needs it)."""
        if self._ref is None:
            ref = self.project.functions.get(self.name) if self.project is not None else None
            if ref is None:
                raise LookupError(f"task function {self.name} is not in the project")
            self._ref = ref
        return self._ref

    def record(self) -> tuple[str, str, tuple[int, int, int, int], str]:
        """What the analysis of this task depends on, besides the files it reads."""
        s = self.span
        return (
            self.name,
            self.framework,
            (s.line, s.column, s.end_line, s.end_column),
            json.dumps([m.to_json() for m in self.mechanisms]),
        )


@dataclass(frozen=True)
class TaskRow:
    """A task as ``idemlint tasks`` lists it: what discovery found, without the analysis."""

    name: str
    """Qualified name of the function that runs."""
    framework: str
    path: str
    """Its file, relative to the project root."""
    line: int
    """The task decorator's line, else the ``def``/class line (where its findings go)."""
    mechanisms: tuple[Mechanism, ...]
    """How it can run twice; empty: at most once."""

    @property
    def in_tests(self) -> bool:
        """Declared in a test file or folder (``tests/``, ``test_*.py``, ``conftest.py``)."""
        return is_test_path(self.path)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "framework": self.framework,
            "path": self.path,
            "line": self.line,
            "in_tests": self.in_tests,
            "delivery": [
                {"kind": m.kind, "detail": m.detail, "source": m.source, "resolved": m.resolved}
                for m in self.mechanisms
            ],
        }


def task_row(project: Project, task: Task) -> TaskRow:
    """``task`` as a row of the task listing."""
    path = project.functions.where[task.name][0]
    return TaskRow(task.name, task.framework, path, task.span.line, tuple(task.mechanisms))


@dataclass(frozen=True)
class Declaration:
    """One place that makes a function a task (a decorator, a task class, a registration),
    or that adds a way tasks run twice (a schedule, a project-wide setting)."""

    phase: int
    qualified: str
    framework: str
    span: Span
    mechanisms: tuple[Mechanism, ...]

    def to_json(self) -> list[object]:
        s = self.span
        return [
            self.phase,
            self.qualified,
            self.framework,
            [s.line, s.column, s.end_line, s.end_column],
            [m.to_json() for m in self.mechanisms],
        ]

    @classmethod
    def from_json(cls, data: list[object]) -> Declaration:
        phase, qualified, framework, span, mechanisms = data
        assert isinstance(span, list) and isinstance(mechanisms, list)
        return cls(
            int(str(phase)),
            str(qualified),
            str(framework),
            Span(*(int(x) for x in span)),
            tuple(Mechanism.from_json(m) for m in mechanisms),
        )


def retry_signal(project: Project, ref: FunctionRef) -> str:
    """The task body's retry call as JSON ("" when none): what the snapshot keeps."""
    found = retry_call(project, ref)
    return json.dumps(found.to_json()) if found is not None else ""


Wrapper = tuple[int, str, TaskRegistration, Value, FileSummary, Span]
"""A project function that registers one of its parameters as a task: the parameter's
position at a call site, its name, the registration rule, the registering call (its
options), and where that call is."""

_SELF_CALL = re.compile(r"(?:\(\))?\.([^\W\d]\w*)$")
"""What follows ``self``/``cls`` in a call on the instance: ``.run``, ``().run``."""


class TaskFinder:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.k: Knowledge = project.knowledge
        self._phase = 0
        # a registration's callee ends in one of these names: skip resolving any other call
        self.registration_tails = tuple(
            {last_segment(r.call).split("*", 1)[0] for r in self.k.task_registrations}
        )
        # a task decorator applied as a function (`dramatiq.actor(DeliverTask())`) is
        # called by the last name of one of the decorator rules
        tails = {last_segment(td.name) for td in self.k.task_decorators}
        self.decorator_tails = re.compile(
            "|".join(f"(?:{fnmatch.translate(t)})" for t in sorted(tails)) or "(?!)"
        )
        self._wrappers: dict[str, tuple[list[Wrapper], frozenset[str]]] = {}
        self._subclasses: dict[str, tuple[dict[str, list[str]], frozenset[str]]] = {}
        self._wrapped: dict[str, tuple[list[tuple[str, Value, FileSummary, Span]], frozenset[str]]]
        self._wrapped = {}
        self._apps: dict[tuple[str, str], tuple[list[str], frozenset[str]]] = {}
        self._enqueuers: dict[str, tuple[list[tuple[int, str, str]], frozenset[str]]] = {}
        # `<task>.delay`: the methods that enqueue a message for a task object
        self.enqueue_tails = enqueue_tails(self.k)

        self.found: list[Declaration] = []

    def declarations(self, file: FileSummary) -> list[Declaration]:
        """What makes a function a task in ``file`` (the task may live in another file),
        and the schedules and settings in it that make tasks run twice."""
        self.found = []
        self._phase = 0
        for qual in file.functions:
            ref = self.project.functions.get(f"{file.module}.{qual}")
            if ref is not None and ref.file is file:
                self._decorated(ref)
        self._phase = 1
        for qual, cls in file.classes.items():
            self._task_class(f"{file.module}.{qual}", file, cls.span)
            self._task_list(file, cls.name, cls.attributes)
        self._phase = 2
        self._registrations(file, None, file.module_events)
        for fn in file.functions.values():
            self._registrations(file, fn, fn.events)
        scheduled = schedule_targets(self.project, file)
        self._scheduled(file, scheduled)
        self._phase = DELIVERY_PHASE
        self._delivery(file, scheduled)
        self._enqueues(file)
        return self.found

    def _add(
        self, ref: FunctionRef, framework: str, span: Span, mechanisms: tuple[Mechanism, ...]
    ) -> None:
        if not self.k.uses_framework(framework):
            return
        self.found.append(Declaration(self._phase, ref.qualified, framework, span, mechanisms))

    def _decorated(self, ref: FunctionRef) -> None:
        for dec in ref.func.decorators:
            rule = self._decorator_rule(dec.value, ref.file, None, dec.span)
            if rule is not None:
                self._add(ref, rule[0].framework, dec.span, rule[1])
                return

    def _decorator_rule(
        self, value: Value, file: FileSummary, func: FunctionSummary | None, span: Span
    ) -> tuple[TaskDecorator, tuple[Mechanism, ...]] | None:
        """The task decorator rule ``value`` (a decorator, or the callee and options of a
        decorator applied as a function) is, and the mechanisms its options configure."""
        if value.path is None:
            return None
        resolved = self.project.resolve(value.path, file, func)
        names = [resolved, value.path, *self._app_object(value.path, file, func)]
        alias = self._alias_call(value, file)
        if alias is not None:  # `task_with_retry = shared_task(acks_late=True)`
            names.append(resolved.removesuffix("()"))
        inner: list[tuple[str, Value, FileSummary, Span]] = []
        if resolved in self.project.classes:  # class MyJob(rq.decorators.job)
            names += self.project.class_bases(resolved)
            # a decorator class whose __call__ applies a task decorator
            inner = self._wrapped_calls(f"{resolved}.__call__")
        elif resolved in self.project.functions:  # def actor(**kw): ... dramatiq.actor(fn)
            inner = self._wrapped_calls(resolved)
        names += [name for name, *_ in inner]
        for td in self.k.task_decorators:
            if not td.matcher.match(names):
                continue
            kwargs = value.kwargs if value.kind == "call" else {}
            wrapper: tuple[FileSummary, Span] | None = None
            for name, call, home, at in inner:  # options the wrapper passes itself
                if td.matcher.match([name]) and set(call.kwargs) - {"**"}:
                    kwargs = {**call.kwargs, **kwargs}
                    wrapper = (home, at)
            where, at = wrapper if wrapper is not None else (file, span)
            if alias is not None:  # the alias's options, then the decorator's own
                if not kwargs:  # configured at the alias: point there
                    where, at = alias[0], alias[1]
                kwargs = {**alias[2].kwargs, **kwargs}
            from_base = self._base_class_options(kwargs.get("base"), file)
            mechanisms = decorator_mechanisms(
                self.project, kwargs, where, at, Options.of_decorator(td)
            )
            return td, (*mechanisms, *from_base)
        return None

    def _app_object(self, path: str, file: FileSummary, func: FunctionSummary | None) -> list[str]:
        """``path`` read on a framework's app object that no resolution reaches (``app =
        celery_class("x")`` with the class read from a setting): the module-level name it
        starts at is configured through a method the knowledge names (``app.
        autodiscover_tasks()``), so it stands for that framework's app."""
        if not self.k.app_objects:
            return []
        root, rest = split_root(path)
        if func is not None and root in self.project.locals_of(file, func):
            return []
        marked = self.project.tracker.memo(
            self._apps, (file.path, root), lambda: self._marked_app(root, file)
        )
        return [f"{app}{rest}" for app in marked]

    def _marked_app(self, root: str, file: FileSummary) -> list[str]:
        """What the module-level name ``root`` of ``file`` stands for by the app-object
        methods called on it where it is bound (``["celery.Celery()"]``), if any."""
        home, name = self._binding(root, file)
        if home is None:
            return []
        out: list[str] = []
        for ev in home.module_events:
            if ev.type != "call" or ev.value is None or not ev.value.path:
                continue
            head, _, method = ev.value.path.rpartition(".")
            if head != name:
                continue
            for ao in self.k.app_objects:
                if method in ao.methods and ao.stands_for not in out:
                    out.append(ao.stands_for)
        return out

    def _binding(self, name: str, file: FileSummary) -> tuple[FileSummary | None, str]:
        """The file whose module-level assignment binds ``name`` (followed through
        imports), and the name there."""
        home: FileSummary | None = file
        for _ in range(8):
            if home is None:
                break
            self.project.tracker.touch(home.path)
            if name in home.assigns:
                return home, name
            target = home.imports.get(name)
            if target is None:
                break
            module, _, name = target.rpartition(".")
            home = self.project.module_file(module)
        return None, name

    def _base_class_options(self, base: Value | None, file: FileSummary) -> list[Mechanism]:
        """``@app.task(base=BuildTask)``: the task class's own retry and redelivery
        attributes (``autoretry_for``, ``acks_late``) configure the task too."""
        if base is None or base.path is None or base.kind not in ("name", "attr"):
            return []
        qual = self.project.resolve(base.path, file, None)
        entry = self.project.classes.get(qual)
        if entry is None:
            return []
        bases = self.project.class_bases(qual)
        for tc in self.k.task_classes:
            if tc.base not in bases:
                continue
            attributes = self._class_attributes(qual, bases)
            return list(
                decorator_mechanisms(
                    self.project,
                    attributes,
                    entry[0],
                    entry[1].span,
                    Options.of_class(tc, defaults=False),
                )
            )
        return []

    def _class_attributes(self, qual: str, bases: list[str]) -> dict[str, Value]:
        """A class's attributes with those of its project bases (its own win)."""
        attributes: dict[str, Value] = {}
        for cls in reversed([qual, *bases]):
            entry = self.project.classes.get(cls)
            if entry is not None:
                attributes.update(entry[1].attributes)
        return attributes

    def _alias_call(
        self, value: Value, file: FileSummary
    ) -> tuple[FileSummary, Span, Value] | None:
        """The call a decorator name is bound to at module level (``task_with_retry =
        shared_task(acks_late=True, ...)``, here or in the module it is imported from):
        a configured alias whose options every task it decorates carries."""
        if value.kind not in ("name", "call") or not value.path or "." in value.path:
            return None
        name = value.path
        home: FileSummary | None = file
        if name not in file.assigns and name in file.imports:
            module, _, name = file.imports[name].rpartition(".")
            home = self.project.module_file(module)
        bound = home.assigns.get(name) if home is not None else None
        if home is None or bound is None or bound.kind != "call":
            return None
        self.project.tracker.touch(home.path)
        span = next(
            (
                ev.span
                for ev in home.module_events
                if ev.type == "call"
                and ev.value is not None
                and ev.value.path == bound.path
                and ev.value.kwargs.keys() == bound.kwargs.keys()
            ),
            Span(1, 1, 1, 1),
        )
        return home, span, bound

    def _wrapped_calls(self, decorator: str) -> list[tuple[str, Value, FileSummary, Span]]:
        """Calls a project decorator (or the functions nested in it) makes, resolved, with
        the call: a wrapper such as ``def actor(fn=None, **kw): return dramatiq.actor(fn,
        **kw)``, or a decorator class's ``__call__``."""
        return self.project.tracker.memo(
            self._wrapped, decorator, lambda: self._calls_within(decorator)
        )

    def _calls_within(self, decorator: str) -> list[tuple[str, Value, FileSummary, Span]]:
        out: list[tuple[str, Value, FileSummary, Span]] = []
        for name in self.project.functions.names():
            if name != decorator and not name.startswith(f"{decorator}."):
                continue
            ref = self.project.functions.get(name)
            if ref is None:
                continue
            for ev in ref.func.events:
                if ev.type == "call" and ev.value is not None and ev.value.path:
                    resolved = self.project.resolve(ev.value.path, ref.file, ref.func)
                    out.append((resolved, ev.value, ref.file, ev.span))
        return out

    def _task_class(self, qual: str, file: FileSummary, span: Span) -> None:
        bases = self.project.class_bases(qual)
        for tc in self.k.task_classes:
            if tc.base not in bases:
                continue
            ref = self.project.functions.get(f"{qual}.{tc.method}")
            if ref is None:
                return
            attributes = self._class_attributes(qual, bases)
            mechanisms = decorator_mechanisms(
                self.project, attributes, file, span, Options.of_class(tc)
            )
            self._add(ref, tc.framework, span, mechanisms)
            return

    def _task_list(self, file: FileSummary, class_name: str, attributes: dict[str, Value]) -> None:
        for tl in self.k.task_lists:
            if tl.class_name != class_name or tl.attribute not in attributes:
                continue
            listed = attributes[tl.attribute]
            for item in listed.args if listed.kind == "seq" else []:
                if item.kind == "call":  # `func(f, max_tries=...)`: a registration
                    self._registration(file, None, item)
                else:
                    default = (
                        (Mechanism("redelivery", tl.redelivers_by_default),)
                        if tl.redelivers_by_default
                        else ()
                    )
                    self._register_value(file, None, item, tl.framework, default)

    # -- registrations -----------------------------------------------------
    def _registrations(
        self, file: FileSummary, func: FunctionSummary | None, events: list[Event]
    ) -> None:
        for ev in events:
            if ev.type != "call" or ev.value is None or ev.value.path is None:
                continue
            call, tail = ev.value, last_segment(ev.value.path)
            if tail.startswith(self.registration_tails):
                self._registration(file, func, call, ev.span)
            if call.args and self.decorator_tails.fullmatch(tail):
                self._applied(file, func, call, ev.span)
            inner = self._partial(file, func, call)
            if inner is not None:  # `partial(queue.enqueue, func, ...)`
                self._registration(file, func, inner, ev.span)
            if self._passes_reference(file, func, call):
                self._through_wrapper(file, func, call, ev.span)

    def _partial(
        self, file: FileSummary, func: FunctionSummary | None, call: Value
    ) -> Value | None:
        """``partial(f, a, k=v)`` as the call ``f(a, k=v)`` it stands for."""
        if not call.args or call.path is None or last_segment(call.path) != "partial":
            return None
        first = call.args[0]
        if first.kind not in ("name", "attr") or first.path is None:
            return None
        if self.project.resolve(call.path, file, func) not in PARTIALS:
            return None
        return Value("call", path=first.path, args=call.args[1:], kwargs=dict(call.kwargs))

    def _registration_rule(
        self, file: FileSummary, func: FunctionSummary | None, call: Value
    ) -> tuple[TaskRegistration, Value] | None:
        """The registration rule ``call`` matches, and the value it makes a task."""
        if call.path is None or not last_segment(call.path).startswith(self.registration_tails):
            return None
        resolved = self._through_returns(self.project.resolve(call.path, file, func))
        spellings = self.project.library_spellings(resolved)
        for reg in self.k.task_registrations:
            if not reg.matcher.match(spellings):
                continue
            target = call.kwargs.get(reg.kwarg) if reg.kwarg else None
            if target is None and len(call.args) > reg.arg:
                target = call.args[reg.arg]
            return (reg, target) if target is not None else None
        return None

    def _through_returns(self, resolved: str) -> str:
        """``pkg.get_queue().enqueue`` as ``rq.Queue().enqueue`` when the project's
        ``get_queue`` returns ``Queue(...)``: a queue made by a helper is still a queue."""
        head, sep, rest = resolved.partition("()")
        if not sep or head not in self.project.functions:
            return resolved
        returned = self.project.returned_by(head, 0, frozenset())
        return f"{returned}{rest}" if returned else resolved

    def _registration_mechanisms(
        self, reg: TaskRegistration, call: Value, file: FileSummary, span: Span | None
    ) -> tuple[Mechanism, ...]:
        line = span.line if span is not None else 0
        mechanisms: list[Mechanism] = []
        for kw in reg.retry_kwargs:
            if truthy(call.kwargs.get(kw)):
                detail = f"{kw}= at the {last_segment(call.path or '')}() call"
                mechanisms.append(Mechanism("retry", detail, file.path, line))
                if kw in reg.redelivery_kwargs:
                    mechanisms.append(Mechanism("redelivery", detail, file.path, line))
        if reg.redelivers_by_default:
            mechanisms.append(Mechanism("redelivery", reg.redelivers_by_default, "", 0))
        return tuple(mechanisms)

    def _registration(
        self,
        file: FileSummary,
        func: FunctionSummary | None,
        call: Value,
        span: Span | None = None,
    ) -> None:
        rule = self._registration_rule(file, func, call)
        if rule is None:
            return
        reg, target = rule
        mechanisms = self._registration_mechanisms(reg, call, file, span)
        self._register_value(file, func, target, reg.framework, mechanisms)

    def _applied(
        self, file: FileSummary, func: FunctionSummary | None, call: Value, span: Span
    ) -> None:
        """A task decorator called as a function on what runs: ``deliver =
        dramatiq.actor(DeliverHook(), retry_when=...)``, ``send = app.task(send_mail)``;
        the call's options configure the task as a decorator's would."""
        rule = self._decorator_rule(call, file, func, span)
        if rule is not None:
            self._register_value(file, func, call.args[0], rule[0].framework, rule[1])

    def _passes_reference(
        self, file: FileSummary, func: FunctionSummary | None, call: Value
    ) -> bool:
        """A call that may pass a function to a wrapper: an argument is a name or
        attribute that is neither a local nor a parameter (``enqueue_job(refresh, 1)``),
        or an attribute of ``self``/``cls`` (``Job.enqueue(cls.handle)``)."""
        local: dict[str, list[Value]] | None = None
        for v in (*call.args, *call.kwargs.values()):
            if v.kind not in ("name", "attr") or not v.path:
                continue
            if func is None:
                return True
            root, rest = split_root(v.path)
            params = [p.name for p in func.params]
            if func.class_name and params and root == params[0]:
                if rest[1:].isidentifier():
                    return True
                continue
            if root in params:
                continue
            if local is None:
                local = self.project.locals_of(file, func)
            if root not in local:
                return True
        return False

    def _through_wrapper(
        self, file: FileSummary, func: FunctionSummary | None, call: Value, span: Span
    ) -> None:
        """A call of a project function that registers its parameter as a task, one
        level deep (``def enqueue_job(func, *args): get_queue().enqueue(func, *args)``
        then ``enqueue_job(refresh, 1)``): the argument there is the task."""
        assert call.path is not None
        callee = self.project.resolve(call.path, file, func)
        ref = self.project.function_for_call(callee)
        if ref is None:
            return
        for index, name, reg, inner, home, at in self.wrapper(ref):
            target = call.kwargs.get(name)
            if target is None and 0 <= index < len(call.args):
                target = call.args[index]
            if target is None:
                continue
            options = Value("call", path=inner.path, kwargs=dict(inner.kwargs))
            if "**" in inner.kwargs:  # the wrapper passes the caller's options on
                options.kwargs.update(call.kwargs)
            mechanisms = self._registration_mechanisms(reg, options, home, at)
            self._register_value(file, func, target, reg.framework, mechanisms)

    def wrapper(self, ref: FunctionRef) -> list[Wrapper]:
        """How the project function ``ref`` registers one of its own parameters as a
        task (``queue.enqueue(func, ...)``, also through ``partial``); empty: it does not."""
        return self.project.tracker.memo(self._wrappers, ref.qualified, lambda: self._wrapper(ref))

    def _wrapper(self, ref: FunctionRef) -> list[Wrapper]:
        func, file = ref.func, ref.file
        params = [p.name for p in func.params]
        bound = 1 if func.class_name and not _static(func) else 0  # self / cls
        out: list[Wrapper] = []
        for ev in func.events:
            if ev.type != "call" or ev.value is None or ev.value.path is None:
                continue
            call = self._partial(file, func, ev.value) or ev.value
            rule = self._registration_rule(file, func, call)
            if rule is None:
                continue
            reg, target = rule
            if target.kind == "name" and target.path in params[bound:]:
                index = params.index(target.path) - bound
                out.append((index, target.path, reg, call, file, ev.span))
        return out

    def _register_value(
        self,
        file: FileSummary,
        func: FunctionSummary | None,
        target: Value,
        framework: str,
        mechanisms: tuple[Mechanism, ...],
    ) -> None:
        for ref in self._targets(file, func, target):
            where = ref.func.decorators[0].span if ref.func.decorators else ref.func.span
            self._add(ref, framework, where, mechanisms)

    # -- what a registered value runs --------------------------------------
    def _targets(
        self, file: FileSummary, func: FunctionSummary | None, target: Value
    ) -> list[FunctionRef]:
        """The project functions that run when the registered ``target`` is called: a
        function (by reference or ``"dotted.path"``), the ``__call__`` of a callable
        instance, or, for ``cls.handle`` in a method of a base class, the method each
        subclass gives the template ``handle`` runs (``cls(job).run()``)."""
        if target.kind == "str" and target.text:
            qualified = self.project.resolve_qualified(target.text)
        elif target.path is not None and target.kind in ("name", "attr"):
            qualified = self.project.resolve(target.path, file, func)
        elif target.path is not None and target.kind == "call":
            qualified = self.project.resolve_value(target, file, func) or ""
        else:
            return []
        if func is not None and func.class_name and func.params and target.path:
            root, rest = split_root(target.path)
            method = rest[1:]
            if root == func.params[0].name and rest.startswith(".") and method.isidentifier():
                return self._fan_out(f"{file.module}.{func.class_name}", method)
        ref = self.project.functions.get(qualified)
        if ref is not None:
            return [ref]
        if qualified.endswith("()") and qualified[:-2] in self.project.classes:
            entry = self.project.method(qualified[:-2], "__call__")
            if entry is None:
                return []
            found = self._template_step(qualified[:-2], entry)
            return [found] if found is not None else []
        return []

    def _template_step(self, cls: str, entry: FunctionRef) -> FunctionRef | None:
        """What ``entry`` (a method of ``cls``, maybe inherited) runs for ``cls``: a method
        it calls on its own instance (``self.run()``, ``cls(job).run()``) that ``cls``
        overrides below the class defining ``entry`` (one the definer leaves abstract
        first), else ``entry`` itself; ``None`` when such a step is still abstract for
        ``cls`` (an abstract class runs nothing of its own)."""
        definer = entry.qualified.rsplit(".", 1)[0]
        me = entry.func.params[0].name if entry.func.params else ""
        overridden: list[tuple[bool, FunctionRef]] = []
        for ev in entry.func.events:
            if not me or ev.type != "call" or ev.value is None or not ev.value.path:
                continue
            root, rest = split_root(ev.value.path)
            step = _SELF_CALL.fullmatch(rest) if root == me else None
            if step is None:
                continue
            found = self.project.method(cls, step.group(1))
            if found is None or found.qualified == entry.qualified:
                continue
            if _abstract(found):
                return None
            if found.qualified.rsplit(".", 1)[0] != definer:
                base = self.project.method(definer, step.group(1))
                overridden.append((base is None or _abstract(base), found))
        if overridden:
            return next((f for required, f in overridden if required), overridden[0][1])
        return entry

    def _fan_out(self, base: str, method: str) -> list[FunctionRef]:
        """``cls.<method>`` registered in a method of ``base``: one task per class that
        can stand for ``cls`` (``base`` and its project subclasses), each the step that
        class overrides; abstract classes have none."""
        out: dict[str, FunctionRef] = {}
        for cls in [base, *self.subclasses().get(base, [])]:
            entry = self.project.method(cls, method)
            if entry is None:
                continue
            found = self._template_step(cls, entry)
            if found is not None and (cls == base or found.qualified != entry.qualified):
                out.setdefault(found.qualified, found)
        return list(out.values())

    def subclasses(self) -> dict[str, list[str]]:
        """Project class -> its project subclasses, direct or not (every file's classes
        are read: a subclass may live anywhere)."""
        return self.project.tracker.memo(self._subclasses, "", self._subclass_index)

    def _subclass_index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name in self.project.classes.names():
            for base in self.project.class_bases(name):
                if base in self.project.classes:
                    index.setdefault(base, []).append(name)
        return index

    # -- schedules and settings --------------------------------------------
    def _scheduled(self, file: FileSummary, scheduled: list[Scheduled]) -> None:
        """Schedules that make a plain function a job (rq-scheduler's ``schedule(func=
        ...)``, a ``{"func": f, "interval": 60}`` definition): the schedule registers it."""
        for target, mechanism, func, framework in scheduled:
            if framework:
                self._register_value(file, func, target, framework, (mechanism,))

    def _delivery(self, file: FileSummary, scheduled: list[Scheduled]) -> None:
        """Schedules naming a task, and project-wide settings, found in ``file``."""
        for framework, mechanism in setting_mechanisms(self.project, file):
            if self.k.uses_framework(framework):
                span = Span(mechanism.line, 1, mechanism.line, 1)
                self.found.append(
                    Declaration(self._phase, ALL_TASKS + framework, framework, span, (mechanism,))
                )
        for target, mechanism, func, _ in scheduled:
            qualified = scheduled_task(self.project, target, file, func)
            if qualified is not None:
                span = Span(mechanism.line, 1, mechanism.line, 1)
                self.found.append(Declaration(self._phase, qualified, "", span, (mechanism,)))

    def _enqueues(self, file: FileSummary) -> None:
        """Calls in ``file`` that enqueue a message for a project task (``task.delay(...)``,
        by the enqueue methods the knowledge names): each is a ``concurrent`` mechanism of
        that task (:mod:`idemlint.lint.index.delivery`). Test files enqueue to test, not in
        production: not counted. One per task and file, the first in source order."""
        if not self.enqueue_tails or is_test_path(file.path):
            return
        seen: set[str] = set()
        scopes: list[tuple[FunctionSummary | None, list[Event]]] = [(None, file.module_events)]
        scopes += [(fn, fn.events) for fn in file.functions.values()]
        for func, events in scopes:
            loops = {f"b{e.id}" for e in events if e.type == "branch" and e.kind in LOOPS}
            for ev in events:
                if ev.type != "call" or ev.value is None or not ev.value.path:
                    continue
                call = enqueue_call(ev.value.path, self.enqueue_tails)
                through = None
                if call is None:
                    through = self._enqueued_through(file, func, ev.value)
                    if through is None:
                        continue
                    call = (ev.value.path, "")
                site = EnqueueSite(
                    func.qualname if func is not None else "",
                    func.name if func is not None else "",
                    *call,
                    ev.span.line,
                    bool(loops.intersection(ev.blocks)),
                )
                if through is not None:
                    qualified, shown, how = through
                    self._enqueue(file.path, site, qualified, seen, shown, how)
                    continue
                qualified = self.project.resolve(site.receiver, file, func)
                self._enqueue(file.path, site, qualified, seen)

    def enqueues_of(self, file: ModuleScope, sites: Sequence[EnqueueSite]) -> list[Declaration]:
        """The declarations of a file the pre-check keeps only because it enqueues a task,
        from the enqueue sites its outline lists (:mod:`idemlint.lint.summary.outline`),
        each resolved as a module-level name: what :meth:`declarations` finds in its full
        summary (nothing but these: it is no candidate)."""
        self.found = []
        self._phase = DELIVERY_PHASE
        if self.enqueue_tails and not is_test_path(file.path):
            seen: set[str] = set()
            for site in sites:
                self._enqueue(file.path, site, self.project.resolve(site.receiver, file), seen)
        return self.found

    def _enqueue(
        self,
        path: str,
        site: EnqueueSite,
        qualified: str,
        seen: set[str],
        shown: str = "",
        how: str = "",
    ) -> None:
        """One enqueue site whose receiver resolves to ``qualified``: the ``concurrent``
        mechanism of that task, unless the file has one for it already. ``shown`` and
        ``how``: the call as a message names it and how it enqueues, for a call of a
        project function that enqueues the task it is passed (:meth:`_enqueued_through`)."""
        if qualified in seen or qualified not in self.project.functions:
            return
        seen.add(qualified)
        where = shown or f"`{last_segment(site.receiver)}.{site.tail}()`"
        if site.name:
            where += f" in `{site.name}`"
        if site.in_loop:
            where += ", once per loop pass"
        where += how
        mech = Mechanism("concurrent", where, path, site.line)
        span = Span(site.line, 1, site.line, 1)
        self.found.append(Declaration(self._phase, qualified, "", span, (mech,)))

    def _enqueued_through(
        self, file: FileSummary, func: FunctionSummary | None, call: Value
    ) -> tuple[str, str, str] | None:
        """A call of a project function that enqueues one of its parameters, one level
        deep (``def dispatch(task, *a): sig = task.si(*a); sig.apply_async()`` then
        ``dispatch(send_report, 1)``): the task passed there, and the call as a message
        names it, and how the wrapper enqueues it."""
        assert call.path is not None
        if not self._passes_reference(file, func, call):
            return None
        ref = self.project.function_for_call(self.project.resolve(call.path, file, func))
        if ref is None or ref.func is func:
            return None
        for index, name, tail in self.enqueuer(ref):
            target = call.kwargs.get(name)
            if target is None and 0 <= index < len(call.args):
                target = call.args[index]
            if target is None or target.kind not in ("name", "attr") or not target.path:
                continue
            qualified = self.project.resolve(target.path, file, func)
            if qualified in self.project.functions:
                shown = f"`{last_segment(call.path)}({last_segment(target.path)}, ...)`"
                return qualified, shown, f", which calls `.{tail}()` on it"
        return None

    def enqueuer(self, ref: FunctionRef) -> list[tuple[int, str, str]]:
        """The parameters the project function ``ref`` enqueues a message for, with their
        position at a call site and the enqueue method: it calls one of the enqueue
        methods on the parameter, or on a local built from it (a signature,
        ``sig = make_signature(task, ...)``). Empty: it enqueues none."""
        return self.project.tracker.memo(
            self._enqueuers, ref.qualified, lambda: self._enqueuer(ref)
        )

    def _enqueuer(self, ref: FunctionRef) -> list[tuple[int, str, str]]:
        self.project.tracker.touch(ref.path)
        func = ref.func
        params = [p.name for p in func.params]
        bound = 1 if func.class_name and not _static(func) else 0  # self / cls
        out: list[tuple[int, str, str]] = []
        for param in params[bound:]:
            tainted = {param}
            for ev in func.events:
                if ev.value is None:
                    continue
                if ev.type == "assign" and ev.op is None:
                    if any(v.path and split_root(v.path)[0] in tainted for v in ev.value.walk()):
                        tainted.update(t for t in ev.targets if t.isidentifier())
                    continue
                if ev.type != "call" or not ev.value.path:
                    continue
                receiver, _, tail = ev.value.path.rpartition(".")
                if tail in self.enqueue_tails and receiver and split_root(receiver)[0] in tainted:
                    out.append((params.index(param) - bound, param, tail))
                    break
        return out


LOOPS = ("for", "while")


def _static(func: FunctionSummary) -> bool:
    return any(d.value.path == "staticmethod" for d in func.decorators)


def _abstract(ref: FunctionRef) -> bool:
    """A method with nothing to run: ``@abstractmethod``, or a body that only raises
    ``NotImplementedError`` (or holds nothing but a docstring or ``pass``)."""
    func = ref.func
    if any(
        d.value.path and last_segment(d.value.path) == "abstractmethod" for d in func.decorators
    ):
        return True
    return all(
        ev.type in ("exit", "call")
        and (ev.type == "call" or ev.op == "raise")
        and ev.value is not None
        and last_segment(ev.value.path or "") == "NotImplementedError"
        for ev in func.events
    )


def merge_declarations(
    project: Project,
    declarations: list[list[Declaration]],
    signal: Callable[[Task], str] | None = None,
) -> dict[str, Task]:
    """The project's tasks from every file's declarations (in file order), and sets
    ``project.task_names``. ``signal`` finds the call in a task's body that makes it
    retry (default :func:`retry_signal`), as JSON.

    What a test file configures (a schedule in a test settings module, an enqueue with
    ``retry=`` in a test) comes after what the application's own files do, and adds a
    mechanism only of a kind those did not: a production task's delivery points at
    production code whenever that configures it."""
    tasks: dict[str, Task] = {}
    ordered = [d for found in declarations for d in found if not _from_tests(d)]
    ordered += [d for found in declarations for d in found if _from_tests(d)]
    for phase in range(DELIVERY_PHASE):
        for d in ordered:
            if d.phase != phase:
                continue
            existing = tasks.get(d.qualified)
            if existing is not None:
                existing.add(_kept(existing, d))
                continue
            if d.qualified not in project.functions.where:
                continue
            task = Task(d.qualified, d.framework, d.span, [], project)
            task.add(d.mechanisms)
            called = signal(task) if signal is not None else retry_signal(project, task.ref)
            if called:
                task.add([Mechanism.from_json(json.loads(called))])
            tasks[d.qualified] = task
    for d in ordered:
        if d.phase != DELIVERY_PHASE:
            continue
        if d.qualified.startswith(ALL_TASKS):
            for task in tasks.values():
                if task.framework == d.framework:
                    task.add(_kept(task, d))
        elif d.qualified in tasks:
            tasks[d.qualified].add(_kept(tasks[d.qualified], d))
    project.task_names = {name: t.framework for name, t in tasks.items()}
    return tasks


def _from_tests(d: Declaration) -> bool:
    """A declaration configured in a test file (each of its mechanisms is)."""
    return bool(d.mechanisms) and all(m.path and is_test_path(m.path) for m in d.mechanisms)


def _kept(task: Task, d: Declaration) -> list[Mechanism]:
    """``d``'s mechanisms that ``task`` takes: a test file's only where the task has no
    mechanism of that kind yet."""
    have = {m.kind for m in task.mechanisms}
    return [m for m in d.mechanisms if not (is_test_path(m.path) and m.kind in have)]


def find_tasks(project: Project) -> dict[str, Task]:
    finder = TaskFinder(project)
    return merge_declarations(project, [finder.declarations(f) for f in project.files])

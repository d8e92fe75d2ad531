"""Find the project's tasks: decorated functions, task classes, and registered callables.

Recognition is by resolved name (``from celery import shared_task as st`` and
``app = Celery(); @app.task`` both resolve to a known task decorator), and every
framework's spelling comes from the knowledge base, not from this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from idemlint.lint.index.delivery import (
    KINDS,
    Mechanism,
    Options,
    decorator_mechanisms,
    retry_call,
    schedule_targets,
    scheduled_task,
    setting_mechanisms,
    truthy,
)
from idemlint.lint.index.project import FunctionRef, Project, last_segment
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.summary.model import Event, FileSummary, FunctionSummary, Span, Value

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
        """Whether the task's own delivery lets it run twice."""
        return bool(self.mechanisms)

    @property
    def retry_reason(self) -> str:
        return self.mechanisms[0].words() if self.mechanisms else ""

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


class TaskFinder:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.k: Knowledge = project.knowledge
        self._phase = 0
        # a registration's callee ends in one of these names: skip resolving any other call
        self.registration_tails = tuple(
            {last_segment(r.call).split("*", 1)[0] for r in self.k.task_registrations}
        )

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
        self._phase = DELIVERY_PHASE
        self._delivery(file)
        return self.found

    def _add(
        self, ref: FunctionRef, framework: str, span: Span, mechanisms: tuple[Mechanism, ...]
    ) -> None:
        if not self.k.uses_framework(framework):
            return
        self.found.append(Declaration(self._phase, ref.qualified, framework, span, mechanisms))

    def _decorated(self, ref: FunctionRef) -> None:
        for dec in ref.func.decorators:
            value = dec.value
            if value.path is None:
                continue
            resolved = self.project.resolve(value.path, ref.file, None)
            names = [resolved, value.path]
            alias = self._alias_call(value, ref.file)
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
                for name, call, home, span in inner:  # options the wrapper passes itself
                    if td.matcher.match([name]) and set(call.kwargs) - {"**"}:
                        kwargs = {**call.kwargs, **kwargs}
                        wrapper = (home, span)
                where, at = wrapper if wrapper is not None else (ref.file, dec.span)
                if alias is not None:  # the alias's options, then the decorator's own
                    if not kwargs:  # configured at the alias: point there
                        where, at = alias[0], alias[1]
                    kwargs = {**alias[2].kwargs, **kwargs}
                from_base = self._base_class_options(kwargs.get("base"), ref.file)
                mechanisms = decorator_mechanisms(
                    self.project, kwargs, where, at, Options.of_decorator(td)
                )
                self._add(ref, td.framework, dec.span, (*mechanisms, *from_base))
                return

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

    def _registrations(
        self, file: FileSummary, func: FunctionSummary | None, events: list[Event]
    ) -> None:
        for ev in events:
            if (
                ev.type == "call"
                and ev.value is not None
                and ev.value.path is not None
                and last_segment(ev.value.path).startswith(self.registration_tails)
            ):
                self._registration(file, func, ev.value, ev.span)

    def _registration(
        self,
        file: FileSummary,
        func: FunctionSummary | None,
        call: Value,
        span: Span | None = None,
    ) -> None:
        resolved = self.project.resolve(call.path or "", file, func)
        spellings = self.project.library_spellings(resolved)
        line = span.line if span is not None else 0
        for reg in self.k.task_registrations:
            if not reg.matcher.match(spellings):
                continue
            target = call.kwargs.get(reg.kwarg) if reg.kwarg else None
            if target is None and len(call.args) > reg.arg:
                target = call.args[reg.arg]
            if target is None:
                continue
            mechanisms: list[Mechanism] = []
            for kw in reg.retry_kwargs:
                if truthy(call.kwargs.get(kw)):
                    detail = f"{kw}= at the {last_segment(call.path or '')}() call"
                    mechanisms.append(Mechanism("retry", detail, file.path, line))
                    if kw in reg.redelivery_kwargs:
                        mechanisms.append(Mechanism("redelivery", detail, file.path, line))
            if reg.redelivers_by_default:
                mechanisms.append(Mechanism("redelivery", reg.redelivers_by_default, "", 0))
            self._register_value(file, func, target, reg.framework, tuple(mechanisms))
            return

    def _register_value(
        self,
        file: FileSummary,
        func: FunctionSummary | None,
        target: Value,
        framework: str,
        mechanisms: tuple[Mechanism, ...],
    ) -> None:
        if target.kind == "str" and target.text:
            qualified = self.project.resolve_qualified(target.text)
        elif target.path is not None and target.kind in ("name", "attr"):
            qualified = self.project.resolve(target.path, file, func)
        else:
            return
        ref = self.project.functions.get(qualified)
        if ref is None:
            return
        where = ref.func.decorators[0].span if ref.func.decorators else ref.func.span
        self._add(ref, framework, where, mechanisms)

    def _delivery(self, file: FileSummary) -> None:
        """Schedules naming a task, and project-wide settings, found in ``file``."""
        for framework, mechanism in setting_mechanisms(self.project, file):
            if self.k.uses_framework(framework):
                span = Span(mechanism.line, 1, mechanism.line, 1)
                self.found.append(
                    Declaration(self._phase, ALL_TASKS + framework, framework, span, (mechanism,))
                )
        for target, mechanism, func in schedule_targets(self.project, file):
            qualified = scheduled_task(self.project, target, file, func)
            if qualified is not None:
                span = Span(mechanism.line, 1, mechanism.line, 1)
                self.found.append(Declaration(self._phase, qualified, "", span, (mechanism,)))


def merge_declarations(
    project: Project,
    declarations: list[list[Declaration]],
    signal: Callable[[Task], str] | None = None,
) -> dict[str, Task]:
    """The project's tasks from every file's declarations (in file order), and sets
    ``project.task_names``. ``signal`` finds the call in a task's body that makes it
    retry (default :func:`retry_signal`), as JSON."""
    tasks: dict[str, Task] = {}
    for phase in range(DELIVERY_PHASE):
        for found in declarations:
            for d in found:
                if d.phase != phase:
                    continue
                existing = tasks.get(d.qualified)
                if existing is not None:
                    existing.add(d.mechanisms)
                    continue
                if d.qualified not in project.functions.where:
                    continue
                task = Task(d.qualified, d.framework, d.span, [], project)
                task.add(d.mechanisms)
                called = signal(task) if signal is not None else retry_signal(project, task.ref)
                if called:
                    task.add([Mechanism.from_json(json.loads(called))])
                tasks[d.qualified] = task
    for found in declarations:
        for d in found:
            if d.phase != DELIVERY_PHASE:
                continue
            if d.qualified.startswith(ALL_TASKS):
                for task in tasks.values():
                    if task.framework == d.framework:
                        task.add(d.mechanisms)
            elif d.qualified in tasks:
                tasks[d.qualified].add(d.mechanisms)
    project.task_names = {name: t.framework for name, t in tasks.items()}
    return tasks


def find_tasks(project: Project) -> dict[str, Task]:
    finder = TaskFinder(project)
    return merge_declarations(project, [finder.declarations(f) for f in project.files])

"""Find the project's tasks: decorated functions, task classes, and registered callables.

Recognition is by resolved name (``from celery import shared_task as st`` and
``app = Celery(); @app.task`` both resolve to a known task decorator), and every
framework's spelling comes from the knowledge base, not from this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from idemlint.lint.index.project import FunctionRef, Project, last_segment
from idemlint.lint.knowledge import Knowledge
from idemlint.lint.summary.model import Event, FileSummary, FunctionSummary, Span, Value

PHASES = 3
"""Declarations are merged in phase order (decorated functions, task classes and lists,
registrations), then by file, then in source order: the first one for a function sets
its framework and span; a later one can only add that it retries."""


@dataclass
class Task:
    name: str
    """Qualified name of the function that runs (``app.tasks.charge``, ``app.tasks.Charge.run``)."""
    framework: str
    span: Span
    """Where task-level findings go: the task decorator's line, else the ``def``/class line."""
    retries: bool
    retry_reason: str = ""
    project: Project | None = field(default=None, repr=False, compare=False)
    _ref: FunctionRef | None = field(default=None, repr=False, compare=False)

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

    def record(self) -> tuple[str, str, tuple[int, int, int, int], bool, str]:
        """What the analysis of this task depends on, besides the files it reads."""
        s = self.span
        return (
            self.name,
            self.framework,
            (s.line, s.column, s.end_line, s.end_column),
            self.retries,
            self.retry_reason,
        )


@dataclass(frozen=True)
class Declaration:
    """One place that makes a function a task: a decorator, a task class, a registration."""

    phase: int
    qualified: str
    framework: str
    span: Span
    retries: bool
    reason: str

    def to_json(self) -> list[object]:
        s = self.span
        return [
            self.phase,
            self.qualified,
            self.framework,
            [s.line, s.column, s.end_line, s.end_column],
            self.retries,
            self.reason,
        ]

    @classmethod
    def from_json(cls, data: list[object]) -> Declaration:
        phase, qualified, framework, span, retries, reason = data
        assert isinstance(span, list)
        return cls(
            int(str(phase)),
            str(qualified),
            str(framework),
            Span(*(int(x) for x in span)),
            bool(retries),
            str(reason),
        )


def _truthy(value: Value | None) -> bool:
    if value is None:
        return False
    if value.kind == "none" or (value.kind == "bool" and value.text == "False"):
        return False
    return not (value.kind == "num" and value.text in ("0", "0.0"))


def _is_zero(value: Value | None) -> bool:
    return value is not None and value.kind == "num" and value.text in ("0", "0.0")


def retry_signal(project: Project, ref: FunctionRef) -> str:
    """The first call in the body that makes the task retry (``self.retry``, ``raise Retry``)."""
    for ev in ref.func.events:
        if ev.type == "call" and ev.value is not None and ev.value.path:
            raw = ev.value.path
            resolved = project.resolve(raw, ref.file, ref.func)
            if project.knowledge.retry_signals.match([raw, resolved]):
                return raw
    return ""


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
        """What makes a function a task in ``file`` (the task may live in another file)."""
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
        return self.found

    def _add(
        self, ref: FunctionRef, framework: str, span: Span, retries: bool, reason: str
    ) -> None:
        if not self.k.uses_framework(framework):
            return
        self.found.append(Declaration(self._phase, ref.qualified, framework, span, retries, reason))

    def _decorated(self, ref: FunctionRef) -> None:
        for dec in ref.func.decorators:
            value = dec.value
            if value.path is None:
                continue
            resolved = self.project.resolve(value.path, ref.file, None)
            names = [resolved, value.path]
            if resolved in self.project.classes:  # class MyJob(rq.decorators.job)
                names += self.project.class_bases(resolved)
            elif resolved in self.project.functions:  # def actor(**kw): ... dramatiq.actor(fn)
                names += self._wrapped_decorators(resolved)
            for td in self.k.task_decorators:
                if not td.matcher.match(names):
                    continue
                kwargs = value.kwargs if value.kind == "call" else {}
                retries, reason = False, ""
                for kw in td.retry_kwargs:
                    if _truthy(kwargs.get(kw)):
                        retries, reason = True, f"{kw}="
                        break
                if td.retries_by_default and not any(
                    _is_zero(kwargs.get(kw)) for kw in td.no_retry_kwargs
                ):
                    retries, reason = True, f"{td.framework} retries by default"
                self._add(ref, td.framework, dec.span, retries, reason)
                return

    def _wrapped_decorators(self, decorator: str) -> list[str]:
        """Calls a project decorator (or the functions nested in it) makes, resolved: a
        wrapper such as ``def actor(fn=None, **kw): return dramatiq.actor(fn, **kw)``."""
        out: list[str] = []
        for name in self.project.functions.names():
            if name != decorator and not name.startswith(f"{decorator}."):
                continue
            ref = self.project.functions.get(name)
            if ref is None:
                continue
            for ev in ref.func.events:
                if ev.type == "call" and ev.value is not None and ev.value.path:
                    out.append(self.project.resolve(ev.value.path, ref.file, ref.func))
        return out

    def _task_class(self, qual: str, file: FileSummary, span: Span) -> None:
        bases = self.project.class_bases(qual)
        for tc in self.k.task_classes:
            if tc.base not in bases:
                continue
            ref = self.project.functions.get(f"{qual}.{tc.method}")
            if ref is None:
                return
            retries, reason = False, ""
            for cls in [qual, *bases]:
                entry = self.project.classes.get(cls)
                if entry is None:
                    continue
                for attr in tc.retry_attributes:
                    if _truthy(entry[1].attributes.get(attr)):
                        retries, reason = True, f"{attr} ="
            if tc.retries_by_default and not retries:
                retries, reason = True, f"{tc.framework} retries by default"
            self._add(ref, tc.framework, span, retries, reason)
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
                    self._register_value(file, None, item, tl.framework, False, "")

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
                self._registration(file, func, ev.value)

    def _registration(self, file: FileSummary, func: FunctionSummary | None, call: Value) -> None:
        resolved = self.project.resolve(call.path or "", file, func)
        spellings = self.project.library_spellings(resolved)
        for reg in self.k.task_registrations:
            if not reg.matcher.match(spellings):
                continue
            target = call.kwargs.get(reg.kwarg) if reg.kwarg else None
            if target is None and len(call.args) > reg.arg:
                target = call.args[reg.arg]
            if target is None:
                continue
            retries, reason = False, ""
            for kw in reg.retry_kwargs:
                if _truthy(call.kwargs.get(kw)):
                    retries, reason = True, f"{kw}="
            self._register_value(file, func, target, reg.framework, retries, reason)
            return

    def _register_value(
        self,
        file: FileSummary,
        func: FunctionSummary | None,
        target: Value,
        framework: str,
        retries: bool,
        reason: str,
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
        self._add(ref, framework, where, retries, reason)


def merge_declarations(
    project: Project,
    declarations: list[list[Declaration]],
    signal: Callable[[Task], str] | None = None,
) -> dict[str, Task]:
    """The project's tasks from every file's declarations (in file order), and sets
    ``project.task_names``. ``signal`` finds the call in a task's body that makes it
    retry (default :func:`retry_signal`)."""
    tasks: dict[str, Task] = {}
    for phase in range(PHASES):
        for found in declarations:
            for d in found:
                if d.phase != phase:
                    continue
                existing = tasks.get(d.qualified)
                if existing is not None:
                    if d.retries and not existing.retries:
                        existing.retries, existing.retry_reason = True, d.reason
                    continue
                if d.qualified not in project.functions.where:
                    continue
                task = Task(d.qualified, d.framework, d.span, d.retries, d.reason, project)
                if not task.retries:
                    called = signal(task) if signal is not None else retry_signal(project, task.ref)
                    if called:
                        task.retries, task.retry_reason = True, f"calls {called}()"
                tasks[d.qualified] = task
    project.task_names = {name: t.framework for name, t in tasks.items()}
    return tasks


def find_tasks(project: Project) -> dict[str, Task]:
    finder = TaskFinder(project)
    return merge_declarations(project, [finder.declarations(f) for f in project.files])

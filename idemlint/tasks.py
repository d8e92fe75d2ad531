"""Find the project's tasks: decorated functions, task classes, and registered callables.

Recognition is by resolved name (``from celery import shared_task as st`` and
``app = Celery(); @app.task`` both resolve to a known task decorator), and every
framework's spelling comes from the knowledge base, not from this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from idemlint.knowledge import Knowledge
from idemlint.project import FunctionRef, Project, last_segment
from idemlint.summary import Event, FileSummary, FunctionSummary, Span, Value


@dataclass
class Task:
    name: str
    """Qualified name of the function that runs (``app.tasks.charge``, ``app.tasks.Charge.run``)."""
    ref: FunctionRef
    framework: str
    span: Span
    """Where task-level findings go: the task decorator's line, else the ``def``/class line."""
    retries: bool
    retry_reason: str = ""


def _truthy(value: Value | None) -> bool:
    if value is None:
        return False
    if value.kind == "none" or (value.kind == "bool" and value.text == "False"):
        return False
    return not (value.kind == "num" and value.text in ("0", "0.0"))


def _is_zero(value: Value | None) -> bool:
    return value is not None and value.kind == "num" and value.text in ("0", "0.0")


def _retry_signal(project: Project, ref: FunctionRef) -> str:
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
        self.tasks: dict[str, Task] = {}
        # a registration's callee ends in one of these names: skip resolving any other call
        self.registration_tails = tuple(
            {last_segment(r.call).split("*", 1)[0] for r in self.k.task_registrations}
        )

    def find(self) -> dict[str, Task]:
        for ref in self.project.functions.values():
            self._decorated(ref)
        for qual, (file, cls) in self.project.classes.items():
            self._task_class(qual, file, cls.span)
            self._task_list(file, cls.name, cls.attributes)
        for file in self.project.files:
            self._registrations(file, None, file.module_events)
            for fn in file.functions.values():
                self._registrations(file, fn, fn.events)
        self.project.task_names = {name: t.framework for name, t in self.tasks.items()}
        return self.tasks

    def _add(
        self, ref: FunctionRef, framework: str, span: Span, retries: bool, reason: str
    ) -> None:
        if not self.k.uses_framework(framework):
            return
        signal = _retry_signal(self.project, ref)
        existing = self.tasks.get(ref.qualified)
        if existing is not None:
            if retries and not existing.retries:
                existing.retries, existing.retry_reason = True, reason
            return
        if not retries and signal:
            retries, reason = True, f"calls {signal}()"
        self.tasks[ref.qualified] = Task(ref.qualified, ref, framework, span, retries, reason)

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
        for name, ref in self.project.functions.items():
            if name != decorator and not name.startswith(f"{decorator}."):
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


def find_tasks(project: Project) -> dict[str, Task]:
    return TaskFinder(project).find()

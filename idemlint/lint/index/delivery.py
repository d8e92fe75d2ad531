"""How a task can run more than once: its delivery model.

A finding is only true if its task can really run twice. That depends on the
framework's defaults and on the project's own configuration, each a *mechanism*:

* ``redelivery``: the message is acknowledged only after the run (Celery
  ``acks_late``, Dramatiq, arq, Django-Q), so a worker crash or a deploy runs it again;
  every effect that is not the run's last act is at risk;
* ``retry``: the task is retried on failure; ``exceptions`` names the types it
  retries on (empty: any failure), so an effect is at risk only where a retrying
  exception can arise after it;
* ``retry-call``: the body calls ``self.retry()`` (or raises a retry); an effect
  before that call is at risk;
* ``schedule``: the task runs on a schedule; an overlapping run, or the run after a
  crash, redoes what the last run did but never recorded.

A task with none of them (a plain Celery task: early acknowledgement, no retries)
runs twice only from outside, by a double enqueue; it is reported only with
``assume-retries = true``. Mechanisms come from the knowledge base: the engine names
no framework.

One more kind does not run the *same* message twice, and so puts no effect at risk by
itself: ``concurrent``, an enqueue of the task in the project's own (non-test) code
(``task.delay(user.id)`` in a signal handler, a view, another task's loop). Each call
makes a message, and workers run messages in parallel, so two runs for the same rows
can overlap. That matters only where a run *checks* before it acts and the check is not
atomic (:data:`RACE_RULES`: get_or_create or check-then-create on fields no constraint
backs, an unlocked status check): both runs pass the check. A retry does not need to
happen for that, so those rules report a task enqueued this way even when it is never
retried, and so does IDM604 (a guard whose marker is written only after the effect): it
takes only the mechanisms that overlap two runs, ``schedule`` and ``concurrent``
(:meth:`~idemlint.lint.analysis.walk.TaskContext.overlapping`). IDM501 does too where
the value read, changed in memory and saved back belongs to a row the message names,
read without a lock: two runs at once both start from the old value and one change is
lost (its catalog entry's ``race_message`` says so). No other rule does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from idemlint.lint.index.project import FunctionRef, Project, last_segment
from idemlint.lint.knowledge import Knowledge, TaskClass, TaskDecorator
from idemlint.lint.summary.model import Event, FileSummary, FunctionSummary, Span, Value

KINDS = ("redelivery", "schedule", "retry", "retry-call", "concurrent")
"""Mechanism kinds, the ones that put every effect at risk first (``concurrent`` last:
it repeats nothing, it only lets two runs overlap)."""

REPEATING = frozenset(KINDS) - {"concurrent"}
"""The kinds that run the same message again."""

RACE_RULES = frozenset({"IDM401", "IDM402", "IDM601"})
"""Rules whose finding is a race between two runs that both pass a non-atomic check:
true for two overlapping runs of different messages (``concurrent``), not only for a
second run of the same one."""


@dataclass(frozen=True)
class Mechanism:
    """One way a task can run twice, and where it is configured."""

    kind: str
    detail: str
    """What configures it, as written: ``acks_late=True``, ``autoretry_for=(X,)``."""
    path: str = ""
    """The file that configures it, relative to the project root ("" for a default)."""
    line: int = 0
    exceptions: tuple[str, ...] = ()
    """For ``retry``: resolved exception types it retries on; empty means any failure."""
    resolved: bool = True
    """False when the configuring value could not be read statically (a name bound to
    something opaque, a setting read from the environment): assumed to be set."""

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}" if self.path else ""

    def to_json(self) -> list[object]:
        return [
            self.kind,
            self.detail,
            self.path,
            self.line,
            list(self.exceptions),
            self.resolved,
        ]

    @classmethod
    def from_json(cls, data: list[object]) -> Mechanism:
        kind, detail, path, line, exceptions, resolved = data
        assert isinstance(exceptions, list)
        return cls(
            str(kind),
            str(detail),
            str(path),
            int(str(line)),
            tuple(map(str, exceptions)),
            bool(resolved),
        )

    def words(self, *, itself: bool = False, hook: str = "") -> str:
        """The mechanism as a message's closing clause, with where it is configured.
        ``hook``: the finding is in a lifecycle hook of that name that runs around every
        attempt, so a retry repeats it whatever follows it."""
        where = f", {self.source}" if self.source else ""
        unread = "" if self.resolved else ", not readable statically: assumed set"
        if hook and self.kind in ("retry", "retry-call"):
            how = (
                f"retries through `{self.detail}` at line {self.line}"
                if self.kind == "retry-call"
                else f"is retried on {self._retried_on()} ({self.detail}{where}{unread})"
            )
            return f"the task {how}, and its `{hook}` runs again with every attempt"
        if self.kind == "redelivery":
            return f"the task is redelivered after a worker crash ({self.detail}{where}{unread})"
        if self.kind == "schedule":
            return (
                f"the task runs on a schedule ({self.detail}{where}), and a run can overlap "
                "the last one or follow a crashed one"
            )
        if self.kind == "concurrent":
            return (
                f"the task runs once per message, and a message is enqueued at each call of "
                f"{self.detail} ({self.source}); workers run messages in parallel, so two "
                "runs for the same rows can overlap"
            )
        if self.kind == "retry-call":
            return f"the task retries through `{self.detail}` at line {self.line}, after this"
        if self.exceptions:
            names = self._retried_on()
            after = (
                "which this call can raise after the other side acted"
                if itself
                else "which can be raised after this"
            )
            return f"the task is retried on {names} ({self.detail}{where}), {after}"
        after = "this call can fail after the other side acted" if itself else "after this"
        return f"the task is retried on failure ({self.detail}{where}{unread}), {after}"

    def _retried_on(self) -> str:
        if not self.exceptions:
            return "failure"
        return ", ".join(last_segment(e) for e in self.exceptions)


def truthy(value: Value | None) -> bool:
    if value is None:
        return False
    if value.kind == "none" or (value.kind == "bool" and value.text == "False"):
        return False
    return not (value.kind == "num" and value.text in ("0", "0.0"))


def is_zero(value: Value | None) -> bool:
    return value is not None and value.kind == "num" and value.text in ("0", "0.0")


def written(name: str, value: Value) -> str:
    """``name=value`` as a message shows it, short."""
    if value.kind in ("name", "attr") and value.path:
        text = value.path
    elif value.kind == "seq":
        text = "(" + ", ".join(written("", v).lstrip("=") for v in value.args[:3]) + ",)"
    elif value.kind == "str":
        text = repr(value.text or "")
    elif value.text is not None:
        text = value.text
    elif value.kind == "call" and value.path:
        text = f"{value.path}(...)"
    else:
        text = "..."
    return f"{name}={text}" if name else text


def exception_types(
    project: Project, value: Value, file: FileSummary, func: FunctionSummary | None
) -> tuple[str, ...] | None:
    """Resolved exception types of ``autoretry_for=(A, B)``; ``None`` when they cannot be
    read statically (a name bound to something opaque) or include a broad type."""
    items = value.args if value.kind == "seq" else [value]
    out: list[str] = []
    for item in items:
        if item.kind not in ("name", "attr") or not item.path:
            return None
        resolved = project.resolve(item.path, file, func)
        if resolved.endswith(")"):  # bound to what a call returns: not a type we can read
            return None
        if last_segment(resolved).isupper():  # a constant holding the tuple: follow it
            module, _, name = resolved.rpartition(".")
            home = project.module_file(module)
            bound = home.assigns.get(name) if home is not None else None
            if home is not None:
                project.tracker.touch(home.path)
            if home is None or bound is None or bound.kind != "seq":
                return None
            inner = exception_types(project, bound, home, None)
            if inner is None:
                return None
            out.extend(inner)
            continue
        if resolved in project.knowledge.broad_exceptions or last_segment(resolved) in {
            last_segment(b) for b in project.knowledge.broad_exceptions
        }:
            return None
        out.append(resolved)
    return tuple(out)


def _broad(project: Project, value: Value, file: FileSummary) -> bool:
    """``value`` lists a broad exception type (``Exception``): readable, and any failure."""
    broad = {last_segment(b) for b in project.knowledge.broad_exceptions}
    items = value.args if value.kind == "seq" else [value]
    return any(
        i.kind in ("name", "attr")
        and i.path is not None
        and last_segment(project.resolve(i.path, file, None)) in broad
        for i in items
    )


def literal(value: Value) -> bool:
    """A value written as a literal (a setting's value that can be read statically)."""
    return value.kind in ("bool", "num", "str", "none", "seq", "dict")


@dataclass(frozen=True)
class Options:
    """Which keywords (or class attributes) of a task rule configure a second run: the
    same questions for a task decorator and for a task class."""

    retry: tuple[str, ...] = ()
    retry_on: tuple[str, ...] = ()
    redelivery: tuple[str, ...] = ()
    retries_by_default: bool = False
    no_retry: tuple[str, ...] = ()
    default_detail: str = ""
    redelivers_by_default: str = ""
    scheduled: bool = False

    @classmethod
    def of_decorator(cls, td: TaskDecorator) -> Options:
        return cls(
            td.retry_kwargs,
            td.retry_on_kwargs,
            td.redelivery_kwargs,
            td.retries_by_default,
            td.no_retry_kwargs,
            td.default_detail,
            td.redelivers_by_default,
            td.scheduled,
        )

    @classmethod
    def of_class(cls, tc: TaskClass, *, defaults: bool = True) -> Options:
        """``defaults=False`` for a class named by ``base=``: the decorator's own rule
        already said how the framework behaves by default."""
        return cls(
            tc.retry_attributes,
            tc.retry_on_attributes,
            tc.redelivery_attributes,
            tc.retries_by_default and defaults,
            default_detail=f"{tc.base} subclasses retry by default" if defaults else "",
        )


def decorator_mechanisms(
    project: Project,
    kwargs: dict[str, Value],
    file: FileSummary,
    span: Span,
    options: Options,
) -> tuple[Mechanism, ...]:
    """The mechanisms a task's own decorator (or registration, or class attributes)
    configures, each pointing at the decorator's line."""
    k: Knowledge = project.knowledge
    out: list[Mechanism] = []
    at = (file.path, span.line)
    for kw in options.redelivery:
        if truthy(kwargs.get(kw)):
            out.append(Mechanism("redelivery", written(kw, kwargs[kw]), *at))
    if options.redelivers_by_default:
        out.append(Mechanism("redelivery", options.redelivers_by_default, *at))
    if options.scheduled:
        out.append(Mechanism("schedule", "a periodic task decorator", *at))
    for kw in sorted(k.schedule_kwargs & kwargs.keys()):
        if truthy(kwargs[kw]):
            out.append(Mechanism("schedule", written(kw, kwargs[kw]), *at))
    for kw in options.retry_on:
        value = kwargs.get(kw)
        if truthy(value) and value is not None:
            types = exception_types(project, value, file, None)
            readable = types is not None or _broad(project, value, file)
            out.append(Mechanism("retry", written(kw, value), *at, types or (), readable))
    for kw in options.retry:
        if truthy(kwargs.get(kw)):
            out.append(Mechanism("retry", written(kw, kwargs[kw]), *at))
    if (
        options.retries_by_default
        and not any(is_zero(kwargs.get(kw)) for kw in options.no_retry)
        and not any(m.kind == "retry" for m in out)
    ):
        out.append(Mechanism("retry", options.default_detail or "retries by default", *at))
    return tuple(out)


def retry_call(project: Project, ref: FunctionRef) -> Mechanism | None:
    """The last call in the body that makes the task retry (``self.retry``, ``raise
    Retry``): an effect before it can be repeated."""
    found: Mechanism | None = None
    for ev in ref.func.events:
        if ev.type in ("call", "exit") and ev.value is not None and ev.value.path:
            raw = ev.value.path
            resolved = project.resolve(raw, ref.file, ref.func)
            if project.knowledge.retry_signals.match([raw, resolved]):
                found = Mechanism("retry-call", f"{raw}()", ref.file.path, ev.span.line)
    return found


def setting_mechanisms(project: Project, file: FileSummary) -> list[tuple[str, Mechanism]]:
    """Project-wide settings in ``file`` that make every task of a framework run twice:
    ``(framework, mechanism)``. Read from module-level assignments (``NAME = True``,
    ``app.conf.name = True``) and call keywords (``app.conf.update(name=True)``) at
    module level or in any function (an app factory)."""
    settings = project.knowledge.delivery_settings
    if not settings:
        return []
    by_name = {n: s for s in settings for n in s.names}
    out: list[tuple[str, Mechanism]] = []
    events = [*file.module_events]
    for fn in file.functions.values():
        events.extend(fn.events)
    for name, value, line in _module_and_class_values(file):
        setting = by_name.get(last_segment(name))
        if setting is not None and truthy(value):
            readable = literal(value)
            out.append(
                (
                    setting.framework,
                    Mechanism(
                        setting.mechanism,
                        f"{name}={written('', value)}",
                        file.path,
                        line,
                        resolved=readable,
                    ),
                )
            )
    for ev in events:
        if ev.type == "assign" and ev.value is not None:
            for target in ev.targets:
                setting = by_name.get(last_segment(target))
                if setting is not None and truthy(ev.value) and "." in target:
                    detail = f"{target}={written('', ev.value)}"
                    mech = Mechanism(
                        setting.mechanism,
                        detail,
                        file.path,
                        ev.span.line,
                        resolved=literal(ev.value),
                    )
                    out.append((setting.framework, mech))
        if ev.type == "call" and ev.value is not None:
            for kw, value in ev.value.kwargs.items():
                setting = by_name.get(kw)
                if setting is not None and truthy(value):
                    detail = written(kw, value)
                    mech = Mechanism(
                        setting.mechanism, detail, file.path, ev.span.line, resolved=literal(value)
                    )
                    out.append((setting.framework, mech))
    return out


def _module_and_class_values(file: FileSummary) -> list[tuple[str, Value, int]]:
    """Module-level assignments and class attributes (class-based settings such as
    ``class Base(Settings): CELERY_TASK_ACKS_LATE = True``), each with a line: the
    assignment's, or the class's for an attribute."""
    out = [(name, value, _assign_line(file, name)) for name, value in file.assigns.items()]
    for cls in file.classes.values():
        out += [(name, value, cls.span.line) for name, value in cls.attributes.items()]
    return out


def _assign_line(file: FileSummary, name: str) -> int:
    for ev in file.module_events:
        if ev.type == "assign" and name in ev.targets:
            return ev.span.line
    return 1


Scheduled = tuple[Value, Mechanism, "FunctionSummary | None", str]
"""A value naming a scheduled task, the schedule, the function it was found in, and the
framework whose job the schedule makes of a plain function ("" when it only schedules
what is already a task)."""

_TEST_FILE = re.compile(r"(?:^|/)(?:tests?/|test_[^/]*\.py$|conftest\.py$)")


def is_test_path(path: str) -> bool:
    """A test file (a ``tests``/``test`` folder, ``test_*.py``, ``conftest.py``): what it
    configures (a schedule copied into a test settings module) is a test's, not the
    application's, when the application configures the same itself."""
    return _TEST_FILE.search(path.replace("\\", "/")) is not None


def schedule_targets(project: Project, file: FileSummary) -> list[Scheduled]:
    """Values in ``file`` that name a task put on a schedule: the ``"task"`` of a beat
    schedule entry, the task (or its signature) given to a scheduling call."""
    k = project.knowledge
    out: list[Scheduled] = []
    scopes: list[tuple[FunctionSummary | None, list[Event]]] = [(None, file.module_events)]
    scopes += [(fn, fn.events) for fn in file.functions.values()]
    values: list[tuple[FunctionSummary | None, Value, int]] = [
        (None, v, line) for _, v, line in _module_and_class_values(file)
    ]
    for func, events in scopes:
        for ev in events:
            if ev.value is not None and ev.type in ("assign", "call"):
                values.append((func, ev.value, ev.span.line))
    for func, value, line in values:
        for v in value.walk():
            if v.kind == "dict":
                for sd in k.schedule_dicts:
                    target = v.kwargs.get(sd.key)
                    if target is not None and (
                        not sd.beside or any(b in v.kwargs for b in sd.beside)
                    ):
                        detail = "a schedule entry"
                        mech = Mechanism("schedule", detail, file.path, line)
                        out.append((target, mech, func, sd.framework))
            if (
                v.kind == "call"
                and v.path
                and k.schedule_call_tails.fullmatch(last_segment(v.path))
            ):
                resolved = project.resolve(v.path, file, func)
                spellings = project.library_spellings(resolved)
                for sc in k.schedule_calls:
                    if not sc.matcher.match(spellings):
                        continue
                    target = v.kwargs.get(sc.kwarg) if sc.kwarg else None
                    if target is None and len(v.args) > sc.arg:
                        target = v.args[sc.arg]
                    if target is not None:
                        detail = f"{last_segment(v.path)}(...)"
                        mech = Mechanism("schedule", detail, file.path, line)
                        out.append((target, mech, func, sc.framework))
                    break
    return out


def scheduled_task(
    project: Project, target: Value, file: FileSummary, func: FunctionSummary | None
) -> str | None:
    """The qualified name of the project function ``target`` names: a reference, a
    ``"dotted.path"`` string, or a signature (``task.s()``, ``task.signature()``)."""
    if target.kind == "str" and target.text:
        return project.resolve_qualified(target.text)
    if (
        target.kind == "call"
        and target.path
        and last_segment(target.path) in ("s", "si", "signature")
    ):
        target = Value("attr", path=target.path.rsplit(".", 1)[0])
    if target.kind in ("name", "attr") and target.path:
        return project.resolve(target.path, file, func)
    return None

"""What calls mean, as data: the built-in knowledge plus the user's extensions.

The engine never spells a framework's name. It asks this module "is this resolved
call a side effect, a lookup, a lock, an upsert, a task decorator?" and the answers
come from ``builtin.toml`` and from ``[tool.idemlint]`` in the user's
``pyproject.toml``, which has the same shape. So a team's own ``notify.send_push``
or ``with distributed_lock(...)`` is understood exactly like the built-ins.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from idemlint.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EFFECT_KINDS = ("row-create", "message", "payment", "http-write", "enqueue")
FRAMEWORKS = ("celery", "rq", "dramatiq", "huey", "arq", "taskiq", "django-q", "custom")

EXTENSION_KEYS: dict[str, str] = {
    "side-effects": 'list of tables: {call = "pkg.mod.func", kind = "<kind>"}',
    "task-decorators": (
        'list of tables: {name = "pkg.mod.decorator", retries = true|false, '
        "retry-kwargs = [...], no-retry-kwargs = [...]}"
    ),
    "task-classes": (
        'list of tables: {base = "pkg.mod.BaseJob", method = "run", retries = true|false, '
        "retry-attributes = [...]}"
    ),
    "locks": "list of call globs",
    "guards": "list of decorator or call globs",
    "lookups": "list of call globs",
    "upserts": "list of call globs",
    "state-fields": "list of field-name globs",
    "idempotent-apis": 'list of tables: {url = "https://api.example.com/*", header = "..."}',
    "webhook-signature-headers": "list of header-name globs, lower case",
    "assume-retries": "true or false",
    "severity": (
        'list of tables: {call = "pkg.mod.func", level = "error|warning|info"} or '
        '{model = "*Snapshot", level = "..."}'
    ),
}
"""The knowledge keys a user may set in ``[tool.idemlint]``, with the shape each takes."""


class Patterns:
    """A set of globs compiled into one regex: matching is a single ``re`` call. The regex
    is compiled on first use: a re-check answered from the snapshot matches nothing, and
    compiling every table of the knowledge base would be most of its work."""

    def __init__(self, globs: Iterable[str]) -> None:
        self.globs = tuple(dict.fromkeys(globs))

    @cached_property
    def _re(self) -> re.Pattern[str] | None:
        if not self.globs:
            return None
        # `[` is literal in our paths (`ctx[].enqueue_job`), never a character class
        return re.compile(
            "|".join(f"(?:{fnmatch.translate(g.replace('[', '[[]'))})" for g in self.globs)
        )

    def match(self, candidates: Iterable[str]) -> bool:
        pattern = self._re
        if pattern is None:
            return False
        return any(pattern.match(c) for c in candidates)

    def __bool__(self) -> bool:
        return bool(self.globs)


@lru_cache(maxsize=1024)
def glob(pattern: str) -> Patterns:
    """One glob, compiled once: for patterns matched per call (an effect's arg-type, an API's
    URL) rather than per knowledge table."""
    return Patterns([pattern])


@dataclass(frozen=True)
class Effect:
    call: str
    kind: str
    unless_kwargs: tuple[str, ...] = ()
    unless_chain: tuple[str, ...] = ()
    key_kwarg: str | None = None
    arg_type: str | None = None
    arg_text: re.Pattern[str] | None = None
    matcher: Patterns = field(default_factory=lambda: Patterns(()), compare=False)


@dataclass(frozen=True)
class TaskDecorator:
    """A decorator that makes a task, and what in its options makes the task run twice:
    ``retry_kwargs`` (any true value: it retries on failure), ``retry_on_kwargs`` (the
    exception types it retries on), ``redelivery_kwargs`` (redelivered after a worker
    crash), ``schedule``-ing keywords (global, :attr:`Knowledge.schedule_kwargs`)."""

    name: str
    framework: str
    retry_kwargs: tuple[str, ...] = ()
    retries_by_default: bool = False
    no_retry_kwargs: tuple[str, ...] = ()
    retry_on_kwargs: tuple[str, ...] = ()
    redelivery_kwargs: tuple[str, ...] = ()
    default_detail: str = ""
    """How the framework retries by default, in words (with ``retries_by_default``)."""
    redelivers_by_default: str = ""
    """How the framework redelivers a task by default, in words ("" when it does not)."""
    scheduled: bool = False
    """The decorator itself puts the task on a schedule (``@periodic_task``)."""
    matcher: Patterns = field(default_factory=lambda: Patterns(()), compare=False)


@dataclass(frozen=True)
class TaskClass:
    base: str
    framework: str
    method: str
    retry_attributes: tuple[str, ...] = ()
    retries_by_default: bool = False
    retry_on_attributes: tuple[str, ...] = ()
    redelivery_attributes: tuple[str, ...] = ()
    attempt_hooks: tuple[str, ...] = ()
    """Methods a subclass may override that the framework runs around every attempt of a
    task made with it (Celery's ``before_start``, ``after_return``): a retry runs them again."""
    outcome_hooks: tuple[str, ...] = ()
    """Methods it runs once a task's run has an outcome (``on_success``, ``on_failure``): a
    redelivery or a schedule runs them again, a retry does not."""


@dataclass(frozen=True)
class TaskRegistration:
    call: str
    framework: str
    arg: int
    kwarg: str | None
    retry_kwargs: tuple[str, ...] = ()
    redelivers_by_default: str = ""
    redelivery_kwargs: tuple[str, ...] = ()
    matcher: Patterns = field(default_factory=lambda: Patterns(()), compare=False)


@dataclass(frozen=True)
class TaskList:
    class_name: str
    attribute: str
    framework: str
    redelivers_by_default: str = ""


@dataclass(frozen=True)
class DeliverySetting:
    """A project-wide setting that makes every task of ``framework`` run twice when true."""

    names: tuple[str, ...]
    framework: str
    mechanism: str
    detail: str


@dataclass(frozen=True)
class ScheduleCall:
    """A call that puts the task at ``arg``/``kwarg`` on a schedule; with ``framework``,
    it also makes a plain function that framework's job (rq-scheduler runs any callable)."""

    call: str
    arg: int
    kwarg: str | None
    matcher: Patterns = field(default_factory=lambda: Patterns(()), compare=False)
    framework: str = ""


@dataclass(frozen=True)
class ScheduleDict:
    """A dict literal whose ``key`` names a scheduled task, with one of ``beside``; with
    ``framework``, the function it names is that framework's job."""

    key: str
    beside: tuple[str, ...]
    framework: str = ""


@dataclass(frozen=True)
class AppObject:
    """A framework's app, known by how it is configured rather than how it was built
    (``app = celery_class("x")`` with the class read from a setting): a module-level name
    one of ``methods`` is called on stands for ``stands_for`` (``celery.Celery()``)."""

    methods: tuple[str, ...]
    stands_for: str


@dataclass(frozen=True)
class IdempotentApi:
    url: str
    header: str


@dataclass
class Knowledge:
    task_decorators: list[TaskDecorator]
    task_classes: list[TaskClass]
    task_registrations: list[TaskRegistration]
    task_lists: list[TaskList]
    retry_signals: Patterns
    model_bases: dict[str, str]
    effects: list[Effect]
    not_effect_models: Patterns
    idempotent_apis: list[IdempotentApi]
    lookups: Patterns
    upserts: Patterns
    row_lock_methods: frozenset[str]
    locks: Patterns
    guard_decorators: Patterns
    guard_bases: Patterns
    guard_runners: Patterns
    state_fields: Patterns
    counters: Patterns
    counter_unless_key: re.Pattern[str]
    relative_calls: Patterns
    relative_attributes: Patterns
    reset_methods: Patterns
    """Method names that zero an object's totals (``meter.reset()``)."""
    unstable_sources: Patterns
    key_names: Patterns
    key_kwargs: frozenset[str]
    row_lock_kwargs: frozenset[str] = frozenset()
    """Keywords that make a call read its rows with a lock (``get(pk, for_update=True)``)."""
    claims: Patterns = field(default_factory=lambda: Patterns(()))
    """Calls that take a key atomically and return true only for the first taker."""
    claim_kwargs: frozenset[str] = frozenset()
    """A truthy one of these keywords makes a call such a claim (``r.set(k, 1, nx=True)``)."""
    key_headers: Patterns = field(default_factory=lambda: Patterns(()))
    """HTTP header names (lower case) that carry an idempotency or delivery key."""
    webhook_signature_headers: Patterns = field(default_factory=lambda: Patterns(()))
    """HTTP header names (lower case) that sign an outgoing webhook delivery."""
    webhook_body_ids: Patterns = field(default_factory=lambda: Patterns(()))
    """Keys of a JSON body that identify the delivered event to its receiver."""
    precondition_fields: Patterns = field(default_factory=lambda: Patterns(()))
    """State fields that say whether work may run (``cancelled``), not whether it ran."""
    unique_errors: Patterns = field(default_factory=lambda: Patterns(()))
    """Exceptions a unique constraint raises on a duplicate insert (``IntegrityError``)."""
    delivery_settings: list[DeliverySetting] = field(default_factory=list)
    schedule_calls: list[ScheduleCall] = field(default_factory=list)
    schedule_dicts: list[ScheduleDict] = field(default_factory=list)
    app_objects: list[AppObject] = field(default_factory=list)
    schedule_kwargs: frozenset[str] = frozenset()
    broad_exceptions: frozenset[str] = frozenset()
    raises: list[tuple[Patterns, Patterns]] = field(default_factory=list)
    """(calls, exception types) pairs: calls of one library that raise another's errors."""
    severity_kinds: dict[str, str] = field(default_factory=dict)
    severity_rules: dict[str, str] = field(default_factory=dict)
    info_models: Patterns = field(default_factory=lambda: Patterns(()))
    severity_calls: list[tuple[Patterns, str]] = field(default_factory=list)
    """User overrides by resolved call, first match wins."""
    severity_models: list[tuple[Patterns, str]] = field(default_factory=list)
    """User overrides by model class name, first match wins."""
    assume_retries: bool = False
    """``[tool.idemlint] assume-retries``: every task may run twice, whatever its delivery."""
    frameworks: frozenset[str] | None = None

    def effect_for(self, candidates: Sequence[str]) -> list[Effect]:
        # one regex of every effect first: most calls are none, and asking each
        # effect's own pattern costs a match per effect and candidate
        if not self._any_effect.match(candidates):
            return []
        return [e for e in self.effects if e.matcher.match(candidates)]

    @cached_property
    def _any_effect(self) -> Patterns:
        return Patterns([e.call for e in self.effects])

    @cached_property
    def schedule_call_tails(self) -> re.Pattern[str]:
        """The last names of the scheduling calls (``add_periodic_task``, ``schedule``):
        a call by any other name is no schedule, and is not worth resolving."""
        tails = sorted({c.call.rsplit(".", 1)[-1] for c in self.schedule_calls})
        return re.compile("|".join(f"(?:{fnmatch.translate(t)})" for t in tails) or "(?!)")

    def uses_framework(self, framework: str) -> bool:
        return self.frameworks is None or framework in self.frameworks or framework == "custom"


def _strs(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return ()


def _effect(entry: Mapping[str, Any]) -> Effect:
    text = entry.get("arg-text")
    return Effect(
        call=str(entry["call"]),
        kind=str(entry["kind"]),
        unless_kwargs=_strs(entry.get("unless-kwargs")),
        unless_chain=_strs(entry.get("unless-chain")),
        key_kwarg=entry.get("key-kwarg"),
        arg_type=entry.get("arg-type"),
        arg_text=re.compile(text) if text else None,
        matcher=Patterns([str(entry["call"])]),
    )


def _task_decorator(entry: Mapping[str, Any]) -> TaskDecorator:
    retries = entry.get("retries")
    return TaskDecorator(
        name=str(entry["name"]),
        framework=str(entry.get("framework", "custom")),
        retry_kwargs=_strs(entry.get("retry-kwargs")),
        retries_by_default=bool(entry.get("retries-by-default", retries is True)),
        no_retry_kwargs=_strs(entry.get("no-retry-kwargs")),
        retry_on_kwargs=_strs(entry.get("retry-on-kwargs")),
        redelivery_kwargs=_strs(entry.get("redelivery-kwargs")),
        default_detail=str(entry.get("default-detail", "")),
        redelivers_by_default=str(entry.get("redelivers-by-default", "")),
        scheduled=entry.get("scheduled") is True,
        matcher=Patterns([str(entry["name"])]),
    )


@lru_cache(maxsize=1)
def _builtin() -> dict[str, Any]:
    text = resources.files("idemlint.lint.knowledge").joinpath("builtin.toml").read_text("utf-8")
    return tomllib.loads(text)


def validate_extension(key: str, value: object, file: Path | str | None) -> None:
    """Check one knowledge-extension value from ``[tool.idemlint]``; raise ``ConfigError``."""
    if key not in EXTENSION_KEYS:
        raise ConfigError("unknown knowledge key", file=file, key=key, accepted=EXTENSION_KEYS)
    shape = EXTENSION_KEYS[key]
    if key == "assume-retries":
        if not isinstance(value, bool):
            raise ConfigError(f"expected {shape}", file=file, key=key)
        return
    if key == "severity":
        _check_severity(value, shape, file)
        return
    if not isinstance(value, list):
        raise ConfigError(f"expected a {shape}", file=file, key=key)
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if key == "side-effects":
            if not isinstance(item, dict) or not isinstance(item.get("call"), str):
                raise ConfigError(f"expected a {shape}", file=file, key=where)
            if item.get("kind") not in EFFECT_KINDS:
                raise ConfigError(
                    f"bad kind {item.get('kind')!r}", file=file, key=where, accepted=EFFECT_KINDS
                )
            unknown = set(item) - {"call", "kind", "key-kwarg", "unless-kwargs"}
            if unknown:
                raise ConfigError(
                    f"unknown field {sorted(unknown)[0]!r}",
                    file=file,
                    key=where,
                    accepted=("call", "kind", "key-kwarg", "unless-kwargs"),
                )
        elif key == "task-decorators":
            _check_table(
                item,
                shape,
                file,
                where,
                required="name",
                names=("framework",),
                lists={
                    "retry-kwargs": "keyword names",
                    "no-retry-kwargs": "keyword names",
                    "retry-on-kwargs": "keyword names",
                    "redelivery-kwargs": "keyword names",
                },
            )
        elif key == "task-classes":
            _check_table(
                item,
                shape,
                file,
                where,
                required="base",
                names=("method", "framework"),
                lists={
                    "retry-attributes": "attribute names",
                    "retry-on-attributes": "attribute names",
                    "redelivery-attributes": "attribute names",
                },
            )
        elif key == "idempotent-apis":
            if not (
                isinstance(item, dict)
                and isinstance(item.get("url"), str)
                and isinstance(item.get("header"), str)
            ):
                raise ConfigError(f"expected a {shape}", file=file, key=where)
        elif not isinstance(item, str) or not item:
            raise ConfigError(f"expected a {shape}", file=file, key=where)


LEVELS = ("error", "warning", "info")


def _check_severity(value: object, shape: str, file: Path | str | None) -> None:
    if not isinstance(value, list):
        raise ConfigError(f"expected a {shape}", file=file, key="severity")
    for i, item in enumerate(value):
        where = f"severity[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"expected a {shape}", file=file, key=where)
        unknown = set(item) - {"call", "model", "level"}
        if unknown:
            raise ConfigError(
                f"unknown field {sorted(unknown)[0]!r}",
                file=file,
                key=where,
                accepted=("call", "model", "level"),
            )
        if len([k for k in ("call", "model") if isinstance(item.get(k), str) and item[k]]) != 1:
            raise ConfigError("give one of call or model, as a glob", file=file, key=where)
        if item.get("level") not in LEVELS:
            raise ConfigError(
                f"bad level {item.get('level')!r}", file=file, key=where, accepted=LEVELS
            )


def _check_table(
    item: object,
    shape: str,
    file: Path | str | None,
    where: str,
    *,
    required: str,
    names: tuple[str, ...],
    lists: Mapping[str, str],
) -> None:
    """One table of a task-rule key: ``required`` and ``names`` are non-empty strings,
    ``retries`` a boolean, each of ``lists`` a list of strings; nothing else."""
    if not isinstance(item, dict) or not isinstance(item.get(required), str):
        raise ConfigError(f"expected a {shape}", file=file, key=where)
    fields = (required, *names, "retries", *lists)
    unknown = set(item) - set(fields)
    if unknown:
        raise ConfigError(
            f"unknown field {sorted(unknown)[0]!r}", file=file, key=where, accepted=fields
        )
    for name in names:
        if name in item and not (isinstance(item[name], str) and item[name]):
            raise ConfigError(f"{name} must be a name", file=file, key=where)
    if "retries" in item and not isinstance(item["retries"], bool):
        raise ConfigError("retries must be true or false", file=file, key=where)
    for name, what in lists.items():
        value = item.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a list of {what}", file=file, key=where)


def load_knowledge(
    extensions: Mapping[str, object] | None = None,
    *,
    frameworks: Iterable[str] | None = None,
    source: Path | str | None = None,
) -> Knowledge:
    """Built-in knowledge merged with the user's ``[tool.idemlint]`` extensions."""
    ext = dict(extensions or {})
    for key, value in ext.items():
        validate_extension(key, value, source)
    data = _builtin()

    def user(key: str) -> list[Any]:
        value = ext.get(key, [])
        return list(value) if isinstance(value, list) else []

    effects = [_effect(e) for e in data["side-effect"]]
    effects += [_effect(e) for e in user("side-effects")]
    decorators = [_task_decorator(e) for e in data["task-decorator"]]
    decorators += [_task_decorator(e) for e in user("task-decorators")]
    guards = user("guards")
    return Knowledge(
        task_decorators=decorators,
        task_classes=[
            TaskClass(
                base=e["base"],
                framework=e["framework"],
                method=e["method"],
                retry_attributes=_strs(e.get("retry-attributes")),
                retry_on_attributes=_strs(e.get("retry-on-attributes")),
                redelivery_attributes=_strs(e.get("redelivery-attributes")),
                attempt_hooks=_strs(e.get("attempt-hooks")),
                outcome_hooks=_strs(e.get("outcome-hooks")),
            )
            for e in data["task-class"]
        ]
        + [
            TaskClass(
                base=e["base"],
                framework=str(e.get("framework", "custom")),
                method=str(e.get("method", "run")),
                retry_attributes=_strs(e.get("retry-attributes")),
                retries_by_default=e.get("retries") is True,
                retry_on_attributes=_strs(e.get("retry-on-attributes")),
                redelivery_attributes=_strs(e.get("redelivery-attributes")),
            )
            for e in user("task-classes")
        ],
        task_registrations=[
            TaskRegistration(
                call=e["call"],
                framework=e["framework"],
                arg=int(e["arg"]),
                kwarg=e.get("kwarg"),
                retry_kwargs=_strs(e.get("retry-kwargs")),
                redelivers_by_default=str(e.get("redelivers-by-default", "")),
                redelivery_kwargs=_strs(e.get("redelivery-kwargs")),
                matcher=Patterns([e["call"]]),
            )
            for e in data["task-registration"]
        ],
        task_lists=[
            TaskList(
                e["class-name"],
                e["attribute"],
                e["framework"],
                str(e.get("redelivers-by-default", "")),
            )
            for e in data["task-list"]
        ],
        retry_signals=Patterns(data["retry-signals"]["calls"]),
        model_bases={e["base"]: e["kind"] for e in data["model-base"]},
        effects=effects,
        not_effect_models=Patterns(data["not-side-effects"]["models"]),
        idempotent_apis=[
            IdempotentApi(e["url"], e["header"])
            for e in [*data["idempotent-api"], *user("idempotent-apis")]
        ],
        lookups=Patterns([*data["lookups"]["calls"], *user("lookups")]),
        upserts=Patterns([*data["upserts"]["calls"], *user("upserts")]),
        row_lock_methods=frozenset(data["row-locks"]["methods"]),
        locks=Patterns([*data["locks"]["calls"], *user("locks")]),
        guard_decorators=Patterns([*data["guards"]["decorators"], *guards]),
        guard_bases=Patterns(data["guards"]["bases"]),
        guard_runners=Patterns([*data["guards"]["runners"], *guards]),
        state_fields=Patterns([*data["state-fields"]["names"], *user("state-fields")]),
        counters=Patterns(data["counters"]["calls"]),
        counter_unless_key=re.compile(data["counters"]["unless-key"]),
        relative_calls=Patterns(data["relative-operands"]["calls"]),
        relative_attributes=Patterns(data["relative-operands"]["attributes"]),
        reset_methods=Patterns(data["relative-resets"]["methods"]),
        unstable_sources=Patterns(data["unstable-sources"]["calls"]),
        key_names=Patterns(data["key-names"]["names"]),
        key_kwargs=frozenset(data["key-names"]["kwargs"]),
        row_lock_kwargs=frozenset(data["row-locks"]["keywords"]),
        claims=Patterns(data["claims"]["calls"]),
        claim_kwargs=frozenset(data["claims"]["keywords"]),
        key_headers=Patterns(data["key-names"]["headers"]),
        webhook_signature_headers=Patterns(
            [
                *data["key-names"]["webhook-signature-headers"],
                *(h.lower() for h in user("webhook-signature-headers")),
            ]
        ),
        webhook_body_ids=Patterns(data["key-names"]["webhook-body-ids"]),
        precondition_fields=Patterns(data["state-fields"]["preconditions"]),
        unique_errors=Patterns(data["unique-errors"]["names"]),
        delivery_settings=[
            DeliverySetting(
                _strs(e["names"]), e["framework"], e["mechanism"], str(e.get("detail", ""))
            )
            for e in data["delivery-setting"]
        ],
        schedule_calls=[
            ScheduleCall(
                e["call"],
                int(e["arg"]),
                e.get("kwarg"),
                Patterns([e["call"]]),
                str(e.get("framework", "")),
            )
            for e in data["schedule-call"]
        ],
        schedule_dicts=[
            ScheduleDict(str(e["key"]), _strs(e.get("with")), str(e.get("framework", "")))
            for e in data["delivery"]["schedule-dicts"]
        ],
        app_objects=[
            AppObject(_strs(e["methods"]), str(e["stands-for"])) for e in data.get("app-object", [])
        ],
        schedule_kwargs=frozenset(data["delivery"]["schedule-kwargs"]),
        broad_exceptions=frozenset(data["delivery"]["broad-exceptions"]),
        raises=[
            (Patterns(_strs(e["calls"])), Patterns(_strs(e["exceptions"])))
            for e in data["delivery"]["raises"]
        ],
        severity_kinds=dict(data["severity"]["kinds"]),
        severity_rules=dict(data["severity"]["rules"]),
        info_models=Patterns(data["severity"]["info-models"]),
        severity_calls=[
            (Patterns([e["call"]]), str(e["level"])) for e in user("severity") if "call" in e
        ],
        severity_models=[
            (Patterns([e["model"]]), str(e["level"])) for e in user("severity") if "model" in e
        ],
        assume_retries=ext.get("assume-retries") is True,
        frameworks=frozenset(frameworks) if frameworks is not None else None,
    )

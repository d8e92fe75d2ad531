"""The scenarios: a clean run, twice, a crash after every effect, a concurrent duplicate.

Every scenario starts from the same state (see reset.py) and is compared
with one clean run: the state left behind (database tables, or the user's
``state=``) and the external effects that took place (mail, HTTP writes,
enqueues, counted). A crashed attempt is followed by a retry run to
completion, with the same task id, as a broker's redelivery would.
"""

from __future__ import annotations

import contextvars
import gc
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from idemlint.testing.effects import (
    DB,
    EXTERNAL_KINDS,
    Effect,
    Recording,
    SimulatedCrash,
    effect_counts,
)
from idemlint.testing.hooks import Hooks, django_ready
from idemlint.testing.recorders.http import HttpConfig
from idemlint.testing.report import (
    Problem,
    RetryReport,
    RetrySafetyError,
    Scenario,
    rule_for_effect,
)
from idemlint.testing.reset import DjangoRollback, Restorer, UserReset
from idemlint.testing.runners import Attempt, adapt
from idemlint.testing.state import (
    NonDeterministicTask,
    Projected,
    StateChange,
    diff_custom,
    diff_projected,
    project,
    take_snapshot,
    volatile_columns,
    written_tables,
)

TURNED_AWAY = ("AlreadyInProgress", "Retry")
"""Exceptions by which a duplicate run declines to run concurrently: fine for a duplicate."""


class AtLeastOnceWindow(UserWarning):
    """A crash right after a mail, HTTP write or enqueue repeats it before it is recorded."""


class TaskFailed(Exception):
    """The task raised on its clean run: there is nothing to compare with."""


class RetryCheck:
    """A configured retry-safety check of one task; :meth:`run` or :meth:`assert_safe` it.

    ``state``: a callable returning what must end up the same (default: the
    rows of every table the task writes). ``reset``: a callable restoring the
    starting state (default: Django transaction rollback where possible).
    ``http``: canned HTTP responses (see ``recorders.http.responder``).
    ``concurrent``: also run two overlapping attempts (needs real commits, so
    ``reset=``, or a task without database writes). ``strict``: count the
    at-least-once window of a non-transactional effect as a failure.
    ``databases``: the Django aliases to roll back (default: all).
    """

    def __init__(
        self,
        task: Any,
        *,
        state: Callable[[], Any] | None = None,
        reset: Callable[[], Any] | None = None,
        http: HttpConfig = None,
        concurrent: bool = False,
        strict: bool = False,
        databases: Sequence[str] | None = None,
        max_crash_points: int = 200,
    ) -> None:
        if state is not None and not callable(state):
            raise TypeError(f"state= must be a callable, not {state!r}")
        if reset is not None and not callable(reset):
            raise TypeError(f"reset= must be a callable, not {reset!r}")
        self.task = task
        self.state_fn = state
        self.reset = reset
        self.http = http
        self.concurrent = concurrent
        self.strict = strict
        self.databases = databases
        self.max_crash_points = max_crash_points

    def assert_safe(self, *args: Any, **kwargs: Any) -> RetryReport:
        """Run the check; raise :class:`RetrySafetyError` with the report when unsafe."""
        report = self.run(*args, **kwargs)
        if not report.safe:
            raise RetrySafetyError(report)
        for scenario in report.windows:
            warnings.warn(AtLeastOnceWindow(f"{report.task}: {scenario.render()}"), stacklevel=2)
        return report

    # -- the run ------------------------------------------------------------
    def run(self, *args: Any, **kwargs: Any) -> RetryReport:
        attempt = adapt(self.task, args, kwargs)
        hooks = Hooks(self.http)
        restorer = self._restorer()
        try:
            return _Run(self, attempt, hooks, restorer).run()
        finally:
            try:
                restorer.finish()
            finally:
                hooks.close()
                attempt.close()

    def _restorer(self) -> Restorer:
        if self.reset is not None:
            return UserReset(self.reset)
        if django_ready():
            return DjangoRollback(self.databases)
        return Restorer()


class _Run:
    """The state of one :meth:`RetryCheck.run`."""

    def __init__(self, check: RetryCheck, attempt: Attempt, hooks: Hooks, restorer: Restorer):
        self.check = check
        self.attempt = attempt
        self.hooks = hooks
        self.restorer = restorer
        self.tables: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.targets: dict[str, Any] = {}
        self.noise: dict[str, frozenset[int]] = {}

    # -- attempts -----------------------------------------------------------
    def attempt_once(self, crash_at: int | None = None) -> tuple[Recording, BaseException | None]:
        rec = Recording(crash_at)
        error: BaseException | None = None
        try:
            with self.hooks.attempt(rec):
                self.attempt()
        except SimulatedCrash as exc:
            error = exc
        except Exception as exc:
            error = exc
        finally:
            self.restorer.runtime_keys |= rec.runtime_keys
            self.targets.update(rec.targets)
        if rec.crashed is not None:
            _release_frames(error)
        return rec, error

    def state(self) -> Any:
        if self.check.state_fn is not None:
            return self.check.state_fn()
        return take_snapshot(self.tables, self.targets)

    def projected(self, state: Any) -> Any:
        return state if self.check.state_fn is not None else project(state, self.noise)

    def changes(self, clean: Any, actual: Any) -> list[StateChange]:
        if self.check.state_fn is not None:
            return diff_custom(clean, actual)
        assert isinstance(clean, Projected) and isinstance(actual, Projected)
        return diff_projected(clean, actual)

    # -- scenarios ----------------------------------------------------------
    def run(self) -> RetryReport:
        name = self.attempt.name
        with self.restorer.scope():
            clean, error = self.attempt_once()
            if error is not None:
                raise TaskFailed(
                    f"{name} raised on its clean run: {type(error).__name__}: {error}"
                ) from error
            self.restorer.check(sorted({e.target for e in clean.durable if e.target}))
            if isinstance(self.restorer, DjangoRollback):
                self.restorer.narrow(clean.databases_used)
            self.tables = written_tables(clean.points)
            clean_state = self.state()
        clean_counts = effect_counts(_external(clean.durable))
        examples = {e.identity: e for e in clean.points}

        scenarios: list[Scenario] = []
        twice = Scenario("run twice")
        with self.restorer.scope():
            first, _ = self.attempt_once()
            first_state = self.state()
            second, error = self.attempt_once()
            second_state = self.state()
        if self.check.state_fn is None:
            try:
                self.noise = volatile_columns(clean_state, first_state)
            except NonDeterministicTask as exc:
                raise TaskFailed(f"{name}: {exc}") from exc
        if error is not None:
            twice.problems.append(_raised("the second run", error))
        outcome = [e for rec in (first, second) for e in rec.durable]
        self.judge(
            twice,
            clean_counts,
            examples,
            outcome,
            self.changes(self.projected(first_state), self.projected(second_state)),
        )
        scenarios.append(twice)

        clean_projected = self.projected(clean_state)
        points = clean.points[: self.check.max_crash_points]
        for index, effect in enumerate(points, 1):
            scenario = Scenario(
                f"crash after effect {index} ({effect.label})",
                crash_index=index,
                crash_effect=effect,
            )
            with self.restorer.scope():
                crashed, error = self.attempt_once(crash_at=index)
                if crashed.crashed is None:
                    scenario.notes.append(
                        "the crash point was not reached: this attempt had "
                        f"{len(crashed.points)} effects"
                        + (f" and raised {type(error).__name__}: {error}" if error else "")
                    )
                retry, error = self.attempt_once()
                final = self.state()
            if error is not None:
                scenario.problems.append(_raised("the retry", error))
            self.judge(
                scenario,
                clean_counts,
                examples,
                crashed.durable + retry.durable,
                self.changes(clean_projected, self.projected(final)),
            )
            scenarios.append(scenario)
        if len(clean.points) > len(points):
            twice.notes.append(
                f"only the first {len(points)} of {len(clean.points)} effects were crash points"
            )
        if self.check.concurrent:
            scenarios.append(self.concurrent(clean_counts, examples, clean_projected))
        if not self.check.strict:
            _mark_windows(scenarios)
        return RetryReport(name, list(clean.points), scenarios, self.restorer.description)

    def concurrent(
        self, clean_counts: Counter[str], examples: dict[str, Effect], clean_projected: Any
    ) -> Scenario:
        scenario = Scenario("concurrent duplicate (two overlapping runs)")
        if isinstance(self.restorer, DjangoRollback) and self.tables:
            scenario.notes.append(
                "skipped: two threads cannot share the check's rollback transaction; "
                "pass reset= to run it with real commits"
            )
            return scenario
        recordings: list[Recording] = []
        errors: list[BaseException] = []
        with self.restorer.scope():
            if self.attempt.is_async:
                recordings, errors = self._concurrent_async()
            else:
                recordings, errors = self._concurrent_threads()
            final = self.state()
        for error in errors:
            if type(error).__name__ not in TURNED_AWAY:
                scenario.problems.append(_raised("a duplicate run", error))
        durable = [e for rec in recordings for e in rec.durable]
        self.judge(
            scenario,
            clean_counts,
            examples,
            durable,
            self.changes(clean_projected, self.projected(final)),
        )
        return scenario

    def _concurrent_threads(self) -> tuple[list[Recording], list[BaseException]]:
        barrier = threading.Barrier(2)
        results: list[tuple[Recording, BaseException | None]] = []
        lock = threading.Lock()

        def one() -> None:
            barrier.wait()
            outcome = self.attempt_once()
            with lock:
                results.append(outcome)

        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(one,)) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [r for r, _ in results], [e for _, e in results if e is not None]

    def _concurrent_async(self) -> tuple[list[Recording], list[BaseException]]:
        import asyncio

        async def one() -> tuple[Recording, BaseException | None]:
            rec = Recording()
            try:
                with self.hooks.attempt(rec):
                    await self.attempt.call_raw()
            except Exception as exc:
                return rec, exc
            finally:
                self.restorer.runtime_keys |= rec.runtime_keys
                self.targets.update(rec.targets)
            return rec, None

        async def both() -> list[tuple[Recording, BaseException | None]]:
            return list(await asyncio.gather(one(), one()))

        results = self.attempt.loop().run_until_complete(both())
        return [r for r, _ in results], [e for _, e in results if e is not None]

    # -- judging ------------------------------------------------------------
    def judge(
        self,
        scenario: Scenario,
        clean_counts: Counter[str],
        examples: dict[str, Effect],
        durable: list[Effect],
        changes: list[StateChange],
    ) -> None:
        external = _external(durable)
        counts = effect_counts(external)
        by_identity: dict[str, list[Effect]] = {}
        for effect in external:
            by_identity.setdefault(effect.identity, []).append(effect)
        for identity in sorted(set(counts) | set(clean_counts)):
            ran, expected = counts.get(identity, 0), clean_counts.get(identity, 0)
            if ran == expected:
                continue
            seen = by_identity.get(identity, [])
            example = seen[0] if seen else examples[identity]
            if ran > expected:
                keys = {e.dedupe for e in seen if e.dedupe is not None}
                scenario.problems.append(
                    Problem(
                        f"effect repeated: {example.label} ran {ran} times ({expected} in a "
                        "clean run)" + (" under different Idempotency-Keys" if keys else ""),
                        rule_for_effect(example, keys_changed=len(keys) > 1),
                        identity,
                        ran,
                        expected,
                    )
                )
            else:
                scenario.problems.append(
                    Problem(
                        f"effect lost: {example.label} ran {ran} times ({expected} in a clean run)",
                        "IDM602",
                        identity,
                        ran,
                        expected,
                    )
                )
        for change in changes:
            scenario.problems.append(Problem(change.message, _state_rule(change, durable)))


def _release_frames(error: BaseException | None) -> None:
    """Let go of a crashed attempt's frames, as a dead worker's would be.

    The traceback keeps the task's cursors and connections alive; a SQLite
    connection closed with a live statement stays open as a zombie holding
    its write lock, and the next scenario's reset would wait for it.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
    gc.collect()


def _external(effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if e.kind in EXTERNAL_KINDS]


def _raised(who: str, error: BaseException) -> Problem:
    name = type(error).__name__
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    unique = "Integrity" in name or "Unique" in name or "unique" in text.lower()
    return Problem(f"{who} raised {name}: {text}", "IDM301" if unique else "IDM601")


def _state_rule(change: StateChange, durable: list[Effect]) -> str:
    if change.rows_before is not None and change.rows_after is not None:
        return "IDM301" if change.rows_after > change.rows_before else "IDM602"
    table = (change.table or "").split(" (")[0]
    writes = [e for e in durable if e.kind == DB and e.verb == "UPDATE" and e.table == table]
    if any(e.relative for e in writes):
        return "IDM502"
    if writes:
        return "IDM501"
    return "IDM602"


def _mark_windows(scenarios: list[Scenario]) -> None:
    """Downgrade the at-least-once window of an external effect to a warning.

    After an external effect k (a mail, an HTTP write, an enqueue) that cannot
    share a transaction with its record, a crash before the record is durable
    makes the retry do k again: no code can close that gap, only shrink it.
    Scenarios k, k+1, ... whose only problem is "k ran once more" form that
    window when the first scenario after them (or running twice, at the end)
    no longer repeats k: the task did record k. A task that never records k
    repeats it in every later scenario and in the twice check, and fails.
    """
    crashes = {s.crash_index: s for s in scenarios if s.crash_index is not None}
    twice = scenarios[0]

    def repeats_once(scenario: Scenario, identity: str) -> bool:
        return len(scenario.problems) == 1 and _repeated_once(scenario.problems[0], identity)

    for index, scenario in crashes.items():
        effect = scenario.crash_effect
        if effect is None or effect.kind not in EXTERNAL_KINDS:
            continue
        end = index
        while end in crashes and repeats_once(crashes[end], effect.identity):
            end += 1
        if end == index:
            continue
        after = crashes.get(end, twice)
        if any(p.identity == effect.identity for p in after.problems):
            continue
        for inside in range(index, end):
            crashes[inside].window = True


def _repeated_once(problem: Problem, identity: str) -> bool:
    return (
        problem.identity == identity
        and problem.expected is not None
        and problem.ran == problem.expected + 1
    )


def assert_retry_safe(
    task: Any,
    *args: Any,
    state: Callable[[], Any] | None = None,
    reset: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> RetryReport:
    """Fail unless ``task(*args, **kwargs)`` is safe to run twice and to crash and retry.

    Runs the task once cleanly, twice in a row, and once per effect point with
    a simulated crash right after that effect followed by a retry; each must
    end as one clean run did. Raises :class:`RetrySafetyError` with a report
    naming the failing scenario, the repeated or lost effect and the analyzer
    rule that fixes it. Returns the report when the task is safe. For more
    options (HTTP responses, a concurrent duplicate, strict mode) use
    :class:`RetryCheck`.
    """
    return RetryCheck(task, state=state, reset=reset).assert_safe(*args, **kwargs)


__all__ = ["AtLeastOnceWindow", "RetryCheck", "TaskFailed", "assert_retry_safe"]

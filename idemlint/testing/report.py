"""What went wrong in a scenario, in words a person can act on, with the rule that fixes it.

Each problem names the nearest analyzer rule: the rule that, had it been
heeded, would have made the scenario pass. The codes and slugs are the
analyzer's (``idemlint explain IDM301`` prints the rule with its fix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from idemlint.findings import checklist_for
from idemlint.testing.effects import EMAIL, ENQUEUE, HTTP, Effect

FIXES = {
    "IDM201": "build the idempotency key from the task's arguments or task id, not uuid4()",
    "IDM301": "look the row up by a unique key first, or upsert() on a unique constraint",
    "IDM302": "record that the message was sent (a step, or an outbox row in the same transaction)",
    "IDM303": "pass an idempotency key to the payment API and record the charge",
    "IDM304": "send an Idempotency-Key header, or record the call as a step",
    "IDM305": "enqueue with a stable task id, or record the enqueue as a step",
    "IDM501": "write the absolute value, or guard the update with a recorded once-per-job marker",
    "IDM502": "guard the relative update with a once-per-job marker in the same transaction",
    "IDM601": "check the status under a row lock or with a compare-and-set",
    "IDM602": "record each side effect's terminal state so a retry resumes, not restarts",
}

_PAYMENT = re.compile(r"charge|payment|pay|refund|transfer|invoice", re.I)


def rule_for_effect(effect: Effect, *, keys_changed: bool = False) -> str:
    """The rule whose fix prevents ``effect`` from repeating."""
    if effect.kind == EMAIL:
        return "IDM302"
    if effect.kind == ENQUEUE:
        return "IDM305"
    if effect.kind == HTTP:
        if keys_changed:
            return "IDM201"
        return "IDM303" if _PAYMENT.search(effect.label) else "IDM304"
    return "IDM301"


def fix_line(rule: str) -> str:
    return f"fix: {rule} [{checklist_for(rule)}] {FIXES[rule]}"


@dataclass(frozen=True)
class Problem:
    """One difference from a single clean run."""

    message: str
    rule: str
    identity: str | None = None
    """The effect identity a repeated or lost effect is about."""
    ran: int | None = None
    expected: int | None = None


@dataclass
class Scenario:
    """One scenario of the check and what it found."""

    name: str
    """``run twice``, ``crash after effect 3 (POST ...)``, ``concurrent duplicate``."""
    crash_index: int | None = None
    crash_effect: Effect | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    window: bool = False
    """Only the crashed-after external effect repeated, once, and a crash one effect
    later does not repeat it: the unavoidable at-least-once window of an effect
    that cannot be made transactional."""

    @property
    def failed(self) -> bool:
        return bool(self.problems) and not self.window

    def render(self) -> str:
        lines = [f"{self.name}, then retry:" if self.crash_index else f"{self.name}:"]
        if self.window:
            lines[0] += " (at-least-once window, reported as a warning)"
        lines += [f"  {p.message}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        seen: list[str] = []
        for problem in self.problems:
            if problem.rule not in seen:
                seen.append(problem.rule)
        lines += [f"  {fix_line(rule)}" for rule in seen]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


@dataclass
class RetryReport:
    """Everything one check ran and found. ``safe`` is the verdict."""

    task: str
    effects: list[Effect]
    """The effect points of one clean run, in order."""
    scenarios: list[Scenario]
    reset: str
    """How the starting state was restored between scenarios."""

    @property
    def failures(self) -> list[Scenario]:
        return [s for s in self.scenarios if s.failed]

    @property
    def windows(self) -> list[Scenario]:
        return [s for s in self.scenarios if s.window]

    @property
    def safe(self) -> bool:
        return not self.failures

    @property
    def summary(self) -> str:
        """The verdict in one line, for a log or a test's output."""
        failed = self.failures
        if failed:
            return (
                f"{self.task} is not safe to retry: {len(failed)} of {len(self.scenarios)} "
                "scenarios differ from one clean run"
            )
        count = len(self.scenarios)
        said = f"{count} scenario{'' if count == 1 else 's'}"
        if self.windows:
            said += f", {len(self.windows)} with an at-least-once window"
        return f"{self.task} is safe to retry ({said})"

    def render(self) -> str:
        """The summary, the effects of one clean run, and each failed scenario with its fix."""
        lines = [self.summary, f"effects of one clean run: {self._effects()}"]
        lines.append(f"reset: {self.reset}")
        for scenario in self.failures + self.windows:
            lines += ["", scenario.render()]
        return "\n".join(lines)

    def __str__(self) -> str:
        """``print(report)`` shows what a person reads, not the dataclass's fields."""
        return self.render()

    def _effects(self) -> str:
        if not self.effects:
            return "none recorded"
        return "; ".join(f"{i} {e.label}" for i, e in enumerate(self.effects, 1))


class RetrySafetyError(AssertionError):
    """A task is not safe to retry; ``report`` says how and what fixes it."""

    def __init__(self, report: RetryReport) -> None:
        super().__init__(report.render())
        self.report = report


__all__ = [
    "FIXES",
    "Problem",
    "RetryReport",
    "RetrySafetyError",
    "Scenario",
    "fix_line",
    "rule_for_effect",
]

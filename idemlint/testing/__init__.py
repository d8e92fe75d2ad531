"""pytest helpers that prove a task retry-safe: run it twice, crash it after every effect.

``assert_retry_safe(task, *args, state=None, reset=None, **kwargs)`` is the
entry point (also a pytest fixture of the same name, registered through the
``pytest11`` entry point as ``idemlint.testing.plugin``). :class:`RetryCheck`
takes further options. Importing this package imports no ORM, HTTP client or
task framework: hooks are installed only for the libraries the task's own
code has imported.
"""

from idemlint.testing.check import AtLeastOnceWindow, RetryCheck, TaskFailed, assert_retry_safe
from idemlint.testing.effects import Effect, SimulatedCrash
from idemlint.testing.recorders.http import HttpRequest, HttpResponse
from idemlint.testing.report import Problem, RetryReport, RetrySafetyError, Scenario
from idemlint.testing.reset import CannotReset, table_snapshot
from idemlint.testing.state import NonDeterministicTask

__all__ = [
    "AtLeastOnceWindow",
    "CannotReset",
    "Effect",
    "HttpRequest",
    "HttpResponse",
    "NonDeterministicTask",
    "Problem",
    "RetryCheck",
    "RetryReport",
    "RetrySafetyError",
    "Scenario",
    "SimulatedCrash",
    "TaskFailed",
    "assert_retry_safe",
    "table_snapshot",
]

"""The pytest plugin (entry point ``pytest11: idemlint``): the ``assert_retry_safe`` fixture.

Kept to one import of this package so that loading the plugin costs nothing
in a project that never uses it, and imports none of the libraries it hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from idemlint.testing.check import assert_retry_safe as _assert_retry_safe
from idemlint.testing.report import RetryReport


@pytest.fixture
def assert_retry_safe() -> Callable[..., RetryReport]:
    """``assert_retry_safe(task, *args, state=None, reset=None, **kwargs)`` as a fixture."""
    return _assert_retry_safe


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "retry_safety: a test that crashes a task after every effect and retries it"
    )

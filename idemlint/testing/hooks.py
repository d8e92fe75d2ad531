"""All recorders together: installed for one check, active for one attempt at a time."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from idemlint.testing.effects import Recording, recording
from idemlint.testing.recorders._patch import Patches
from idemlint.testing.recorders.http import HttpConfig


def django_ready() -> bool:
    """Django is imported by the project and its settings are configured."""
    if "django.db" not in sys.modules:
        return False
    from django.conf import settings  # type: ignore[import-untyped]

    return bool(settings.configured)


class Hooks:
    """The patches of one check; :meth:`close` puts every library back."""

    def __init__(self, http: HttpConfig = None) -> None:
        self.patches = Patches()
        self._http = http
        self._django: Any = None
        self._sqlalchemy: Any = None
        self._installed_http = False

    def install(self) -> None:
        """Hook what is imported now (called before every attempt, so late imports count)."""
        from idemlint.testing.recorders.mail import MailHooks
        from idemlint.testing.recorders.queues import QueueHooks

        if self._django is None and django_ready():
            from idemlint.testing.recorders.django_db import DjangoHooks

            self._django = DjangoHooks(self.patches)
        if self._sqlalchemy is None and "sqlalchemy" in sys.modules:
            from idemlint.testing.recorders.sqlalchemy_db import SqlAlchemyHooks

            self._sqlalchemy = SqlAlchemyHooks(self.patches)
        if not self._installed_http:
            from idemlint.testing.recorders.http import HttpHooks

            HttpHooks(self.patches, self._http)
            self._installed_http = True
        MailHooks(self.patches)
        QueueHooks(self.patches)

    @contextmanager
    def attempt(self, rec: Recording) -> Iterator[Recording]:
        """Record one attempt of the task into ``rec``."""
        self.install()
        with ExitStack() as stack:
            stack.enter_context(recording(rec))
            if self._django is not None:
                stack.enter_context(self._django.attempt(rec))
            yield rec

    def close(self) -> None:
        if self._sqlalchemy is not None:
            self._sqlalchemy.uninstall()
        self.patches.restore()
        self._django = self._sqlalchemy = None
        self._installed_http = False


__all__ = ["Hooks", "django_ready"]

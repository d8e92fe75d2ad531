"""Email: Django's mail API and ``smtplib``, captured and never delivered.

Django's ``get_connection`` is replaced by a backend that keeps Django's
locmem behaviour (messages land in ``django.core.mail.outbox``, which tests
already read) and records each message. ``smtplib.SMTP`` keeps its API but
talks to nobody: connecting, EHLO, STARTTLS and login succeed, and each
``sendmail`` (which ``send_message`` calls) is recorded.
"""

from __future__ import annotations

import sys
from email.parser import BytesHeaderParser
from typing import Any

from idemlint.testing.effects import EMAIL, Effect, active, mask
from idemlint.testing.recorders._patch import Patches


def _record(recipients: list[str], subject: str) -> None:
    rec = active()
    if rec is None:
        return
    to = ", ".join(sorted(recipients))
    label = f"email to {to}: {subject!r}"
    rec.point(Effect(EMAIL, label, mask(label)))


class MailHooks:
    """Installs the Django hook (when Django is imported) and the smtplib capture."""

    def __init__(self, patches: Patches) -> None:
        if "django.core.mail" in sys.modules or "django" in sys.modules:
            self._django(patches)
        self._smtplib(patches)

    def _django(self, patches: Patches) -> None:
        from django.conf import settings  # type: ignore[import-untyped]

        if not settings.configured:
            return
        import django.core.mail as mail  # type: ignore[import-untyped]
        from django.core.mail.backends.locmem import EmailBackend  # type: ignore[import-untyped]

        if patches.done(mail, "get_connection"):
            return

        class RecordingBackend(EmailBackend):  # type: ignore[misc]
            def send_messages(self, messages: Any) -> int:
                sent = 0
                for message in messages:
                    sent += super().send_messages([message])
                    _record(list(message.recipients()), str(message.subject))
                return sent

        def get_connection(backend: Any = None, fail_silently: bool = False, **kwds: Any) -> Any:
            return RecordingBackend(fail_silently=fail_silently, **kwds)

        patches.replace(mail, "get_connection", get_connection)

    def _smtplib(self, patches: Patches) -> None:
        import smtplib

        smtp = smtplib.SMTP
        if patches.done(smtp, "sendmail"):
            return

        def connect(self: Any, host: str = "localhost", port: int = 0, source: Any = None) -> Any:
            self._host = host
            return (220, b"idemlint.testing capture")

        def ok(self: Any, *args: Any, **kwargs: Any) -> Any:
            return (250, b"OK")

        def sendmail(
            self: Any, from_addr: str, to_addrs: Any, msg: Any, *args: Any, **kwargs: Any
        ) -> dict[str, Any]:
            recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
            raw = msg.encode() if isinstance(msg, str) else bytes(msg)
            subject = BytesHeaderParser().parsebytes(raw).get("Subject", "")
            _record(recipients, str(subject))
            return {}

        def close(self: Any) -> None:
            self.sock = None
            self.file = None

        patches.replace(smtp, "connect", connect)
        for name in ("ehlo", "helo", "starttls", "login", "noop", "rset", "quit"):
            patches.replace(smtp, name, ok)
        patches.replace(smtp, "sendmail", sendmail)
        patches.replace(smtp, "close", close)
        patches.replace(smtp, "ehlo_or_helo_if_needed", lambda self: None)


__all__ = ["MailHooks"]

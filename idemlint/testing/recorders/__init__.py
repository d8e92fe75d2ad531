"""Hooks that record a task's side effects without letting them leave the process.

Each module patches one family of libraries for the duration of a check and
reports to :func:`idemlint.testing.effects.active`. A hook is installed only
for a library that is already imported (the task's module imported it), so a
project without Django, SQLAlchemy or Celery never imports them; the HTTP
clients are the exception, imported when installed, because a missed hook
there would mean real network calls.
"""

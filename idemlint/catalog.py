"""The rule catalog: one TOML file per rule under ``rules/`` (shipped as ``idemlint.rulefiles``).

The catalog is the single source of a rule's words: the engine takes its
messages from here, ``idemlint explain`` and the docs are generated from here,
and the example test lints every ``bad`` and ``good`` snippet in it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from idemlint.findings import CHECKLIST, NOTICE, checklist_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REQUIRED_KEYS = ("id", "name", "checklist", "message", "why", "fix", "short_fix", "bad", "good")

SHORT_FIX_WIDTH = 100
"""``short_fix`` is printed under each finding (``--show-fixes``): one line, this wide at most."""


class CatalogError(Exception):
    """A catalog file is malformed: a packaging bug, never a user error."""


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    checklist: str
    message: str
    """Format string; ``{detail}`` is filled with the specific call or field."""
    why: str
    fix: str
    short_fix: str
    """The fix in one line, under each finding (``--show-fixes``, JSON and SARIF ``fix``);
    ``fix`` is the full paragraph of ``explain`` and the docs."""
    bad: tuple[str, ...]
    good: tuple[str, ...]
    race_message: str = ""
    """Optional: the message when the finding is exposed by two overlapping runs of
    different messages (the ``concurrent`` mechanism) rather than by a second run of the
    same one, where ``message`` would say something untrue ("applies it twice")."""

    def format_message(self, detail: str = "", delivery: str = "", kind: str = "") -> str:
        """The message for one finding: ``detail`` names the call or field, ``delivery``
        the mechanism that makes the task run twice (a clause; "" drops its part), and
        ``kind`` that mechanism's kind (``concurrent`` picks :attr:`race_message`)."""
        text = self.race_message if kind == "concurrent" and self.race_message else self.message
        if not delivery:
            text = text.replace(": {delivery}", "").replace("; {delivery}", "")
        text = text.replace("{detail}", detail).replace("{delivery}", delivery)
        return " ".join(text.split())

    @property
    def help_uri(self) -> str:
        """The rule's page in the docs (generated from this catalog)."""
        return help_uri(self.id)


DOCS_URL = "https://idemlint.readthedocs.io/en/latest/"


def help_uri(rule_id: str) -> str:
    """The docs page of a rule, by id: every rule has one, notices included."""
    return f"{DOCS_URL}rules/{rule_id}/"


def _parse(name: str, text: str) -> Rule:
    data = tomllib.loads(text)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CatalogError(f"{name}: missing keys {', '.join(missing)}")
    rule = Rule(
        id=str(data["id"]),
        name=str(data["name"]),
        checklist=str(data["checklist"]),
        message=str(data["message"]),
        why=str(data["why"]).strip(),
        fix=str(data["fix"]).strip(),
        short_fix=str(data["short_fix"]).strip(),
        bad=tuple(str(x) for x in data["bad"]),
        good=tuple(str(x) for x in data["good"]),
        race_message=str(data.get("race_message", "")),
    )
    if "\n" in rule.short_fix or not 0 < len(rule.short_fix) <= SHORT_FIX_WIDTH:
        raise CatalogError(f"{name}: short_fix must be one line of 1 to {SHORT_FIX_WIDTH} chars")
    if name != f"{rule.id}.toml":
        raise CatalogError(f"{name}: file name must be {rule.id}.toml")
    if rule.checklist not in (*CHECKLIST, NOTICE) or checklist_for(rule.id) != rule.checklist:
        raise CatalogError(f"{name}: checklist {rule.checklist!r} does not match {rule.id}")
    return rule


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, Rule]:
    """All rules by id, in id order."""
    rules: dict[str, Rule] = {}
    for entry in sorted(resources.files("idemlint.rulefiles").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            rule = _parse(entry.name, entry.read_text(encoding="utf-8"))
            rules[rule.id] = rule
    return rules


def get_rule(rule_id: str) -> Rule:
    try:
        return load_catalog()[rule_id]
    except KeyError:
        raise CatalogError(f"unknown rule {rule_id}") from None

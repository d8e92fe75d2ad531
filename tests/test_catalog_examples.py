"""Every rule's catalog examples, linted (fixit-style examples as tests).

A ``bad`` example must raise its rule, a ``good`` example must be clean. Adding a
rule means adding ``rules/IDMxxx.toml`` with its examples; this test picks it up.
"""

from __future__ import annotations

import pytest

from idemlint.catalog import load_catalog
from idemlint.engine import check_source
from idemlint.findings import CHECKLIST, NOTICE

TASK_LEVEL = {"IDM101", "IDM602"}
"""Rules about a whole task: their bad examples necessarily also hold the statement-level
findings that make the task unsafe, so for them the rule must be present, not alone."""
NOT_PROVOKABLE = {"IDM002"}
"""A rule crashing cannot be written as a snippet; the engine tests cover it."""

CATALOG = load_catalog()
CASES = [
    pytest.param(rule.id, kind, index, source, id=f"{rule.id}-{kind}-{index}")
    for rule in CATALOG.values()
    for kind in ("bad", "good")
    for index, source in enumerate(getattr(rule, kind))
]


@pytest.mark.parametrize(("rule_id", "kind", "index", "source"), CASES)
def test_example(rule_id: str, kind: str, index: int, source: str) -> None:
    findings = check_source(source)
    got = [(f.line, f.rule) for f in findings]
    if kind == "good":
        assert got == [], f"{rule_id} good example {index} is not clean: {findings}"
    elif rule_id in TASK_LEVEL:
        assert rule_id in [r for _, r in got], f"{rule_id} not raised: {findings}"
    else:
        assert [r for _, r in got] == [rule_id], f"{rule_id} bad example {index}: {findings}"


def test_catalog_is_complete() -> None:
    assert len(CATALOG) >= 18
    for rule in CATALOG.values():
        assert rule.good, f"{rule.id} has no good example"
        assert rule.bad or rule.id in NOT_PROVOKABLE, f"{rule.id} has no bad example"
        digit = int(rule.id[3])
        assert rule.checklist == (NOTICE if digit == 0 else CHECKLIST[digit - 1])
        assert rule.why and rule.fix and rule.message
        assert "{" not in rule.format_message("x"), f"{rule.id} message has a stray placeholder"


def test_every_checklist_item_has_a_rule() -> None:
    assert {r.checklist for r in CATALOG.values()} == {*CHECKLIST, NOTICE}


def test_fixes_name_the_runtime_helpers() -> None:
    for rule in CATALOG.values():
        if rule.checklist != NOTICE:
            assert "idemlint.runtime" in rule.fix, f"{rule.id}'s fix names no runtime helper"

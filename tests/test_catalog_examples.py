"""Every rule's catalog examples, linted: the catalog is an executable spec.

A ``bad`` example must raise its rule exactly once, and nothing else; a ``good``
example must be clean. Two rules are about a whole task and cannot appear alone
(see ``TASK_LEVEL``). Adding a rule means adding ``rules/IDMxxx.toml`` with its
examples; this test picks it up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from idemlint.catalog import Rule, load_catalog
from idemlint.findings import CHECKLIST, NOTICE, Finding
from idemlint.report.checking import check_source

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"

SPEC_RULES = {
    "IDM001", "IDM002", "IDM003",
    "IDM101",
    "IDM201", "IDM202",
    "IDM301", "IDM302", "IDM303", "IDM304", "IDM305",
    "IDM401", "IDM402",
    "IDM501", "IDM502", "IDM503",
    "IDM601", "IDM602", "IDM603", "IDM604",
}  # fmt: skip
"""The rule set of the analyzer's contract (rules-spec): the catalog holds exactly these."""

TASK_LEVEL = {
    "IDM602": "is made of the unguarded side effects, each reported on its own line",
}
"""Rules whose bad examples necessarily carry other findings. For them the rule must be
raised exactly once, and the companions must be statement-level rules (IDM2xx-IDM6xx)."""

NOT_PROVOKABLE = {"IDM002": "a rule crashing cannot be written as a snippet (engine tests)"}

CATALOG = load_catalog()


def _cases() -> list[object]:
    cases: list[object] = []
    for rule in CATALOG.values():
        if rule.id in NOT_PROVOKABLE:
            cases.append(
                pytest.param(
                    rule.id, "bad", 0, "",
                    id=f"{rule.id}-bad",
                    marks=pytest.mark.skip(reason=f"{rule.id}: {NOT_PROVOKABLE[rule.id]}"),
                )
            )  # fmt: skip
        for kind in ("bad", "good"):
            for index, source in enumerate(getattr(rule, kind)):
                cases.append(
                    pytest.param(rule.id, kind, index, source, id=f"{rule.id}-{kind}-{index}")
                )
    return cases


def _show(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.line}: {f.rule} {f.message}" for f in findings) or "  (none)"


@pytest.mark.parametrize(("rule_id", "kind", "index", "source"), _cases())
def test_example(rule_id: str, kind: str, index: int, source: str) -> None:
    findings = check_source(source)
    rules = [f.rule for f in findings]
    where = f"{rule_id} {kind} example {index}"
    if kind == "good":
        assert rules == [], f"{where} must be clean, got:\n{_show(findings)}"
        return
    assert rules.count(rule_id) == 1, f"{where} must raise {rule_id} once, got:\n{_show(findings)}"
    others = [r for r in rules if r != rule_id]
    if rule_id in TASK_LEVEL:
        stray = [r for r in others if not "2" <= r[3] <= "6"]
        assert not stray, f"{where}: {rule_id} {TASK_LEVEL[rule_id]}; got:\n{_show(findings)}"
    else:
        assert not others, f"{where} must raise only {rule_id}, got:\n{_show(findings)}"


def test_catalog_holds_exactly_the_spec_rules() -> None:
    assert set(CATALOG) == SPEC_RULES


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("IDM*.toml")), ids=lambda p: p.stem)
def test_rule_file_agrees_with_its_id_and_checklist(path: Path) -> None:
    data = tomllib.loads(path.read_text("utf-8"))
    assert data["id"] == path.stem, f"{path.name} declares id {data['id']}"
    digit = int(path.stem[3])
    expected = NOTICE if digit == 0 else CHECKLIST[digit - 1]
    assert data["checklist"] == expected, f"{path.name}: IDM{digit}xx rules are {expected!r}"


@pytest.mark.parametrize("rule", CATALOG.values(), ids=lambda r: r.id)
def test_rule_has_examples_and_words(rule: Rule) -> None:
    assert 1 <= len(rule.good) <= 3, f"{rule.id} needs 1-3 good examples"
    if rule.id in NOT_PROVOKABLE:
        assert rule.bad == ()
    else:
        assert 1 <= len(rule.bad) <= 3, f"{rule.id} needs 1-3 bad examples"
    assert rule.name and rule.why and rule.fix and rule.message
    assert "{" not in rule.format_message("x"), f"{rule.id} message has a stray placeholder"


@pytest.mark.parametrize("rule", CATALOG.values(), ids=lambda r: r.id)
def test_examples_are_real_python(rule: Rule) -> None:
    """Examples are complete modules; only IDM001's bad ones fail to compile, on purpose."""
    for kind in ("bad", "good"):
        for index, source in enumerate(getattr(rule, kind)):
            if rule.id == "IDM001" and kind == "bad":
                with pytest.raises(SyntaxError):
                    compile(source, f"{rule.id}-{kind}-{index}", "exec")
            else:
                compile(source, f"{rule.id}-{kind}-{index}", "exec")


def test_every_checklist_item_has_a_rule() -> None:
    assert {r.checklist for r in CATALOG.values()} == {*CHECKLIST, NOTICE}


def test_fixes_name_the_runtime_helpers() -> None:
    for rule in CATALOG.values():
        if rule.checklist != NOTICE:
            assert "idemlint.runtime" in rule.fix, f"{rule.id}'s fix names no runtime helper"

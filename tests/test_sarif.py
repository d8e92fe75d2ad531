"""SARIF 2.1.0: validates against the official schema; descriptors, fingerprints, code flows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_cli_support import (
    REPO,
    copy_project,
    fixture_projects,
    line_of,
    run_idemlint,
    run_idemlint_here,
)

from idemlint.catalog import load_catalog
from idemlint.report.baseline import FINGERPRINT_KEY

SCHEMA = REPO.parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"SARIF schema missing at {SCHEMA}")
        pytest.skip(f"SARIF schema not found at {SCHEMA}")
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


@pytest.fixture(scope="module")
def sarif_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    project = copy_project(tmp_path_factory.mktemp("sarif"))
    report = project / "out.sarif"
    done = run_idemlint("check", "--format", "sarif", "--output", report, cwd=project)
    assert done.returncode == 1, done.stderr
    assert "Found" in done.stdout  # the summary still goes to the terminal
    return project, json.loads(report.read_text())


def validate(document: dict[str, Any], schema: dict[str, Any]) -> None:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_report_validates_against_the_official_schema(
    schema: dict[str, Any], sarif_run: tuple[Path, dict[str, Any]]
) -> None:
    _, document = sarif_run
    assert document["runs"][0]["results"], "the fixture has findings"
    validate(document, schema)


@pytest.mark.parametrize("source", fixture_projects(), ids=lambda p: p.name)
def test_every_fixture_project_validates(
    tmp_path: Path, schema: dict[str, Any], source: Path
) -> None:
    project = copy_project(tmp_path, source)
    done = run_idemlint_here("check", "--format", "sarif", cwd=project)
    assert done.returncode in (0, 1), done.stderr
    validate(json.loads(done.stdout), schema)


def test_the_schema_check_can_fail(schema: dict[str, Any], sarif_run: tuple[Path, Any]) -> None:
    _, document = sarif_run
    broken = json.loads(json.dumps(document))
    broken["runs"][0]["results"][0]["level"] = "catastrophic"
    with pytest.raises(AssertionError):
        validate(broken, schema)


def test_rule_descriptors_carry_the_catalog(sarif_run: tuple[Path, dict[str, Any]]) -> None:
    _, document = sarif_run
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    catalog = load_catalog()
    assert [r["id"] for r in rules] == list(catalog)
    for descriptor in rules:
        rule = catalog[descriptor["id"]]
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"]
        assert descriptor["fullDescription"]["text"] == rule.why
        assert rule.fix in descriptor["help"]["text"]
        assert rule.fix in descriptor["help"]["markdown"]
        assert descriptor["helpUri"] == rule.help_uri
        assert descriptor["helpUri"].endswith(f"/rules/{rule.id}/")
        assert descriptor["properties"]["checklist"] == rule.checklist
        assert rule.checklist in descriptor["properties"]["tags"]
        if rule.checklist != "notice":
            assert "idempotency" in descriptor["properties"]["tags"]


def test_results_locations_fingerprints_and_code_flows(
    sarif_run: tuple[Path, dict[str, Any]],
) -> None:
    project, document = sarif_run
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == project.as_uri() + "/"
    results = run["results"]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uriBaseId"] == "SRCROOT"
        assert not location["artifactLocation"]["uri"].startswith("/")
        region = location["region"]
        assert region["startLine"] >= 1
        assert region["startColumn"] >= 1

    helpers = project / "shop" / "helpers.py"
    via_helper = next(
        r
        for r in results
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "shop/helpers.py"
    )
    assert via_helper["ruleId"] == "IDM301"
    start = via_helper["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert start == line_of(helpers, "Payment.objects.create")
    # The fingerprint is the baseline's, so code scanning tracks an alert the
    # way --baseline does.
    done = run_idemlint("baseline", "--output", project / "b.json", cwd=project)
    assert done.returncode == 0, done.stderr
    recorded = {e["fingerprint"] for e in json.loads((project / "b.json").read_text())["findings"]}
    assert {r["partialFingerprints"][FINGERPRINT_KEY] for r in results} == recorded

    steps = via_helper["codeFlows"][0]["threadFlows"][0]["locations"]
    names = [
        s["location"]["logicalLocations"][0]["fullyQualifiedName"]
        for s in steps
        if "logicalLocations" in s["location"]
    ]
    assert names == ["shop.tasks.charge_via_helper", "shop.helpers.record_payment"]
    task_step = steps[0]["location"]["physicalLocation"]
    assert task_step["artifactLocation"]["uri"] == "shop/tasks.py"
    assert task_step["region"]["startLine"] == line_of(
        project / "shop" / "tasks.py", "def charge_via_helper"
    )
    helper_step = steps[1]["location"]["physicalLocation"]
    assert helper_step["region"]["startLine"] == line_of(helpers, "def record_payment")
    assert steps[-1]["location"]["physicalLocation"]["region"]["startLine"] == start


def test_results_carry_the_fix_and_the_docs_link(
    schema: dict[str, Any], sarif_run: tuple[Path, dict[str, Any]]
) -> None:
    """Each result holds its rule's one-line fix and docs page in ``properties`` (SARIF's
    own ``fixes`` are file edits), and the log still validates."""
    _, document = sarif_run
    catalog = load_catalog()
    results = document["runs"][0]["results"]
    assert results
    for result in results:
        rule = catalog[result["ruleId"]]
        assert result["properties"]["fix"] == rule.short_fix
        assert result["properties"]["help_uri"] == rule.help_uri
        assert "fixes" not in result
    for descriptor in document["runs"][0]["tool"]["driver"]["rules"]:
        assert descriptor["properties"]["fix"] == catalog[descriptor["id"]].short_fix
    validate(document, schema)

"""The docs site: builds with ``mkdocs build --strict``, generated from the catalog and the code."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_support import REPO, clean_env

from idemlint.catalog import load_catalog
from idemlint.config import accepted_keys, parse_table
from idemlint.findings import CHECKLIST, Finding
from idemlint.lint.files.project_root import idemlint_table
from idemlint.report.formats.json import finding_document

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOCS = REPO / "docs"


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page, tags stripped and whitespace collapsed."""
    raw = (site / page / "index.html").read_text()
    main = raw.split('<article class="md-content__inner md-typeset">', 1)[-1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", main)).split())


def squashed(site: Path, page: str) -> str:
    """A built page's text with tags and all whitespace removed, to find code blocks in."""
    raw = (site / page / "index.html").read_text()
    return "".join(html.unescape(re.sub(r"<[^>]+>", "", raw)).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=clean_env(NO_MKDOCS_2_WARNING="1"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_every_rule_has_a_page_generated_from_the_catalog(site: Path) -> None:
    catalog = load_catalog()
    assert catalog, "the rule catalog is installed"
    index = page_text(site, "rules")
    for rule in catalog.values():
        text = page_text(site, f"rules/{rule.id}")
        assert f"{rule.id} {rule.name}" in text
        code = squashed(site, f"rules/{rule.id}")
        for part in (rule.why, rule.fix, rule.short_fix):
            assert "".join(re.sub(r"[`*]", "", part).split()) in code, (rule.id, part)
        for example in (*rule.bad, *rule.good):
            assert "".join(example.split()) in code, (rule.id, example)
        assert rule.id in index


def test_rule_pages_live_where_help_uris_point(site: Path) -> None:
    for rule in load_catalog().values():
        relative = rule.help_uri.split("/en/latest/", 1)[1]
        assert (site / relative / "index.html").is_file(), rule.help_uri


def test_each_checklist_page_lists_its_rules(site: Path) -> None:
    catalog = load_catalog()
    for slug in CHECKLIST:
        text = page_text(site, f"checklist/{slug}")
        mine = [r.id for r in catalog.values() if r.checklist == slug]
        others = [r.id for r in catalog.values() if r.checklist != slug]
        for rule_id in mine:
            assert rule_id in text, (slug, rule_id)
        for rule_id in others:
            assert rule_id not in text.split("All rules")[0], (slug, rule_id)


def test_configuration_page_documents_every_key(site: Path) -> None:
    text = page_text(site, "configuration")
    for key in accepted_keys():
        assert key in text, key


def test_every_knowledge_key_is_explained() -> None:
    from idemlint.lint.knowledge import EXTENSION_KEYS

    page = (DOCS / "configuration.md").read_text()
    for key in EXTENSION_KEYS:
        assert f"- `{key}`:" in page, f"docs/configuration.md does not explain {key}"


def test_configuration_example_is_a_valid_config(tmp_path: Path) -> None:
    page = (DOCS / "configuration.md").read_text()
    block = re.search(r"## A complete example\s+```toml\n(.*?)```", page, re.S)
    assert block, "the complete example is a TOML block"
    data = tomllib.loads(block.group(1))
    table = idemlint_table(data)
    assert table is not None
    config = parse_table(table, root=tmp_path, file=tmp_path / "pyproject.toml")
    assert set(table) == {k for k in table if k in accepted_keys()}
    assert config.knowledge, "the example shows the knowledge extensions"


def test_json_contract_example_matches_the_finding_keys() -> None:
    page = (DOCS / "output-formats.md").read_text()
    block = re.search(r"## json: the contract\s+```json\n(.*?)```", page, re.S)
    assert block
    example = json.loads(block.group(1))
    finding = Finding("p.py", 1, 1, "IDM301", "m", 1, 2, "t")
    assert set(example["findings"][0]) == set(finding_document(finding))
    assert set(example["summary"]) == {"total", "by_checklist", "by_rule", "files_checked"}
    assert list(example["summary"]["by_checklist"]) == [*CHECKLIST, "notice"]


def test_cli_reference_and_recipes(site: Path) -> None:
    reference = page_text(site, "cli")
    for option in ("--format", "--baseline", "--show-fixed", "--statistics", "--show-source"):
        assert option in reference
    ci = page_text(site, "ci")
    assert "github/codeql-action/upload-sarif" in ci
    assert "codequality" in ci
    started = page_text(site, "getting-started")
    assert "$ idemlint check fixtures/shop" in started
    assert re.search(r"tasks_naive\.py:\d+:\d+: IDM301 \[check-prior-art\]", started)
    precommit = page_text(site, "pre-commit")
    assert "try-repo" in precommit
    assert "require_serial" in precommit

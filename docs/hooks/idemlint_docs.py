"""mkdocs hook: the parts of the docs that come from the code, generated at build time.

- one page per rule (``rules/IDM301.md``) and the rule index, from ``rules/*.toml``;
- the rule table of each checklist page (marker ``<!-- idemlint:rules checklist=SLUG -->``);
- the configuration key tables (``<!-- idemlint:config-keys -->``,
  ``<!-- idemlint:knowledge-keys -->``), from :mod:`idemlint.config` and
  :mod:`idemlint.lint.knowledge`;
- the command reference (``<!-- idemlint:cli-help -->``), from the click commands;
- the real output of ``idemlint check PATH`` (``<!-- idemlint:check-output PATH -->``),
  run at build time, so the example output in the docs is always today's;
- the nav entries of the rule pages and of the runtime and testing sections
  that exist on disk (other people write those; the site builds without them).

Nothing here is hand-copied rule text, so the site cannot drift from the tool.
A mkdocs hook rather than mkdocs-gen-files: it needs no extra dependency.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from idemlint.catalog import Rule, load_catalog
from idemlint.findings import CHECKLIST, NOTICE

RUNTIME_ORDER = (
    "index.md",
    "api.md",
    "stores.md",
    "steps.md",
    "upsert.md",
    "locks.md",
    "frameworks/celery.md",
    "frameworks/rq.md",
    "frameworks/dramatiq.md",
    "frameworks/huey.md",
    "frameworks/arq.md",
    "frameworks/taskiq.md",
)
SECTIONS = (("Runtime helpers", "runtime", RUNTIME_ORDER), ("Testing", "testing", ("index.md",)))
_MARKER = re.compile(r"<!--\s*idemlint:(?P<what>[\w-]+)(?:\s+(?P<arg>[^>]*?))?\s*-->")


def summary(rule: Rule) -> str:
    text = rule.format_message("...") if "{detail}" in rule.message else rule.message
    return " ".join(text.split())


def _section_pages(docs: Path, folder: str, order: tuple[str, ...]) -> list[str]:
    base = docs / folder
    if not base.is_dir():
        return []
    found = sorted(p.relative_to(base).as_posix() for p in base.rglob("*.md"))
    ordered = [name for name in order if name in found]
    ordered += [name for name in found if name not in ordered]
    return [f"{folder}/{name}" for name in ordered]


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    docs = Path(config.docs_dir)
    rule_pages: list[Any] = ["rules/index.md"]
    rule_pages += [{f"{r.id} {r.name}": f"rules/{r.id}.md"} for r in load_catalog().values()]
    nav: list[Any] = []
    for item in config.nav or []:
        if isinstance(item, dict) and item.get("Rules") == "rules/index.md":
            nav.append({"Rules": rule_pages})
        else:
            nav.append(item)
    for title, folder, order in SECTIONS:
        pages = _section_pages(docs, folder, order)
        if pages:
            nav.append({title: pages})
    config.nav = nav
    return config


def rule_page(rule: Rule) -> str:
    if rule.checklist == NOTICE:
        item = "tool notice (IDM0xx): about idemlint's own run, not about a task"
    else:
        item = f"[{rule.checklist}](../checklist/{rule.checklist}.md)"
    parts = [
        f"# {rule.id} {rule.name}",
        f"**Checklist item:** {item}",
        f'!!! summary "What it reports"\n    {summary(rule)}',
        *(
            [
                '!!! summary "When two runs overlap"\n    '
                + " ".join(rule.format_message("...", kind="concurrent").split())
            ]
            if rule.race_message
            else []
        ),
        f"## Why it breaks on retry\n\n{rule.why}",
        "## Bad\n\n" + "\n\n".join(f"```python\n{code.strip()}\n```" for code in rule.bad),
        "## Good\n\n" + "\n\n".join(f"```python\n{code.strip()}\n```" for code in rule.good),
        f"## Fix\n\n**In one line** (what `--show-fixes` prints): {rule.short_fix}\n\n{rule.fix}",
        "## In the terminal and in code\n\n"
        f"- `idemlint explain {rule.id}` prints this page.\n"
        f"- `# idemlint: ignore[{rule.id}] -- reason` on the reported line silences one "
        "finding ([suppressions](../suppressions.md)); "
        f'`ignore = ["{rule.id}"]` in `[tool.idemlint]` turns the rule off '
        "([configuration](../configuration.md)).",
    ]
    return "\n\n".join(parts) + "\n"


def rules_index() -> str:
    head = [
        "# Rules",
        "Every rule maps to one item of the [retry-safety checklist](../checklist/index.md); "
        "the hundreds digit of its code says which. IDM0xx are the tool's own notices. "
        "`idemlint rules` prints this table and `idemlint explain CODE` one rule.",
        "<!-- idemlint:rules-table -->",
    ]
    return "\n\n".join(head) + "\n"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "rules/index.md", content=rules_index()))
    for rule in load_catalog().values():
        files.append(File.generated(config, f"rules/{rule.id}.md", content=rule_page(rule)))
    return files


def _rules_table(rules: list[Rule], page_uri: str) -> str:
    if not rules:
        return "_No rule in this catalog maps to this item yet._"
    here = posixpath.dirname(page_uri)
    rows = ["| Code | Name | Checklist item | Reports |", "|---|---|---|---|"]
    for rule in rules:
        link = posixpath.relpath(f"rules/{rule.id}.md", here or ".")
        rows.append(
            f"| [{rule.id}]({link}) | {rule.name} | {rule.checklist} | "
            f"{summary(rule).replace('|', '&#124;')} |"
        )
    return "\n".join(rows)


def _config_keys() -> str:
    from idemlint.config import KEY_DOCS

    rows = ["| Key | Value | Default | Meaning |", "|---|---|---|---|"]
    for key, (kind, default, meaning) in KEY_DOCS.items():
        rows.append(f"| `{key}` | {kind} | {default} | {meaning} |")
    return "\n".join(rows)


def _knowledge_keys() -> str:
    from idemlint.lint.knowledge import EXTENSION_KEYS

    rows = ["| Key | Value |", "|---|---|"]
    for key, shape in EXTENSION_KEYS.items():
        rows.append(f"| `{key}` | {shape.replace('|', '&#124;')} |")
    return "\n".join(rows)


def _cli_help() -> str:
    import click

    from idemlint.cli import cli

    parts = []
    root = click.Context(cli, info_name="idemlint")
    parts.append(f"## idemlint\n\n```text\n{cli.get_help(root)}\n```")
    for name, command in cli.commands.items():
        ctx = click.Context(command, info_name=name, parent=root)
        parts.append(f"## idemlint {name}\n\n```text\n{command.get_help(ctx)}\n```")
    return "\n\n".join(parts)


def _check_output(path: str, config: MkDocsConfig) -> str:
    import subprocess
    import sys

    repo = Path(config.config_file_path).parent
    if not (repo / path).exists():
        raise ValueError(f"check-output: {path} does not exist")
    done = subprocess.run(
        [sys.executable, "-m", "idemlint", "check", "--no-cache", "--color", "never", path],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise ValueError(f"idemlint check {path} failed: {done.stderr.strip()}")
    return f"```console\n$ idemlint check {path}\n{done.stdout.rstrip()}\n```"


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    catalog = list(load_catalog().values())

    def replace(match: re.Match[str]) -> str:
        what, arg = match.group("what"), (match.group("arg") or "").strip()
        if what == "rules-table":
            return _rules_table(catalog, page.file.src_uri)
        if what == "rules" and arg.startswith("checklist="):
            slug = arg.split("=", 1)[1]
            if slug not in (*CHECKLIST, NOTICE):
                raise ValueError(f"{page.file.src_uri}: unknown checklist item {slug!r}")
            chosen = [r for r in catalog if r.checklist == slug]
            return _rules_table(chosen, page.file.src_uri)
        if what == "config-keys":
            return _config_keys()
        if what == "knowledge-keys":
            return _knowledge_keys()
        if what == "cli-help":
            return _cli_help()
        if what == "check-output":
            return _check_output(arg, config)
        raise ValueError(f"{page.file.src_uri}: unknown idemlint marker {what!r}")

    return _MARKER.sub(replace, markdown)

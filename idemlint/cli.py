"""The ``idemlint`` command: ``check``, ``baseline``, ``tasks``, ``rules`` and ``explain``.

Exit codes are a contract CI scripts rely on: 0 when nothing is reported, 1
when findings are reported, 2 for a usage or configuration error, always with
a one-line message naming the problem (never a traceback).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from idemlint import __version__
from idemlint.errors import IdemlintError
from idemlint.report.formats import FORMATS

if TYPE_CHECKING:
    from idemlint.catalog import Rule
    from idemlint.config import Config
    from idemlint.findings import Finding
    from idemlint.lint.index.tasks import TaskRow

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


def _codes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _use_color(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="idemlint")
def cli() -> None:
    """Find background jobs that are not safe to retry."""


_path_args = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


def _config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``check`` and ``baseline``: both must see the same findings."""
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read [tool.idemlint] from this file instead of the nearest pyproject.toml.",
        ),
        click.option("--isolated", is_flag=True, help="Ignore every configuration file."),
        click.option("--select", help="Comma-separated codes or prefixes to report (replaces)."),
        click.option("--ignore", help="Comma-separated codes or prefixes not to report."),
        click.option("--extend-select", help="Codes or prefixes to report on top of select."),
        click.option(
            "--jobs",
            "-j",
            type=click.IntRange(min=1),
            help="Worker processes for cold files (default: one per CPU).",
        ),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the cache."),
        click.option(
            "--cache-dir",
            help="Cache folder, anywhere (default: .idemlint_cache in the project; "
            "also IDEMLINT_CACHE_DIR).",
        ),
        click.option(
            "--force-exclude/--no-force-exclude",
            default=None,
            help="Apply exclude to the paths named on the command line too, as pre-commit "
            "and editors name them (default: the config's force-exclude).",
        ),
        click.option(
            "--min-severity",
            type=click.Choice(["error", "warning", "info"]),
            help="Report findings of this severity and above (default: warning, or the "
            "config's min-severity).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@_path_args
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE; the terminal still gets the summary.",
)
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule.")
@click.option("--show-source", is_flag=True, help="Print the offending line with a caret.")
@click.option(
    "--show-fixes", is_flag=True, help="Print the rule's one-line fix under each finding."
)
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add a `# noqa: IDM...` comment on the line of each finding reported, instead "
    "of reporting them (as ruff's --add-noqa).",
)
@click.option(
    "--baseline",
    "baseline_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Report only findings not recorded in this baseline file.",
)
@click.option("--show-fixed", is_flag=True, help="List baseline entries no longer found.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the text output (auto: on a TTY, unless NO_COLOR is set).",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings are reported.")
@_config_options
def check(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    statistics: bool,
    show_source: bool,
    show_fixes: bool,
    add_noqa: bool,
    baseline_file: Path | None,
    show_fixed: bool,
    color: str,
    exit_zero: bool,
    **config_options: Any,
) -> int:
    """Check PATHS (default: the current folder) for tasks that are not safe to retry."""
    from idemlint.report.baseline import match_baseline, read_baseline
    from idemlint.report.formats import Report, renderer
    from idemlint.report.formats import text as text_output
    from idemlint.report.formats.summary import statistics as statistics_text
    from idemlint.report.formats.summary import summary_line

    if show_fixed and baseline_file is None:
        raise click.UsageError("--show-fixed needs --baseline")
    if add_noqa and (output is not None or fmt != "text"):
        raise click.UsageError("--add-noqa writes comments, not a report: drop --format/--output")
    entries = read_baseline(baseline_file) if baseline_file is not None else None
    terminal_gets_text = fmt == "text" or output is not None
    run = _lint(list(paths), show_progress=terminal_gets_text, **config_options)
    findings = run.findings
    match = None
    if entries is not None:
        match = match_baseline(
            findings, entries, run.config.root, cwd=run.cwd, silenced=run.silenced
        )
        findings = match.new
    if add_noqa:
        return _add_noqa(findings, run)
    report = Report(
        findings=findings,
        files_checked=run.files_checked,
        root=run.config.root,
        cwd=run.cwd,
        files=run.files,
        baseline=match,
    )

    use_color = _use_color(color)
    if fmt == "text":
        body = text_output.render(
            report,
            color=use_color and output is None,
            show_source=show_source,
            show_fixes=show_fixes,
        )
    else:
        body = renderer(fmt)(report)
    extra: list[str] = []
    if statistics and report.findings:
        extra.append(statistics_text(report))
    if show_fixed:
        extra.append(text_output.fixed_entries(report).rstrip("\n"))
    extra.append(summary_line(report))

    if output is not None:
        try:
            output.write_text(body, encoding="utf-8")
        except OSError as exc:
            raise click.UsageError(f"cannot write {output}: {exc.strerror}") from None
        click.echo("\n".join(extra), color=use_color)
    elif fmt == "text":
        click.echo(body + "\n".join(extra), color=use_color)
    else:
        click.echo(body, nl=False)
        click.echo("\n".join(extra), err=True)
    return EXIT_FINDINGS if report.findings and not exit_zero else EXIT_CLEAN


def _add_noqa(findings: Sequence[Finding], run: _LintRun) -> int:
    """``check --add-noqa``: suppress the findings in place; exit 0, as ruff does."""
    from idemlint.report.noqa import add_noqa

    result = add_noqa(findings, root=run.config.root, cwd=run.cwd)
    for why in result.skipped:
        click.echo(f"idemlint: notice: {why}", err=True)
    directives = "directive" if result.added == 1 else "directives"
    files = "file" if result.files == 1 else "files"
    click.echo(f"Added {result.added} noqa {directives} to {result.files} {files}.")
    return EXIT_CLEAN


@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Baseline file to write (default: .idemlint-baseline.json in the current folder).",
)
@_config_options
def baseline(path: Path | None, output: Path | None, **config_options: Any) -> int:
    """Record the current findings under PATH so that `check --baseline` reports only new ones."""
    from idemlint.report.baseline import DEFAULT_BASELINE, build_baseline, write_baseline

    run = _lint([path] if path is not None else [], show_progress=True, **config_options)
    entries = build_baseline(run.findings, run.config.root, cwd=run.cwd)
    target = output if output is not None else Path(DEFAULT_BASELINE)
    try:
        write_baseline(target, entries)
    except OSError as exc:
        raise click.UsageError(f"cannot write {target}: {exc.strerror}") from None
    click.echo(
        f"Wrote {len(run.findings)} findings ({len(entries)} fingerprints) to {target}. "
        f"Check with: idemlint check --baseline {target}"
    )
    return EXIT_CLEAN


@cli.command()
@_path_args
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Listing format.",
)
@click.option(
    "--no-tests",
    is_flag=True,
    help="Leave out tasks declared in test files (tests/, test_*.py, conftest.py).",
)
@_config_options
def tasks(paths: tuple[Path, ...], fmt: str, no_tests: bool, **config_options: Any) -> int:
    """List the tasks idemlint found under PATHS (default: the current folder): each
    task's function, framework, where it is declared and how it can run twice."""
    import json

    run = _lint(list(paths), show_progress=fmt == "text", **config_options)
    rows = [row for row in run.tasks if not (no_tests and row.in_tests)]
    if fmt == "json":
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return EXIT_CLEAN
    from idemlint.findings import display_path

    for row in rows:
        where = display_path(run.config.root / row.path, run.cwd)
        test = "  (test file)" if row.in_tests else ""
        click.echo(f"{where}:{row.line}: {row.name} [{row.framework}]{test}")
        for m in row.mechanisms:
            source = f" ({m.source})" if m.source else ""
            click.echo(f"    {m.kind}: {m.detail}{source}")
        if not row.mechanisms:
            click.echo("    runs at most once (no retry, redelivery or schedule found)")
    in_tests = sum(row.in_tests for row in rows)
    noun = "task" if len(rows) == 1 else "tasks"
    click.echo(f"{len(rows)} {noun}" + (f", {in_tests} in test files" if in_tests else ""))
    return EXIT_CLEAN


@cli.command()
def rules() -> int:
    """List every rule: code, name, checklist item and what it reports."""
    from idemlint.catalog import load_catalog

    click.echo("\n".join(_rule_table(load_catalog().values())))
    return EXIT_CLEAN


def _rule_table(rules: Iterable[Rule]) -> list[str]:
    """The lines of ``idemlint rules`` for ``rules``, header first; columns as wide as
    for the whole catalog, so that a family's lines are those ``rules`` prints."""
    from idemlint.catalog import load_catalog

    def row(rule: Rule) -> tuple[str, str, str, str]:
        summary = rule.format_message("...") if "{detail}" in rule.message else rule.message
        return (rule.id, rule.name, rule.checklist, " ".join(summary.split()))

    header = ("CODE", "NAME", "CHECKLIST", "REPORTS")
    every = [header, *(row(rule) for rule in load_catalog().values())]
    widths = [max(len(r[i]) for r in every) for i in range(3)]
    rows = [header, *(row(rule) for rule in rules)]
    return [f"{'  '.join(r[i].ljust(widths[i]) for i in range(3))}  {r[3]}" for r in rows]


@cli.command()
@click.argument("code")
def explain(code: str) -> int:
    """Explain one rule, by code or name (IDM301, unguarded-row-create): what it reports,
    why a retry breaks it, bad and good code, the fix. A prefix (IDM3) or a checklist
    item (check-prior-art) lists its rules."""
    from idemlint.catalog import load_catalog

    catalog = load_catalog()
    wanted = code.strip()
    as_code = wanted.upper()
    as_name = wanted.lower().replace("_", "-")
    by_name = {rule.name: rule for rule in catalog.values()}
    if as_code in catalog or as_name in by_name:
        rule_id = as_code if as_code in catalog else by_name[as_name].id
        click.echo(explain_text(rule_id))
        return EXIT_CLEAN
    family = [
        rule
        for rule in catalog.values()
        if (re.fullmatch(r"IDM[0-9]{0,2}", as_code) and rule.id.startswith(as_code))
        or rule.checklist == as_name
    ]
    if family:
        click.echo("\n".join(_rule_table(family)))
        click.echo(f"\n`idemlint explain {family[0].id}` explains one of them.")
        return EXIT_CLEAN
    known = [*catalog, *by_name, *dict.fromkeys(r.checklist for r in catalog.values())]
    close = difflib.get_close_matches(as_code if wanted[:3].upper() == "IDM" else as_name, known)
    hint = f"; did you mean {' or '.join(close[:3])}?" if close else ""
    raise click.UsageError(
        f"unknown rule {code!r}{hint} (accepted: a code such as IDM301, a prefix such as "
        "IDM3, a rule name or a checklist item, as `idemlint rules` lists them)"
    )


def explain_text(rule_id: str) -> str:
    """The text of ``idemlint explain``, from the catalog alone."""
    from idemlint.catalog import get_rule

    rule = get_rule(rule_id)
    summary = rule.format_message("...") if "{detail}" in rule.message else rule.message

    def block(title: str, body: str) -> str:
        lines = body.strip("\n").splitlines()
        return title + "\n" + "\n".join(("    " + line) if line else "" for line in lines)

    def prose(title: str, body: str) -> str:
        return block(title, textwrap.fill(" ".join(body.split()), width=84))

    parts = [
        f"{rule.id} {rule.name} [{rule.checklist}]",
        prose("What it reports:", summary),
        *(
            [prose("When two runs overlap:", rule.format_message("...", kind="concurrent"))]
            if rule.race_message
            else []
        ),
        prose("Why it breaks on retry:", rule.why),
        *(block("Bad:", bad) for bad in rule.bad),
        *(block("Good:", good) for good in rule.good),
        prose("Fix:", rule.fix),
        f"Docs: {rule.help_uri}",
    ]
    return "\n\n".join(parts)


@dataclass(frozen=True)
class _LintRun:
    """The reported findings of one run, with what the reports need to place them."""

    config: Config
    findings: list[Finding]
    files_checked: int
    files: list[str]
    """Display paths of the checked files."""
    cwd: Path
    silenced: list[Finding] = field(default_factory=list)
    """Findings found but not reported (suppression comments, the configuration)."""
    tasks: list[TaskRow] = field(default_factory=list)
    """The tasks declared in the files checked, by name."""


def _lint(
    paths: list[Path],
    *,
    show_progress: bool,
    config_file: Path | None,
    isolated: bool,
    select: str | None,
    ignore: str | None,
    extend_select: str | None,
    jobs: int | None,
    no_cache: bool,
    min_severity: str | None = None,
    cache_dir: str | None = None,
    force_exclude: bool | None = None,
) -> _LintRun:
    """Config, engine, suppressions and selection: what ``check`` and ``baseline`` share."""
    from idemlint.config import load_config
    from idemlint.findings import display_name
    from idemlint.report.formats.progress import ProgressBar, delay_from_env, in_ci
    from idemlint.report.scope import force_excluded, no_rule_selected, nothing_checked
    from idemlint.report.selection import report_filter

    cwd = Path.cwd().absolute()
    if not paths:
        paths = [Path(".")]
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise click.UsageError(f"no such file or folder: {', '.join(missing)}")
    config = load_config(paths, config_file=config_file, isolated=isolated).with_overrides(
        select=_codes(select),
        ignore=_codes(ignore),
        extend_select=_codes(extend_select),
        no_cache=no_cache,
        min_severity=min_severity,
        cache_dir=cache_dir,
        force_exclude=force_exclude,
    )
    _warn(no_rule_selected(config))
    named = paths
    paths, dropped = force_excluded(paths, config)
    if not paths:  # every named path is excluded: check nothing (not the whole project)
        _warn(nothing_checked(named, dropped, config, files_checked=0))
        return _LintRun(config, [], 0, [], cwd)
    from idemlint.lint.run.engine import check as engine_check

    bar = None
    if show_progress and sys.stderr.isatty() and not in_ci():
        bar = ProgressBar(sys.stderr, delay=delay_from_env())
    try:
        result = engine_check(paths, config, jobs=jobs, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    for notice in result.notices:
        click.echo(f"idemlint: notice: {notice}", err=True)
    silenced: list[Finding] = []
    findings = report_filter(
        result.findings,
        config,
        result.files,
        cwd=cwd,
        known=result.suppressions,
        silenced=silenced,
    )
    shown = sorted(display_name(str(f), cwd) for f in result.files)
    _warn(nothing_checked(named, dropped, config, files_checked=result.files_checked))
    checked = {str(f) for f in result.files}
    root = config.root.absolute()
    rows = [row for row in result.tasks if str(root / row.path) in checked]
    return _LintRun(config, findings, result.files_checked, shown, cwd, silenced, rows)


def _warn(warning: str | None) -> None:
    if warning is not None:
        click.echo(f"idemlint: warning: {warning}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``idemlint`` script: run, and turn errors into one line and exit 2."""
    try:
        code = cli.main(args=argv, prog_name="idemlint", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("idemlint: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        click.echo(f"idemlint: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except IdemlintError as exc:
        click.echo(f"idemlint: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except BrokenPipeError:
        # The reader went away (``idemlint check | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FINDINGS)
    except Exception:
        # A bug in idemlint must not look like "findings" (1) or a usage error (2).
        traceback.print_exc()
        click.echo("idemlint: internal error; please report it with the traceback above", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(code if isinstance(code, int) else EXIT_CLEAN)

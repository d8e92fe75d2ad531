"""Which findings a run reports: suppressions, ``select``/``ignore``, ``per-file-ignores``.

The engine returns every finding it can prove; this layer applies the
project's policy on top. It is shared by the CLI, the baseline command and the
flake8 plugin so that every entry point reports exactly the same findings.

Order matters: inline suppressions are matched against the engine's raw
findings first (so a ``# noqa: IDM301`` on a line whose IDM301 is also off in
config is not called unused), then the config's selection applies to
everything, the unused-suppression notices (IDM003) included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from idemlint.config import Config
from idemlint.findings import Finding, severity_rank
from idemlint.lint.files.comments import Suppression
from idemlint.lint.files.patterns import compiled
from idemlint.lint.files.project_root import path_from_root
from idemlint.report.suppression import apply_suppressions


def report_filter(
    findings: Iterable[Finding],
    config: Config,
    files: Iterable[Path],
    *,
    cwd: Path | None = None,
    sources: Mapping[Path, str] | None = None,
    known: Mapping[Path, Sequence[Suppression]] | None = None,
    silenced: list[Finding] | None = None,
) -> list[Finding]:
    """The findings a run reports, sorted by path, line and column.

    ``files`` are the checked files (where inline suppressions are looked for,
    including files with no finding, whose suppressions are all unused);
    ``sources`` holds the text of files not read from disk (an editor's buffer),
    ``known`` the suppressions already parsed (:attr:`CheckResult.suppressions`).
    Findings found but not reported (a suppression comment, ``ignore``,
    ``per-file-ignores``, ``min-severity``) are added to ``silenced`` when given: the
    baseline must tell them from fixed ones.
    """
    cwd = (cwd or Path.cwd()).absolute()
    kept = apply_suppressions(
        findings, files, cwd=cwd, sources=sources, known=known, suppressed=silenced
    )
    reported = []
    for finding in kept:
        if is_reported(finding, config, cwd=cwd):
            reported.append(finding)
        elif silenced is not None:
            silenced.append(finding)
    return sorted(reported)


def is_reported(finding: Finding, config: Config, *, cwd: Path) -> bool:
    """Whether config selects the finding's rule for the finding's file, at or above
    ``min-severity``."""
    if severity_rank(finding.severity) < severity_rank(config.min_severity):
        return False
    if not rule_enabled(finding.rule, config):
        return False
    if config.per_file_ignores:
        relative = path_from_root(finding.path, config.root, cwd=cwd)
        for pattern, codes in config.per_file_ignores.items():
            if glob_matches(pattern, relative) and matches_any(finding.rule, codes):
                return False
    return True


def rule_enabled(rule: str, config: Config) -> bool:
    """``select``/``extend-select`` against ``ignore``: the most specific prefix wins.

    ``select = ["IDM3"]`` with ``ignore = ["IDM301"]`` reports IDM302..IDM305;
    ``ignore = ["IDM3"]`` with ``extend-select = ["IDM305"]`` reports only IDM305
    of the IDM3xx rules. At equal length, ``ignore`` wins.
    """
    selected = _longest_prefix(rule, (*config.select, *config.extend_select))
    ignored = _longest_prefix(rule, config.ignore)
    return selected > ignored


def matches_any(rule: str, codes: Iterable[str]) -> bool:
    """Whether ``rule`` equals or starts with any of ``codes``."""
    return any(rule.startswith(code) for code in codes)


def _longest_prefix(rule: str, codes: Sequence[str]) -> int:
    """Length of the longest code in ``codes`` that prefixes ``rule`` (-1 when none)."""
    return max((len(code) for code in codes if rule.startswith(code)), default=-1)


def glob_matches(pattern: str, relative: str) -> bool:
    """Whether a root-relative ``/`` path matches a ``per-file-ignores`` key.

    The key is a ``.gitignore`` line, matched as ``exclude`` is
    (:mod:`idemlint.lint.files.patterns`): ``migrations`` or ``*_test.py`` match a name
    anywhere, ``app/legacy/**`` is anchored at the root, ``*`` stops at ``/``, and a
    pattern matching a folder matches what it holds. A key starting with ``!`` applies
    to every file the rest of it does not match, as in ruff's ``per-file-ignores``.
    """
    if pattern.startswith("!"):
        return not compiled((pattern[1:],)).matches(relative)
    return compiled((pattern,)).matches(relative)

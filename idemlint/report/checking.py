"""Check a project, or one snippet, and report as the CLI does, in one call: the
analyzer's findings with the project's selection and inline suppressions applied.
Tests, the catalog examples and the docs use these."""

from __future__ import annotations

import tempfile
from pathlib import Path

from idemlint.config import Config, load_config
from idemlint.findings import Finding
from idemlint.lint.run.engine import check
from idemlint.report.selection import report_filter


def check_project(root: Path, *, cwd: Path | None = None) -> list[Finding]:
    """Findings for a whole project folder, with its own ``[tool.idemlint]`` config."""
    config = load_config([root])
    result = check([root], config, cwd=cwd)
    return report_filter(result.findings, config, result.files, cwd=cwd, known=result.suppressions)


def check_source(source: str, path: str = "example.py") -> list[Finding]:
    """Findings for one snippet as a one-file project (the default selection)."""
    with tempfile.TemporaryDirectory(prefix="idemlint-snippet-") as tmp:
        root = Path(tmp)
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(source, "utf-8")
        config = Config.default(root).with_overrides(no_cache=True)
        result = check([root], config, cwd=root)
        return report_filter(
            result.findings, config, result.files, cwd=root, known=result.suppressions
        )

"""``idemlint check`` through the engine with the text pre-check switched off.

    python bench/_check.py ROOT OUT.json

The CLI has no switch for the pre-check (it never changes findings, only speed),
so the benchmark's "no pre-check" row runs the engine directly, with no cache, and
writes the findings in the CLI's JSON shape for the comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from idemlint.config import load_config
from idemlint.lint.run.engine import check
from idemlint.report.selection import report_filter


def main(argv: list[str]) -> int:
    root, out = Path(argv[0]).absolute(), Path(argv[1])
    config = load_config([root]).with_overrides(no_cache=True)
    result = check([root], config, cwd=root, prefilter=False)
    findings = report_filter(result.findings, config, result.files, cwd=root)
    out.write_text(json.dumps({"findings": [f.to_json() for f in findings]}), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

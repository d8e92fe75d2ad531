"""Tasks idemlint discovers on each development-set application against the hand count.

For every row of repos.tsv (``repo``, ``task_count``, ``grep_used``), run
``idemlint tasks --format json`` on the extracted tree, keep the tasks declared under the
folders the row's grep searches, leave out those in test files the way the grep's
``grep -vE`` does, and print a Markdown table: discovered, counted, difference.

    python bench/realworld/task_counts.py --trees /tmp/idemlint-realworld \\
        --repos /work/shared/realworld/repos.tsv [--names OUT.json]

``--names`` writes each application's discovered task names (to diff against the grep's
lines by hand).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

_EXCLUDED = re.compile(r"/tests?/|/unittests/|/test_[^/]*\.py|conftest\.py|load_tests/")
"""The grep's exclusion of test files (the same regex in every row of repos.tsv)."""


def searched_folders(grep: str) -> list[str]:
    """The folders the row's ``grep -r ... PATTERN FOLDER...`` searches ("." for all)."""
    words = shlex.split(grep, comments=True)
    words = words[: words.index("|")] if "|" in words else words
    folders = [w for w in words[words.index("grep") + 1 :] if not w.startswith("-")][1:]
    return [f.strip("/") or "." for f in folders] or ["."]


def discovered(tree: Path, command: list[str], cache: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [*command, "tasks", "--format", "json", "--cache-dir", cache, "."],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", type=Path, required=True)
    parser.add_argument("--repos", type=Path, required=True)
    parser.add_argument("--idemlint", default=f"{sys.executable} -m idemlint")
    parser.add_argument("--names", type=Path)
    args = parser.parse_args()
    command = shlex.split(args.idemlint)
    names: dict[str, list[str]] = {}
    print("| application | discovered | hand count | difference | in test files (left out) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as cache:
        for row in csv.DictReader(args.repos.open(), delimiter="\t"):
            repo, expected = row["repo"], int(row["task_count"])
            tree = args.trees / repo.replace("/", "+")
            folders = searched_folders(row["grep_used"])
            rows = discovered(tree, command, cache)
            inside = [
                r
                for r in rows
                if any(f == "." or str(r["path"]).startswith(f + "/") for f in folders)
            ]
            kept = [r for r in inside if not _EXCLUDED.search("/" + str(r["path"]))]
            names[repo] = sorted(f"{r['path']}:{r['line']} {r['name']}" for r in kept)
            diff = (len(kept) - expected) / expected * 100 if expected else 0.0
            print(
                f"| {repo} | {len(kept)} | {expected} | {diff:+.0f}% | {len(inside) - len(kept)} |"
            )
    if args.names is not None:
        args.names.write_text(json.dumps(names, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

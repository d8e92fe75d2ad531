#!/usr/bin/env python3
"""Run idemlint on applications outside the development set, and score the blind verdicts.

The development set (``../shared/realworld``) is what the analyzer was tuned on; this is the
check that its precision holds elsewhere. ``fresh-apps.tsv`` names each application at a
fixed commit; ``judged-fresh.tsv`` holds a reviewer's verdict on every finding idemlint
reported on them (TP / FP / DEBATABLE, with a category and a reason), made by reading
the code, not idemlint's rules. This script writes each application's ``.py`` files from a
bare git mirror (bring them with the search tool's ``fetch``), runs ``idemlint check
--format json`` at the default severity (what a user sees; ``--min-severity`` to widen it),
writes each application's findings to ``WORK/OWNER+NAME.findings.json`` (what the judges
read), and prints per application the tasks' findings and,
for the findings that were judged, precision TP / (TP + FP).

    python bench/realworld/run_fresh.py [--mirror DIR] [--work DIR] [--idemlint CMD]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKERS = {"pyproject.toml", "setup.cfg", "setup.py"}


def read_tsv(name: str) -> list[dict[str, str]]:
    with open(HERE / name, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def extract(git: Path, commit: str, dest: Path) -> None:
    """Every ``.py`` file (and root marker) of ``commit`` under ``dest``."""
    listing = subprocess.run(
        ["git", "--git-dir", str(git), "ls-tree", "-r", commit],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for row in listing.splitlines():
        meta, path = row.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind != "blob" or mode != "100644":
            continue
        if not (path.endswith(".py") or path.rsplit("/", 1)[-1] in MARKERS):
            continue
        blob = subprocess.run(
            ["git", "--git-dir", str(git), "cat-file", "blob", sha],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--mirror", default=str(HERE.parent.parent.parent / ".mirror"))
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "idemlint-fresh"))
    ap.add_argument("--idemlint", default="idemlint")
    ap.add_argument("--min-severity", default="warning", choices=("error", "warning", "info"))
    a = ap.parse_args()
    judged = collections.defaultdict(dict)
    for row in read_tsv("judged-fresh.tsv"):
        judged[row["repo"]][(row["path"], int(row["line"]), row["rule"])] = row["verdict"]
    verdicts: collections.Counter[str] = collections.Counter()
    for app in read_tsv("fresh-apps.tsv"):
        repo, commit = app["repo"], app["commit"]
        git = Path(a.mirror) / repo.replace("/", "+") / "repo"
        if not git.exists():
            print(f"{repo}: not fetched (fetch github:{repo}), skipped")
            continue
        root = Path(a.work) / repo.replace("/", "+")
        if not root.exists():
            extract(git, commit, root)
        proc = subprocess.run(
            [*a.idemlint.split(), "check", "--format", "json",
             "--min-severity", a.min_severity, "."],
            cwd=root, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode not in (0, 1):
            print(f"{repo}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
            continue
        findings = [f for f in json.loads(proc.stdout)["findings"] if f["checklist"] != "notice"]
        (root.parent / f"{root.name}.findings.json").write_text(json.dumps(findings, indent=1))
        seen = collections.Counter()
        for f in findings:
            verdict = judged[repo].get((f["path"].removeprefix("./"), f["line"], f["rule"]))
            seen[verdict or "unjudged"] += 1
            verdicts[verdict or "unjudged"] += 1
        print(f"{repo}: {len(findings)} findings {dict(sorted(seen.items()))}")
    tp, fp = verdicts["TP"], verdicts["FP"]
    print(f"all: {dict(sorted(verdicts.items()))}; precision TP/(TP+FP) = {tp}/{tp + fp}"
          + (f" = {tp / (tp + fp):.2f}" if tp + fp else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

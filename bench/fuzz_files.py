"""Run ten thousand generated and mutated files through idemlint and count what broke.

    python bench/fuzz_files.py                 # 10,000 files, 250 per project, 2 jobs
    python bench/fuzz_files.py --files 2000    # a quicker look

Files come from ``bench/_fuzz_inputs.py`` (mutated fixtures, deep nesting, long chains,
encodings, garbage), batched into projects. Each project runs in its own process, so
that a crash or a hang of the whole run is seen, not suffered: a cold ``idemlint check``
(every other project in the worker pool, the others in-process), a warm one from the
cache, then the flake8 plugin on a sample of its files and, five times, the run again
on its snapshot with one byte changed (the checksum left as it was). Every project also holds a file
whose name is not UTF-8 and a symlink to a file outside the project.

Per area, each file (or plugin call, or damaged snapshot) is counted once:

* ``handled``: it ended as findings (maybe none) or as a notice;
* ``crashed``: the run raised or its process died (every file of that project);
* ``hung``: the project's run outlived ``--timeout``;
* ``wrong``: the warm run, or the run with a damaged snapshot, reported something else
  than the cold run for it, or a notice gave no reason;
* ``lost``: it was neither checked nor reported as not checked.

Exit status 1 when anything crashed, hung, was wrong or lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _fuzz_inputs import AREAS, generate  # noqa: E402

OUTCOMES = ("tried", "handled", "crashed", "hung", "wrong", "lost")
DAMAGED_SNAPSHOTS = 5
"""Runs per project on a snapshot with one byte changed (the checksum left as it was)."""


def write_project(root: Path, rng: random.Random, count: int) -> dict[str, str]:
    """``count`` generated files under ``root/app``; returns file name -> area."""
    (root / "app").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'fuzz'\n")
    (root / "app" / "__init__.py").write_text("")
    areas: dict[str, str] = {}
    for i in range(count):
        area = AREAS[i % len(AREAS)]
        name = f"f{i}.py"
        (root / "app" / name).write_bytes(generate(area, rng))
        areas[name] = area
    outside = root.parent / "outside.py"
    outside.write_text("SECRET = 'never read'\n")
    (root / "app" / "link.py").symlink_to(outside)
    (root / "app" / os.fsdecode(b"caf\xe9.py")).write_text("x = 1\n")
    return areas


# -- one project, in its own process ------------------------------------------------
def run_batch(root: Path, jobs: int, plugin_sample: int) -> dict[str, Any]:
    from idemlint.config import load_config
    from idemlint.lint.files.source import decoded_or_none
    from idemlint.lint.run import snapshot_check
    from idemlint.lint.run.engine import check

    def by_file(findings: list[Any]) -> dict[str, list[list[Any]]]:
        out: dict[str, list[list[Any]]] = defaultdict(list)
        for f in findings:
            out[f.path].append([f.line, f.column, f.rule, f.message])
        return dict(out)

    config = load_config([root])
    cold = check([root], config, cwd=root, jobs=jobs)
    warm = check([root], config, cwd=root, jobs=jobs)
    result: dict[str, Any] = {
        "files": [str(p.relative_to(root)) for p in cold.files],
        "cold": by_file(cold.findings),
        "warm": by_file(warm.findings),
        "notices": cold.notices + warm.notices,
    }
    # damaged snapshots, their checksum left as it was: the run must not change
    (snap,) = (root / ".idemlint_cache" / "projects").glob("*.json")
    sealed = snap.read_text()
    text = snapshot_check.unseal(sealed)
    rng = random.Random(len(text))
    result["damaged"] = []
    for _ in range(DAMAGED_SNAPSHOTS):
        at = rng.randrange(len(text))
        damaged = text[:at] + rng.choice('0-1x]"') + text[at + 1 :]
        snap.write_text(sealed.replace(text, damaged))
        (root / "app" / "f0.py").touch()  # stamps differ: the snapshot is read and used
        result["damaged"].append(by_file(check([root], config, cwd=root, jobs=jobs).findings))
    # the flake8 plugin on a sample of what flake8 would hand it
    import ast

    from idemlint.flake8_plugin import Plugin

    plugin: dict[str, str] = {}
    os.chdir(root)
    names = sorted(p.name for p in (root / "app").glob("f*.py"))
    for name in random.Random(7).sample(names, min(plugin_sample, len(names))):
        text_of = decoded_or_none((root / "app" / name).read_bytes())
        try:
            tree = ast.parse(text_of or "")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # flake8 reports E999 itself and runs no plugin
        if text_of is None:
            continue
        try:
            list(Plugin(tree, f"app/{name}", text_of.splitlines(keepends=True)).run())
            plugin[name] = "handled"
        except Exception as exc:  # what this bench is here to find
            plugin[name] = f"crashed: {type(exc).__name__}: {exc}"
    result["plugin"] = plugin
    return result


# -- the driver ---------------------------------------------------------------------
def tally(
    table: dict[str, Counter[str]],
    areas: dict[str, str],
    outcome: dict[str, Any] | None,
    failure: str,
) -> list[str]:
    """Count one project's files; returns descriptions of what went wrong."""
    problems: list[str] = []
    special = {"link.py": "symlink-out", "caf\\xe9.py": "name-not-utf8"}
    every = {**areas, **special}
    for name, area in every.items():
        table[area]["tried"] += 1
        if outcome is None:
            table[area][failure] += 1
            continue
        path = f"app/{name}"
        cold, warm = (outcome[k].get(path, []) for k in ("cold", "warm"))
        checked = path in outcome["files"]
        notice = [f for f in cold if f[2] == "IDM001"]
        if name == "link.py":
            ok = not checked and not cold  # skipped in discovery, as documented
            table[area]["handled" if ok else "wrong"] += 1
            continue
        if not checked and not notice:
            table[area]["lost"] += 1
            problems.append(f"lost {path}")
        elif warm != cold or any(not f[3].split(": ", 1)[-1] for f in notice):
            table[area]["wrong"] += 1
            problems.append(f"wrong {path}: {cold} / {warm}")
        else:
            table[area]["handled"] += 1
            table[area]["notices"] += bool(notice)
    if outcome is None:
        table["snapshot"]["tried"] += DAMAGED_SNAPSHOTS
        table["snapshot"][failure] += DAMAGED_SNAPSHOTS
    else:
        for damaged in outcome["damaged"]:
            table["snapshot"]["tried"] += 1
            table["snapshot"]["handled" if damaged == outcome["cold"] else "wrong"] += 1
        for name, verdict in outcome["plugin"].items():
            table["flake8"]["tried"] += 1
            table["flake8"]["handled" if verdict == "handled" else "crashed"] += 1
            if verdict != "handled":
                problems.append(f"flake8 {name}: {verdict}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--plugin-sample", type=int, default=10)
    parser.add_argument("--run-batch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_batch is not None:
        print(json.dumps(run_batch(args.run_batch, args.jobs, args.plugin_sample)))
        return 0

    table: dict[str, Counter[str]] = defaultdict(Counter)
    problems: list[str] = []
    started = time.monotonic()
    batches = (args.files + args.batch - 1) // args.batch
    for b in range(batches):
        count = min(args.batch, args.files - b * args.batch)
        rng = random.Random(args.seed * 100_003 + b)
        jobs = args.jobs if b % 2 == 0 else 1  # the pool, and the in-process path
        with tempfile.TemporaryDirectory(prefix="idemlint-fuzz-") as tmp:
            root = Path(tmp) / "proj"
            areas = write_project(root, rng, count)
            outcome, failure = None, ""
            try:
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--run-batch",
                        str(root),
                        "--jobs",
                        str(jobs),
                        "--plugin-sample",
                        str(args.plugin_sample),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=args.timeout,
                )
                if done.returncode == 0:
                    outcome = json.loads(done.stdout)
                else:
                    failure = "crashed"
                    problems.append(f"batch {b} crashed ({done.returncode}): {done.stderr[-2000:]}")
            except subprocess.TimeoutExpired:
                failure = "hung"
                problems.append(f"batch {b} hung")
            problems += tally(table, areas, outcome, failure)
            if outcome is not None:
                problems += [f"batch {b}: {n}" for n in outcome["notices"]]
        print(
            f"batch {b + 1}/{batches} ({'pool' if jobs > 1 else 'in-process'}): "
            f"{time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    report(table, problems, time.monotonic() - started)
    bad = sum(table[a][k] for a in table for k in ("crashed", "hung", "wrong", "lost"))
    return 1 if bad else 0


def report(table: dict[str, Counter[str]], problems: list[str], seconds: float) -> None:
    files = sum(c["tried"] for a, c in table.items() if a not in ("snapshot", "flake8"))
    crashed = sum(c["crashed"] for c in table.values())
    notices = sum(c["notices"] for c in table.values())
    print(f"{files} files in {seconds:.0f} s: {crashed} crashed, {notices} became notices")
    print()
    print(f"| area | {' | '.join(OUTCOMES)} | notices |")
    print(f"|---|{'---:|' * (len(OUTCOMES) + 1)}")
    for area in sorted(table):
        row = table[area]
        cells = " | ".join(str(row[k]) for k in OUTCOMES)
        print(f"| {area} | {cells} | {row['notices']} |")
    total = Counter[str]()
    for row in table.values():
        total.update(row)
    print(f"| **all** | {' | '.join(str(total[k]) for k in OUTCOMES)} | {total['notices']} |")
    if problems:
        print("\nProblems:")
        for p in problems[:50]:
            print(" ", p)


if __name__ == "__main__":
    sys.exit(main())

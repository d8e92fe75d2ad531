"""Run the analyzer on local checkouts of real applications and time it.

    python bench/realworld_eval.py NAME=PATH[@REPO:COMMIT] [...] [--out DIR] [--jobs N]
                                   [--config NAME=FILE ...]

PATH is the folder that holds the application's Python packages (it becomes the
project root, so module names resolve as the application imports them). The
checkouts are made beforehand by whoever runs this script; it reads local paths
only and fetches nothing. For each project it writes ``DIR/<NAME>.findings.json``
(the CLI's JSON contract plus the tasks the engine found) and prints files,
seconds, files/second, tasks and findings per rule family. Timing is a cold run
(no summary cache going in), wall clock and CPU seconds (this process plus its
pool workers), with the pool size given by ``--jobs``. ``--config NAME=FILE``
reads ``[tool.idemlint]`` (or a bare table) from FILE for that project, which is
how an application's own task wrappers are declared without writing into its tree.

Why a script and not the CLI: the evaluation needs the task list (task-detection
recall is measured against it) and a root chosen by hand without writing a
pyproject.toml into someone else's tree.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idemlint.config import Config, load_config
from idemlint.lint.files.discovery import discover
from idemlint.lint.index.project import Project
from idemlint.lint.index.tasks import find_tasks
from idemlint.lint.knowledge import load_knowledge
from idemlint.lint.run.cache import SummaryCache
from idemlint.lint.run.engine import check
from idemlint.lint.run.summarising import summarize_files


@dataclass(frozen=True)
class Target:
    name: str
    root: Path
    repo: str
    commit: str


def parse_target(spec: str) -> Target:
    """``NAME=PATH[@REPO:COMMIT]`` -> :class:`Target`; a malformed spec is a usage error."""
    if "=" not in spec:
        raise SystemExit(f"bad target {spec!r}: expected NAME=PATH[@REPO:COMMIT]")
    name, rest = spec.split("=", 1)
    repo = commit = ""
    if "@" in rest:
        rest, origin = rest.split("@", 1)
        repo, _, commit = origin.partition(":")
    root = Path(rest).absolute()
    if not root.is_dir():
        raise SystemExit(f"bad target {spec!r}: {root} is not a folder")
    return Target(name, root, repo, commit)


def task_list(config: Config) -> list[dict[str, Any]]:
    """The tasks the engine recognises, with where they are and whether they retry.

    Reads the summaries the timed run left in ``config.cache_dir``."""
    files = discover(config.root, (*config.exclude, *config.extend_exclude))
    cache = SummaryCache(config.cache_dir) if config.cache_dir is not None else None
    summaries = summarize_files(files, config.root, cache=cache, jobs=1)
    knowledge = load_knowledge(
        config.knowledge, frameworks=config.task_frameworks, source=config.source
    )
    project = Project(summaries, knowledge)
    return [
        {
            "name": name,
            "framework": t.framework,
            "path": t.ref.file.path,
            "line": t.span.line,
            "retries": t.retries,
            "retry_reason": t.retry_reason,
        }
        for name, t in sorted(find_tasks(project).items())
    ]


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load_target_config(target: Target, config_file: Path | None, cache_dir: Path) -> Config:
    """The project's config: defaults at the chosen root, plus FILE's knowledge if given."""
    if config_file is None:
        return Config(root=target.root, cache_dir=cache_dir)
    loaded = load_config([target.root], config_file=config_file)
    return Config(
        root=target.root,
        source=loaded.source,
        exclude=loaded.exclude,
        extend_exclude=loaded.extend_exclude,
        task_frameworks=loaded.task_frameworks,
        knowledge=loaded.knowledge,
        cache_dir=cache_dir,
    )


def run(target: Target, out: Path, jobs: int | None, config_file: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="idemlint-realworld-") as tmp:
        config = load_target_config(target, config_file, Path(tmp))
        wall0, cpu0 = time.perf_counter(), _cpu()
        result = check([target.root], config, jobs=jobs, cwd=target.root)
        seconds, cpu = time.perf_counter() - wall0, _cpu() - cpu0
        tasks = task_list(config)
    findings = [f.to_json() for f in result.findings]
    families = Counter(f["rule"][:4] + "xx" for f in findings)
    record = {
        "name": target.name,
        "repo": target.repo,
        "commit": target.commit,
        "root": str(target.root),
        "files": result.files_read,
        "config": str(config_file) if config_file else None,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "files_per_second": round(result.files_read / seconds, 1) if seconds else None,
        "files_per_cpu_second": round(result.files_read / cpu, 1) if cpu else None,
        "tasks": tasks,
        "findings": findings,
        "by_family": dict(sorted(families.items())),
    }
    (out / f"{target.name}.findings.json").write_text(json.dumps(record, indent=2), "utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", help="NAME=PATH[@REPO:COMMIT]")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the JSON files")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    parser.add_argument(
        "--config", action="append", default=[], metavar="NAME=FILE", help="knowledge for NAME"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    targets = [parse_target(t) for t in args.targets]
    configs: dict[str, Path] = {}
    for spec in args.config:
        name, sep, file = spec.partition("=")
        if not sep or not Path(file).is_file():
            raise SystemExit(f"bad --config {spec!r}: expected NAME=FILE with an existing FILE")
        configs[name] = Path(file).absolute()
    head = f"{'name':<12} {'files':>6} {'wall s':>8} {'cpu s':>8} {'files/s':>8} {'f/cpu-s':>8}"
    print(f"{head} {'tasks':>6} {'findings':>9}", flush=True)
    for target in targets:
        r = run(target, args.out, args.jobs, configs.get(target.name))
        print(
            f"{r['name']:<12} {r['files']:>6} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f} "
            f"{r['files_per_second']:>8} {r['files_per_cpu_second']:>8} "
            f"{len(r['tasks']):>6} {len(r['findings']):>9}  {r['by_family']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast is ``idemlint check`` next to the linters a team already runs?

    python bench/lint_speed.py            # Django sdist (1 round), pretix, saleor (3 rounds)
    python bench/lint_speed.py --quick    # pretix only, 1 round, no fixit (~2 minutes)
    python bench/lint_speed.py --trees saleor --mirror ../.mirror
    python bench/lint_speed.py --trees saleor --tree-path saleor=DIR   # an extracted tree

What it needs, fetched on first use into ``bench/.data/`` (git-ignored) and reused:

* the sources: Django's sdist (``pip download --no-binary :all: django==5.2.8``: the
  framework, its test suite and docs scripts) and pretix (``pip download pretix==2026.8.0``,
  a Django + Celery application with tasks in every service module). Each tree gets
  an empty ``git init`` so it is its own project root for every tool.
* saleor, the largest application of ``../shared/realworld/repos.tsv`` (4,300 files, a
  Django + Celery e-commerce platform), at the commit that file lists, written from a
  bare git mirror (``--mirror``, default ``../.mirror``: ``saleor+saleor/repo``, as
  ``score.py`` of the real-world set reads it): its ``.py`` files and root markers, by
  ``git cat-file``. Without the mirror or the list, saleor is skipped and says why.
* a second virtualenv, ``bench/.data/peers``, with the same flake8 as this one plus
  bandit and fixit. The peers must run *without* idemlint installed: flake8 runs every
  installed plugin on every file whatever ``--select`` says, so ``flake8 --select=F``
  in this environment would also run idemlint's plugin.

Every timed command goes through ``bench/_measure.py`` (wall, CPU of the command and
its children, peak RSS of its largest process). Rounds are interleaved: each round
runs every command once, starting one command later than the previous round, and
the table shows medians. Ratios are to ``flake8 --select=F`` on the same tree, in
the same run. The warm runs use the cache of the cold run just before them: nothing
changed; one task module touched (same bytes, new mtime); the same module edited in a
function body (a one-line call statement written twice: the summary changes, the
names in the file do not); and a module-level name added to it (the pre-check's scan
of the file changes too, so the pre-check runs over the whole tree again). One extra
cold run without the text pre-check checks that the pre-check changes no finding.

Editor latency is measured on one task module of each application: ``flake8 --select
IDM FILE`` in this environment (warm cache; the file unchanged, then edited both ways)
against plain ``flake8 FILE`` from the peers environment, and against flake8 in this
environment with the plugin installed but not selected (flake8 starts more slowly
where more packages are installed), 5 interleaved rounds, medians. Before them, the
first call with no cache at all (what an editor opening the project for the first time
waits: idemlint answers within its budget and leaves a run in the background, which is
waited for before the next measurement).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DATA = BENCH / ".data"
PEERS = DATA / "peers"
PY = sys.executable
PEER_PINS = ("bandit==1.9.4", "fixit==2.2.1")
REPOS_TSV = BENCH.parent.parent / "shared" / "realworld" / "repos.tsv"
"""The real-world set's list of applications and commits (saleor's commit comes from it);
``--repos-tsv`` names another."""
DEFAULT_MIRROR = BENCH.parent.parent / ".mirror"
ROOT_MARKERS = frozenset({"pyproject.toml", "setup.cfg", "setup.py"})


@dataclass(frozen=True)
class Tree:
    name: str
    requirement: str
    sdist: bool
    editor_file: str | None
    """A task module: the file edited for the warm run and checked for editor latency."""
    touch_file: str
    rounds: int = 3
    fixit: bool = True
    compare: bool = True
    """Run once more without the text pre-check and compare the findings."""
    mirror: str | None = None
    """``owner/name``: written from a bare git mirror at the commit of :data:`REPOS_TSV`
    (``requirement`` then only names it)."""
    others: bool = True
    """Also time ``flake8`` with its default selection and ``bandit -r``."""


TREES = {
    # the framework (no tasks): one round keeps the whole run within 10 minutes
    "django": Tree(
        "django",
        "django==5.2.8",
        True,
        None,
        "django/core/mail/message.py",
        rounds=1,
        fixit=False,
        compare=False,
    ),
    "pretix": Tree(
        "pretix",
        "pretix==2026.8.0",
        False,
        "pretix/base/services/mail.py",
        "pretix/base/services/mail.py",
    ),
    # the largest application of the real-world set: 4,300 files, 100 Celery tasks
    "saleor": Tree(
        "saleor",
        "saleor",
        False,
        "saleor/order/tasks.py",
        "saleor/order/tasks.py",
        fixit=False,
        mirror="saleor/saleor",
        others=False,
    ),
}


class Skip(Exception):
    """A tree that cannot be prepared here (its mirror or list is missing): why."""


def mirror_commit(repo: str, listing: Path | None = None) -> str:
    """The commit ``listing`` (default :data:`REPOS_TSV`) lists for ``repo``."""
    listing = listing or REPOS_TSV
    if not listing.is_file():
        raise Skip(f"{listing} is not there (the real-world set lists the commit; --repos-tsv)")
    with open(listing, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row.get("repo") == repo:
                return row["commit"]
    raise Skip(f"{listing} does not list {repo}")


def copy_tree(source: Path, dest: Path) -> None:
    """Every ``.py`` file and root marker under ``source`` (an extracted tree, as the
    real-world set leaves it), copied to ``dest``; hidden folders (a cache, a tool's
    state) are left out, so the copy is what :func:`write_from_mirror` would write."""
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        for name in files:
            if name.endswith(".py") or name in ROOT_MARKERS:
                target = dest / (here / name).relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(here / name, target)


def write_from_mirror(git: Path, commit: str, dest: Path) -> None:
    """Every ``.py`` blob and root marker of ``commit`` under ``dest``, by ``git cat-file``
    (a mirror may lack big blobs: those are left out, as the real-world set's score.py
    does)."""
    listing = subprocess.run(
        ["git", "--git-dir", str(git), "ls-tree", "-r", commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries = []
    for row in listing.splitlines():
        meta, path = row.split("\t", 1)
        mode, kind, sha = meta.split()
        name = path.rsplit("/", 1)[-1]
        if kind == "blob" and mode == "100644" and (path.endswith(".py") or name in ROOT_MARKERS):
            entries.append((sha, path))
    blobs = subprocess.run(
        ["git", "--git-dir", str(git), "cat-file", "--batch"],
        input="".join(f"{sha}\n" for sha, _ in entries).encode(),
        capture_output=True,
        check=True,
    ).stdout
    pos = 0
    for _, path in entries:
        end = blobs.index(b"\n", pos)
        header = blobs[pos:end].split()
        pos = end + 1
        if header[1] == b"missing":
            continue
        size = int(header[2])
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blobs[pos : pos + size])
        pos += size + 1


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mb: float
    timed_out: bool = False


@dataclass
class Row:
    label: str
    samples: list[Sample] = field(default_factory=list)
    note: str = ""

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(s, attr) for s in self.samples))

    def peak_rss(self) -> float:
        return max(s.rss_mb for s in self.samples)


# ---------------------------------------------------------------- preparation
def _pip(*args: str, python: str = PY) -> None:
    subprocess.run([python, "-m", "pip", "-q", *args], check=True)


def prepare_tree(
    tree: Tree,
    mirror: Path = DEFAULT_MIRROR,
    *,
    source: Path | None = None,
    listing: Path | None = None,
) -> Path:
    """Download (once) and unpack (once) the tree, or write it from its mirror (or copy it
    from ``source``, a folder where it is extracted already); return its root.
    :class:`Skip` when its mirror is not here."""
    root = DATA / "trees" / tree.name
    if (root / ".git").exists():
        return root
    if source is not None:
        if not source.is_dir():
            raise Skip(f"{source} is not a folder")
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        print(f"copying {tree.name} from {source} ...", file=sys.stderr)
        copy_tree(source, tmp)
        subprocess.run(["git", "init", "-q", str(tmp)], check=True)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        return root
    if tree.mirror is not None:
        git = mirror / tree.mirror.replace("/", "+") / "repo"
        if not git.exists():
            raise Skip(f"no mirror of {tree.mirror} at {git} (--mirror DIR)")
        commit = mirror_commit(tree.mirror, listing)
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        print(f"writing {tree.mirror} at {commit[:12]} from {git} ...", file=sys.stderr)
        write_from_mirror(git, commit, tmp)
        subprocess.run(["git", "init", "-q", str(tmp)], check=True)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        return root
    src = DATA / "src"
    src.mkdir(parents=True, exist_ok=True)
    name, version = tree.requirement.split("==")
    found = sorted(src.glob(f"{name}-{version}*"))
    if not found:
        extra = ["--no-binary", ":all:"] if tree.sdist else ["--only-binary", ":all:"]
        print(f"downloading {tree.requirement} ...", file=sys.stderr)
        _pip("download", "--no-deps", *extra, tree.requirement, "-d", str(src))
        found = sorted(src.glob(f"{name}-{version}*"))
    archive = found[0]
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        (inner,) = list(tmp.iterdir())  # sdists hold one folder, name-version/
        for child in inner.iterdir():
            child.rename(tmp / child.name)
        inner.rmdir()
    # its own (empty) repository: the project root for every tool, and git
    # discovery that does not see this repository's ignore of bench/.data/
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def prepare_peers() -> Path:
    """A venv with flake8 (same version as here), bandit and fixit, and no idemlint."""
    bin_dir = PEERS / "bin"
    if not (bin_dir / "flake8").exists():
        print("creating the peers virtualenv ...", file=sys.stderr)
        subprocess.run([PY, "-m", "venv", str(PEERS)], check=True)
        pins = [
            f"{dist}=={metadata.version(dist)}" for dist in ("flake8", "pyflakes", "pycodestyle")
        ]
        _pip("install", *pins, *PEER_PINS, python=str(bin_dir / "python"))
    return bin_dir


# ---------------------------------------------------------------- measuring
def _edit() -> bytes:
    """A real code change (a new module-level assignment), so the edited file's summary
    differs and the run cannot reuse anything computed from the old one."""
    return f"\n_lint_speed_edit = {time.time_ns()}\n".encode()


_CALL_LINE = re.compile(rb"^( {8,})[A-Za-z_][\w.]*\([^()\n]*\)[ \t]*$", re.MULTILINE)


def edit_body(original: bytes) -> bytes:
    """An edit inside a function: the first one-line call statement that can be written
    twice (the file still parses). The summary changes (one more call, every later
    position moves); the set of names in the file does not (the comment holds digits
    only), so the pre-check's scan stays the same (the common editor case: code changed
    with names the file already uses)."""
    for m in _CALL_LINE.finditer(original):
        # the comment makes every edit new bytes (a summary never comes from the cache)
        twice = m.group(0) + f"  # {time.time_ns()}".encode()
        edited = original[: m.end()] + b"\n" + twice + original[m.end() :]
        try:
            ast.parse(edited)
        except SyntaxError:
            continue  # a line inside brackets, not a statement
        return edited
    raise SystemExit("no one-line call statement to duplicate in the edited file")


def add_name(original: bytes) -> bytes:
    return original + _edit()


EDITS: dict[str, Callable[[bytes], bytes]] = {
    "function body edited": edit_body,
    "module-level name added": add_name,
}


def _places(report: Path) -> list[tuple[str, int, int, str, str]]:
    data = json.loads(report.read_text("utf-8"))
    return sorted(
        (f["path"], f["line"], f["column"], f["rule"], f["task"] or "") for f in data["findings"]
    )


# idemlint's own commands import this checkout, whatever `pip install -e` last pointed
# the environment at (only those: the peers must not see idemlint at all)
_PATH = [str(BENCH.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
# every tool runs with its bytecode cached, as installed tools do (a machine that sets
# PYTHONDONTWRITEBYTECODE would charge each run for compiling every module it imports)
BASE = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
OURS = {**BASE, "PYTHONPATH": os.pathsep.join(_PATH)}


def measure(
    cmd: list[str], cwd: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> Sample:
    limit = ["--timeout", str(timeout)] if timeout else []
    out = subprocess.run(
        [PY, str(BENCH / "_measure.py"), "--cwd", str(cwd), *limit, "--", *cmd],
        capture_output=True,
        check=True,
        text=True,
        env=env if env is not None else BASE,
    )
    data = json.loads(out.stdout)
    if data["timed_out"]:
        return Sample(data["wall"], data["cpu"], data["rss_mb"], timed_out=True)
    if data["returncode"] not in (0, 1):  # linters exit 1 when they find something
        raise SystemExit(f"{' '.join(cmd)} failed ({data['returncode']}):\n{data['stderr']}")
    return Sample(data["wall"], data["cpu"], data["rss_mb"])


def said(where: str, label: str, sample: Sample) -> Sample:
    """Print one sample as it is taken (a run stopped early still leaves its numbers)."""
    print(
        f"  [{where}] {label}: {sample.wall:.2f}s wall, {sample.cpu:.2f}s cpu, "
        f"{sample.rss_mb:.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    return sample


@dataclass
class Step:
    label: str
    run: Callable[[], Sample]


def idemlint_steps(root: Path, tree: Tree, report: Path) -> list[Step]:
    """A cold run (no cache), then warm runs on its cache, always in this order: nothing
    changed, one file touched (same bytes, new mtime), one file edited (each kind of
    :data:`EDITS`). After an edit the file is restored and an untimed run brings the
    cache back to the unedited tree, so every warm run starts from the same state."""
    cmd = [PY, "-m", "idemlint", "check", ".", "--format", "json", "--output", str(report)]
    quiet = [PY, "-m", "idemlint", "check", ".", "--format", "json", "--output", os.devnull]
    touched = root / tree.touch_file

    def cold() -> Sample:
        shutil.rmtree(root / ".idemlint_cache", ignore_errors=True)
        return measure(cmd, root, env=OURS)

    def unchanged() -> Sample:
        return measure(cmd, root, env=OURS)

    def touch() -> Sample:
        os.utime(touched)
        return measure(cmd, root, env=OURS)

    def edited(change: Callable[[bytes], bytes]) -> Callable[[], Sample]:
        def run() -> Sample:
            original = touched.read_bytes()
            try:
                touched.write_bytes(change(original))
                return measure(cmd, root, env=OURS)
            finally:
                touched.write_bytes(original)
                measure(quiet, root, env=OURS)

        return run

    return [
        Step("idemlint check, cold", cold),
        Step("idemlint check, warm, nothing changed", unchanged),
        Step("idemlint check, warm, 1 file touched", touch),
        *(Step(f"idemlint check, warm, {label}", edited(f)) for label, f in EDITS.items()),
    ]


FIXIT_TIMEOUT = 150.0
"""fixit is run once, and stopped here: it takes minutes where the others take seconds."""


def bench_tree(
    tree: Tree,
    root: Path,
    peers: Path,
    rounds: int,
    with_fixit: bool,
    compare: bool,
    *,
    parse_rows: bool = True,
) -> list[Row]:
    report = DATA / f"{tree.name}.findings.json"
    ours_steps = idemlint_steps(root, tree, report)
    cold, warm = ours_steps[0], ours_steps[-1]
    parse_all = str(BENCH / "_parse_all.py")
    flake8, bandit = str(peers / "flake8"), str(peers / "bandit")
    bandit_out = str(DATA / "bandit.json")

    def ours(cmd: list[str]) -> Sample:
        return measure(cmd, root, env=OURS)

    groups: list[list[Step]] = [
        ours_steps,
        [Step("flake8 --select=F", lambda: measure([flake8, "--select=F", "."], root))],
    ]
    if parse_rows:  # (--lean leaves them out: on saleor each costs as much as a cold run)
        groups[:0] = [
            [Step("ast.parse, every file", lambda: ours([PY, parse_all, "ast", "."]))],
            [Step("libcst parse, every file", lambda: ours([PY, parse_all, "libcst", "."]))],
        ]
    if tree.others:
        groups.append([Step("flake8 (default)", lambda: measure([flake8, "."], root))])
        groups.append(
            [
                Step(
                    "bandit -r",
                    lambda: measure(
                        [bandit, "-r", ".", "-q", "-f", "json", "-o", bandit_out], root
                    ),
                )
            ]
        )
    rows: dict[str, Row] = {s.label: Row(s.label) for g in groups for s in g}
    for r in range(rounds):
        order = groups[r % len(groups) :] + groups[: r % len(groups)]
        for group in order:
            for step in group:
                sample = step.run()
                rows[step.label].samples.append(sample)
                said(f"{tree.name} round {r + 1}/{rounds}", step.label, sample)
    report_places = _places(report)
    rows[cold.label].note = f"{len(report_places)} findings"
    out = list(rows.values())
    if compare:  # once: the same cold run without the text pre-check, findings compared
        plain_report = DATA / f"{tree.name}.findings.no-precheck.json"
        plain = Row("idemlint check, cold, no pre-check (1 run)")
        plain.samples.append(ours([PY, str(BENCH / "_check.py"), ".", str(plain_report)]))
        without = _places(plain_report)
        same = "same findings" if report_places == without else "FINDINGS DIFFER"
        plain.note = f"{len(without)} findings: {same} as with the pre-check"
        out.insert(out.index(rows[warm.label]) + 1, plain)
    if with_fixit:  # once, with a time limit
        fixit = Row("fixit lint (1 run)")
        sample = measure([str(peers / "fixit"), "lint", "."], root, timeout=FIXIT_TIMEOUT)
        fixit.samples.append(sample)
        if sample.timed_out:
            fixit.note = f"stopped after {FIXIT_TIMEOUT:.0f} s: at least this"
        out.append(fixit)
    return out


def wait_for_warm_up(root: Path, limit: float = 900.0) -> None:
    """Until the background run an editor's first call left is done (it holds the cache's
    warm-up lock), so that it does not share the machine with the next measurement."""
    import fcntl

    lock = root / ".idemlint_cache" / "warming.lock"
    deadline = time.monotonic() + limit
    time.sleep(0.5)  # (it takes the lock as it starts)
    while time.monotonic() < deadline:
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            return  # no background run was started
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            time.sleep(0.2)
        finally:
            os.close(fd)
    raise SystemExit("the background run of the editor's first call did not finish")


def editor_first_call(tree: Tree, root: Path, rounds: int) -> Row:
    """``flake8 --select IDM FILE`` with no cache at all: an editor opening the project for
    the first time. Each round starts from an empty cache and waits for the background
    run it leaves."""
    assert tree.editor_file is not None
    row = Row("flake8 --select IDM FILE, first call, no cache")
    ide = [PY, "-m", "flake8", "--select", "IDM", tree.editor_file]
    for _ in range(rounds):
        shutil.rmtree(root / ".idemlint_cache", ignore_errors=True)
        row.samples.append(said(f"{tree.name} editor", row.label, measure(ide, root, env=OURS)))
        wait_for_warm_up(root)
    return row


def editor_latency(tree: Tree, root: Path, peers: Path, rounds: int) -> list[Row]:
    assert tree.editor_file is not None
    editor_file = tree.editor_file
    target = root / editor_file
    first = editor_first_call(tree, root, 3)
    # a warm cache for the project as it is
    measure(
        [PY, "-m", "idemlint", "check", ".", "--format", "json", "--output", "/dev/null"],
        root,
        env=OURS,
    )
    plain = Row(f"flake8 {tree.editor_file} (no plugin)")
    here = Row("flake8 --select E,F,W,C90 FILE, here (plugin installed, not selected)")
    same = Row("flake8 --select IDM FILE, warm, file unchanged")
    original = target.read_bytes()
    ide = [PY, "-m", "flake8", "--select", "IDM", tree.editor_file]
    quiet = [PY, "-m", "idemlint", "check", ".", "--format", "json", "--output", os.devnull]

    def run_edited(change: Callable[[bytes], bytes]) -> Callable[[], Sample]:
        def run() -> Sample:
            try:
                target.write_bytes(change(original))
                return measure(ide, root, env=OURS)
            finally:
                target.write_bytes(original)
                measure(quiet, root, env=OURS)  # the cache back to the unedited file

        return run

    steps: list[tuple[Row, Callable[[], Sample]]] = [
        (plain, lambda: measure([str(peers / "flake8"), editor_file], root)),
        (
            here,
            lambda: measure(
                [PY, "-m", "flake8", "--select", "E,F,W,C90", editor_file], root, env=OURS
            ),
        ),
        (same, lambda: measure(ide, root, env=OURS)),
        *(
            (Row(f"flake8 --select IDM FILE, warm, {label}"), run_edited(f))
            for label, f in EDITS.items()
        ),
    ]
    for r in range(rounds):
        shift = r % len(steps)
        for row, run in steps[shift:] + steps[:shift]:
            row.samples.append(said(f"{tree.name} editor round {r + 1}", row.label, run()))
    return [row for row, _ in steps] + [first]


# ---------------------------------------------------------------- report
def table(title: str, rows: list[Row], baseline: Row | None) -> str:
    lines = [
        f"### {title}",
        "",
        "| command | wall s | CPU s | peak RSS MB | wall / F | CPU / F | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if any(sample.timed_out for sample in row.samples):
            # killed: its workers' CPU and memory were never reported back
            wall = row.median("wall")
            lines.append(f"| {row.label} | > {wall:.0f} | n/a | n/a | | | {row.note} |")
            continue
        wall, cpu = row.median("wall"), row.median("cpu")
        if baseline is not None:
            rw = f"{wall / baseline.median('wall'):.2f}x"
            rc = f"{cpu / baseline.median('cpu'):.2f}x"
        else:
            rw = rc = ""
        lines.append(
            f"| {row.label} | {wall:.2f} | {cpu:.2f} | {row.peak_rss():.0f} | {rw} | {rc} "
            f"| {row.note} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row]) -> str:
    by = {r.label: r for r in rows}
    cold = by["idemlint check, cold"]
    warm = [r for r in rows if r.label.startswith("idemlint check, warm, ")]
    flake = by["flake8 --select=F"]
    cst = by.get("libcst parse, every file")

    def ratio(a: Row, b: Row, attr: str) -> float:
        return a.median(attr) / b.median(attr)

    return "\n".join(
        [
            f"- cold / flake8 --select=F: {ratio(cold, flake, 'wall'):.2f}x wall, "
            f"{ratio(cold, flake, 'cpu'):.2f}x CPU (target <= 0.5x)",
            *(
                [
                    f"- cold / bare libcst parse: {ratio(cold, cst, 'wall'):.2f}x wall, "
                    f"{ratio(cold, cst, 'cpu'):.2f}x CPU (target <= 2x)"
                ]
                if cst is not None
                else []
            ),
            *(
                f"- warm / cold, {w.label.split(', ', 2)[2]}: {ratio(w, cold, 'wall'):.3f}x wall "
                f"({w.median('wall'):.2f} s; target <= 0.05x)"
                for w in warm
            ),
            f"- peak RSS, cold: {cold.peak_rss():.0f} MB (target <= 300 MB)",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pretix only, 1 round, no fixit")
    parser.add_argument("--trees", default=None, help="comma-separated: django,pretix,saleor")
    parser.add_argument("--rounds", type=int, default=None, help="rounds for every tree")
    parser.add_argument("--no-fixit", action="store_true")
    parser.add_argument(
        "--mirror",
        type=Path,
        default=DEFAULT_MIRROR,
        help=f"folder of OWNER+NAME/repo bare git mirrors (default: {DEFAULT_MIRROR})",
    )
    parser.add_argument(
        "--repos-tsv",
        type=Path,
        default=REPOS_TSV,
        help=f"the real-world set's list of commits (default: {REPOS_TSV})",
    )
    parser.add_argument(
        "--tree-path",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="take tree NAME from DIR, where it is extracted already (its .py files and "
        "root markers are copied once into bench/.data/trees/NAME), e.g. "
        "saleor=../idemlint-realworld/saleor+saleor",
    )
    parser.add_argument(
        "--lean",
        action="store_true",
        help="only what the targets need: no bare-parse rows, no run without the pre-check, "
        "no fixit (a loaded machine, a big tree)",
    )
    args = parser.parse_args()
    sources: dict[str, Path] = {}
    for given in args.tree_path:
        name, _, folder = given.partition("=")
        if name not in TREES or not folder:
            parser.error(f"--tree-path {given}: NAME=DIR with NAME one of {', '.join(TREES)}")
        sources[name] = Path(folder)
    names = (args.trees or ("pretix" if args.quick else "django,pretix,saleor")).split(",")
    with_fixit = not (args.quick or args.no_fixit or args.lean)
    started = time.perf_counter()
    peers = prepare_peers()
    out: list[str] = []
    for name in names:
        tree = TREES[name]
        try:
            root = prepare_tree(tree, args.mirror, source=sources.get(name), listing=args.repos_tsv)
        except Skip as why:
            print(f"{tree.name}: skipped: {why}", file=sys.stderr)
            out.append(f"### {tree.requirement}: skipped ({why})")
            out.append("")
            continue
        from idemlint.lint.files.discovery import discover

        n_files = len(discover(root))
        rounds = args.rounds or (1 if args.quick else tree.rounds)
        rows = bench_tree(
            tree,
            root,
            peers,
            rounds,
            with_fixit and tree.fixit,
            compare=tree.compare and not args.lean,
            parse_rows=not args.lean,
        )
        baseline = next(r for r in rows if r.label == "flake8 --select=F")
        out.append(table(f"{tree.requirement}: {n_files} files, {rounds} rounds", rows, baseline))
        out.append("")
        out.append(targets(rows))
        out.append("")
        if tree.editor_file is not None:
            editor = editor_latency(tree, root, peers, 3 if args.quick or args.lean else 5)
            out.append(table(f"editor latency, {tree.requirement}", editor, None))
            out.append("")
            plain_wall, here_wall = editor[0].median("wall"), editor[1].median("wall")
            first = editor[-1]
            out.append(
                f"- first call, no cache: {first.median('wall'):.2f} s, the longest "
                f"{max(s.wall for s in first.samples):.2f} s (target <= 2 s)"
            )
            for row in editor[2:-1]:
                kind = row.label.split(", ", 2)[2]
                added = (row.median("wall") - plain_wall) * 1000
                added_here = (row.median("wall") - here_wall) * 1000
                out.append(
                    f"- {kind}: {added:.0f} ms over plain flake8, {added_here:.0f} ms over "
                    "flake8 in the same environment (target <= 150 ms)"
                )
            out.append("")
    out.append(
        f"total benchmark time {time.perf_counter() - started:.0f} s; "
        f"{sys.platform}, Python {sys.version.split()[0]}"
    )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

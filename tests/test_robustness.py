"""Issue 12: what the analyzer does with hostile or broken input. Each test is the
reproduction of one reported failure, which now ends as findings, a notice or a clear
error, and never writes, reads or deletes outside the project.

Items: 1 the cache folder (symlinks, cache-dir outside the root, pruning), 4 unreadable
files and folders, 5 damaged snapshots, 6 PEP 263 encodings, 7 code too deep or too
slow for the parser, 8 tracebacks turned into errors or notices, 13 symlinks out of the
project.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from idemlint.cli import main as cli_main
from idemlint.config import Config, load_config
from idemlint.errors import ConfigError
from idemlint.findings import Finding
from idemlint.flake8_plugin import Plugin
from idemlint.lint.run import cachedir, isolation, snapshot, snapshot_check, summarising
from idemlint.lint.run.cache import SummaryCache
from idemlint.lint.run.engine import CheckResult, check

TASK = """
import requests
from celery import shared_task


@shared_task(acks_late=True)
def notify(user_id):
    requests.post("https://hooks.example/notify", json={"user": user_id})
"""

ROOT_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
"""chmod does not stop root; those tests run as any other user, and their cases are also
covered by tests that make reading fail another way."""


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return root


def project(tmp_path: Path, extra: dict[str, str | bytes] | None = None) -> Path:
    files: dict[str, str | bytes] = {
        "pyproject.toml": "[project]\nname = 'demo'\n",
        "app/__init__.py": "",
        "app/tasks.py": TASK,
    }
    return write(tmp_path / "proj", {**files, **(extra or {})})


def run(root: Path, config: Config | None = None, **kwargs: object) -> CheckResult:
    return check([root], config or load_config([root]), cwd=root, **kwargs)  # type: ignore[arg-type]


def places(findings: list[Finding]) -> list[tuple[str, int, str]]:
    return [(f.path, f.line, f.rule) for f in findings]


def notices(result: CheckResult) -> dict[str, str]:
    return {f.path: f.message for f in result.findings if f.rule == "IDM001"}


def tree_of(folder: Path) -> dict[str, float]:
    """Every path under ``folder`` with its mtime: what a run must leave alone."""
    return {
        str(p.relative_to(folder)): p.lstat().st_mtime
        for p in sorted(folder.rglob("*"))
        if not p.is_dir() or p.is_symlink()
    }


def cli(*args: str, cwd: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with pytest.raises(SystemExit) as stopped:
            cli_main(list(args))
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return int(stopped.value.code or 0), out, err


# -- 1: the cache folder ---------------------------------------------------------
def plant(outside: Path) -> None:
    """An old folder that looks like a cache: what the pruning deleted before."""
    month_and_more = time.time() - 40 * 86400
    for name in (
        f"summaries/ab/ab{'0' * 62}.json",
        f"scans/cd/cd{'1' * 62}.json",
        f"projects/{'2' * 32}.json",
        "summaries/precious.txt",
        "projects/notes.json",
    ):
        path = outside / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me\n")
        os.utime(path, (month_and_more, month_and_more))


def test_a_committed_cache_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    plant(outside)
    before = tree_of(outside)
    root = project(tmp_path)
    (root / ".idemlint_cache").symlink_to(outside, target_is_directory=True)
    result = run(root)
    assert tree_of(outside) == before  # nothing written, hidden or pruned there
    assert any("leads outside the project" in n for n in result.notices)
    assert places(result.findings) == [("app/tasks.py", 7, "IDM304")]


def test_cache_dir_outside_the_root_in_the_config_is_an_error_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere"
    for value in (str(outside), "../elsewhere", "build/../../elsewhere"):
        root = project(tmp_path, {"pyproject.toml": f'[tool.idemlint]\ncache-dir = "{value}"\n'})
        with pytest.raises(ConfigError) as raised:
            load_config([root])
        assert raised.value.key == "cache-dir"
        assert raised.value.file == str(root / "pyproject.toml")
        assert "outside the project root" in str(raised.value)
        code, _, err = cli("check", ".", cwd=root, capsys=capsys)
        assert code == 2 and "pyproject.toml: [tool.idemlint] cache-dir:" in err
    assert not outside.exists()
    inside = project(tmp_path, {"pyproject.toml": '[tool.idemlint]\ncache-dir = "build/c"\n'})
    assert load_config([inside]).cache_dir == inside / "build" / "c"


def test_a_nul_byte_in_cache_dir_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, {"pyproject.toml": '[tool.idemlint]\ncache-dir = "a\\u0000b"\n'})
    with pytest.raises(ConfigError, match="cache-dir"):
        load_config([root])
    plain = project(tmp_path / "plain")
    code, _, err = cli("check", "--cache-dir", "a\0b", ".", cwd=plain, capsys=capsys)
    assert code == 2 and "--cache-dir" in err and "Traceback" not in err


def test_a_cache_folder_named_on_the_command_line_or_in_the_environment_may_be_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path)
    chosen = tmp_path / "ci-cache"
    code, _, _ = cli("check", "--cache-dir", str(chosen), ".", cwd=root, capsys=capsys)
    assert code == 1
    assert cachedir.is_ours(chosen) and list((chosen / "projects").glob("*.json"))
    assert not (root / ".idemlint_cache").exists()
    monkeypatch.setenv("IDEMLINT_CACHE_DIR", str(tmp_path / "from-env"))
    config = load_config([root])
    assert config.cache_dir == tmp_path / "from-env" and not config.cache_in_project
    first = run(root, config)
    again = run(root, config)
    assert again.findings == first.findings and again.stats["analysed"] == 0


def test_a_folder_idemlint_did_not_make_is_not_used_as_the_cache(tmp_path: Path) -> None:
    root = project(tmp_path)
    home = tmp_path / "home"
    write(home, {"notes.txt": "mine\n", "src/x.py": "x = 1\n"})
    before = tree_of(home)
    config = Config.default(root).with_overrides(cache_dir=str(home))
    result = run(root, config)
    assert tree_of(home) == before  # no .gitignore with "*" dropped into it
    assert any("did not write" in n for n in result.notices)
    assert places(result.findings) == [("app/tasks.py", 7, "IDM304")]


def test_a_symlinked_area_inside_the_cache_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    plant(outside)
    before = tree_of(outside)
    root = project(tmp_path)
    run(root)  # the cache, made and tagged by idemlint
    cache = root / ".idemlint_cache"
    for area in ("summaries", "scans"):
        target = cache / area
        if target.exists():
            for p in sorted(target.rglob("*"), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
            target.rmdir()
        target.symlink_to(outside / area, target_is_directory=True)
    (root / "app" / "tasks.py").write_text(TASK.lstrip() + "\n# edited\n")
    result = run(root)
    assert tree_of(outside) == before
    assert any("symlink" in n for n in result.notices)


def test_pruning_deletes_only_what_idemlint_wrote(tmp_path: Path) -> None:
    root = project(tmp_path)
    run(root)
    cache = root / ".idemlint_cache"
    plant(cache)  # foreign files among entries named like idemlint's, all 40 days old
    old = time.time() - 40 * 86400
    os.utime(cache / "last-prune", (old, old))  # the prune is due
    run(root)
    assert (cache / "summaries" / "precious.txt").exists()
    assert (cache / "projects" / "notes.json").exists()
    assert not (cache / "summaries" / "ab" / f"ab{'0' * 62}.json").exists()  # a stale entry
    assert not (cache / "projects" / f"{'2' * 32}.json").exists()


def test_pruning_does_nothing_in_a_folder_without_idemlint_tag(tmp_path: Path) -> None:
    folder = tmp_path / "untagged"
    plant(folder)
    before = tree_of(folder)
    assert SummaryCache(folder).prune(set(), now=time.time()) == 0
    assert tree_of(folder) == before


def test_an_older_idemlint_cache_is_adopted(tmp_path: Path) -> None:
    root = project(tmp_path)
    write(root, {".idemlint_cache/.gitignore": "*\n", ".idemlint_cache/last-prune": "1\n"})
    (root / ".idemlint_cache" / "summaries").mkdir()
    result = run(root)
    assert result.notices == [] and cachedir.is_ours(root / ".idemlint_cache")


def test_the_gitignore_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    root = project(tmp_path)
    victim = tmp_path / "victim.txt"
    (root / ".idemlint_cache").mkdir()
    (root / ".idemlint_cache" / ".gitignore").symlink_to(victim)
    run(root)
    assert not victim.exists()


# -- 4: unreadable files and folders ------------------------------------------------
def test_an_unreadable_file_is_a_notice_and_read_again_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, {"app/secret.py": TASK})
    secret = root / "app" / "secret.py"
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == secret:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = run(root)
    assert notices(result) == {
        "app/secret.py": "This file does not parse, so none of its tasks were checked: "
        "cannot read file: Permission denied"
    }
    assert ("app/tasks.py", 7, "IDM304") in places(result.findings)
    monkeypatch.undo()  # readable again, same bytes, same mtime (chmod keeps it)
    again = run(root)
    assert ("app/secret.py", 7, "IDM304") in places(again.findings)
    assert notices(again) == {}


def test_an_unreadable_folder_is_a_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, {"app/hidden/__init__.py": "", "app/hidden/jobs.py": TASK})
    hidden = str(root / "app" / "hidden")
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if os.fspath(path) == hidden:
            raise PermissionError(13, "Permission denied", hidden)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = run(root)  # not a git work tree: os.walk lists the files
    assert notices(result) == {
        "app/hidden": "This file does not parse, so none of its tasks were checked: "
        "cannot read folder: Permission denied"
    }


def test_an_unreadable_folder_in_a_git_work_tree_is_a_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    real_run = subprocess.run

    def git(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        done: subprocess.CompletedProcess[bytes] = real_run(args, **kwargs)  # type: ignore[call-overload]
        if args[:2] == ["git", "ls-files"]:
            done.stderr += b"warning: could not open directory 'app/locked/': Permission denied\n"
        return done

    monkeypatch.setattr(subprocess, "run", git)
    result = run(root)
    assert notices(result) == {
        "app/locked": "This file does not parse, so none of its tasks were checked: "
        "cannot read folder: Permission denied"
    }


@pytest.mark.skipif(ROOT_IS_ROOT, reason="chmod does not stop root")
def test_chmod_000_file_and_folder_are_notices(tmp_path: Path) -> None:
    root = project(tmp_path, {"app/secret.py": TASK, "app/locked/jobs.py": TASK})
    (root / "app" / "secret.py").chmod(0)
    (root / "app" / "locked").chmod(0)
    try:
        result = run(root)
    finally:
        (root / "app" / "secret.py").chmod(stat.S_IRUSR | stat.S_IWUSR)
        (root / "app" / "locked").chmod(stat.S_IRWXU)
    found = notices(result)
    assert "cannot read file" in found["app/secret.py"]
    assert "cannot read folder" in found["app/locked"]


# -- 5: damaged snapshots -------------------------------------------------------
def snapshot_file(root: Path) -> Path:
    (found,) = (root / ".idemlint_cache" / "projects").glob("*.json")
    return found


def test_a_snapshot_with_a_rule_that_does_not_exist_is_discarded(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = run(root)
    snap = snapshot_file(root)
    text = snapshot_check.unseal(snap.read_text())
    assert '"IDM304"' in text
    damaged = text.replace('"IDM304"', '"IDM404"')
    for sealed in (snap.read_text().replace('"IDM304"', '"IDM404"'), snapshot_check.seal(damaged)):
        snap.write_text(sealed)  # the checksum kept, and made again to match
        again = run(root)
        assert again.findings == first.findings
        assert again.stats["analysed"] == 1  # computed again, not read from the damage


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d["files"][0].__setitem__(12, [-1]), id="negative-index"),
        pytest.param(lambda d: d["files"][0].__setitem__(12, [999]), id="index-out-of-range"),
        pytest.param(lambda d: d["tasks"][0][2][0].__setitem__(3, 99), id="hit-file-index"),
        pytest.param(
            lambda d: d["files"][1].__setitem__(11, [[0, "x", "celery", 5, []]]), id="assert"
        ),
        pytest.param(lambda d: d["tasks"][0][2][0].__setitem__(1, [0, 0, 0, 0]), id="line-0"),
        pytest.param(lambda d: d.__setitem__("files", [["x"] * 17]), id="types"),
    ],
)
def test_a_snapshot_that_raised_assertion_or_index_errors_is_discarded(
    tmp_path: Path, damage: object
) -> None:
    root = project(tmp_path)
    first = run(root)
    snap = snapshot_file(root)
    data = json.loads(snapshot_check.unseal(snap.read_text()))
    damage(data)  # type: ignore[operator]
    snap.write_text(snapshot_check.seal(json.dumps(data)))  # a checksum that matches
    assert snapshot.load(snap.parent.parent, snap.stem) is None
    again = run(root)
    assert again.findings == first.findings and again.notices == []


def test_a_deeply_nested_snapshot_is_discarded(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = run(root)
    snap = snapshot_file(root)
    snap.write_text(snapshot_check.seal("[" * 100_000 + "]" * 100_000))
    assert run(root).findings == first.findings


def test_a_run_that_fails_with_a_snapshot_is_made_again_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    first = run(root)
    (root / "app" / "tasks.py").write_text(TASK.lstrip() + "\n# edited\n")
    from idemlint.lint.run import incremental

    real = incremental.Run._declarations
    calls: list[bool] = []

    def fails_with_a_snapshot(self: incremental.Run, project: object) -> object:
        calls.append(self.last is not None)
        if self.last is not None:
            raise KeyError("a snapshot that passed the checks but does not fit")
        return real(self, project)  # type: ignore[arg-type]

    monkeypatch.setattr(incremental.Run, "_declarations", fails_with_a_snapshot)
    again = run(root)
    assert calls == [True, False]
    assert places(again.findings) == places(first.findings)
    assert any("snapshot could not be used" in n for n in again.notices)


# -- 6: PEP 263 encodings -------------------------------------------------------------
LATIN1_TASK = b"# -*- coding: latin-1 -*-\n" + TASK.lstrip().replace(
    '"https', '"caf\xe9", "https'
).encode("latin-1")


def test_a_latin1_file_with_a_coding_declaration_is_analysed(tmp_path: Path) -> None:
    root = project(tmp_path, {"app/tasks.py": LATIN1_TASK})
    assert b"\xe9" in (root / "app" / "tasks.py").read_bytes()
    result = run(root)
    assert places(result.findings) == [("app/tasks.py", 8, "IDM304")]
    no_precheck = run(root, Config.default(root).with_overrides(no_cache=True), prefilter=False)
    assert places(no_precheck.findings) == places(result.findings)


def test_the_flake8_plugin_reads_a_latin1_file_from_disk(tmp_path: Path) -> None:
    root = project(tmp_path, {"app/tasks.py": LATIN1_TASK})
    path = root / "app" / "tasks.py"
    lines = path.read_bytes().decode("latin-1").splitlines(keepends=True)
    old = Path.cwd()
    os.chdir(root)
    try:
        found = list(Plugin(None, "app/tasks.py", lines).run())  # type: ignore[arg-type]
    finally:
        os.chdir(old)
    assert [(line, text.split()[0]) for line, _, text, _ in found] == [(8, "IDM304")]


def test_a_bom_and_an_unknown_encoding(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "app/tasks.py": b"\xef\xbb\xbf" + TASK.lstrip().encode(),
            "app/odd.py": b"# coding: no-such-codec\nx = 1\n",
        },
    )
    result = run(root)
    assert ("app/tasks.py", 7, "IDM304") in places(result.findings)
    assert "unknown encoding" in notices(result)["app/odd.py"]


# -- 7: code too deep or too slow for the parser -----------------------------------
def deep(kind: str, n: int) -> str:
    body = {
        "elif": "    if a == 0:\n        pass\n"
        + "".join(f"    elif a == {i}:\n        pass\n" for i in range(1, n)),
        "sum": "    return " + " + ".join(["a"] * n) + "\n",
        "not": "    return " + "not " * n + "a\n",
        "attr": "    return a" + ".b" * n + "\n",
        "and": "    return " + " and ".join(["a"] * n) + "\n",
        "strings": "    return " + " ".join(['"x"'] * n) + "\n",
        "import": "    import " + ".".join(["a"] * n) + "\n",
        "parens": "    return " + "(" * n + "a" + ")" * n + "\n",
    }[kind]
    return f"from celery import shared_task\n\n@shared_task(acks_late=True)\ndef t(a):\n{body}"


DEEP = [
    ("elif", 600),
    ("sum", 490),
    ("not", 10_000),
    ("attr", 50_000),
    ("sum", 100_000),
    ("and", 5_000),
    ("strings", 5_000),
    ("import", 5_000),
    ("parens", 5_000),
]


@pytest.mark.parametrize("jobs", [1, 2], ids=["in-process", "pool"])
def test_code_too_deep_for_the_parser_is_a_notice_and_the_run_goes_on(
    tmp_path: Path, jobs: int
) -> None:
    files: dict[str, str | bytes] = {f"app/deep_{k}_{n}.py": deep(k, n) for k, n in DEEP}
    for i in range(20 if jobs == 2 else 0):  # enough cold files for the pool
        files[f"app/plain{i}.py"] = f"def f{i}(x):\n    return x + {i}\n"
    root = project(tmp_path, files)
    started = time.monotonic()
    result = run(root, jobs=jobs)
    assert time.monotonic() - started < 60  # a 100,000-term sum alone took minutes
    found = notices(result)
    for kind, n in DEEP:
        assert "deeply nested" in found[f"app/deep_{kind}_{n}.py"] or (
            kind == "parens" and "too many nested parentheses" in found[f"app/deep_{kind}_{n}.py"]
        )
    assert ("app/tasks.py", 7, "IDM304") in places(result.findings)
    assert run(root, jobs=jobs).findings == result.findings  # from the cache, the same


def test_deep_but_within_the_limit_is_analysed(tmp_path: Path) -> None:
    chain = " + ".join(["user_id"] * 200)
    root = project(tmp_path, {"app/tasks.py": TASK.replace('{"user": user_id}', chain)})
    assert places(run(root).findings) == [("app/tasks.py", 7, "IDM304")]


def test_the_depth_screen_does_not_depend_on_the_callers_hidden_depth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The interpreter counts calls made from C (pytest's hooks, a plugin host) in the
    recursion depth without a frame to show for them, so a probe limit counted from the
    visible frames can be too tight. A file within the limit must pass however deep the
    caller really is (it once became a notice in-process and was analysed in the pool)."""
    from idemlint.lint.summary import screen as screen_module

    text = deep("elif", screen_module.MAX_DEPTH - 20)
    assert screen_module.screen(text).problem == ""
    frames = screen_module._stack_depth
    main = threading.main_thread()
    # on the main thread, pretend the caller's depth is unseen (as calls from C are)
    monkeypatch.setattr(
        screen_module,
        "_stack_depth",
        lambda: 1 if threading.current_thread() is main else frames(),
    )
    assert screen_module.screen(text).problem == ""
    assert "deeply nested" in screen_module.screen(deep("elif", 600)).problem


def test_the_flake8_plugin_reports_a_deep_file_as_a_notice(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "app/deep.py": deep("sum", 490),
            "app/elif.py": deep("elif", 600),
            "app/chain.py": deep("and", 5000),
        },
    )
    old = Path.cwd()
    os.chdir(root)
    try:
        for name in ("app/deep.py", "app/elif.py", "app/chain.py"):
            lines = (root / name).read_text().splitlines(keepends=True)
            found = list(Plugin(None, name, lines).run())  # type: ignore[arg-type]
            assert [text.split()[0] for _, _, text, _ in found] == ["IDM001"]
    finally:
        os.chdir(old)
    # pyflakes, installed here, stops flake8 itself on a sum or elif chain deeper than
    # about 330 (RecursionError); a boolean chain is flat for it, but not for libcst
    done = subprocess.run(
        [sys.executable, "-m", "flake8", "--select", "IDM", "app/chain.py"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "app/chain.py:1:1: IDM001" in done.stdout, done.stdout


def pool_project(tmp_path: Path) -> Path:
    files: dict[str, str | bytes] = {
        f"app/mod{i}.py": TASK.replace("notify", f"n{i}") for i in range(20)
    }
    return project(tmp_path, files)


def test_a_worker_that_dies_costs_one_retry_and_the_file_is_analysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = pool_project(tmp_path)
    expected = places(
        run(root, Config.default(root).with_overrides(no_cache=True), jobs=1).findings
    )
    real = summarising.summarize_bytes

    def crashes_on_mod3(content: bytes, rel: str, module: str, is_package: bool) -> object:
        if rel == "app/mod3.py":  # the workers are forked from here: they crash on it
            faulthandler.disable()  # a deliberate crash: no dump in the test output
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(content, rel, module, is_package)

    monkeypatch.setattr(summarising, "summarize_bytes", crashes_on_mod3)
    result = run(root, Config.default(root).with_overrides(no_cache=True), jobs=2)
    # retried alone in a fresh interpreter, which does not crash on it
    assert places(result.findings) == expected


def test_a_file_that_crashes_its_worker_twice_is_a_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = pool_project(tmp_path)
    real = summarising.summarize_bytes

    def crashes_on_mod3(content: bytes, rel: str, module: str, is_package: bool) -> object:
        if rel == "app/mod3.py":
            faulthandler.disable()  # a deliberate crash: no dump in the test output
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(content, rel, module, is_package)

    monkeypatch.setattr(summarising, "summarize_bytes", crashes_on_mod3)
    monkeypatch.setattr(
        isolation,
        "run_alone",
        lambda job, timeout=None: (None, "the parser crashed (killed by SIGSEGV)"),
    )
    result = run(root, jobs=2)
    message = notices(result)["app/mod3.py"]
    assert "the parser crashed (killed by SIGSEGV)" in message and "retried alone" in message
    assert len([f for f in result.findings if f.rule == "IDM304"]) == 20  # the others
    monkeypatch.undo()
    again = run(root, jobs=2)  # not cached: tried again, and analysed
    assert notices(again) == {}


def test_a_file_that_outlives_the_time_limit_is_a_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = pool_project(tmp_path)
    real = summarising.summarize_bytes

    def hangs_on_mod5(content: bytes, rel: str, module: str, is_package: bool) -> object:
        if rel == "app/mod5.py":
            time.sleep(120)
        return real(content, rel, module, is_package)

    monkeypatch.setattr(summarising, "summarize_bytes", hangs_on_mod5)
    monkeypatch.setenv("IDEMLINT_FILE_TIMEOUT", "3")
    started = time.monotonic()
    result = run(root, jobs=2)
    assert time.monotonic() - started < 60
    assert notices(result) == {
        "app/mod5.py": "This file does not parse, so none of its tasks were checked: "
        "parsing took longer than 3 s"
    }


def test_run_alone_reports_a_crash_and_a_time_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = isolation.Alone("app/x.py", "app.x", False, b"x = 1\n")
    text, why = isolation.run_alone(job)
    assert text is not None and why == ""
    crasher = write(tmp_path, {"crash.sh": "#!/bin/sh\nkill -SEGV $$\n"}) / "crash.sh"
    crasher.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crasher))
    assert isolation.run_alone(job) == (None, "the parser crashed (killed by SIGSEGV)")
    sleeper = write(tmp_path, {"sleep.sh": "#!/bin/sh\nexec sleep 60\n"}) / "sleep.sh"
    sleeper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(sleeper))
    assert isolation.run_alone(job, timeout=1) == (None, "parsing took longer than 1 s")


def test_a_big_file_in_the_in_process_path_is_parsed_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    alone: list[str] = []
    real = isolation.run_alone

    def spy(job: isolation.Alone, timeout: float | None = None) -> tuple[str | None, str]:
        alone.append(job.rel)
        return real(job, timeout)

    monkeypatch.setattr(summarising, "LARGE", 10)
    monkeypatch.setattr(isolation, "run_alone", spy)
    result = run(root, jobs=1)
    assert alone == ["app/tasks.py"]
    assert places(result.findings) == [("app/tasks.py", 7, "IDM304")]


# -- 8: tracebacks ------------------------------------------------------------------
def test_a_file_name_that_is_not_utf8_is_a_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path)
    (root / "app" / os.fsdecode(b"caf\xe9.py")).write_text(TASK)
    result = run(root)
    assert notices(result) == {
        "app/caf\\xe9.py": "This file does not parse, so none of its tasks were checked: "
        "the file name is not valid UTF-8"
    }
    for fmt in ("text", "json", "sarif"):
        code, out, err = cli("check", "--format", fmt, ".", cwd=root, capsys=capsys)
        assert code == 1 and "Traceback" not in err and "xe9.py" in out


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\xff\xfe[\x00t\x00o\x00o\x00l\x00]\x00", id="utf-16"),
        pytest.param(bytes(range(256)), id="binary"),
        pytest.param(b"[tool.idemlint]\nx = " + b"[" * 5000 + b"]" * 5000 + b"\n", id="deep"),
    ],
)
def test_an_unreadable_pyproject_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    root = project(tmp_path, {"pyproject.toml": content})
    code, _, err = cli("check", ".", cwd=root, capsys=capsys)
    assert code == 2, err
    assert f"{root / 'pyproject.toml'}: invalid TOML" in err and "Traceback" not in err


def test_a_deeply_nested_baseline_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path, {"deep.json": "[" * 100_000 + "]" * 100_000})
    code, _, err = cli("check", "--baseline", "deep.json", ".", cwd=root, capsys=capsys)
    assert code == 2 and "deep.json: unreadable baseline" in err


def test_a_project_root_walk_through_an_unsearchable_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from idemlint.lint.files import project_root

    root = project(tmp_path)
    real = os.stat

    def unsearchable(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith(str(root / "app")):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", unsearchable)
    assert project_root.find_project_root([root / "app" / "tasks.py"]) == root
    assert project_root.find_config_file([root / "app" / "tasks.py"]) is None


# -- 13: symlinks out of the project ------------------------------------------------
def test_a_py_symlink_out_of_the_project_is_never_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = write(tmp_path, {"private/passwd": "root:x:0:0:secret-first-line\n"})
    root = project(tmp_path, {"app/inside.py": "def helper():\n    return 1\n"})
    (root / "app" / "pw.py").symlink_to(secret / "private" / "passwd")
    (root / "app" / "alias.py").symlink_to(root / "app" / "inside.py")  # inside: read
    result = run(root)
    files = {str(f.relative_to(root)) for f in result.files}
    assert "app/pw.py" not in files and "app/alias.py" in files
    assert notices(result) == {}  # skipped in discovery, as the docs say
    named = check([root / "app" / "pw.py"], load_config([root]), cwd=root)
    assert notices(named) == {
        "app/pw.py": "This file does not parse, so none of its tasks were checked: "
        "not read: a symlink to a file outside the project"
    }
    (root / "app" / "vendor").symlink_to(secret / "private", target_is_directory=True)
    (secret / "private" / "keys.py").write_text("KEY = 'secret-first-line'\n")
    through = check([root / "app" / "vendor" / "keys.py"], load_config([root]), cwd=root)
    assert "app/vendor/keys.py" in notices(through) and not through.files
    for args in (
        ("check", "--show-source", "."),
        ("check", "--show-source", "app/pw.py"),
        ("check", "--show-source", "app/vendor/keys.py"),
    ):
        _, out, _ = cli(*args, cwd=root, capsys=capsys)
        assert "secret-first-line" not in out


def test_cachedir_names_its_entries() -> None:
    key = "ab" + "0" * 62
    assert cachedir.is_entry("summaries", ("ab", f"{key}.json"))
    assert not cachedir.is_entry("summaries", ("cd", f"{key}.json"))  # not where idemlint puts it
    assert not cachedir.is_entry("summaries", ("ab", "notes.json"))
    assert cachedir.is_entry("projects", ("0" * 32 + ".json",))
    assert cachedir.is_entry("scans", ("ab", "tmpa1b2c3d4.tmp"))
    assert not cachedir.is_entry("projects", ("sub", "0" * 32 + ".json"))

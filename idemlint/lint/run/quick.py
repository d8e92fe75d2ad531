"""The quick record: an editor's call on an unchanged project, answered from ``os.stat``.

A warm run with nothing changed still pays per file of the project: ``git ls-files`` and
a module name per file, the snapshot (:mod:`~idemlint.lint.run.snapshot`) read back whole
and checked, a stamp per file, the project index built. On a 4,300-file tree that is most
of a second, where an editor waits for one file's findings. So a run that saw the whole
project as discovery finds it also leaves, next to the snapshot, a small record of what
it saw and what it found:

* every file's stamp (size, modification time);
* the modification time (and mode) of every folder a Python file could be added to,
  removed from or renamed in (the walk skips what discovery always skips), so that a new,
  deleted or renamed file shows without ``git ls-files``; the stamps of what decides which
  files git lists (its index, exclude files, configuration, every ``.gitignore``) or,
  outside git, that no ``.git`` appeared above the root;
* each file's findings before selection and suppressions (the report applies those, as
  after any run);

under a key of idemlint's version, its analysis code and rule catalog, the Python version
and the configuration that changes results. :func:`load` checks the record with stats
only and answers a file's findings without reading the snapshot, building the index or
importing libcst. Anything that does not match or does not load gives None, and the
caller runs as before, so the findings are always what that run would report.

The stamps are taken before discovery and before the files are read, so a change made
during the run shows next time; a time is trusted only when it is more than two seconds
older than the moment the record is written (as the snapshot's stamps). Like every cache
entry, the record is written to a temporary file renamed into place, and only inside the
cache folder.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from idemlint import __version__
from idemlint.findings import Finding, display_path
from idemlint.lint.run.cachedir import inside, is_ours, write_entry
from idemlint.lint.run.fingerprint import RACY_NS, findings_fingerprint, sha256

FORMAT = 1
NEVER = -1
"""A recorded time that no stat matches (the time was too recent to trust)."""
ABSENT = (-1, 0)
"""The stamp of a path that does not exist."""
GIT_ENVIRONMENT = ("HOME", "XDG_CONFIG_HOME")
"""Besides ``GIT_*``, the variables that change which files git lists (where its global
configuration and excludes are)."""


class Settings(Protocol):
    """What the record reads of the configuration."""

    @property
    def knowledge(self) -> Mapping[str, object]: ...
    @property
    def task_frameworks(self) -> frozenset[str] | None: ...
    @property
    def exclude(self) -> tuple[str, ...]: ...
    @property
    def extend_exclude(self) -> tuple[str, ...]: ...
    @property
    def cache_dir(self) -> Path | None: ...
    @property
    def cache_in_project(self) -> bool: ...


def record_key(config: Settings, root: Path) -> str:
    """The record's name: everything that changes a file's findings besides the files."""
    settings = {
        "root": str(root),
        "knowledge": config.knowledge,
        "frameworks": sorted(config.task_frameworks or ()),
        "all-frameworks": config.task_frameworks is None,
        "exclude": list(config.exclude),
        "extend-exclude": list(config.extend_exclude),
    }
    environment = {
        k: v for k, v in os.environ.items() if k.startswith("GIT_") or k in GIT_ENVIRONMENT
    }
    h = sha256(f"{__version__}\0{FORMAT}\0{sys.version}\0{findings_fingerprint()}\0".encode())
    h.update(json.dumps([settings, environment], sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def cache_folder(config: Settings, root: Path) -> Path | None:
    """The cache folder to read the record from, when a run would use it (see
    :func:`~idemlint.lint.run.cachedir.open_cache_folder`); nothing is created here."""
    if config.cache_dir is None:
        return None
    folder = root / config.cache_dir
    if config.cache_in_project and not inside(os.path.realpath(folder), os.path.realpath(root)):
        return None
    return folder if is_ours(folder) else None


def _file(folder: Path, key: str) -> Path:
    return folder / "quick" / f"{key}.json"


_HEAD = '{"crc32":"'
_MIDDLE = '","record":'


def _seal(text: str) -> str:
    """``text`` wrapped with its CRC-32, still JSON: a truncated, half-written or damaged
    record does not load (the snapshot's SHA-256 costs more than this record's reading,
    with ``hashlib``'s import; what a forged record could say is checked entry by entry)."""
    return f"{_HEAD}{zlib.crc32(text.encode()):08x}{_MIDDLE}{text}}}"


def _unseal(sealed: str) -> str:
    start = len(_HEAD) + 8 + len(_MIDDLE)
    if not (sealed.startswith(_HEAD) and sealed[start - len(_MIDDLE) : start] == _MIDDLE):
        raise ValueError("no checksum")
    text = sealed[start:-1]
    if (
        not sealed.endswith("}")
        or f"{zlib.crc32(text.encode()):08x}" != sealed[len(_HEAD) : start - len(_MIDDLE)]
    ):
        raise ValueError("checksum mismatch")
    return text


# -- what a run saw, before discovery ------------------------------------------
@dataclass
class Observed:
    """The folders and the files that decide discovery, stamped before it ran."""

    key: str
    """The record's name (:func:`record_key`), taken when the run started."""
    folders: list[tuple[str, int, int]] = field(default_factory=list)
    """Relative name (``""``: the root), modification time, mode."""
    paths: list[tuple[str, int, int]] = field(default_factory=list)
    """Absolute name, size and modification time (:data:`ABSENT`: not there)."""
    complete: bool = True
    """False when something could not be looked at: no record is written."""


def _stamp(name: str) -> tuple[int, int]:
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return ABSENT
    return st.st_size, st.st_mtime_ns


def observe(root: Path, key: str, cache: Path | None = None) -> Observed:
    """Stamp the project's folders and what decides git's listing (call it before
    discovery: a change after it then shows as a newer time). Under ``cache`` (the cache
    folder, when it lies in the project under a name discovery does not skip) only the
    folder itself is stamped: the run writes in its sub-folders, and what it holds is
    git-ignored by its own ``.gitignore``."""
    from idemlint.lint.files.discovery import ALWAYS_SKIPPED

    seen = Observed(key)
    top = str(root)
    own = os.path.abspath(cache) if cache is not None else None

    def failed(_: OSError) -> None:
        seen.complete = False

    try:
        for dirpath, dirnames, filenames in os.walk(top, onerror=failed):
            st = os.stat(dirpath)
            rel = dirpath[len(top) + 1 :].replace(os.sep, "/") if dirpath != top else ""
            seen.folders.append((rel, st.st_mtime_ns, st.st_mode))
            if (rel and "pyvenv.cfg" in filenames) or dirpath == own:
                dirnames[:] = []  # a virtualenv (discovery reads nothing under it), the cache
            else:
                dirnames[:] = [
                    d
                    for d in dirnames
                    if d not in ALWAYS_SKIPPED
                    and not d.startswith(".")
                    and not d.endswith(".egg-info")
                ]
            if ".gitignore" in filenames:
                name = os.path.join(dirpath, ".gitignore")
                seen.paths.append((name, *_stamp(name)))
        _observe_git(root, seen)
    except (OSError, ValueError, UnicodeError):
        seen.complete = False
    return seen


def _observe_git(root: Path, seen: Observed) -> None:
    """What decides which files ``git ls-files`` lists, besides the folders: the index,
    the exclude files and the configuration (where ``core.excludesFile`` is set); outside
    a work tree, that no ``.git`` appears in a folder above the root."""
    folders = (root, *root.parents)
    top = next((f for f in folders if os.path.lexists(f / ".git")), None)
    for folder in folders:
        if folder == top:
            break
        seen.paths.append((str(folder / ".git"), *ABSENT))
    if top is None:
        return
    for folder in folders[1 : folders.index(top) + 1]:  # (the root's is the walk's)
        name = str(folder / ".gitignore")
        seen.paths.append((name, *_stamp(name)))
    git_dir = common = top / ".git"
    if not os.path.isdir(git_dir):  # a linked work tree or a submodule: "gitdir: PATH"
        text = git_dir.read_text("utf-8").strip()
        if not text.startswith("gitdir:"):
            raise ValueError("not a git file")
        git_dir = common = top / text.removeprefix("gitdir:").strip()
        if os.path.isfile(git_dir / "commondir"):
            common = git_dir / (git_dir / "commondir").read_text("utf-8").strip()
    home = os.environ.get("HOME", "")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    names = [
        str(git_dir / "index"),
        str(git_dir / "config.worktree"),
        str(common / "config"),
        str(common / "info" / "exclude"),
        os.path.join(xdg, "git", "config"),
        os.path.join(xdg, "git", "ignore"),
        "/etc/gitconfig",
    ]
    if home:
        names.append(os.path.join(home, ".gitconfig"))
    names += _git_config_files(root)
    for name in dict.fromkeys(names):
        seen.paths.append((name, *_stamp(name)))


def _git_config_files(root: Path) -> list[str]:
    """The files git's configuration comes from (included ones too) and the excludes file
    it names, as git reports them."""
    import subprocess

    done = subprocess.run(
        ["git", "config", "--list", "--show-origin", "-z"],
        cwd=root,
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode not in (0, 1):  # (1: no configuration at all)
        raise ValueError("git config failed")
    out: list[str] = []
    fields = done.stdout.decode("utf-8", "surrogateescape").split("\0")
    for origin, entry in zip(fields[::2], fields[1::2], strict=False):
        if origin.startswith("file:"):
            out.append(os.path.join(str(root), origin.removeprefix("file:")))
        elif origin:
            raise ValueError(f"configuration from {origin}")  # (a blob, the command line)
        key, _, value = entry.partition("\n")
        if key.lower() == "core.excludesfile" and value:
            name = os.path.expanduser(value)
            if not os.path.isabs(name):
                raise ValueError("a relative core.excludesFile")
            out.append(name)
    return out


# -- the record ----------------------------------------------------------------
def save(
    folder: Path,
    root: Path,
    seen: Observed,
    files: Iterable[tuple[str, int, int]],
    findings: Mapping[str, Sequence[Finding]],
) -> None:
    """Write the record of a run: ``files`` are (relative name, size, modification time)
    as the run stamped them, ``findings`` every file's findings, relative to the root."""
    if not seen.complete:
        return
    written = time.time_ns()

    def trusted(mtime: int) -> int:
        return mtime if written - mtime > RACY_NS else NEVER

    flat_files: list[object] = []
    for rel, size, mtime in files:
        flat_files += [rel, size, trusted(mtime)]
    flat_folders: list[object] = []
    for rel, mtime, mode in seen.folders:
        flat_folders += [rel, trusted(mtime), mode]
    flat_paths: list[object] = []
    for name, size, mtime in seen.paths:
        flat_paths += [name, size, mtime if (size, mtime) == ABSENT else trusted(mtime)]
    text = json.dumps(
        {
            "format": FORMAT,
            "root": str(root),
            "files": flat_files,
            "folders": flat_folders,
            "paths": flat_paths,
            "findings": {p: [_row(f) for f in fs] for p, fs in findings.items() if fs},
        },
        separators=(",", ":"),
    )
    write_entry(_file(folder, seen.key), folder, _seal(text))


def _row(f: Finding) -> list[Any]:
    return [
        f.line,
        f.column,
        f.rule,
        f.message,
        f.end_line,
        f.end_column,
        f.task,
        list(f.via),
        f.source,
        list(f.delivery),
        f.severity,
        list(f.tasks),
        list(f.also),
    ]


@dataclass
class Record:
    """A record that matched the disk when loaded: the project is as its run saw it."""

    root: Path
    files: frozenset[str]
    rows: Mapping[str, Any]

    def findings(self, path: Path, cwd: Path) -> list[Finding] | None:
        """The findings of ``path`` (absolute) the run reported, shown relative to
        ``cwd``; None when it is not a file of the project, or its entry is damaged."""
        name, top = str(path), str(self.root)
        if not name.startswith(top + os.sep):
            return None
        rel = name[len(top) + 1 :].replace(os.sep, "/")
        if rel not in self.files:
            return None
        shown = display_path(path, cwd)
        try:
            return [_finding(row, shown) for row in self.rows.get(rel, ())]
        except (TypeError, ValueError):
            return None


def _strings(values: object) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError("not a list of strings")
    return tuple(values)


def _finding(row: Any, path: str) -> Finding:
    line, column, rule, message, end_line, end_column, task, via, source = row[:9]
    delivery, severity, tasks, also = row[9:]
    numbers = (line, column, end_line, end_column, *also)
    if not all(type(n) is int and n >= 0 for n in numbers) or line < 1:
        raise ValueError("a position")
    if not (
        isinstance(rule, str)
        and len(rule) == 6
        and rule.startswith("IDM")
        and rule[3] in "0123456"
        and rule[4:].isdigit()
    ):
        raise ValueError("a rule")
    if not all(isinstance(s, str) for s in (message, task, source, severity)):
        raise TypeError("a text")
    kind, where, words = _strings(delivery)
    return Finding(
        path=path,
        line=line,
        column=column,
        rule=rule,
        message=message,
        end_line=end_line,
        end_column=end_column,
        task=task,
        via=_strings(via),
        source=source,
        delivery=(kind, where, words),
        severity=severity,
        tasks=_strings(tasks),
        also=tuple(also),
    )


def load(config: Settings, root: Path) -> Record | None:
    """The record of the project at ``root`` (absolute), when every stamp in it matches
    the disk now; else None (the caller runs as before)."""
    folder = cache_folder(config, root)
    if folder is None:
        return None
    try:
        data = json.loads(_unseal(_file(folder, record_key(config, root)).read_text("utf-8")))
        if data["format"] != FORMAT or data["root"] != str(root):
            return None
        stat = os.stat
        for values in (data["paths"], data["folders"], data["files"]):
            if not isinstance(values, list) or len(values) % 3:
                return None
        paths = data["paths"]
        for i in range(0, len(paths), 3):
            if _stamp(paths[i]) != (paths[i + 1], paths[i + 2]):
                return None
        top = str(root) + "/"
        folders = data["folders"]
        for i in range(0, len(folders), 3):
            st = stat(top + folders[i] if folders[i] else str(root))
            if st.st_mtime_ns != folders[i + 1] or st.st_mode != folders[i + 2]:
                return None
        files = data["files"]
        for i in range(0, len(files), 3):
            st = stat(top + files[i])
            if st.st_mtime_ns != files[i + 2] or st.st_size != files[i + 1]:
                return None
        rows = data["findings"]
        if not isinstance(rows, dict):
            return None
        return Record(root, frozenset(files[::3]), rows)
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None  # (no record, another one, a damaged one, a file gone: run as before)

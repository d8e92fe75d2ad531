"""Where the cache may live, and what in it idemlint may write and delete.

The cache folder is a path a project can influence (``.idemlint_cache`` may be a
committed symlink, ``cache-dir`` is read from ``pyproject.toml``), and idemlint writes
there and deletes old entries from it. Unchecked, a cloned repository could make
idemlint write into, hide from git (``.gitignore`` with ``*``) and prune any folder of
the machine. So:

* A cache folder that came from the project (the default, or ``[tool.idemlint]
  cache-dir``) must resolve inside the project root, symlinks included; one that
  leads out is refused and the run goes on without the cache, with a notice. A folder
  given on the command line (``--cache-dir``) or in ``IDEMLINT_CACHE_DIR`` may be
  anywhere: the user chose it.
* idemlint only adopts a folder it made: it writes a ``CACHEDIR.TAG`` (the
  cross-tool convention that backup tools honour) naming idemlint when it creates the
  folder, and refuses a folder that holds anything else without that tag. An older
  idemlint's cache (only ``summaries/``, ``scans/``, ``projects/``, ``.gitignore``,
  ``last-prune``) is adopted.
* Inside it, the areas and their sub-folders must be real folders, not symlinks, and
  pruning deletes only files named the way idemlint names them
  (:func:`is_entry`), so a file planted there survives.
* ``.gitignore`` and the tag are created with ``O_EXCL | O_NOFOLLOW``: never written
  through a symlink.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

TAG = "CACHEDIR.TAG"
TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by idemlint.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
AREAS = ("summaries", "scans", "outlines", "projects", "quick")
"""Sub-folders holding entries: summaries, pre-check scans and outlines
(``area/ab/<key>.json``, the key a sha256), project snapshots (``projects/<key>.json``,
32 hex digits) and quick records (``quick/<key>.json``, the same)."""
OLD_LAYOUT = frozenset({*AREAS, ".gitignore", "last-prune", TAG})
"""Everything an idemlint cache holds at its top: a folder of only these is one."""

_KEYED = re.compile(r"[0-9a-f]{64}\.json")
_PROJECT = re.compile(r"[0-9a-f]{32}\.json")
_TEMPORARY = re.compile(r"tmp[a-z0-9_]{6,12}\.tmp")
"""``tempfile.mkstemp(suffix=".tmp")`` names: an interrupted write leaves one behind."""


@dataclass(frozen=True)
class Opened:
    """The cache folder to use (None: run without the cache) and, if refused, why."""

    folder: Path | None
    notice: str = ""


def inside(real: str, real_root: str) -> bool:
    """Whether resolved path ``real`` is ``real_root`` or lies under it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def open_cache_folder(folder: Path, root: Path, *, in_project: bool) -> Opened:
    """Check (and create, tagged) the cache folder; a refusal names the folder and why."""
    try:
        if in_project and not inside(os.path.realpath(folder), os.path.realpath(root)):
            return Opened(
                None,
                f"the cache folder {folder} leads outside the project (to "
                f"{os.path.realpath(folder)}); running without the cache",
            )
        if not os.path.lexists(folder):
            folder.mkdir(parents=True, exist_ok=True)
            _create(folder / TAG, TAG_TEXT)
            _create(folder / ".gitignore", "*\n")
        elif not os.path.isdir(folder):
            return Opened(None, f"the cache folder {folder} is not a folder; running without it")
        elif not is_ours(folder):
            names = set(os.listdir(folder))
            if not names <= OLD_LAYOUT:
                return Opened(
                    None,
                    f"the cache folder {folder} holds files idemlint did not write (it has "
                    f"no {TAG} of idemlint's); running without the cache",
                )
            _create(folder / TAG, TAG_TEXT)  # empty, or an older idemlint's cache: adopted
            _create(folder / ".gitignore", "*\n")
        real = os.path.realpath(folder)
        for area in AREAS:
            path = folder / area
            if os.path.lexists(path) and (
                os.path.islink(path) or not inside(os.path.realpath(path), real)
            ):
                return Opened(
                    None,
                    f"the cache folder's {area}/ is a symlink or not a folder; "
                    "running without the cache",
                )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Opened(None, f"cannot use the cache folder {folder}: {reason}")
    return Opened(folder)


def is_ours(folder: Path) -> bool:
    """Whether ``folder`` holds idemlint's cache tag (a regular file, not a symlink)."""
    tag = folder / TAG
    try:
        if not stat.S_ISREG(os.lstat(tag).st_mode):
            return False
        with open(tag, encoding="utf-8", errors="replace") as handle:
            return "created by idemlint" in handle.read(4096)
    except OSError:
        return False


def _create(path: Path, text: str) -> None:
    """Write a new file, never through a symlink and never over an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def safe_folder(path: Path, top: Path) -> bool:
    """Whether ``path`` (a folder entries are written to, under cache folder ``top``) is
    a real folder or absent, and no symlink sits between ``top`` and it."""
    current = path
    while current != top and current != current.parent:
        if os.path.islink(current):
            return False
        current = current.parent
    return True


_READY: set[tuple[Path, Path]] = set()
"""(folder, cache folder) pairs this process has checked for symlinks and created: a cold
run writes thousands of entries into a few hundred folders, and the check and the
``mkdir`` were three system calls an entry."""


def write_entry(target: Path, top: Path, text: str) -> None:
    """Write one cache entry under cache folder ``top`` whole or not at all: a temporary
    file renamed into place, never through a symlink. A read-only or full disk only
    costs speed, so an ``OSError`` is swallowed."""
    try:
        opened = _temporary_in(target.parent, top)
        if opened is None:
            return  # a symlink in the cache: never written through
        fd, tmp = opened
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data) :]
            os.close(fd)
            os.replace(tmp, target)
        except OSError:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # (a full disk, say: no half entry left behind)
    except OSError:
        return


def _temporary_in(folder: Path, top: Path) -> tuple[int, str] | None:
    """A new temporary file in ``folder`` (made if missing), or ``None`` when a symlink
    sits between ``top`` and it. A folder is checked once per process, and again when it
    has gone missing since."""
    if (folder, top) in _READY:
        try:
            return tempfile.mkstemp(dir=folder, suffix=".tmp")
        except FileNotFoundError:
            _READY.discard((folder, top))
    if not safe_folder(folder, top):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    _READY.add((folder, top))
    return tempfile.mkstemp(dir=folder, suffix=".tmp")


def is_entry(area: str, relative: tuple[str, ...]) -> bool:
    """Whether a file of cache area ``area`` at ``relative`` (its path under the area) is
    named the way idemlint names what it writes there: only those are ever pruned."""
    name = relative[-1]
    if _TEMPORARY.fullmatch(name):
        return len(relative) <= 2
    if area in ("projects", "quick"):
        return len(relative) == 1 and _PROJECT.fullmatch(name) is not None
    return len(relative) == 2 and _KEYED.fullmatch(name) is not None and relative[0] == name[:2]

"""Whether a project snapshot read back from disk may be trusted.

The snapshot (:mod:`idemlint.lint.run.snapshot`) decides what a run recomputes, so a
damaged one that still parses as JSON silently changes results: fuzzing 270 mutated
snapshots lost or moved findings in 18 and reported a rule that does not exist
(``IDM404``); others raised ``AssertionError`` or ``IndexError``. Two checks stand
between the file and the run, and a snapshot failing either is discarded (the run
computes everything, as on a first run):

* a checksum over the whole text, kept around it in the file (:func:`seal`,
  :func:`unseal`; the file stays JSON): any change of a byte, a truncation or a
  half-written file fails it;
* the decoded snapshot's shape (:func:`check`): every field of the type the run
  expects, positions positive, file references in range, every hit's rule in the
  catalog. This is what holds when the checksum does not help: a snapshot written by
  a buggy or foreign tool with a checksum of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idemlint.lint.run.snapshot import Snapshot

_HEAD = '{"sha256":"'
_MIDDLE = '","snapshot":'
_DIGEST = re.compile(r"[0-9a-f]{64}")


class DamagedSnapshot(ValueError):
    """The snapshot is not what idemlint wrote (the message says what is wrong)."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def seal(text: str) -> str:
    """JSON ``text`` wrapped with its checksum, still JSON:
    ``{"sha256":"<hex>","snapshot":<text>}``."""
    return f"{_HEAD}{_sha256(text)}{_MIDDLE}{text}}}"


def unseal(sealed: str) -> str:
    """The text :func:`seal` wrapped, cut out by position (not re-encoded, so checking
    costs one hash); :class:`DamagedSnapshot` when it is not there or does not match."""
    start = len(_HEAD) + 64 + len(_MIDDLE)
    if not (
        sealed.startswith(_HEAD)
        and sealed[len(_HEAD) + 64 : start] == _MIDDLE
        and sealed.endswith("}")
    ):
        raise DamagedSnapshot("no checksum")
    text = sealed[start:-1]
    if _sha256(text) != sealed[len(_HEAD) : len(_HEAD) + 64]:
        raise DamagedSnapshot("checksum mismatch")
    return text


@lru_cache(maxsize=1)
def known_rules() -> frozenset[str]:
    from idemlint.catalog import load_catalog

    return frozenset(load_catalog())


def index(value: object, size: int) -> int:
    """``value`` as an index into a list of ``size`` (no negatives, no booleans)."""
    if type(value) is not int or not 0 <= value < size:
        raise DamagedSnapshot(f"index {value!r} out of range")
    return value


def _require(ok: bool, where: str) -> None:
    if not ok:
        raise DamagedSnapshot(f"{where}: not what idemlint writes")


def _strings(values: Iterable[object]) -> bool:
    return all(isinstance(v, str) for v in values)


def _position(values: Iterable[object]) -> bool:
    return all(type(v) is int and v >= 0 for v in values)


def check(snap: Snapshot, rules: Collection[str] | None = None) -> None:
    """Raise :class:`DamagedSnapshot` unless every part of ``snap`` has the shape the
    run relies on. (Runs on every warm run: one boolean expression per file, the
    message built only on failure.)"""
    known = known_rules() if rules is None else rules
    files = snap.files
    paths = files.keys()
    for path, st in files.items():
        ix, err = st.index, st.error
        _require(
            isinstance(path, str)
            and st.path == path
            and type(st.mtime_ns) is int
            and st.mtime_ns >= 0
            and type(st.size) is int
            and st.size >= -1
            and (st.digest == "" or _DIGEST.fullmatch(st.digest) is not None)
            and isinstance(st.scan, str)
            and ix.path == path
            and isinstance(ix.module, str)
            and _strings(ix.functions)
            and _strings(ix.classes)
            and _strings(ix.imports)
            and _strings(ix.imports.values())
            and isinstance(ix.raw_assigns, dict)
            and _strings(ix.raw_assigns)
            and isinstance(ix.raw_bases, dict)
            and _strings(ix.raw_bases)
            and all(isinstance(b, list) for b in ix.raw_bases.values())
            and ix.error == (err is not None)
            and (
                err is None
                or (
                    isinstance(err.message, str)
                    and _position((err.line, err.column))
                    and err.line >= 1
                )
            )
            and st.declaration_deps <= paths
            and all(_position(r[:3]) and isinstance(r[3], str) for r in st.suppressions or ()),
            path,
        )
    for name, (called, deps) in snap.signals.items():
        _require(isinstance(name, str) and isinstance(called, str) and deps <= paths, name)
        if called:  # decoded by the run as the retry mechanism it records
            _mechanism(called, name)
    for name, task in snap.tasks.items():
        qualified, framework, span, mechanisms = task.record
        _require(
            _strings((name, qualified, framework, mechanisms))
            and len(span) == 4
            and _position(span)
            and task.deps <= paths,
            f"task {name}",
        )
        for hit in task.hits:
            _check_hit(hit, known, paths, name)


def _check_hit(hit: Any, known: Collection[str], paths: Collection[str], task: str) -> None:
    s = hit.span
    _require(
        hit.rule in known
        and _position((s.line, s.column, s.end_line, s.end_column))
        and s.line >= 1
        and s.end_line >= s.line
        and hit.path in paths
        and _strings((hit.detail, hit.stmt, *hit.via, *hit.delivery))
        and len(hit.delivery) == 3
        and isinstance(hit.severity, str),
        f"task {task}: hit {hit.rule!r}",
    )


def _mechanism(text: str, name: str) -> None:
    from idemlint.lint.index.delivery import Mechanism

    try:
        Mechanism.from_json(json.loads(text))
    except Exception as exc:
        raise DamagedSnapshot(f"signal {name}: {type(exc).__name__}") from None

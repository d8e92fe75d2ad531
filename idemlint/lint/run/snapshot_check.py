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


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise DamagedSnapshot(what)


def _strings(values: Iterable[object]) -> bool:
    return all(isinstance(v, str) for v in values)


def _position(values: Iterable[object]) -> bool:
    return all(type(v) is int and v >= 0 for v in values)


def check(snap: Snapshot, rules: Collection[str] | None = None) -> None:
    """Raise :class:`DamagedSnapshot` unless every part of ``snap`` has the shape the
    run relies on."""
    known = known_rules() if rules is None else rules
    files = snap.files
    for path, st in files.items():
        _require(isinstance(path, str) and st.path == path, "file path")
        _require(type(st.mtime_ns) is int and st.mtime_ns >= 0, f"{path}: mtime")
        _require(type(st.size) is int and st.size >= -1, f"{path}: size")
        _require(st.digest == "" or bool(_DIGEST.fullmatch(st.digest)), f"{path}: digest")
        _require(isinstance(st.scan, str), f"{path}: scan")
        ix = st.index
        _require(ix.path == path and isinstance(ix.module, str), f"{path}: index")
        _require(_strings(ix.functions) and _strings(ix.classes), f"{path}: names")
        _require(_strings(ix.imports) and _strings(ix.imports.values()), f"{path}: imports")
        _require(isinstance(ix.raw_assigns, dict) and _strings(ix.raw_assigns), f"{path}: assigns")
        _require(isinstance(ix.raw_bases, dict) and _strings(ix.raw_bases), f"{path}: bases")
        _require(all(isinstance(b, list) for b in ix.raw_bases.values()), f"{path}: bases")
        _require(ix.error == (st.error is not None), f"{path}: error flag")
        if st.error is not None:
            err = st.error
            _require(isinstance(err.message, str), f"{path}: error")
            _require(_position((err.line, err.column)) and err.line >= 1, f"{path}: error")
        _require(st.declaration_deps <= files.keys(), f"{path}: declaration files")
        for row in st.suppressions or ():
            _require(_position(row[:3]) and isinstance(row[3], str), f"{path}: suppression")
    for name, (called, deps) in snap.signals.items():
        _require(isinstance(name, str) and isinstance(called, str), "signal")
        _require(deps <= files.keys(), f"signal {name}: files")
        if called:  # decoded by the run as the retry mechanism it records
            _mechanism(called, name)
    for name, task in snap.tasks.items():
        qualified, framework, span, mechanisms = task.record
        _require(_strings((name, qualified, framework, mechanisms)), f"task {name}")
        _require(len(span) == 4 and _position(span), f"task {name}: span")
        _require(task.deps <= files.keys(), f"task {name}: files")
        for hit in task.hits:
            _check_hit(hit, known, files.keys(), name)


def _check_hit(hit: Any, known: Collection[str], paths: Collection[str], task: str) -> None:
    _require(hit.rule in known, f"task {task}: unknown rule {hit.rule!r}")
    s = hit.span
    _require(_position((s.line, s.column, s.end_line, s.end_column)), f"task {task}: span")
    _require(s.line >= 1 and s.end_line >= s.line, f"task {task}: span")
    _require(hit.path in paths, f"task {task}: file {hit.path!r}")
    _require(_strings((hit.detail, hit.stmt, *hit.via, *hit.delivery)), f"task {task}: hit")
    _require(len(hit.delivery) == 3 and isinstance(hit.severity, str), f"task {task}: hit")


def _mechanism(text: str, name: str) -> None:
    from idemlint.lint.index.delivery import Mechanism

    try:
        Mechanism.from_json(json.loads(text))
    except Exception as exc:
        raise DamagedSnapshot(f"signal {name}: {type(exc).__name__}") from None

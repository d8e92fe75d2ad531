"""What made a cached result: hashes of idemlint's code, and when a time stamp may be trusted.

Kept apart from the snapshot (:mod:`~idemlint.lint.run.snapshot`) so that the quick record
(:mod:`~idemlint.lint.run.quick`) can name its key without importing the analysis.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _sha256() -> Callable[[bytes], Hash]:
    """SHA-256 from the interpreter's built-in module where there is one: ``hashlib``
    loads OpenSSL first, which costs an editor's call (the quick record's path) about as
    much as reading the record. The same digests either way."""
    for name in ("_sha2", "_sha256"):  # (Python 3.12 and later, then before)
        try:
            made: Callable[[bytes], Hash] = import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return made
    from hashlib import sha256

    return sha256


sha256 = _sha256()

RACY_NS = 2_000_000_000
"""A file modified this close to when it was read may change again within the same
timestamp; its stamp is not trusted next time (its bytes are hashed again)."""


@lru_cache(maxsize=1)
def analysis_fingerprint() -> str:
    """A hash of idemlint's analysis code and built-in knowledge: results computed by other
    code are never reused (a development checkout, a patched install)."""
    h = sha256(b"")
    lint = str(Path(__file__).parent.parent)
    names = []
    for dirpath, dirnames, filenames in os.walk(lint):
        dirnames.sort()
        rel = os.path.relpath(dirpath, lint).replace(os.sep, "/")
        for name in filenames:
            if name.endswith((".py", ".toml")):
                names.append((name if rel == "." else f"{rel}/{name}", dirpath, name))
    for rel, dirpath, name in sorted(names):
        h.update(rel.encode())
        with open(os.path.join(dirpath, name), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


@lru_cache(maxsize=1)
def findings_fingerprint() -> str:
    """:func:`analysis_fingerprint` plus what turns hits into findings: the rule catalog
    (the messages' words) and the modules that read it and shape a finding."""
    h = sha256(analysis_fingerprint().encode())
    package = Path(__file__).parent.parent.parent
    for name in ("catalog.py", "findings.py"):
        h.update(name.encode())
        h.update((package / name).read_bytes())
    spec = find_spec("idemlint.rulefiles")
    for location in (spec.submodule_search_locations or ()) if spec is not None else ():
        for entry in sorted(Path(location).glob("*.toml")):
            h.update(entry.name.encode())
            h.update(entry.read_bytes())
    return h.hexdigest()

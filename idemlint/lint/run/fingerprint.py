"""What made a cached result: hashes of idemlint's code, and when a time stamp may be trusted.

Kept apart from the snapshot (:mod:`~idemlint.lint.run.snapshot`) so that the quick record
(:mod:`~idemlint.lint.run.quick`) can name its key without importing the analysis.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

RACY_NS = 2_000_000_000
"""A file modified this close to when it was read may change again within the same
timestamp; its stamp is not trusted next time (its bytes are hashed again)."""


@lru_cache(maxsize=1)
def analysis_fingerprint() -> str:
    """A hash of idemlint's analysis code and built-in knowledge: results computed by other
    code are never reused (a development checkout, a patched install)."""
    h = hashlib.sha256()
    lint = Path(__file__).parent.parent
    for entry in sorted(lint.rglob("*")):
        if entry.suffix in (".py", ".toml"):
            h.update(entry.relative_to(lint).as_posix().encode())
            h.update(entry.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def findings_fingerprint() -> str:
    """:func:`analysis_fingerprint` plus what turns hits into findings: the rule catalog
    (the messages' words) and the modules that read it and shape a finding."""
    h = hashlib.sha256(analysis_fingerprint().encode())
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

"""The cache's compact summary form holds exactly what ``FileSummary.to_dict()`` holds."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from idemlint.lint.run.cache import SummaryCache, cache_key
from idemlint.lint.summary.codec import FIELDS, VERSION, decode, encode
from idemlint.lint.summary.model import FileSummary
from idemlint.lint.summary.summarize import summarize_source

REPO = Path(__file__).resolve().parent.parent


def test_codec_knows_every_summary_field_in_order() -> None:
    # a field added to summary.py must be added to the codec too, or it would be
    # dropped from every cached summary without a word
    for cls, names in FIELDS.items():
        assert tuple(f.name for f in dataclasses.fields(cls)) == names, cls.__name__


def _sources() -> list[tuple[str, str]]:
    out = [(p.name, p.read_text("utf-8")) for p in sorted((REPO / "fixtures").rglob("*.py"))]
    for package, step in (("celery", 3), ("django", 10)):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py"))[::step]:
            try:
                out.append((path.name, path.read_bytes().decode("utf-8")))
            except UnicodeDecodeError:
                continue
    return out


def test_round_trip_is_exact_on_real_code() -> None:
    sources = _sources()
    assert len(sources) > 100
    for name, text in sources:
        summary = summarize_source(text, name, "pkg.mod", False)
        assert decode(encode(summary)).to_dict() == summary.to_dict(), name


def test_repeated_values_are_written_once_and_shared() -> None:
    source = "def f(x):\n    a(b(c(d(x))))\n    a(b(c(d(x))))\n"
    summary = summarize_source(source, "m.py", "m")
    text = encode(summary)
    decoded = decode(text)
    events = decoded.functions["f"].events
    assert [e.value.path for e in events if e.value] == ["d", "c", "b", "a"] * 2
    first, second = events[0].value, events[4].value
    assert first is second  # one object for the two identical `d(x)`
    assert events[3].value is not None and events[3].value.args[0] is events[2].value
    rows = json.loads(text)[1]
    assert len(rows) == 5  # x, d(x), c(..), b(..), a(..): each once
    assert decoded.to_dict() == summary.to_dict()


def test_cache_treats_other_versions_and_garbage_as_misses(tmp_path: Path) -> None:
    cache = SummaryCache(tmp_path)
    summary = FileSummary("m.py", "m")
    key = cache_key(b"x = 1\n", "m", "m.py")
    cache.put(key, summary)
    got = cache.get(key)
    assert got is not None and got.to_dict() == summary.to_dict()
    for bad in (
        json.dumps([VERSION + 1, [], [], []]),
        json.dumps(summary.to_dict()),  # the readable form of an older cache format
        "[1, [",
    ):
        cache.put_text(key, bad)
        assert cache.get(key) is None
    with pytest.raises(ValueError):
        decode(json.dumps([VERSION + 1, [], [], []]))

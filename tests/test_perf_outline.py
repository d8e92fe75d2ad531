"""A file's outline (``ast``) says exactly what its full summary (libcst) says of its
module-level names, or declines.

A cold run indexes the files it needs only for resolution from their outlines and
makes their summaries when the analysis reads them
(:mod:`idemlint.lint.summary.outline`); the two must agree to the last import, or the
run would resolve names differently. Real code (the fixtures, every 8th Django file,
every 3rd Celery file) and the summariser's quirks are compared here; the run compares
again on every summary it loads. No timing is asserted: ``bench/lint_speed.py``
measures speed.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from idemlint.lint.index.project import FileIndex
from idemlint.lint.summary.outline import Outline, Unsure, outline
from idemlint.lint.summary.summarize import summarize_source

REPO = Path(__file__).resolve().parent.parent


def _index_parts(index: FileIndex | Outline) -> tuple[object, ...]:
    if isinstance(index, Outline):
        return (index.functions, index.classes, index.imports, index.assigns, index.bases)
    return (
        index.functions,
        index.classes,
        dict(index.imports),
        dict(index.raw_assigns),
        dict(index.raw_bases),
    )


def _agree(source: str, module: str = "pkg.mod", is_package: bool = False) -> bool:
    """Whether the outline equals the summary's index; False when the outline declines."""
    try:
        found = outline(source, "f.py", module, is_package)
    except Unsure:
        return False
    summary = summarize_source(source, "f.py", module, is_package)
    assert summary.error is None, summary.error
    assert _index_parts(found) == _index_parts(FileIndex.of(summary)), source
    return True


def _package_files(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{name} is not installed (it is in the dev extra)")
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(root.rglob("*.py"))


def _compare_files(files: list[Path]) -> tuple[int, int]:
    agreed = declined = 0
    for path in files:
        try:
            source = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        if _agree(source, "pkg." + path.stem, path.name == "__init__.py"):
            agreed += 1
        else:
            declined += 1
    return agreed, declined


@pytest.mark.parametrize(("package", "step"), [("django", 8), ("celery", 3)])
def test_outline_equals_the_summary_index_on_installed_packages(package: str, step: int) -> None:
    agreed, declined = _compare_files(_package_files(package)[::step])
    assert agreed > 50 and declined < agreed / 10


def test_outline_equals_the_summary_index_on_the_fixtures() -> None:
    agreed, _ = _compare_files(sorted((REPO / "fixtures").rglob("*.py")))
    assert agreed > 50


QUIRKS = {
    "one-line suites are not read, but a def's own is": """
        import a
        if TYPE_CHECKING: import b
        if x:
            import c
        elif y: import d
        else: import e
        try: import f
        except ImportError: g = None
        else: h = 1
        def one(): import i; return i
        def two():
            if x: import j
            for k in y: import k
            while z:
                import l
            else: import m
            with n: import o
            try: import p
            finally: import q
        class K: import r
    """,
    "elif and else with an if in it read alike": """
        if a:
            x = 1
        elif b:
            y = 2
        else:
            if c:
                z = 3
            else:
                w = 4
    """,
    "module-level with, for and match name their functions <module>.f": """
        with ctx() as c:
            def f(): pass
            class C:
                def m(self): pass
        for i in range(3):
            def g(): pass
        match v:
            case 1:
                def h(): pass
            case _: import nope
    """,
    "nested functions and classes, inner classes, methods, redefinitions": """
        class A(Base, mixins.M, *more, metaclass=Meta):
            x = 1
            class Meta:
                def inner(self): pass
            def m(self):
                class Local(A):
                    def lm(self): pass
                def nested(): pass
            if flag:
                def hidden(self): pass
        def f():
            def g():
                def h(): pass
        def f(): pass
        async def co():
            async with x:
                def in_with(): pass
    """,
    "values of every kind": """
        a = b = foo.bar(1, *args, x=2, **kw, **more).baz
        c: int = -1
        d = not x and y or z and (w or v)
        e = [1, *rest, (2, 3), {4}]
        f = {"k": 1, **other, 2: 3, ("t"): u"v", b"by": 0, None: True}
        g = x if y else z
        h = a[1:2]["k"]
        i = (n := 5)
        j = lambda q: q
        k = 1_000 + 0x1F - 1.5e3 * 2j
        l = a < b < c is not d not in e
        m = ~x, +y, -z, --1, -(2)
        n = ...
        o = "s" "t"
        p = await thing()
        q = obj().attr().call(x)(y)
        r = [x for x in y]
        s = True.real, None, False
        t = b"bytes"
        u = r"\\d+" 'x'
        v = {"a" "b": 1, "c": 2}
    """,
    "imports of every kind": """
        import a.b.c
        import d.e as f
        from . import g
        from .. import h as i
        from .j import k, l as m
        from ...n.o import (p,
            q as r)
        from s import *
        from t import \\
            u
    """,
}


@pytest.mark.parametrize("name", QUIRKS, ids=list(QUIRKS))
def test_outline_follows_the_summariser_quirks(name: str) -> None:
    source = textwrap.dedent(QUIRKS[name]).lstrip()
    assert _agree(source, "pkg.sub.mod"), "the outline declined"
    assert _agree(source, "pkg.sub", is_package=True)


@pytest.mark.parametrize(
    "source",
    [
        'X = f"a{b}"\n',  # libcst keeps an f-string's literal parts as written
        "if x: \\\n    import y\n",  # a suite joined by a backslash
        "def f[T](x: T) -> T:\n    return x\n",  # newer than this Python's ast (3.11)
        "def broken(:\n",
    ],
)
def test_outline_declines_what_only_libcst_can_tell(source: str) -> None:
    try:
        outline(source, "f.py", "m")
    except Unsure:
        return
    # on a newer Python the generic function parses: then it must agree
    assert source.startswith("def f[T]")
    assert _agree(source)


def test_an_f_string_where_the_outline_does_not_look_is_fine() -> None:
    assert _agree('app.conf.x = f"{a}"\nlog(f"{b}")\ndef f():\n    return f"{c}"\n')


def test_form_feeds_do_not_shift_lines() -> None:
    # str.splitlines splits at a form feed; the tokenizer does not
    assert _agree("x = 1\n\x0c\nif a:\n    y = 2  # \x0c here\n    z = 10\n")


def test_outline_round_trips_through_json() -> None:
    found = outline(textwrap.dedent(QUIRKS["values of every kind"]), "f.py", "m")
    assert Outline.from_json(found.to_json(), "f.py", "m") == found

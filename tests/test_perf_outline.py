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

from idemlint.lint.index.project import FileIndex, split_root
from idemlint.lint.summary.outline import EnqueueSite, Outline, Unsure, enqueue_call, outline
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


@pytest.mark.parametrize(("package", "step"), [("django", 12), ("celery", 3)])
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


# -- enqueue sites ------------------------------------------------------------------------
# The outline lists the calls ``receiver.tail(...)`` the summary holds as call events, in
# the order of its events, for the files the pre-check keeps only because they enqueue a
# task (the task finder reads nothing else of them). A wide set of method names is used
# here so that real code has many sites.
TAILS = frozenset({"delay", "apply_async", "send", "get", "append", "filter", "format", "save"})


def _summary_sites(source: str, module: str, is_package: bool) -> list[EnqueueSite]:
    """The sites as the task finder reads them off the full summary, without those whose
    receiver's first name the summary resolves through the function (a local, a
    parameter, a nested def) or that index something (``jobs[0]``)."""
    summary = summarize_source(source, "f.py", module, is_package)
    assert summary.error is None, summary.error
    out = []
    scopes = [(None, summary.module_events)]
    scopes += [(fn, fn.events) for fn in summary.functions.values()]
    for func, events in scopes:
        loops = {f"b{e.id}" for e in events if e.type == "branch" and e.kind in ("for", "while")}
        local: set[str] = set()
        if func is not None:
            for ev in events:
                if ev.type == "assign" and ev.op is None:
                    local.update(t for t in ev.targets if "." not in t)
                elif ev.type == "branch" and ev.kind in ("with", "for"):
                    local.update(ev.targets)
            local |= {p.name for p in func.params}
            local |= {
                q.rpartition(".")[2]
                for q in summary.functions
                if q.rpartition(".")[0] == func.qualname
            }
        for ev in events:
            if ev.type != "call" or ev.value is None or not ev.value.path:
                continue
            call = enqueue_call(ev.value.path, TAILS)
            if call is None or "[" in call[0] or split_root(call[0])[0] in local:
                continue
            where = (func.qualname, func.name) if func is not None else ("", "")
            out.append(EnqueueSite(*where, *call, ev.span.line, bool(loops & set(ev.blocks))))
    return out


def _same_sites(source: str, module: str = "pkg.mod", is_package: bool = False) -> bool:
    """Whether the outline lists the summary's sites; False when it is unsure."""
    try:
        found = outline(source, "f.py", module, is_package, TAILS)
    except Unsure:
        return False
    if found.enqueues is None:
        return False
    listed = [s for s in found.enqueues if "[" not in s.receiver]
    assert listed == _summary_sites(source, module, is_package), source
    return True


def _compare_sites(files: list[Path]) -> tuple[int, int, int]:
    agreed = unsure = sites = 0
    for path in files:
        try:
            source = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        if _same_sites(source, "pkg." + path.stem, path.name == "__init__.py"):
            agreed += 1
            sites += len(outline(source, "f.py", "pkg." + path.stem, False, TAILS).enqueues or ())
        else:
            unsure += 1
    return agreed, unsure, sites


@pytest.mark.parametrize(("package", "step"), [("django", 12), ("celery", 1)])
def test_enqueue_sites_equal_the_summary_events_on_installed_packages(
    package: str, step: int
) -> None:
    # (unsure is common here: `get`, `send` and `save` are mostly called on locals and self)
    agreed, _, sites = _compare_sites(_package_files(package)[::step])
    assert agreed > 50 and sites > 0, (agreed, sites)


def test_enqueue_sites_equal_the_summary_events_on_the_fixtures() -> None:
    agreed, _, sites = _compare_sites(sorted((REPO / "fixtures").rglob("*.py")))
    assert agreed > 50 and sites > 20, (agreed, sites)


SITES = {
    "statements of every kind, module level and in functions": """
        v1 = r1.delay(r2.delay(), c=r3.send(r4.get()))
        v2: int = r5.delay()
        v3 += r6.delay()
        r7.delay()
        if r8.delay():  # a module-level if's test is not read
            r9.delay()
        else: r10.delay()
        try:
            r11.delay()
        except E:
            r12.delay()
        else:
            r13.delay()
        finally:
            r14.delay()  # nor a module-level finally
        for v4 in r15.get():
            r16.delay()
        else:
            r17.delay()
        while r18.get():
            r19.delay()
        with r20.get() as v5:
            r21.delay()
        match r22.get():
            case 1:
                r23.delay()
            case 2: r24.delay()
        def f1():
            return r25.delay()
        def f2(): r26.delay(); raise r27.delay() from r28.delay()
        async def f3():
            async for v6 in r29.get():
                if r30.delay(): r31.delay()
                elif r32.delay():
                    r33.delay()
                else:
                    for v7 in r34:
                        r35.delay()
            else:
                r36.delay()
            async with r37.get():
                await r38.delay()
            try: r39.delay()
            finally:
                r40.delay()
            while r41:
                pass
            else:
                r42.delay()
            del r43.delay().y
            assert r44.delay()
        class K(r45.get()):
            attr = r46.delay()
            def m(self):
                r47.delay()
                self.send()
            @r48.delay()
            def n(self, arg=r49.delay()):
                r50.delay()
    """,
    "the order of calls within an expression": """
        def f():
            v1 = {r1.delay(): r2.delay(), **r3.delay(), r4.delay(): r5.delay()}
            v2 = r6.delay() if r7.delay() else r8.delay()
            v3 = r9.delay(*r10.delay(), k=r11.delay(), **r12.delay())
            v4 = r13.delay(o=r14.delay(), *r15.delay())
            v5 = [r16.delay(v) for v in r17.delay() if r18.delay()]
            v6 = lambda q=r19.delay(): r20.delay()
            v7 = r21.delay()[r22.delay():r23.delay()]
            v8 = (r24.delay() or r25.delay()) and not r26.delay() < r27.delay()
            v9 = f"{r28.delay()}-{r29.delay()!r}"
            v10 = (r30
                 .delay())
            v11 = (
                r31.delay()
            )
            v12 = await r32.delay()
            v13 = r33.delay().r34.delay()
            v14 = r35[0].delay()
            v15 = (v16 := r36.delay())
    """,
    "nested scopes, redefinitions and the module's own loops": """
        for v1 in range(3):
            r1.delay()
            def inner():
                r2.delay()
        def f():
            r3.delay()
            def g():
                r4.delay()
            r5.delay()
        def f():
            r6.delay()
        class C:
            class D:
                def m(self):
                    r7.delay()
        with r8:
            r9.delay()
            for v2 in r10:
                while r11:
                    r12.delay()
    """,
}


@pytest.mark.parametrize("name", SITES, ids=list(SITES))
def test_enqueue_sites_follow_the_summariser(name: str) -> None:
    source = textwrap.dedent(SITES[name]).lstrip()
    assert _same_sites(source), "the outline was unsure"
    assert outline(source, "f.py", "pkg.mod", False, TAILS).enqueues


@pytest.mark.parametrize(
    "source",
    [
        "def f(job):\n    job.task.delay()\n",  # a parameter's attribute
        "class A:\n    def m(self):\n        self.mail.send()\n",
        "def f():\n    job = make()\n    job.delay()\n",  # a local
        "def f():\n    for job in jobs:\n        job.delay()\n",  # a loop's target
        "def f():\n    def job(): pass\n    job.delay()\n",  # a nested def
        "def f():\n    [job for job in jobs]\n    job.delay()\n",  # bound anywhere in it
        "def f(*job):\n    job.delay()\n",
        "def f():\n    \uff4aob.delay()\n",  # ast normalises the identifier, libcst does not
    ],
)
def test_enqueue_sites_are_unsure_where_the_function_binds_the_receiver(source: str) -> None:
    assert outline(source, "f.py", "m", False, TAILS).enqueues is None


def test_enqueue_sites_leave_out_what_names_no_function() -> None:
    # a parameter itself (an instance: `self.send()`), an item of something
    source = "class A:\n    def m(self, x):\n        self.send(); x.delay(); x[0].delay()\n"
    source += "    def n(self):\n        self.send()\n        jobs[0].delay()\n"
    found = outline(source, "f.py", "m", False, TAILS)
    assert found.enqueues is not None
    assert [(s.function, s.receiver) for s in found.enqueues] == [("A.n", "jobs[]")]


def test_enqueue_sites_round_trip_through_json() -> None:
    source = textwrap.dedent(SITES["nested scopes, redefinitions and the module's own loops"])
    found = outline(source, "f.py", "m", False, TAILS)
    assert found.enqueues and Outline.from_json(found.to_json(), "f.py", "m") == found
    unsure = outline("def f(job):\n    job.a.delay()\n", "f.py", "m", False, TAILS)
    assert Outline.from_json(unsure.to_json(), "f.py", "m").enqueues is None

"""Inputs that have broken idemlint, and their relatives: shared by ``bench/fuzz_files.py``
and ``tests/test_fuzz.py``. Every generator takes a ``random.Random`` and returns a
file's bytes, so that a run is reproducible from its seed.

Areas (what issue 12 found, and around it):

* ``mutated``: the repository's fixture files with bytes flipped, inserted, deleted,
  lines duplicated or cut, brackets and keywords dropped in.
* ``deep``: nesting past what libcst survives: brackets, ``not``, unary minus, lambdas,
  attribute, call and subscript chains, nested literals.
* ``chains``: long flat-looking code: sums, boolean chains, elif chains, implicit string
  concatenation, dotted imports, comparisons.
* ``encodings``: PEP 263 declarations (right, wrong, unknown), byte-order marks,
  latin-1 and UTF-16 bytes, invalid UTF-8.
* ``garbage``: random bytes, NULs, control characters, very long lines.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AREAS = ("mutated", "deep", "chains", "encodings", "garbage")

TASK_HEAD = (
    "import requests\nfrom celery import shared_task\n\n\n"
    "@shared_task(acks_late=True)\ndef job(a, b):\n"
)


@lru_cache(maxsize=1)
def fixture_files() -> tuple[bytes, ...]:
    """Every Python file of the fixtures (sorted, so that seeds mean the same)."""
    return tuple(p.read_bytes() for p in sorted((REPO / "fixtures").rglob("*.py")))


def _size(rng: random.Random) -> int:
    """Mostly beyond the limits, sometimes just around them."""
    return rng.choice([50, 200, 299, 301, 400, 490, 600, 1_000, 5_000, 10_000, 50_000])


def deep(rng: random.Random) -> bytes:
    n = _size(rng)
    kind = rng.choice(["paren", "list", "dict", "not", "neg", "lambda", "attr", "call", "sub"])
    expr = {
        "paren": "(" * n + "a" + ")" * n,
        "list": "[" * n + "a" + "]" * n,
        "dict": "{'k': " * n + "a" + "}" * n,
        "not": "not " * n + "a",
        "neg": "-" * n + "a",
        "lambda": "lambda: " * n + "a",
        "attr": "a" + ".b" * n,
        "call": "a" + "()" * n,
        "sub": "a" + "[0]" * n,
    }[kind]
    where = rng.choice(["return", "call", "module"])
    if where == "module":
        return f"X = {expr}\n".encode()
    if where == "call":
        return (TASK_HEAD + f"    requests.post('https://x', json={expr})\n").encode()
    return (TASK_HEAD + f"    return {expr}\n").encode()


def chains(rng: random.Random) -> bytes:
    n = _size(rng)
    kind = rng.choice(["sum", "and", "or", "elif", "strings", "import", "compare", "pow"])
    if kind == "elif":
        body = "    if a == 0:\n        requests.post('https://x')\n" + "".join(
            f"    elif a == {i}:\n        b += {i}\n" for i in range(1, n)
        )
        return (TASK_HEAD + body).encode()
    if kind == "import":
        return (f"import {'.'.join(['m'] * n)}\n" + TASK_HEAD + "    pass\n").encode()
    op = {"sum": " + ", "and": " and ", "or": "\n        or ", "strings": " ", "compare": " < "}
    op["pow"] = " ** "
    term = '"s"' if kind == "strings" else "a"
    expr = op[kind].join([term] * n)
    if kind == "or":
        expr = f"({expr})"
    return (TASK_HEAD + f"    requests.post('https://x', data={expr})\n").encode()


def mutated(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(fixture_files()))
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice([b"(", b")", b"[", b":", b"\n", b"    ", b"\t", b"\\", b'"""'])
        elif op == 2:
            del data[at : at + rng.randint(1, 40)]
        elif op == 3:
            line_start = data.rfind(b"\n", 0, at) + 1
            line_end = data.find(b"\n", at)
            line = bytes(data[line_start : line_end if line_end != -1 else len(data)])
            data[line_start:line_start] = (line + b"\n") * rng.randint(1, 50)
        elif op == 4:
            data = data[:at]
        elif op == 5:
            data[at:at] = rng.choice(
                [b" and ", b" not ", b" lambda: ", b".x", b"await ", b"elif x:\n", b"\x00"]
            )
        else:
            data[at:at] = rng.choice(fixture_files())[: rng.randint(0, 400)]
    return bytes(data)


def encodings(rng: random.Random) -> bytes:
    body = rng.choice(fixture_files())
    text = body.decode("utf-8", "replace").replace("requests.post(", "requests.post('caf\u00e9', ")
    kind = rng.randrange(7)
    if kind == 0:
        return b"# -*- coding: latin-1 -*-\n" + text.encode("latin-1", "replace")
    if kind == 1:
        return b"# coding: utf-8\n" + text.encode("latin-1", "replace")  # lies
    if kind == 2:
        return b"# vim: set fileencoding=no-such-codec :\n" + body
    if kind == 3:
        return b"\xef\xbb\xbf" + body
    if kind == 4:
        return b"\xef\xbb\xbf# coding: latin-1\n" + body  # a BOM and another declaration
    if kind == 5:
        return text.encode("utf-16")
    return body[: len(body) // 2] + bytes([0xC3, 0x28, 0xFF]) + body[len(body) // 2 :]


def garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 4000))
    if kind == 1:
        return b"x = 1\n" + b"\x00" * rng.randint(1, 100) + b"\ny = 2\n"
    if kind == 2:
        return b"x = '" + b"a" * rng.choice([10_000, 200_000, 1_500_000]) + b"'\n"
    if kind == 3:
        return bytes(rng.choice(b"()[]{}:.,;'\"\\\n\t #+-*/=<>!@%&|^~") for _ in range(2000))
    return rng.choice([b"", b"\n", b"\\", b"'''", b"\xff", b"\r\r\r", b"# coding: latin-1"])


GENERATORS = {
    "mutated": mutated,
    "deep": deep,
    "chains": chains,
    "encodings": encodings,
    "garbage": garbage,
}


def generate(area: str, rng: random.Random) -> bytes:
    return GENERATORS[area](rng)

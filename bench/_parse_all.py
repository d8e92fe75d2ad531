"""Parse every Python file of a project with ``ast`` or ``libcst``, and nothing else.

The floor the linters are compared against: the same files idemlint reads
(``idemlint.lint.files.discovery``), parsed one after the other in one process.

    python bench/_parse_all.py ast|libcst ROOT
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from idemlint.lint.files.discovery import discover


def main(argv: list[str]) -> int:
    kind, root = argv[0], Path(argv[1])
    files = discover(root)
    if kind == "libcst":
        import libcst

        parse = libcst.parse_module
        errors: tuple[type[BaseException], ...] = (libcst.ParserSyntaxError,)
    else:
        parse = ast.parse
        errors = (SyntaxError,)
    failed = 0
    for path in files:
        try:
            parse(path.read_bytes().decode("utf-8"))
        except (*errors, UnicodeDecodeError, RecursionError, ValueError):
            failed += 1
    print(f"{len(files)} files, {failed} did not parse", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

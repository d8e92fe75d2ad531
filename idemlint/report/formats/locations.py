"""Where a dotted name is defined, so that a SARIF code flow can point at real lines.

Findings name their task and call chain as dotted names (``app.tasks.charge``).
Code-scanning UIs only draw a flow step they can open, so each name is mapped
back to its ``def`` line with :mod:`ast` (cheap: only files on a chain are
read, each once). A name that cannot be found stays a logical location.
"""

from __future__ import annotations

import ast
from pathlib import Path


class SymbolLocator:
    """Maps ``package.module.Class.method`` to ``(file, line)`` under a project root."""

    def __init__(self, root: Path) -> None:
        self._bases = [root, root / "src"]
        self._definitions: dict[Path, dict[str, int]] = {}

    def locate(self, dotted: str) -> tuple[Path, int] | None:
        parts = dotted.split(".")
        for base in self._bases:
            for split in range(len(parts) - 1, 0, -1):
                module, qualname = parts[:split], ".".join(parts[split:])
                for candidate in (
                    base.joinpath(*module[:-1], module[-1] + ".py"),
                    base.joinpath(*module, "__init__.py"),
                ):
                    line = self._defined_in(candidate).get(qualname)
                    if line is not None:
                        return candidate, line
        return None

    def _defined_in(self, file: Path) -> dict[str, int]:
        known = self._definitions.get(file)
        if known is None:
            known = {}
            try:
                tree = ast.parse(file.read_bytes(), filename=str(file))
            except (OSError, SyntaxError, ValueError):
                tree = None
            if tree is not None:
                _collect(tree.body, "", known)
            self._definitions[file] = known
        return known


def _collect(body: list[ast.stmt], prefix: str, into: dict[str, int]) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = prefix + node.name
            into.setdefault(name, node.lineno)
            _collect(node.body, name + ".", into)

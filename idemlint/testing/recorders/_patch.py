"""Reversible monkeypatching, so a check leaves every library as it found it."""

from __future__ import annotations

from typing import Any


class Patches:
    """Attributes replaced on classes and modules, restored in reverse order."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any, bool]] = []
        self._seen: set[tuple[int, str]] = set()

    def replace(self, owner: Any, name: str, value: Any) -> Any:
        """Set ``owner.name = value``; return the original. Idempotent per (owner, name)."""
        key = (id(owner), name)
        if key in self._seen:
            raise RuntimeError(f"{owner!r}.{name} is already patched")
        had = name in vars(owner)
        original = getattr(owner, name)
        self._seen.add(key)
        self._saved.append((owner, name, vars(owner).get(name), had))
        setattr(owner, name, value)
        return original

    def done(self, owner: Any, name: str) -> bool:
        """True when ``owner.name`` is already patched by this object."""
        return (id(owner), name) in self._seen

    def restore(self) -> None:
        while self._saved:
            owner, name, original, had = self._saved.pop()
            if had:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
        self._seen.clear()

"""How results and step results become bytes in the store, and back.

JSON is the default because a stored result must be readable by the next
deploy of the code (and by people), and because unpickling bytes from a
shared store would let anyone who can write to it run code in every worker.
That is why there is no pickle serialiser, and why :class:`Serializer` is a
two-method protocol: plug in msgpack, orjson or a schema'd format if needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from idemlint.runtime.errors import SerializationError


@runtime_checkable
class Serializer(Protocol):
    """Turns a function's result into bytes and back."""

    def dumps(self, value: Any) -> bytes:
        """Serialise; raise ``TypeError``/``ValueError`` for what cannot be stored."""
        ...

    def loads(self, data: bytes) -> Any:
        """Deserialise bytes written by :meth:`dumps`."""
        ...


class JsonSerializer:
    """Compact UTF-8 JSON.

    ``default`` converts otherwise unserialisable objects (as in
    ``json.dumps``); ``object_hook`` rebuilds them on replay. A replay returns
    what JSON can express: tuples come back as lists, ``None`` stays ``None``.
    NaN and infinities are refused, since other JSON readers reject them.
    """

    def __init__(
        self,
        *,
        default: Callable[[Any], Any] | None = None,
        object_hook: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._default = default
        self._object_hook = object_hook

    def dumps(self, value: Any) -> bytes:
        return json.dumps(
            value,
            default=self._default,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"), object_hook=self._object_hook)


DEFAULT_SERIALIZER = JsonSerializer()


def _why(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return f"it is nested too deeply ({exc})"
    return f"{type(exc).__name__}: {exc}"


def serialize(serializer: Serializer, value: Any, *, key: str, what: str = "result") -> bytes:
    """``serializer.dumps`` with any failure turned into a :class:`SerializationError`.

    Any, not only ``TypeError``/``ValueError``: a result nested thousands deep
    makes ``json.dumps`` raise ``RecursionError``, and a ``default=`` hook can
    raise anything. Whatever it is, the caller must get the documented error
    so that the decorator releases the claim instead of leaving it held for
    the whole lease.
    """
    try:
        data = serializer.dumps(value)
    except Exception as exc:
        raise SerializationError(
            f"the {what} for key {key!r} cannot be stored by {type(serializer).__name__}: "
            f"{_why(exc)}; return JSON-compatible data or pass serializer=",
            key=key,
        ) from exc
    if not isinstance(data, bytes):
        raise SerializationError(
            f"{type(serializer).__name__}.dumps returned {type(data).__name__}, not bytes", key=key
        )
    return data


def deserialize(serializer: Serializer, data: bytes, *, key: str, what: str = "result") -> Any:
    """``serializer.loads`` with any failure turned into a :class:`SerializationError`."""
    try:
        return serializer.loads(data)
    except Exception as exc:
        raise SerializationError(
            f"the stored {what} for key {key!r} cannot be read by "
            f"{type(serializer).__name__}: {_why(exc)}",
            key=key,
        ) from exc


__all__ = ["DEFAULT_SERIALIZER", "JsonSerializer", "Serializer", "deserialize", "serialize"]

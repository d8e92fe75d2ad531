"""Building the idempotency key and the argument fingerprint of a call.

The key names the job (``"charge:{order_id}"``); the fingerprint says what
was asked of it. Keeping both lets a replay be refused when the same key
arrives with other arguments (:class:`KeyReuseError`), the request
fingerprint of Stripe-style idempotency keys.

Both are built *before* anything runs. If either cannot be built the call
fails with :class:`KeyBuildError`: running the function unprotected would
turn a configuration mistake into duplicate charges.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import inspect
import json
import string
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from idemlint.runtime.errors import ConfigurationError, KeyBuildError
from idemlint.runtime.stores.base import MAX_KEY_LENGTH, validate_key

KeySpec = str | Callable[..., str]
FingerprintSpec = None | bool | Sequence[str] | Callable[..., Any]

_formatter = string.Formatter()


def simple_positional(signature: inspect.Signature) -> tuple[str, ...] | None:
    """Parameter names when every parameter is plain positional-or-keyword, else None.

    For such functions a call with all arguments given positionally binds by
    ``zip``: the common case, where ``Signature.bind`` would be the slowest
    part of a replay.
    """
    params = list(signature.parameters.values())
    if all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
        return tuple(p.name for p in params)
    return None


def bind_arguments(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise KeyBuildError(f"cannot bind the call's arguments: {exc}") from exc
    bound.apply_defaults()
    flat: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        param = signature.parameters[name]
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            flat.update(value)
        else:
            flat[name] = value
    return flat


def check_key_template(template: str, signature: inspect.Signature) -> None:
    """Fail at decoration time when a template names a parameter the function lacks."""
    names = set(signature.parameters)
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    try:
        parsed = list(_formatter.parse(template))
    except ValueError as exc:
        raise ConfigurationError(f"bad key template {template!r}: {exc}") from exc
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        if field_name == "" or field_name[0].isdigit():
            raise ConfigurationError(
                f"key template {template!r} uses a positional field; name the parameter, "
                "e.g. '{order_id}'"
            )
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if root not in names and not has_var_kw:
            raise ConfigurationError(
                f"key template {template!r} names {root!r}, not a parameter of the function "
                f"(parameters: {', '.join(names) or 'none'})"
            )


def build_key(
    spec: KeySpec, arguments: Mapping[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """Format the key template over ``arguments`` or call the key function."""
    try:
        key = spec(*args, **kwargs) if callable(spec) else spec.format_map(arguments)
    except Exception as exc:
        raise KeyBuildError(f"cannot build the idempotency key from {spec!r}: {exc!r}") from exc
    if not isinstance(key, str):
        raise KeyBuildError(f"the key function returned {type(key).__name__}, not str: {key!r}")
    if not key:
        raise KeyBuildError(f"the idempotency key built from {spec!r} is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise KeyBuildError(
            f"the idempotency key is {len(key)} characters; the limit is {MAX_KEY_LENGTH}. "
            "Use ids, not whole payloads, in the key (the payload is covered by the fingerprint)",
            key=key[:64] + "…",
        )
    return validate_key(key)  # NUL, lone surrogates: what no store can keep as given


def _canonical(value: Any) -> Any:
    """``json.dumps`` default: a stable, process-independent form for common types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__qualname__, **dataclasses.asdict(value)}
    if isinstance(value, enum.Enum):
        return {"__enum__": f"{type(value).__qualname__}.{value.name}"}
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return {"__dt__": value.isoformat()}
    if isinstance(value, _dt.timedelta):
        return {"__td__": value.total_seconds()}
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return {f"__{type(value).__name__}__": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__bytes__": bytes(value).hex()}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted(json.dumps(v, default=_canonical, sort_keys=True) for v in value)}
    if isinstance(value, tuple):
        return list(value)
    dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(dump):
        return {"__model__": type(value).__qualname__, **dump(mode="json")}
    raise TypeError(f"{type(value).__qualname__} has no canonical form")


def fingerprint_of(
    spec: FingerprintSpec,
    arguments: Mapping[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    key: str,
) -> str:
    """SHA-256 over a canonical JSON of the chosen arguments.

    ``spec`` is None (every argument but ``self``/``cls``), False (no
    fingerprint: any arguments replay), a list of argument names, or a
    callable returning JSON-able data. Objects without a canonical form (a DB
    session, a client) raise :class:`KeyBuildError` naming the argument: a
    ``repr`` with a memory address would differ in every process and turn
    every retry into a ``KeyReuseError``.
    """
    if spec is False:
        return "-"
    try:
        if spec is None or spec is True:
            data: Any = {k: v for k, v in arguments.items() if k not in ("self", "cls")}
        elif callable(spec):
            data = spec(*args, **kwargs)
        else:
            data = {name: arguments[name] for name in spec}
        text = json.dumps(
            data, default=_canonical, sort_keys=True, separators=(",", ":"), allow_nan=True
        )
    except Exception as exc:
        raise KeyBuildError(
            f"cannot fingerprint the arguments of the call with key {key!r}: {exc}. "
            "Pass fingerprint=[names of the arguments that define the request] "
            "or fingerprint=callable",
            key=key,
        ) from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = [
    "FingerprintSpec",
    "KeySpec",
    "bind_arguments",
    "build_key",
    "check_key_template",
    "fingerprint_of",
]

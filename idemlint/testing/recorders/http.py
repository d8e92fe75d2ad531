"""Outgoing HTTP through requests and httpx: answered here, never sent.

``requests`` is hooked at ``HTTPAdapter.send`` (every Session's default
adapter) and ``httpx`` at its default sync and async transports. Writes
(POST, PUT, PATCH, DELETE) are effect points; reads are answered too, so a
test never touches the network, but are not effects. An ``Idempotency-Key``
header is kept as the effect's dedupe token: a receiver that honours it
(Stripe and most payment APIs) applies a repeat once. An identical PUT or
DELETE also counts once, as HTTP defines those methods idempotent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json as jsonlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from idemlint.testing.effects import HTTP, Effect, active, mask
from idemlint.testing.recorders._patch import Patches

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENT_METHODS = frozenset({"PUT", "DELETE"})
"""Writes HTTP defines as idempotent: an identical repeat counts once."""


@dataclass(frozen=True)
class HttpRequest:
    """What the task sent."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    """A canned answer. ``json`` wins over ``body`` when given."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        return jsonlib.dumps(self.json).encode() if self.json is not None else self.body

    def all_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.json is not None:
            headers.setdefault("Content-Type", "application/json")
        return headers


ResponseSpec = HttpResponse | int | Mapping[str, Any]
Responder = Callable[[HttpRequest], HttpResponse]
HttpConfig = Mapping[str, ResponseSpec] | Responder | None


def _as_response(spec: ResponseSpec) -> HttpResponse:
    if isinstance(spec, HttpResponse):
        return spec
    if isinstance(spec, int):
        return HttpResponse(status=spec)
    return HttpResponse(status=200, json=dict(spec))


def responder(config: HttpConfig) -> Responder:
    """Turn ``http=`` into a function from request to response.

    A mapping's keys are ``"METHOD url-prefix"`` or a bare url prefix; the
    longest matching prefix wins; values are an :class:`HttpResponse`, a
    status code, or a dict sent back as JSON. Unmatched requests get 200 with
    ``{"id": ...}``, an id derived from the request (the same request gets the
    same id, as from an API that deduplicates), since most APIs that create
    something answer with its id.
    """
    if config is None:
        config = {}
    if callable(config):
        return config
    routes: list[tuple[str | None, str, HttpResponse]] = []
    for key, spec in config.items():
        method, _, prefix = key.partition(" ")
        if not prefix:
            method, prefix = "", method
        routes.append((method.upper() or None, prefix, _as_response(spec)))
    routes.sort(key=lambda r: len(r[1]), reverse=True)

    def answer(request: HttpRequest) -> HttpResponse:
        for method, prefix, response in routes:
            if (method is None or method == request.method) and request.url.startswith(prefix):
                return response
        digest = hashlib.sha256(
            f"{request.method} {request.url}".encode() + b"\0" + request.body
        ).hexdigest()
        return HttpResponse(json={"id": f"idemlint_{digest[:16]}"})

    return answer


def _record(request: HttpRequest) -> None:
    rec = active()
    if rec is None or request.method not in WRITE_METHODS:
        return
    label = f"{request.method} {request.url}"
    key = next((v for k, v in request.headers.items() if k.lower() == "idempotency-key"), None)
    if key is None and request.method in IDEMPOTENT_METHODS:
        # the same PUT or DELETE again changes nothing more (RFC 9110, 9.2.2)
        key = "same request " + hashlib.sha256(request.body).hexdigest()[:16]
    rec.point(Effect(HTTP, label, mask(label.split("?", 1)[0]), verb=request.method, dedupe=key))


def _body(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return b""  # a stream or generator: not read, so the task's object is left intact


class HttpHooks:
    """Installs the requests and httpx hooks that are installed on this machine."""

    def __init__(self, patches: Patches, config: HttpConfig) -> None:
        self.answer = responder(config)
        if importlib.util.find_spec("requests") is not None:
            self._requests(patches)
        if importlib.util.find_spec("httpx") is not None:
            self._httpx(patches)

    def _requests(self, patches: Patches) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        if patches.done(HTTPAdapter, "send"):
            return
        hooks = self

        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            sent = HttpRequest(
                str(request.method).upper(),
                str(request.url),
                dict(request.headers),
                _body(request.body),
            )
            canned = hooks.answer(sent)
            response = requests.Response()
            response.status_code = canned.status
            response._content = canned.content()
            response.headers.update(canned.all_headers())
            response.url = sent.url
            response.request = request
            response.reason = "idemlint.testing"
            response.encoding = "utf-8"
            _record(sent)
            return response

        patches.replace(HTTPAdapter, "send", send)

    def _httpx(self, patches: Patches) -> None:
        import httpx

        if patches.done(httpx.HTTPTransport, "handle_request"):
            return
        hooks = self

        def build(request: Any) -> Any:
            sent = HttpRequest(
                request.method.upper(), str(request.url), dict(request.headers), request.content
            )
            canned = hooks.answer(sent)
            response = httpx.Response(
                canned.status,
                content=canned.content(),
                headers=canned.all_headers(),
                request=request,
            )
            return sent, response

        def handle(self: Any, request: Any) -> Any:
            request.read()
            sent, response = build(request)
            _record(sent)
            return response

        async def handle_async(self: Any, request: Any) -> Any:
            await request.aread()
            sent, response = build(request)
            _record(sent)
            return response

        patches.replace(httpx.HTTPTransport, "handle_request", handle)
        patches.replace(httpx.AsyncHTTPTransport, "handle_async_request", handle_async)


__all__ = ["HttpHooks", "HttpRequest", "HttpResponse", "responder"]

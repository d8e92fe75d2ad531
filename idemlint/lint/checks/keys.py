"""identify-the-key: IDM201 (a key that changes between retries), IDM202 (no key at all)."""

from __future__ import annotations

from idemlint.lint.analysis.walk import CallFact, FunctionFacts, TaskContext
from idemlint.lint.knowledge import glob
from idemlint.lint.summary.model import Value


def unstable(facts: FunctionFacts, value: Value, seen: frozenset[str] = frozenset()) -> bool:
    """The value is built from something that differs on every run (uuid4, now, random)."""
    k = facts.k
    for v in value.walk():
        if v.kind == "call" and v.path:
            if k.unstable_sources.match(facts.project.candidates(facts.resolve(v.path))):
                return True
        elif v.kind in ("name", "attr") and v.path and "." not in v.path and v.path not in seen:
            for bound in facts.locals().get(v.path, []):
                if unstable(facts, bound, seen | {v.path}):
                    return True
    return False


def named_key_values(facts: FunctionFacts, c: CallFact) -> list[tuple[str, Value]]:
    """Idempotency keys a call passes, by how they are passed (``idempotency_key=``, a header)."""
    out = [(f"{kw}=", v) for kw, v in c.value.kwargs.items() if kw in facts.k.key_kwargs]
    headers = _headers(facts, c)
    if headers is not None:
        out += [(name, v) for name, v in headers.kwargs.items() if _is_key_header(facts, name)]
        if _signed_webhook(facts, headers):
            # a signed webhook's receiver dedupes on the event id its JSON body carries
            body = _json_body(facts, c)
            out += [
                (f"json {name!r}", v)
                for name, v in body.items()
                if facts.k.webhook_body_ids.match([name.lower()])
            ]
    return out


def _signed_webhook(facts: FunctionFacts, headers: Value) -> str | None:
    """The header, as written, that signs the request as a webhook delivery."""
    return next(
        (n for n in headers.kwargs if facts.k.webhook_signature_headers.match([n.lower()])),
        None,
    )


def _json_body(facts: FunctionFacts, c: CallFact) -> dict[str, Value]:
    """The items of the dict literal a call passes as ``json=`` (also through a local)."""
    body = c.value.kwargs.get("json")
    if body is not None and body.kind == "name" and body.path:
        bound = facts.locals().get(body.path, [])
        body = bound[-1] if bound else None
    return body.kwargs if body is not None and body.kind == "dict" else {}


def _headers(facts: FunctionFacts, c: CallFact) -> Value | None:
    """The dict literal a call passes as ``headers=``, also through a local bound to one."""
    headers = c.value.kwargs.get("headers")
    if headers is not None and headers.kind == "name" and headers.path:
        bound = facts.locals().get(headers.path, [])
        headers = bound[-1] if bound else None
    return headers if headers is not None and headers.kind == "dict" else None


def key_values(facts: FunctionFacts, c: CallFact) -> list[Value]:
    """Idempotency keys a call passes: key keywords, and idempotency headers."""
    return [v for _, v in named_key_values(facts, c)]


def _is_key_header(facts: FunctionFacts, name: str) -> bool:
    """An idempotency key, or a delivery id the receiver dedupes on (``webhook-id``)."""
    lowered = name.lower()
    known = {api.header.lower() for api in facts.k.idempotent_apis}
    return lowered in known or facts.k.key_headers.match([lowered])


def _api_header(facts: FunctionFacts, c: CallFact) -> str | None:
    """The key header an HTTP write needs, when its URL is a known idempotent API."""
    url_value = c.value.kwargs.get("url") or (c.value.args[0] if c.value.args else None)
    if c.value.args and c.value.args[0].kind == "str" and len(c.value.args) > 1:
        url_value = c.value.args[1]  # request("POST", url)
    url = facts.literal_text(url_value) if url_value is not None else None
    if not url:
        return None
    for api in facts.k.idempotent_apis:
        if glob(api.url).match([url]):
            return api.header
    return None


def missing_key(facts: FunctionFacts, c: CallFact) -> str | None:
    """What key the call should carry but does not (for IDM202), else ``None``."""
    effect = c.effect
    if effect is None or "**" in c.value.kwargs:
        return None
    if effect.key_kwarg and effect.key_kwarg not in c.value.kwargs:
        return f"{effect.key_kwarg}="
    if effect.kind == "http-write":
        header = _api_header(facts, c)
        if header is not None:
            given = c.value.kwargs.get("headers")
            headers = _headers(facts, c)
            names = {n.lower() for n in headers.kwargs} if headers is not None else set()
            if given is None or (headers is not None and header.lower() not in names):
                return f"the {header} header"
        return _unidentified_webhook(facts, c)
    return None


def _unidentified_webhook(facts: FunctionFacts, c: CallFact) -> str | None:
    """A signed webhook delivery (its headers carry a webhook signature) that sends no
    delivery id: the receiver, which the project does not own, cannot tell a redelivered
    event from a new one. A key header (Standard Webhooks' ``webhook-id``), or an id in a
    JSON body written out here (``json={"id": event.id, ...}``), identifies it; a body
    built elsewhere is not read."""
    headers = _headers(facts, c)
    signature = _signed_webhook(facts, headers) if headers is not None else None
    if headers is None or signature is None or "**" in headers.kwargs:
        return None
    if "**" in _json_body(facts, c) or named_key_values(facts, c):
        return None
    return f"a delivery-id header such as webhook-id (`{signature}` signs a webhook delivery)"


def forwarded_key(facts: FunctionFacts, c: CallFact) -> str | None:
    """The key keyword of an effect that the project function ``c`` calls passes its own
    ``**kwargs`` to (``def create_intent(**params): return stripe.PaymentIntent.create(
    **params)``): the caller's keywords are the effect's, key included."""
    if c.target is None or c.effect is not None:
        return None
    peer = facts.peer(c.target)
    if peer is None:
        return None
    bound = peer.locals()
    for inner in peer.calls:
        spread = inner.value.kwargs.get("**")
        if inner.effect is None or not inner.effect.key_kwarg or spread is None:
            continue
        # a name the function never binds is its own `**kwargs` (summaries list the named
        # parameters only)
        if spread.kind == "name" and spread.path and spread.path not in bound:
            return inner.effect.key_kwarg
    return None


def key_may_be_missing(facts: FunctionFacts, c: CallFact, key: str) -> str | None:
    """Why the key a caller passes through a wrapper may be absent: not passed, ``None``, or
    a local that some path leaves ``None`` (``key = None; if sync: key = f"..."``)."""
    if "**" in c.value.kwargs:
        return None
    value = c.value.kwargs.get(key)
    if value is None:
        return f"{key}="
    if value.kind == "none":
        return f"{key}=None"
    if value.kind == "name" and value.path and value.path not in facts.params:
        bound = facts.locals().get(value.path, [])
        if any(b.kind == "none" for b in bound):
            return f"{key}={value.path}, which is None on some paths"
    return None


def check(ctx: TaskContext) -> None:
    for r in ctx.reached:
        facts = r.facts
        reported: set[str] = set()
        for ev in facts.func.events:
            if ev.type != "assign" or ev.op is not None or ev.value is None:
                continue
            if len(ev.targets) != 1 or "." in ev.targets[0]:
                continue
            name = ev.targets[0]
            if facts.k.key_names.match([name.lower()]) and unstable(facts, ev.value):
                ctx.hit("IDM201", r, ev, name)
                reported.add(name)
        for c in facts.calls:
            if c.chain_inner and c.effect is None:
                continue
            for how, v in named_key_values(facts, c):
                if v.kind == "name" and v.path in reported:
                    continue
                if unstable(facts, v):
                    ctx.hit("IDM201", r, c.event, how)
                    break
            else:
                if c.effect is not None:
                    missing = missing_key(facts, c)
                    if missing is not None:
                        ctx.hit("IDM202", r, c.event, f"{c.value.path}() without {missing}")
                elif not c.chain_inner:
                    key = forwarded_key(facts, c)
                    why = key_may_be_missing(facts, c, key) if key is not None else None
                    if why is not None:
                        ctx.hit("IDM202", r, c.event, f"{c.value.path}() with {why}")

"""URL helpers shared by the network stores: our query options, redaction, validation.

Store URLs carry passwords, and end up in error messages and logs, so
nothing here echoes a URL or a parser's complaint about one without first
blanking the password. ``urllib.parse`` raises bare ``ValueError``s for a
bad port or IPv6 address (``Port could not be cast to integer value as
'sec'``, which quotes part of a password when the password holds a ``/``),
so the URL is checked here first and each problem named by the URL part it
is in.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from idemlint.runtime.errors import ConfigurationError

OUR_OPTIONS = frozenset(
    {"table", "prefix", "max_result_bytes", "timeout", "require_durable", "wait_replicas"}
)


def strip_our_options(url: str, scheme: str | None = None) -> str:
    """The URL without the query options idemlint reads (drivers reject unknown ones).

    ``scheme`` replaces the URL's scheme (``postgres+psycopg`` -> ``postgresql``).
    """
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in OUR_OPTIONS
    ]
    return parts._replace(scheme=scheme or parts.scheme, query=urlencode(query)).geturl()


def _authority(url: str) -> tuple[str, str | None, str, str] | None:
    """``(scheme://, userinfo or None, host[:port], rest)`` split without urllib, or None.

    The userinfo ends at the *last* ``@`` before the query: a password may
    hold ``/`` or ``@`` unencoded, and this split still finds where it ends.
    """
    head, sep, tail = url.partition("://")
    if not sep:
        return None
    before_query = tail.split("?", 1)[0].split("#", 1)[0]
    at = before_query.rfind("@")
    userinfo = tail[:at] if at >= 0 else None
    after = tail[at + 1 :] if at >= 0 else tail
    end = len(after)
    for stop in "/?#":
        found = after.find(stop)
        if 0 <= found < end:
            end = found
    return head + sep, userinfo, after[:end], after[end:]


_QUERY_PASSWORD = re.compile(r"([?&](?:password|pass|passwd)=)[^&#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (works on URLs urllib cannot parse).

    Both places a password can be: the userinfo and a ``password=`` query
    parameter (libpq reads one).
    """
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    parts = _authority(url)
    if parts is None or parts[1] is None or ":" not in parts[1]:
        return url
    scheme, userinfo, hostport, rest = parts
    user = (userinfo or "").split(":", 1)[0]
    return f"{scheme}{user}:***@{hostport}{rest}"


def check_network_url(url: str) -> None:
    """Raise :class:`ConfigurationError` naming the part of a server URL that is malformed.

    A comma-separated host list (libpq's multi-host URLs) is checked host by host.
    """
    shown = redact(url)
    parts = _authority(url)
    if parts is None:
        raise ConfigurationError(f"store URL {shown!r} has no '://'")
    _, userinfo, hostports, _ = parts
    if userinfo is not None and any(c in userinfo for c in "/?#@"):
        raise ConfigurationError(
            f"the user or password of store URL {shown!r} holds one of / ? # @; "
            "percent-encode it (/ is %2F, ? %3F, # %23, @ %40)"
        )
    for hostport in hostports.split(","):
        _check_host(hostport, shown)
    if "," in hostports:
        return  # urllib reads a host list as one host: nothing more it could tell
    try:
        urlsplit(url).port  # noqa: B018 - whatever urllib still refuses, refuse clearly
    except ValueError:
        raise ConfigurationError(f"store URL {shown!r} cannot be parsed") from None


def _check_host(hostport: str, shown: str) -> None:
    """One ``host[:port]`` or ``[ipv6][:port]`` of a server URL."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise ConfigurationError(
                f"the host of store URL {shown!r} opens an IPv6 address with '[' "
                "but does not close it with ']'"
            )
        address, port = hostport[1:close], hostport[close + 1 :]
        try:
            ipaddress.IPv6Address(address.split("%", 1)[0])
        except ValueError:
            raise ConfigurationError(
                f"the host of store URL {shown!r}: {address!r} in brackets is not an IPv6 address"
            ) from None
        if port and not port.startswith(":"):
            raise ConfigurationError(
                f"the host of store URL {shown!r}: after the IPv6 address ']' only ':port' "
                f"may follow, not {port!r}"
            )
        port = port[1:]
    else:
        if "[" in hostport or "]" in hostport:
            raise ConfigurationError(
                f"the host of store URL {shown!r}: an IPv6 address goes in brackets, "
                "as in redis://[::1]:6379/0"
            )
        host, colon, port = hostport.rpartition(":")
        if not colon:
            port = ""
        elif ":" in host:
            raise ConfigurationError(
                f"the host of store URL {shown!r} looks like an IPv6 address without "
                "brackets; write it as [::1]:port"
            )
    if port and not (port.isdigit() and port.isascii() and 1 <= int(port) <= 65535):
        raise ConfigurationError(
            f"the port of store URL {shown!r} is {port!r}; use a number from 1 to 65535"
        )


__all__ = ["OUR_OPTIONS", "check_network_url", "redact", "strip_our_options"]

"""URL helpers shared by the network stores."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

OUR_OPTIONS = frozenset({"table", "prefix", "max_result_bytes"})


def strip_our_options(url: str, scheme: str | None = None) -> str:
    """The URL without the query options idemlint reads (drivers reject unknown ones).

    ``scheme`` replaces the URL's scheme (``postgres+psycopg`` -> ``postgresql``).
    """
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in OUR_OPTIONS
    ]
    return parts._replace(scheme=scheme or parts.scheme, query=urlencode(query)).geturl()

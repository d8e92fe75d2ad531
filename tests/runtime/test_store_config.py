"""Bad store configuration is refused clearly; store errors are short and say what failed.

Before: a bad port or IPv6 address in a store URL raised urllib's bare
``ValueError`` (and ``redis://:sec/ret@h`` quoted part of the password in it);
Redis accepted ``max_result_bytes=-1`` and a prefix ending in a newline (the
validating regex ended in ``$``, which matches before a final newline); bad
keys on the SQL stores were only "store failed"; and a MySQL error quoted the
whole SQL statement, values and all.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from run_names import fresh

from idemlint.runtime import ConfigurationError, Store, StoreError, open_store

SCHEMES = ("postgresql://u:secret@{}/db", "mysql://u:secret@{}/db", "redis://u:secret@{}/0")

BAD_HOSTS = [
    pytest.param("h:99999", "port", id="port-too-big"),
    pytest.param("h:0", "port", id="port-zero"),
    pytest.param("h:abc", "port", id="port-not-a-number"),
    pytest.param("h:-1", "port", id="port-negative"),
    pytest.param("h:٣٣", "port", id="port-non-ascii-digits"),
    pytest.param("[::1", "IPv6", id="ipv6-unclosed"),
    pytest.param("[::zz]:6379", "not an IPv6 address", id="ipv6-invalid"),
    pytest.param("[::1]x:6379", "after the IPv6 address", id="ipv6-junk"),
    pytest.param("::1:6379", "without brackets", id="ipv6-unbracketed"),
    pytest.param("h]:6379", "in brackets", id="stray-bracket"),
]


@pytest.mark.parametrize("template", SCHEMES, ids=("postgres", "mysql", "redis"))
@pytest.mark.parametrize(("host", "part"), BAD_HOSTS)
def test_a_malformed_url_names_the_part_and_hides_the_password(
    template: str, host: str, part: str
) -> None:
    url = template.format(host)
    with pytest.raises(ConfigurationError, match=re.escape(part)) as info:
        open_store(url)
    message = str(info.value)
    assert "secret" not in message
    assert "***" in message  # the URL is shown, redacted
    assert info.value.__cause__ is None  # not chained to urllib's message either


@pytest.mark.parametrize(
    ("url", "pieces"),
    [
        ("redis://:sec/ret@h:6379/0", ("sec", "ret")),
        ("postgresql://u:se/cret@h:5432/db", ("se/", "cret")),
        ("mysql://u:se/cret@h:3306/db", ("se/", "cret")),
        ("mysql://u:p@ss@h:3306/db", ("p@", "ss@")),
    ],
)
def test_an_unencoded_character_in_the_password_is_named_not_quoted(
    url: str, pieces: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigurationError, match="percent-encode") as info:
        open_store(url)
    assert not [piece for piece in pieces if piece in str(info.value)]


def test_a_good_ipv6_url_still_opens(pg_url: str) -> None:
    store = open_store("postgresql://postgres@[::1]:5432/test?table=t_ipv6")
    assert "[::1]" in store.url
    store.close()  # nothing was created: a store connects on first use


def test_a_postgres_host_list_is_checked_host_by_host(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    both = f"{parts.hostname}:{parts.port},{parts.hostname}:{parts.port}"
    table = fresh("t")
    store = open_store(pg_url.replace(parts.netloc.split("@")[-1], both, 1), table=table)
    try:
        assert store.get("k") is None  # libpq's multi-host URL works as before
    finally:
        store.drop_schema()
        store.close()
    with pytest.raises(ConfigurationError, match="port"):
        open_store("postgresql://u:secret@h1:5432,h2:99999/db")


def test_a_password_in_the_query_is_hidden_too() -> None:
    from idemlint.runtime.stores._url import redact

    shown = redact("postgresql://u@h/db?sslmode=require&password=secret&application_name=x")
    assert "secret" not in shown and "password=***" in shown and "sslmode=require" in shown
    with pytest.raises(ConfigurationError) as info:
        open_store("postgresql://u@h:99999/db?password=secret")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("value", [-1, 0, True, 1.5, "10"])
@pytest.mark.parametrize("url", ["sqlite://", "redis"])
def test_max_result_bytes_must_be_a_positive_whole_number(
    value: object, url: str, redis_url: str
) -> None:
    target = redis_url if url == "redis" else url
    with pytest.raises(ConfigurationError, match="max_result_bytes"):
        open_store(target, max_result_bytes=value)


@pytest.mark.parametrize("url", ["sqlite://", "redis"])
def test_max_result_bytes_from_the_url_query_is_validated(url: str, redis_url: str) -> None:
    target = redis_url if url == "redis" else url
    with pytest.raises(ConfigurationError, match="max_result_bytes"):
        open_store(f"{target}?max_result_bytes=-1")


@pytest.mark.parametrize("bad", ["idemlint\n", "a\nb", "x\r", "\n"])
def test_a_redis_prefix_with_a_newline_is_refused(bad: str, redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid key prefix"):
        open_store(redis_url, prefix=bad)


@pytest.mark.parametrize("bad", ["jobs\n", "jobs\r\n"])
def test_a_table_name_with_a_newline_is_refused_as_a_table_name(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid table name"):
        open_store("sqlite://", table=bad)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", -1),
        ("timeout", 0),
        ("timeout", "5"),
        ("connect_timeout", -2),
        ("statement_timeout", float("nan")),
    ],
)
def test_timeouts_must_be_positive_seconds(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        open_store("sqlite://", **{option: value})


def test_timeout_and_require_durable_from_the_url_query(redis_url: str, tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'q.db'}?timeout=3&require_durable=true")
    assert store.timeout == 3.0 and store.require_durable is True
    assert store.operation_timeout(600) == 3.0
    store.close()
    with pytest.raises(ConfigurationError, match="require_durable"):
        open_store("sqlite://?require_durable=maybe")


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_store_errors_name_the_operation_and_quote_no_sql(
    backend: str, request: pytest.FixtureRequest
) -> None:
    from _store_urls import backend_url, unique_store_url

    url = unique_store_url(backend_url(backend, request))
    store = open_store(url, create=False)  # no table: every call fails
    with pytest.raises(StoreError) as info:
        store.claim("order:1", "fp", lease=30, ttl=60)
    message = str(info.value)
    assert "claim of key 'order:1' failed" in message
    assert not re.search(r"\b(INSERT|SELECT|UPDATE)\b", message)
    assert len(message) < 400
    store.close()


def test_a_mysql_error_that_carries_the_statement_is_cut_short(
    mysql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyMySQL formats the statement before encoding it, so an encoding error holds the
    whole SQL (2 kB for a claim). The message keeps the error, not the statement."""
    store: Store = open_store(f"{mysql_url}?table={fresh('t')}")
    try:
        store.create_schema()
        import pymysql.cursors

        real_execute = pymysql.cursors.Cursor.execute

        def execute(self: object, query: str, args: object = None) -> object:
            if "INSERT" in query:
                statement = query + " -- " + "x" * 2000
                raise UnicodeEncodeError("utf-8", statement, 140, 141, "surrogates not allowed")
            return real_execute(self, query, args)  # type: ignore[arg-type]

        monkeypatch.setattr(pymysql.cursors.Cursor, "execute", execute)
        with pytest.raises(StoreError) as info:
            store.claim("k", "fp", lease=30, ttl=60)
        message = str(info.value)
        assert "surrogates not allowed" in message and "claim of key 'k'" in message
        assert "INSERT" not in message and len(message) < 300
    finally:
        monkeypatch.undo()
        store.drop_schema()
        store.close()


def test_a_long_driver_message_is_cut_to_one_line() -> None:
    from idemlint.runtime.stores._sql import describe_error

    text = describe_error(RuntimeError("first line\n" + "detail " * 200))
    assert "\n" not in text and len(text) <= 260 and text.endswith("…")
    assert describe_error(Exception(1146, "Table 't' doesn't exist")) == (
        "Exception: (1146) Table 't' doesn't exist"
    )

"""``upsert`` on Django models, against real SQLite, PostgreSQL and MariaDB.

Each test builds its own model class (in a private app registry, on a table
named with a uuid), creates the table with Django's schema editor and drops it
afterwards, so tests never share rows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from run_names import fresh

from idemlint.runtime.errors import IdempotencyError
from idemlint.runtime.upsert import UpsertError, upsert

django = pytest.importorskip("django")

BACKENDS = ["sqlite", "postgresql", "mysql"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


def _configure_django(sqlite_path: Path) -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DATABASES={},
            INSTALLED_APPS=[],
            USE_TZ=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
        django.setup()
    from django.db import connections

    wanted = {
        "upsert_sqlite": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(sqlite_path),
            "OPTIONS": {"timeout": 30},
        },
        "upsert_postgresql": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
        },
        "upsert_mysql": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
        },
    }
    for alias, config in wanted.items():
        if alias not in connections.settings:
            filled = connections.configure_settings({"default": {}, alias: dict(config)})
            connections.settings[alias] = filled[alias]


@pytest.fixture(scope="module")
def django_dbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import pymysql

    pymysql.install_as_MySQLdb()  # Django's MySQL backend imports MySQLdb
    _configure_django(tmp_path_factory.mktemp("upsert") / "django.sqlite3")
    yield
    from django.db import connections

    for alias in ("upsert_sqlite", "upsert_postgresql", "upsert_mysql"):
        connections[alias].close()


@pytest.fixture(params=BACKENDS)
def alias(request: pytest.FixtureRequest, django_dbs: None) -> str:
    from django.db import connections

    name = f"upsert_{request.param}"
    try:
        connections[name].ensure_connection()
    except Exception as exc:
        _unavailable(f"{request.param} is not reachable: {exc}")
    return name


def _model(kind: str = "unique") -> Any:
    """A fresh model class on its own table; ``kind`` picks the unique constraint."""
    from django.apps.registry import Apps
    from django.db import models

    tag = fresh("ups")
    meta: dict[str, Any] = {
        "app_label": "idemlint_upsert",
        "db_table": tag,
        "apps": Apps(),
    }
    ref_unique = kind == "unique"
    if kind == "together":
        meta["unique_together"] = [("order_ref", "kind")]
    if kind == "constraint":
        meta["constraints"] = [
            models.UniqueConstraint(fields=["order_ref", "kind"], name=f"u_{tag}")
        ]
    if kind == "partial":
        meta["constraints"] = [
            models.UniqueConstraint(
                fields=["order_ref"], condition=models.Q(amount__gt=0), name=f"p_{tag}"
            )
        ]
    attrs = {
        "__module__": __name__,
        "order_ref": models.CharField(max_length=40, unique=ref_unique),
        "kind": models.CharField(max_length=10, default="charge"),
        "amount": models.IntegerField(),
        "status": models.CharField(max_length=20, default="new"),
        "updated_at": models.DateTimeField(auto_now=True),
        "Meta": type("Meta", (), meta),
    }
    return type(f"Payment{tag}", (models.Model,), attrs)


@pytest.fixture
def table(alias: str) -> Iterator[Any]:
    from django.db import connections

    model = _model()
    with connections[alias].schema_editor() as editor:
        editor.create_model(model)
    yield model
    with connections[alias].schema_editor() as editor:
        editor.delete_model(model)


def _rows(model: Any, alias: str) -> list[tuple[Any, ...]]:
    return list(
        model.objects.using(alias)
        .order_by("order_ref")
        .values_list("order_ref", "amount", "status")
    )


def test_same_upsert_twice_leaves_one_row(alias: str, table: Any) -> None:
    first = upsert(table, {"order_ref": "A-1", "amount": 100}, unique_by=["order_ref"], using=alias)
    second = upsert(
        table, {"order_ref": "A-1", "amount": 250}, unique_by=["order_ref"], using=alias
    )

    assert _rows(table, alias) == [("A-1", 250, "new")]
    assert first.pk == second.pk == table.objects.using(alias).get().pk
    assert second.rows[0].key == {"order_ref": "A-1"}
    if alias == "upsert_postgresql":  # PostgreSQL tells inserted from updated
        assert (first.created, second.created) == (True, False)
    else:
        assert second.created in (False, None)


def test_update_leaves_fields_the_call_did_not_give(alias: str, table: Any) -> None:
    obj = table.objects.using(alias).create(order_ref="A-2", amount=1, status="paid")
    before = obj.updated_at
    upsert(table, {"order_ref": "A-2", "amount": 7}, unique_by=["order_ref"], using=alias)

    obj.refresh_from_db(using=alias)
    assert (obj.amount, obj.status) == (7, "paid")  # status kept its value, not the default
    assert obj.updated_at >= before  # auto_now fields are refreshed on update


def test_batch_mixes_new_and_existing_rows(alias: str, table: Any) -> None:
    upsert(table, [{"order_ref": "B-1", "amount": 1}], unique_by=["order_ref"], using=alias)
    result = upsert(
        table,
        [{"order_ref": f"B-{i}", "amount": i * 10} for i in range(1, 5)],
        unique_by=["order_ref"],
        using=alias,
    )

    assert _rows(table, alias) == [(f"B-{i}", i * 10, "new") for i in range(1, 5)]
    assert len(result.rows) == 4
    assert set(result.pks) == set(table.objects.using(alias).values_list("pk", flat=True))
    assert result.row_for(order_ref="B-3").pk == table.objects.using(alias).get(order_ref="B-3").pk
    if alias == "upsert_postgresql":
        assert result.inserted == 3
        assert result.row_for(order_ref="B-1").created is False


def test_empty_update_is_do_nothing(alias: str, table: Any) -> None:
    upsert(table, {"order_ref": "C-1", "amount": 5}, unique_by=["order_ref"], using=alias)
    result = upsert(
        table,
        [{"order_ref": "C-1", "amount": 999}, {"order_ref": "C-2", "amount": 6}],
        unique_by=["order_ref"],
        update=[],
        using=alias,
    )

    assert _rows(table, alias) == [("C-1", 5, "new"), ("C-2", 6, "new")]
    assert len(result.rows) == 2
    if alias != "upsert_mysql":  # RETURNING names the rows this call inserted
        assert result.row_for(order_ref="C-1").created is False
        assert result.row_for(order_ref="C-2").created is True


def test_explicit_update_list_limits_what_changes(alias: str, table: Any) -> None:
    upsert(
        table,
        {"order_ref": "D-1", "amount": 5, "status": "new"},
        unique_by=["order_ref"],
        using=alias,
    )
    upsert(
        table,
        {"order_ref": "D-1", "amount": 6, "status": "paid"},
        unique_by=["order_ref"],
        update=["status"],
        using=alias,
    )
    assert _rows(table, alias) == [("D-1", 5, "paid")]


def test_concurrent_upserts_from_threads_leave_one_row(alias: str, table: Any) -> None:
    from django.db import connections

    threads = 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            upsert(table, {"order_ref": "E-1", "amount": n}, unique_by=["order_ref"], using=alias)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connections[alias].close()  # Django connections are per thread

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert errors == []
    rows = _rows(table, alias)
    assert len(rows) == 1
    assert rows[0][1] in range(threads)


def test_unique_by_without_a_constraint_is_refused_before_any_write(alias: str, table: Any) -> None:
    with pytest.raises(UpsertError) as info:
        upsert(table, {"order_ref": "F-1", "amount": 1}, unique_by=["amount"], using=alias)

    message = str(info.value)
    assert table._meta.label in message
    assert "amount" in message
    assert "(order_ref)" in message and "(id)" in message  # the sets that do exist
    assert isinstance(info.value, IdempotencyError)
    assert _rows(table, alias) == []


def test_superset_of_a_unique_set_is_refused(alias: str, table: Any) -> None:
    with pytest.raises(UpsertError, match="exactly"):
        upsert(
            table, {"order_ref": "F-2", "amount": 1}, unique_by=["order_ref", "amount"], using=alias
        )


def test_null_key_and_repeated_key_are_refused(alias: str, table: Any) -> None:
    with pytest.raises(UpsertError, match="None"):
        upsert(table, {"order_ref": None, "amount": 1}, unique_by=["order_ref"], using=alias)
    with pytest.raises(UpsertError, match="same key"):
        upsert(
            table,
            [{"order_ref": "G", "amount": 1}, {"order_ref": "G", "amount": 2}],
            unique_by=["order_ref"],
            using=alias,
        )
    with pytest.raises(UpsertError, match="no value for unique_by"):
        upsert(table, {"amount": 1}, unique_by=["order_ref"], using=alias)
    with pytest.raises(UpsertError, match="no field 'nope'"):
        upsert(table, {"order_ref": "G", "nope": 1}, unique_by=["order_ref"], using=alias)
    assert _rows(table, alias) == []


@pytest.mark.parametrize("kind", ["together", "constraint"])
def test_composite_unique_sets_are_accepted(alias: str, kind: str) -> None:
    from django.db import connections

    model = _model(kind)
    with connections[alias].schema_editor() as editor:
        editor.create_model(model)
    try:
        for amount in (1, 2):
            upsert(
                model,
                [
                    {"order_ref": "H-1", "kind": "charge", "amount": amount},
                    {"order_ref": "H-1", "kind": "refund", "amount": -amount},
                ],
                unique_by=["order_ref", "kind"],
                using=alias,
            )
        got = sorted(model.objects.using(alias).values_list("order_ref", "kind", "amount"))
        assert got == [("H-1", "charge", 2), ("H-1", "refund", -2)]
    finally:
        with connections[alias].schema_editor() as editor:
            editor.delete_model(model)


def test_conditional_unique_constraint_does_not_count(django_dbs: None) -> None:
    model = _model("partial")
    with pytest.raises(UpsertError, match="no unique constraint"):
        upsert(
            model, {"order_ref": "I", "amount": 1}, unique_by=["order_ref"], using="upsert_sqlite"
        )


def test_upsert_joins_the_callers_transaction(alias: str, table: Any) -> None:
    from django.db import transaction

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic(using=alias):
        upsert(table, {"order_ref": "J-1", "amount": 1}, unique_by=["order_ref"], using=alias)
        raise Boom

    assert _rows(table, alias) == []  # rolled back with the caller's transaction

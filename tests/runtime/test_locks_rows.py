"""``locked_row``: lock, re-check, act once - Django and SQLAlchemy on SQLite,
PostgreSQL and MariaDB.

Eight threads race to "apply" the same order; each sleeps between its check
and its write to widen the race window. With the lock exactly one applies.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from run_names import fresh

from idemlint.runtime.locks import LockError, LockTimeout, locked_row, pg_advisory_xact_lock

django = pytest.importorskip("django")
sa = pytest.importorskip("sqlalchemy")
from sqlalchemy import Boolean, Integer, String  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

BACKENDS = ["sqlite", "postgresql", "mysql"]
THREADS = 8


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"service required under CI=true: {reason}")
    pytest.skip(reason)


def _race(apply_once: Callable[[], bool]) -> list[bool]:
    """Run ``apply_once`` in THREADS threads at once; return what each reported."""
    barrier = threading.Barrier(THREADS)
    results: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(apply_once())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    return results


# --------------------------------------------------------------------- Django


@pytest.fixture(scope="module")
def django_dbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import pymysql

    pymysql.install_as_MySQLdb()
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

    path: Path = tmp_path_factory.mktemp("rowlock") / "db.sqlite3"
    wanted = {
        "rowlock_sqlite": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": {"timeout": 30},
        },
        "rowlock_postgresql": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
        },
        "rowlock_mysql": {
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
    yield
    for alias in wanted:
        connections[alias].close()


@pytest.fixture(params=BACKENDS)
def dj_order(request: pytest.FixtureRequest, django_dbs: None) -> Iterator[tuple[Any, str]]:
    from django.apps.registry import Apps
    from django.db import connections, models

    alias = f"rowlock_{request.param}"
    try:
        connections[alias].ensure_connection()
    except Exception as exc:
        _unavailable(f"{request.param} is not reachable: {exc}")
    tag = fresh("rl")
    meta = type("Meta", (), {"app_label": "rowlock", "db_table": tag, "apps": Apps()})
    model = type(
        f"Order{tag}",
        (models.Model,),
        {
            "__module__": __name__,
            "inventory_updated": models.BooleanField(default=False),
            "applied": models.IntegerField(default=0),
            "Meta": meta,
        },
    )
    with connections[alias].schema_editor() as editor:
        editor.create_model(model)
    model.objects.using(alias).create(pk=1)
    yield model, alias
    with connections[alias].schema_editor() as editor:
        editor.delete_model(model)


def test_django_lock_then_recheck_applies_once(dj_order: tuple[Any, str]) -> None:
    from django.db import connections

    model, alias = dj_order

    def apply_once() -> bool:
        try:
            with locked_row(model.objects.using(alias), pk=1) as order:
                if order.inventory_updated:
                    return False
                time.sleep(0.05)  # the side effect
                order.applied += 1
                order.inventory_updated = True
                order.save(update_fields=["applied", "inventory_updated"], using=alias)
                return True
        finally:
            connections[alias].close()

    assert sorted(_race(apply_once)) == [False] * (THREADS - 1) + [True]
    assert model.objects.using(alias).get(pk=1).applied == 1


@pytest.mark.parametrize("dj_order", ["sqlite"], indirect=True)
def test_django_accepts_model_manager_and_queryset(dj_order: tuple[Any, str]) -> None:
    model, alias = dj_order
    # A model class uses its default manager's database; the sqlite alias is
    # not the default one, so route through a queryset there.
    with locked_row(model.objects.db_manager(alias), pk=1) as order:
        assert order.pk == 1
    with locked_row(model.objects.using(alias).filter(inventory_updated=False), pk=1) as order:
        assert order.pk == 1
    with pytest.raises(model.DoesNotExist), locked_row(model.objects.using(alias), pk=99):
        pass
    with pytest.raises(LockError, match="needs a lookup"), locked_row(model.objects.using(alias)):
        pass


@pytest.mark.parametrize("dj_order", ["postgresql", "mysql"], indirect=True)
def test_django_nowait_raises_lock_timeout(dj_order: tuple[Any, str]) -> None:
    """SQLite has no NOWAIT (its write lock waits for the busy timeout)."""
    from django.db import connections

    model, alias = dj_order
    held = threading.Event()
    done = threading.Event()

    def holder() -> None:
        try:
            with locked_row(model.objects.using(alias), pk=1):
                held.set()
                done.wait(10)
        finally:
            connections[alias].close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(LockTimeout), locked_row(model.objects.using(alias), nowait=True, pk=1):
            pass
    finally:
        done.set()
        thread.join()
    with locked_row(model.objects.using(alias), nowait=True, pk=1) as order:
        assert order.pk == 1


@pytest.mark.parametrize("dj_order", ["postgresql"], indirect=True)
def test_django_connection_works_for_advisory_locks(dj_order: tuple[Any, str]) -> None:
    from django.db import connections, transaction

    _, alias = dj_order
    with transaction.atomic(using=alias):
        pg_advisory_xact_lock(alias, f"dj:{uuid.uuid4()}")
    with pytest.raises(LockError, match="autocommit"):
        pg_advisory_xact_lock(connections[alias], f"dj:{uuid.uuid4()}")


# ----------------------------------------------------------------- SQLAlchemy


@pytest.fixture(params=BACKENDS)
def sa_order(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'rows.sqlite3'}",
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
    }[request.param]
    options: dict[str, Any] = {"connect_args": {"timeout": 30}} if request.param == "sqlite" else {}
    engine = sa.create_engine(url, pool_size=THREADS + 2, **options)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        _unavailable(f"{request.param} is not reachable: {exc}")

    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = fresh("rlsa")
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        ref: Mapped[str] = mapped_column(String(20))
        inventory_updated: Mapped[bool] = mapped_column(Boolean, default=False)
        applied: Mapped[int] = mapped_column(Integer, default=0)

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Order(id=1, ref="o-1"))
        session.commit()
    yield Order, engine
    Base.metadata.drop_all(engine)
    engine.dispose()


def test_sqlalchemy_lock_then_recheck_applies_once(sa_order: tuple[Any, Any]) -> None:
    model, engine = sa_order

    def apply_once() -> bool:
        with Session(engine) as session:
            with locked_row(model, session=session, ref="o-1") as order:
                if order.inventory_updated:
                    return False
                time.sleep(0.05)
                order.applied += 1
                order.inventory_updated = True
            return True  # the helper began the transaction, so it committed it

    assert sorted(_race(apply_once)) == [False] * (THREADS - 1) + [True]
    with Session(engine) as session:
        assert session.get(model, 1).applied == 1


def test_sqlalchemy_rereads_a_stale_cached_row(sa_order: tuple[Any, Any]) -> None:
    model, engine = sa_order
    with Session(engine) as mine:
        cached = mine.get(model, 1)
        assert cached.inventory_updated is False
        with Session(engine) as theirs:
            theirs.get(model, 1).inventory_updated = True
            theirs.commit()
        with locked_row(model, session=mine, id=1) as order:
            assert order is cached and order.inventory_updated is True  # fresh, not cached
        mine.commit()  # the session's transaction was open: the caller ends it


def test_sqlalchemy_nowait_and_misuse(sa_order: tuple[Any, Any]) -> None:
    model, engine = sa_order
    with pytest.raises(LockError, match="mapped class"), locked_row(model, id=1):
        pass
    if engine.dialect.name == "sqlite":
        return
    with Session(engine) as holder, Session(engine) as other:
        with (
            locked_row(model, session=holder, id=1),
            pytest.raises(LockTimeout),
            locked_row(model, session=other, nowait=True, id=1),
        ):
            pass
        with locked_row(model, session=other, nowait=True, id=1) as order:
            assert order.id == 1

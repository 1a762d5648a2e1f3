import os
import secrets

import pytest

from tests.exposure.world import build_world

PG_ADMIN = os.environ.get("FUNDTRAIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    return build_world(tmp_path_factory)


def _pg_database():
    """A fresh database of our own on the local PostgreSQL; None (with the reason) when none is reachable."""
    try:
        import psycopg
    except ImportError as e:
        return None, f"psycopg is not installed: {e}"
    name = f"fundtrail_kyt_test_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as c:
            c.execute(f"CREATE DATABASE {name}")
    except Exception as e:  # noqa: BLE001
        return None, f"no PostgreSQL reachable at {PG_ADMIN}: {str(e).strip()[:120]}"
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def _drop(name):
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def service_db(kind, tmp_path):
    """The service database of one test: an SQLite file, or a database of its own on PostgreSQL (dropped
    afterwards; the test skips with the reason when no PostgreSQL is reachable)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}"
        return
    url, name = _pg_database()
    if url is None:
        pytest.skip(name)
    try:
        yield url
    finally:
        _drop(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """The service database: an SQLite file, or a database of its own on PostgreSQL."""
    yield from service_db(request.param, tmp_path)

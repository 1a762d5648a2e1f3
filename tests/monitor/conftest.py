import pytest

from tests.service.conftest import _drop, _pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    """The service database (migrations applied): an SQLite file, or a PostgreSQL database of its own."""
    from fundtrail.service.store import open_store

    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'service.db'}", tmp_path)
        yield s
        s.close()
        return
    url, name = _pg_database()
    if url is None:
        pytest.skip(name)
    s = open_store(url, tmp_path)
    try:
        yield s
    finally:
        s.close()
        _drop(name)

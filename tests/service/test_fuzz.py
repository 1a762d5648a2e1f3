"""Schemathesis fuzzing of every endpoint from the OpenAPI document: no input gives a 500.

Runs against the application in process (ASGI transport) with an admin key (so every route's handler is
reached, not only the auth check) and, in a second pass, without a key. A bounded number of examples per
operation in the default run; ``FUNDTRAIL_FUZZ_EXAMPLES`` raises it (the slow run uses 200).
"""

from __future__ import annotations

import os
import warnings

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from fundtrail.service.app import create_app
from fundtrail.service.auth import create_key
from fundtrail.service.runtime import Config
from fundtrail.service.store import open_store

warnings.filterwarnings("ignore", category=DeprecationWarning)
EXAMPLES = int(os.environ.get("FUNDTRAIL_FUZZ_EXAMPLES", "10"))
_STATE: dict = {}


def _app(world):
    if "app" not in _STATE:
        db = f"sqlite:///{world.home / 'service' / 'fuzz.db'}"
        store = open_store(db, world.home)
        key = create_key(store, f"fuzz{os.getpid()}", "admin", rate_limit=1e9)
        app = create_app(Config(home=world.home, db=db, poll=3600), start=False)
        app.state.runtime.sync()
        _STATE.update(app=app, key=key)
    return _STATE["app"]


@pytest.fixture(scope="module")
def fuzz_app(world):
    return _app(world)


def _schema():
    """The document only (the operations are called on the live app of the fixture)."""
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    app = create_app(Config(home=tmp, db=f"sqlite:///{tmp / 's.db'}"), start=False)
    return schemathesis.openapi.from_dict(app.openapi())


schema = _schema()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, fuzz_app):
    from fastapi.testclient import TestClient

    client = _STATE.setdefault("client", TestClient(fuzz_app))
    for headers in ({"Authorization": f"Bearer {_STATE['key']}"}, {}):
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        kwargs.pop("base_url", None)
        method = kwargs.pop("method")
        url = kwargs.pop("url")
        r = client.request(method, url, **{k: v for k, v in kwargs.items() if k in ("headers", "params", "json",
                                                                                      "content", "data")})
        assert r.status_code < 500, (method, url, r.status_code, r.text[:300])

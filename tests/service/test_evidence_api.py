"""Evidence exports over the API (in process; SQLite and PostgreSQL): export, download, verify the download
with ``fundtrail.evidence.verify``; 404 for an unknown incident or export, 403 for a viewer, 422 naming the
field."""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile

import pytest

from fundtrail.evidence.verify import verify_bundle
from fundtrail.service.app import create_app
from fundtrail.service.auth import create_key
from fundtrail.service.runtime import Config
from fundtrail.service.store import open_store
from fundtrail.store import Workspace

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def api(world, db_url):
    from fastapi.testclient import TestClient

    store = open_store(db_url, world.home)
    keys = {r: create_key(store, f"ev-{r}", r) for r in ("admin", "investigator", "viewer")}
    store.close()
    app = create_app(Config(home=world.home, db=db_url, poll=3600), start=False)
    with TestClient(app) as c:
        c.h = lambda role: {"Authorization": f"Bearer {keys[role]}"}
        yield c
    app.state.runtime.store.close()


def test_export_download_verify(api, world, tmp_path):
    h = api.h("investigator")
    r = api.post("/v1/incidents/sim-theft/evidence", json={"models": ["haircut", "poison"], "max_hops": 12,
                                                          "freeze_requests": True}, headers=h)
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["incident"] == "sim-theft" and meta["created_by"] == "ev-investigator"
    assert meta["id"].startswith("sim-theft-") and meta["download"] == f"/v1/evidence/{meta['id']}"
    assert {c["chain"] for c in meta["pins"]["chains"]} == {"regtest", "simeth"}
    assert all(c["height"] >= 0 and c["hash"] for c in meta["pins"]["chains"])
    assert meta["pins"]["tags_as_of"] and meta["parameters"]["primary"] == "haircut"
    # the folder is the service's, named by incident and time
    assert (world.home / "service" / "evidence" / meta["id"] / "bundle.zip").is_file()

    d = api.get(meta["download"], headers=h)
    assert d.status_code == 200 and d.headers["content-type"] == "application/zip"
    assert hashlib.sha256(d.content).hexdigest() == meta["sha256"] and len(d.content) == meta["bytes"]
    zpath = tmp_path / "downloaded.zip"
    zpath.write_bytes(d.content)
    v = verify_bundle(zpath, Workspace(world.home))
    assert v.ok, v.summary()
    manifest = json.loads(zipfile.ZipFile(zpath).read("manifest.json"))
    assert sorted(manifest["parameters"]["models"]) == ["haircut", "poison"] and manifest["parameters"]["max_hops"] == 12
    assert [(c["chain"], c["height"], c["hash"]) for c in manifest["chains"]] == \
        [(c["chain"], c["height"], c["hash"]) for c in meta["pins"]["chains"]]

    fr = meta["freeze_requests"]
    assert fr and fr["packets"] >= 1
    p = api.get(fr["download"], headers=h)
    assert p.status_code == 200 and hashlib.sha256(p.content).hexdigest() == fr["sha256"]
    names = zipfile.ZipFile(io.BytesIO(p.content)).namelist()
    assert "freeze-requests/index.json" in names and any(n.endswith("/packet.json") for n in names)
    index = json.loads(zipfile.ZipFile(io.BytesIO(p.content)).read("freeze-requests/index.json"))
    assert index["bundle"]["sha256"] == meta["sha256"] and len(index["packets"]) == fr["packets"]

    # audited like every request
    rows = api.get("/v1/audit?limit=1000", headers=api.h("admin")).json()["audit"]
    assert any(r["endpoint"] == "/v1/incidents/{name}/evidence" and r["status"] == 201
               and r["key_name"] == "ev-investigator" for r in rows)


def test_refusals(api, world):
    h = api.h("investigator")
    r = api.post("/v1/incidents/no-such-theft/evidence", json={}, headers=h)
    assert r.status_code == 404 and "no-such-theft" in r.json()["detail"]
    assert str(world.home) not in r.json()["detail"]
    assert api.post("/v1/incidents/sim-theft/evidence", json={}, headers=api.h("viewer")).status_code == 403
    assert api.post("/v1/incidents/sim-theft/evidence", json={}).status_code == 401
    for body, field in (({"max_hops": 0}, "max_hops"), ({"models": ["nope"]}, "models[0]"),
                        ({"models": []}, "models"), ({"models": ["poison"], "primary": "fifo"}, "primary"),
                        ({"out": "/tmp/x.zip"}, "out"), ({"freeze_requests": "maybe"}, "freeze_requests")):
        r = api.post("/v1/incidents/sim-theft/evidence", json=body, headers=h)
        assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
    assert api.get("/v1/evidence/sim-theft-20260101t000000z-00000000", headers=h).status_code == 404
    assert api.get("/v1/evidence/..%2F..%2Fetc", headers=h).status_code in (404, 422)
    assert api.get("/v1/evidence/sim-theft-20260101t000000z-00000000", headers=api.h("viewer")).status_code == 403


def test_raw_transactions_from_the_followed_sources(world, tmp_path):
    """A service that follows block files and an EVM node puts the raw transactions into its bundles."""
    from fastapi.testclient import TestClient

    sims = sorted(p for p in world.home.parent.glob("kyt-world*") if (p / "truth.json").is_file())
    if not sims:
        pytest.skip("the simulated chain data of the test world is not beside its workspace")
    sim = sims[0]
    sources = (f"blocks:regtest={sim / 'bitcoin' / 'blocks'}", f"evm:simeth={(sim / 'evm' / 'rpc.jsonl').as_uri()}")
    db = f"sqlite:///{tmp_path / 'service.db'}"
    store = open_store(db, world.home)
    key = create_key(store, "ev-raw", "investigator")
    store.close()
    app = create_app(Config(home=world.home, db=db, poll=3600, sources=sources), start=False)
    with TestClient(app) as c:
        h = {"Authorization": f"Bearer {key}"}
        meta = c.post("/v1/incidents/sim-theft/evidence", json={"models": ["haircut"]}, headers=h).json()
        raw = meta["raw_transactions"]
        assert raw["regtest"]["included"] > 0 and raw["simeth"]["included"] > 0, raw
        z = tmp_path / "b.zip"
        z.write_bytes(c.get(meta["download"], headers=h).content)
    app.state.runtime.store.close()
    v = verify_bundle(z, Workspace(world.home))
    assert v.ok, v.summary()

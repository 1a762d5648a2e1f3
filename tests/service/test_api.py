"""The API in process (the same tests on SQLite and on PostgreSQL): cases, status codes, replay, policy,
transfers, audit."""

from __future__ import annotations

import json
import warnings

import pytest

from fundtrail.service.app import create_app
from fundtrail.service.auth import create_key
from fundtrail.service.runtime import Config
from fundtrail.service.store import open_store

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def api(world, db_url):
    from fastapi.testclient import TestClient

    store = open_store(db_url, world.home)
    keys = {r: create_key(store, r, r) for r in ("admin", "investigator", "screener", "viewer")}
    keys["slow"] = create_key(store, "slow", "screener", rate_limit=1)
    store.close()
    app = create_app(Config(home=world.home, db=db_url, max_body=64 * 1024, poll=60))
    with TestClient(app) as c:
        c.keys = keys
        c.h = lambda role: {"Authorization": f"Bearer {keys[role]}"}
        yield c
    app.state.runtime.store.close()


def test_cases(api, world):
    h = api.h("screener")
    for chain, a in world.cashout + world.dormant:
        r = api.post("/v1/screen/address", json={"chain": chain, "address": a}, headers=h)
        assert r.status_code == 200 and r.json()["decision"] == "block", a
    r = api.post("/v1/screen/address", json={"chain": world.deposit_2hops[0], "address": world.deposit_2hops[1]},
                 headers=h).json()
    assert r["decision"] in ("review", "block")
    assert any(e["kind"] == "indirect" and e["hops"] == 2 and e["category"] == "stolen_funds" for e in r["exposure"])
    r = api.post("/v1/screen/address", json={"chain": world.user[0], "address": world.user[1]}, headers=h).json()
    assert r["decision"] == "allow"
    chain, a = world.later_sanctioned
    t = {"chain": chain, "direction": "sent", "address": a, "asset": "BTC", "amount": "0.5",
         "time": "2025-01-01T00:00:00Z"}
    r = api.post("/v1/screen/transfer", json=t, headers=h).json()
    assert r["decision"] == "allow" and r["entity"]["sanctioned"] is False and r["transfer_id"]
    r = api.post("/v1/transfers", json=t | {"time": "2031-01-01"}, headers=h).json()
    assert r["decision"] == "block"
    lst = api.get("/v1/transfers", headers=api.h("viewer")).json()["transfers"]
    assert [x["decision"] for x in lst][-2:] == ["allow", "block"]


def test_status_codes(api, world):
    body = {"chain": world.user[0], "address": world.user[1]}
    assert api.post("/v1/screen/address", json=body).status_code == 401
    assert api.post("/v1/screen/address", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.post("/v1/screen/address", json=body, headers=api.h("viewer")).status_code == 403
    assert api.get("/v1/audit", headers=api.h("investigator")).status_code == 403
    r = api.post("/v1/screen/address", json={"chain": world.user[0], "address": "not-an-address"},
                 headers=api.h("screener"))
    assert r.status_code == 422 and r.json()["field"] == "address"
    r = api.post("/v1/screen/address", json={"chain": "nochain", "address": "x"}, headers=api.h("screener"))
    assert r.status_code == 422 and r.json()["field"] == "chain"
    r = api.post("/v1/screen/batch", json={"items": [body, {"chain": world.user[0]}]}, headers=api.h("screener"))
    assert r.status_code == 422 and r.json()["field"] == "items[1].address"
    r = api.post("/v1/screen/batch", json={"items": [body] * 1001}, headers=api.h("screener"))
    assert r.status_code in (413, 422)
    r = api.post("/v1/screen/address", content=b"{" + b" " * 70000 + b"}", headers=api.h("screener"))
    assert r.status_code == 413
    codes = [api.post("/v1/screen/address", json=body, headers=api.h("slow")).status_code for _ in range(3)]
    assert codes[0] == 200 and 429 in codes
    r = api.post("/v1/screen/address", json=body, headers=api.h("slow"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert api.get("/v1/verdicts/nope", headers=api.h("viewer")).status_code == 404


def test_batch_replay_and_lookups(api, world):
    items = [{"chain": c, "address": a} for c, a in world.cashout] + [{"chain": world.user[0],
                                                                        "address": world.user[1]}]
    r = api.post("/v1/screen/batch", json={"items": items}, headers=api.h("screener"))
    vs = r.json()["verdicts"]
    assert [v["decision"] for v in vs] == ["block"] * len(world.cashout) + ["allow"]
    vid = vs[0]["verdict_id"]
    assert api.get(f"/v1/verdicts/{vid}", headers=api.h("viewer")).json() == vs[0]
    rp = api.get(f"/v1/verdicts/{vid}?replay=true", headers=api.h("viewer")).json()
    assert rp["matches"] is True and rp["differences"] == []
    # a stored verdict that no longer matches its data is reported as such
    store = api.app.state.runtime.store
    forged = dict(vs[-1], decision="block")
    store.execute("UPDATE verdicts SET body = ? WHERE verdict_id = ?", (json.dumps(forged), forged["verdict_id"]))
    rp = api.get(f"/v1/verdicts/{forged['verdict_id']}?replay=true", headers=api.h("viewer")).json()
    assert rp["matches"] is False and "decision" in rp["differences"] and rp["replayed"]["decision"] == "allow"
    a = api.get(f"/v1/addresses/{world.deposit_2hops[0]}/{world.deposit_2hops[1]}", headers=api.h("viewer")).json()
    assert a["entity"] and a["cluster_id"] is not None and a["exposure"]
    c = api.get(f"/v1/clusters/{world.deposit_2hops[0]}/{a['cluster_id']}", headers=api.h("viewer")).json()
    assert c["size"] >= 1
    e = api.get(f"/v1/entities/{a['entity']['name']}", headers=api.h("viewer")).json()
    assert e["name"] == a["entity"]["name"] and e["chains"]
    assert api.get("/v1/clusters/simeth/999999999", headers=api.h("viewer")).status_code == 404


def test_policy_versions_and_replay_under_old_policy(api, world):
    h = api.h("admin")
    p0 = api.get("/v1/policy", headers=h).json()
    v_before = api.post("/v1/screen/address", json={"chain": world.user[0], "address": world.user[1]},
                        headers=h).json()
    strict = "id: strict\nrules:\n  - {id: ALL, text: everything is reviewed, decision: review, applies_to: entity}\n"
    r = api.put("/v1/policy", json={"policy": strict}, headers=h)
    assert r.status_code == 200 and r.json()["version"] == (p0["version"] or 0) + 1
    bad = api.put("/v1/policy", json={"policy": "rules: [{id: X, text: t, decision: nope}]"}, headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "rules[0].decision"
    assert api.get("/v1/policy", headers=h).json()["id"] == "strict"
    # an old verdict replays under its own policy version
    rp = api.get(f"/v1/verdicts/{v_before['verdict_id']}?replay=true", headers=h).json()
    assert rp["matches"] is True
    assert len(api.get("/v1/policy", headers=h).json()["versions"]) >= 1


def test_audit_log(api, world):
    api.post("/v1/screen/address", json={"chain": world.user[0], "address": world.user[1]}, headers=api.h("screener"))
    api.post("/v1/screen/address", json={"chain": world.user[0], "address": world.user[1]})
    rows = api.get("/v1/audit?limit=1000", headers=api.h("admin")).json()["audit"]
    ok = [r for r in rows if r["endpoint"] == "/v1/screen/address" and r["status"] == 200]
    assert ok and ok[-1]["key_name"] == "screener" and ok[-1]["role"] == "screener" and ok[-1]["decision"] == "allow"
    assert any(r["status"] == 401 and r["key_name"] is None for r in rows)
    assert all(len(r["params_hash"]) == 64 for r in rows)
    store = api.app.state.runtime.store
    with pytest.raises(Exception, match="append-only"):
        store.execute("DELETE FROM audit")
    with pytest.raises(Exception, match="append-only"):
        store.execute("UPDATE audit SET status = 200")


def test_system_endpoints(api):
    assert api.get("/v1/health").json() == {"status": "ok"}
    assert api.get("/v1/ready").json()["ready"] is True
    spec = api.get("/openapi.json").json()
    for p in ("/v1/screen/address", "/v1/screen/batch", "/v1/screen/transfer", "/v1/verdicts/{verdict_id}",
              "/v1/addresses/{chain}/{address}", "/v1/clusters/{chain}/{cluster_id}", "/v1/entities/{name}",
              "/v1/policy", "/v1/transfers", "/v1/audit", "/v1/health", "/v1/ready", "/metrics"):
        assert p in spec["paths"], p
    docs = api.get("/docs").text
    assert "/v1/screen/address" in docs and "<script" not in docs and "http" not in docs.split("/openapi.json")[0][-0:]
    m = api.get("/metrics").text
    assert "fundtrail_http_requests_total" in m and "fundtrail_index_age_seconds" in m
    assert "fundtrail_http_request_duration_seconds_bucket" in m

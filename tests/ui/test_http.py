"""The UI's sign-in, sessions, CSRF, lockout and roles over real HTTP (``fundtrail serve`` on a loopback port)."""

from __future__ import annotations

import re
import statistics
import time

import httpx

from tests.ui.biggraph import big_graph, graph_parts
from tests.ui.conftest import cli, peel_flow, thief
from tests.ui.session import login_form, sign_in


def test_pages_and_api_need_a_user(ui_server):
    c = httpx.Client(base_url=ui_server.url, timeout=30)
    r = c.get("/ui/cases/case_00000000")
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/cases/case_00000000"
    assert c.get("/v1/cases").status_code == 401
    forged = httpx.Client(base_url=ui_server.url, timeout=30, cookies={"ft_session": "forged"})
    assert forged.get("/v1/cases").status_code == 401


def test_cookie_flags_and_security_headers(ui_server):
    c = httpx.Client(base_url=ui_server.url, timeout=30)
    tok = login_form(c)
    r = c.post("/ui/login", data={"csrf": tok, "username": "alice", "password": ui_server.passwords["alice"]})
    assert r.status_code == 303
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("ft_session="))
    flags = {f.strip().split("=")[0].lower(): f.strip() for f in cookie.split(";")}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict" and flags["path"] == "Path=/"
    assert len(cookie.split(";")[0]) > 40  # 256 random bits
    page = c.get("/ui/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


def test_sign_in_form_refuses_a_missing_or_foreign_csrf_token(ui_server):
    c = httpx.Client(base_url=ui_server.url, timeout=30)
    pw = ui_server.passwords["alice"]
    assert c.post("/ui/login", data={"username": "alice", "password": pw}).status_code == 403
    login_form(c)  # sets the cookie
    r = c.post("/ui/login", data={"csrf": "not-the-cookie", "username": "alice", "password": pw})
    assert r.status_code == 403 and "ft_session" not in r.headers.get("set-cookie", "")


def test_mutations_need_the_sessions_csrf_token(ui_server):
    c, csrf = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    body = {"incident": "sim-theft"}
    assert c.post("/v1/cases", json=body).status_code == 403
    assert c.post("/v1/cases", json=body, headers={"X-CSRF-Token": "x" * len(csrf)}).status_code == 403
    r = c.post("/v1/cases", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    cid = r.json()["case_id"]
    assert c.patch(f"/v1/cases/{cid}", json={"notes": "n"}).status_code == 403
    assert c.patch(f"/v1/cases/{cid}", json={"notes": "n"}, headers={"X-CSRF-Token": csrf}).json()["notes"] == "n"
    # UI forms carry it as a field
    assert c.post("/ui/cases", data={"incident": "sim-theft"}).status_code == 403
    assert c.post("/ui/logout", data={}).status_code == 403
    # reading needs no token
    assert c.get(f"/v1/cases/{cid}").status_code == 200


def test_lockout_after_repeated_failures(ui_server):
    home = ui_server.home
    pw = cli("users", "create", "lockme", "--role", "viewer", home=home)
    c = httpx.Client(base_url=ui_server.url, timeout=30)
    for _ in range(4):
        r = c.post("/ui/login", data={"csrf": login_form(c), "username": "lockme", "password": "wrong"})
        assert r.status_code == 401 and "wrong user name or password" in r.text
    r = c.post("/ui/login", data={"csrf": login_form(c), "username": "lockme", "password": "wrong"})
    assert r.status_code == 401 and "locked until" in r.text
    # the right password is refused while locked
    r = c.post("/ui/login", data={"csrf": login_form(c), "username": "lockme", "password": pw})
    assert r.status_code == 401 and "locked until" in r.text
    # an unknown user gets the same answer as a wrong password
    r = c.post("/ui/login", data={"csrf": login_form(c), "username": "nobody", "password": "x"})
    assert r.status_code == 401 and "wrong user name or password" in r.text
    pw2 = cli("users", "reset", "lockme", home=home)
    sign_in(ui_server.url, "lockme", pw2)


def test_roles(ui_server):
    v, vcsrf = sign_in(ui_server.url, "victor", ui_server.passwords["victor"])
    chain, addr = thief(ui_server.truth)
    h = {"X-CSRF-Token": vcsrf}
    assert v.post("/v1/cases", json={"incident": "sim-theft"}, headers=h).status_code == 403
    assert v.post("/v1/tags", json={"chain": chain, "address": addr, "label": "x", "category": "scam"},
                  headers=h).status_code == 403
    assert v.get("/ui/audit").status_code == 403
    assert v.get("/v1/ui-actions").status_code == 403
    assert v.post("/v1/graph/expand", json={"chain": chain, "address": addr}, headers=h).status_code == 200
    assert "Open a case" not in v.get(f"/ui/address/{chain}/{addr}").text  # no form a viewer cannot use
    a, _ = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    a.get(f"/ui/address/{chain}/{addr}")
    r, _ = sign_in(ui_server.url, "root", ui_server.passwords["root"])
    page = r.get("/ui/audit")
    assert page.status_code == 200
    assert re.search(rf"alice</td><td>view.address</td><td class=\"mono\">{chain}:{addr}", page.text)
    acts = r.get("/v1/ui-actions", params={"user": "victor"}).json()["actions"]
    assert any(x["action"] == "signin" for x in acts)


def test_sign_out_ends_the_session_on_the_server(ui_server):
    c, csrf = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    sid = c.cookies.get("ft_session")
    r = c.post("/ui/logout", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    stale = httpx.Client(base_url=ui_server.url, timeout=30, cookies={"ft_session": sid})
    assert stale.get("/v1/cases").status_code == 401


def test_api_keys_still_work_beside_users(ui_server):
    key = cli("keys", "create", "script", "--role", "viewer", home=ui_server.home)
    r = httpx.get(ui_server.url + "/v1/search", params={"q": "sim-theft"}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and any(h["kind"] == "incident" for h in r.json()["hits"])


def test_graph_endpoints_are_documented_and_fast(ui_server):
    """Expansion latency over HTTP on the demo world, against /v1/health in the same run as the anchor."""
    spec = httpx.get(ui_server.url + "/openapi.json").json()
    for p in ("/v1/graph/expand", "/v1/graph/follow", "/v1/cases", "/v1/search", "/v1/tags/tagpack"):
        assert p in spec["paths"], p
    c, csrf = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    chain, addr = thief(ui_server.truth)
    body = {"chain": chain, "address": addr, "direction": "forward", "model": "haircut"}
    c.post("/v1/graph/expand", json=body, headers={"X-CSRF-Token": csrf})  # warm
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        r = c.post("/v1/graph/expand", json=body, headers={"X-CSRF-Token": csrf})
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200
    med = statistics.median(times)
    anchor = []
    for _ in range(10):
        t0 = time.perf_counter()
        c.get("/v1/health")
        anchor.append(time.perf_counter() - t0)
    print(f"expand over HTTP: median {med * 1000:.1f} ms, max {max(times) * 1000:.1f} ms; "
          f"/v1/health median {statistics.median(anchor) * 1000:.1f} ms")
    assert med < 0.2
    j = r.json()
    assert j["nodes"] and all(e["source"] == f"a:{chain}:{addr}" for e in j["edges"])


def test_case_page_exports_the_evidence_bundle(ui_server):
    import hashlib

    c, csrf = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    cid = c.post("/v1/cases", json={"incident": "sim-theft"}, headers={"X-CSRF-Token": csrf}).json()["case_id"]
    page = c.get(f"/ui/cases/{cid}")
    assert page.status_code == 200
    assert re.search(r'<button type="button" id="export-evidence">Export evidence bundle</button>', page.text)
    assert 'id="evidence-result" role="status"' in page.text
    url = "/v1/incidents/sim-theft/evidence"
    assert c.post(url, json={"primary": "haircut"}).status_code == 403  # the session's CSRF token is required
    r = c.post(url, json={"primary": "haircut"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    meta = r.json()
    d = c.get(meta["download"])
    assert d.status_code == 200 and hashlib.sha256(d.content).hexdigest() == meta["sha256"]
    assert f'filename="{meta["id"]}.zip"' in d.headers["content-disposition"]
    # a viewer the case is shared with sees no control it cannot use, and may not export
    assert c.post(f"/v1/cases/{cid}/share", json={"user": "victor"}, headers={"X-CSRF-Token": csrf}).status_code == 200
    v, vcsrf = sign_in(ui_server.url, "victor", ui_server.passwords["victor"])
    vp = v.get(f"/ui/cases/{cid}")
    assert vp.status_code == 200 and "export-evidence" not in vp.text
    assert v.post(url, json={}, headers={"X-CSRF-Token": vcsrf}).status_code == 403


def test_ui_errors_are_html_pages_and_api_errors_stay_problem_json(ui_server):
    c, _csrf = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    chain, addr = thief(ui_server.truth)
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path, status in (("/ui/no-such-page", 404), (f"/ui/address/{chain}/{addr}?page=-1", 422),
                         ("/ui/address/regtest/bcrt1qnotanaddressofthisworld", 404),
                         ("/ui/entity/No%20such%20entity", 404)):
        r = c.get(path, headers=html)
        assert r.status_code == status, (path, r.text[:200])
        assert r.headers["content-type"].startswith("text/html"), path
        assert "<h1>Sorry</h1>" in r.text and "default-src 'self'" in r.headers["content-security-policy"]
    r = c.post(f"/ui/address/{chain}/{addr}", headers=html)  # a method the page does not take
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/html")
    # a fetch that asks for JSON, and every /v1 call, keep the problem JSON
    r = c.get("/ui/no-such-page", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = c.get("/v1/addresses/regtest/bcrt1qnotanaddressofthisworld/activity", headers=html)
    assert r.status_code == 404 and r.json()["status"] == 404


def test_peel_chain_endpoint(ui_server):
    c, _csrf = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    f = peel_flow(ui_server.truth)
    r = c.get(f"/v1/addresses/regtest/{f['to']}/peel-chains")
    assert r.status_code == 200, r.text
    j = r.json()
    hit = [x for x in j["chains"] if f["txid"] in x["at_txids"]]
    assert hit and hit[0]["role"] == "peel" and hit[0]["hops"] >= 3, j
    assert j["more"] is False and j["examined"] >= 1
    # an EVM address has no peel chains of this kind; an unknown one is a 4xx naming it
    chain, addr = thief(ui_server.truth)
    if chain != "regtest":
        assert c.get(f"/v1/addresses/{chain}/{addr}/peel-chains").json()["chains"] == []
    r = c.get("/v1/addresses/regtest/mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn/peel-chains")
    assert r.status_code == 404 and "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn" in r.json()["detail"]


def test_case_graph_of_10000_nodes_is_saved_by_changes(ui_server):
    """A graph of 10,000 nodes does not fit one request (413 for the whole graph at the service's 2 MiB
    limit): PATCH /v1/cases/{id}/graph saves it in parts and then change by change; bad input is a 422
    naming the field, never a 500; concurrent changes are all kept."""
    c, csrf = sign_in(ui_server.url, "alice", ui_server.passwords["alice"])
    h = {"X-CSRF-Token": csrf}
    chain, addr = thief(ui_server.truth)
    spec = httpx.get(ui_server.url + "/openapi.json").json()
    assert "patch" in spec["paths"]["/v1/cases/{case_id}/graph"]
    cid = c.post("/v1/cases", json={"seeds": [f"{chain}:{addr}"]}, headers=h).json()["case_id"]
    real = c.post("/v1/graph/expand", json={"chain": chain, "address": addr}, headers=h).json()
    g = big_graph(10_000, real)
    r = c.patch(f"/v1/cases/{cid}", json={"graph": g}, headers=h)
    assert r.status_code == 413 and r.json()["field"] == "body"  # whole, it is over the request limit
    parts = graph_parts(g, 1 << 20)
    assert len(parts) > 2
    for p in parts:
        r = c.patch(f"/v1/cases/{cid}/graph", json=p, headers=h)
        assert r.status_code == 200, r.text
    assert r.json()["nodes"] == 10_000 and r.json()["edges"] == len(g["edges"]) and r.json()["positions"] == 10_000
    got = c.get(f"/v1/cases/{cid}").json()["graph"]
    assert got["nodes"] == g["nodes"] and got["edges"] == g["edges"] and got["positions"] == g["positions"]

    # change by change: one node changed, one removed (its edges and position go too), positions, view
    victim = g["nodes"][-1]["id"]
    changed = dict(g["nodes"][5], entity="Changed")
    r = c.patch(f"/v1/cases/{cid}/graph", headers=h, json={
        "nodes": [changed], "remove_nodes": [victim], "positions": {g["nodes"][1]["id"]: {"x": 1.5, "y": -2},
                                                                     g["nodes"][2]["id"]: None},
        "expanded_by": {g["nodes"][0]["id"]: [g["nodes"][1]["id"]]},
        "view": {"hidden": [g["nodes"][3]["id"]], "grouped": True, "since": "2024-01-02", "minAmount": 0.5}})
    assert r.status_code == 200, r.text
    got = c.get(f"/v1/cases/{cid}").json()["graph"]
    assert len(got["nodes"]) == 9_999 and got["nodes"][5]["entity"] == "Changed"
    assert all(victim not in (e["source"], e["target"]) for e in got["edges"]) and len(got["edges"]) == len(g["edges"]) - 1
    assert victim not in got["positions"] and g["nodes"][2]["id"] not in got["positions"]
    assert got["positions"][g["nodes"][1]["id"]] == {"x": 1.5, "y": -2}
    assert got["hidden"] == [g["nodes"][3]["id"]] and got["grouped"] is True and got["since"] == "2024-01-02"
    assert got["expandedBy"] == {g["nodes"][0]["id"]: [g["nodes"][1]["id"]]} and got["minAmount"] == 0.5

    # concurrent changes of one case are all kept (each re-reads the graph another stored meanwhile)
    from concurrent.futures import ThreadPoolExecutor

    def move(i: int) -> int:
        return c.patch(f"/v1/cases/{cid}/graph", headers=h,
                       json={"positions": {g["nodes"][10 + i]["id"]: {"x": -i, "y": -i}}}).status_code

    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(move, range(8))) == [200] * 8
    got = c.get(f"/v1/cases/{cid}").json()["graph"]
    assert all(got["positions"][g["nodes"][10 + i]["id"]] == {"x": -i, "y": -i} for i in range(8))

    # bad input: a 422 naming the field, nothing stored
    for body, field in (({"nodes": [{"kind": "address"}]}, "nodes[0].id"),
                        ({"edges": [{"source": "a:x:y"}]}, "edges[0].target"),
                        ({"positions": {"a:x:y": {"x": "left", "y": 1}}}, "positions.a:x:y.x"),
                        ({"positions": {"a:x:y": {"x": 1e300, "y": 1}}}, "positions.a:x:y.x"),
                        ({"positions": {"a:x:y": {"x": 1}}}, "positions.a:x:y"),
                        ({"remove_nodes": "a:x:y"}, "remove_nodes"),
                        ({"view": {"since": "yesterday"}}, "view.since"),
                        ({"view": {"layout": 1}}, "view.layout"),
                        ({"colour": "red"}, "colour"),
                        ({"expanded_by": {"a:x:y": "a:x:z"}}, "expanded_by.a:x:y")):
        r = c.patch(f"/v1/cases/{cid}/graph", json=body, headers=h)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.json()["field"] == field, (body, r.json())
    r = c.patch(f"/v1/cases/{cid}/graph", content=b"{not json", headers=dict(h, **{"Content-Type": "application/json"}))
    assert r.status_code == 422
    assert c.get(f"/v1/cases/{cid}").json()["graph"]["nodes"][5]["entity"] == "Changed"
    # bounded: a part over the request limit is a 413; others' cases and viewers are refused
    r = c.patch(f"/v1/cases/{cid}/graph", json={"nodes": g["nodes"]}, headers=h)
    assert r.status_code == 413
    assert c.patch("/v1/cases/case_000000000000/graph", json={}, headers=h).status_code == 404
    v, vcsrf = sign_in(ui_server.url, "victor", ui_server.passwords["victor"])
    assert v.patch(f"/v1/cases/{cid}/graph", json={}, headers={"X-CSRF-Token": vcsrf}).status_code == 403
    assert c.patch(f"/v1/cases/{cid}/graph", json={}).status_code == 403  # no CSRF token
    # a graph stored whole in another shape (the whole-graph PATCH stores any object) takes changes too
    cid2 = c.post("/v1/cases", json={"seeds": [f"{chain}:{addr}"]}, headers=h).json()["case_id"]
    assert c.patch(f"/v1/cases/{cid2}", json={"graph": {"nodes": "x", "edges": [1, {"id": {}}],
                                                         "positions": [1], "expandedBy": 2}}, headers=h).status_code == 200
    r = c.patch(f"/v1/cases/{cid2}/graph", json={"nodes": [g["nodes"][0]], "positions": {g["nodes"][0]["id"]: {"x": 1, "y": 2}}},
                headers=h)
    assert r.status_code == 200 and r.json()["nodes"] == 1, r.text

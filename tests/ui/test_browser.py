"""The investigation UI in a real headless Chromium against a real server on a loopback port.

Sign in, search the thief's address, open a case, follow to the endpoints (entities, countries and amounts
equal the simulator's truth), expand a node, add a user tag and see it on the address page and in the TagPack
export, sign out. Throughout: no console error, no request to any host but the app's own (every request is
intercepted and logged), every control reachable with the keyboard. Screenshots go to test-artifacts/ui/
(or $FUNDTRAIL_TEST_ARTIFACTS/ui).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from urllib.parse import urlsplit

import pytest
import yaml

from fundtrail.store import Workspace
from tests.ui.biggraph import big_graph, graph_parts
from tests.ui.conftest import artifacts_dir, peel_flow, thief
from tests.ui.session import sign_in

pytestmark = pytest.mark.browser


class Watch:
    """Console errors, page errors and every request of a browser context; foreign hosts are refused."""

    def __init__(self, ctx, origin: str) -> None:
        self.host = urlsplit(origin).netloc
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.errors: list[str] = []
        ctx.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).netloc != self.host and not url.startswith(("data:", "blob:")):
            self.foreign.append(url)
            route.abort()
        else:
            route.continue_()

    def page(self, ctx):
        page = ctx.new_page()
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        return page


def keyboard_reaches_every_control(page) -> None:
    """Tab through the page: every visible, enabled link, button and field receives the focus (folded
    sections opened first, as a keyboard user opens them with Enter)."""
    n = page.evaluate("""() => {
        document.querySelectorAll('details').forEach(d => d.open = true);
        const els = [...document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')]
          .filter(e => e.getAttribute('tabindex') !== '-1' && !e.disabled && e.type !== 'hidden' && e.offsetParent !== null);
        els.forEach((e, i) => e.dataset.kb = String(i));
        return els.length;
    }""")
    assert n > 0
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    seen = set()
    for _ in range(n + 5):
        page.keyboard.press("Tab")
        k = page.evaluate("() => document.activeElement && document.activeElement.dataset.kb")
        if k is not None:
            seen.add(int(k))
    missing = page.evaluate("(seen) => [...document.querySelectorAll('[data-kb]')].filter(e => !seen.includes(+e.dataset.kb))"
                            ".map(e => e.outerHTML.slice(0, 120))", sorted(seen))
    assert not missing, missing


def _units(text: str) -> int:
    return int(text.replace(".", ""))


def test_investigation_in_chromium(browser, ui_server):
    shots = artifacts_dir()
    url = ui_server.url
    truth = ui_server.truth
    chain, addr = thief(truth)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    w = Watch(ctx, url)
    page = w.page(ctx)

    # sign in
    page.goto(url + "/ui/")
    assert page.url.startswith(url + "/ui/login")
    page.screenshot(path=str(shots / "login.png"))
    page.fill("#username", "alice")
    page.fill("#password", ui_server.passwords["alice"])
    page.press("#password", "Enter")
    page.wait_for_selector("#q")

    # search the thief's address
    page.fill("#q", addr)
    page.press("#q", "Enter")
    page.wait_for_selector("#address")
    assert page.inner_text("#address") == addr
    assert "Lazarus-sim" in page.inner_text("#entity")
    page.screenshot(path=str(shots / "address.png"), full_page=True)
    keyboard_reaches_every_control(page)

    # open a case and follow to the endpoints
    page.click("#case-from-address")
    page.wait_for_selector("#cy[data-ready='1']", state="attached")
    page.click("#follow")
    page.wait_for_selector("#endpoints-table tbody tr[data-entity]")
    rows = page.eval_on_selector_all(
        "#endpoints-table tbody tr",
        "rs => rs.map(r => ({entity: r.dataset.entity, country: r.dataset.country, chain: r.dataset.chain,"
        " asset: r.dataset.asset, base: r.dataset.amountBase, shown: r.cells[4].textContent}))")
    got: dict[tuple[str, str, str], int] = defaultdict(int)
    countries = {}
    for r in rows:
        assert _units(r["shown"]) == int(r["base"]), r  # the amount shown is the exact amount
        got[(r["entity"], r["chain"], r["asset"])] += int(r["base"])
        countries[r["entity"]] = r["country"] or None
    want: dict[tuple[str, str, str], int] = defaultdict(int)
    for e in truth["expected"]["haircut"]["endpoints"]:
        want[(e["entity"], e["chain"], e["asset"])] += int(e["amount"])
        assert countries.get(e["entity"]) == e["country"], e["entity"]
    assert dict(got) == dict(want)
    unspent = page.eval_on_selector_all("#unspent-table tbody tr", "rs => rs.length")
    assert unspent == len({(u["chain"], u["address"], u["asset"]) for u in truth["expected"]["haircut"]["unspent"]})
    # the graph's nodes are listed in the table too
    names = page.eval_on_selector_all("#nodes-table tbody tr td:first-child", "tds => tds.map(t => t.textContent)")
    assert {k[0] for k in want} <= set(names) and addr in names

    # expand the seed one hop forward from the node table (keyboard-reachable buttons)
    before = page.eval_on_selector_all("#nodes-table tbody tr", "rs => rs.length")
    # rows are updated, not rebuilt: every row there before the expansion is the same element after it
    rows_js = "rs => rs.map(r => [r.dataset.id, r.textContent, !!r._kept])"
    page.evaluate("() => document.querySelectorAll('#nodes-table tbody tr').forEach(r => { r._kept = true; })")
    rows0 = {i: t for i, t, _k in page.eval_on_selector_all("#nodes-table tbody tr", rows_js)}
    page.wait_for_function("() => document.getElementById('cy').dataset.saved")  # the follow was saved
    saved = page.get_attribute("#cy", "data-saved")
    page.focus(f"#nodes-table tbody tr[data-id='a:{chain}:{addr}'] button:has-text('Expand →')")
    page.keyboard.press("Enter")
    page.wait_for_function("() => /new node/.test(document.getElementById('status').textContent)")
    # the keyboard focus is still on that button
    assert page.evaluate("() => [document.activeElement.textContent, document.activeElement.closest('tr').dataset.id]"
                         ) == ["Expand →", f"a:{chain}:{addr}"]
    after = page.eval_on_selector_all("#nodes-table tbody tr", rows_js)
    assert len(after) > before
    # every row whose content the expansion did not change is the same element (not rebuilt)
    assert all(k for i, t, k in after if rows0.get(i) == t) and sum(k for _i, _t, k in after) >= len(rows0) - 3
    # the time filter acts on every edge with a time: the one-hop edges carry their transaction's time too
    times = page.eval_on_selector_all("#edges-table tbody tr", "rs => rs.map(r => [r.cells[4].textContent, r.cells[5].textContent])")
    assert times and all(t for _kind, t in times), times
    assert any(k == "flow" for k, _t in times)
    days = sorted({t[:10] for _k, t in times})
    if len(days) > 1:
        page.fill("#since", days[-1])
        page.dispatch_event("#since", "change")
        kept = page.eval_on_selector_all("#edges-table tbody tr", "rs => rs.map(r => r.cells[5].textContent)")
        assert kept and all(t[:10] >= days[-1] for t in kept) and len(kept) < len(times)
        page.fill("#since", "")
        page.dispatch_event("#since", "change")
        assert page.eval_on_selector_all("#edges-table tbody tr", "rs => rs.length") == len(times)
    # "group by cluster" draws one box per cluster with two or more addresses on the graph
    page.wait_for_function("(t) => document.getElementById('cy').dataset.saved !== t", arg=saved)
    page.click("#group")
    page.wait_for_function("() => document.getElementById('group').getAttribute('aria-pressed') === 'true'")
    graph_now = page.evaluate("async (id) => (await (await fetch('/v1/cases/' + id + '/export.json')).json())",
                              page.url.rsplit("/", 1)[1])
    g = graph_now["graph"]
    shown = {e[k] for e in g["edges"] for k in ("source", "target")} | {n["id"] for n in g["nodes"] if n.get("seed")}
    clusters: dict[tuple[str, int], int] = defaultdict(int)
    for n in g["nodes"]:
        if n["id"] in shown and n.get("kind") != "entity" and n.get("cluster") is not None:
            clusters[(n["chain"], n["cluster"])] += 1
    assert int(page.get_attribute("#cy", "data-groups")) == sum(1 for v in clusters.values() if v >= 2)
    page.click("#group")
    page.wait_for_function("() => document.getElementById('cy').dataset.groups === '0'")
    page.wait_for_function("() => document.getElementById('cy').dataset.saved")  # the graph was saved to the case
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "case.png"))
    page.screenshot(path=str(shots / "case-full.png"), full_page=True)
    page.locator("#endpoints-table").locator("xpath=..").screenshot(path=str(shots / "case-endpoints.png"))
    page.locator("#nodes-table").locator("xpath=..").screenshot(path=str(shots / "case-tables.png"))
    keyboard_reaches_every_control(page)
    case_url = page.url
    # reopened, the case shows the saved graph
    page.goto(case_url)
    page.wait_for_selector("#endpoints-table tbody tr[data-entity]")

    # a case of the incident: export its evidence bundle from the keyboard, the digest is the download's
    csrf = page.get_attribute('meta[name="csrf-token"]', "content")
    r = page.request.post(url + "/v1/cases", data={"incident": "sim-theft"}, headers={"X-CSRF-Token": csrf})
    assert r.status == 201, r.text()
    page.goto(f"{url}/ui/cases/{r.json()['case_id']}")
    page.wait_for_selector("#cy[data-ready='1']", state="attached")
    page.focus("#export-evidence")
    page.keyboard.press("Enter")
    page.wait_for_selector("#evidence-digest", timeout=120_000)
    digest = page.inner_text("#evidence-digest")
    assert page.evaluate("() => document.activeElement.id") == "evidence-download"
    bundle = page.request.get(url + page.get_attribute("#evidence-download", "href"))
    assert bundle.status == 200 and hashlib.sha256(bundle.body()).hexdigest() == digest
    page.screenshot(path=str(shots / "case-evidence.png"), full_page=True)

    # add a user tag to a dormant holding and see it on the address page and in the TagPack export
    holding = sorted(u["address"] for u in truth["expected"]["haircut"]["unspent"] if u["chain"] == "regtest")[0]
    page.goto(f"{url}/ui/address/regtest/{holding}")
    page.click("#tag-form-box summary")
    page.fill("#t-label", "Dormant thief wallet")
    page.select_option("#t-category", "theft_perpetrator")
    page.fill("#t-entity", "Lazarus-sim")
    page.fill("#t-country", "KP")
    page.fill("#t-conf", "0.9")
    page.fill("#t-note", "received stolen funds in the sim-theft case")
    page.click("#t-save")
    page.wait_for_selector("#tag-table")
    tag_rows = page.eval_on_selector_all("#tag-table tbody tr", "rs => rs.map(r => r.textContent)")
    assert any("Dormant thief wallet" in t and "user:alice" in t for t in tag_rows), tag_rows
    r = page.request.get(url + "/v1/tags/tagpack")
    assert r.status == 200
    pack = yaml.safe_load(r.text())
    mine = [t for t in pack["tags"] if t["address"] == holding]
    assert mine and mine[0]["label"] == "Lazarus-sim" and mine[0]["source"] == "user:alice"
    assert mine[0]["country"] == "KP" and mine[0]["currency"] == "BTC"
    page.screenshot(path=str(shots / "address-tagged.png"), full_page=True)

    # a peel the thief made: its address page flags the peel chain (the chain's other addresses too)
    f = peel_flow(truth)
    page.goto(f"{url}/ui/address/regtest/{f['to']}")
    page.wait_for_selector("#peel-flag")
    roles = page.eval_on_selector_all("#peel-table tbody tr", "rs => rs.map(r => [r.dataset.role, +r.dataset.hops])")
    assert "peel" in [r for r, _h in roles] and all(h >= 3 for _r, h in roles), roles
    page.screenshot(path=str(shots / "address-peel.png"), full_page=True)
    # the UI's errors are pages (a request asking for JSON gets the problem JSON)
    r = page.request.get(url + "/ui/no-such-page")
    assert r.status == 404 and r.headers["content-type"].startswith("text/html") and "Sorry" in r.text()
    r = page.request.get(url + "/ui/no-such-page", headers={"Accept": "application/json"})
    assert r.status == 404 and r.json()["status"] == 404

    # cluster page (why merged) and sign out
    con = Workspace(ui_server.home).connect()
    try:
        cid, size = con.execute("SELECT cluster_id, count(*) FROM cluster_members WHERE chain = 'regtest' "
                                "GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    finally:
        con.close()
    page.fill("#q", str(cid))
    page.press("#q", "Enter")
    page.click("text=cluster " + str(cid))
    page.wait_for_selector("#merges")
    assert f"{size:,} addresses" in page.inner_text("main")
    assert page.eval_on_selector_all("#merges tbody tr", "rs => rs.length") == min(50, size - 1)
    page.screenshot(path=str(shots / "cluster.png"), full_page=True)
    page.click("#signout")
    page.wait_for_selector("#username")
    page.goto(case_url)
    assert page.url.startswith(url + "/ui/login")

    # the admin sees alice's actions in the audit log
    page.fill("#username", "root")
    page.fill("#password", ui_server.passwords["root"])
    page.press("#password", "Enter")
    page.wait_for_selector("#q")
    page.goto(url + "/ui/audit?who=alice")
    acts = page.eval_on_selector_all("#actions tbody tr td:nth-child(4)", "tds => tds.map(t => t.textContent)")
    assert {"signin", "search", "view.address", "case.create", "tag", "signout"} <= set(acts)
    page.screenshot(path=str(shots / "audit.png"), full_page=True)
    ctx.close()

    assert not w.foreign, w.foreign
    assert not w.errors, w.errors
    assert all(urlsplit(u).netloc == w.host for u in w.requests if u.startswith("http"))
    (shots / "requests.json").write_text(json.dumps(w.requests, indent=1))


def test_case_of_10000_nodes_in_chromium(browser, ui_server):
    """A case of 10,000 nodes (saved in parts over the API: whole, it is over the request limit) opens, is laid
    out again and saved by changes: the new layout goes in several requests, each under the service's limit,
    pinning a node sends that change alone; the server's graph is the page's."""
    url = ui_server.url
    c, csrf = sign_in(url, "alice", ui_server.passwords["alice"])
    h = {"X-CSRF-Token": csrf}
    chain, addr = thief(ui_server.truth)
    cid = c.post("/v1/cases", json={"seeds": [f"{chain}:{addr}"]}, headers=h).json()["case_id"]
    g = big_graph(10_000, c.post("/v1/graph/expand", json={"chain": chain, "address": addr}, headers=h).json())
    for p in graph_parts(g, 1 << 20):
        assert c.patch(f"/v1/cases/{cid}/graph", json=p, headers=h).status_code == 200
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_cookies([{"name": "ft_session", "value": c.cookies.get("ft_session"), "url": url}])
    w = Watch(ctx, url)
    page = w.page(ctx)
    sent: list[int] = []
    page.on("request", lambda r: sent.append(len(r.post_data_buffer or b""))
            if r.method == "PATCH" and r.url.endswith(f"/v1/cases/{cid}/graph") else None)
    page.goto(f"{url}/ui/cases/{cid}")
    page.wait_for_selector("#cy[data-ready='1']", state="attached", timeout=180_000)
    assert page.get_attribute("#cy", "data-nodes") == "10000"
    assert page.eval_on_selector_all("#nodes-table tbody tr", "rs => rs.length") == 200  # a page of the table
    page.click("#relayout")
    page.wait_for_function("() => document.getElementById('cy').dataset.saved", timeout=180_000)
    assert int(page.get_attribute("#cy", "data-saved-parts")) >= 2 and len(sent) >= 2
    assert max(sent) < 2 << 20  # each part under the service's request limit (FUNDTRAIL_MAX_BODY)
    got = c.get(f"/v1/cases/{cid}").json()["graph"]
    assert len(got["positions"]) == 10_000 and all(p["x"] % 220 == 0 for p in got["positions"].values())
    # a small change sends itself only
    saved, n = page.get_attribute("#cy", "data-saved"), len(sent)
    page.click(f"#nodes-table tbody tr[data-id='a:{chain}:{addr}'] button:has-text('Select')")
    page.click("#pin")
    page.wait_for_function("(t) => document.getElementById('cy').dataset.saved !== t", arg=saved, timeout=60_000)
    assert len(sent) == n + 1 and sent[-1] < 4096, sent[n:]
    got = c.get(f"/v1/cases/{cid}").json()["graph"]
    assert got["pinned"] == [f"a:{chain}:{addr}"] and len(got["nodes"]) == 10_000
    page.screenshot(path=str(artifacts_dir() / "case-10000.png"))
    ctx.close()
    assert not w.foreign, w.foreign
    assert not w.errors, w.errors

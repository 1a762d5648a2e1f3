"""Is a case graph of ~2,000 nodes usable in the browser? Real nodes and edges, drawn in Chromium.

The graph is grown breadth first from the theft of the simulator's small world (bench_ui.py builds it, e.g.
``bench_ui.build_world(Path(DIR), "small")``), then from busy addresses of its economy, with the real one-hop
expansion until it holds ``--nodes`` nodes (cached in the temporary folder), saved as a case through the API
of an in-process server in parts (``PATCH /v1/cases/{id}/graph``; uvicorn on a loopback port; the exposure
index is not built), and opened in headless Chromium. Timed, each until the next frame has been painted: the
page until the graph is drawn and laid out, a re-layout (and its save: the request sizes are reported), the
page reopened with the saved positions, selecting a node from the node table, 20 pan and zoom keys (until
the view settled), and one expansion of a node at that size that adds nodes (from its button in the node
table until the graph and tables show the answer). The anchor is a fixed JavaScript workload (sorting
400,000 numbers) timed in the same browser in the same run. ``--case-js FILE`` serves another case.js
instead of the package's (an A/B run against an older version; an older page that loaded dagre itself
needs dagre in front of its case.js in FILE).

Usage: ``python bench/bench_ui_graph.py [--home DIR] [--nodes N] [--case-js FILE]``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path


def grow(ws, truth: dict, want: int) -> dict:
    from fundtrail.investigate import graph as G

    nodes, edges = {}, {}
    frontier = [(s["chain"], s["address"]) for s in truth["theft"]["seeds"]]
    for c, a in frontier:
        nodes[G.address_node_id(c, a)] = {"id": G.address_node_id(c, a), "kind": "address", "chain": c,
                                          "address": a, "seed": True}
    seen = set(frontier)
    con = ws.connect()
    try:  # when the theft's flow is exhausted, grow on from busy addresses of the world's economy
        more = [("regtest", r[0]) for r in con.execute(
            "SELECT a.address FROM utxo_outputs o JOIN addresses a USING (chain, address_id) WHERE o.chain = "
            "'regtest' GROUP BY 1 HAVING count(*) > 3 ORDER BY hash(a.address) LIMIT 5000").fetchall()]
    finally:
        con.close()
    while (frontier or more) and len(nodes) < want:
        chain, a = frontier.pop(0) if frontier else more.pop()
        if (chain, a) not in seen:
            seen.add((chain, a))
            nodes.setdefault(G.address_node_id(chain, a), {"id": G.address_node_id(chain, a), "kind": "address",
                                                           "chain": chain, "address": a})
        ans = G.expand(ws, chain, a)
        for n in ans["nodes"]:
            nodes.setdefault(n["id"], n)
            if n["address"] and (n["chain"], n["address"]) not in seen:
                seen.add((n["chain"], n["address"]))
                frontier.append((n["chain"], n["address"]))
        for e in ans["edges"]:
            edges[e["id"]] = e
    return {"nodes": list(nodes.values()), "edges": list(edges.values())}


# resolves after the next frame was painted (a task after the frame's animation callbacks)
PAINTED = "() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))"


def main(home: Path, want: int, compare_js: str | None = None) -> dict:
    import httpx
    import uvicorn
    from playwright.sync_api import sync_playwright

    from fundtrail.service.app import create_app
    from fundtrail.service.runtime import Config
    from fundtrail.service.users import create_user
    from fundtrail.store import Workspace

    truth = json.loads((home.parent / (home.name + "-world") / "truth.json").read_text())
    ws = Workspace(home)
    t0 = time.perf_counter()
    cache = Path(tempfile.gettempdir()) / f"ft-bench-ui-graph-{want}-{hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:10]}.json"
    if cache.exists():
        graph = json.loads(cache.read_text())
    else:
        graph = grow(ws, truth, want)
        cache.write_text(json.dumps(graph))
    out = {"nodes": len(graph["nodes"]), "edges": len(graph["edges"]), "grow_s": round(time.perf_counter() - t0, 1)}
    from fundtrail.investigate.graph import warm

    warm(ws)  # the trace graphs and the address index, as the service builds them when it starts
    db = tempfile.mkdtemp() + "/s.db"
    app = create_app(Config(home=home, db=f"sqlite:///{db}", build=False, poll=3600), start=False)
    pw = create_user(app.state.runtime.store, "bench", "investigator")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.ui.session import sign_in

    c, csrf = sign_in(url, "bench", pw)
    s = truth["theft"]["seeds"][0]
    cid = c.post("/v1/cases", json={"seeds": [f"{s['chain']}:{s['address']}"]}, headers={"X-CSRF-Token": csrf}
                 ).json()["case_id"]
    from tests.ui.biggraph import graph_parts

    # saved in parts (PATCH /v1/cases/{id}/graph): a graph of 10,000 nodes is over the request limit whole
    for part in graph_parts({**graph, "positions": {}}, 1 << 20):
        r = c.patch(f"/v1/cases/{cid}/graph", json=part, headers={"X-CSRF-Token": csrf}, timeout=120)
        assert r.status_code == 200, r.text
    js_anchor = """() => { const t0 = performance.now(); const a = [];
        for (let i = 0; i < 400000; i++) a.push((i * 7919) % 100003);
        a.sort((x, y) => x - y); return performance.now() - t0; }"""
    frontier = None  # grown last (not expanded), and its expansion adds nodes to the graph
    from fundtrail.investigate import graph as G

    have = {n["id"] for n in graph["nodes"]}
    for n in reversed(graph["nodes"][-200:]):
        if n.get("address") and any(x["id"] not in have for x in G.expand(ws, n["chain"], n["address"])["nodes"]):
            frontier = n["id"]
            break
    frontier = frontier or next(n["id"] for n in reversed(graph["nodes"]) if n.get("address"))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        ctx = b.new_context(viewport={"width": 1400, "height": 900})
        ctx.add_cookies([{"name": "ft_session", "value": c.cookies.get("ft_session"), "url": url}])
        if compare_js is not None:  # the same page with another case.js (e.g. an older version), for A/B runs
            body = Path(compare_js).read_text()
            ctx.route("**/ui/static/case.js", lambda r: r.fulfill(body=body, content_type="text/javascript"))
        page = ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        saves: list[int] = []  # body sizes of the case saves (whole graph or changes)
        page.on("request", lambda r: saves.append(len(r.post_data_buffer or b""))
                if r.method == "PATCH" and f"/v1/cases/{cid}" in r.url else None)
        out["js_anchor_ms"] = round(min(page.evaluate(js_anchor) for _ in range(3)), 1)
        t0 = time.perf_counter()
        page.goto(f"{url}/ui/cases/{cid}")
        page.wait_for_selector("#cy[data-ready='1']", state="attached", timeout=300_000)
        out["open_and_layout_s"] = round(time.perf_counter() - t0, 2)
        page.evaluate(PAINTED)  # the next frame (the graph on the screen) has been painted
        out["open_painted_s"] = round(time.perf_counter() - t0, 2)
        out["open_draw_ms"] = {k: page.get_attribute("#cy", f"data-{k}-ms") for k in ("draw", "batch", "layout", "tables")}
        out["open_timeline_ms"] = page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
            return {response_start: Math.round(n.responseStart), response_end: Math.round(n.responseEnd),
                    dom_interactive: Math.round(n.domInteractive),
                    graph_ready: +document.getElementById('cy').dataset.readyAt,
                    graph_painted: +document.getElementById('cy').dataset.paintedAt || null}; }""")
        print(json.dumps(out), file=sys.stderr)
        t0 = time.perf_counter()
        page.click("#relayout")
        page.evaluate(PAINTED)
        out["relayout_s"] = round(time.perf_counter() - t0, 2)
        page.wait_for_function("() => document.getElementById('cy').dataset.saved || "
                               "/could not save/.test(document.getElementById('status').textContent)",
                               timeout=120_000)  # the positions are saved with the case
        out["relayout_and_save_s"] = round(time.perf_counter() - t0, 2)  # (the save waits 400 ms for more changes)
        out["save_status"] = page.inner_text("#status")
        out["save_parts"] = page.get_attribute("#cy", "data-saved-parts")
        out["save_request_bytes"] = list(saves)
        t0 = time.perf_counter()
        page.goto(f"{url}/ui/cases/{cid}")  # reopened: the saved positions, no layout
        page.wait_for_selector("#cy[data-ready='1']", state="attached", timeout=300_000)
        out["reopen_s"] = round(time.perf_counter() - t0, 2)
        page.evaluate(PAINTED)
        out["reopen_painted_s"] = round(time.perf_counter() - t0, 2)
        out["reopen_draw_ms"] = {k: page.get_attribute("#cy", f"data-{k}-ms") for k in ("draw", "batch", "tables")}
        ready = page.get_attribute("#cy", "data-ready-at")  # None for a case.js that does not say
        out["reopen_graph_ready_ms"] = int(ready) if ready else None
        out["table_rows"] = page.eval_on_selector_all("#nodes-table tbody tr", "rs => rs.length")
        t0 = time.perf_counter()
        page.click(f"#nodes-table tbody tr:nth-child({max(1, out['table_rows'] // 2)}) button:has-text('Select')")
        page.evaluate(PAINTED)
        out["select_from_table_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        page.focus("#cy")
        t0 = time.perf_counter()
        for k in ("ArrowLeft", "ArrowUp", "+", "-") * 5:
            page.keyboard.press(k)
        page.wait_for_function("() => document.getElementById('cy').dataset.moving !== '1'")  # the view settled
        page.evaluate(PAINTED)
        out["pan_zoom_20_keys_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        # one expansion at this size, from the node table (paged: go to the node's page first)
        sel = f"#nodes-table tbody tr[data-id='{frontier}'] button:has-text('Expand →')"
        for _ in range(100):
            if page.query_selector(sel):
                break
            page.click("#nodes-table + nav.pager button:has-text('Next')")
        page.evaluate("() => { document.getElementById('status').textContent = ''; }")
        t0 = time.perf_counter()
        page.click(sel)
        page.wait_for_function("() => /new node|failed/.test(document.getElementById('status').textContent)",
                               timeout=120_000)
        page.evaluate(PAINTED)
        out["expand_at_size_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        out["expand_status"] = page.inner_text("#status")
        out["expand_draw_ms"] = page.get_attribute("#cy", "data-draw-ms")
        out["drawn_nodes"] = page.get_attribute("#cy", "data-nodes")
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "ft-ui-2000.png"))
        out["console_errors"] = errors
        b.close()
    for k in ("open_and_layout_s", "open_painted_s", "reopen_s", "reopen_painted_s", "relayout_s"):
        out[k + "_vs_js_anchor"] = round(out[k] * 1000 / out["js_anchor_ms"], 1)
    out["expand_at_size_vs_js_anchor"] = round(out["expand_at_size_ms"] / out["js_anchor_ms"], 2)
    server.should_exit = True
    th.join(timeout=10)
    httpx.Client().close()
    return out


if __name__ == "__main__":
    home = Path(sys.argv[sys.argv.index("--home") + 1]) if "--home" in sys.argv else \
        Path(tempfile.gettempdir()) / "ft-bench-ui-small"
    n = int(sys.argv[sys.argv.index("--nodes") + 1]) if "--nodes" in sys.argv else 2000
    js = sys.argv[sys.argv.index("--case-js") + 1] if "--case-js" in sys.argv else None
    print(json.dumps(main(home, n, js), indent=1))

"""Is a case graph of ~2,000 nodes usable in the browser? Real nodes and edges, drawn in Chromium.

The graph is grown breadth first from the theft of the simulator's small world (bench_ui.py builds it), then
from busy addresses of its economy, with the real one-hop expansion until it holds ``--nodes`` nodes, saved as a case through the API of an in-process
server (uvicorn on a loopback port; the exposure index is not built), and opened in headless Chromium.
Timed: the page until the graph is drawn and laid out (dagre), a re-layout, selecting a node from the node
table, panning and zooming. Prints JSON.

Usage: ``python bench/bench_ui_graph.py [--home DIR] [--nodes N]``.
"""

from __future__ import annotations

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


def main(home: Path, want: int) -> dict:
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
    cache = Path(tempfile.gettempdir()) / f"ft-bench-ui-graph-{want}.json"
    if cache.exists():
        graph = json.loads(cache.read_text())
    else:
        graph = grow(ws, truth, want)
        cache.write_text(json.dumps(graph))
    out = {"nodes": len(graph["nodes"]), "edges": len(graph["edges"]), "grow_s": round(time.perf_counter() - t0, 1)}
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
    r = c.patch(f"/v1/cases/{cid}", json={"graph": graph}, headers={"X-CSRF-Token": csrf}, timeout=120)
    assert r.status_code == 200, r.text
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        ctx = b.new_context(viewport={"width": 1400, "height": 900})
        ctx.add_cookies([{"name": "ft_session", "value": c.cookies.get("ft_session"), "url": url}])
        page = ctx.new_page()
        t0 = time.perf_counter()
        page.goto(f"{url}/ui/cases/{cid}")
        page.wait_for_selector("#cy[data-ready='1']", state="attached", timeout=300_000)
        out["open_and_layout_s"] = round(time.perf_counter() - t0, 2)
        print(json.dumps(out), file=sys.stderr)
        t0 = time.perf_counter()
        page.click("#relayout")
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        out["relayout_s"] = round(time.perf_counter() - t0, 2)
        rows = page.eval_on_selector_all("#nodes-table tbody tr", "rs => rs.length")
        out["table_rows"] = rows
        out["drawn_nodes"] = page.evaluate("() => document.querySelectorAll('#nodes-table tbody tr').length")
        t0 = time.perf_counter()
        page.click(f"#nodes-table tbody tr:nth-child({max(1, rows // 2)}) button:has-text('Select')")
        out["select_from_table_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        page.focus("#cy")
        t0 = time.perf_counter()
        for k in ("ArrowLeft", "ArrowUp", "+", "-") * 5:
            page.keyboard.press(k)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        out["pan_zoom_20_keys_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "ft-ui-2000.png"))
        b.close()
    server.should_exit = True
    th.join(timeout=10)
    httpx.Client().close()
    return out


if __name__ == "__main__":
    home = Path(sys.argv[sys.argv.index("--home") + 1]) if "--home" in sys.argv else \
        Path(tempfile.gettempdir()) / "ft-bench-ui-small"
    n = int(sys.argv[sys.argv.index("--nodes") + 1]) if "--nodes" in sys.argv else 2000
    print(json.dumps(main(home, n), indent=1))

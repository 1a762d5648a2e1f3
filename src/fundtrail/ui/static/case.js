/* The case page: a flow graph (cytoscape.js, dagre layout) expanded through the /v1 graph endpoints.
   Everything the graph shows is also listed in the node, edge and endpoint tables (keyboard and screen
   readers); the graph state (nodes, edges, positions, hidden, pinned, groups, filters) is saved to the case. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("case-data").textContent);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const $ = (id) => document.getElementById(id);
  const status = (t) => { $("status").textContent = t; };
  const g = data.graph || {};
  // The case is saved compactly (a graph of 2,000 nodes must fit the service's request size): fields that
  // are empty, and an edge's id and decimal amount (both follow from its other fields), are left out.
  const NODE_EMPTY = { entity: null, category: null, country: null, sanctioned: false, cluster: null, address_count: 0 };
  function unitsOf(base, decimals) {  // "123456789", 8 -> "1.23456789", exactly (as the API writes it)
    const neg = String(base).startsWith("-"), d = Math.max(0, decimals | 0);
    let s = neg ? String(base).slice(1) : String(base);
    if (d === 0) return (neg ? "-" : "") + s;
    s = s.padStart(d + 1, "0");
    return (neg ? "-" : "") + s.slice(0, -d) + "." + s.slice(-d);
  }
  function unpackNode(n) {
    for (const [k, v] of Object.entries(NODE_EMPTY)) if (!(k in n)) n[k] = v;
    if (!n.addresses) n.addresses = [];
    return n;
  }
  function unpackEdge(e) {
    if (!e.id) e.id = e.source + "->" + e.target + ":" + e.chain + ":" + e.asset;
    if (e.amount === undefined && e.amount_base !== undefined) e.amount = unitsOf(e.amount_base, e.decimals);
    for (const k of ["symbol", "hops", "first_seen"]) if (!(k in e)) e[k] = null;
    return e;
  }
  function packNode(n) {
    const o = {};
    for (const [k, v] of Object.entries(n)) {
      if (v === undefined || (k in NODE_EMPTY && v === NODE_EMPTY[k]) || (k === "addresses" && !v.length)) continue;
      o[k] = v;
    }
    return o;
  }
  function packEdge(e) {
    const o = {};
    for (const [k, v] of Object.entries(e)) {
      if (v === null || v === undefined || k === "id" || (k === "amount" && e.amount_base !== undefined)) continue;
      o[k] = v;
    }
    return o;
  }
  const round = (p) => ({ x: Math.round(p.x), y: Math.round(p.y) });
  function stateOf(g) {
    return {
      nodes: new Map((g.nodes || []).map((n) => [n.id, unpackNode(n)])),
      edges: new Map((g.edges || []).map((e) => unpackEdge(e)).map((e) => [e.id, e])),
      positions: g.positions || {},
      hidden: new Set(g.hidden || []),
      pinned: new Set(g.pinned || []),
      grouped: !!g.grouped,
      expandedBy: g.expandedBy || {},   // node id -> ids it added (for collapse)
      follow: g.follow || null,          // the last follow answer: endpoints, unspent
      minAmount: g.minAmount || 0,
      since: g.since || "",
    };
  }
  const state = stateOf(g);
  let selected = null;
  const LAYERED_MAX = 400;

  async function api(method, url, body) {
    const r = await fetch(url, {
      method, credentials: "same-origin",
      headers: Object.assign({ "Accept": "application/json" },
        body !== undefined ? { "Content-Type": "application/json", "X-CSRF-Token": csrf } : {},
        method !== "GET" ? { "X-CSRF-Token": csrf } : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.detail || (r.status + " " + r.statusText));
    return j;
  }

  const short = (a) => (a && a.length > 16 ? a.slice(0, 8) + "…" + a.slice(-6) : a || "");
  function nodeLabel(n) {
    if (n.kind === "entity") return n.entity + (n.country ? " (" + n.country + ")" : "");
    if (!n.address) return (n.entity || n.id) + " (" + (n.address_count || (n.addresses || []).length) + " addresses)";
    const base = short(n.address);
    return n.entity ? n.entity + (n.country ? " (" + n.country + ")" : "") + "\n" + base : base;
  }
  function seedNodes() {
    for (const s of data.seeds) {
      const id = "a:" + s.chain + ":" + s.address;
      if (!state.nodes.has(id)) state.nodes.set(id, { id, kind: "address", chain: s.chain, address: s.address, seed: true });
      else state.nodes.get(id).seed = true;
    }
  }
  seedNodes();

  // --- cytoscape -------------------------------------------------------------------------------------------
  // dagre (the layered layout of graphs up to LAYERED_MAX nodes) is loaded only for graphs that small: a big
  // case opens without parsing it; a graph that needs it before it came uses the columns layout
  let dagreLoading = null;
  function loadDagre() {
    if (window.cytoscapeDagre) return Promise.resolve();
    const one = (src) => new Promise((ok, fail) => {
      const el = document.createElement("script"); el.src = src; el.onload = ok;
      el.onerror = () => fail(new Error("could not load " + src)); document.head.appendChild(el);
    });
    if (!dagreLoading) {
      dagreLoading = one("/ui/static/vendor/dagre.min.js").then(() => one("/ui/static/vendor/cytoscape-dagre.js"))
        .then(() => { if (window.cytoscapeDagre) window.cytoscape.use(window.cytoscapeDagre); });
    }
    return dagreLoading;
  }
  const cy = window.cytoscape({
    container: $("cy"), wheelSensitivity: 0.3, minZoom: 0.02, maxZoom: 4,
    // big graphs: pan and zoom move a snapshot, labels too small to read are not drawn
    textureOnViewport: true, hideEdgesOnViewport: true, motionBlur: false, pixelRatio: 1,
    // The style has no mappers or functions: every value comes from a selector (classes, data equality).
    // Every element has the plain look (no label; an edge a straight haystack line without arrow: nothing to
    // measure or curve; funds flow left to right in the layouts); the class "loud" adds labels and curved
    // edges with arrows.
    // In a graph of up to LAYERED_MAX nodes every element is loud; in a bigger one only the seeds, the
    // entities and the selected node with its edges and neighbours (drawing 4,000 labels costs seconds;
    // the tables list all of them). Fewer properties per element is less style work for each.
    style: [
      { selector: "node", style: { "background-color": "#8a94a6", "width": 26, "height": 26 } },
      { selector: "node.loud", style: { "label": "data(label)", "text-wrap": "wrap", "font-size": 10, "min-zoomed-font-size": 8,
        "text-valign": "bottom", "text-margin-y": 4, "color": "#1d2430" } },
      { selector: "node[kind = 'entity']", style: { "shape": "round-rectangle", "width": 34, "height": 26 } },
      { selector: "node[kind = 'holding']", style: { "background-color": "#d98a1c", "shape": "diamond" } },
      { selector: "node[?seed]", style: { "background-color": "#c0392b", "border-width": 3, "border-color": "#6b1a12" } },
      { selector: "node[category = 'exchange'], node[category = 'exchange_nokyc'], node[category = 'otc_desk']",
        style: { "background-color": "#2e6fd8" } },
      { selector: "node[category = 'mixer'], node[category = 'coinjoin_coordinator']", style: { "background-color": "#7d3cb5" } },
      { selector: "node[category = 'bridge'], node[category = 'dex'], node[category = 'defi']", style: { "background-color": "#178a7a" } },
      { selector: "node[?sanctioned], node[category = 'sanctioned'], node[category = 'theft_perpetrator']",
        style: { "background-color": "#8e1b1b" } },
      { selector: "node[?pinned]", style: { "border-width": 3, "border-style": "double", "border-color": "#111" } },
      { selector: "node:parent", style: { "background-opacity": 0.08, "label": "data(label)", "text-valign": "top" } },
      { selector: "node:selected", style: { "overlay-color": "#f5b700", "overlay-opacity": 0.35 } },
      { selector: "edge", style: { "width": 1, "curve-style": "haystack", "haystack-radius": 0, "line-color": "#9aa5b8" } },
      { selector: "edge.loud", style: { "curve-style": "bezier", "target-arrow-shape": "triangle", "target-arrow-color": "#9aa5b8", "label": "data(label)", "font-size": 9,
        "text-rotation": "autorotate", "text-background-color": "#fff", "text-background-opacity": 0.85, "min-zoomed-font-size": 8,
        "text-background-padding": 1 } },
      // the width says the amount (relative to the largest edge): six steps, each a rule
      ...[2, 3, 4, 5, 6].map((w) => ({ selector: "edge[w = " + w + "]", style: { "width": w } })),
      { selector: "edge[reason = 'endpoint']", style: { "line-color": "#2e6fd8", "target-arrow-color": "#2e6fd8" } },
      { selector: "edge[reason = 'unspent']", style: { "line-style": "dashed", "line-color": "#d98a1c", "target-arrow-color": "#d98a1c" } },
    ],
  });

  function visibleEdge(e) {
    if (state.hidden.has(e.source) || state.hidden.has(e.target)) return false;
    if (state.minAmount > 0 && parseFloat(e.amount) < state.minAmount) return false;
    // every edge with a time (one-hop flows, endpoints, holdings, mixers) is filtered by when it first arrived
    if (state.since && e.first_seen && e.first_seen.slice(0, 10) < state.since) return false;
    return true;
  }

  // "group a cluster into one node": the addresses of one cluster (2 or more shown) inside one box
  function clusterKey(n) {
    return state.grouped && n.kind !== "entity" && n.cluster !== undefined && n.cluster !== null
      ? "c:" + n.chain + ":" + n.cluster : null;
  }

  // What the canvas should show now: elements keyed by id, each with a signature of its data.
  function wanted() {
    const edges = [...state.edges.values()].filter(visibleEdge);
    const used = new Set();
    for (const e of edges) { used.add(e.source); used.add(e.target); }
    const shown = [];
    const members = new Map();
    for (const n of state.nodes.values()) {
      if (state.hidden.has(n.id)) continue;
      if (!n.seed && !used.has(n.id) && !state.pinned.has(n.id)) continue;
      shown.push(n);
      const k = clusterKey(n);
      if (k) members.set(k, (members.get(k) || []).concat([n]));
    }
    const els = new Map();
    for (const [k, ns] of members) {
      if (ns.length < 2) { members.delete(k); continue; }
      const ent = ns.map((n) => n.entity).find(Boolean);
      const data = { id: k, label: "cluster " + k.split(":").pop() + (ent ? " (" + ent + ")" : "") + " · " + ns.length, kind: "group" };
      els.set(k, { group: "nodes", data, sig: JSON.stringify(data) });
    }
    for (const n of shown) {
      const k = clusterKey(n);
      const data = { id: n.id, label: nodeLabel(n), kind: n.kind, category: n.category || "", sanctioned: !!n.sanctioned,
        seed: !!n.seed, pinned: state.pinned.has(n.id), parent: k && members.has(k) ? k : undefined };
      els.set(n.id, { group: "nodes", data, sig: JSON.stringify(data) });
    }
    let maxAmt = 1e-30;
    for (const e of edges) maxAmt = Math.max(maxAmt, parseFloat(e.amount) || 0);
    for (const e of edges) {
      if (!els.has(e.source) || !els.has(e.target)) continue;  // an end not on the canvas (a partly saved case)
      const data = { id: e.id, source: e.source, target: e.target, reason: e.reason,
        label: trimAmount(e.amount) + " " + (e.symbol || short(e.asset)),
        w: 1 + Math.round(5 * Math.sqrt((parseFloat(e.amount) || 0) / maxAmt)) };
      els.set(e.id, { group: "edges", data, sig: JSON.stringify(data) });
    }
    return els;
  }

  const drawn = new Map();  // id -> signature of what the canvas shows
  let drawnFollow = null;

  // New nodes without a saved position go beside the node they are linked to (right of it for funds it
  // sent, left for funds it received), so an expansion never lays the whole graph out again.
  function placeNew(els) {
    const have = (id) => state.positions[id];
    const sides = new Map();
    const lone = [];
    for (const [id, el] of els) {
      if (el.group !== "nodes" || el.data.kind === "group" || have(id)) continue;
      let anchor = null, dx = 0;
      for (const x of els.values()) {
        if (x.group !== "edges") continue;
        if (x.data.target === id && have(x.data.source)) { anchor = x.data.source; dx = 180; break; }
        if (x.data.source === id && have(x.data.target)) { anchor = x.data.target; dx = -180; break; }
      }
      if (!anchor) { lone.push(id); continue; }
      const k = anchor + "|" + dx;
      sides.set(k, (sides.get(k) || []).concat([id]));
    }
    for (const [k, ids] of sides) {
      const [anchor, dx] = [k.slice(0, k.lastIndexOf("|")), +k.slice(k.lastIndexOf("|") + 1)];
      const p = state.positions[anchor];
      // beside the anchor, clear of what is already in that column
      ids.forEach((id, i) => { state.positions[id] = { x: p.x + dx, y: p.y + (i - (ids.length - 1) / 2) * 40 }; });
    }
    if (lone.length) {
      let maxY = 0, minX = 0;
      for (const p of Object.values(state.positions)) { maxY = Math.max(maxY, p.y); minX = Math.min(minX, p.x); }
      lone.forEach((id, i) => { state.positions[id] = { x: minX + (i % 20) * 60, y: maxY + 80 + Math.floor(i / 20) * 50 }; });
    }
  }

  // The layout of big graphs, linear in its size: a column per hop from the seeds (funds sent to the
  // right, received to the left), nodes stacked in each column; a part no seed reaches is laid out the
  // same way from one of its nodes.
  function columns(els) {
    const ids = [], seeds = [], out = new Map(), inc = new Map();
    for (const [id, el] of els) {
      if (el.group === "nodes") { if (el.data.kind !== "group") { ids.push(id); if (el.data.seed) seeds.push(id); } continue; }
      const a = el.data.source, b = el.data.target;
      (out.get(a) || out.set(a, []).get(a)).push(b);
      (inc.get(b) || inc.set(b, []).get(b)).push(a);
    }
    const depth = new Map();
    const queue = [];
    for (const id of seeds) { depth.set(id, 0); queue.push(id); }
    let next = 0;  // the first node not yet placed, for the parts no seed reaches
    for (let i = 0; ; i++) {
      if (i >= queue.length) {  // a part no seed reaches: its first node starts in the seeds' column
        while (next < ids.length && depth.has(ids[next])) next++;
        if (next >= ids.length) break;
        depth.set(ids[next], 0); queue.push(ids[next]);
      }
      const n = queue[i], d = depth.get(n);
      for (const m of out.get(n) || []) if (!depth.has(m)) { depth.set(m, d + 1); queue.push(m); }
      for (const m of inc.get(n) || []) if (!depth.has(m)) { depth.set(m, d - 1); queue.push(m); }
    }
    const cols = new Map();
    for (const id of ids) { const d = depth.get(id); if (!cols.has(d)) cols.set(d, []); cols.get(d).push(id); }
    for (const [d, col] of cols) col.forEach((id, i) => { state.positions[id] = { x: d * 220, y: (i - (col.length - 1) / 2) * 38 }; });
  }
  function nodeCount(els) {
    let n = 0;
    for (const el of els.values()) if (el.group === "nodes" && el.data.kind !== "group") n++;
    return n;
  }

  // Which elements are drawn quietly (no label; edges as plain lines): in a big graph, all but the seeds, the
  // entities and the selected node with its edges and neighbours. Returns the ids of the quiet ones.
  function quietIds(els) {
    const q = new Set();
    if (nodeCount(els) <= LAYERED_MAX) return q;
    const near = new Set(selected ? [selected] : []);
    if (selected) for (const [id, el] of els) {
      if (el.group === "edges" && (el.data.source === selected || el.data.target === selected)) { near.add(id); near.add(el.data.source); near.add(el.data.target); }
    }
    for (const [id, el] of els) {
      if (near.has(id) || el.data.kind === "group") continue;
      if (el.group === "nodes" && (el.data.seed || el.data.kind === "entity")) continue;
      q.add(id);
    }
    return q;
  }
  let quietNow = new Set();  // ids drawn quietly now
  let lastEls = new Map();   // what the last draw asked for
  // Bring the classes to `quietIds` touching only the elements whose class changes (selecting a node in a
  // graph of 4,000 elements changes a few dozen).
  function quiet() {
    const want = quietIds(lastEls);
    cy.batch(() => {
      for (const id of quietNow) if (!want.has(id)) { const x = cy.getElementById(id); if (x.length) x.addClass("loud"); }
      for (const id of want) if (!quietNow.has(id)) { const x = cy.getElementById(id); if (x.length) x.removeClass("loud"); }
    });
    quietNow = want;
  }

  // Fit the graph into view from the node positions alone: cytoscape's fit measures every label first,
  // which takes seconds at 2,000 nodes.
  function fitView() {
    let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
    cy.nodes().forEach((n) => {
      if (n.isParent()) return;
      const p = n.position();
      x1 = Math.min(x1, p.x); x2 = Math.max(x2, p.x); y1 = Math.min(y1, p.y); y2 = Math.max(y2, p.y);
    });
    if (!isFinite(x1)) return;
    const w = cy.width(), h = cy.height(), pad = 60;
    const z = Math.max(cy.minZoom(), Math.min(1.5, (w - 2 * pad) / Math.max(1, x2 - x1), (h - 2 * pad) / Math.max(1, y2 - y1)));
    cy.viewport({ zoom: z, pan: { x: w / 2 - z * (x1 + x2) / 2, y: h / 2 - z * (y1 + y2) / 2 } });
  }

  // Bring the canvas to what `wanted()` says, touching only what changed (one batch), and the tables.
  function draw(layout) {
    const els = wanted();
    const t0 = performance.now();
    let rebuild = false;
    for (const [id, el] of els) {  // a node moving in or out of a group box: draw everything again
      if (el.group !== "nodes" || !drawn.has(id)) continue;
      const cur = cy.getElementById(id);
      if (cur.length && (cur.data("parent") || undefined) !== el.data.parent) { rebuild = true; break; }
    }
    const positioned = Object.keys(state.positions).length > 0;
    if (!layout && positioned) placeNew(els);
    lastEls = els;
    const q = quietIds(els);
    const missing = !positioned || layout;
    const big = nodeCount(els) > LAYERED_MAX;
    const layered = !big && !!window.cytoscapeDagre;  // dagre up to LAYERED_MAX nodes (when it loaded)
    let t1 = performance.now();
    // otherwise the layout is columns by hops from the seeds, computed before the nodes are added so that
    // they are added where they belong (no second pass moving 2,000 nodes)
    if (missing && !layered) columns(els);
    let layoutMs = performance.now() - t1;
    let moved = 0;
    const tb = performance.now();
    cy.batch(() => {
      if (rebuild) { cy.elements().remove(); drawn.clear(); quietNow = new Set(); }
      const gone = cy.collection();
      for (const id of drawn.keys()) if (!els.has(id)) { gone.merge(cy.getElementById(id)); drawn.delete(id); }
      if (gone.length) cy.remove(gone);
      const add = [];
      for (const [id, el] of els) {
        const sig = drawn.get(id);
        if (sig === undefined) {
          const def = { group: el.group, data: Object.assign({}, el.data), classes: q.has(id) ? "" : "loud" };
          if (q.has(id)) quietNow.add(id);
          if (el.group === "nodes" && el.data.kind !== "group" && state.positions[id]) def.position = Object.assign({}, state.positions[id]);
          add.push(def);
        } else if (sig !== el.sig) {
          const cur = cy.getElementById(id);
          const d = Object.assign({}, el.data); delete d.parent; delete d.source; delete d.target; delete d.id;
          cur.data(d);
          if (el.group === "nodes") { if (el.data.pinned) cur.lock(); else cur.unlock(); }
        }
        drawn.set(id, el.sig);
      }
      if (add.length) {
        const added = cy.add(add);
        if (add.some((d) => d.data.pinned)) added.nodes("[?pinned]").lock();
        moved = add.length;
      }
      for (const id of quietNow) if (!els.has(id)) quietNow.delete(id);
    });
    const tBatch = performance.now() - tb;
    quiet();  // the elements already drawn whose class changes (the new ones came with theirs)
    if (missing) {
      t1 = performance.now();
      // dagre (layered, left to right) up to LAYERED_MAX nodes; beyond, the columns computed above
      if (layered) {
        cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 120, animate: false, fit: true }).run();
        cy.nodes().forEach((n) => { if (!n.isParent()) state.positions[n.id()] = Object.assign({}, n.position()); });
      } else {
        if (moved < els.size) {  // nodes drawn before (a new layout): moved in one pass
          const ns = cy.nodes().filter((n) => !n.isParent());
          cy.batch(() => ns.positions((n) => Object.assign({}, state.positions[n.id()] || n.position())));
        }
        fitView();
      }
      $("cy").dataset.layoutMs = String(Math.round(layoutMs + performance.now() - t1));
    } else if (!drawnOnce) {
      if (big) fitView(); else cy.fit(undefined, 30);
    }
    drawnOnce = true;
    const tt = performance.now();
    tables();
    $("cy").dataset.tablesMs = String(Math.round(performance.now() - tt));
    $("cy").dataset.batchMs = String(Math.round(tBatch));
    if (drawnFollow !== state.follow) { drawnFollow = state.follow; sankey(); }
    const box = $("cy").dataset;  // what is drawn, for tests and benchmarks
    box.drawMs = String(Math.round(performance.now() - t0));
    box.nodes = String(cy.nodes().length - cy.nodes(":parent").length);
    box.edges = String(cy.edges().length);
    box.groups = String(cy.nodes(":parent").length);
  }
  let drawnOnce = false;

  function trimAmount(a) {
    if (a === undefined || a === null) return "";
    const s = String(a);
    if (s.indexOf(".") < 0) return s;
    return s.replace(/0+$/, "").replace(/\.$/, "");
  }

  // --- tables (the accessible view of the graph) ----------------------------------------------------------
  function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
  function link(td, href, text) { const a = document.createElement("a"); a.href = href; a.textContent = text; a.className = "mono"; td.appendChild(a); }
  function btn(td, text, fn, label) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = text; b.addEventListener("click", fn);
    if (label) b.setAttribute("aria-label", label); td.appendChild(b); return b;
  }
  function nodeName(id) { const n = state.nodes.get(id); return n ? nodeLabel(n).replace("\n", " ") : id; }

  // A table shown PAGE_ROWS rows at a time; rows are keyed and rebuilt only when their content changed.
  const PAGE_ROWS = 200;
  function pagedTable(tableId, what) {
    const table = $(tableId), tb = table.tBodies[0];
    const nav = document.createElement("nav"); nav.className = "pager"; nav.setAttribute("aria-label", what + " pages");
    const prev = document.createElement("button"); prev.type = "button"; prev.textContent = "Previous " + PAGE_ROWS;
    const info = document.createElement("span"); info.setAttribute("aria-live", "polite");
    const next = document.createElement("button"); next.type = "button"; next.textContent = "Next " + PAGE_ROWS;
    prev.setAttribute("aria-label", "previous " + what); next.setAttribute("aria-label", "next " + what);
    nav.append(prev, info, next); nav.hidden = true; table.after(nav);
    const t = { page: 0, rows: new Map(), items: [] };
    t.update = (items) => {
      t.items = items;
      const pages = Math.max(1, Math.ceil(items.length / PAGE_ROWS));
      t.page = Math.min(t.page, pages - 1);
      const lo = t.page * PAGE_ROWS, slice = items.slice(lo, lo + PAGE_ROWS);
      const act = document.activeElement;
      const row = act && act.closest ? act.closest("#" + tableId + " tr") : null;
      const keep = row && row.dataset.key ? [row.dataset.key, act.textContent] : null;
      const live = new Set();
      let cur = tb.firstChild;
      for (const it of slice) {
        live.add(it.key);
        let r = t.rows.get(it.key);
        if (!r || r.sig !== it.sig) { r = { tr: it.build(), sig: it.sig }; r.tr.dataset.key = it.key; t.rows.set(it.key, r); }
        if (r.tr === cur) cur = cur.nextSibling; else tb.insertBefore(r.tr, cur);
      }
      while (cur) { const nx = cur.nextSibling; tb.removeChild(cur); cur = nx; }
      for (const k of [...t.rows.keys()]) if (!live.has(k)) t.rows.delete(k);
      nav.hidden = pages < 2;
      prev.disabled = t.page === 0; next.disabled = t.page >= pages - 1;
      info.textContent = "rows " + (items.length ? lo + 1 : 0) + "–" + (lo + slice.length) + " of " + items.length;
      if (keep && document.activeElement !== act) {  // the focused row was redrawn or moved: focus it again
        const r = t.rows.get(keep[0]);
        const b = r && [...r.tr.querySelectorAll("button")].find((x) => x.textContent === keep[1]);
        if (b) b.focus();
      }
    };
    prev.addEventListener("click", () => { if (t.page > 0) { t.page--; t.update(t.items); } });
    next.addEventListener("click", () => { t.page++; t.update(t.items); });
    t.show = (key) => {  // the page holding `key`
      const i = t.items.findIndex((x) => x.key === key);
      if (i >= 0 && Math.floor(i / PAGE_ROWS) !== t.page) { t.page = Math.floor(i / PAGE_ROWS); t.update(t.items); }
    };
    return t;
  }
  const nodesTable = pagedTable("nodes-table", "nodes");
  const edgesTable = pagedTable("edges-table", "edges");

  function nodeRow(n) {
    const tr = document.createElement("tr"); tr.dataset.id = n.id;
    const td = cell(tr, "");
    if (n.address) link(td, "/ui/address/" + encodeURIComponent(n.chain) + "/" + encodeURIComponent(n.address), n.address);
    else if (n.kind === "entity") link(td, "/ui/entity/" + encodeURIComponent(n.entity), n.entity);
    else td.textContent = nodeLabel(n);
    cell(tr, n.seed ? "seed" : n.kind); cell(tr, n.entity || ""); cell(tr, n.category || ""); cell(tr, n.country || "");
    cell(tr, [state.hidden.has(n.id) ? "hidden" : "", state.pinned.has(n.id) ? "pinned" : ""].filter(Boolean).join(", "));
    const acts = cell(tr, "");
    btn(acts, "Select", () => select(n.id), "select " + nodeName(n.id));
    if (n.address) {
      btn(acts, "Expand →", () => expand(n.id, "forward"), "expand forward " + nodeName(n.id));
      btn(acts, "← Expand", () => expand(n.id, "backward"), "expand backward " + nodeName(n.id));
    }
    return tr;
  }

  function tables() {
    const ns = [];
    for (const n of state.nodes.values()) {
      // the signature is what the row shows: a row is rebuilt only when that changed
      ns.push({ key: n.id, sig: [!!n.seed, n.kind, n.address, n.entity, n.category, n.country, nodeLabel(n),
        state.hidden.has(n.id), state.pinned.has(n.id)].join("|"), build: () => nodeRow(n) });
    }
    nodesTable.update(ns);
    const es = [];
    for (const e of state.edges.values()) {
      if (!visibleEdge(e)) continue;
      es.push({ key: e.id, sig: [nodeName(e.source), nodeName(e.target), e.amount, e.symbol, e.reason, e.first_seen].join("|"),
        build: () => {
          const tr = document.createElement("tr");
          cell(tr, nodeName(e.source)); cell(tr, nodeName(e.target)); cell(tr, e.amount, "num"); cell(tr, e.symbol || e.asset); cell(tr, e.reason);
          cell(tr, (e.first_seen || "").slice(0, 16));
          return tr;
        } });
    }
    edgesTable.update(es);
    const f = state.follow;
    if (f && drawnFollow !== f) {
      const pb = $("endpoints-table").tBodies[0]; pb.textContent = "";
      for (const e of f.endpoints) {
        const tr = document.createElement("tr");
        tr.dataset.entity = e.entity; tr.dataset.country = e.country || ""; tr.dataset.chain = e.chain;
        tr.dataset.asset = e.asset; tr.dataset.amountBase = e.amount_base;
        const td = cell(tr, ""); link(td, "/ui/entity/" + encodeURIComponent(e.entity), e.entity);
        cell(tr, e.category); cell(tr, e.country || ""); cell(tr, e.chain); cell(tr, e.amount, "num");
        cell(tr, e.symbol || e.asset); cell(tr, String(e.hops), "num"); cell(tr, (e.first_seen || "").slice(0, 16));
        pb.appendChild(tr);
      }
      const ub = $("unspent-table").tBodies[0]; ub.textContent = "";
      for (const h of f.unspent) {
        const tr = document.createElement("tr");
        cell(tr, h.chain); const td = cell(tr, ""); link(td, "/ui/address/" + encodeURIComponent(h.chain) + "/" + encodeURIComponent(h.address), h.address);
        cell(tr, h.amount, "num"); cell(tr, h.symbol || h.asset); cell(tr, (h.since || "").slice(0, 16));
        ub.appendChild(tr);
      }
    }
  }

  // --- Sankey: endpoint entity -> country, one asset ------------------------------------------------------
  function sankey() {
    const box = $("sankey"); box.textContent = "";
    const f = state.follow; if (!f || !f.endpoints.length) return;
    const sel = $("sankey-asset");
    const assets = [...new Set(f.endpoints.map((e) => e.chain + "|" + e.asset + "|" + (e.symbol || e.asset)))];
    if (sel.options.length !== assets.length) {
      sel.textContent = "";
      for (const a of assets) { const o = document.createElement("option"); o.value = a; o.textContent = a.split("|")[2] + " (" + a.split("|")[0] + ")"; sel.appendChild(o); }
    }
    const [chain, asset] = (sel.value || assets[0]).split("|");
    const rows = f.endpoints.filter((e) => e.chain === chain && e.asset === asset);
    const total = rows.reduce((s, e) => s + parseFloat(e.amount), 0) || 1;
    const ents = [...new Set(rows.map((e) => e.entity))];
    const ctry = [...new Set(rows.map((e) => e.country || "unknown"))];
    const H = 260, W = 640, pad = 6;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + (H + 20)); svg.setAttribute("width", W); svg.setAttribute("height", H + 20);
    svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "Sankey diagram from endpoint entities to countries");
    function column(keys, x, amountOf) {
      const out = {}; let y = 0; const avail = H - pad * (keys.length - 1);
      for (const k of keys) { const h = Math.max(2, avail * amountOf(k) / total); out[k] = { x, y, h, used: 0 }; y += h + pad; }
      return out;
    }
    const L = column(ents, 150, (k) => rows.filter((e) => e.entity === k).reduce((s, e) => s + parseFloat(e.amount), 0));
    const R = column(ctry, 470, (k) => rows.filter((e) => (e.country || "unknown") === k).reduce((s, e) => s + parseFloat(e.amount), 0));
    for (const e of rows) {
      const a = L[e.entity], b = R[e.country || "unknown"]; const h = Math.max(1, (H - pad * 10) * parseFloat(e.amount) / total);
      const p = document.createElementNS(ns, "path");
      const y1 = a.y + a.used + h / 2, y2 = b.y + b.used + h / 2; a.used += h; b.used += h;
      p.setAttribute("d", "M" + (a.x + 10) + "," + y1 + " C" + (a.x + 160) + "," + y1 + " " + (b.x - 160) + "," + y2 + " " + b.x + "," + y2);
      p.setAttribute("class", "flow"); p.setAttribute("stroke-width", h);
      const t = document.createElementNS(ns, "title"); t.textContent = e.entity + " → " + (e.country || "unknown") + ": " + e.amount + " " + (e.symbol || e.asset);
      p.appendChild(t); svg.appendChild(p);
    }
    function labels(col, anchorRight) {
      for (const [k, v] of Object.entries(col)) {
        const r = document.createElementNS(ns, "rect"); r.setAttribute("x", v.x); r.setAttribute("y", v.y); r.setAttribute("width", 10); r.setAttribute("height", v.h); r.setAttribute("class", "bar");
        svg.appendChild(r);
        const tx = document.createElementNS(ns, "text"); tx.textContent = k; tx.setAttribute("y", v.y + v.h / 2 + 4);
        tx.setAttribute("x", anchorRight ? v.x - 4 : v.x + 14); tx.setAttribute("text-anchor", anchorRight ? "end" : "start");
        svg.appendChild(tx);
      }
    }
    labels(L, true); labels(R, false);
    box.appendChild(svg);
  }

  // --- actions ---------------------------------------------------------------------------------------------
  function select(id) {
    selected = id;
    cy.$(":selected").unselect();
    const el = cy.getElementById(id); if (el && el.length) el.select();
    quiet();
    const n = state.nodes.get(id);
    for (const b of ["expand-fwd", "expand-back"]) $(b).disabled = !(n && n.address);
    for (const b of ["collapse", "hide", "pin"]) $(b).disabled = !n;
    $("pin").textContent = state.pinned.has(id) ? "Unpin" : "Pin";
    const d = $("details"); d.textContent = "";
    if (!n) return;
    const h = document.createElement("h2"); h.textContent = nodeLabel(n).replace("\n", " "); d.appendChild(h);
    const p = document.createElement("p");
    p.textContent = [n.seed ? "seed" : n.kind, n.chain, n.category, n.country].filter(Boolean).join(" · ");
    d.appendChild(p);
    if (n.address) { const a = document.createElement("a"); a.href = "/ui/address/" + encodeURIComponent(n.chain) + "/" + encodeURIComponent(n.address); a.textContent = "Address page"; d.appendChild(a); }
    if (n.addresses && n.addresses.length) {
      const ul = document.createElement("ul");
      for (const x of n.addresses.slice(0, 20)) { const li = document.createElement("li"); li.textContent = x; li.className = "mono"; ul.appendChild(li); }
      d.appendChild(ul);
    }
  }

  function merge(answer, from) {
    const added = [];
    for (const n of answer.nodes) {
      if (!state.nodes.has(n.id)) { state.nodes.set(n.id, n); added.push(n.id); }
      else Object.assign(state.nodes.get(n.id), n, { seed: state.nodes.get(n.id).seed });
    }
    for (const e of answer.edges) state.edges.set(e.id, e);
    if (from) state.expandedBy[from] = (state.expandedBy[from] || []).concat(added);
    return added.length;
  }

  async function expand(id, direction) {
    const n = state.nodes.get(id); if (!n || !n.address) return;
    status("expanding " + short(n.address) + " " + direction + "…");
    try {
      const t0 = performance.now();
      const a = await api("POST", "/v1/graph/expand", { chain: n.chain, address: n.address, direction, model: $("model").value });
      const k = merge(a, id);
      draw(false); save();
      status(k + " new node(s), " + a.edges.length + " edge(s) in " + Math.round(performance.now() - t0) + " ms");
    } catch (e) { status("expansion failed: " + e.message); }
  }

  async function follow() {
    status("following the seeds to their endpoints…");
    try {
      const a = await api("POST", "/v1/cases/" + data.case_id + "/follow");
      merge(a, null);
      for (const sn of a.seeds || []) if (state.nodes.has(sn.id)) Object.assign(state.nodes.get(sn.id), sn, { seed: true });
      state.follow = { endpoints: a.endpoints, unspent: a.unspent, model: a.model };
      draw(true); save();
      status(a.endpoints.length + " endpoint(s), " + a.unspent.length + " unspent holding(s) (" + a.model + ")");
    } catch (e) { status("follow failed: " + e.message); }
  }

  function collapse(id) {
    const gone = new Set();
    const walk = (x) => { for (const c of state.expandedBy[x] || []) { if (!gone.has(c) && !state.nodes.get(c)?.seed) { gone.add(c); walk(c); } } delete state.expandedBy[x]; };
    walk(id);
    for (const e of [...state.edges.values()]) if ((e.source === id && gone.has(e.target)) || (e.target === id && gone.has(e.source)) || gone.has(e.source) || gone.has(e.target)) state.edges.delete(e.id);
    for (const x of gone) { state.nodes.delete(x); delete state.positions[x]; state.pinned.delete(x); state.hidden.delete(x); }
    draw(false); save(); status("collapsed " + gone.size + " node(s)");
  }

  // --- saving: only what changed since the last save, in parts ------------------------------------------
  // PATCH /v1/cases/{id}/graph takes the nodes and edges added or changed, those removed, the positions that
  // moved, the expansions and the view settings; a change that is big (a new layout of 10,000 nodes, a first
  // save) goes in parts of at most SAVE_PART bytes, nodes before the edges that need them, each within the
  // service's request limit. `saved` holds what the server has (per item, its JSON); a part that fails
  // leaves its items unsaved, so the next save sends them again.
  const SAVE_PART = 512 * 1024;
  function current(state) {
    const positions = new Map();
    for (const [k, p] of Object.entries(state.positions)) if (state.nodes.has(k)) positions.set(k, JSON.stringify(round(p)));
    const str = (m, f) => { const o = new Map(); for (const [k, v] of m) o.set(k, JSON.stringify(f(v))); return o; };
    return {
      nodes: str(state.nodes, packNode), edges: str(state.edges, packEdge), positions,
      expanded_by: str(new Map(Object.entries(state.expandedBy)), (v) => v),
      view: str(new Map([["hidden", [...state.hidden]], ["pinned", [...state.pinned]], ["grouped", state.grouped],
        ["follow", state.follow], ["minAmount", state.minAmount], ["since", state.since]]), (v) => v),
    };
  }
  // what the server has: the graph as loaded (read again from the page when first needed, so that opening a
  // case does not pay for it)
  let saved = null;
  let saving = null, saveAgain = false, saveTimer = null;
  function changes() {
    if (!saved) saved = current(stateOf(JSON.parse($("case-data").textContent).graph || {}));
    const now = current(state), parts = [];
    let part = null, size = 0;
    function put(kind, key, text, remove) {  // one item into the current part (a new part when it is full)
      const n = (text ? text.length : 0) + key.length + 8;
      if (!part || size + n > SAVE_PART) { part = { body: {}, done: [] }; parts.push(part); size = 64; }
      size += n;
      const b = part.body;
      if (kind === "nodes" || kind === "edges") { if (remove) (b["remove_" + kind] = b["remove_" + kind] || []).push(key); else (b[kind] = b[kind] || []).push(JSON.parse(text)); }
      else if (kind === "view") (b.view = b.view || {})[key] = JSON.parse(text);
      else (b[kind] = b[kind] || {})[key] = remove ? null : JSON.parse(text);
      part.done.push([kind, key, remove ? undefined : text]);
    }
    const upserts = (kind) => { for (const [k, t] of now[kind]) if (saved[kind].get(k) !== t) put(kind, k, t, false); };
    const removals = (kind) => { for (const k of saved[kind].keys()) if (!now[kind].has(k)) put(kind, k, null, true); };
    upserts("nodes"); upserts("edges"); removals("edges"); removals("nodes");
    for (const kind of ["positions", "expanded_by"]) {
      upserts(kind);
      // a removed node's position and expansion go with it on the server
      for (const k of saved[kind].keys()) if (!now[kind].has(k) && now.nodes.has(k)) put(kind, k, null, true);
    }
    upserts("view");
    return parts;
  }
  async function saveNow() {
    cy.nodes().forEach((n) => { if (!n.isParent()) state.positions[n.id()] = Object.assign({}, n.position()); });
    const parts = changes();
    for (const p of parts) {
      await api("PATCH", "/v1/cases/" + data.case_id + "/graph", p.body);
      for (const [kind, key, text] of p.done) {
        if (text === undefined) saved[kind].delete(key); else saved[kind].set(key, text);
      }
      if (p.body.remove_nodes) for (const k of p.body.remove_nodes) { saved.positions.delete(k); saved.expanded_by.delete(k); }
    }
    const box = $("cy").dataset;
    box.saved = String(Date.now());
    box.savedParts = String(parts.length);
  }
  function save() {
    if (!data.can_write) return;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => {
      if (saving) { saveAgain = true; return; }  // one save at a time; the next one starts when it ends
      saving = saveNow().catch((e) => status("could not save the case: " + e.message)).finally(() => {
        saving = null;
        if (saveAgain) { saveAgain = false; save(); }
      });
    }, 400);
  }

  function download(name, blob) {
    const a = document.createElement("a"); a.href = URL.createObjectURL(blob); a.download = name;
    document.body.appendChild(a); a.click(); a.remove(); setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  function svgPicture() {
    const bb = cy.elements().boundingBox(); const pad = 40;
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
    let out = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="' + (bb.x1 - pad) + " " + (bb.y1 - pad) + " " + (bb.w + 2 * pad) + " " + (bb.h + 2 * pad) + '" font-family="sans-serif" font-size="10">';
    cy.edges().forEach((e) => {
      const s = e.source().position(), t = e.target().position();
      out += '<line x1="' + s.x + '" y1="' + s.y + '" x2="' + t.x + '" y2="' + t.y + '" stroke="#9aa5b8" stroke-width="' + e.data("w") + '"/>';
      out += '<text x="' + (s.x + t.x) / 2 + '" y="' + ((s.y + t.y) / 2 - 3) + '" text-anchor="middle">' + esc(e.data("label")) + "</text>";
    });
    cy.nodes().forEach((n) => {
      if (n.isParent()) return;
      const p = n.position();
      out += '<circle cx="' + p.x + '" cy="' + p.y + '" r="12" fill="' + n.style("background-color") + '"/>';
      out += '<text x="' + p.x + '" y="' + (p.y + 24) + '" text-anchor="middle">' + esc(String(n.data("label")).replace("\n", " ")) + "</text>";
    });
    return out + "</svg>";
  }

  // --- wiring ----------------------------------------------------------------------------------------------
  cy.on("tap", "node", (ev) => { if (!ev.target.isParent()) select(ev.target.id()); });
  cy.on("dragfree", "node", (ev) => { state.positions[ev.target.id()] = Object.assign({}, ev.target.position()); save(); });
  $("follow").addEventListener("click", follow);
  $("expand-fwd").addEventListener("click", () => selected && expand(selected, "forward"));
  $("expand-back").addEventListener("click", () => selected && expand(selected, "backward"));
  $("collapse").addEventListener("click", () => selected && collapse(selected));
  $("hide").addEventListener("click", () => { if (selected) { state.hidden.add(selected); draw(false); save(); } });
  $("unhide").addEventListener("click", () => { state.hidden.clear(); draw(false); save(); });
  $("pin").addEventListener("click", () => {
    if (!selected) return;
    if (state.pinned.has(selected)) state.pinned.delete(selected); else state.pinned.add(selected);
    draw(false); select(selected); save();
  });
  $("group").setAttribute("aria-pressed", String(state.grouped));
  // a new layout of a small graph waits for dagre (loaded once); a big one is laid out at once
  const withLayout = (fn) => { if (nodeCount(lastEls) <= LAYERED_MAX && !window.cytoscapeDagre) loadDagre().then(fn, fn); else fn(); };
  $("group").addEventListener("click", () => withLayout(() => { state.grouped = !state.grouped; $("group").setAttribute("aria-pressed", String(state.grouped)); draw(true); save(); }));
  $("relayout").addEventListener("click", () => withLayout(() => { state.positions = {}; draw(true); save(); }));
  $("min-amount").value = state.minAmount || 0;
  $("since").value = state.since || "";
  $("min-amount").addEventListener("change", () => { state.minAmount = parseFloat($("min-amount").value) || 0; draw(false); save(); });
  $("since").addEventListener("change", () => { state.since = $("since").value; draw(false); save(); });
  $("sankey-asset").addEventListener("change", sankey);
  $("model").addEventListener("change", async () => {
    try { await api("PATCH", "/v1/cases/" + data.case_id, { model: $("model").value }); await follow(); }
    catch (e) { status("could not change the model: " + e.message); }
  });
  const notes = $("save-notes");
  if (notes) notes.addEventListener("click", async () => {
    try { await api("PATCH", "/v1/cases/" + data.case_id, { notes: $("notes").value }); status("notes saved"); }
    catch (e) { status("could not save the notes: " + e.message); }
  });
  const share = $("share");
  if (share) share.addEventListener("click", async () => {
    try { const r = await api("POST", "/v1/cases/" + data.case_id + "/share", { user: $("share-user").value }); status("shared with " + r.shared_with.join(", ")); }
    catch (e) { status("could not share: " + e.message); }
  });
  const evidence = $("export-evidence");
  if (evidence) evidence.addEventListener("click", async () => {
    // the evidence bundle of the case's incident (POST /v1/incidents/{name}/evidence), primary model = the case's
    const out = $("evidence-result");
    const freeze = $("evidence-freeze").checked;
    evidence.disabled = true;
    out.textContent = "exporting the evidence bundle…";
    try {
      const r = await api("POST", "/v1/incidents/" + encodeURIComponent(data.incident) + "/evidence",
        { primary: $("model").value, freeze_requests: freeze });
      out.textContent = "";
      const p = document.createElement("p");
      const a = document.createElement("a");
      a.id = "evidence-download"; a.href = r.download; a.download = r.id + ".zip";
      a.textContent = "Download the evidence bundle (" + r.bytes.toLocaleString() + " bytes)";
      p.appendChild(a);
      if (r.freeze_requests) {
        const b = document.createElement("a");
        b.id = "evidence-packets"; b.href = r.freeze_requests.download; b.download = r.id + "-freeze-requests.zip";
        b.textContent = "Download the freeze-request packets (" + r.freeze_requests.packets + ")";
        p.appendChild(document.createTextNode(" · ")); p.appendChild(b);
      }
      const note = document.createElement("p");
      note.className = "muted";
      note.appendChild(document.createTextNode("SHA-256 "));
      const code = document.createElement("code"); code.id = "evidence-digest"; code.textContent = r.sha256;
      note.appendChild(code);
      note.appendChild(document.createTextNode("; pinned at " + r.pins.chains.map((c) => c.chain + " height " + c.height).join(", ") +
        "; tags as of " + r.pins.tags_as_of + ". Check it with: fundtrail evidence verify " + r.id + ".zip"));
      out.appendChild(p); out.appendChild(note);
      a.focus();
    } catch (e) { out.textContent = "could not export the evidence bundle: " + e.message; }
    finally { evidence.disabled = false; }
  });
  $("export-png").addEventListener("click", () => download(data.case_id + ".png", cy.png({ output: "blob", full: true, scale: 2, bg: "#ffffff" })));
  $("export-svg").addEventListener("click", () => download(data.case_id + ".svg", new Blob([svgPicture()], { type: "image/svg+xml" })));
  // Keyboard moves of the view are short animations towards a target that each key moves on: while one runs,
  // the canvas draws the nodes only (hideEdgesOnViewport), so keys pressed in a row cost a full frame once.
  let viewTarget = null;
  function moveView(dx, dy, factor) {
    const cur = viewTarget || { zoom: cy.zoom(), pan: Object.assign({}, cy.pan()) };
    const zoom = Math.max(cy.minZoom(), Math.min(cy.maxZoom(), cur.zoom * factor));
    const cx = cy.width() / 2, cyy = cy.height() / 2, k = zoom / cur.zoom;  // zoom about the view's centre
    const next = { zoom, pan: { x: cx - (cx - cur.pan.x) * k + dx, y: cyy - (cyy - cur.pan.y) * k + dy } };
    viewTarget = next;
    $("cy").dataset.moving = "1";  // for tests and benchmarks: the view is still moving
    cy.stop();
    cy.animate({ zoom: next.zoom, pan: next.pan }, { duration: 120, complete: () => {
      if (viewTarget === next) { viewTarget = null; $("cy").dataset.moving = "0"; }
    } });
  }
  $("cy").addEventListener("keydown", (ev) => {
    // keyboard on the canvas: arrows pan, +/- zoom, Enter selects the next node
    const step = 40;
    if (ev.key === "ArrowLeft") moveView(step, 0, 1);
    else if (ev.key === "ArrowRight") moveView(-step, 0, 1);
    else if (ev.key === "ArrowUp") moveView(0, step, 1);
    else if (ev.key === "ArrowDown") moveView(0, -step, 1);
    else if (ev.key === "+") moveView(0, 0, 1.2);
    else if (ev.key === "-") moveView(0, 0, 1 / 1.2);
    else if (ev.key === "Enter") {
      const ns = cy.nodes().filter((n) => !n.isParent()); if (!ns.length) return;
      const i = ns.map((n) => n.id()).indexOf(selected);
      select(ns[(i + 1) % ns.length].id());
    } else return;
    ev.preventDefault();
  });
  function start() {
    draw(false);
    $("cy").dataset.readyAt = String(Math.round(performance.now()));  // ms since the navigation started
    $("cy").dataset.ready = "1";
    // when the first frame with the graph was painted (ms since the navigation started), for benchmarks
    requestAnimationFrame(() => setTimeout(() => { $("cy").dataset.paintedAt = String(Math.round(performance.now())); }, 0));
  }
  if (nodeCount(wanted()) <= LAYERED_MAX) {  // a small graph: dagre first (it lays the graph out, now or later)
    loadDagre().catch((e) => status(e.message)).then(start);
  } else start();
})();

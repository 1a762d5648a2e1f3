"""Cases: an investigation kept in the service store (seeds, taint model, the graph, layout, notes, sharing).

A case is created from an incident (its seeds) or from seeds given directly. ``graph`` is the state the UI
draws: nodes and edges exactly as the /v1 graph endpoints returned them, plus ``positions`` (the layout),
``hidden``, ``pinned``, ``groups`` and the filters; the service stores it as given (JSON, bounded in size)
and never recomputes it. It is saved whole (``update_case``) or by changes (``patch_graph``: the nodes and
edges added or changed, those removed, the positions that moved and the view settings; a big graph is
saved in several such requests, each under the service's request limit). Who may see a case: its owner,
the users it is shared with, and admins; who may change it: the owner and the users it is shared with, if
their role is investigator or admin.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fundtrail.errors import AuthError, ConflictError, FieldError, NotFoundError
from fundtrail.incidents import get_incident
from fundtrail.model.trace import Seed
from fundtrail.service.store import Store, now_iso
from fundtrail.store import Workspace
from fundtrail.trace.taint import MODELS

MAX_GRAPH = 32 << 20  # bytes of graph JSON a case may hold (a graph of 10,000 nodes takes about 7 MB)
MAX_ITEMS = 100_000  # items of one kind in one graph patch
MAX_ID = 400  # characters of a node or edge id
VIEW_KEYS = ("hidden", "pinned", "grouped", "follow", "minAmount", "since")  # replaced whole by a graph patch
MAX_NOTES = 200_000
_COLS = ("case_id", "owner", "title", "incident", "seeds", "model", "graph", "notes", "created", "updated")


def _row(r: tuple) -> dict[str, Any]:
    d = dict(zip(_COLS, r, strict=True))
    d["seeds"] = json.loads(d["seeds"])
    d["graph"] = json.loads(d["graph"])
    return d


def seeds_of(case: dict[str, Any]) -> list[Seed]:
    return [Seed(s["chain"], address=s.get("address"), txid=s.get("txid")) for s in case["seeds"]]


def _parse_seeds(ws: Workspace, seeds: list[dict[str, Any]] | list[str]) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(seeds):
        if isinstance(s, str):
            chain, _, addr = s.partition(":")
            s = {"chain": chain.strip(), "address": addr.strip()}
        chain, addr = str(s.get("chain") or "").strip(), str(s.get("address") or "").strip()
        if not chain or not addr:
            raise FieldError(f"seeds[{i}]", "needs chain and address (CHAIN:ADDRESS)")
        if ws.chain(chain) is None:
            raise FieldError(f"seeds[{i}].chain", f"unknown chain {chain!r}")
        out.append({"chain": chain, "address": addr})
    return out


def create_case(store: Store, ws: Workspace, owner: str, *, title: str | None = None, incident: str | None = None,
                seeds: list[Any] | None = None, model: str = "haircut") -> dict[str, Any]:
    if model not in MODELS:
        raise FieldError("model", f"unknown taint model {model!r} (poison, haircut, fifo)")
    if incident:
        try:
            inc = get_incident(ws, incident)
        except Exception as e:  # noqa: BLE001 - translate to the field
            raise FieldError("incident", str(e)) from None
        sd = [{"chain": s.chain, "address": s.address} for s in inc.seeds if s.address]
        if not sd:
            raise FieldError("incident", f"the incident {incident!r} has no address seeds")
    else:
        sd = _parse_seeds(ws, seeds or [])
        if not sd:
            raise FieldError("seeds", "give an incident or at least one seed CHAIN:ADDRESS")
    title = (title or incident or f"{sd[0]['chain']}:{sd[0]['address']}").strip()[:200]
    cid = "case_" + secrets.token_hex(6)
    now = now_iso()
    store.execute("INSERT INTO cases (case_id, owner, title, incident, seeds, model, graph, notes, created, updated) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?)", (cid, owner, title, incident, json.dumps(sd), model,
                                                   json.dumps({"nodes": [], "edges": []}), "", now, now))
    return get_case(store, cid, owner, "admin")


def _shared(store: Store, cid: str) -> list[str]:
    return [r[0] for r in store.execute("SELECT user_name FROM case_shares WHERE case_id = ? ORDER BY user_name",
                                        (cid,))]


def get_case(store: Store, cid: str, user: str, role: str, *, write: bool = False) -> dict[str, Any]:
    rows = store.execute(f"SELECT {', '.join(_COLS)} FROM cases WHERE case_id = ?", (cid,))
    if not rows:
        raise NotFoundError(f"no case {cid!r}")
    c = _row(rows[0])
    c["shared_with"] = _shared(store, cid)
    mine = c["owner"] == user or user in c["shared_with"]
    if not (mine or role == "admin"):
        raise NotFoundError(f"no case {cid!r}")  # do not reveal other people's cases
    if write and (not mine and role != "admin" or role not in ("investigator", "admin")):
        raise AuthError("only the owner or a user the case is shared with (investigator or admin) may change it",
                        403)
    return c


def list_cases(store: Store, user: str, role: str) -> list[dict[str, Any]]:
    cols = "case_id, owner, title, incident, model, created, updated"
    if role == "admin":
        rows = store.execute(f"SELECT {cols} FROM cases ORDER BY updated DESC LIMIT 500")
    else:
        rows = store.execute(f"SELECT {cols} FROM cases WHERE owner = ? OR case_id IN (SELECT case_id FROM "
                             f"case_shares WHERE user_name = ?) ORDER BY updated DESC LIMIT 500", (user, user))
    return [dict(zip(("case_id", "owner", "title", "incident", "model", "created", "updated"), r, strict=True))
            for r in rows]


def update_case(store: Store, cid: str, user: str, role: str, *, graph: dict[str, Any] | None = None,
                notes: str | None = None, title: str | None = None, model: str | None = None) -> dict[str, Any]:
    get_case(store, cid, user, role, write=True)
    sets, params = [], []
    if graph is not None:
        if not isinstance(graph, dict):
            raise FieldError("graph", "must be an object")
        g = json.dumps(graph, separators=(",", ":"))
        if len(g) > MAX_GRAPH:
            raise FieldError("graph", f"larger than {MAX_GRAPH} bytes")
        sets.append("graph = ?")
        params.append(g)
    if notes is not None:
        if len(notes) > MAX_NOTES:
            raise FieldError("notes", f"longer than {MAX_NOTES} characters")
        sets.append("notes = ?")
        params.append(notes)
    if title is not None:
        if not title.strip():
            raise FieldError("title", "must not be empty")
        sets.append("title = ?")
        params.append(title.strip()[:200])
    if model is not None:
        if model not in MODELS:
            raise FieldError("model", f"unknown taint model {model!r} (poison, haircut, fifo)")
        sets.append("model = ?")
        params.append(model)
    if sets:
        store.execute(f"UPDATE cases SET {', '.join(sets)}, updated = ? WHERE case_id = ?",
                      (*params, now_iso(), cid))
    return get_case(store, cid, user, role)


def share_case(store: Store, cid: str, user: str, role: str, with_user: str, *, remove: bool = False) -> list[str]:
    c = get_case(store, cid, user, role, write=True)
    if c["owner"] != user and role != "admin":
        raise AuthError("only the owner (or an admin) may share a case", 403)
    if not store.execute("SELECT 1 FROM users WHERE name = ?", (with_user,)):
        raise FieldError("user", f"no user named {with_user!r}")
    if remove:
        store.execute("DELETE FROM case_shares WHERE case_id = ? AND user_name = ?", (cid, with_user))
    elif with_user != c["owner"] and with_user not in c["shared_with"]:
        store.execute("INSERT INTO case_shares (case_id, user_name) VALUES (?,?)", (cid, with_user))
    return _shared(store, cid)


def _access(store: Store, cid: str, user: str, role: str) -> str:
    """Check that ``user`` may change the case (without reading its graph); its ``updated`` stamp."""
    rows = store.execute("SELECT owner, updated FROM cases WHERE case_id = ?", (cid,))
    if not rows:
        raise NotFoundError(f"no case {cid!r}")
    mine = rows[0][0] == user or user in _shared(store, cid)
    if not (mine or role == "admin"):
        raise NotFoundError(f"no case {cid!r}")
    if not mine and role != "admin" or role not in ("investigator", "admin"):
        raise AuthError("only the owner or a user the case is shared with (investigator or admin) may change it",
                        403)
    return rows[0][1]


def edge_key(e: dict[str, Any]) -> str:
    """An edge's id; a case saved compactly leaves it out (it follows from the edge's other fields)."""
    i = e.get("id")
    return i if isinstance(i, str) and i else f"{e.get('source')}->{e.get('target')}:{e.get('chain')}:{e.get('asset')}"


def _ident(v: Any, field: str) -> str:
    if not isinstance(v, str) or not v or len(v) > MAX_ID:
        raise FieldError(field, f"must be a non-empty string of at most {MAX_ID} characters")
    return v


def _check_delta(d: dict[str, Any]) -> None:
    """Every item of a graph patch is well formed (a 422 naming the first bad field, before anything is stored)."""
    for i, n in enumerate(d.get("nodes") or []):
        if not isinstance(n, dict):
            raise FieldError(f"nodes[{i}]", "must be an object")
        _ident(n.get("id"), f"nodes[{i}].id")
    for i, e in enumerate(d.get("edges") or []):
        if not isinstance(e, dict):
            raise FieldError(f"edges[{i}]", "must be an object")
        for k in ("source", "target"):
            _ident(e.get(k), f"edges[{i}].{k}")
        if "id" in e:
            _ident(e["id"], f"edges[{i}].id")
    for k in ("remove_nodes", "remove_edges"):
        for i, x in enumerate(d.get(k) or []):
            _ident(x, f"{k}[{i}]")
    for k, p in (d.get("positions") or {}).items():
        _ident(k, "positions")
        if p is None:
            continue
        if not isinstance(p, dict) or set(p) != {"x", "y"}:
            raise FieldError(f"positions.{k}", "must be {x, y} (numbers) or null")
        for c in ("x", "y"):
            v = p[c]
            if isinstance(v, bool) or not isinstance(v, int | float) or not abs(v) < 1e9:
                raise FieldError(f"positions.{k}.{c}", "must be a finite number (|v| < 1e9)")
    for k, ids in (d.get("expanded_by") or {}).items():
        _ident(k, "expanded_by")
        if ids is not None:
            if not isinstance(ids, list):
                raise FieldError(f"expanded_by.{k}", "must be a list of node ids or null")
            for i, x in enumerate(ids):
                _ident(x, f"expanded_by.{k}[{i}]")
    view = d.get("view") or {}
    for k in view:
        if k not in VIEW_KEYS:
            raise FieldError(f"view.{k}", f"unknown; one of {', '.join(VIEW_KEYS)}")
    for k in ("hidden", "pinned"):
        if k in view:
            if not isinstance(view[k], list):
                raise FieldError(f"view.{k}", "must be a list of node ids")
            for i, x in enumerate(view[k]):
                _ident(x, f"view.{k}[{i}]")


def apply_delta(graph: dict[str, Any], d: dict[str, Any]) -> dict[str, Any]:
    """The graph after the patch ``d`` (see ``patch_graph``); ``graph`` is not changed."""
    if d.get("reset") or not isinstance(graph, dict):
        graph = {}

    def of(k: str, kind: type) -> Any:  # a stored part of the graph, if it has the expected shape
        v = graph.get(k)
        return v if isinstance(v, kind) else kind()

    nodes = {n["id"]: n for n in of("nodes", list) if isinstance(n, dict) and isinstance(n.get("id"), str)}
    edges = {edge_key(e): e for e in of("edges", list) if isinstance(e, dict)}
    positions = dict(of("positions", dict))
    expanded = dict(of("expandedBy", dict))
    for n in d.get("nodes") or []:
        nodes[n["id"]] = n
    for e in d.get("edges") or []:
        edges[edge_key(e)] = e
    for x in d.get("remove_edges") or []:
        edges.pop(x, None)
    for x in d.get("remove_nodes") or []:
        nodes.pop(x, None)
        positions.pop(x, None)
        expanded.pop(x, None)
    if d.get("remove_nodes"):  # no edge is left without its ends
        edges = {k: e for k, e in edges.items() if e.get("source") in nodes and e.get("target") in nodes}
    for k, p in (d.get("positions") or {}).items():
        if p is None:
            positions.pop(k, None)
        else:
            positions[k] = p
    for k, ids in (d.get("expanded_by") or {}).items():
        if ids is None:
            expanded.pop(k, None)
        else:
            expanded[k] = ids
    out = {k: v for k, v in graph.items() if k not in ("nodes", "edges", "positions", "expandedBy")}
    out.update(nodes=list(nodes.values()), edges=list(edges.values()), positions=positions, expandedBy=expanded)
    out.update(d.get("view") or {})
    return out


def patch_graph(store: Store, cid: str, user: str, role: str, delta: dict[str, Any]) -> dict[str, Any]:
    """Save changes to a case's graph: ``nodes`` / ``edges`` added or replaced (by ``id``; an edge without
    one by source, target, chain and asset), ``remove_nodes`` / ``remove_edges`` (a removed node takes its
    position, its ``expanded_by`` entry and its edges along), ``positions`` merged (null removes one),
    ``expanded_by`` merged per node, ``view`` settings (``hidden``, ``pinned``, ``grouped``, ``follow``,
    ``minAmount``, ``since``) replaced, and ``reset`` to start from an empty graph (the first request of a
    graph saved in parts). The stored graph stays within ``MAX_GRAPH`` bytes. Concurrent patches of one case
    are applied one after the other (each re-reads the graph if another was stored meanwhile)."""
    _check_delta(delta)
    for _ in range(20):
        stamp = _access(store, cid, user, role)
        rows = store.execute("SELECT graph FROM cases WHERE case_id = ?", (cid,))
        if not rows:
            raise NotFoundError(f"no case {cid!r}")
        g = apply_delta(json.loads(rows[0][0]), delta)
        text = json.dumps(g, separators=(",", ":"))
        if len(text) > MAX_GRAPH:
            raise FieldError("graph", f"the case's graph would be larger than {MAX_GRAPH} bytes ({len(text)})")
        now = now_iso()
        done = store.execute("UPDATE cases SET graph = ?, updated = ? WHERE case_id = ? AND updated = ? "
                             "RETURNING case_id", (text, now, cid, stamp))
        if done:
            return {"case_id": cid, "updated": now, "nodes": len(g["nodes"]), "edges": len(g["edges"]),
                    "positions": len(g["positions"]), "bytes": len(text)}
    raise ConflictError(f"the case {cid!r} kept changing while this change was saved; try again")
